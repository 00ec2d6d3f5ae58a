//! The JSON API, version 1: routes, authentication, request tracing.

pub mod arrivals;
pub mod assets;
pub mod committees;
pub mod contract;
pub mod dossiers;
pub mod error;
pub mod exports;
pub mod extract;
pub mod feed;
pub mod integral;
pub mod messages;
pub mod pieces;
pub mod receipt;
pub mod views;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ami_core::{Actor, Definition};
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::{header, request::Parts, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::files::Files;
use crate::store::{Database, PresentedToken, TokenRefusal};
use error::ApiError;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// A request still running after this gets 503 rather than hanging.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A file upload gets longer: 20 MiB over a slow line takes minutes.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// An export too: a workbook of every dossier is written before it is sent.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// What every handler shares: the store, the files, the active workflow.
#[derive(Clone)]
pub struct AppState {
    pub store: Database,
    pub files: Files,
    pub definition: Arc<Definition>,
    /// Largest file a pièce may have (`--max-piece-size`).
    pub max_piece_size: u64,
    /// Cookies are `Secure` (the service is reached over https,
    /// `--public-url`).
    pub secure_cookies: bool,
    /// What time it is: whether an avis is late depends on it.
    pub clock: Clock,
    /// Poked when a transition commits (its letters are in the outbox): the
    /// outbox worker then looks at once rather than at its next tick.
    pub letters: Arc<tokio::sync::Notify>,
}

/// The service's clock: the system's, or an instant fixed by whoever
/// embeds the service (a test that says what is late on a given day).
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    #[default]
    System,
    Fixed(chrono::DateTime<chrono::Utc>),
}

impl Clock {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Clock::System => chrono::Utc::now(),
            Clock::Fixed(at) => *at,
        }
    }
}

impl AppState {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// The token a request presents, read from its header but not yet checked
/// against the database. Writes check it on the transition's own connection;
/// everything else through [`Caller`].
#[derive(Debug)]
pub struct Credentials(pub PresentedToken);

impl<S: Send + Sync> FromRequestParts<S> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(ApiError::missing_token)?;
        value
            .to_str()
            .ok()
            .and_then(bearer_token)
            .and_then(PresentedToken::parse)
            .map(Credentials)
            .ok_or(ApiError::unauthorized(TokenRefusal::Malformed))
    }
}

/// The token of an `Authorization` value: the scheme `Bearer` in any case
/// (RFC 9110 §11.1), one or more spaces, the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    (!token.is_empty()).then_some(token)
}

