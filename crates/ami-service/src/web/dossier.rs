//! The dossier page: who, what, the pièces, the avis, the history, and the
//! forms of the actions the signed-in person may take now. Every form posts
//! to the service, which runs the same decision in the same transaction as
//! the JSON API; refusals come back next to their field, in the engine's
//! words, with what was typed.

use std::collections::HashMap;

use ami_core::{Definition, Dossier, DossierId, Effect};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::{
    action_label, agency_label, error_page, format, random_token, render, state_badge,
    verdict_label, Layout, SignedIn,
};
use crate::http::dossiers::{run, transition_command, Submission};
use crate::http::error::ApiError;
use crate::http::views::TransitionBody;
use crate::http::{AppState, Caller};
use crate::store::{Principal, StoredEvent};

/// The identity block of a dossier.
pub struct Identity {
    pub id: String,
    pub reference: String,
    pub commune: String,
    pub code_insee: String,
    pub porteur: String,
    pub email: Option<String>,
    pub programmes: String,
    pub wave: u8,
    pub state_label: String,
    pub state_badge: &'static str,
    pub received: String,
    pub awaiting: String,
    pub version: u64,
}

pub struct Complement {
    pub pieces: String,
    pub due_on: String,
    pub motivation: Option<String>,
    pub by: String,
    pub at: String,
}

pub struct VersionLine {
    pub version: u32,
    pub filename: String,
    pub size: String,
    pub type_label: String,
    pub at: String,
    pub url: String,
}

pub struct PieceLine {
    pub kind: String,
    pub label: String,
    pub required: bool,
    /// The latest version first; empty when no file has arrived.
    pub versions: Vec<VersionLine>,
    /// The name declared at the deposit, when no file has arrived.
    pub declared: Option<String>,
    pub url: String,
}

pub struct AvisGiven {
    pub verdict_label: String,
    pub badge: &'static str,
    pub motivation: Option<String>,
    pub by: String,
    pub at: String,
}

pub struct AvisCard {
    pub agency_label: String,
    pub action_label: String,
    pub given: Option<AvisGiven>,
    /// While awaited: the last day (« lundi 11 janvier 2021 ») and whether
    /// it is past.
    pub due: Option<(String, bool)>,
}

pub struct HistoryLine {
    pub action_label: String,
    pub person: String,
    pub agency_label: String,
    pub at: String,
    pub state_label: String,
    pub verdict_label: Option<String>,
    pub motivation: Option<String>,
    pub comment: Option<String>,
    pub digest: String,
}

