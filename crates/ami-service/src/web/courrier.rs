//! « Courrier arrivé »: the messages received in the AMI's mailbox, for the
//! DAR. The list by state, one message with its text and files, and the
//! three ways to handle it: a new dossier, a new version of a pièce of an
//! existing dossier, or set aside. Each form goes through the JSON API's own
//! functions (`http::arrivals`, `http::dossiers`): the same checks, one
//! transaction, nothing written on a refusal.

use std::collections::HashMap;

use ami_core::{DossierId, Piece};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::{error_page, format, random_token, render, Layout, SignedIn};
use crate::http::arrivals::{self as api, ArrivalDetail, SetAsideBody};
use crate::http::dossiers::{
    check_line, check_text, deposit_from, readable_dossier, run, FromArrival, Submission,
};
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::http::views::{NewDossierBody, PorteurBody};
use crate::http::{AppState, Caller};
use crate::store::{
    ArrivalCursor, ArrivalFilter, ArrivalRecord, ArrivalState, Content, DossierFilter, Handling,
    Order, Principal,
};

/// Rows per page.
const PAGE: u32 = 50;

/// The states of an arrival as the page names them: the query's value, the
/// tab, the badge and its DSFR class.
const STATES: [(ArrivalState, &str, &str, &str); 4] = [
    (
        ArrivalState::Nouveau,
        "À traiter",
        "Nouveau",
        "fr-badge--new",
    ),
    (
        ArrivalState::Quarantaine,
        "Quarantaine",
        "Quarantaine",
        "fr-badge--warning",
    ),
    (
        ArrivalState::Traite,
        "Traités",
        "Traité",
        "fr-badge--success",
    ),
    (ArrivalState::Ecarte, "Écartés", "Écarté", ""),
];

fn badge(state: ArrivalState) -> (&'static str, &'static str) {
    STATES
        .iter()
        .find(|(s, ..)| *s == state)
        .map_or(("", ""), |(_, _, label, class)| (*label, *class))
}

fn caller(signed: &SignedIn) -> Caller {
    Caller {
        actor: signed.actor.clone(),
    }
}

/// Anyone but the DAR gets the page the other DAR-only pages give: this
/// page does not exist for them.
fn not_for_you(state: &AppState, signed: &SignedIn) -> Option<Response> {
    api::dar_only(state, &caller(signed)).err().map(|_| {
        error_page(
            Some(signed.layout(state, "")),
            ApiError::NotFound {
                detail: String::new(),
            },
        )
    })
}

fn not_found(state: &AppState, signed: &SignedIn) -> Response {
    error_page(
        Some(signed.layout(state, "courrier")),
        ApiError::NotFound {
            detail: String::new(),
        },
    )
}

fn wave_label(wave: Option<u8>) -> String {
    wave.map_or_else(|| "hors campagne".to_string(), |w| format!("Vague {w}"))
}

fn subject_or_none(subject: &str) -> String {
    if subject.trim().is_empty() {
        "(sans objet)".to_string()
    } else {
        subject.to_string()
    }
}

// --- The list ------------------------------------------------------------

