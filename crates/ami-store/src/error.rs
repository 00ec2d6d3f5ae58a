//! The store's error: only the cases callers branch on.

use ami_core::Rejection;

use crate::{ArrivalState, TokenRefusal};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dossier introuvable")]
    NotFound,
    /// The dossier's version is not the expected one (`current` when known).
    #[error("le dossier a changé entre-temps")]
    Conflict { current: Option<u64> },
    /// The engine refused the command; `explanation` is its French reason
    /// in the definition's words ([`Rejection::explain`]).
    #[error("{explanation}")]
    Rejected {
        rejection: Rejection,
        explanation: String,
    },
    /// The token is unknown, does not match, was revoked, or names an
    /// agency or role the definition lacks (`code` says which).
    #[error("jeton refusé")]
    Unauthenticated { code: TokenRefusal },
    #[error("clé d'idempotence déjà utilisée pour une autre requête")]
    IdempotencyMismatch,
    /// The arrival named is unknown.
    #[error("courrier arrivé introuvable")]
    ArrivalNotFound,
    /// The arrival is no longer to be handled: handled already (`traite`,
    /// `ecarte`), or in quarantine for a deposit or an attachment. Nothing
    /// was written.
    #[error("courrier arrivé déjà traité ou en quarantaine ({state})")]
    ArrivalHandled { state: ArrivalState },
    /// A unique constraint fired: a concurrent writer got there first.
    #[error("écriture concurrente")]
    Duplicate,
    /// Two writers waited on each other (a deadlock, a serialization
    /// failure) and the database gave up one: nothing of it was written,
    /// and running it again alone succeeds or meets a real conflict.
    #[error("écritures concurrentes bloquées, à réessayer")]
    Contention,
    /// The database cannot be reached now; worth retrying later.
    #[error("base de données indisponible : {0}")]
    Unavailable(String),
    /// The journal or a projection does not read back as written.
    #[error("données illisibles : {0}")]
    Corrupt(String),
    /// The database does not exist or is not one of `ami`'s.
    #[error("{0}")]
    NotAmi(String),
    #[error("erreur de base de données : {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                if db.is_unique_violation() {
                    StoreError::Duplicate
                } else if code == "40P01" || code == "40001" {
                    StoreError::Contention
                } else if unavailable(&code) {
                    StoreError::Unavailable(e.to_string())
                } else {
                    StoreError::Other(e.to_string())
                }
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Whether a database error code says the database cannot serve now
/// (unreachable, gone, out of resources, or its storage damaged or failing)
/// rather than that the statement is wrong: the caller is told to retry
/// later (503), not that the service has a bug (500).
fn unavailable(code: &str) -> bool {
    // PostgreSQL's SQLSTATEs are five characters.
    if code.len() == 5 {
        return code.starts_with("08") // connection exception
            || code.starts_with("53") // insufficient resources: disk full, out of memory, too many connections
            || code.starts_with("57P") // shutdown, crash, database dropped
            || code.starts_with("58") // system error: I/O error
            || code == "3D000" // the database does not exist (dropped)
            || code == "XX001" // data_corrupted
            || code == "XX002"; // index_corrupted
    }
    // SQLite's extended result codes, whose low byte is the primary code.
    let Ok(extended) = code.parse::<i32>() else {
        return false;
    };
    matches!(
        extended & 0xff,
        5 // SQLITE_BUSY
        | 6 // SQLITE_LOCKED
        | 8 // SQLITE_READONLY: read-only file system, file moved or deleted
        | 10 // SQLITE_IOERR
        | 11 // SQLITE_CORRUPT: "database disk image is malformed"
        | 13 // SQLITE_FULL
        | 14 // SQLITE_CANTOPEN
        | 15 // SQLITE_PROTOCOL: the WAL's locks or index cannot be trusted
        | 26 // SQLITE_NOTADB: "file is not a database"
    )
}

impl StoreError {
    /// The same error for each of several callers (a batch that failed as
    /// a whole): the kind is kept, a refusal's details only as text.
    pub fn for_each_caller(&self) -> StoreError {
        match self {
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Conflict { current } => StoreError::Conflict { current: *current },
            StoreError::Duplicate => StoreError::Duplicate,
            StoreError::Contention => StoreError::Contention,
            StoreError::IdempotencyMismatch => StoreError::IdempotencyMismatch,
            StoreError::ArrivalNotFound => StoreError::ArrivalNotFound,
            StoreError::ArrivalHandled { state } => StoreError::ArrivalHandled { state: *state },
            StoreError::Unauthenticated { code } => StoreError::Unauthenticated { code: *code },
            StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
            StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
            StoreError::NotAmi(s) => StoreError::NotAmi(s.clone()),
            StoreError::Rejected { .. } | StoreError::Other(_) => {
                StoreError::Other(self.to_string())
            }
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::unavailable;

    #[test]
    fn damaged_unreachable_or_busy_databases_are_unavailable_not_bugs() {
        // SQLite: corrupt, not a database, I/O errors (extended codes), busy.
        for code in [
            "11", "267", "779", "26", "10", "266", "522", "14", "13", "5", "517", "1032",
        ] {
            assert!(unavailable(code), "{code}");
        }
        // PostgreSQL: connection lost, database dropped or gone, disk full,
        // corruption, I/O error, too many connections.
        for code in [
            "08006", "57P01", "57P04", "3D000", "53100", "53300", "XX001", "58030",
        ] {
            assert!(unavailable(code), "{code}");
        }
        // A statement that is wrong is a bug: syntax, constraint, missing table.
        for code in [
            "1", "19", "2067", "787", "42601", "23502", "42P01", "XX000", "", "abc",
        ] {
            assert!(!unavailable(code), "{code}");
        }
    }
}