pub struct Pick {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

/// What a refused form shows: the message above it, and under each field
/// the words that concern it.
#[derive(Default)]
pub struct FormErrors {
    pub alert: Option<String>,
    pub fields: HashMap<String, String>,
}

impl FormErrors {
    pub fn field(&self, name: &str) -> Option<&String> {
        self.fields.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

/// The form of one action.
pub struct ActionForm {
    pub id: String,
    pub label: String,
    pub url: String,
    /// `attach` (a file, multipart), `request` (pièces and a date) or
    /// `plain`.
    pub kind: &'static str,
    pub verdicts: Vec<Pick>,
    pub motivation: bool,
    pub motivation_hint: String,
    pub pieces: Vec<Pick>,
    pub motivation_value: String,
    pub comment_value: String,
    pub due_on_value: String,
    pub version: u64,
    /// The form's idempotency key: a double click replays, it does not act twice.
    pub cle: String,
    /// A closing action (refuse, classer sans suite): a secondary button.
    pub secondary: bool,
    pub errors: FormErrors,
}

/// An action of the person's agency that a rule holds back now.
pub struct HeldBack {
    pub label: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "dossier.html")]
struct DossierPage {
    layout: Layout,
    d: Identity,
    complement: Option<Complement>,
    pieces: Vec<PieceLine>,
    avis: Vec<AvisCard>,
    history: Vec<HistoryLine>,
    forms: Vec<ActionForm>,
    held: Vec<HeldBack>,
    notice: Option<String>,
    /// A refusal of an action that has no form on the page.
    refusal: Option<String>,
    /// What others did since the version the person's form was read at.
    changes: Vec<String>,
    live_from: String,
}

/// What a form sent, kept to show it again.
#[derive(Default, Clone)]
pub struct Typed {
    pub action: String,
    pub verdict: String,
    pub motivation: String,
    pub comment: String,
    pub pieces: Vec<String>,
    pub due_on: String,
}

fn actor_line(def: &Definition, a: &ami_core::Actor) -> String {
    format!("{} ({})", a.name, agency_label(def, &a.agency))
}

fn verdict_badge(def: &Definition, verdict: &str) -> &'static str {
    match def.verdict(verdict) {
        Some(v) if v.blocking => "fr-badge--error",
        Some(v) if v.requires_motivation => "fr-badge--warning",
        Some(_) => "fr-badge--success",
        None => "",
    }
}

fn identity(def: &Definition, d: &Dossier) -> Identity {
    let tz = def.campaign().time_zone;
    Identity {
        id: d.id.to_string(),
        reference: d.reference.to_string(),
        commune: d.commune.to_string(),
        code_insee: d.code_insee.to_string(),
        porteur: d.porteur.nom.to_string(),
        email: d.porteur.email.as_deref().map(str::to_string),
        programmes: super::programme_labels(def, d),
        wave: d.wave,
        state_label: def.state_label(&d.state).to_string(),
        state_badge: state_badge(def, &d.state),
        received: ami_core::french_instant(d.received_at, tz),
        awaiting: ami_core::awaiting(def, d)
            .iter()
            .map(|a| {
                if *a == ami_core::PORTEUR {
                    "le porteur (complément demandé)".to_string()
                } else {
                    agency_label(def, a)
                }
            })
            .collect::<Vec<_>>()
            .join(" ; "),
        version: d.version,
    }
}

fn pieces(def: &Definition, d: &Dossier) -> Vec<PieceLine> {
    let tz = def.campaign().time_zone;
    def.pieces()
        .iter()
        .map(|p| {
            let mut versions: Vec<VersionLine> = d
                .versions(&p.id)
                .map(|f| VersionLine {
                    version: f.version,
                    filename: f.filename.to_string(),
                    size: format::size(f.size),
                    type_label: ami_core::FILE_TYPES
                        .iter()
                        .find(|t| t.media_type == f.media_type)
                        .map_or_else(|| f.media_type.clone(), |t| t.label.to_string().into())
                        .to_string(),
                    at: ami_core::french_instant(f.received_at, tz),
                    url: format!("/dossiers/{}/pieces/{}/versions/{}", d.id, p.id, f.version),
                })
                .collect();
            versions.reverse();
            PieceLine {
                kind: p.id.to_string(),
                label: p.label.clone(),
                required: p.required,
                declared: d
                    .pieces
                    .iter()
                    .find(|x| x.kind == p.id && versions.is_empty())
                    .map(|x| x.filename.clone())
                    .as_deref()
                    .map(str::to_string),
                versions,
                url: format!("/dossiers/{}/pieces/{}", d.id, p.id),
            }
        })
        .collect()
}

/// One card per agency that gives a verdict on this dossier.
fn avis(def: &Definition, d: &Dossier, now: chrono::DateTime<chrono::Utc>) -> Vec<AvisCard> {
    let tz = def.campaign().time_zone;
    let deadlines = ami_core::deadlines(def, d);
    def.actions()
        .iter()
        .filter(|a| a.verdict)
        .filter(|a| a.programme.as_ref().is_none_or(|p| d.in_programme(p)))
        .map(|a| AvisCard {
            agency_label: agency_label(def, &a.agency),
            action_label: a.label.clone(),
            given: d.avis(&a.id).map(|v| AvisGiven {
                verdict_label: verdict_label(def, &v.verdict),
                badge: verdict_badge(def, &v.verdict),
                motivation: v.motivation.as_deref().map(str::to_string),
                by: actor_line(def, &v.actor),
                at: ami_core::french_instant(v.at, tz),
            }),
            due: deadlines
                .iter()
                .find(|l| l.action == a.id)
                .map(|l| (ami_core::french_date(l.due), l.overdue(now))),
        })
        .collect()
}

fn history_line(def: &Definition, s: &StoredEvent) -> HistoryLine {
    let e = &s.event;
    HistoryLine {
        action_label: action_label(def, &e.action),
        person: e.actor.name.to_string(),
        agency_label: agency_label(def, &e.actor.agency),
        at: ami_core::french_instant(e.at, def.campaign().time_zone),
        state_label: def.state_label(&e.to).to_string(),
        verdict_label: e.verdict.as_ref().map(|v| verdict_label(def, v)),
        motivation: e.motivation.as_deref().map(str::to_string),
        comment: e.comment.as_deref().map(str::to_string),
        digest: s.digest.chars().take(12).collect(),
    }
}

/// The forms of the actions `signed` may take now, with what was typed into
/// the one that was sent, if any.
fn forms(
    def: &Definition,
    d: &Dossier,
    signed: &SignedIn,
    typed: Option<&Typed>,
    errors: &mut Option<FormErrors>,
) -> Vec<ActionForm> {
    let mut actions = ami_core::available_actions(def, d, &signed.actor);
    // What moves the dossier forward first, then what closes it, then the
    // pièces and the requests to the porteur.
    actions.sort_by_key(|a| match a.effect {
        _ if a.next_step => 0,
        Effect::AttachPiece | Effect::RequestPieces => 2,
        _ => 1,
    });
    actions
        .into_iter()
        .map(|a| {
            let mine = typed.filter(|t| t.action == a.id);
            let blank = Typed::default();
            let t = mine.unwrap_or(&blank);
            let requiring: Vec<&str> = def
                .verdicts()
                .iter()
                .filter(|v| v.requires_motivation)
                .map(|v| v.label.as_str())
                .collect();
            let motivation_hint = if a.motivation {
                "Obligatoire.".to_string()
            } else if a.verdict && !requiring.is_empty() {
                format!("Obligatoire pour un avis {}.", requiring.join(" ou "))
            } else {
                "Facultative.".to_string()
            };
            let kind = match a.effect {
                Effect::AttachPiece => "attach",
                Effect::RequestPieces => "request",
                _ => "plain",
            };
            ActionForm {
                id: a.id.to_string(),
                label: a.label.clone(),
                // The fragment brings a refused form back into view (on a
                // phone it is below the dossier).
                url: if kind == "attach" {
                    format!("/dossiers/{}/pieces#action-{}", d.id, a.id)
                } else {
                    format!("/dossiers/{}/actions/{}#action-{}", d.id, a.id, a.id)
                },
                kind,
                verdicts: if a.verdict {
                    def.verdicts()
                        .iter()
                        .map(|v| Pick {
                            value: v.id.to_string(),
                            label: v.label.clone(),
                            checked: t.verdict == v.id,
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                motivation: a.motivation || a.verdict,
                motivation_hint,
                pieces: match a.effect {
                    Effect::RequestPieces => def
                        .pieces()
                        .iter()
                        .map(|p| Pick {
                            value: p.id.to_string(),
                            label: p.label.clone(),
                            checked: t.pieces.iter().any(|x| *x == p.id),
                        })
                        .collect(),
                    Effect::AttachPiece => def
                        .pieces()
                        .iter()
                        .map(|p| Pick {
                            value: p.id.to_string(),
                            label: p.label.clone(),
                            checked: t.pieces.first().is_some_and(|x| *x == p.id),
                        })
                        .collect(),
                    _ => Vec::new(),
                },
                motivation_value: t.motivation.clone(),
                comment_value: t.comment.clone(),
                due_on_value: t.due_on.clone(),
                version: d.version,
                cle: random_token(),
                secondary: a.to.as_deref().is_some_and(|s| def.is_terminal(s)) && !a.next_step,
                errors: if mine.is_some() {
                    errors.take().unwrap_or_default()
                } else {
                    FormErrors::default()
                },
            }
        })
        .collect()
}

/// The events after `version`, in words: what changed since the person read
/// the dossier.
fn changes_since(def: &Definition, history: &[StoredEvent], version: u64) -> Vec<String> {
    history
        .iter()
        .filter(|s| s.event.seq > version)
        .map(|s| {
            let h = history_line(def, s);
            let verdict = h
                .verdict_label
                .map(|v| format!(" (avis {v})"))
                .unwrap_or_default();
            format!(
                "« {} »{verdict} par {} ({}), le {} : état « {} ».",
                h.action_label, h.person, h.agency_label, h.at, h.state_label
            )
        })
        .collect()
}

/// What the page shows besides the dossier itself.
#[derive(Default)]
struct Extras {
    typed: Option<Typed>,
    errors: Option<FormErrors>,
    notice: Option<String>,
    /// The version the person's form was read at, when it was stale.
    stale_from: Option<u64>,
}

async fn show(
    state: &AppState,
    signed: &SignedIn,
    id: DossierId,
    status: StatusCode,
    extras: Extras,
) -> Response {
    let def = &state.definition;
    let layout = || signed.layout(state, "");
    let live_from = match state.store.feed_end().await {
        Ok(c) => c.encode(),
        Err(e) => return error_page(Some(layout()), ApiError::from(e)),
    };
    let d = match readable(state, signed, id).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(layout()), e),
    };
    let history = match state.store.history(id).await {
        Ok(h) => h,
        Err(e) => return error_page(Some(layout()), ApiError::from(e)),
    };
    let tz = def.campaign().time_zone;
    let complement = d
        .complement
        .as_ref()
        .filter(|_| !def.is_terminal(&d.state))
        .map(|c| Complement {
            pieces: c
                .pieces
                .iter()
                .map(|p| def.piece(p).map_or(p.as_str(), |x| x.label.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            due_on: ami_core::french_date(c.due_on),
            motivation: c.motivation.as_deref().map(str::to_string),
            by: actor_line(def, &c.requested_by),
            at: ami_core::french_instant(c.requested_at, tz),
        });
    let held = ami_core::held_back_actions(def, &d, &signed.actor)
        .into_iter()
        .map(|(a, r)| HeldBack {
            label: a.label.clone(),
            reason: r.explain(def),
        })
        .collect();
    let mut errors = extras.errors;
    let forms = forms(def, &d, signed, extras.typed.as_ref(), &mut errors);
    // A refusal no form took (its action is not offered: sent from an old
    // page, or forged) is shown above everything.
    let refusal = errors.map(|e| {
        e.alert
            .iter()
            .chain(e.fields.values())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    });
    let page = DossierPage {
        layout: layout(),
        d: identity(def, &d),
        complement,
        pieces: pieces(def, &d),
        avis: avis(def, &d, state.now()),
        history: history.iter().rev().map(|s| history_line(def, s)).collect(),
        forms,
        refusal,
        held,
        notice: extras.notice,
        changes: extras
            .stale_from
            .map(|v| changes_since(def, &history, v))
            .unwrap_or_default(),
        live_from,
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    response
}

/// The dossier if this person may read it, through the API's own check.
async fn readable(state: &AppState, signed: &SignedIn, id: DossierId) -> Result<Dossier, ApiError> {
    let caller = Caller {
        actor: signed.actor.clone(),
    };
    crate::http::dossiers::readable_dossier(state, &caller, id).await
}

fn dossier_id(raw: &str) -> Option<DossierId> {
    Uuid::parse_str(raw).ok().map(DossierId)
}

#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    fait: String,
}

/// `GET /dossiers/{id}`
pub async fn page(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(id) = dossier_id(&id) else {
        return error_page(
            Some(signed.layout(&state, "")),
            ApiError::dossier_not_found(),
        );
    };
    let done = query.map(|q| q.0.fait).unwrap_or_default();
    let notice = state
        .definition
        .action(&done)
        .map(|a| format!("« {} » : c'est enregistré.", a.label));
    let extras = Extras {
        notice,
        ..Extras::default()
    };
    show(&state, &signed, id, StatusCode::OK, extras).await
}

/// The fields of an action's form.
#[derive(Default)]
struct ActionFields {
    csrf: String,
    version: String,
    cle: String,
    typed: Typed,
}

fn read_fields(body: &[u8], action: &str) -> ActionFields {
    let mut f = ActionFields {
        typed: Typed {
            action: action.to_string(),
            ..Typed::default()
        },
        ..ActionFields::default()
    };
    for (k, v) in form_urlencoded::parse(body) {
        let v = v.into_owned();
        match k.as_ref() {
            "csrf" => f.csrf = v,
            "version" => f.version = v,
            "cle" => f.cle = v,
            "verdict" => f.typed.verdict = v,
            "motivation" => f.typed.motivation = v,
            "comment" => f.typed.comment = v,
            "pieces" => f.typed.pieces.push(v),
            "due_on" => f.typed.due_on = v,
            _ => {}
        }
    }
    f
}

/// The API's field names, as the form names them.
fn form_field(field: &str) -> String {
    let field = field.split('[').next().unwrap_or(field);
    match field {
        "expected_version" => "version".into(),
        "file" | "fichier" => "fichier".into(),
        other => other.to_string(),
    }
}

/// The refusal of `error`, placed where the form shows it.
fn form_errors(error: &ApiError) -> FormErrors {
    let problem = error.problem();
    let mut errors = FormErrors::default();
    // Fields the forms show; a refusal about anything else goes above.
    const SHOWN: [&str; 6] = [
        "verdict",
        "motivation",
        "comment",
        "pieces",
        "due_on",
        "fichier",
    ];
    match problem.field.as_deref().map(form_field) {
        Some(field) if SHOWN.contains(&field.as_str()) => {
            errors.alert = Some(format!("{} : voir le champ signalé.", problem.title));
            errors.fields.insert(field, problem.detail);
        }
        _ => errors.alert = Some(problem.detail),
    }
    errors
}

fn some_text(text: &str) -> Option<String> {
    Some(text.to_string()).filter(|t| !t.trim().is_empty())
}

/// The answer to a sent form: back to the dossier on success; the page again
/// with the refusal, the changes or the error otherwise.
async fn answer(
    state: &AppState,
    signed: &SignedIn,
    id: DossierId,
    typed: Typed,
    version: u64,
    outcome: Result<Response, ApiError>,
) -> Response {
    match outcome {
        Ok(_) => Redirect::to(&format!("/dossiers/{}?fait={}", id, typed.action)).into_response(),
        Err(ApiError::Conflict { .. }) => {
            let extras = Extras {
                typed: Some(typed),
                stale_from: Some(version),
                ..Extras::default()
            };
            show(state, signed, id, StatusCode::CONFLICT, extras).await
        }
        Err(e @ (ApiError::NotFound { .. } | ApiError::Unavailable | ApiError::Internal(_))) => {
            error_page(Some(signed.layout(state, "")), e)
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.problem().status)
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let extras = Extras {
                typed: Some(typed),
                errors: Some(form_errors(&e)),
                ..Extras::default()
            };
            show(state, signed, id, status, extras).await
        }
    }
}

fn idempotency_header(cle: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(cle) {
        if !cle.is_empty() && cle.len() <= 200 {
            headers.insert("idempotency-key", v);
        }
    }
    headers
}

/// `GET` of a form's address (a refused form's page reloaded, or kept as a
/// bookmark): the dossier.
pub async fn back_to_dossier(Path(params): Path<Vec<(String, String)>>) -> Redirect {
    let id = params
        .iter()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| dossier_id(v))
        .map_or_else(|| "/".to_string(), |id| format!("/dossiers/{id}"));
    Redirect::to(&id)
}

/// `POST /dossiers/{id}/actions/{action}`
pub async fn act(
    State(state): State<AppState>,
    signed: SignedIn,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let def = &state.definition;
    let fields = read_fields(&body, &action);
    if !signed.csrf_ok(&fields.csrf) {
        return super::expired_form();
    }
    let (Some(id), Some(_)) = (dossier_id(&id), def.action(&action)) else {
        return error_page(
            Some(signed.layout(&state, "")),
            ApiError::dossier_not_found(),
        );
    };
    let typed = fields.typed;
    let Ok(version) = fields.version.parse::<u64>() else {
        let error = ApiError::bad_field(
            "version",
            "Le formulaire a perdu la version du dossier : rechargez la page.",
        );
        return answer(&state, &signed, id, typed, 0, Err(error)).await;
    };
    let due_on = match typed.due_on.trim() {
        "" => None,
        text => match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) => Some(day),
            Err(_) => {
                let error = ApiError::invalid_field(
                    "due_on",
                    "Indiquez une date limite valide (jour, mois, année).",
                );
                return answer(&state, &signed, id, typed, version, Err(error)).await;
            }
        },
    };
    let requests = def
        .action(&action)
        .is_some_and(|a| a.effect == Effect::RequestPieces);
    let request = TransitionBody {
        action: action.clone(),
        expected_version: version,
        verdict: some_text(&typed.verdict),
        motivation: some_text(&typed.motivation),
        comment: some_text(&typed.comment),
        pieces: requests.then(|| typed.pieces.clone()),
        due_on: if requests { due_on } else { None },
    };
    let outcome = match transition_command(def, &request) {
        Ok(command) => {
            let fingerprint = serde_json::json!({
                "action": action, "version": version, "verdict": request.verdict,
                "motivation": request.motivation, "comment": request.comment,
                "pieces": request.pieces, "due_on": request.due_on,
            })
            .to_string();
            let submission = Submission {
                dossier_id: id,
                expected_version: Some(version),
                command,
                request_line: format!("POST /dossiers/{id}/transitions"),
                body: fingerprint.as_bytes(),
                status: StatusCode::OK,
                arrival: None,
            };
            run(
                &state,
                Principal::Actor(signed.actor.clone()),
                &idempotency_header(&fields.cle),
                submission,
            )
            .await
        }
        Err(e) => Err(e),
    };
    answer(&state, &signed, id, typed, version, outcome).await
}

