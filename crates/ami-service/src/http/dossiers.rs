//! `/dossiers`: deposit, read, list, transitions, pièces and history.

use ami_core::text::{has_hidden_chars, nfc};
use ami_core::{Command, DossierId, Effect, NewDossier, Piece, PiecesRequested, Porteur};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, DossierPath, QueryPairs};
use super::views::*;
use super::{AppState, Caller, Credentials};
use crate::store::{
    DossierFilter, Executed, IdempotencyKey, ListCursor, Principal, TransitionRequest,
};

const MAX_LINE: usize = 300;
const MAX_TEXT: usize = 10_000;

/// Refuses what a one-line field must not hold: nothing, too much, or
/// control characters (NUL among them, which PostgreSQL cannot store).
fn check_line(field: &str, value: &str, required: bool) -> Result<(), ApiError> {
    if required && value.trim().is_empty() {
        return Err(ApiError::invalid_field(
            field,
            format!("Le champ « {field} » est obligatoire."),
        ));
    }
    if value.chars().count() > MAX_LINE {
        return Err(ApiError::invalid_field(
            field,
            format!("Le champ « {field} » dépasse {MAX_LINE} caractères."),
        ));
    }
    if has_hidden_chars(value) {
        return Err(ApiError::invalid_field(
            field,
            format!("Le champ « {field} » contient des caractères de contrôle ou invisibles (espace sans largeur, inversion du sens du texte…)."),
        ));
    }
    Ok(())
}

/// Free text (motivation, comment): line breaks and tabs allowed.
fn check_text(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    let Some(value) = value else { return Ok(()) };
    if value.chars().count() > MAX_TEXT {
        return Err(ApiError::invalid_field(
            field,
            format!("Le champ « {field} » dépasse {MAX_TEXT} caractères."),
        ));
    }
    if value.split(['\n', '\r', '\t']).any(has_hidden_chars) {
        return Err(ApiError::invalid_field(
            field,
            format!("Le champ « {field} » contient des caractères de contrôle ou invisibles (espace sans largeur, inversion du sens du texte…)."),
        ));
    }
    Ok(())
}

/// The largest size a client in any language reads back exactly: JSON
/// numbers are IEEE doubles in JavaScript (2^53 − 1), and the size is part
/// of the event whose digest clients recompute.
const MAX_SIZE: u64 = (1 << 53) - 1;

fn check_piece(
    field: &str,
    filename: &str,
    size: Option<u64>,
    sha256: Option<&str>,
) -> Result<(), ApiError> {
    check_line(&format!("{field}.filename"), filename, true)?;
    if size.is_some_and(|n| n > MAX_SIZE) {
        return Err(ApiError::invalid_field(
            &format!("{field}.size"),
            format!("La taille d'une pièce est un nombre d'octets d'au plus {MAX_SIZE}."),
        ));
    }
    if let Some(h) = sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::invalid_field(
                &format!("{field}.sha256"),
                "L'empreinte sha256 doit compter 64 caractères hexadécimaux.",
            ));
        }
    }
    Ok(())
}

/// The Idempotency-Key header with a hash of what the request asks: its
/// method and path, and its body's meaning (the parsed JSON in canonical
/// form, so that whitespace or key order do not make another request).
fn idempotency(headers: &HeaderMap, what: &[&[u8]]) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            ApiError::bad_field(
                "Idempotency-Key",
                "L'en-tête Idempotency-Key doit être un texte ASCII de 1 à 200 caractères.",
            )
        })?;
    let mut h = Sha256::new();
    for part in what {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    Ok(Some(IdempotencyKey {
        key: key.to_string(),
        request_sha256: hex::encode(h.finalize()),
    }))
}

fn piece_ids(def: &ami_core::Definition) -> String {
    let known: Vec<&str> = def.pieces.iter().map(|p| p.id.as_str()).collect();
    known.join(", ")
}

/// A JSON body in RFC 8785 canonical form; the bytes as sent if they are
/// not JSON (they were parsed before, so this does not happen).
fn canonical_json(body: &[u8]) -> Vec<u8> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_jcs::to_vec(&v).ok())
        .unwrap_or_else(|| body.to_vec())
}

/// The answer to a transition: the dossier, already rendered as JSON (the
/// same text is kept for replays of its idempotency key).
fn answer(status: StatusCode, body: String) -> Response {
    #[derive(serde::Deserialize)]
    struct Created {
        id: Uuid,
    }
    let location = (status == StatusCode::CREATED)
        .then(|| serde_json::from_str::<Created>(&body).ok())
        .flatten()
        .map(|c| format!("/api/v1/dossiers/{}", c.id));
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, loc);
    }
    response
}

