//! `/arrivals`: the messages received in the AMI's mailbox (« courriers
//! arrivés »), for the DAR: list, read (with the guesses of `ami-mail`),
//! download the raw message and its attachments, and handle each once: a
//! new dossier, a new version of a pièce of a dossier, or set aside.
//!
//! A dossier or a pièce made from an arrival goes through the same path as
//! `POST /dossiers` and `PUT /dossiers/{id}/pieces/{kind}` (same checks,
//! same transition), the arrival marked `traite` in the event's
//! transaction; the Idempotency-Key header works as on those routes.

use ami_core::text::nfc;
use ami_core::{DossierId, Piece};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::dossiers::{check_text, deposit_from, readable_dossier, run};
use super::dossiers::{FromArrival, Submission};
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, QueryPairs};
use super::pieces::{attach_action, check_type, content_disposition, files_error, piece_def};
use super::views::{NewDossierBody, PorteurBody};
use super::{AppState, Caller, Credentials};
use crate::files::{FilesError, HEAD_LEN};
use crate::store::{
    ArrivalCursor, ArrivalFilter, ArrivalRecord, ArrivalState, Content, Handling, Order, Principal,
};

/// A file attached to a received message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArrivalAttachmentView {
    pub filename: String,
    /// As the message declares it (`application/pdf`).
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
}

/// What the DAR did with an arrival.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandlingView {
    /// `depot` (it became a dossier), `rattachement` (a new version of a
    /// pièce) or `ecarte` (set aside).
    #[schema(value_type = String)]
    pub how: Handling,
    /// Who did it (their identifier and name), and when.
    pub by: Option<String>,
    pub by_name: Option<String>,
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why it was set aside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub motivation: Option<String>,
    /// The dossier it became or joined, and the event that did it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dossier_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_seq: Option<u64>,
}

/// A received message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArrivalView {
    pub id: Uuid,
    /// Its Message-ID, without `<>`; null when it has none.
    pub message_id: Option<String>,
    /// The sender's address (empty for a message in quarantine).
    pub from: String,
    pub subject: String,
    /// When the AMI's mailbox received it (its topmost `Received:` header,
    /// else its `Date:`); the import's instant for a message in quarantine.
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// The wave of `received_at`; null outside the campaign.
    pub wave: Option<u8>,
    /// `nouveau`, `quarantaine`, `traite` or `ecarte`.
    #[schema(value_type = String)]
    pub state: ArrivalState,
    pub attachments: Vec<ArrivalAttachmentView>,
    /// Why it could not be read (quarantine only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_reason: Option<String>,
    /// Once handled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handling: Option<HandlingView>,
}

impl From<&ArrivalRecord> for ArrivalView {
    fn from(a: &ArrivalRecord) -> Self {
        ArrivalView {
            id: a.id,
            message_id: a.message_id.clone(),
            from: a.sender.clone(),
            subject: a.subject.clone(),
            received_at: a.received_at,
            wave: a.wave,
            state: a.state,
            attachments: a
                .attachments
                .iter()
                .map(|f| ArrivalAttachmentView {
                    filename: f.filename.clone(),
                    media_type: f.media_type.clone(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                })
                .collect(),
            quarantine_reason: a.quarantine_reason.clone(),
            handling: a.handling.map(|how| HandlingView {
                how,
                by: a.handled_by.clone(),
                by_name: a.handled_by_name.clone(),
                at: a.handled_at,
                motivation: a.motivation.clone(),
                dossier_id: a.dossier_id.map(|d| d.0),
                event_seq: a.event_seq,
            }),
        }
    }
}

/// A page of arrivals.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArrivalPage {
    pub items: Vec<ArrivalView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A commune proposed for an arrival.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommuneGuessView {
    pub code_insee: String,
    pub nom: String,
}

/// Proposals for the agent, never decisions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GuessesView {
    /// The index in `attachments` proposed as the budget prévisionnel.
    pub budget_previsionnel: Option<usize>,
    /// The index in `attachments` proposed as the dossier de candidature.
    pub dossier_candidature: Option<usize>,
    /// The commune that probably sends it.
    pub commune: Option<CommuneGuessView>,
    /// The reference of an existing dossier the subject names.
    pub reference: Option<String>,
}