/// `POST /dossiers/{id}/pieces`: a new file for a pièce (multipart: the
/// form's token and version first, then the pièce, a comment, the file).
pub async fn attach(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let Some(id) = dossier_id(&id) else {
        return error_page(
            Some(signed.layout(&state, "")),
            ApiError::dossier_not_found(),
        );
    };
    let Some(action) = state
        .definition
        .actions()
        .iter()
        .find(|a| a.effect == Effect::AttachPiece)
    else {
        return error_page(
            Some(signed.layout(&state, "")),
            ApiError::dossier_not_found(),
        );
    };
    let Some(boundary) = crate::http::pieces::is_multipart(&headers) else {
        return super::expired_form();
    };
    let mut typed = Typed {
        action: action.id.to_string(),
        ..Typed::default()
    };
    let mut version = 0;
    let outcome = attach_form(
        &state,
        &signed,
        id,
        action,
        boundary,
        request,
        &mut typed,
        &mut version,
    )
    .await;
    let outcome = match outcome {
        Err(AttachError::Csrf) => return super::expired_form(),
        Err(AttachError::Api(e)) => Err(e),
        Ok(r) => Ok(r),
    };
    answer(&state, &signed, id, typed, version, outcome).await
}

enum AttachError {
    Csrf,
    Api(ApiError),
}