/// A tab of the list.
pub struct Tab {
    pub value: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// A message as a line of the list.
pub struct Row {
    pub id: String,
    pub received: String,
    pub sender: String,
    pub subject: String,
    pub wave: String,
    pub attachments: usize,
    pub state_label: &'static str,
    pub state_badge: &'static str,
}

#[derive(Template)]
#[template(path = "courrier.html")]
struct ListPage {
    layout: Layout,
    tabs: Vec<Tab>,
    /// The tab shown, as the table's caption says it.
    caption: String,
    error: Option<String>,
    notice: Option<String>,
    rows: Vec<Row>,
    next: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    etat: String,
    #[serde(default)]
    apres: String,
    /// `ecarte`: the message was set aside just now.
    #[serde(default)]
    fait: String,
}

/// `GET /courrier`
pub async fn list(
    State(state): State<AppState>,
    signed: SignedIn,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(refused) = not_for_you(&state, &signed) {
        return refused;
    }
    let query = query.map(|q| q.0).unwrap_or_default();
    let mut error = None;
    let shown = if query.etat.is_empty() {
        ArrivalState::Nouveau
    } else {
        ArrivalState::read("etat", &query.etat).unwrap_or_else(|_| {
            error = Some("Cet état n'existe pas : la liste montre le courrier à traiter.".into());
            ArrivalState::Nouveau
        })
    };
    let mut filter = ArrivalFilter {
        state: Some(shown),
        cursor: None,
        limit: PAGE,
    };
    if !query.apres.is_empty() {
        match ArrivalCursor::decode(&query.apres) {
            Some(c) => filter.cursor = Some(c),
            None => {
                error.get_or_insert_with(|| {
                    "Ce lien de page n'est plus valable : la liste reprend au début.".into()
                });
            }
        }
    }
    let page = match state.store.arrivals(&filter).await {
        Ok(page) => page,
        Err(e) => return error_page(Some(signed.layout(&state, "courrier")), e.into()),
    };
    let tz = state.definition.campaign().time_zone;
    let rows = page
        .items
        .iter()
        .map(|a| {
            let (state_label, state_badge) = badge(a.state);
            Row {
                id: a.id.to_string(),
                received: ami_core::french_instant(a.received_at, tz),
                sender: if a.sender.is_empty() {
                    "(inconnu)".to_string()
                } else {
                    a.sender.clone()
                },
                subject: subject_or_none(&a.subject),
                wave: wave_label(a.wave),
                attachments: a.attachments.len(),
                state_label,
                state_badge,
            }
        })
        .collect();
    let etat = shown.as_str();
    let next = page.next.map(|cursor| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("etat", etat)
            .append_pair("apres", &cursor)
            .finish()
    });
    let tab_label = badge_tab(shown);
    render(&ListPage {
        layout: signed.layout(&state, "courrier"),
        tabs: STATES
            .iter()
            .map(|(s, label, ..)| Tab {
                value: s.as_str(),
                label,
                current: *s == shown,
            })
            .collect(),
        caption: format!("Courrier arrivé : {}", tab_label.to_lowercase()),
        error,
        notice: (query.fait == "ecarte")
            .then(|| "Le courrier a été écarté : c'est enregistré.".to_string()),
        rows,
        next,
    })
}

fn badge_tab(state: ArrivalState) -> &'static str {
    STATES
        .iter()
        .find(|(s, ..)| *s == state)
        .map_or("", |(_, tab, ..)| *tab)
}

// --- One message -----------------------------------------------------------

pub struct Summary {
    pub id: String,
    pub subject: String,
    pub sender: String,
    pub sender_name: Option<String>,
    pub received: String,
    pub wave: String,
    pub state_label: &'static str,
    pub state_badge: &'static str,
    pub text: String,
    pub quarantine_reason: Option<String>,
}

pub struct FileLine {
    pub filename: String,
    pub detail: String,
    pub url: String,
}

/// How a handled message was handled.
pub struct Handled {
    pub how: &'static str,
    pub by: String,
    pub at: String,
    /// The dossier it became or joined: its page and its reference.
    pub dossier: Option<(String, String)>,
    pub motivation: Option<String>,
}