/// A received message, with its text and the guesses.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArrivalDetail {
    #[serde(flatten)]
    pub arrival: ArrivalView,
    /// The sender's display name, when the message gives one.
    pub from_name: Option<String>,
    /// The message's text (forwarded messages' under « Message transféré »).
    pub text: String,
    /// Null for a message in quarantine.
    pub guesses: Option<GuessesView>,
}

/// A pièce of the new dossier, taken from an attachment.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArrivalPieceBody {
    /// `dossier_candidature` or `budget_previsionnel`.
    pub kind: String,
    /// The index of the attachment in the arrival's `attachments`.
    #[serde(deserialize_with = "super::integral::unsigned")]
    pub attachment: usize,
}

/// Body of `POST /arrivals/{id}/dossier`: a deposit's, without
/// `received_at` (the arrival's), the pièces chosen among the attachments.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArrivalDossierBody {
    pub commune: String,
    /// INSEE code of the commune, 5 characters (2A/2B for Corsica).
    pub code_insee: String,
    pub porteur: PorteurBody,
    /// `acv`, `ti` or both.
    pub programmes: Vec<String>,
    #[serde(default)]
    pub pieces: Vec<ArrivalPieceBody>,
    /// As for a deposit: a second project of a commune that has one.
    #[serde(default)]
    pub doublon_confirme: bool,
    /// A note for the journal.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Body of `POST /arrivals/{id}/attach`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArrivalAttachBody {
    pub dossier_id: Uuid,
    /// The dossier's version as last read.
    #[serde(deserialize_with = "super::integral::unsigned")]
    pub expected_version: u64,
    /// The pièce that gets a new version.
    pub kind: String,
    /// The index of the attachment in the arrival's `attachments`.
    #[serde(deserialize_with = "super::integral::unsigned")]
    pub attachment: usize,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Body of `POST /arrivals/{id}/set-aside`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAsideBody {
    /// Why it is set aside (required).
    pub motivation: String,
}

/// The caller, if of the agency that deposits (the DAR); 403 otherwise.
pub(crate) fn dar_only(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let def = &state.definition;
    let depositor = def
        .creation_actions()
        .next()
        .ok_or_else(|| ApiError::Internal("no creation action".into()))?;
    if caller.actor.agency != depositor.agency {
        let label = def
            .agencies()
            .iter()
            .find(|a| a.id == depositor.agency)
            .map_or(depositor.agency.as_str(), |a| a.label.as_str());
        return Err(ApiError::Forbidden {
            code: "wrong_agency",
            detail: format!(
                "Les courriers arrivés sont traités par l'agence qui dépose les dossiers ({label}) : votre agence n'y a pas accès."
            ),
        });
    }
    Ok(())
}

/// The arrival's id in the path.
fn arrival_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| {
        ApiError::bad_field(
            "id",
            format!("« {raw} » n'est pas un identifiant de courrier arrivé (UUID attendu)."),
        )
    })
}

fn arrival_not_found() -> ApiError {
    ApiError::NotFound {
        detail: "Aucun courrier arrivé ne porte cet identifiant.".into(),
    }
}

async fn load(state: &AppState, id: Uuid) -> Result<ArrivalRecord, ApiError> {
    state.store.arrival(id).await?.ok_or_else(arrival_not_found)
}

/// The caller admitted from a token, checked to be of the DAR.
async fn admit(state: &AppState, credentials: &Credentials) -> Result<Caller, ApiError> {
    let actor = credentials
        .0
        .admit(
            &state.definition,
            state.store.find_token(credentials.0.id).await?,
        )
        .map_err(ApiError::unauthorized)?;
    let caller = Caller { actor };
    dar_only(state, &caller)?;
    Ok(caller)
}