impl From<ApiError> for AttachError {
    fn from(e: ApiError) -> Self {
        AttachError::Api(e)
    }
}

#[allow(clippy::too_many_arguments)]
async fn attach_form(
    state: &AppState,
    signed: &SignedIn,
    id: DossierId,
    action: &ami_core::ActionDef,
    boundary: String,
    request: axum::extract::Request,
    typed: &mut Typed,
    version: &mut u64,
) -> Result<Response, AttachError> {
    let def = &state.definition;
    let limits = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .for_field("csrf", 1024)
            .for_field("version", 1024)
            .for_field("cle", 1024)
            .for_field("pieces", 1024)
            .for_field("comment", crate::http::BODY_LIMIT as u64),
    );
    let mut form = multer::Multipart::with_constraints(
        request.into_body().into_data_stream(),
        boundary,
        limits,
    );
    let mut csrf_checked = false;
    let mut cle = String::new();
    let mut received = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(crate::http::pieces::form_error)?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "fichier" {
            // Nothing is stored for a form that is not the session's, or
            // for a pièce that would be refused anyway.
            if !csrf_checked {
                return Err(AttachError::Csrf);
            }
            let kind = typed.pieces.first().cloned().unwrap_or_default();
            let Some(piece) = def.piece(&kind) else {
                return Err(ApiError::invalid_field(
                    "pieces",
                    "Choisissez la pièce que ce fichier remplace ou complète.",
                )
                .into());
            };
            let d = readable(state, signed, id).await?;
            if d.version != *version {
                return Err(ApiError::Conflict {
                    current: Some(d.version),
                }
                .into());
            }
            ami_core::authorize(def, &action.id, &signed.actor)
                .map_err(|r| ApiError::refused(&r, r.explain(def)))?;
            let filename = field
                .file_name()
                .map(str::to_string)
                .filter(|f| !f.is_empty());
            if filename.is_none() {
                return Err(
                    ApiError::invalid_field("fichier", "Choisissez le fichier à envoyer.").into(),
                );
            }
            received = Some(
                crate::http::pieces::receive_piece(
                    state,
                    piece,
                    filename.as_deref(),
                    field,
                    "fichier",
                )
                .await?,
            );
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(crate::http::pieces::form_error)?;
        match name.as_str() {
            "csrf" => {
                if !signed.csrf_ok(&text) {
                    return Err(AttachError::Csrf);
                }
                csrf_checked = true;
            }
            "version" => *version = text.trim().parse().unwrap_or(0),
            "cle" => cle = text,
            "pieces" => typed.pieces = vec![text],
            "comment" => typed.comment = text,
            _ => {}
        }
    }
    if !csrf_checked {
        return Err(AttachError::Csrf);
    }
    let received = received
        .ok_or_else(|| ApiError::invalid_field("fichier", "Choisissez le fichier à envoyer."))?;
    crate::http::dossiers::check_text("comment", Some(&typed.comment))?;
    let fingerprint = serde_json::json!({
        "kind": received.kind, "filename": received.filename, "sha256": received.sha256,
        "expected_version": *version, "comment": typed.comment,
    })
    .to_string();
    let command = crate::store::Order {
        action: action.id.as_str().into(),
        comment: some_text(&typed.comment)
            .as_deref()
            .map(ami_core::text::nfc)
            .map(Into::into),
        content: crate::store::Content::Piece(received),
        ..crate::store::Order::default()
    };
    let submission = Submission {
        dossier_id: id,
        expected_version: Some(*version),
        command,
        request_line: format!(
            "PUT /dossiers/{id}/pieces/{}",
            typed.pieces.first().cloned().unwrap_or_default()
        ),
        body: fingerprint.as_bytes(),
        status: StatusCode::OK,
        arrival: None,
    };
    Ok(run(
        state,
        Principal::Actor(signed.actor.clone()),
        &idempotency_header(&cle),
        submission,
    )
    .await?)
}

