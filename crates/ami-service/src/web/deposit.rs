//! « Nouveau dossier »: a DAR agent records an application received by
//! e-mail, with its two files. The form is read as it streams: its fields
//! come first and are checked before any file is stored; the deposit then
//! goes through the API's own path (same checks, same transaction).

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};

use super::{error_page, random_token, render, Layout, SignedIn};
use crate::http::dossiers::{check_deposit, deposit};
use crate::http::error::ApiError;
use crate::http::pieces::{form_error, is_multipart, receive_piece};
use crate::http::views::{NewDossierBody, PorteurBody};
use crate::http::AppState;
use crate::store::Principal;

pub struct Check {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

pub struct FileInput {
    pub kind: String,
    pub label: String,
    pub hint: String,
}

/// What was typed, shown again after a refusal (files cannot be: the page
/// says to choose them again).
#[derive(Default, Clone)]
pub struct Typed {
    pub commune: String,
    pub code_insee: String,
    pub porteur_nom: String,
    pub porteur_email: String,
    pub programmes: Vec<String>,
    pub recu_le: String,
    pub recu_a: String,
    pub doublon_confirme: bool,
}

#[derive(Template)]
#[template(path = "nouveau.html")]
struct DepositPage {
    layout: Layout,
    v: Typed,
    programmes: Vec<Check>,
    files: Vec<FileInput>,
    cle: String,
    alert: Option<String>,
    errors: HashMap<String, String>,
    /// The refusal was a doublon: the page offers to confirm a second project.
    doublon: bool,
}

impl DepositPage {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }

    fn has(&self, field: &str) -> bool {
        self.errors.contains_key(field)
    }
}

fn page(
    state: &AppState,
    signed: &SignedIn,
    v: Typed,
    alert: Option<String>,
    errors: HashMap<String, String>,
    doublon: bool,
) -> DepositPage {
    let def = &state.definition;
    DepositPage {
        layout: signed.layout(state, "nouveau"),
        programmes: def
            .programmes()
            .iter()
            .map(|p| Check {
                value: p.id.to_string(),
                label: p.label.clone(),
                checked: v.programmes.iter().any(|x| *x == p.id),
            })
            .collect(),
        files: def
            .pieces()
            .iter()
            .map(|p| FileInput {
                kind: p.id.to_string(),
                label: p.label.clone(),
                hint: format!(
                    "{}Formats acceptés : {}. Taille maximale : {}.",
                    if p.required { "" } else { "Facultative. " },
                    p.accepted_types()
                        .map(|t| t.id)
                        .collect::<Vec<_>>()
                        .join(", "),
                    super::format::size(state.max_piece_size)
                ),
            })
            .collect(),
        v,
        cle: random_token(),
        alert,
        errors,
        doublon,
    }
}

/// `GET /dossiers/nouveau`
pub async fn form(State(state): State<AppState>, signed: SignedIn) -> Response {
    if !signed.deposits(&state) {
        return error_page(
            Some(signed.layout(&state, "")),
            ApiError::NotFound {
                detail: String::new(),
            },
        );
    }
    let now = state
        .now()
        .with_timezone(&state.definition.campaign().time_zone);
    let typed = Typed {
        recu_le: now.format("%Y-%m-%d").to_string(),
        recu_a: now.format("%H:%M").to_string(),
        ..Typed::default()
    };
    render(&page(&state, &signed, typed, None, HashMap::new(), false))
}

/// The API's field names, as the form names them.
fn form_field(field: &str) -> &str {
    match field.split(['[', '.']).next().unwrap_or(field) {
        "porteur" if field.ends_with("email") => "porteur_email",
        "porteur" => "porteur_nom",
        "received_at" => "recu_le",
        other => other,
    }
}

/// The deposit's JSON from the form's fields.
fn body_of(state: &AppState, v: &Typed) -> Result<NewDossierBody, ApiError> {
    let day = NaiveDate::parse_from_str(v.recu_le.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::invalid_field(
            "received_at",
            "Indiquez la date de réception (jour, mois, année).",
        )
    })?;
    let time = if v.recu_a.trim().is_empty() {
        NaiveTime::MIN
    } else {
        NaiveTime::parse_from_str(v.recu_a.trim(), "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(v.recu_a.trim(), "%H:%M:%S"))
            .map_err(|_| {
                ApiError::invalid_field(
                    "recu_a",
                    "Indiquez l'heure de réception (heures et minutes).",
                )
            })?
    };
    let tz = state.definition.campaign().time_zone;
    // A time that does not exist locally (the spring change) is refused
    // rather than guessed; one that exists twice takes the first.
    let received_at = tz
        .from_local_datetime(&day.and_time(time))
        .earliest()
        .ok_or_else(|| {
            ApiError::invalid_field(
                "recu_a",
                "Cette heure n'existe pas ce jour-là (changement d'heure) : indiquez-en une autre.",
            )
        })?
        .with_timezone(&Utc);
    Ok(NewDossierBody {
        commune: v.commune.clone(),
        code_insee: v.code_insee.trim().to_uppercase(),
        porteur: PorteurBody {
            nom: v.porteur_nom.clone(),
            email: Some(v.porteur_email.trim().to_string()).filter(|e| !e.is_empty()),
        },
        programmes: v.programmes.clone(),
        received_at: Some(received_at),
        pieces: Vec::new(),
        doublon_confirme: v.doublon_confirme,
    })
}