/// List received messages
///
/// Received messages in reception order, by pages.
///
/// Filter by `state` (`nouveau` to handle, `quarantaine` could not be read).
/// DAR only. Follow `next_cursor` for the next page.
#[utoipa::path(get, path = "/arrivals", operation_id = "listArrivals", tag = "arrivals",
    params(
        ("state" = Option<String>, Query, description = "`nouveau`, `quarantaine`, `traite` or `ecarte`"),
        ("limit" = Option<u32>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = ArrivalPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Json<ArrivalPage>, ApiError> {
    dar_only(&state, &caller)?;
    let mut filter = ArrivalFilter {
        limit: 50,
        ..ArrivalFilter::default()
    };
    if let Some(s) = query.get("state") {
        filter.state = Some(ArrivalState::read("state", s).map_err(|_| {
            ApiError::bad_field(
                "state",
                format!("Valeur inconnue « {s} » pour « state » ; valeurs possibles : nouveau, quarantaine, traite, ecarte."),
            )
        })?);
    }
    if let Some(l) = query.get("limit") {
        filter.limit = l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=super::contract::MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| ApiError::bad_field("limit", "La limite est un entier de 1 à 500."))?;
    }
    if let Some(c) = query.get("cursor") {
        filter.cursor = Some(
            ArrivalCursor::decode(c).ok_or_else(|| super::contract::cursor_refusal("cursor", c))?,
        );
    }
    let page = state.store.arrivals(&filter).await?;
    Ok(Json(ArrivalPage {
        items: page.items.iter().map(ArrivalView::from).collect(),
        next_cursor: page.next,
    }))
}

/// Read a received message
///
/// A received message, with its text and what `ami` guesses of it.
///
/// Its text and attachments, and `guesses`: the attachment that looks like
/// the budget or the dossier, the commune, a dossier reference. Guesses are
/// proposals, never decisions. DAR only.
#[utoipa::path(get, path = "/arrivals/{id}", operation_id = "getArrival", tag = "arrivals",
    params(("id" = Uuid, Path, description = "Arrival id")),
    responses((status = 200, body = ArrivalDetail), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ArrivalDetail>, ApiError> {
    dar_only(&state, &caller)?;
    let arrival = load(&state, arrival_id(&id)?).await?;
    let guesses = if arrival.state == ArrivalState::Quarantaine {
        None
    } else {
        // The guesses read the message again from its raw bytes: they
        // change as `ami-mail` learns, and the message stays as received.
        let raw = read_all(&state, &arrival.raw_sha256, arrival.raw_size).await?;
        ami_mail::parse(&raw).ok().map(|parsed| {
            let g = ami_mail::guess(&parsed);
            GuessesView {
                budget_previsionnel: g.budget,
                dossier_candidature: g.dossier,
                commune: g.commune.map(|c| CommuneGuessView {
                    code_insee: c.code_insee,
                    nom: c.nom,
                }),
                reference: g.reference,
            }
        })
    };
    Ok(Json(ArrivalDetail {
        arrival: ArrivalView::from(&arrival),
        from_name: arrival.sender_name.clone(),
        text: arrival.text.clone(),
        guesses,
    }))
}

/// A stored file read whole (a message's raw bytes: small enough).
async fn read_all(state: &AppState, sha256: &str, size: u64) -> Result<Vec<u8>, ApiError> {
    if size == 0 {
        return Ok(Vec::new());
    }
    let found = state
        .files
        .get(sha256, None)
        .await
        .map_err(|e| missing(e, sha256))?;
    let bytes = found
        .bytes()
        .await
        .map_err(|e| files_error(FilesError::Storage(e), "file"))?;
    Ok(bytes.to_vec())
}

fn missing(e: FilesError, sha256: &str) -> ApiError {
    if let FilesError::Missing(_) = e {
        tracing::error!(%sha256, "an arrival's file is missing from the file storage");
    }
    files_error(e, "file")
}

/// A stored file as a download.
async fn download(
    state: &AppState,
    sha256: &str,
    size: u64,
    media_type: &str,
    filename: &str,
) -> Result<Response, ApiError> {
    let mut headers = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, media_type);
    set(header::CONTENT_LENGTH, &size.to_string());
    set(header::ETAG, &format!("\"{sha256}\""));
    set(header::CACHE_CONTROL, "private, no-cache");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::CONTENT_SECURITY_POLICY, "sandbox");
    headers.insert(header::CONTENT_DISPOSITION, content_disposition(filename));
    if size == 0 {
        return Ok((StatusCode::OK, headers, Body::empty()).into_response());
    }
    let found = state
        .files
        .get(sha256, None)
        .await
        .map_err(|e| missing(e, sha256))?;
    let body = Body::from_stream(found.into_stream().map_err(std::io::Error::other));
    Ok((StatusCode::OK, headers, body).into_response())
}