fn render(def: &ami_core::Definition, d: &ami_core::Dossier, actor: &ami_core::Actor) -> String {
    serde_json::to_string(&DossierView::new(def, d, actor)).unwrap_or_default()
}

/// A command as received over HTTP, ready to run.
struct Submission<'a> {
    dossier_id: DossierId,
    expected_version: Option<u64>,
    command: Command,
    /// Method and path, hashed with the body for the idempotency check.
    request_line: String,
    body: &'a [u8],
    /// Status of a successful answer.
    status: StatusCode,
}

/// Runs a command and answers with the dossier as the caller now sees it.
async fn run(
    state: &AppState,
    credentials: Credentials,
    headers: &HeaderMap,
    submission: Submission<'_>,
) -> Result<Response, ApiError> {
    let def = &state.definition;
    let respond = |d: &ami_core::Dossier, actor: &ami_core::Actor| render(def, d, actor);
    let req = TransitionRequest {
        definition: def,
        dossier_id: submission.dossier_id,
        expected_version: submission.expected_version,
        command: submission.command,
        principal: Principal::Token(credentials.0),
        now: Utc::now(),
        idempotency: idempotency(
            headers,
            &[
                submission.request_line.as_bytes(),
                &canonical_json(submission.body),
            ],
        )?,
        respond: &respond,
    };
    match state.store.execute(&req).await? {
        Executed::Applied { body, .. } => Ok(answer(submission.status, body)),
        Executed::Replayed { status, body } => Ok(answer(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
        )),
    }
}

/// Deposit a dossier (DAR).
#[utoipa::path(post, path = "/dossiers", tag = "dossiers",
    request_body = NewDossierBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays give the first answer")),
    responses(
        (status = 201, description = "Dossier created", body = DossierView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    credentials: Credentials,
    headers: HeaderMap,
    ApiJson(body, raw): ApiJson<NewDossierBody>,
) -> Result<Response, ApiError> {
    let def = &state.definition;
    let action = def
        .creation_actions()
        .next()
        .ok_or_else(|| ApiError::Internal("no creation action".into()))?;
    check_line("commune", &body.commune, true)?;
    check_line("porteur.nom", &body.porteur.nom, true)?;
    if let Some(email) = &body.porteur.email {
        check_line("porteur.email", email, false)?;
        if !email.contains('@') {
            return Err(ApiError::invalid_field(
                "porteur.email",
                "Adresse électronique invalide.",
            ));
        }
    }
    let insee = body.code_insee.as_str();
    if insee.len() != 5
        || !insee
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'A' || b == b'B')
    {
        return Err(ApiError::invalid_field(
            "code_insee",
            "Le code INSEE compte 5 caractères (chiffres, ou 2A/2B pour la Corse).",
        ));
    }
    for (i, p) in body.pieces.iter().enumerate() {
        check_piece(
            &format!("pieces[{i}]"),
            &p.filename,
            p.size,
            p.sha256.as_deref(),
        )?;
        if !def.has_piece(&p.kind) {
            return Err(ApiError::invalid_field(
                &format!("pieces[{i}].kind"),
                format!("Pièce inconnue « {} ».", p.kind),
            ));
        }
    }
    let now = Utc::now();
    let id = DossierId(Uuid::now_v7());
    let command = Command {
        action: action.id.clone(),
        new_dossier: Some(Box::new(NewDossier {
            id,
            number: 0,
            commune: nfc(body.commune.trim()),
            code_insee: body.code_insee.clone(),
            porteur: Porteur {
                nom: nfc(body.porteur.nom.trim()),
                email: body.porteur.email.as_deref().map(|e| nfc(e.trim())),
            },
            programmes: body.programmes.iter().map(|p| p.as_str().into()).collect(),
            received_at: body.received_at.unwrap_or(now),
            pieces: body
                .pieces
                .iter()
                .map(|p| Piece {
                    kind: p.kind.as_str().into(),
                    filename: nfc(&p.filename),
                    size: p.size,
                    sha256: p.sha256.clone(),
                })
                .collect(),
        })),
        doublon_confirme: body.doublon_confirme,
        ..Command::default()
    };
    let submission = Submission {
        dossier_id: id,
        expected_version: None,
        command,
        request_line: "POST /dossiers".into(),
        body: &raw,
        status: StatusCode::CREATED,
    };
    run(&state, credentials, &headers, submission).await
}

