//! The agents' web pages, in French and in the State's design system
//! (DSFR): server-rendered HTML (askama, escaped), working without
//! JavaScript. A person signs in with their token; the browser then keeps an
//! opaque session id in a cookie, and every form carries the session's CSRF
//! token.

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;
use crate::http::{assets, AppState};
use crate::store::PresentedToken;

mod board;
mod courrier;
mod deposit;
mod dossier;
mod format;
mod lists;
mod live;
pub(crate) mod receipt;

const SESSION_COOKIE: &str = "ami_session";
/// The CSRF token of the sign-in form, before any session exists.
const SIGN_IN_COOKIE: &str = "ami_connexion";
/// Largest action form: two texts of 10,000 characters, each up to 6 bytes
/// a character once form-encoded.
const FORM_LIMIT: usize = 160 * 1024;
/// A session idle this long is over.
const IDLE: chrono::Duration = chrono::Duration::hours(8);

pub fn routes() -> Router<AppState> {
    use axum::routing::post;
    Router::new()
        .route("/", get(home))
        .route("/connexion", get(sign_in_page).post(sign_in))
        .route("/deconnexion", post(sign_out))
        .route("/a-traiter", get(lists::queue))
        .route("/dossiers", get(lists::all))
        .route("/exports/a-traiter.csv", get(lists::queue_csv))
        .route("/exports/a-traiter.xlsx", get(lists::queue_xlsx))
        .route("/exports/dossiers.csv", get(lists::all_csv))
        .route("/exports/dossiers.xlsx", get(lists::all_xlsx))
        .route(
            "/dossiers/nouveau",
            get(deposit::form).post(deposit::submit),
        )
        .route("/dossiers/{id}", get(dossier::page))
        // A motivation and a comment of 10,000 characters each, accented
        // and form-encoded, take up to 120 KB.
        .route(
            "/dossiers/{id}/actions/{action}",
            get(dossier::back_to_dossier)
                .post(dossier::act)
                .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT)),
        )
        .route(
            "/dossiers/{id}/pieces",
            get(dossier::back_to_dossier).post(dossier::attach),
        )
        .route(
            "/dossiers/{id}/pieces/{kind}",
            get(dossier::download_latest),
        )
        .route("/dossiers/{id}/recepisse", get(receipt::page))
        .route(
            "/dossiers/{id}/pieces/{kind}/versions/{version}",
            get(dossier::download_version),
        )
        .route("/courrier", get(courrier::list))
        .route("/courrier/{id}", get(courrier::page))
        .route("/courrier/{id}/original", get(courrier::raw))
        .route(
            "/courrier/{id}/pieces-jointes/{n}",
            get(courrier::attachment),
        )
        .route(
            "/courrier/{id}/dossier",
            get(courrier::back_to_arrival)
                .post(courrier::create_dossier)
                .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT)),
        )
        .route(
            "/courrier/{id}/rattacher",
            get(courrier::back_to_arrival)
                .post(courrier::attach)
                .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT)),
        )
        .route(
            "/courrier/{id}/ecarter",
            get(courrier::back_to_arrival)
                .post(courrier::set_aside)
                .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT)),
        )
        .route("/tableau-de-bord", get(board::dashboard))
        .route("/circuit", get(board::circuit))
        .route("/evenements", get(live::events))
        .route("/static/ami/{version}/{file}", get(assets::own))
}

/// A random value for a cookie or a form: 32 bytes, URL-safe base64.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(state.secure_cookies)
        .build()
}

/// What every page's frame shows.
pub struct Layout {
    pub person: Option<PersonView>,
    /// The navigation entry of this page (`a-traiter`, `dossiers`…).
    pub current: &'static str,
}

impl Layout {
    pub fn asset(&self, path: &str) -> String {
        assets::dsfr_url(path)
    }

    pub fn own_asset(&self, file: &str) -> String {
        assets::own_url(file)
    }

    /// The session's form token (empty when signed out).
    pub fn csrf(&self) -> &str {
        self.person.as_ref().map_or("", |p| p.csrf.as_str())
    }

    /// `aria-current="page"` on the entry of this page.
    pub fn is(&self, entry: &str) -> bool {
        self.current == entry
    }

    fn signed_out() -> Layout {
        Layout {
            person: None,
            current: "",
        }
    }
}

/// The signed-in person, as the header shows them.
pub struct PersonView {
    pub name: String,
    pub agency_label: String,
    pub csrf: String,
    /// Reads every dossier: « Tous les dossiers ».
    pub reads_all: bool,
    /// May deposit: « Nouveau dossier ».
    pub deposits: bool,
    /// Handles the mailbox's arrivals (the DAR): « Courrier arrivé ».
    pub handles_mail: bool,
}

/// A page of a signed-in person: their session, read from its cookie. A
/// browser without a live session is sent to « Se connecter ».
pub struct SignedIn {
    pub actor: ami_core::Actor,
    pub csrf: String,
    session_sha256: String,
}