/// Download a received message as received
///
/// The message as received, byte for byte.
///
/// The `.eml` file, `message/rfc822`, exactly the bytes the mailbox gave. DAR
/// only.
#[utoipa::path(get, path = "/arrivals/{id}/raw", operation_id = "getArrivalMessage", tag = "arrivals",
    params(("id" = Uuid, Path, description = "Arrival id")),
    responses((status = 200, description = "The raw message", content_type = "message/rfc822", body = Vec<u8>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn raw(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    dar_only(&state, &caller)?;
    let a = load(&state, arrival_id(&id)?).await?;
    download(
        &state,
        &a.raw_sha256,
        a.raw_size,
        "message/rfc822",
        &format!("courrier-{}.eml", a.id),
    )
    .await
}

/// Download an attachment of a received message
///
/// One attached file (`n` from 0, in the order of `attachments`).
#[utoipa::path(get, path = "/arrivals/{id}/attachments/{n}", operation_id = "getArrivalAttachment", tag = "arrivals",
    params(("id" = Uuid, Path, description = "Arrival id"),
        ("n" = usize, Path, description = "Index in `attachments`, from 0")),
    responses((status = 200, description = "The file, with its declared type and name", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn attachment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    dar_only(&state, &caller)?;
    let a = load(&state, arrival_id(&id)?).await?;
    let n: usize = n.parse().map_err(|_| {
        ApiError::bad_field(
            "n",
            format!("« {n} » n'est pas un numéro de pièce jointe (un entier à partir de 0)."),
        )
    })?;
    let file = a.attachments.get(n).ok_or_else(|| ApiError::NotFound {
        detail: format!(
            "Ce courrier n'a pas de pièce jointe n° {n} (il en a {}, numérotées à partir de 0).",
            a.attachments.len()
        ),
    })?;
    download(
        &state,
        &file.sha256,
        file.size,
        &file.media_type,
        &file.filename,
    )
    .await
}

/// An attachment as a pièce of `kind`: its type read from its first bytes
/// and checked as an upload's, its name made safe.
pub(crate) async fn attachment_as_piece(
    state: &AppState,
    arrival: &ArrivalRecord,
    kind: &str,
    index: usize,
    prefix: &str,
) -> Result<Piece, ApiError> {
    let piece = piece_def(state, kind).map_err(|e| rename_field(e, &format!("{prefix}kind")))?;
    let field = format!("{prefix}attachment");
    let file = arrival.attachments.get(index).ok_or_else(|| {
        ApiError::invalid_field(
            &field,
            format!(
                "Ce courrier n'a pas de pièce jointe n° {index} (il en a {}, numérotées à partir de 0).",
                arrival.attachments.len()
            ),
        )
    })?;
    if file.size == 0 {
        return Err(ApiError::Unprocessable {
            code: "empty_file".into(),
            field: Some(field),
            detail: format!("La pièce jointe « {} » est vide.", file.filename),
        });
    }
    if file.size > state.max_piece_size {
        return Err(files_error(
            FilesError::TooLarge {
                limit: state.max_piece_size,
            },
            &field,
        ));
    }
    let head_len = file.size.min(HEAD_LEN as u64);
    let head = state
        .files
        .get(&file.sha256, Some(0..head_len))
        .await
        .map_err(|e| missing(e, &file.sha256))?
        .bytes()
        .await
        .map_err(|e| files_error(FilesError::Storage(e), &field))?;
    let file_type = check_type(piece, &head, &file.filename, &field)?;
    Ok(Piece {
        kind: piece.id.clone(),
        filename: super::pieces::safe_filename(Some(&file.filename), &piece.id, file_type).into(),
        size: Some(file.size),
        sha256: Some(file.sha256.as_str().into()),
        media_type: Some(file_type.media_type.to_string().into()),
    })
}

/// The same problem, about another field.
fn rename_field(e: ApiError, field: &str) -> ApiError {
    match e {
        ApiError::Unprocessable { code, detail, .. } => ApiError::Unprocessable {
            code,
            field: Some(field.into()),
            detail,
        },
        other => other,
    }
}

/// Create a dossier from a received message
///
/// Create the dossier this message brings (DAR): the deposit's checks and
/// transition, `received_at` the arrival's, the pièces from its
/// attachments; the arrival is marked `traite` with it.
#[utoipa::path(post, path = "/arrivals/{id}/dossier", operation_id = "createDossierFromArrival", tag = "arrivals",
    params(("id" = Uuid, Path, description = "Arrival id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays give the first answer")),
    request_body(content = ArrivalDossierBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Dossier created", body = super::views::DossierView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "The arrival was handled already, or is in quarantine", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_dossier(
    State(state): State<AppState>,
    credentials: Credentials,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body, raw): ApiJson<ArrivalDossierBody>,
) -> Result<Response, ApiError> {
    let id = arrival_id(&id)?;
    admit(&state, &credentials).await?;
    check_text("comment", body.comment.as_deref())?;
    let arrival = load(&state, id).await?;
    let mut files: Vec<Piece> = Vec::new();
    for (i, p) in body.pieces.iter().enumerate() {
        let field = format!("pieces[{i}]");
        if files.iter().any(|f| f.kind == p.kind) {
            return Err(ApiError::invalid_field(
                &format!("{field}.kind"),
                format!(
                    "Deux pièces jointes pour « {} » : choisissez-en une.",
                    p.kind
                ),
            ));
        }
        files.push(
            attachment_as_piece(
                &state,
                &arrival,
                &p.kind,
                p.attachment,
                &format!("{field}."),
            )
            .await?,
        );
    }
    let deposit = NewDossierBody {
        commune: body.commune,
        code_insee: body.code_insee,
        porteur: body.porteur,
        programmes: body.programmes,
        received_at: Some(arrival.received_at),
        pieces: Vec::new(),
        doublon_confirme: body.doublon_confirme,
    };
    deposit_from(
        &state,
        Principal::Token(credentials.0),
        &headers,
        deposit,
        &super::dossiers::canonical_json(&raw),
        files,
        Some(FromArrival {
            id,
            comment: body.comment.filter(|c| !c.trim().is_empty()),
            request_line: format!("POST /arrivals/{id}/dossier"),
        }),
    )
    .await
}

/// Attach a received file to a dossier
///
/// Attach one of the message's files to a dossier as a new version of a
/// pièce (DAR), as `PUT /dossiers/{id}/pieces/{kind}` would; the arrival
/// is marked `traite` with it.
#[utoipa::path(post, path = "/arrivals/{id}/attach", operation_id = "attachArrival", tag = "arrivals",
    params(("id" = Uuid, Path, description = "Arrival id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays give the first answer")),
    request_body(content = ArrivalAttachBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The dossier with its new pièce version", body = super::views::DossierView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "A stale `expected_version`, or the arrival handled already", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn attach(
    State(state): State<AppState>,
    credentials: Credentials,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body, raw): ApiJson<ArrivalAttachBody>,
) -> Result<Response, ApiError> {
    let id = arrival_id(&id)?;
    let caller = admit(&state, &credentials).await?;
    check_text("comment", body.comment.as_deref())?;
    let arrival = load(&state, id).await?;
    let dossier = readable_dossier(&state, &caller, DossierId(body.dossier_id)).await?;
    let action = attach_action(&state)?;
    let piece = attachment_as_piece(&state, &arrival, &body.kind, body.attachment, "").await?;
    let command = Order {
        action: action.id.as_str().into(),
        comment: body
            .comment
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| nfc(c).into()),
        content: Content::Piece(piece),
        ..Order::default()
    };
    let fingerprint = super::dossiers::canonical_json(&raw);
    let submission = Submission {
        dossier_id: dossier.id,
        expected_version: Some(body.expected_version),
        command,
        request_line: format!("POST /arrivals/{id}/attach"),
        body: &fingerprint,
        status: StatusCode::OK,
        arrival: Some(id),
    };
    run(
        &state,
        Principal::Token(credentials.0),
        &headers,
        submission,
    )
    .await
}

/// Set a received message aside
///
/// Set the message aside (DAR), with a motivation: it is no dossier's.
/// Once only: an arrival handled already is refused (409).
#[utoipa::path(post, path = "/arrivals/{id}/set-aside", operation_id = "setArrivalAside", tag = "arrivals",
    params(("id" = Uuid, Path, description = "Arrival id")),
    request_body(content = SetAsideBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The arrival, set aside", body = ArrivalView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "The arrival was handled already", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_aside(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body, _): ApiJson<SetAsideBody>,
) -> Result<Json<ArrivalView>, ApiError> {
    dar_only(&state, &caller)?;
    let id = arrival_id(&id)?;
    if body.motivation.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "motivation",
            "Le champ « motivation » est obligatoire : dites pourquoi ce courrier est écarté.",
        ));
    }
    check_text("motivation", Some(&body.motivation))?;
    let motivation = nfc(body.motivation.trim());
    let record = state
        .store
        .set_arrival_aside(id, &caller.actor, &motivation, state.now())
        .await?;
    Ok(Json(ArrivalView::from(&record)))
}
