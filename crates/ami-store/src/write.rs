//! What a transition on an existing dossier writes, as its request decided
//! it and as the group commit writes it ([`crate::group_commit`]).

use serde::Serialize;

use crate::mail::Letter;

/// Everything one transition writes, decided before the write.
#[derive(Debug, Serialize)]
pub struct Write {
    pub dossier_id: String,
    /// The version the request read; the write happens only if it is still
    /// the dossier's.
    pub previous_version: i64,
    pub state: String,
    pub version: i64,
    pub updated_at_us: i64,
    pub digest: String,
    /// The dossier's new projection (JSON).
    pub body: String,
    pub awaiting: String,
    /// The earliest last day of the deadlines awaited ([`crate::due_on`]).
    pub due_on: Option<String>,
    pub seq: i64,
    pub action: String,
    pub agency: String,
    pub actor_id: String,
    pub at_us: i64,
    /// The event in canonical JSON.
    pub event: String,
    pub idempotency: Option<Remembered>,
    /// The letters the event causes, written with it.
    pub letters: Vec<Letter>,
}

/// The first answer to an idempotency key, kept with the write.
#[derive(Debug, Serialize)]
pub struct Remembered {
    pub actor_id: String,
    pub key: String,
    pub request_sha256: String,
    pub status: i64,
    pub body: String,
    pub created_at_us: i64,
}

/// What became of one write.
#[derive(Debug)]
pub enum Written {
    /// Committed: durable.
    Committed,
    /// The dossier is no longer at the version read: nothing was written.
    VersionMoved,
}
