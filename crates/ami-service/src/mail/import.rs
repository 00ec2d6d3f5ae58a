//! Mail in, from raw bytes to an arrival: the message read by
//! [`ami_mail::parse`], its raw bytes and every attachment kept by the file
//! storage (by SHA-256, as pièces are), then the arrival recorded once.
//!
//! The files are stored before the arrival's row is committed: a crash in
//! between leaves files nobody references (which `ami files gc` removes),
//! never a row pointing to nothing. A message `parse` refuses is not
//! dropped: it becomes an arrival in quarantine, with its reason and its
//! raw bytes.

use std::sync::Arc;

use ami_core::{Definition, Placement};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::files::{Files, FilesError};
use crate::store::{ArrivalState, Attachment, Database, NewArrival, StoreError};

/// What [`Importer::import`] did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// The arrival: the new one, or the first import's.
    pub id: Uuid,
    /// False when the message had been imported already.
    pub created: bool,
    /// The message could not be read and is held in quarantine.
    pub quarantined: bool,
}

/// Why a message could not be imported now; worth trying again later
/// (a message that cannot be read is no error: it is quarantined).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("stockage des fichiers : {0}")]
    Files(#[from] FilesError),
    #[error("base de données : {0}")]
    Store(#[from] StoreError),
}

/// Imports received messages into a store and a file storage.
#[derive(Debug, Clone)]
pub struct Importer {
    pub store: Database,
    pub files: Files,
    /// Places each message's reception instant in a wave.
    pub definition: Arc<Definition>,
}

impl Importer {
    pub fn new(store: Database, files: Files, definition: Arc<Definition>) -> Importer {
        Importer {
            store,
            files,
            definition,
        }
    }

    /// Imports one raw message, once: the same message again (same
    /// Message-ID, or same bytes without one) gives the first arrival,
    /// `created: false`. `source` says where it came from (`imap`, a
    /// file's path).
    pub async fn import(&self, raw: &[u8], source: &str) -> Result<Imported, ImportError> {
        self.import_at(raw, source, Utc::now()).await
    }

    /// [`Importer::import`] at a given instant (the import's, and the
    /// reception's for a message in quarantine, which has none of its own).
    pub async fn import_at(
        &self,
        raw: &[u8],
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<Imported, ImportError> {
        let new = match ami_mail::parse(raw) {
            Ok(arrival) => {
                let mut attachments = Vec::with_capacity(arrival.attachments.len());
                for a in &arrival.attachments {
                    let sha256 = self
                        .keep(&a.data)
                        .await?
                        .unwrap_or_else(|| a.sha256.clone());
                    attachments.push(Attachment {
                        filename: a.filename.clone(),
                        media_type: a.media_type.clone(),
                        size: a.size,
                        sha256,
                    });
                }
                let raw_sha256 = self
                    .keep(raw)
                    .await?
                    .unwrap_or_else(|| arrival.raw_sha256.clone());
                NewArrival {
                    dedup_key: arrival.dedup_key,
                    message_id: arrival.message_id,
                    sender: arrival.from.address,
                    sender_name: arrival.from.name,
                    subject: arrival.subject,
                    received_at: arrival.received_at,
                    wave: self.wave(arrival.received_at),
                    state: ArrivalState::Nouveau,
                    quarantine_reason: None,
                    text: arrival.text,
                    raw_sha256,
                    raw_size: raw.len() as u64,
                    attachments,
                    imported_at: now,
                    source: source.to_string(),
                }
            }
            Err(unparsable) => {
                let raw_sha256 = match self.keep(raw).await? {
                    Some(sha256) => sha256,
                    None => hex_sha256(raw),
                };
                tracing::warn!(%source, reason = %unparsable.reason, "message en quarantaine");
                NewArrival {
                    dedup_key: format!("sha256:{raw_sha256}"),
                    message_id: None,
                    sender: String::new(),
                    sender_name: None,
                    subject: String::new(),
                    received_at: now,
                    wave: self.wave(now),
                    state: ArrivalState::Quarantaine,
                    quarantine_reason: Some(unparsable.reason),
                    text: String::new(),
                    raw_sha256,
                    raw_size: raw.len() as u64,
                    attachments: Vec::new(),
                    imported_at: now,
                    source: source.to_string(),
                }
            }
        };
        let quarantined = new.state == ArrivalState::Quarantaine;
        let recorded = self.store.record_arrival(&new).await?;
        Ok(Imported {
            id: recorded.id,
            created: recorded.created,
            quarantined,
        })
    }

    /// The wave the definition places an instant in, if any.
    fn wave(&self, at: DateTime<Utc>) -> Option<u8> {
        match self.definition.campaign().placement(at) {
            Placement::Wave(n) => Some(n),
            Placement::NotOpen | Placement::Closed => None,
        }
    }

    /// Stores `bytes` at their content address; their SHA-256, or `None`
    /// for no bytes at all (nothing to store: an empty file is served as
    /// such).
    async fn keep(&self, bytes: &[u8]) -> Result<Option<String>, FilesError> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
            Bytes::copy_from_slice(bytes),
        )]);
        let received = self.files.receive(body, u64::MAX).await?;
        self.files.keep(&received).await?;
        Ok(Some(received.sha256))
    }
}

/// The SHA-256 of `bytes`, 64 lower-case hex digits.
fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// How many messages of one source went where, for `ami import`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub messages: usize,
    pub created: usize,
    pub known: usize,
    pub quarantined: usize,
}

impl Tally {
    pub fn add(&mut self, imported: &Imported) {
        self.messages += 1;
        if !imported.created {
            self.known += 1;
        } else if imported.quarantined {
            self.quarantined += 1;
        } else {
            self.created += 1;
        }
    }
}

impl std::fmt::Display for Tally {
    /// « 12 messages : 10 nouveaux, 1 déjà connu, 1 en quarantaine ».
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |n: usize| if n > 1 { "s" } else { "" };
        let x = |n: usize| if n > 1 { "x" } else { "" };
        write!(
            f,
            "{} message{} : {} nouveau{}, {} déjà connu{}, {} en quarantaine",
            self.messages,
            s(self.messages),
            self.created,
            x(self.created),
            self.known,
            s(self.known),
            self.quarantined
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_reads_in_french() {
        let t = Tally {
            messages: 12,
            created: 10,
            known: 1,
            quarantined: 1,
        };
        assert_eq!(
            t.to_string(),
            "12 messages : 10 nouveaux, 1 déjà connu, 1 en quarantaine"
        );
        let one = Tally {
            messages: 1,
            created: 0,
            known: 2,
            quarantined: 0,
        };
        assert_eq!(
            one.to_string(),
            "1 message : 0 nouveau, 2 déjà connus, 0 en quarantaine"
        );
    }
}