/// An option of a select.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A checkbox.
pub struct Check {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

/// The select of a pièce kind for one attachment.
pub struct PieceSelect {
    /// The field's name (`piece_0`), its id is the form's prefix and this.
    pub name: String,
    pub filename: String,
    pub options: Vec<Opt>,
}

/// A link of the error summary to the field at fault.
pub struct ErrorLink {
    pub target: String,
    pub text: String,
}

/// What a refused form shows: a summary above it naming each field at
/// fault, and the words under each field.
#[derive(Default)]
pub struct FormErrors {
    pub alert: Option<String>,
    pub fields: HashMap<String, String>,
    pub links: Vec<ErrorLink>,
}

impl FormErrors {
    pub fn field(&self, name: &str) -> Option<&String> {
        self.fields.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

/// « Créer le dossier », as typed (or as guessed).
#[derive(Default, Clone)]
pub struct DepotTyped {
    pub commune: String,
    pub code_insee: String,
    pub porteur_nom: String,
    pub porteur_email: String,
    pub programmes: Vec<String>,
    /// Per attachment, the pièce it becomes (empty: not joined).
    pub pieces: Vec<String>,
    pub comment: String,
    pub doublon_confirme: bool,
}

/// « Rattacher à un dossier existant », as typed (or as guessed).
#[derive(Default, Clone)]
pub struct AttachTyped {
    pub reference: String,
    pub pieces: Vec<String>,
    pub comment: String,
}

pub struct DepotForm {
    pub v: DepotTyped,
    pub programmes: Vec<Check>,
    pub pieces: Vec<PieceSelect>,
    pub cle: String,
    pub errors: FormErrors,
    /// The refusal was a doublon: the form offers to confirm a second
    /// project of the commune.
    pub doublon: bool,
}

pub struct AttachForm {
    pub v: AttachTyped,
    pub pieces: Vec<PieceSelect>,
    pub cle: String,
    pub errors: FormErrors,
}

pub struct AsideForm {
    pub motivation: String,
    pub errors: FormErrors,
}

#[derive(Template)]
#[template(path = "courrier_detail.html")]
struct ArrivalPage {
    layout: Layout,
    a: Summary,
    files: Vec<FileLine>,
    raw_url: String,
    handled: Option<Handled>,
    depot: Option<DepotForm>,
    rattacher: Option<AttachForm>,
    ecarter: Option<AsideForm>,
    /// A refusal of a form the page no longer shows (the message was
    /// handled meanwhile).
    refusal: Option<String>,
    /// The tab of the list this message is in.
    back: String,
}

/// The form that was sent, with what it held and why it was refused.
enum Sent {
    Nothing,
    Depot(DepotTyped, ApiError),
    Attach(AttachTyped, ApiError),
    Aside(String, ApiError),
}

/// The form's field of an API field (`porteur.nom` → `porteur_nom`,
/// `piece_1.kind` → `piece_1`), and how the summary names it.
fn form_field(field: &str) -> String {
    let head = field.split(['.', '[']).next().unwrap_or(field);
    match head {
        "porteur" if field.ends_with("email") => "porteur_email".into(),
        "porteur" => "porteur_nom".into(),
        "dossier_id" | "expected_version" => "reference".into(),
        other => other.to_string(),
    }
}

fn field_label(field: &str, filenames: &[String]) -> String {
    match field {
        "commune" => "Commune".into(),
        "code_insee" => "Code INSEE".into(),
        "porteur_nom" => "Porteur".into(),
        "porteur_email" => "Adresse électronique du porteur".into(),
        "programmes" => "Programmes".into(),
        "comment" => "Commentaire".into(),
        "reference" => "Référence du dossier".into(),
        "motivation" => "Motivation".into(),
        other => match other
            .strip_prefix("piece_")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| filenames.get(n))
        {
            Some(name) => format!("Pièce jointe « {name} »"),
            None => other.to_string(),
        },
    }
}

/// The refusal `error` as a form shows it: the fields it names under
/// themselves and in the summary; anything else in the summary's text.
fn form_errors(error: &ApiError, prefix: &str, shown: &[&str], filenames: &[String]) -> FormErrors {
    let problem = error.problem();
    let mut errors = FormErrors::default();
    let field = problem.field.as_deref().map(form_field);
    match field {
        Some(f) if shown.contains(&f.as_str()) || f.starts_with("piece_") => {
            let label = field_label(&f, filenames);
            errors.alert = Some(format!("{} : voir le champ « {label} ».", problem.title));
            errors.links.push(ErrorLink {
                target: format!("{prefix}-{f}"),
                text: format!("{label} : {}", problem.detail),
            });
            errors.fields.insert(f, problem.detail);
        }
        _ => errors.alert = Some(problem.detail),
    }
    errors
}

fn summary(def: &ami_core::Definition, d: &ArrivalDetail) -> Summary {
    let a = &d.arrival;
    let tz = def.campaign().time_zone;
    let (state_label, state_badge) = badge(a.state);
    Summary {
        id: a.id.to_string(),
        subject: subject_or_none(&a.subject),
        sender: if a.from.is_empty() {
            "(inconnu)".into()
        } else {
            a.from.clone()
        },
        sender_name: d.from_name.clone().filter(|n| !n.trim().is_empty()),
        received: ami_core::french_instant_seconds(a.received_at, tz),
        wave: wave_label(a.wave),
        state_label,
        state_badge,
        text: d.text.clone(),
        quarantine_reason: a.quarantine_reason.clone(),
    }
}

/// The pièce selects of a form, one per attachment, `chosen` selected.
fn piece_selects(
    def: &ami_core::Definition,
    d: &ArrivalDetail,
    chosen: &[String],
) -> Vec<PieceSelect> {
    d.arrival
        .attachments
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let current = chosen.get(i).map_or("", String::as_str);
            let mut options = vec![Opt {
                value: String::new(),
                label: "Ne pas joindre".into(),
                selected: current.is_empty(),
            }];
            options.extend(def.pieces().iter().map(|p| Opt {
                value: p.id.to_string(),
                label: p.label.clone(),
                selected: current == p.id,
            }));
            PieceSelect {
                name: format!("piece_{i}"),
                filename: f.filename.clone(),
                options,
            }
        })
        .collect()
}

