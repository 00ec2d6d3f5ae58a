//! The printable receipt (« récépissé ») of a dossier: what it is, every
//! event of its history with the digest the journal keeps, every version of
//! its pièces with their SHA-256, and the last digest of its chain, so that
//! an agency can file what it signed. One template, standalone (no menus),
//! served to a program by `GET /api/v1/dossiers/{id}/receipt` and to a
//! signed-in person by `/dossiers/{id}/recepisse`, with the same need to
//! know as the dossier itself.

use ami_core::{Actor, Definition, Dossier, DossierId};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::{
    action_label, agency_label, error_page, format, programme_labels, verdict_label, SignedIn,
};
use crate::http::error::ApiError;
use crate::http::{assets, AppState, Caller};
use crate::store::StoredEvent;

/// An instant in the campaign's time zone: as a machine reads it (RFC 3339
/// with the offset) and as a person does, to the second.
pub struct Instant {
    pub iso: String,
    pub text: String,
}

impl Instant {
    fn new(def: &Definition, at: DateTime<Utc>) -> Instant {
        let tz = def.campaign().time_zone;
        Instant {
            iso: at
                .with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            text: ami_core::french_instant_seconds(at, tz),
        }
    }
}

/// What the dossier is, now.
pub struct Facts {
    pub id: String,
    pub reference: String,
    pub commune: String,
    pub code_insee: String,
    pub porteur: String,
    pub email: Option<String>,
    pub programmes: String,
    pub wave: u8,
    pub state_label: String,
    pub received: Instant,
    pub version: u64,
}

/// One event of the history, as the journal keeps it.
pub struct EventLine {
    pub seq: u64,
    pub action_label: String,
    pub person: String,
    pub agency_label: String,
    pub at: Instant,
    pub state_label: String,
    pub verdict_label: Option<String>,
    pub motivation: Option<String>,
    pub comment: Option<String>,
    pub digest: String,
    /// Its place in the global chain, once sealed.
    pub global_seq: Option<i64>,
}

/// One file received for a pièce.
pub struct FileLine {
    pub version: u32,
    pub filename: String,
    pub size: String,
    /// The exact number of bytes, when `size` rounds it.
    pub bytes: Option<String>,
    pub type_label: String,
    pub at: Instant,
    pub sha256: String,
    /// The event that recorded it.
    pub seq: u64,
}

pub struct PieceBlock {
    pub label: String,
    pub required: bool,
    /// Oldest first; empty when no file has arrived.
    pub files: Vec<FileLine>,
    /// The name declared at the deposit, when no file has arrived.
    pub declared: Option<String>,
}

/// Where the dossier's chain ends.
pub struct ChainEnd {
    pub seq: u64,
    pub digest: String,
    pub global_seq: Option<i64>,
    pub global_digest: Option<String>,
}

#[derive(Template)]
#[template(path = "recepisse.html")]
struct ReceiptPage {
    d: Facts,
    events: Vec<EventLine>,
    pieces: Vec<PieceBlock>,
    last: ChainEnd,
    produced_at: Instant,
    produced_by: String,
}

impl ReceiptPage {
    fn asset(&self, path: &str) -> String {
        assets::dsfr_url(path)
    }

    fn own_asset(&self, file: &str) -> String {
        assets::own_url(file)
    }
}

fn facts(def: &Definition, d: &Dossier) -> Facts {
    Facts {
        id: d.id.to_string(),
        reference: d.reference.to_string(),
        commune: d.commune.to_string(),
        code_insee: d.code_insee.to_string(),
        porteur: d.porteur.nom.to_string(),
        email: d.porteur.email.as_deref().map(str::to_string),
        programmes: programme_labels(def, d),
        wave: d.wave,
        state_label: def.state_label(&d.state).to_string(),
        received: Instant::new(def, d.received_at),
        version: d.version,
    }
}

fn event_line(def: &Definition, s: &StoredEvent) -> EventLine {
    let e = &s.event;
    EventLine {
        seq: e.seq,
        action_label: action_label(def, &e.action),
        person: e.actor.name.to_string(),
        agency_label: agency_label(def, &e.actor.agency),
        at: Instant::new(def, e.at),
        state_label: def.state_label(&e.to).to_string(),
        verdict_label: e.verdict.as_ref().map(|v| verdict_label(def, v)),
        motivation: e.motivation.as_deref().map(str::to_string),
        comment: e.comment.as_deref().map(str::to_string),
        digest: s.digest.clone(),
        global_seq: s.global_seq,
    }
}

fn pieces(def: &Definition, d: &Dossier) -> Vec<PieceBlock> {
    def.pieces()
        .iter()
        .map(|p| {
            let files: Vec<FileLine> = d
                .versions(&p.id)
                .map(|f| FileLine {
                    version: f.version,
                    filename: f.filename.to_string(),
                    size: format::size(f.size),
                    bytes: (f.size >= 1000)
                        .then(|| format::thousands(i64::try_from(f.size).unwrap_or(i64::MAX))),
                    type_label: ami_core::FILE_TYPES
                        .iter()
                        .find(|t| t.media_type == f.media_type)
                        .map_or_else(|| f.media_type.to_string(), |t| t.label.to_string()),
                    at: Instant::new(def, f.received_at),
                    sha256: f.sha256.to_string(),
                    seq: f.seq,
                })
                .collect();
            PieceBlock {
                label: p.label.clone(),
                required: p.required,
                declared: d
                    .pieces
                    .iter()
                    .find(|x| x.kind == p.id && files.is_empty())
                    .map(|x| x.filename.to_string()),
                files,
            }
        })
        .collect()
}

/// The receipt of dossier `id` as `actor` may read it: the page, or 404
/// for a dossier outside their programmes, as for an unknown one.
pub(crate) async fn render_receipt(
    state: &AppState,
    actor: &Actor,
    id: DossierId,
) -> Result<String, ApiError> {
    let def = &state.definition;
    let caller = Caller {
        actor: actor.clone(),
    };
    let d = crate::http::dossiers::readable_dossier(state, &caller, id).await?;
    let history = state.store.history(id).await?;
    let Some(last) = history.last() else {
        return Err(ApiError::dossier_not_found());
    };
    let page = ReceiptPage {
        d: facts(def, &d),
        events: history.iter().map(|s| event_line(def, s)).collect(),
        pieces: pieces(def, &d),
        last: ChainEnd {
            seq: last.event.seq,
            digest: last.digest.clone(),
            global_seq: last.global_seq,
            global_digest: last.global_digest.clone(),
        },
        produced_at: Instant::new(def, state.now()),
        produced_by: format!("{} ({})", actor.name, agency_label(def, &actor.agency)),
    };
    page.render()
        .map_err(|e| ApiError::Internal(format!("receipt template: {e}")))
}

/// `GET /dossiers/{id}/recepisse`: the receipt, for a signed-in person.
pub async fn page(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let layout = || signed.layout(&state, "");
    let Ok(id) = Uuid::parse_str(&id) else {
        return error_page(Some(layout()), ApiError::dossier_not_found());
    };
    match render_receipt(&state, &signed.actor, DossierId(id)).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => error_page(Some(layout()), e),
    }
}