/// The authenticated caller: the person behind a valid, unrevoked token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Credentials(token) = Credentials::from_request_parts(parts, state).await?;
        let actor = token
            .admit(&state.definition, state.store.find_token(token.id).await?)
            .map_err(ApiError::unauthorized)?;
        tracing::Span::current().record("agency", actor.agency.as_str());
        Ok(Caller { actor })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ami", description = "Instruction multi-agences des dossiers de l'AMI « Au cœur des territoires » (Cnam, ANCT). Errors are RFC 9457 problems with a stable `code`.",
        contact(name = "Cnam, Direction de l'action régionale", email = "coeurterritoires@lecnam.net")),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth),
    tags((name = "dossiers", description = "Deposit dossiers, read them, take the workflow's actions on them, read their journal and their letters"),
        (name = "pieces", description = "The files of a dossier's pièces, each version kept"),
        (name = "exports", description = "The dossiers of a list as a CSV file or an Excel workbook"),
        (name = "feed", description = "Every event in commit order, and the campaign's counts"),
        (name = "workflow", description = "The workflow definition the service runs"),
        (name = "committees", description = "A wave's selection committee: its sessions and their decisions"),
        (name = "arrivals", description = "Messages received in the AMI's mailbox, handled once by the DAR"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Errors are sent as RFC 9457 problems: the document says so (the route
/// annotations cannot, utoipa writes `application/json` for every body).
fn problem_content_types(openapi: &mut utoipa::openapi::OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            for (status, response) in op.responses.responses.iter_mut() {
                let utoipa::openapi::RefOr::T(response) = response else {
                    continue;
                };
                if status.starts_with('4') || status.starts_with('5') {
                    if let Some(content) = response.content.shift_remove("application/json") {
                        response
                            .content
                            .insert("application/problem+json".into(), content);
                    }
                }
            }
        }
    }
}

/// The query parameters each route accepts, per method: those its operation
/// declares in the OpenAPI document, none for a route the document does not
/// describe (`/healthz`, `/openapi.json`). One rule read from one place, so
/// that no handler can forget to refuse an unknown or repeated parameter and
/// the document cannot promise a parameter the service refuses.
#[derive(Clone, Default)]
struct QueryRules(Arc<HashMap<(Method, String), Vec<String>>>);

impl QueryRules {
    fn of(doc: &utoipa::openapi::OpenApi) -> QueryRules {
        use utoipa::openapi::path::ParameterIn;
        let mut rules = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let shared = item.parameters.iter().flatten();
            let operations = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, op) in operations {
                let Some(op) = op else { continue };
                let names = shared
                    .clone()
                    .chain(op.parameters.iter().flatten())
                    .filter(|p| p.parameter_in == ParameterIn::Query)
                    .map(|p| p.name.clone())
                    .collect();
                rules.insert((method, format!("{API_PREFIX}{path}")), names);
            }
        }
        QueryRules(Arc::new(rules))
    }

    fn allowed(&self, method: &Method, route: &str) -> Vec<&str> {
        // HEAD is answered by the GET route.
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.0
            .get(&(method.clone(), route.to_string()))
            .map(|names| names.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Where the API is mounted.
const API_PREFIX: &str = "/api/v1";

/// 400 `invalid_parameter` for a query parameter the matched route does not
/// declare, or one given twice, before any handler runs.
async fn refuse_undeclared_query(
    axum::extract::State(rules): axum::extract::State<QueryRules>,
    route: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = route.as_ref().map_or("", MatchedPath::as_str);
    // A router nested under the prefix may see its routes without it.
    let route = if route.starts_with(API_PREFIX) || route == "/healthz" {
        route.to_string()
    } else {
        format!("{API_PREFIX}{route}")
    };
    let (mut parts, body) = req.into_parts();
    let checked = match extract::QueryPairs::from_request_parts(&mut parts, &()).await {
        Ok(query) => query.check(&rules.allowed(&parts.method, &route)),
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(e) => e.into_response(),
    }
}

/// The API routes and their OpenAPI description, built together so that they
/// cannot drift apart.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(dossiers::create, dossiers::list))
        .routes(routes!(dossiers::get))
        .routes(routes!(dossiers::transition))
        .routes(routes!(pieces::put_piece, pieces::get_piece))
        .routes(routes!(pieces::get_piece_version))
        .routes(routes!(dossiers::history))
        .routes(routes!(messages::list))
        .routes(routes!(receipt::receipt))
        .routes(routes!(exports::csv))
        .routes(routes!(exports::xlsx))
        .routes(routes!(feed::events))
        .routes(routes!(feed::stats))
        .routes(routes!(feed::workflow))
        .routes(routes!(feed::workflow_mermaid))
        .routes(routes!(committees::record, committees::list))
        .routes(routes!(arrivals::list))
        .routes(routes!(arrivals::get))
        .routes(routes!(arrivals::raw))
        .routes(routes!(arrivals::attachment))
        .routes(routes!(arrivals::create_dossier))
        .routes(routes!(arrivals::attach))
        .routes(routes!(arrivals::set_aside))
        .split_for_parts();
    problem_content_types(&mut doc);
    (router, doc)
}

/// The OpenAPI 3.1 document of the API of a service running `def`.
/// `today` dates its examples (a « demande de complément » due after it).
pub fn openapi(def: &ami_core::Definition, today: chrono::NaiveDate) -> serde_json::Value {
    contract::document(def, today)
}

/// The whole service: `/healthz`, `/api/v1/...`, tracing, limits.
pub fn router(state: AppState) -> Router {
    let (api, described) = api();
    let rules = QueryRules::of(&described);
    let today = state
        .now()
        .with_timezone(&state.definition.campaign().time_zone)
        .date_naive();
    let doc = Arc::new(contract::document(&state.definition, today));
    let check_query = middleware::from_fn_with_state(rules, refuse_undeclared_query);
    let api = api
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        // After every route is added: a route_layer covers only those.
        .route_layer(check_query.clone())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let health = Router::new()
        .route("/healthz", get(feed::healthz))
        .route_layer(check_query);
    Router::new()
        .merge(health)
        .route("/static/dsfr/{version}/{*path}", get(assets::dsfr))
        .merge(crate::web::routes())
        .nest("/api/v1", api)
        .fallback(crate::web::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(timeout))
        .layer(middleware::from_fn(crate::web::security_headers))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The matched route, not the raw path: ids stay out of span names.
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("(unmatched)", MatchedPath::as_str);
                    tracing::info_span!("request", method = %req.method(), route, agency = tracing::field::Empty)
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_secs_f64() * 1000.0, "response");
                })
                .on_failure(()),
        )
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound {
        detail: "Cette adresse n'existe pas ; la liste des routes est dans /api/v1/openapi.json."
            .into(),
    }
}

async fn timeout(req: Request, next: Next) -> Response {
    let uploads = req.method() == axum::http::Method::PUT && req.uri().path().contains("/pieces/")
        || pieces::is_multipart(req.headers()).is_some();
    let limit = if uploads {
        UPLOAD_TIMEOUT
    } else if req.uri().path().starts_with("/api/v1/exports/") {
        EXPORT_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::Unavailable.into_response(),
    }
}

/// Serves until `shutdown` resolves; requests in flight then finish. Beside
/// the requests, a task gives new events their place in the global chain.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = state.store.clone();
    let sealer = tokio::spawn(seal_continuously(store.clone()));
    // Live pages' streams never end by themselves: told of the shutdown,
    // they close, so that the requests in flight can finish.
    let (closing, closed) = tokio::sync::watch::channel(false);
    let app = router(state).layer(axum::Extension(Closing(closed)));
    let shutdown = async move {
        shutdown.await;
        let _ = closing.send(true);
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sealer.abort();
    // The last writes get their place now rather than at the next start.
    if let Err(e) = store.seal_pending().await {
        tracing::warn!(error = %e, "sealing the journal at shutdown failed");
    }
    served
}

/// Becomes true when the service begins to shut down.
#[derive(Clone)]
pub struct Closing(pub tokio::sync::watch::Receiver<bool>);

/// How often the sealer looks for new events when the last look found none.
const SEAL_IDLE: Duration = Duration::from_millis(100);

/// Seals new events as they commit ([`Store::seal_pending`]): busy, as
/// soon as the last sealing ends; idle, every [`SEAL_IDLE`]. A database
/// that is away is retried; nothing is lost meanwhile, the events wait.
async fn seal_continuously(store: Database) {
    loop {
        match store.seal_pending().await {
            Ok(0) => tokio::time::sleep(SEAL_IDLE).await,
            Ok(_) => tokio::task::yield_now().await,
            Err(e) => {
                tracing::warn!(error = %e, "sealing the journal failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// 405 for a known route with another method, in the API's problem shape.
async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