/// What `ami` guesses of the message, as the forms' first values.
fn guessed(d: &ArrivalDetail) -> (DepotTyped, AttachTyped) {
    let n = d.arrival.attachments.len();
    let mut depot = DepotTyped {
        pieces: vec![String::new(); n],
        // Who wrote is the best guess of who applies (« Mairie de
        // Nevers »); the agent corrects a person's name.
        porteur_nom: d
            .from_name
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_string(),
        porteur_email: d.arrival.from.clone(),
        ..DepotTyped::default()
    };
    let mut attach = AttachTyped {
        pieces: vec![String::new(); n],
        ..AttachTyped::default()
    };
    if let Some(g) = &d.guesses {
        if let Some(c) = &g.commune {
            depot.commune = c.nom.clone();
            depot.code_insee = c.code_insee.clone();
        }
        for (index, kind) in [
            (g.dossier_candidature, "dossier_candidature"),
            (g.budget_previsionnel, "budget_previsionnel"),
        ] {
            if let Some(slot) = index.and_then(|i| depot.pieces.get_mut(i)) {
                *slot = kind.to_string();
            }
        }
        attach.reference = g.reference.clone().unwrap_or_default();
        // A message about an existing dossier most often brings a
        // corrected budget: one attachment, the budget if one is guessed.
        let one = g
            .budget_previsionnel
            .map(|i| (i, "budget_previsionnel"))
            .or(g.dossier_candidature.map(|i| (i, "dossier_candidature")));
        if let Some(slot) = one.and_then(|(i, kind)| attach.pieces.get_mut(i).map(|s| (s, kind))) {
            *slot.0 = slot.1.to_string();
        }
    }
    (depot, attach)
}

/// The message with its text and guesses, through the API's own reading.
async fn detail(state: &AppState, signed: &SignedIn, id: Uuid) -> Result<ArrivalDetail, ApiError> {
    api::get(State(state.clone()), caller(signed), Path(id.to_string()))
        .await
        .map(|json| json.0)
}