/// A dossier, with the actions the caller may take now.
#[utoipa::path(get, path = "/dossiers/{id}", tag = "dossiers",
    params(("id" = Uuid, Path, description = "Dossier id")),
    responses((status = 200, body = DossierView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    DossierPath(id): DossierPath,
) -> Result<Json<DossierView>, ApiError> {
    let d = state
        .store
        .get_dossier(DossierId(id))
        .await?
        .ok_or_else(ApiError::dossier_not_found)?;
    Ok(Json(DossierView::new(&state.definition, &d, &caller.actor)))
}

/// Dossiers in reception order, filtered, by pages.
#[utoipa::path(get, path = "/dossiers", tag = "dossiers",
    params(
        ("state" = Option<String>, Query, description = "State ids, one or several separated by commas, e.g. `laureat,refuse`"),
        ("wave" = Option<String>, Query, description = "Wave numbers, one or several separated by commas, e.g. `1` or `1,3`"),
        ("programme" = Option<String>, Query, description = "`acv`, `ti` or `acv,ti`"),
        ("awaiting" = Option<String>, Query, description = "Dossiers waiting on these agencies (`dar`, `acv`, `ti`) or on the town (`porteur`), separated by commas"),
        ("q" = Option<String>, Query, description = "Searches commune, porteur, reference and INSEE code, ignoring case and accents"),
        ("limit" = Option<u32>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = DossierPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Json<DossierPage>, ApiError> {
    query.check(&[
        "state",
        "wave",
        "programme",
        "awaiting",
        "q",
        "limit",
        "cursor",
    ])?;
    let def = &state.definition;
    let mut filter = DossierFilter {
        limit: 50,
        ..DossierFilter::default()
    };
    let states: Vec<&str> = def.states.iter().map(|s| s.id.as_str()).collect();
    filter.states = query.list("state", &states)?;
    let waves: Vec<String> = def
        .campaign
        .waves
        .iter()
        .map(|w| w.number.to_string())
        .collect();
    let waves: Vec<&str> = waves.iter().map(String::as_str).collect();
    filter.waves = query
        .list("wave", &waves)?
        .iter()
        .filter_map(|w| w.parse().ok())
        .collect();
    let programmes: Vec<&str> = def.programmes.iter().map(|p| p.id.as_str()).collect();
    filter.programmes = query.list("programme", &programmes)?;
    let mut awaitable: Vec<&str> = def.agencies.iter().map(|a| a.id.as_str()).collect();
    awaitable.push(ami_core::PORTEUR);
    filter.awaiting = query.list("awaiting", &awaitable)?;
    if let Some(q) = query.get("q") {
        if q.chars().count() > 200 || q.chars().any(char::is_control) {
            return Err(ApiError::bad_field(
                "q",
                "La recherche compte au plus 200 caractères, sans caractère de contrôle.",
            ));
        }
        if !q.trim().is_empty() {
            filter.q = Some(q.trim().to_string());
        }
    }
    if let Some(l) = query.get("limit") {
        filter.limit = l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::bad_field("limit", "La limite est un entier de 1 à 500."))?;
    }
    if let Some(c) = query.get("cursor") {
        filter.after = Some(ListCursor::decode(c).ok_or_else(|| {
            ApiError::bad_field(
                "cursor",
                "Curseur invalide : reprenez le next_cursor d'une page précédente.",
            )
        })?);
    }
    let page = state.store.list_dossiers(&filter).await?;
    Ok(Json(DossierPage {
        items: page
            .items
            .iter()
            .map(|d| DossierView::new(def, d, &caller.actor))
            .collect(),
        next_cursor: page.next,
    }))
}

/// Take an action on a dossier.
#[utoipa::path(post, path = "/dossiers/{id}/transitions", tag = "dossiers",
    params(("id" = Uuid, Path, description = "Dossier id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays give the first answer")),
    request_body = TransitionBody,
    responses((status = 200, body = DossierView),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, description = "The caller's agency or role may not take this action", body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "Stale expected_version", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "Not possible now; `code` says which rule", body = Problem),
        (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn transition(
    State(state): State<AppState>,
    credentials: Credentials,
    DossierPath(id): DossierPath,
    headers: HeaderMap,
    ApiJson(body, raw): ApiJson<TransitionBody>,
) -> Result<Response, ApiError> {
    check_text("motivation", body.motivation.as_deref())?;
    check_text("comment", body.comment.as_deref())?;
    let def = &state.definition;
    let effect = def.action(&body.action).map(|a| a.effect);
    if matches!(effect, Some(Effect::Create | Effect::AttachPiece)) {
        return Err(ApiError::invalid_field(
            "action",
            format!(
                "L'action « {} » ne passe pas par /transitions : déposez avec POST /dossiers, ajoutez une pièce avec PUT /dossiers/{{id}}/pieces/{{kind}}.",
                body.action
            ),
        ));
    }
    // A « demande de complément » names the pièces and the due date; no
    // other action takes them.
    let pieces_requested = match (effect, &body.pieces, body.due_on) {
        (Some(Effect::RequestPieces), Some(pieces), Some(due_on)) => {
            if pieces.is_empty() {
                return Err(ApiError::invalid_field(
                    "pieces",
                    "Indiquez au moins une pièce à demander.",
                ));
            }
            for (i, kind) in pieces.iter().enumerate() {
                if !def.has_piece(kind) {
                    return Err(ApiError::invalid_field(
                        &format!("pieces[{i}]"),
                        format!("Pièce inconnue « {kind} » ; pièces : {}.", piece_ids(def)),
                    ));
                }
            }
            Some(PiecesRequested {
                pieces: pieces.iter().map(|k| k.as_str().into()).collect(),
                due_on,
            })
        }
        (Some(Effect::RequestPieces), None, _) => {
            return Err(ApiError::invalid_field(
                "pieces",
                "Une demande de complément indique les pièces demandées (« pieces »).",
            ))
        }
        (Some(Effect::RequestPieces), _, None) => {
            return Err(ApiError::invalid_field(
                "due_on",
                "Une demande de complément indique sa date limite (« due_on », AAAA-MM-JJ).",
            ))
        }
        (_, Some(_), _) => {
            return Err(ApiError::invalid_field(
                "pieces",
                format!("L'action « {} » ne demande pas de pièces.", body.action),
            ))
        }
        (_, _, Some(_)) => {
            return Err(ApiError::invalid_field(
                "due_on",
                format!("L'action « {} » n'a pas de date limite.", body.action),
            ))
        }
        _ => None,
    };
    let command = Command {
        action: body.action.as_str().into(),
        verdict: body.verdict.as_deref().map(Into::into),
        motivation: body.motivation.as_deref().map(nfc),
        comment: body.comment.as_deref().map(nfc),
        pieces_requested,
        ..Command::default()
    };
    let submission = Submission {
        dossier_id: DossierId(id),
        expected_version: Some(body.expected_version),
        command,
        request_line: format!("POST /dossiers/{id}/transitions"),
        body: &raw,
        status: StatusCode::OK,
    };
    run(&state, credentials, &headers, submission).await
}

/// Record a pièce received after the dossier (DAR).
#[utoipa::path(put, path = "/dossiers/{id}/pieces/{kind}", tag = "dossiers",
    params(("id" = Uuid, Path, description = "Dossier id"),
        ("kind" = String, Path, description = "`dossier_candidature` or `budget_previsionnel`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays give the first answer")),
    request_body = PieceUpload,
    responses((status = 200, body = DossierView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_piece(
    State(state): State<AppState>,
    credentials: Credentials,
    DossierPath(id): DossierPath,
    path: axum::extract::Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body, raw): ApiJson<PieceUpload>,
) -> Result<Response, ApiError> {
    let kind = path.0 .1;
    let def = &state.definition;
    if !def.has_piece(&kind) {
        return Err(ApiError::invalid_field(
            "kind",
            format!("Pièce inconnue « {kind} » ; pièces : {}.", piece_ids(def)),
        ));
    }
    check_piece("piece", &body.filename, body.size, body.sha256.as_deref())?;
    check_text("comment", body.comment.as_deref())?;
    let action = def
        .actions
        .iter()
        .find(|a| a.effect == Effect::AttachPiece)
        .ok_or_else(|| {
            ApiError::invalid_field("kind", "Ce workflow n'accepte pas de pièce ajoutée.")
        })?;
    let command = Command {
        action: action.id.clone(),
        comment: body.comment.as_deref().map(nfc),
        piece: Some(Piece {
            kind: kind.as_str().into(),
            filename: nfc(&body.filename),
            size: body.size,
            sha256: body.sha256.clone(),
        }),
        ..Command::default()
    };
    let submission = Submission {
        dossier_id: DossierId(id),
        expected_version: body.expected_version,
        command,
        request_line: format!("PUT /dossiers/{id}/pieces/{kind}"),
        body: &raw,
        status: StatusCode::OK,
    };
    run(&state, credentials, &headers, submission).await
}

/// Every event of a dossier, in order, with its chained digest.
#[utoipa::path(get, path = "/dossiers/{id}/history", tag = "dossiers",
    params(("id" = Uuid, Path, description = "Dossier id")),
    responses((status = 200, body = History), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    _caller: Caller,
    DossierPath(id): DossierPath,
) -> Result<Json<History>, ApiError> {
    let events = state.store.history(DossierId(id)).await?;
    if events.is_empty() {
        return Err(ApiError::dossier_not_found());
    }
    Ok(Json(History {
        dossier_id: id,
        events: events.iter().map(HistoryItem::from).collect(),
    }))
}
