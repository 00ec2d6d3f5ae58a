//! ami-mail's tests, in one binary: the corpus of `tests/mail-corpus/` at
//! the repository's root read into arrivals or quarantines, the sources, the
//! guesses, the letters, and random input that must not panic.

mod arrivals;
mod guesses;
mod letters;
mod never_panics;
mod sources;

use std::path::PathBuf;

/// The corpus folder.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mail-corpus")
}

/// A corpus file's bytes.
pub fn corpus(name: &str) -> Vec<u8> {
    let path = corpus_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One of `docs/examples/`' files, attached to the corpus's messages.
pub fn example(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/examples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