impl SignedIn {
    fn layout(&self, state: &AppState, current: &'static str) -> Layout {
        let def = &state.definition;
        Layout {
            person: Some(PersonView {
                name: self.actor.name.to_string(),
                agency_label: agency_label(def, &self.actor.agency),
                csrf: self.csrf.clone(),
                reads_all: self.reads_all(state),
                deposits: self.deposits(state),
                handles_mail: self.handles_mail(state),
            }),
            current,
        }
    }

    fn reads_all(&self, state: &AppState) -> bool {
        state
            .definition
            .readable_programmes(&self.actor.agency)
            .is_none()
    }

    fn deposits(&self, state: &AppState) -> bool {
        let def = &state.definition;
        def.creation_actions()
            .any(|a| ami_core::authorize(def, &a.id, &self.actor).is_ok())
    }

    /// Of the agency that handles the arrivals, by the API's own rule.
    fn handles_mail(&self, state: &AppState) -> bool {
        let caller = crate::http::Caller {
            actor: self.actor.clone(),
        };
        crate::http::arrivals::dar_only(state, &caller).is_ok()
    }

    /// The programmes whose dossiers this person may read (`None`: all).
    fn readable(&self, state: &AppState) -> Option<Vec<String>> {
        state
            .definition
            .readable_programmes(&self.actor.agency)
            .map(|own| own.into_iter().map(str::to_string).collect())
    }

    /// The form token of a POST matches the session's.
    fn csrf_ok(&self, sent: &str) -> bool {
        same(&self.csrf, sent)
    }
}

/// A POST whose form token is not the session's: refused, nothing written.
fn expired_form() -> Response {
    error_page(
        None,
        ApiError::Other {
            status: StatusCode::FORBIDDEN,
            code: "form_expired",
            title: "Formulaire expiré",
            field: None,
            detail: "Ce formulaire n'appartient pas à votre session : rien n'a été enregistré. Rechargez la page et recommencez.".into(),
        },
    )
}

/// The DSFR badge of a state: the creation state is new, the final state a
/// `next_step` action reaches is a success, the other final states are
/// errors or plain, everything in between is information.
fn state_badge(def: &ami_core::Definition, state: &str) -> &'static str {
    let by_next_step = |s: &str| {
        def.actions()
            .iter()
            .any(|a| a.next_step && a.to.as_deref() == Some(s))
    };
    if def.is_terminal(state) {
        let first_other_end = def
            .states()
            .iter()
            .map(|s| s.id.as_str())
            .find(|s| def.is_terminal(s) && !by_next_step(s));
        if by_next_step(state) {
            "fr-badge--success"
        } else if first_other_end == Some(state) {
            "fr-badge--error"
        } else {
            ""
        }
    } else if def
        .creation_actions()
        .any(|a| a.to.as_deref() == Some(state))
    {
        "fr-badge--new"
    } else {
        "fr-badge--info"
    }
}

/// « Action Cœur de Ville, Territoires d'industrie »
fn programme_labels(def: &ami_core::Definition, d: &ami_core::Dossier) -> String {
    d.programmes
        .iter()
        .map(|p| def.programme(p).map_or(p.as_str(), |p| p.label.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An action's label, or its id when the definition no longer has it.
fn action_label(def: &ami_core::Definition, id: &str) -> String {
    if id == ami_core::migration::MIGRATION_ACTION {
        return "Changement de définition".into();
    }
    def.action(id)
        .map_or_else(|| id.to_string(), |a| a.label.clone())
}

/// A verdict's label, or its id when the definition no longer has it.
fn verdict_label(def: &ami_core::Definition, id: &str) -> String {
    def.verdict(id)
        .map_or_else(|| id.to_string(), |v| v.label.clone())
}

pub(crate) fn agency_label(def: &ami_core::Definition, agency: &str) -> String {
    def.agencies()
        .iter()
        .find(|a| a.id == agency)
        .map_or_else(|| agency.to_string(), |a| a.label.clone())
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let to_sign_in = || Redirect::to("/connexion").into_response();
        let id = jar.get(SESSION_COOKIE).ok_or_else(to_sign_in)?.value();
        let session_sha256 = sha256_hex(id);
        let found = state
            .store
            .find_session(&session_sha256, Utc::now(), IDLE)
            .await
            .map_err(|e| error_page(None, ApiError::from(e)))?
            .ok_or_else(to_sign_in)?;
        let actor = found
            .token
            .actor(&state.definition)
            .ok_or_else(to_sign_in)?;
        Ok(SignedIn {
            actor,
            csrf: found.csrf,
            session_sha256,
        })
    }
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => error_page(None, ApiError::Internal(e.to_string())),
    }
}

#[derive(Template)]
#[template(path = "erreur.html")]
struct ErrorPage {
    layout: Layout,
    title: String,
    detail: String,
}

/// An error as a page, with the status of the API's answer and its French
/// words: 404 « Page introuvable », 503 « Service momentanément
/// indisponible »…
fn error_page(layout: Option<Layout>, error: ApiError) -> Response {
    if let ApiError::Internal(cause) = &error {
        tracing::error!(%cause, "internal error");
    }
    let problem = error.problem();
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (title, detail) = if status == StatusCode::NOT_FOUND {
        (
            "Page introuvable".to_string(),
            "Cette page n'existe pas, ou elle concerne un dossier que votre direction n'a pas à connaître.".to_string(),
        )
    } else {
        (problem.title, problem.detail.clone())
    };
    let page = ErrorPage {
        layout: layout.unwrap_or_else(Layout::signed_out),
        title,
        detail,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, problem.detail).into_response(),
    }
}