async fn show(
    state: &AppState,
    signed: &SignedIn,
    id: Uuid,
    status: StatusCode,
    sent: Sent,
) -> Response {
    let def = &state.definition;
    let layout = || signed.layout(state, "courrier");
    let d = match detail(state, signed, id).await {
        Ok(d) => d,
        Err(ApiError::NotFound { .. } | ApiError::BadRequest { .. }) => {
            return not_found(state, signed);
        }
        Err(e) => return error_page(Some(layout()), e),
    };
    let tz = def.campaign().time_zone;
    let filenames: Vec<String> = d
        .arrival
        .attachments
        .iter()
        .map(|f| f.filename.clone())
        .collect();
    let files = d
        .arrival
        .attachments
        .iter()
        .enumerate()
        .map(|(i, f)| FileLine {
            filename: f.filename.clone(),
            detail: format!(
                "{} – {}",
                ami_core::FILE_TYPES
                    .iter()
                    .find(|t| t.media_type == f.media_type)
                    .map_or_else(|| f.media_type.clone(), |t| t.label.to_string()),
                format::size(f.size)
            ),
            url: format!("/courrier/{id}/pieces-jointes/{i}"),
        })
        .collect();
    let handled = match &d.arrival.handling {
        None => None,
        Some(h) => {
            let dossier = match h.dossier_id {
                Some(did) => Some((
                    format!("/dossiers/{did}"),
                    readable_dossier(state, &caller(signed), DossierId(did))
                        .await
                        .map_or_else(|_| "le dossier".to_string(), |x| x.reference.to_string()),
                )),
                None => None,
            };
            Some(Handled {
                how: match h.how {
                    Handling::Depot => "Dossier créé à partir de ce courrier",
                    Handling::Rattachement => "Rattaché à un dossier existant",
                    Handling::Ecarte => "Écarté",
                },
                by: h
                    .by_name
                    .clone()
                    .or_else(|| h.by.clone())
                    .unwrap_or_default(),
                at: h
                    .at
                    .map(|at| ami_core::french_instant(at, tz))
                    .unwrap_or_default(),
                dossier,
                motivation: h.motivation.clone(),
            })
        }
    };
    let open = d.arrival.state == ArrivalState::Nouveau;
    let quarantined = d.arrival.state == ArrivalState::Quarantaine;
    let (guess_depot, guess_attach) = guessed(&d);
    let mut refusal = None;
    let (mut depot_sent, mut attach_sent, mut aside_sent) = (None, None, None);
    match sent {
        Sent::Nothing => {}
        Sent::Depot(typed, e) => {
            let errors = form_errors(
                &e,
                "depot",
                &[
                    "commune",
                    "code_insee",
                    "porteur_nom",
                    "porteur_email",
                    "programmes",
                    "comment",
                ],
                &filenames,
            );
            let doublon = e.problem().code == "doublon";
            if open {
                depot_sent = Some((typed, errors, doublon));
            } else {
                refusal = Some(e.problem().detail);
            }
        }
        Sent::Attach(typed, e) => {
            let errors = form_errors(&e, "rattacher", &["reference", "comment"], &filenames);
            if open {
                attach_sent = Some((typed, errors));
            } else {
                refusal = Some(e.problem().detail);
            }
        }
        Sent::Aside(motivation, e) => {
            let errors = form_errors(&e, "ecarter", &["motivation"], &filenames);
            if open || quarantined {
                aside_sent = Some((motivation, errors));
            } else {
                refusal = Some(e.problem().detail);
            }
        }
    }
    let depot = open.then(|| {
        let (v, errors, doublon) =
            depot_sent.unwrap_or_else(|| (guess_depot, FormErrors::default(), false));
        DepotForm {
            programmes: def
                .programmes()
                .iter()
                .map(|p| Check {
                    value: p.id.to_string(),
                    label: p.label.clone(),
                    checked: v.programmes.iter().any(|x| *x == p.id),
                })
                .collect(),
            pieces: piece_selects(def, &d, &v.pieces),
            v,
            cle: random_token(),
            errors,
            doublon,
        }
    });
    let rattacher = (open && !d.arrival.attachments.is_empty()).then(|| {
        let (v, errors) = attach_sent.unwrap_or_else(|| (guess_attach, FormErrors::default()));
        AttachForm {
            pieces: piece_selects(def, &d, &v.pieces),
            v,
            cle: random_token(),
            errors,
        }
    });
    let ecarter = (open || quarantined).then(|| {
        let (motivation, errors) =
            aside_sent.unwrap_or_else(|| (String::new(), FormErrors::default()));
        AsideForm { motivation, errors }
    });
    let page = ArrivalPage {
        layout: layout(),
        back: format!("/courrier?etat={}", d.arrival.state.as_str()),
        a: summary(def, &d),
        files,
        raw_url: format!("/courrier/{id}/original"),
        handled,
        depot,
        rattacher,
        ecarter,
        refusal,
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    response
}

fn arrival_id(raw: &str) -> Option<Uuid> {
    Uuid::try_parse(raw).ok()
}

/// `GET /courrier/{id}`
pub async fn page(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = not_for_you(&state, &signed) {
        return refused;
    }
    let Some(id) = arrival_id(&id) else {
        return not_found(&state, &signed);
    };
    show(&state, &signed, id, StatusCode::OK, Sent::Nothing).await
}

/// `GET` of a form's address (a refused form's page reloaded): the message.
pub async fn back_to_arrival(Path(id): Path<String>) -> Redirect {
    match arrival_id(&id) {
        Some(id) => Redirect::to(&format!("/courrier/{id}")),
        None => Redirect::to("/courrier"),
    }
}

/// `GET /courrier/{id}/original`: the message as received (`.eml`), by the
/// API's own download.
pub async fn raw(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = not_for_you(&state, &signed) {
        return refused;
    }
    let layout = signed.layout(&state, "courrier");
    match api::raw(State(state), caller(&signed), Path(id)).await {
        Ok(file) => file,
        Err(e) => error_page(Some(layout), e),
    }
}

/// `GET /courrier/{id}/pieces-jointes/{n}`: one attached file, by the API's
/// own download.
pub async fn attachment(
    State(state): State<AppState>,
    signed: SignedIn,
    Path((id, n)): Path<(String, String)>,
) -> Response {
    if let Some(refused) = not_for_you(&state, &signed) {
        return refused;
    }
    let layout = signed.layout(&state, "courrier");
    match api::attachment(State(state), caller(&signed), Path((id, n))).await {
        Ok(file) => file,
        Err(e) => error_page(Some(layout), e),
    }
}

// --- The forms -------------------------------------------------------------

/// A form's fields, as sent (`application/x-www-form-urlencoded`).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn read(body: &[u8]) -> Fields {
        Fields(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The `piece_{i}` selects, one value per attachment (empty: not
    /// joined); a select of no attachment is ignored.
    fn pieces(&self, attachments: usize) -> Vec<String> {
        let mut pieces = vec![String::new(); attachments];
        for (k, v) in &self.0 {
            let index = k
                .strip_prefix("piece_")
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(slot) = index.and_then(|i| pieces.get_mut(i)) {
                *slot = v.trim().to_string();
            }
        }
        pieces
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

fn some_text(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// What every form's handler checks first: the DAR, the session's form,
/// an arrival id; then the arrival as stored.
async fn admit(
    state: &AppState,
    signed: &SignedIn,
    id: &str,
    fields: &Fields,
) -> Result<(Uuid, ArrivalRecord), Response> {
    if let Some(refused) = not_for_you(state, signed) {
        return Err(refused);
    }
    if !signed.csrf_ok(&fields.get("csrf")) {
        return Err(super::expired_form());
    }
    let Some(id) = arrival_id(id) else {
        return Err(not_found(state, signed));
    };
    match state.store.arrival(id).await {
        Ok(Some(a)) => Ok((id, a)),
        Ok(None) => Err(not_found(state, signed)),
        Err(e) => Err(error_page(Some(signed.layout(state, "courrier")), e.into())),
    }
}

/// The page again after a refusal, or the error page for what no form
/// can help with.
async fn refused(
    state: &AppState,
    signed: &SignedIn,
    id: Uuid,
    error: ApiError,
    sent: impl FnOnce(ApiError) -> Sent,
) -> Response {
    if matches!(
        error,
        ApiError::Unavailable | ApiError::Internal(_) | ApiError::NotFound { .. }
    ) {
        return error_page(Some(signed.layout(state, "courrier")), error);
    }
    let status =
        StatusCode::from_u16(error.problem().status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    show(state, signed, id, status, sent(error)).await
}

/// `POST /courrier/{id}/dossier`: « Créer le dossier ».
pub async fn create_dossier(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = Fields::read(&body);
    let (id, arrival) = match admit(&state, &signed, &id, &fields).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let typed = DepotTyped {
        commune: fields.get("commune"),
        code_insee: fields.get("code_insee"),
        porteur_nom: fields.get("porteur_nom"),
        porteur_email: fields.get("porteur_email"),
        programmes: fields.all("programmes"),
        pieces: fields.pieces(arrival.attachments.len()),
        comment: fields.get("comment"),
        doublon_confirme: !fields.get("doublon_confirme").is_empty(),
    };
    match deposit(&state, &signed, &arrival, &typed, &fields.get("cle")).await {
        Ok(location) => Redirect::to(&location).into_response(),
        Err(e) => refused(&state, &signed, id, e, |e| Sent::Depot(typed, e)).await,
    }
}

/// The deposit of `POST /arrivals/{id}/dossier`: the attachments chosen
/// become pièces as the API makes them, then the API's deposit, the arrival
/// marked `traite` in its transaction. The new dossier's page on success.
async fn deposit(
    state: &AppState,
    signed: &SignedIn,
    arrival: &ArrivalRecord,
    typed: &DepotTyped,
    cle: &str,
) -> Result<String, ApiError> {
    let def = &state.definition;
    let action = def
        .creation_actions()
        .next()
        .ok_or_else(|| ApiError::Internal("no creation action".into()))?;
    check_text("comment", Some(&typed.comment))?;
    let mut files: Vec<Piece> = Vec::new();
    let mut chosen = Vec::new();
    for (i, kind) in typed.pieces.iter().enumerate() {
        if kind.is_empty() {
            continue;
        }
        if files.iter().any(|f| f.kind == *kind) {
            let label = def.piece(kind).map_or(kind.as_str(), |p| p.label.as_str());
            return Err(ApiError::invalid_field(
                &format!("piece_{i}"),
                format!("Deux pièces jointes pour « {label} » : choisissez-en une, l'autre « Ne pas joindre »."),
            ));
        }
        files
            .push(api::attachment_as_piece(state, arrival, kind, i, &format!("piece_{i}.")).await?);
        chosen.push(serde_json::json!({"kind": kind, "attachment": i}));
    }
    let body = NewDossierBody {
        commune: typed.commune.clone(),
        code_insee: typed.code_insee.trim().to_uppercase(),
        porteur: PorteurBody {
            nom: typed.porteur_nom.clone(),
            email: some_text(&typed.porteur_email),
        },
        programmes: typed.programmes.clone(),
        received_at: Some(arrival.received_at),
        pieces: Vec::new(),
        doublon_confirme: typed.doublon_confirme,
    };
    // What the request asks, for its idempotency key: the API's body.
    let fingerprint = serde_json::json!({
        "commune": body.commune, "code_insee": body.code_insee, "porteur": body.porteur,
        "programmes": body.programmes, "pieces": chosen,
        "doublon_confirme": body.doublon_confirme, "comment": some_text(&typed.comment),
    })
    .to_string();
    let created = deposit_from(
        state,
        Principal::Actor(signed.actor.clone()),
        &idempotency_header(cle),
        body,
        fingerprint.as_bytes(),
        files,
        Some(FromArrival {
            id: arrival.id,
            comment: some_text(&typed.comment),
            request_line: format!("POST /arrivals/{}/dossier", arrival.id),
        }),
    )
    .await?;
    let location = created
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.strip_prefix("/api/v1"))
        .map(str::to_string)
        .ok_or_else(|| ApiError::Internal("a deposit without its Location".into()))?;
    Ok(format!("{location}?fait={}", action.id))
}

/// `POST /courrier/{id}/rattacher`: « Rattacher à un dossier existant ».
pub async fn attach(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = Fields::read(&body);
    let (id, arrival) = match admit(&state, &signed, &id, &fields).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let typed = AttachTyped {
        reference: fields.get("reference"),
        pieces: fields.pieces(arrival.attachments.len()),
        comment: fields.get("comment"),
    };
    match attach_to(&state, &signed, &arrival, &typed, &fields.get("cle")).await {
        Ok(location) => Redirect::to(&location).into_response(),
        Err(e) => refused(&state, &signed, id, e, |e| Sent::Attach(typed, e)).await,
    }
}

/// The dossier of a reference, if this person may read it.
async fn by_reference(
    state: &AppState,
    signed: &SignedIn,
    reference: &str,
) -> Result<ami_core::Dossier, ApiError> {
    let filter = DossierFilter {
        q: Some(reference.to_string()),
        limit: 20,
        readable: signed.readable(state),
        ..DossierFilter::default()
    };
    let found = state.store.list_dossiers(&filter).await?;
    found
        .items
        .into_iter()
        .find(|d| d.reference.eq_ignore_ascii_case(reference))
        .ok_or_else(|| {
            ApiError::invalid_field(
                "reference",
                format!("Aucun dossier ne porte la référence « {reference} »."),
            )
        })
}

/// The attachment of `POST /arrivals/{id}/attach`: one attachment as a new
/// version of a pièce of the dossier, through the API's transition, the
/// arrival marked `traite` in its transaction. The dossier's page on
/// success.
async fn attach_to(
    state: &AppState,
    signed: &SignedIn,
    arrival: &ArrivalRecord,
    typed: &AttachTyped,
    cle: &str,
) -> Result<String, ApiError> {
    let reference = typed.reference.trim();
    if reference.is_empty() {
        return Err(ApiError::invalid_field(
            "reference",
            "Indiquez la référence du dossier, par exemple AMI2-V1-0007.",
        ));
    }
    check_line("reference", reference, true)?;
    check_text("comment", Some(&typed.comment))?;
    let chosen: Vec<(usize, &String)> = typed
        .pieces
        .iter()
        .enumerate()
        .filter(|(_, k)| !k.is_empty())
        .collect();
    let (index, kind) = match chosen.as_slice() {
        [] => {
            return Err(ApiError::invalid_field(
                "piece_0",
                "Choisissez la pièce jointe à rattacher et la pièce du dossier qu'elle remplace ou complète.",
            ))
        }
        [one] => *one,
        [_, (second, _), ..] => {
            return Err(ApiError::invalid_field(
                &format!("piece_{second}"),
                "Un courrier se rattache par une seule pièce jointe : laissez les autres sur « Ne pas joindre ».",
            ))
        }
    };
    let found = by_reference(state, signed, reference).await?;
    let dossier = readable_dossier(state, &caller(signed), found.id).await?;
    let action = crate::http::pieces::attach_action(state)?;
    let piece =
        api::attachment_as_piece(state, arrival, kind, index, &format!("piece_{index}.")).await?;
    let fingerprint = serde_json::json!({
        "dossier_id": dossier.id, "expected_version": dossier.version, "kind": kind,
        "attachment": index, "comment": some_text(&typed.comment),
    })
    .to_string();
    let command = Order {
        action: action.id.as_str().into(),
        comment: some_text(&typed.comment)
            .as_deref()
            .map(ami_core::text::nfc)
            .map(Into::into),
        content: Content::Piece(piece),
        ..Order::default()
    };
    let submission = Submission {
        dossier_id: dossier.id,
        // The dossier as read just now: the form named it by reference.
        expected_version: Some(dossier.version),
        command,
        request_line: format!("POST /arrivals/{}/attach", arrival.id),
        body: fingerprint.as_bytes(),
        status: StatusCode::OK,
        arrival: Some(arrival.id),
    };
    run(
        state,
        Principal::Actor(signed.actor.clone()),
        &idempotency_header(cle),
        submission,
    )
    .await?;
    Ok(format!("/dossiers/{}?fait={}", dossier.id, action.id))
}

/// `POST /courrier/{id}/ecarter`: « Écarter », by the API's own handler.
pub async fn set_aside(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = Fields::read(&body);
    let (id, _) = match admit(&state, &signed, &id, &fields).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let motivation = fields.get("motivation");
    let reply = api::set_aside(
        State(state.clone()),
        caller(&signed),
        Path(id.to_string()),
        ApiJson(
            SetAsideBody {
                motivation: motivation.clone(),
            },
            Bytes::new(),
        ),
    )
    .await;
    match reply {
        Ok(_) => Redirect::to("/courrier?fait=ecarte").into_response(),
        Err(e) => refused(&state, &signed, id, e, |e| Sent::Aside(motivation, e)).await,
    }
}
