//! Messages read from a path: one `.eml` file, an mbox file, or a Maildir
//! folder. The only module of the crate that reads files.
//!
//! A folder with `cur/` or `new/` is a Maildir; a file whose first bytes are
//! `From ` is an mbox; any other file is one message. An mbox is read as a
//! stream, one message at a time, so a mailbox of several gigabytes needs
//! the memory of its largest message only.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// A message's raw bytes and where they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The file's path, or for an mbox the file's path and the message's
    /// number in it from 1: `boite.mbox#3`.
    pub origin: String,
    /// The message as stored (for an mbox, without its `From ` line and
    /// with `>From ` quoting undone).
    pub bytes: Vec<u8>,
}

/// What a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// One message in one file.
    Eml,
    /// Messages in one file, each after a `From ` line.
    Mbox,
    /// A folder with `cur/` and `new/`, one message per file.
    Maildir,
}

/// Why a path could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file or folder could not be read.
    #[error("lecture impossible de {path} : {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A folder that is not a Maildir.
    #[error("{0} est un dossier sans sous-dossier cur/ ni new/ : ce n'est pas une boîte Maildir")]
    NotAMaildir(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What the path holds, by the rule of the module's documentation.
pub fn detect(path: &Path) -> Result<SourceKind, SourceError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    if meta.is_dir() {
        return if path.join("cur").is_dir() || path.join("new").is_dir() {
            Ok(SourceKind::Maildir)
        } else {
            Err(SourceError::NotAMaildir(path.display().to_string()))
        };
    }
    let mut head = [0u8; 5];
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]).map_err(io_error(path))? {
            0 => break,
            n => read += n,
        }
    }
    Ok(if &head[..read] == b"From " {
        SourceKind::Mbox
    } else {
        SourceKind::Eml
    })
}

/// The messages of a path, one by one, in their order: an mbox's order,
/// a Maildir's files sorted by name (Maildir names begin with the time of
/// delivery), `new/` and `cur/` together.
pub fn read_path(path: impl AsRef<Path>) -> Result<Messages, SourceError> {
    let path = path.as_ref();
    let inner = match detect(path)? {
        SourceKind::Eml => Inner::Files(vec![path.to_path_buf()].into_iter()),
        SourceKind::Maildir => Inner::Files(maildir_files(path)?.into_iter()),
        SourceKind::Mbox => {
            let file = File::open(path).map_err(io_error(path))?;
            Inner::Mbox {
                path: path.display().to_string(),
                number: 0,
                messages: mail_parser::mailbox::mbox::MessageIterator::new(BufReader::new(file)),
                failed: false,
            }
        }
    };
    Ok(Messages { inner })
}

/// The files of a Maildir's `new/` and `cur/`, sorted by file name; hidden
/// files (a leading dot) are skipped, and `tmp/` (deliveries in progress).
fn maildir_files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        let dir = path.join(sub);
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let is_file = entry.file_type().map_err(io_error(&dir))?.is_file();
            if is_file && !hidden {
                files.push(entry.path());
            }
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()).then_with(|| a.cmp(b)));
    Ok(files)
}

/// The messages of a path, read when asked for: see [`read_path`].
pub struct Messages {
    inner: Inner,
}

enum Inner {
    Files(std::vec::IntoIter<PathBuf>),
    Mbox {
        path: String,
        number: usize,
        messages: mail_parser::mailbox::mbox::MessageIterator<BufReader<File>>,
        /// A read failed: the rest of the file is not read (a failing disk
        /// would otherwise give the same error forever).
        failed: bool,
    },
}

impl Iterator for Messages {
    type Item = Result<RawMessage, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Files(files) => {
                let file = files.next()?;
                Some(
                    std::fs::read(&file)
                        .map(|bytes| RawMessage {
                            origin: file.display().to_string(),
                            bytes,
                        })
                        .map_err(io_error(&file)),
                )
            }
            Inner::Mbox {
                path,
                number,
                messages,
                failed,
            } => {
                if *failed {
                    return None;
                }
                let message = messages.next()?;
                *number += 1;
                Some(match message {
                    Ok(message) => Ok(RawMessage {
                        origin: format!("{path}#{number}"),
                        bytes: message.unwrap_contents(),
                    }),
                    Err(source) => {
                        *failed = true;
                        Err(SourceError::Io {
                            path: path.clone(),
                            source,
                        })
                    }
                })
            }
        }
    }
}
