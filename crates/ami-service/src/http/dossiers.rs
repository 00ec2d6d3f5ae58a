//! `/dossiers`: deposit, read, list, transitions, pièces and history.

use ami_core::text::{has_hidden_chars, nfc};
use ami_core::{DossierId, Effect, Piece, PiecesRequested, Porteur};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, DossierPath, QueryPairs};
use super::pieces::{form_error, is_multipart, receive_piece};
use super::views::*;
use super::{AppState, Caller, Credentials};
use crate::store::{
    Content, DepositOrder, DossierFilter, Executed, IdempotencyKey, ListCursor, ListOrder, Order,
    Principal, TransitionRequest,
};

pub(crate) const MAX_LINE: usize = 300;
pub(crate) const MAX_TEXT: usize = 10_000;

/// Refuses what a one-line field must not hold: nothing, too much, or
/// control characters (NUL among them, which PostgreSQL cannot store).
pub(crate) fn check_line(field: &str, value: &str, required: bool) -> Result<(), ApiError> {
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
pub(crate) fn check_text(field: &str, value: Option<&str>) -> Result<(), ApiError> {
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
pub(crate) const MAX_SIZE: u64 = (1 << 53) - 1;

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
        .filter(|k| {
            (1..=super::contract::MAX_IDEMPOTENCY_KEY).contains(&k.len())
                && k.bytes().all(|b| (0x20..=0x7E).contains(&b))
        })
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
    let known: Vec<&str> = def.pieces().iter().map(|p| p.id.as_str()).collect();
    known.join(", ")
}

/// A JSON body in RFC 8785 canonical form; the bytes as sent if they are
/// not JSON (they were parsed before, so this does not happen).
pub(crate) fn canonical_json(body: &[u8]) -> Vec<u8> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_jcs::to_vec(&v).ok())
        .unwrap_or_else(|| body.to_vec())
}

/// The answer to a transition: the dossier, already rendered as JSON (the
/// same text is kept for replays of its idempotency key), and the address
/// of the dossier it `created`.
fn answer(status: StatusCode, body: String, created: Option<DossierId>) -> Response {
    let location = created.map(|id| format!("/api/v1/dossiers/{id}"));
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

fn render(
    def: &ami_core::Definition,
    d: &ami_core::Dossier,
    actor: &ami_core::Actor,
    now: chrono::DateTime<Utc>,
) -> String {
    serde_json::to_string(&DossierView::new(def, d, actor, now)).unwrap_or_default()
}

/// A command as received over HTTP, ready to run.
pub(crate) struct Submission<'a> {
    pub dossier_id: DossierId,
    pub expected_version: Option<u64>,
    pub command: Order,
    /// Method and path, hashed with the body for the idempotency check.
    pub request_line: String,
    pub body: &'a [u8],
    /// Status of a successful answer.
    pub status: StatusCode,
    /// The received message this command handles (a deposit or a pièce
    /// from an arrival): marked `traite` in the event's transaction.
    pub arrival: Option<Uuid>,
}

/// Runs a command and answers with the dossier as the caller now sees it.
pub(crate) async fn run(
    state: &AppState,
    principal: Principal,
    headers: &HeaderMap,
    submission: Submission<'_>,
) -> Result<Response, ApiError> {
    let def = &state.definition;
    let rendering = def.clone();
    let now = state.now();
    let respond: crate::store::Respond =
        std::sync::Arc::new(move |d: &ami_core::Dossier, actor: &ami_core::Actor| {
            render(&rendering, d, actor, now)
        });
    let req = TransitionRequest {
        definition: def.clone(),
        dossier_id: submission.dossier_id,
        expected_version: submission.expected_version,
        command: submission.command,
        principal,
        now,
        idempotency: idempotency(
            headers,
            &[
                submission.request_line.as_bytes(),
                &canonical_json(submission.body),
            ],
        )?,
        respond,
        arrival: submission.arrival,
    };
    match state.store.execute(req).await? {
        Executed::Applied { dossier, body } => {
            state.letters.notify_one();
            let created = (submission.status == StatusCode::CREATED).then_some(dossier.id);
            Ok(answer(submission.status, body, created))
        }
        Executed::Replayed { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let created = (status == StatusCode::CREATED)
                .then(|| created_id(&body))
                .flatten();
            Ok(answer(status, body, created))
        }
    }
}