/// `GET /dossiers/{id}/pieces/{kind}`: the latest file of a pièce.
pub async fn download_latest(
    State(state): State<AppState>,
    signed: SignedIn,
    Path((id, kind)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    download(&state, &signed, &id, &kind, None, &headers).await
}

/// `GET /dossiers/{id}/pieces/{kind}/versions/{version}`
pub async fn download_version(
    State(state): State<AppState>,
    signed: SignedIn,
    Path((id, kind, version)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    match version.parse::<u32>() {
        Ok(v) if v >= 1 => download(&state, &signed, &id, &kind, Some(v), &headers).await,
        _ => error_page(
            Some(signed.layout(&state, "")),
            ApiError::dossier_not_found(),
        ),
    }
}

async fn download(
    state: &AppState,
    signed: &SignedIn,
    id: &str,
    kind: &str,
    version: Option<u32>,
    headers: &HeaderMap,
) -> Response {
    let Ok(id) = Uuid::parse_str(id) else {
        return error_page(
            Some(signed.layout(state, "")),
            ApiError::dossier_not_found(),
        );
    };
    let caller = Caller {
        actor: signed.actor.clone(),
    };
    match crate::http::pieces::download(state, &caller, id, kind, version, headers).await {
        Ok(file) => file,
        Err(e) => error_page(Some(signed.layout(state, "")), e),
    }
}
