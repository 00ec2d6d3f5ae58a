//! `GET /dossiers/{id}/receipt`: the dossier's printable receipt, an HTML
//! page (the web interface's own, `crate::web::receipt`), with the same need
//! to know as `GET /dossiers/{id}`.

use ami_core::DossierId;
use axum::extract::State;
use axum::response::Html;

use super::error::{ApiError, Problem};
use super::extract::DossierPath;
use super::{AppState, Caller};

/// Print a dossier's receipt
///
/// A printable receipt of the dossier: its facts, every event with its
/// digest, every version of its pièces with their SHA-256, the last digest
/// of its chain, and when and by whom it was produced.
#[utoipa::path(get, path = "/dossiers/{id}/receipt", operation_id = "getReceipt", tag = "dossiers",
    params(("id" = Uuid, Path, description = "Dossier id")),
    responses(
        (status = 200, description = "The receipt, a standalone HTML page to print or save", content_type = "text/html", body = String),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, description = "Unknown dossier, or outside the caller's programmes", body = Problem),
        (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn receipt(
    State(state): State<AppState>,
    caller: Caller,
    DossierPath(id): DossierPath,
) -> Result<Html<String>, ApiError> {
    crate::web::receipt::render_receipt(&state, &caller.actor, DossierId(id))
        .await
        .map(Html)
}
