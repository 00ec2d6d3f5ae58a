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
                // Connection exceptions (08), shutdown (57P0x), SQLite busy/locked.
                } else if code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "53300"
                    || code == "5"
                    || code == "6"
                {
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