/// The id of the dossier a replayed deposit created: the idempotency record
/// keeps the first answer (status and body), not the dossier's id, so it is
/// read from that answer.
fn created_id(first_answer: &str) -> Option<DossierId> {
    #[derive(serde::Deserialize)]
    struct Created {
        id: DossierId,
    }
    serde_json::from_str::<Created>(first_answer)
        .ok()
        .map(|c| c.id)
}

/// Deposit a dossier
///
/// Deposit a dossier (DAR): JSON, or `multipart/form-data` with the JSON
/// in a `dossier` part and one file part per pièce, named by its kind.
///
/// The commune must be the INSEE code's (422 `commune_inconnue`,
/// `commune_incoherente`); a commune with a dossier already needs
/// `doublon_confirme` (422 `doublon`); `received_at` decides the wave and
/// must fall inside the campaign. The answer is the dossier, at `Location`;
/// an accusé de réception is queued for the porteur's address in the same
/// transaction.
#[utoipa::path(post, path = "/dossiers", operation_id = "createDossier", tag = "dossiers",
    request_body(content(
        (NewDossierBody = "application/json"),
        (DepositForm = "multipart/form-data"))),
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
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (body, fingerprint, files) = match is_multipart(&headers) {
        None => {
            let ApiJson(body, raw) = <ApiJson<NewDossierBody> as axum::extract::FromRequest<
                AppState,
            >>::from_request(request, &state)
            .await?;
            (body, canonical_json(&raw), Vec::new())
        }
        Some(boundary) => deposit_form(&state, &credentials, boundary, request).await?,
    };
    deposit(
        &state,
        Principal::Token(credentials.0),
        &headers,
        body,
        &fingerprint,
        files,
    )
    .await
}

/// Reads a deposit form: the `dossier` part, then each file, streamed to
/// storage as it comes. Who may deposit is checked before any file is read.
async fn deposit_form(
    state: &AppState,
    credentials: &Credentials,
    boundary: String,
    request: axum::extract::Request,
) -> Result<(NewDossierBody, Vec<u8>, Vec<Piece>), ApiError> {
    let def = &state.definition;
    let action = def
        .creation_actions()
        .next()
        .ok_or_else(|| ApiError::Internal("no creation action".into()))?;
    let actor = credentials
        .0
        .admit(
            &state.definition,
            state.store.find_token(credentials.0.id).await?,
        )
        .map_err(ApiError::unauthorized)?;
    ami_core::authorize(def, &action.id, &actor)
        .map_err(|r| ApiError::refused(&r, r.explain(def)))?;

    let limits = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().for_field("dossier", super::BODY_LIMIT as u64));
    let mut form = multer::Multipart::with_constraints(
        request.into_body().into_data_stream(),
        boundary,
        limits,
    );
    let mut dossier = None;
    let mut files: Vec<Piece> = Vec::new();
    while let Some(field) = form.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "dossier" {
            let bytes = field.bytes().await.map_err(|e| match e {
                multer::Error::FieldSizeExceeded { .. } => ApiError::TooLarge,
                other => form_error(other),
            })?;
            let body: NewDossierBody =
                super::extract::decode(&bytes).map_err(|e| ApiError::BadRequest {
                    code: e.code,
                    field: e
                        .field
                        .map(|f| format!("dossier.{f}"))
                        .or(Some("dossier".into())),
                    detail: e.detail,
                })?;
            // Checked now, before any file is stored for a deposit that
            // would be refused anyway.
            check_deposit(def, &body)?;
            dossier = Some((body, bytes));
            continue;
        }
        let Some(piece) = def.piece(&name) else {
            return Err(ApiError::bad_field(
                &name,
                format!(
                    "Partie « {name} » inconnue : le formulaire porte « dossier » (le JSON) et un fichier par pièce ({}).",
                    piece_ids(def)
                ),
            ));
        };
        if files.iter().any(|f| f.kind == name) {
            return Err(ApiError::invalid_field(
                &name,
                format!(
                    "Deux fichiers pour la pièce « {} » : envoyez-en un.",
                    piece.label
                ),
            ));
        }
        let filename = field.file_name().map(str::to_string);
        files.push(receive_piece(state, piece, filename.as_deref(), field, &name).await?);
    }
    let (body, raw) = dossier.ok_or_else(|| {
        ApiError::invalid_field(
            "dossier",
            "Le formulaire ne porte pas la partie « dossier » (le JSON du dépôt).",
        )
    })?;
    // What the request asks, for its idempotency key: the dossier as
    // parsed, and each file by its digest.
    let fingerprint = serde_jcs::to_vec(&serde_json::json!({
        "dossier": serde_json::from_slice::<serde_json::Value>(&raw).unwrap_or_default(),
        "files": files.iter().map(|f| serde_json::json!({
            "kind": f.kind, "filename": f.filename, "sha256": f.sha256,
        })).collect::<Vec<_>>(),
    }))
    .unwrap_or_default();
    Ok((body, fingerprint, files))
}