/// `POST /dossiers/nouveau` (multipart: the fields, then one file per pièce).
pub async fn submit(
    State(state): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let Some(boundary) = is_multipart(&headers) else {
        return super::expired_form();
    };
    let mut typed = Typed::default();
    match read_and_deposit(&state, &signed, boundary, request, &mut typed).await {
        Ok(Outcome::Created(location)) => Redirect::to(&location).into_response(),
        Ok(Outcome::Expired) => super::expired_form(),
        Err(e) => {
            let problem = e.problem();
            if matches!(
                e,
                ApiError::Unavailable | ApiError::Internal(_) | ApiError::NotFound { .. }
            ) {
                return error_page(Some(signed.layout(&state, "nouveau")), e);
            }
            let status =
                StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let doublon = problem.code == "doublon";
            let mut errors = HashMap::new();
            let alert = match problem.field.as_deref() {
                Some(field) => {
                    errors.insert(form_field(field).to_string(), problem.detail.clone());
                    format!(
                        "{} : voir le champ signalé. Les fichiers sont à choisir à nouveau.",
                        problem.title
                    )
                }
                None => format!("{} Les fichiers sont à choisir à nouveau.", problem.detail),
            };
            let mut response = render(&page(&state, &signed, typed, Some(alert), errors, doublon));
            *response.status_mut() = status;
            response
        }
    }
}

enum Outcome {
    Created(String),
    Expired,
}

async fn read_and_deposit(
    state: &AppState,
    signed: &SignedIn,
    boundary: String,
    request: axum::extract::Request,
    typed: &mut Typed,
) -> Result<Outcome, ApiError> {
    let def = &state.definition;
    let action = def
        .creation_actions()
        .next()
        .ok_or_else(|| ApiError::Internal("no creation action".into()))?;
    ami_core::authorize(def, &action.id, &signed.actor)
        .map_err(|r| ApiError::refused(&r, r.explain(def)))?;
    let text_limit = crate::http::BODY_LIMIT as u64;
    let mut limits = multer::SizeLimit::new();
    for name in [
        "csrf",
        "cle",
        "commune",
        "code_insee",
        "porteur_nom",
        "porteur_email",
        "programmes",
        "recu_le",
        "recu_a",
        "doublon_confirme",
    ] {
        limits = limits.for_field(name, text_limit);
    }
    let mut form = multer::Multipart::with_constraints(
        request.into_body().into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut csrf_checked = false;
    let mut cle = String::new();
    let mut body = None;
    let mut files = Vec::new();
    while let Some(field) = form.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or("").to_string();
        if let Some(piece) = def.piece(&name) {
            if !csrf_checked {
                return Ok(Outcome::Expired);
            }
            // The fields are all in: check them once, before any file.
            if body.is_none() {
                let checked = body_of(state, typed)?;
                check_deposit(def, &checked)?;
                body = Some(checked);
            }
            let filename = field
                .file_name()
                .map(str::to_string)
                .filter(|f| !f.is_empty());
            // An input left empty sends a part without a name and content.
            let Some(filename) = filename else { continue };
            files.push(receive_piece(state, piece, Some(&filename), field, &name).await?);
            continue;
        }
        let text = field.text().await.map_err(form_error)?;
        match name.as_str() {
            "csrf" => {
                if !signed.csrf_ok(&text) {
                    return Ok(Outcome::Expired);
                }
                csrf_checked = true;
            }
            "cle" => cle = text,
            "commune" => typed.commune = text,
            "code_insee" => typed.code_insee = text,
            "porteur_nom" => typed.porteur_nom = text,
            "porteur_email" => typed.porteur_email = text,
            "programmes" => typed.programmes.push(text),
            "recu_le" => typed.recu_le = text,
            "recu_a" => typed.recu_a = text,
            "doublon_confirme" => typed.doublon_confirme = !text.is_empty(),
            _ => {}
        }
    }
    if !csrf_checked {
        return Ok(Outcome::Expired);
    }
    let body = match body {
        Some(b) => b,
        None => {
            let checked = body_of(state, typed)?;
            check_deposit(def, &checked)?;
            checked
        }
    };
    let fingerprint = serde_json::json!({
        "commune": body.commune, "code_insee": body.code_insee, "porteur": body.porteur,
        "programmes": body.programmes, "received_at": body.received_at,
        "doublon_confirme": body.doublon_confirme,
        "files": files.iter().map(|f| serde_json::json!({
            "kind": f.kind, "filename": f.filename, "sha256": f.sha256,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let mut headers = HeaderMap::new();
    if let Ok(v) = axum::http::HeaderValue::from_str(&cle) {
        if !cle.is_empty() && cle.len() <= 200 {
            headers.insert("idempotency-key", v);
        }
    }
    let created = deposit(
        state,
        Principal::Actor(signed.actor.clone()),
        &headers,
        body,
        fingerprint.as_bytes(),
        files,
    )
    .await?;
    let location = created
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.strip_prefix("/api/v1"))
        .map(str::to_string)
        .ok_or_else(|| ApiError::Internal("a deposit without its Location".into()))?;
    Ok(Outcome::Created(format!("{location}?fait={}", action.id)))
}
