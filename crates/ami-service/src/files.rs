//! The contents of pièces, stored once per content and addressed by their
//! SHA-256, in a local directory or in S3-compatible object storage (both
//! from the `object_store` crate, behind its `ObjectStore` trait).
//!
//! A file arrives in two steps. [`Files::receive`] streams the body to a
//! temporary object (`incoming/…`) while hashing it, so that no file is ever
//! held in memory whole; once its type is checked, [`Files::keep`] moves it to
//! its content address (`sha256/ab/abcd…`). Both happen before the event that
//! references it is committed: a crash in between leaves an object nobody
//! references, which [`Files::unreferenced`] finds for `ami files gc`.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::store::{AuditFinding, DatabaseUrl, Store};

/// How much of the start of a file is kept to recognize its type.
pub const HEAD_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("le fichier dépasse la taille maximale de {limit} octets")]
    TooLarge { limit: u64 },
    #[error("le fichier est vide")]
    Empty,
    /// The client stopped sending, or sent a malformed body.
    #[error("lecture du fichier interrompue : {0}")]
    Body(String),
    #[error("aucun fichier d'empreinte {0}")]
    Missing(String),
    #[error("stockage des fichiers : {0}")]
    Storage(#[from] object_store::Error),
    #[error("adresse du stockage des fichiers {url} : {problem}")]
    Config { url: String, problem: String },
}

/// A file received and hashed, still under its temporary name.
#[derive(Debug)]
pub struct Received {
    pub sha256: String,
    pub size: u64,
    /// The first bytes ([`HEAD_LEN`] at most): what the type is read from.
    pub head: Bytes,
    incoming: Incoming,
}

/// Where a received file waits for [`Files::keep`].
#[derive(Debug)]
enum Incoming {
    /// A temporary object of the local storage.
    Object(Path),
    /// A local temporary file, removed when dropped.
    Spool(tempfile::TempPath),
}

/// Where a body is written while it arrives.
enum Sink {
    Object(WriteMultipart, Path),
    Spool(tokio::fs::File, tempfile::TempPath),
}

impl Sink {
    async fn write(&mut self, chunk: Bytes) -> Result<(), FilesError> {
        match self {
            Sink::Object(writer, _) => {
                writer.wait_for_capacity(1).await?;
                writer.put(chunk);
                Ok(())
            }
            Sink::Spool(file, _) => {
                use tokio::io::AsyncWriteExt;
                file.write_all(&chunk).await.map_err(local_error)
            }
        }
    }

    async fn abort(self) {
        if let Sink::Object(writer, key) = self {
            if let Err(e) = writer.abort().await {
                tracing::warn!(error = %e, %key, "abandoning an upload");
            }
        }
    }

    async fn finish(self) -> Result<Incoming, FilesError> {
        match self {
            Sink::Object(writer, key) => {
                writer.finish().await?;
                Ok(Incoming::Object(key))
            }
            Sink::Spool(mut file, path) => {
                use tokio::io::AsyncWriteExt;
                file.flush().await.map_err(local_error)?;
                Ok(Incoming::Spool(path))
            }
        }
    }
}

/// S3's smallest part (but the last).
const S3_PART: usize = 5 << 20;

/// Spooled files sent to S3 at once, across the service: each holds about
/// two parts in memory, so ten concurrent uploads stay well under 100 MiB.
static S3_SENDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Where uploads bound for S3 wait, on this machine's disk.
fn spool_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("ami-spool")
}

fn local_error(e: std::io::Error) -> FilesError {
    FilesError::Storage(object_store::Error::Generic {
        store: "local",
        source: Box::new(e),
    })
}

/// An object found by [`Files::unreferenced`].
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// Where the contents of pièces live.
#[derive(Debug, Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    /// The URL it was opened from, for messages.
    url: String,
    /// The folder of a local storage: uploads cut short leave their partial
    /// file there (`incoming/ID#N`), which object_store does not list.
    local_root: Option<std::path::PathBuf>,
}