/// The checks of a deposit's JSON that need no database.
pub(crate) fn check_deposit(
    def: &ami_core::Definition,
    body: &NewDossierBody,
) -> Result<(), ApiError> {
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
    // The commune is the official geographic code's: a code of no commune,
    // or a name that is not the code's, would file the dossier under the
    // wrong town (and escape the duplicate check, which goes by code).
    if let Err(problem) = ami_core::communes::check_commune(insee, &body.commune) {
        return Err(ApiError::Unprocessable {
            code: problem.code().into(),
            field: Some(problem.field().into()),
            detail: problem.to_string(),
        });
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
    Ok(())
}

pub(crate) async fn deposit(
    state: &AppState,
    principal: Principal,
    headers: &HeaderMap,
    body: NewDossierBody,
    fingerprint: &[u8],
    files: Vec<Piece>,
) -> Result<Response, ApiError> {
    deposit_from(state, principal, headers, body, fingerprint, files, None).await
}

/// A deposit made from a received message (`POST /arrivals/{id}/dossier`):
/// the arrival it handles, the comment for the journal, and the request
/// line its idempotency key is tied to.
pub(crate) struct FromArrival {
    pub id: Uuid,
    pub comment: Option<String>,
    pub request_line: String,
}

/// [`deposit`], from an arrival when `from` says so: the same checks and
/// the same transition, the arrival marked `traite` with it.
pub(crate) async fn deposit_from(
    state: &AppState,
    principal: Principal,
    headers: &HeaderMap,
    body: NewDossierBody,
    fingerprint: &[u8],
    files: Vec<Piece>,
    from: Option<FromArrival>,
) -> Result<Response, ApiError> {
    let def = &state.definition;
    let action = def
        .creation_actions()
        .next()
        .ok_or_else(|| ApiError::Internal("no creation action".into()))?;
    check_deposit(def, &body)?;
    // `check_deposit` has checked the pièces against the definition; the
    // programmes are the engine's to check, after who may deposit.
    let checked = || ApiError::Internal("a pièce escaped the checks".into());
    let declared: Vec<Piece> = body
        .pieces
        .iter()
        .filter(|p| !files.iter().any(|f| f.kind == p.kind))
        .map(|p| {
            Ok(Piece {
                kind: def.piece_kind(&p.kind).ok_or_else(checked)?,
                filename: nfc(&p.filename).into(),
                size: p.size,
                sha256: p.sha256.as_deref().map(Into::into),
                media_type: None,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let now = state.now();
    let id = DossierId(Uuid::now_v7());
    let command = Order {
        action: action.id.as_str().into(),
        content: Content::Deposit(Box::new(DepositOrder {
            id,
            commune: nfc(body.commune.trim()).into(),
            code_insee: body.code_insee.clone().into(),
            porteur: Porteur {
                nom: nfc(body.porteur.nom.trim()).into(),
                email: body.porteur.email.as_deref().map(|e| nfc(e.trim()).into()),
            },
            programmes: body.programmes.iter().map(|p| p.as_str().into()).collect(),
            received_at: body.received_at.unwrap_or(now),
            // A file sent for a pièce stands for its declaration.
            pieces: declared.into_iter().chain(files).collect(),
            doublon_confirme: body.doublon_confirme,
        })),
        comment: from
            .as_ref()
            .and_then(|f| f.comment.as_deref())
            .map(|c| nfc(c).into()),
        ..Order::default()
    };
    let submission = Submission {
        dossier_id: id,
        expected_version: None,
        command,
        request_line: from
            .as_ref()
            .map_or_else(|| "POST /dossiers".into(), |f| f.request_line.clone()),
        body: fingerprint,
        status: StatusCode::CREATED,
        arrival: from.map(|f| f.id),
    };
    run(state, principal, headers, submission).await
}

/// The dossier, if the caller may read it (need to know): a dossier of
/// another agency's programme is as absent as one that does not exist.
pub(crate) async fn readable_dossier(
    state: &AppState,
    caller: &Caller,
    id: DossierId,
) -> Result<ami_core::Dossier, ApiError> {
    state
        .store
        .get_dossier(id)
        .await?
        .filter(|d| {
            state
                .definition
                .may_read(&caller.actor.agency, &d.programmes)
        })
        .ok_or_else(ApiError::dossier_not_found)
}

/// Read a dossier
///
/// A dossier, with the actions the caller may take now.
///
/// 404 for a dossier the caller may not read (outside its programmes), as for
/// an unknown id.
#[utoipa::path(get, path = "/dossiers/{id}", operation_id = "getDossier", tag = "dossiers",
    params(("id" = Uuid, Path, description = "Dossier id")),
    responses((status = 200, body = DossierView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    DossierPath(id): DossierPath,
) -> Result<Json<DossierView>, ApiError> {
    let d = readable_dossier(&state, &caller, DossierId(id)).await?;
    Ok(Json(DossierView::new(
        &state.definition,
        &d,
        &caller.actor,
        state.now(),
    )))
}

/// List dossiers
///
/// Dossiers in reception order, filtered, by pages.
///
/// Only those the caller may read. Filters combine (AND); a filter's values
/// separated by commas are alternatives (OR). Follow `next_cursor` for the
/// next page; a cursor keeps its order (`sort`).
#[utoipa::path(get, path = "/dossiers", operation_id = "listDossiers", tag = "dossiers",
    params(
        ("state" = Option<String>, Query, description = "State ids, one or several separated by commas, e.g. `laureat,refuse`"),
        ("wave" = Option<String>, Query, description = "Wave numbers, one or several separated by commas, e.g. `1` or `1,3`"),
        ("programme" = Option<String>, Query, description = "`acv`, `ti` or `acv,ti`"),
        ("awaiting" = Option<String>, Query, description = "Dossiers waiting on these agencies (`dar`, `acv`, `ti`) or on the town (`porteur`), separated by commas"),
        ("overdue" = Option<String>, Query, description = "`true`: only dossiers an agency is late on (the earliest deadline awaited is past, in Paris)"),
        ("region" = Option<String>, Query, description = "Région codes of the official geographic code, e.g. `27` or `27,44`"),
        ("departement" = Option<String>, Query, description = "Département codes, e.g. `58` or `2A,2B`"),
        ("sort" = Option<String>, Query, description = "`received` (reception order, the default) or `due` (earliest deadline first, dossiers with none last)"),
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
    let def = &state.definition;
    let now = state.now();
    let mut filter = list_filter(
        def,
        Some(&caller.actor),
        &query,
        &["limit", "cursor"],
        now.with_timezone(&def.campaign().time_zone).date_naive(),
    )?;
    filter.limit = 50;
    if let Some(l) = query.get("limit") {
        filter.limit = l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=super::contract::MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| ApiError::bad_field("limit", "La limite est un entier de 1 à 500."))?;
    }
    if let Some(c) = query.get("cursor") {
        filter.after = Some(
            ListCursor::decode(c)
                .filter(|c| c.fits(filter.order))
                .ok_or_else(|| super::contract::cursor_refusal("cursor", c))?,
        );
    }
    let page = state.store.list_dossiers(&filter).await?;
    Ok(Json(DossierPage {
        items: page
            .items
            .iter()
            .map(|d| DossierView::new(def, d, &caller.actor, now))
            .collect(),
        next_cursor: page.next,
    }))
}

/// The query parameters that filter a dossier list, in the order a file
/// name of an export gives them.
pub(crate) const LIST_FILTERS: &[&str] = &[
    "state",
    "wave",
    "programme",
    "awaiting",
    "overdue",
    "region",
    "departement",
    "q",
    "sort",
];

/// The dossiers a list's query asks for, as `reader` may read them (need
/// to know; `None`: every dossier, for `ami export`), without paging: what
/// the list and the exports read from their query, so that a filter added
/// here applies to both. Refuses (400, naming it) a parameter other than
/// [`LIST_FILTERS`] and `others`, a repeated one, and an unknown or empty
/// value. `today` (in the campaign's time zone) says what is late.
pub(crate) fn list_filter(
    def: &ami_core::Definition,
    reader: Option<&ami_core::Actor>,
    query: &QueryPairs,
    others: &[&str],
    today: chrono::NaiveDate,
) -> Result<DossierFilter, ApiError> {
    // The API's routes are checked against their documented parameters
    // before this runs; `ami export` reads its filters here only.
    let allowed: Vec<&str> = LIST_FILTERS.iter().chain(others).copied().collect();
    query.check(&allowed)?;
    let mut filter = DossierFilter::default();
    let states: Vec<&str> = def.states().iter().map(|s| s.id.as_str()).collect();
    filter.states = query.list("state", &states)?;
    let waves: Vec<String> = def
        .campaign()
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
    let programmes: Vec<&str> = def.programmes().iter().map(|p| p.id.as_str()).collect();
    filter.programmes = query.list("programme", &programmes)?;
    let mut awaitable: Vec<&str> = def.agencies().iter().map(|a| a.id.as_str()).collect();
    awaitable.push(ami_core::PORTEUR);
    filter.awaiting_columns =
        crate::store::awaiting_columns(def, &query.list("awaiting", &awaitable)?);
    if query.get("awaiting").is_some() && filter.awaiting_columns.is_empty() {
        // Agencies that never take a next step: nothing waits on them.
        filter.awaiting_columns = vec![String::new()];
    }
    match query.get("overdue") {
        None => {}
        Some("true") => filter.overdue_on = Some(today),
        Some(_) => {
            return Err(ApiError::bad_field(
                "overdue",
                "« overdue » ne prend que la valeur « true » : les dossiers en retard.",
            ))
        }
    }
    filter.departements = departements_of(query)?;
    filter.order = match query.get("sort") {
        None | Some("received") => ListOrder::Received,
        Some("due") => ListOrder::Due,
        Some(other) => {
            return Err(ApiError::bad_field(
                "sort",
                format!("Ordre inconnu « {other} » ; valeurs possibles : received (réception, par défaut), due (échéance)."),
            ))
        }
    };
    if let Some(q) = query.get("q") {
        if q.chars().count() > super::contract::MAX_QUERY || q.chars().any(char::is_control) {
            return Err(ApiError::bad_field(
                "q",
                "La recherche compte au plus 200 caractères, sans caractère de contrôle.",
            ));
        }
        if !q.trim().is_empty() {
            filter.q = Some(q.trim().to_string());
        }
    }
    filter.readable = reader
        .and_then(|actor| def.readable_programmes(&actor.agency))
        .map(|own| own.into_iter().map(str::to_string).collect());
    Ok(filter)
}

/// The départements a list's `departement` and `region` ask for (both:
/// those of the listed départements that lie in the listed régions), each
/// code checked against the official geographic code; `None` when neither
/// is given.
pub(crate) fn departements_of(query: &QueryPairs) -> Result<Option<Vec<String>>, ApiError> {
    let codes = |name: &str, known: &dyn Fn(&str) -> bool, what: &str| {
        let Some(raw) = query.get(name) else {
            return Ok(None);
        };
        let mut codes: Vec<String> = Vec::new();
        for code in raw.split(',') {
            if !known(code) {
                let shown = if code.is_empty() { "(vide)" } else { code };
                return Err(ApiError::bad_field(
                    name,
                    format!("« {shown} » n'est pas un code de {what} du code officiel géographique (plusieurs séparés par des virgules)."),
                ));
            }
            if !codes.iter().any(|c| c == code) {
                codes.push(code.to_string());
            }
        }
        Ok(Some(codes))
    };
    let departements = codes(
        "departement",
        &|c| ami_core::departement(c).is_some(),
        "département (58, 2A, 974…)",
    )?;
    let regions = codes(
        "region",
        &|c| ami_core::region(c).is_some(),
        "région (27, 94, 04…)",
    )?;
    Ok(match (departements, regions) {
        (None, None) => None,
        (Some(d), None) => Some(d),
        (departements, Some(regions)) => Some(
            ami_core::communes::departements()
                .iter()
                .filter(|d| regions.iter().any(|r| r == d.region))
                .map(|d| d.code.to_string())
                .filter(|code| departements.as_ref().is_none_or(|own| own.contains(code)))
                .collect(),
        ),
    })
}

/// The command a transition's body asks for, with every check that needs no
/// database (the web pages' forms come through here too).
pub(crate) fn transition_command(
    def: &ami_core::Definition,
    body: &TransitionBody,
) -> Result<Order, ApiError> {
    check_text("motivation", body.motivation.as_deref())?;
    check_text("comment", body.comment.as_deref())?;
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
    let content = match (effect, &body.pieces, body.due_on) {
        (Some(Effect::RequestPieces), Some(pieces), Some(due_on)) => {
            if pieces.is_empty() {
                return Err(ApiError::invalid_field(
                    "pieces",
                    "Indiquez au moins une pièce à demander.",
                ));
            }
            let pieces = pieces
                .iter()
                .enumerate()
                .map(|(i, kind)| {
                    def.piece_kind(kind).ok_or_else(|| {
                        ApiError::invalid_field(
                            &format!("pieces[{i}]"),
                            format!("Pièce inconnue « {kind} » ; pièces : {}.", piece_ids(def)),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            Content::Request(PiecesRequested { pieces, due_on })
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
        _ => Content::Nothing,
    };
    Ok(Order {
        action: body.action.as_str().into(),
        verdict: body.verdict.as_deref().map(Into::into),
        motivation: body.motivation.as_deref().map(nfc).map(Into::into),
        comment: body.comment.as_deref().map(nfc).map(Into::into),
        content,
    })
}

/// Take an action on a dossier
///
/// `action` is one the caller's agency and role may take (403 otherwise);
/// `expected_version` is the dossier's `version` as last read (409 when
/// another action came first: read again, decide again). The engine's
/// refusals are 422 with the rule's `code` and a French `detail`. The
/// dossier's `actions` lists what the caller may do now.
#[utoipa::path(post, path = "/dossiers/{id}/transitions", operation_id = "takeAction", tag = "dossiers",
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
    let command = transition_command(&state.definition, &body)?;
    let submission = Submission {
        dossier_id: DossierId(id),
        expected_version: Some(body.expected_version),
        command,
        request_line: format!("POST /dossiers/{id}/transitions"),
        body: &raw,
        status: StatusCode::OK,
        arrival: None,
    };
    run(
        &state,
        Principal::Token(credentials.0),
        &headers,
        submission,
    )
    .await
}

/// Read a dossier's journal
///
/// Every event of a dossier, in order, with its chained digest.
///
/// Each event's `digest` chains it to the one before; `content` is what the
/// digest covers, so anyone can recompute the chain.
#[utoipa::path(get, path = "/dossiers/{id}/history", operation_id = "getHistory", tag = "dossiers",
    params(("id" = Uuid, Path, description = "Dossier id")),
    responses((status = 200, body = History), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    DossierPath(id): DossierPath,
) -> Result<Json<History>, ApiError> {
    readable_dossier(&state, &caller, DossierId(id)).await?;
    let events = state.store.history(DossierId(id)).await?;
    if events.is_empty() {
        return Err(ApiError::dossier_not_found());
    }
    Ok(Json(History {
        dossier_id: id,
        events: events.iter().map(HistoryItem::from).collect(),
    }))
}