/// Unknown addresses outside the API: the 404 page, with the person's
/// header when signed in.
pub async fn not_found(State(state): State<AppState>, parts: Parts) -> Response {
    // A program that does not ask for HTML gets the API's problem.
    let wants_html = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if !wants_html {
        return ApiError::NotFound {
            detail:
                "Cette adresse n'existe pas ; la liste des routes est dans /api/v1/openapi.json."
                    .into(),
        }
        .into_response();
    }
    let mut parts = parts;
    let layout = match SignedIn::from_request_parts(&mut parts, &state).await {
        Ok(signed) => Some(signed.layout(&state, "")),
        Err(_) => None,
    };
    error_page(
        layout,
        ApiError::NotFound {
            detail: String::new(),
        },
    )
}

async fn home(jar: CookieJar) -> Redirect {
    if jar.get(SESSION_COOKIE).is_some() {
        Redirect::to("/a-traiter")
    } else {
        Redirect::to("/connexion")
    }
}

#[derive(Template)]
#[template(path = "connexion.html")]
struct SignInPage {
    layout: Layout,
    csrf: String,
    error: Option<String>,
}

/// The sign-in page, with a fresh form token kept in a cookie of its own.
fn sign_in_form(state: &AppState, jar: CookieJar, error: Option<String>) -> (CookieJar, Response) {
    let csrf = random_token();
    let jar = jar.add(cookie(state, SIGN_IN_COOKIE, csrf.clone()));
    let page = SignInPage {
        layout: Layout::signed_out(),
        csrf,
        error,
    };
    (jar, render(&page))
}

async fn sign_in_page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, page) = sign_in_form(&state, jar, None);
    (jar, page).into_response()
}

#[derive(serde::Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    jeton: String,
}

async fn sign_in(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<SignInForm>,
) -> Response {
    let expected = jar.get(SIGN_IN_COOKIE).map(|c| c.value().to_string());
    if !expected.is_some_and(|e| same(&e, &form.csrf)) {
        let (jar, page) = sign_in_form(
            &state,
            jar,
            Some("Le formulaire a expiré : saisissez à nouveau votre jeton.".into()),
        );
        return (StatusCode::FORBIDDEN, jar, page).into_response();
    }
    let refused = |jar| {
        let (jar, page) = sign_in_form(
            &state,
            jar,
            Some("Ce jeton n'est pas reconnu ou a été révoqué. Vérifiez-le, ou demandez-en un nouveau.".into()),
        );
        (StatusCode::UNAUTHORIZED, jar, page).into_response()
    };
    let Some(presented) = PresentedToken::parse(form.jeton.trim()) else {
        return refused(jar);
    };
    let stored = match state.store.find_token(presented.id).await {
        Ok(stored) => stored,
        Err(e) => return error_page(None, ApiError::from(e)),
    };
    if presented.admit(&state.definition, stored).is_err() {
        return refused(jar);
    }
    // A new id at every sign-in: an id planted before cannot be taken over.
    if let Some(old) = jar.get(SESSION_COOKIE) {
        let _ = state.store.end_session(&sha256_hex(old.value())).await;
    }
    let id = random_token();
    let csrf = random_token();
    if let Err(e) = state
        .store
        .create_session(&sha256_hex(&id), presented.id, &csrf, Utc::now())
        .await
    {
        return error_page(None, ApiError::from(e));
    }
    let jar = jar
        .remove(Cookie::build(SIGN_IN_COOKIE).path("/"))
        .add(cookie(&state, SESSION_COOKIE, id));
    (jar, Redirect::to("/a-traiter")).into_response()
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
    signed: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return expired_form();
    }
    if let Err(e) = state.store.end_session(&signed.session_sha256).await {
        return error_page(None, ApiError::from(e));
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/connexion")).into_response()
}

/// The security headers of every page: no inline script, no framing, no
/// referrer outside the service, no type sniffing.
pub async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
                 frame-ancestors 'none'; object-src 'none'",
            ),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