impl Files {
    /// `file:///path/to/dir` (created if missing) or `s3://bucket/prefix`
    /// (credentials, region and endpoint from the usual `AWS_*` variables).
    pub fn open(url: &str) -> Result<Files, FilesError> {
        Files::open_with(url, &[])
    }

    /// [`Files::open`] with S3 settings given here rather than in the
    /// environment (`aws_endpoint`, `aws_allow_http`, `aws_access_key_id`…).
    pub fn open_with(url: &str, s3_settings: &[(&str, &str)]) -> Result<Files, FilesError> {
        let config = |problem: String| FilesError::Config {
            url: url.to_string(),
            problem,
        };
        if let Some(dir) = url.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(config("chemin absent (file:///chemin/du/dossier)".into()));
            }
            std::fs::create_dir_all(dir).map_err(|e| config(e.to_string()))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| config(e.to_string()))?;
            return Ok(Files {
                store: Arc::new(local),
                url: url.to_string(),
                local_root: Some(std::path::PathBuf::from(dir)),
            });
        }
        if url.starts_with("s3://") {
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url);
            for (key, value) in s3_settings {
                let key: object_store::aws::AmazonS3ConfigKey = key
                    .parse()
                    .map_err(|e: object_store::Error| config(e.to_string()))?;
                builder = builder.with_config(key, *value);
            }
            let s3 = builder.build().map_err(|e| config(e.to_string()))?;
            let prefix = url
                .trim_start_matches("s3://")
                .split_once('/')
                .map(|(_, p)| p.trim_matches('/').to_string())
                .unwrap_or_default();
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
            };
            // An upload cut while sent on leaves an S3 multipart upload
            // never completed: a bucket lifecycle rule
            // (AbortIncompleteMultipartUpload) removes it; it is no object.
            return Ok(Files {
                store,
                url: url.to_string(),
                local_root: None,
            });
        }
        Err(config(
            "schéma inconnu : file:///chemin ou s3://seau/préfixe".into(),
        ))
    }

    /// The default next to a SQLite database (`ami-files/` in its folder),
    /// else `ami-files/` in the working directory.
    pub fn default_url(database: &DatabaseUrl) -> String {
        let dir = database
            .expose()
            .strip_prefix("sqlite://")
            .map(|rest| rest.split('?').next().unwrap_or(rest))
            .filter(|file| !file.is_empty() && !file.contains(":memory:"))
            .map(std::path::Path::new)
            .and_then(|file| file.parent().map(std::path::Path::to_path_buf))
            .unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            std::path::PathBuf::from(".")
        } else {
            dir
        };
        let dir =
            std::path::absolute(dir.join("ami-files")).unwrap_or_else(|_| dir.join("ami-files"));
        format!("file://{}", dir.display())
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn content_key(sha256: &str) -> Path {
        Path::from(format!(
            "sha256/{}/{sha256}",
            &sha256[..2.min(sha256.len())]
        ))
    }

    /// Streams a body to a temporary place while computing its SHA-256
    /// and size; more than `limit` bytes stops it with `TooLarge`, nothing
    /// with `Empty` (and nothing is left behind in either case). A local
    /// storage takes it as a temporary object; for S3 it is spooled to a
    /// local temporary file, sent on by [`Files::keep`] (see [`S3_SENDS`]).
    pub async fn receive<S, E>(&self, mut body: S, limit: u64) -> Result<Received, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut sink = self.sink().await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut head = Vec::new();
        let failure = loop {
            let chunk = match body.next().await {
                None => break None,
                Some(Err(e)) => break Some(FilesError::Body(e.to_string())),
                Some(Ok(chunk)) => chunk,
            };
            size += chunk.len() as u64;
            if size > limit {
                break Some(FilesError::TooLarge { limit });
            }
            if head.len() < HEAD_LEN {
                let take = (HEAD_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(&chunk);
            if let Err(e) = sink.write(chunk).await {
                break Some(e);
            }
        };
        let failure = failure.or((size == 0).then_some(FilesError::Empty));
        if let Some(failure) = failure {
            sink.abort().await;
            return Err(failure);
        }
        let incoming = sink.finish().await?;
        Ok(Received {
            sha256: hex::encode(hasher.finalize()),
            size,
            head: Bytes::from(head),
            incoming,
        })
    }

    async fn sink(&self) -> Result<Sink, FilesError> {
        if self.local_root.is_some() {
            let key = Path::from(format!("incoming/{}", uuid::Uuid::now_v7()));
            let upload = self.store.put_multipart(&key).await?;
            // Parts of 1 MiB, one written while the next fills.
            let writer = WriteMultipart::new_with_chunk_size(upload, 1 << 20);
            return Ok(Sink::Object(writer, key));
        }
        let dir = spool_dir();
        tokio::fs::create_dir_all(&dir).await.map_err(local_error)?;
        let spool = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&dir)
            .map_err(local_error)?;
        let (file, path) = spool.into_parts();
        Ok(Sink::Spool(tokio::fs::File::from_std(file), path))
    }

    /// Gives a received file its content address. A content stored before
    /// (the same file sent twice) is written again all the same: that makes
    /// it young, so that `files gc` cannot take it, as unreferenced, between
    /// now and the commit of the event that references it.
    pub async fn keep(&self, received: &Received) -> Result<(), FilesError> {
        let target = Self::content_key(&received.sha256);
        match &received.incoming {
            Incoming::Object(key) => Ok(self.store.rename(key, &target).await?),
            Incoming::Spool(path) => self.send_spool(path, &target).await,
        }
    }

    /// Sends a spooled file to S3 in parts of 5 MiB (S3's smallest), a
    /// bounded number at a time across the whole service.
    async fn send_spool(&self, path: &std::path::Path, target: &Path) -> Result<(), FilesError> {
        use tokio::io::AsyncReadExt;
        let _permit = S3_SENDS
            .acquire()
            .await
            .map_err(|e| FilesError::Body(e.to_string()))?;
        let mut file = tokio::fs::File::open(path).await.map_err(local_error)?;
        let upload = self.store.put_multipart(target).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, S3_PART);
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = match file.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(local_error(e));
                }
            };
            if let Err(e) = writer.wait_for_capacity(0).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.write(&buffer[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// Drops a received file that will not be kept (its type was refused).
    pub async fn discard(&self, received: Received) {
        if let Incoming::Object(key) = &received.incoming {
            if let Err(e) = self.store.delete(key).await {
                tracing::warn!(error = %e, %key, "discarding a refused upload");
            }
        }
        // A spool file goes when `received` is dropped.
    }

    /// The content of a file, or the bytes of `range` of it.
    pub async fn get(
        &self,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> Result<GetResult, FilesError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        match self
            .store
            .get_opts(&Self::content_key(sha256), options)
            .await
        {
            Err(object_store::Error::NotFound { .. }) => Err(FilesError::Missing(sha256.into())),
            other => Ok(other?),
        }
    }

    /// Reads a stored file through and computes its SHA-256 again; `None`
    /// when it is missing.
    pub async fn recompute(&self, sha256: &str) -> Result<Option<String>, FilesError> {
        let found = match self.get(sha256, None).await {
            Ok(found) => found,
            Err(FilesError::Missing(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut stream = found.into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(chunk?);
        }
        Ok(Some(hex::encode(hasher.finalize())))
    }

    /// Objects last written before `before` that no pièce references:
    /// contents whose event never committed, and uploads cut short.
    pub async fn unreferenced(
        &self,
        referenced: &HashSet<String>,
        before: DateTime<Utc>,
    ) -> Result<Vec<StoredObject>, FilesError> {
        let mut found = Vec::new();
        let mut listing = self.store.list(None);
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let key = meta.location.to_string();
            let is_referenced = key
                .strip_prefix("sha256/")
                .and_then(|rest| rest.rsplit('/').next())
                .is_some_and(|sha| referenced.contains(sha));
            if !is_referenced && meta.last_modified < before {
                found.push(StoredObject {
                    key,
                    size: meta.size,
                    last_modified: meta.last_modified,
                });
            }
        }
        found.extend(self.partial_uploads(before));
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    /// Partial files of uploads cut short (the server killed mid-file): in
    /// the local storage's `incoming/` (`ID#N`, which object_store does not
    /// list), or in this machine's spool for S3.
    fn partial_uploads(&self, before: DateTime<Utc>) -> Vec<StoredObject> {
        let (dir, prefix) = match &self.local_root {
            Some(root) => (root.join("incoming"), "incoming/"),
            None => (spool_dir(), "spool/"),
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let meta = entry.metadata().ok()?;
                let modified: DateTime<Utc> = meta.modified().ok()?.into();
                let partial = name.contains('#') || prefix == "spool/";
                (partial && meta.is_file() && modified < before).then(|| StoredObject {
                    key: format!("{prefix}{name}"),
                    size: meta.len(),
                    last_modified: modified,
                })
            })
            .collect()
    }

    /// Removes an object found by [`Files::unreferenced`].
    pub async fn delete(&self, key: &str) -> Result<(), FilesError> {
        // Partial files live outside object_store's view.
        let partial = match (&self.local_root, key.split_once('/')) {
            (Some(root), Some(("incoming", name))) if name.contains('#') => {
                Some(root.join("incoming").join(name))
            }
            (None, Some(("spool", name))) => Some(spool_dir().join(name)),
            _ => None,
        };
        match partial {
            Some(path)
                if path
                    .file_name()
                    .is_some_and(|n| !n.to_string_lossy().contains('/')) =>
            {
                std::fs::remove_file(path).map_err(local_error)
            }
            Some(_) => Ok(()),
            None => Ok(self.store.delete(&Path::from(key)).await?),
        }
    }

    /// Removes a stored content (tests use it to damage the storage).
    pub async fn delete_content(&self, sha256: &str) -> Result<(), FilesError> {
        Ok(self.store.delete(&Self::content_key(sha256)).await?)
    }

    /// Replaces a stored content (tests use it to damage the storage).
    pub async fn overwrite_content(&self, sha256: &str, bytes: Bytes) -> Result<(), FilesError> {
        self.store
            .put(&Self::content_key(sha256), bytes.into())
            .await?;
        Ok(())
    }
}

/// What `ami audit verify --pieces` read and found.
#[derive(Debug, Default)]
pub struct PiecesAudit {
    /// Distinct contents read back.
    pub files: usize,
    pub findings: Vec<AuditFinding>,
}

/// Reads every referenced file back and compares its SHA-256 with the one
/// the journal recorded; each content is read once however many pièces
/// share it.
pub async fn verify_pieces(store: &dyn Store, files: &Files) -> anyhow::Result<PiecesAudit> {
    let listed = store.piece_files().await?;
    let mut read: HashMap<String, Option<String>> = HashMap::new();
    let mut findings = Vec::new();
    for (reference, file) in listed {
        let found = match read.get(file.sha256.as_str()) {
            Some(found) => found.clone(),
            None => {
                let found = files.recompute(&file.sha256).await?;
                read.insert(file.sha256.to_string(), found.clone());
                found
            }
        };
        match found {
            None => findings.push(AuditFinding::PieceMissing {
                reference,
                kind: file.kind.to_string(),
                version: file.version,
                sha256: file.sha256.to_string(),
            }),
            Some(found) if found != file.sha256 => findings.push(AuditFinding::PieceAltered {
                reference,
                kind: file.kind.to_string(),
                version: file.version,
                recorded: file.sha256.to_string(),
                found,
            }),
            Some(_) => {}
        }
    }
    Ok(PiecesAudit {
        files: read.len(),
        findings,
    })
}
