//! `/dossiers/{id}/messages`: the letters of a dossier and where each
//! stands in the outbox.

use ami_core::DossierId;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::dossiers::readable_dossier;
use super::error::{ApiError, Problem};
use super::extract::DossierPath;
use super::{AppState, Caller};
use crate::store::OutgoingRecord;

/// The letters of a dossier, in the order they were written.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageList {
    pub items: Vec<MessageView>,
}

/// A letter of the outbox.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    /// `accuse_reception` or `decision`.
    #[schema(example = "accuse_reception")]
    pub kind: String,
    /// The porteur's address when the letter was written; none:
    /// `sans_destinataire`.
    pub recipient: Option<String>,
    /// `en_attente` (to send, from `next_attempt_at`), `envoye`, `echec`
    /// (given up) or `sans_destinataire` (kept, never sent).
    #[schema(example = "envoye")]
    pub status: String,
    /// Sending attempts begun.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
}

impl From<OutgoingRecord> for MessageView {
    fn from(r: OutgoingRecord) -> MessageView {
        MessageView {
            id: r.id,
            kind: r.kind.as_str().to_string(),
            recipient: r.recipient,
            status: r.status.as_str().to_string(),
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: r.created_at,
            sent_at: r.sent_at,
            next_attempt_at: r.next_attempt_at,
        }
    }
}

/// List the letters of a dossier
///
/// The letters of a dossier (accusé de réception, decision) and their
/// sending: who may read the dossier may read them.
#[utoipa::path(get, path = "/dossiers/{id}/messages", operation_id = "listMessages", tag = "dossiers",
    params(("id" = Uuid, Path, description = "Dossier id")),
    responses((status = 200, body = MessageList), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    DossierPath(id): DossierPath,
) -> Result<Json<MessageList>, ApiError> {
    readable_dossier(&state, &caller, DossierId(id)).await?;
    let items = state.store.dossier_messages(DossierId(id)).await?;
    Ok(Json(MessageList {
        items: items.into_iter().map(MessageView::from).collect(),
    }))
}
