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

use crate::auth::PresentedToken;
use crate::http::{assets, AppState};
use crate::store::DossierFilter;

const SESSION_COOKIE: &str = "ami_session";
/// The CSRF token of the sign-in form, before any session exists.
const SIGN_IN_COOKIE: &str = "ami_connexion";
/// A session idle this long is over.
const IDLE: chrono::Duration = chrono::Duration::hours(8);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/connexion", get(sign_in_page).post(sign_in))
        .route("/deconnexion", axum::routing::post(sign_out))
        .route("/a-traiter", get(queue))
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
}

impl Layout {
    pub fn asset(&self, path: &str) -> String {
        assets::dsfr_url(path)
    }
}

/// The signed-in person, as the header shows them.
pub struct PersonView {
    pub name: String,
    pub agency_label: String,
    pub csrf: String,
}

/// A page of a signed-in person: their session, read from its cookie. A
/// browser without a live session is sent to « Se connecter ».
pub struct SignedIn {
    pub actor: ami_core::Actor,
    pub csrf: String,
    session_sha256: String,
}

impl SignedIn {
    fn layout(&self, state: &AppState) -> Layout {
        let agency_label = state
            .definition
            .agencies
            .iter()
            .find(|a| a.id == self.actor.agency)
            .map_or_else(|| self.actor.agency.to_string(), |a| a.label.clone());
        Layout {
            person: Some(PersonView {
                name: self.actor.name.to_string(),
                agency_label,
                csrf: self.csrf.clone(),
            }),
        }
    }
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
            .map_err(|e| crate::http::error::ApiError::from(e).into_response())?
            .ok_or_else(to_sign_in)?;
        Ok(SignedIn {
            actor: ami_core::Actor {
                id: found.token.person_id.into(),
                name: found.token.name.into(),
                agency: found.token.agency.into(),
                role: found.token.role.into(),
            },
            csrf: found.csrf,
            session_sha256,
        })
    }
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => crate::http::error::ApiError::Internal(e.to_string()).into_response(),
    }
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
        layout: Layout { person: None },
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
        Err(e) => return crate::http::error::ApiError::from(e).into_response(),
    };
    if presented.admit(stored).is_err() {
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
        return crate::http::error::ApiError::from(e).into_response();
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
    if !same(&signed.csrf, &form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "Formulaire expiré : rechargez la page et recommencez.",
        )
            .into_response();
    }
    if let Err(e) = state.store.end_session(&signed.session_sha256).await {
        return crate::http::error::ApiError::from(e).into_response();
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/connexion")).into_response()
}

/// A dossier as a line of a list.
struct Row {
    reference: String,
    commune: String,
    programmes: String,
    wave: u8,
    state_label: String,
    received: String,
}

#[derive(Template)]
#[template(path = "a_traiter.html")]
struct QueuePage {
    layout: Layout,
    total_label: String,
    rows: Vec<Row>,
    next: Option<String>,
}

#[derive(serde::Deserialize)]
struct QueueQuery {
    apres: Option<String>,
}

async fn queue(
    State(state): State<AppState>,
    signed: SignedIn,
    axum::extract::Query(query): axum::extract::Query<QueueQuery>,
) -> Response {
    let def = &state.definition;
    let filter = DossierFilter {
        awaiting: vec![signed.actor.agency.to_string()],
        readable: def
            .readable_programmes(&signed.actor.agency)
            .map(|own| own.into_iter().map(str::to_string).collect()),
        after: query
            .apres
            .as_deref()
            .and_then(crate::store::ListCursor::decode),
        limit: 50,
        ..DossierFilter::default()
    };
    let page = match state.store.list_dossiers(&filter).await {
        Ok(page) => page,
        Err(e) => return crate::http::error::ApiError::from(e).into_response(),
    };
    let tz = def.campaign.time_zone;
    let rows: Vec<Row> = page
        .items
        .iter()
        .map(|d| Row {
            reference: d.reference.clone(),
            commune: d.commune.clone(),
            programmes: d
                .programmes
                .iter()
                .map(|p| def.programme(p).map_or(p.as_str(), |p| p.label.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            wave: d.wave,
            state_label: def.state_label(&d.state).to_string(),
            received: ami_core::french_instant(d.received_at, tz),
        })
        .collect();
    let total_label = match rows.len() {
        0 => "Rien en attente.".to_string(),
        1 => "1 dossier sur cette page.".to_string(),
        n => format!("{n} dossiers sur cette page."),
    };
    render(&QueuePage {
        layout: signed.layout(&state),
        total_label,
        rows,
        next: page.next,
    })
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
