//! Shared helpers of the ami integration tests: a real service on a free
//! port over a fresh database (SQLite temp file or PostgreSQL), and a client
//! whose methods mirror the API.
//!
//! PostgreSQL tests read their server from `AMI_TEST_POSTGRES_URL` (default:
//! the local server, `postgres://postgres@127.0.0.1:5432/postgres`) and get a
//! fresh database each. They fail, rather than skip, when it cannot be
//! reached: a skipped backend must not pass for a tested one.

pub mod browser;
pub mod dovecot;
pub mod process;
pub mod s3;
pub mod smtp_sink;
pub mod web;

use std::sync::Arc;

use ami_core::Definition;
use ami_service::files::Files;
use ami_service::http::{self, AppState};
use ami_service::store::Database;
use serde_json::{json, Value};

pub use reqwest::StatusCode;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's pièce files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A temporary folder.
    Local,
    /// The shared S3-compatible server ([`s3::endpoint`]), under a prefix
    /// of the test's own.
    S3,
}

/// A fresh, empty file storage; its URL, the settings to open it, and the
/// folder holding it for [`Storage::Local`].
pub struct TestFiles {
    pub url: String,
    pub storage: Storage,
    /// S3 settings (`aws_endpoint`…): for `Files::open_with`, or as `AWS_*`
    /// variables of a child process.
    pub settings: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestFiles {
    pub fn new(storage: Storage) -> TestFiles {
        match storage {
            Storage::Local => {
                let dir = tempfile::tempdir().expect("temp dir");
                TestFiles {
                    url: format!("file://{}", dir.path().display()),
                    storage,
                    settings: Vec::new(),
                    _dir: Some(dir),
                }
            }
            Storage::S3 => TestFiles {
                url: format!("s3://{}/{}", s3::BUCKET, uuid::Uuid::new_v4().simple()),
                storage,
                settings: s3::settings(&s3::endpoint()),
                _dir: None,
            },
        }
    }

    pub fn open(&self) -> Files {
        let settings: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Files::open_with(&self.url, &settings).expect("open file storage")
    }

    /// The settings as the environment of an `ami` process.
    pub fn env(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| (k.to_uppercase(), v.clone()))
            .collect()
    }
}

/// A fresh, empty database; its URL and, for SQLite, the folder holding it.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_server_url() -> String {
    std::env::var("AMI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("ami.db").display());
                TestDb {
                    url,
                    backend,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let server = postgres_server_url();
                let name = format!("ami_t_{}", uuid::Uuid::new_v4().simple());
                sqlx::any::install_default_drivers();
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&server)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL unreachable at {server} (set AMI_TEST_POSTGRES_URL): {e}"
                        )
                    });
                sqlx::query(&format!("create database {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
                TestDb {
                    url: format!("{base}/{name}"),
                    backend,
                    _dir: None,
                }
            }
        }
    }
}

/// The four people a dossier meets on its way to lauréat: a DAR agent who
/// deposits and instructs, a DAR responsable (another person) who decides,
/// an ACV agent and a TI agent.
pub struct Team {
    pub dar: Person,
    pub boss: Person,
    pub acv: Person,
    pub ti: Person,
}

/// A person of an agency with their token.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub agency: String,
    pub role: String,
    pub token: String,
    pub token_id: uuid::Uuid,
}

/// The real router served on 127.0.0.1:0 over a fresh database.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub store: Database,
    pub db: TestDb,
    pub files: Files,
    pub test_files: TestFiles,
    pub definition: Arc<Definition>,
    pub clock: http::Clock,
    /// Poked by the service after each transition: give it to an outbox
    /// worker ([`ami_service::mail::outbox::Outbox::spawn`]).
    pub letters: Arc<tokio::sync::Notify>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        let db = TestDb::new(backend).await;
        TestApp::spawn_on(db, Arc::new(Definition::ami2())).await
    }

    pub async fn spawn_on(db: TestDb, definition: Arc<Definition>) -> TestApp {
        TestApp::spawn_with(db, TestFiles::new(Storage::Local), definition).await
    }

    /// On a fresh database, with the service's clock stopped at `now`:
    /// what is late is then the same whatever day the test runs.
    pub async fn spawn_at(backend: Backend, now: &str) -> TestApp {
        let db = TestDb::new(backend).await;
        let now = chrono::DateTime::parse_from_rfc3339(now)
            .expect("an RFC 3339 instant")
            .with_timezone(&chrono::Utc);
        TestApp::spawn_with_clock(
            db,
            TestFiles::new(Storage::Local),
            Arc::new(Definition::ami2()),
            http::Clock::Fixed(now),
        )
        .await
    }

    /// On a database and a file storage of the test's choice.
    pub async fn spawn_with(
        db: TestDb,
        test_files: TestFiles,
        definition: Arc<Definition>,
    ) -> TestApp {
        TestApp::spawn_with_clock(db, test_files, definition, http::Clock::System).await
    }

    pub async fn spawn_with_clock(
        db: TestDb,
        test_files: TestFiles,
        definition: Arc<Definition>,
        clock: http::Clock,
    ) -> TestApp {
        let store = ami_service::store::connect(&db.url.parse().expect("database url"))
            .await
            .expect("connect store");
        let files = test_files.open();
        // Bound before the spawn: no sleep, no race.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let letters = Arc::new(tokio::sync::Notify::new());
        let state = AppState {
            store: store.clone(),
            files: files.clone(),
            definition: definition.clone(),
            max_piece_size: http::pieces::DEFAULT_MAX_PIECE_SIZE,
            secure_cookies: false,
            clock,
            letters: letters.clone(),
        };
        let server = tokio::spawn(async move {
            http::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestApp {
            addr,
            base: format!("http://{addr}/api/v1"),
            client: reqwest::Client::new(),
            store,
            db,
            files,
            test_files,
            definition,
            clock,
            letters,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server and waits for requests in flight.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.store.close().await;
    }

    /// A person with a token, their e-mail made from their name
    /// ([`email_of`]).
    pub async fn person(&self, name: &str, agency: &str, role: &str) -> Person {
        self.person_with_email(name, &email_of(name), agency, role)
            .await
    }

    pub async fn person_with_email(
        &self,
        name: &str,
        email: &str,
        agency: &str,
        role: &str,
    ) -> Person {
        let (record, token) =
            ami_service::auth::create_token(&*self.store, name, email, agency, role)
                .await
                .expect("create token");
        Person {
            name: name.into(),
            agency: agency.into(),
            role: role.into(),
            token,
            token_id: record.id,
        }
    }

    /// The four people of a [`Team`], each with a token.
    pub async fn team(&self) -> Team {
        Team {
            dar: self.person("Camille Martin", "dar", "agent").await,
            boss: self.person("Dominique Bernard", "dar", "responsable").await,
            acv: self.person("Sophie Laurent", "acv", "agent").await,
            ti: self.person("Karim Haddad", "ti", "agent").await,
        }
    }

    /// The state the service runs with (for tests that drive the router
    /// without a socket).
    pub fn state(&self) -> AppState {
        AppState {
            store: self.store.clone(),
            files: self.files.clone(),
            definition: self.definition.clone(),
            max_piece_size: http::pieces::DEFAULT_MAX_PIECE_SIZE,
            secure_cookies: false,
            clock: self.clock,
            letters: self.letters.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET with a token; the status and the JSON body (Null when not JSON).
    pub async fn get(&self, who: &Person, path: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(&who.token)
            .send()
            .await
            .expect("request");
        read(res).await
    }

    pub async fn post(&self, who: &Person, path: &str, body: &Value) -> (StatusCode, Value) {
        self.with_body(reqwest::Method::POST, who, path, body).await
    }

    pub async fn put(&self, who: &Person, path: &str, body: &Value) -> (StatusCode, Value) {
        self.with_body(reqwest::Method::PUT, who, path, body).await
    }

    async fn with_body(
        &self,
        method: reqwest::Method,
        who: &Person,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let res = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&who.token)
            .json(body)
            .send()
            .await
            .expect("request");
        read(res).await
    }

    /// Deposits a dossier (as a DAR person) received in wave 1, with the
    /// files of both pièces.
    pub async fn deposit(&self, dar: &Person, programmes: &[&str]) -> Value {
        let (status, body) = self
            .deposit_form(dar, &new_dossier("Nevers", programmes))
            .await;
        assert_eq!(status, StatusCode::CREATED, "deposit: {body}");
        body
    }

    /// Deposits `body` as a form (`multipart/form-data`): the JSON in the
    /// `dossier` part and a real file for each pièce it declares
    /// ([`sample_file`]); status and JSON answer.
    pub async fn deposit_form(&self, dar: &Person, body: &Value) -> (StatusCode, Value) {
        let res = self
            .client
            .post(self.url("/dossiers"))
            .bearer_auth(&dar.token)
            .multipart(deposit_multipart(body))
            .send()
            .await
            .expect("request");
        read(res).await
    }

    /// A deposit form with the `dossier` part given (or left out) and
    /// these file parts (kind, file name, content); status and JSON answer.
    pub async fn deposit_form_parts(
        &self,
        dar: &Person,
        dossier: Option<&Value>,
        files: &[(&str, &str, Vec<u8>)],
    ) -> (StatusCode, Value) {
        let mut form = reqwest::multipart::Form::new();
        if let Some(body) = dossier {
            form = form.part(
                "dossier",
                reqwest::multipart::Part::text(body.to_string())
                    .mime_str("application/json")
                    .expect("mime"),
            );
        }
        for (kind, name, content) in files {
            form = form.part(
                kind.to_string(),
                reqwest::multipart::Part::bytes(content.clone()).file_name(name.to_string()),
            );
        }
        let res = self
            .client
            .post(self.url("/dossiers"))
            .bearer_auth(&dar.token)
            .multipart(form)
            .send()
            .await
            .expect("request");
        read(res).await
    }

    /// Sends a pièce's file as the raw body of `PUT …/pieces/{kind}`.
    pub async fn upload(
        &self,
        who: &Person,
        id: &str,
        kind: &str,
        filename: &str,
        content: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let path = format!("/dossiers/{id}/pieces/{kind}");
        self.upload_to(who, &path, filename, content, headers).await
    }

    /// Takes an action at the dossier's current version; status and body.
    pub async fn act(
        &self,
        who: &Person,
        dossier: &Value,
        action: &str,
        extra: Value,
    ) -> (StatusCode, Value) {
        let id = dossier["id"].as_str().expect("dossier id");
        let (_, current) = self.get(who, &format!("/dossiers/{id}")).await;
        let mut body = json!({"action": action, "expected_version": current["version"]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        self.post(who, &format!("/dossiers/{id}/transitions"), &body)
            .await
    }

    /// Number of events in the journal, to check that a refusal wrote
    /// nothing; counted in the database (see [`TestApp::event_count`]).
    pub async fn journal_len(&self) -> usize {
        usize::try_from(self.event_count().await).expect("count")
    }
}

/// A real file for a pièce declared as `filename`: the demo's PDF for a
/// `.pdf`, its Excel budget for a `.xlsx`; any other name becomes a PDF of
/// the same stem.
pub fn sample_file(filename: &str) -> (String, Vec<u8>) {
    let stem = filename.rsplit_once('.').map_or(filename, |(s, _)| s);
    if filename.to_lowercase().ends_with(".xlsx") {
        (filename.to_string(), sample_xlsx())
    } else {
        (format!("{stem}.pdf"), sample_pdf())
    }
}

/// A small real PDF.
pub fn sample_pdf() -> Vec<u8> {
    ami_service::demo_files::candidature_pdf("Nevers", "58194")
}

/// A small real Excel workbook.
pub fn sample_xlsx() -> Vec<u8> {
    ami_service::demo_files::budget_xlsx("Nevers").expect("xlsx")
}

/// RFC 8187 encoding of a file name for `filename*=UTF-8''…`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The professional address the tests give a person: « Camille Martin »
/// is `camille.martin@test.gouv.fr`.
pub fn email_of(name: &str) -> String {
    format!(
        "{}@test.gouv.fr",
        ami_core::text::search_key(name).replace(' ', ".")
    )
}

/// A commune of France no other deposit of this test process has used
/// (name and code INSEE, as the official geographic code writes them):
/// deposits of one commune in a wave are refused as duplicates unless
/// confirmed. Taken from départements that neither the tests nor the demo
/// name on purpose (the Pas-de-Calais, the Somme, the Ain, the Jura, the
/// Doubs and the Haute-Saône: 3,640 communes), so that a fresh commune is
/// never one deposited by name.
pub fn fresh_commune() -> (&'static str, &'static str) {
    static POOL: std::sync::LazyLock<Vec<&'static ami_core::communes::Commune>> =
        std::sync::LazyLock::new(|| {
            ami_core::communes::communes()
                .iter()
                .filter(|c| ["62", "80", "01", "39", "25", "70"].contains(&c.departement))
                .collect()
        });
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let commune = POOL[n % POOL.len()];
    (commune.name, commune.code)
}

/// A deposit body received in wave 1, with both pièces, for a commune of
/// its own ([`fresh_commune`]), carried by « Ville de `porteur` »: the
/// porteur's name is how the tests tell their dossiers apart.
pub fn new_dossier(porteur: &str, programmes: &[&str]) -> Value {
    let (commune, code_insee) = fresh_commune();
    json!({
        "commune": commune,
        "code_insee": code_insee,
        "porteur": {"nom": format!("Ville de {porteur}"), "email": "contact@example.fr"},
        "programmes": programmes,
        "received_at": "2020-11-06T23:30:00+01:00",
        "pieces": [
            {"kind": "dossier_candidature", "filename": "candidature.pdf"},
            {"kind": "budget_previsionnel", "filename": "budget.xlsx"}
        ]
    })
}

/// [`new_dossier`] for a given commune (name and code INSEE).
pub fn new_dossier_of(commune: &str, code_insee: &str, programmes: &[&str]) -> Value {
    let mut body = new_dossier(commune, programmes);
    body["commune"] = json!(commune);
    body["code_insee"] = json!(code_insee);
    body
}

/// A response as a [`Reply`]; no answer may be a 5xx.
async fn reply_of(method: &reqwest::Method, path: &str, res: reqwest::Response) -> Reply {
    let status = res.status();
    let header = |name: reqwest::header::HeaderName| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
    let location = header(reqwest::header::LOCATION);
    let text = res.text().await.unwrap_or_default();
    assert!(
        !status.is_server_error(),
        "{method} {path} answered {status}: {text}"
    );
    Reply {
        status,
        content_type,
        location,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

async fn read(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Runs an async scenario `fn(Backend)` as one test per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Runs an async scenario `fn(Backend, Storage)` as one test per database
/// and file storage.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite_local {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Sqlite, $crate::Storage::Local).await } )*
        }
        mod sqlite_s3 {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Sqlite, $crate::Storage::S3).await } )*
        }
        mod postgres_local {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Postgres, $crate::Storage::Local).await } )*
        }
        mod postgres_s3 {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Postgres, $crate::Storage::S3).await } )*
        }
    };
}

// ---------------------------------------------------------------------------
// Helpers of the API tests (tests/tests/api_*.rs).
// ---------------------------------------------------------------------------

/// A response as the API tests look at it: status, headers they rely on, and
/// the body both as text and as JSON (Null when not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub location: Option<String>,
    pub text: String,
    pub body: Value,
}

impl Reply {
    /// Asserts an RFC 9457 problem with this status and `code`, a French
    /// `detail` and the problem content type; returns the body.
    pub fn assert_problem(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "status of {}", self.text);
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "content type {:?} of {}",
            self.content_type,
            self.text
        );
        assert_eq!(self.body["code"], code, "code of {}", self.text);
        assert_eq!(
            self.body["status"],
            status.as_u16(),
            "status field of {}",
            self.text
        );
        assert_eq!(
            self.body["type"],
            format!("urn:ami:problem:{code}"),
            "type of {}",
            self.text
        );
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(!detail.trim().is_empty(), "detail of {}", self.text);
        assert!(
            self.body["title"].as_str().is_some_and(|t| !t.is_empty()),
            "title of {}",
            self.text
        );
        &self.body
    }

    /// Like [`Reply::assert_problem`], and the problem names `field`.
    pub fn assert_field_problem(&self, status: StatusCode, code: &str, field: &str) -> &Value {
        let body = self.assert_problem(status, code);
        assert_eq!(body["field"], field, "field of {}", self.text);
        body
    }

    /// Asserts the status, and that the body is JSON; returns the body.
    pub fn assert_ok(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "status of {}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "content type {:?} of {}",
            self.content_type,
            self.text
        );
        &self.body
    }
}

impl TestApp {
    /// Sends any request; `who` None sends no token. Every answer is checked
    /// not to be a 5xx: no input may make the service fail.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        who: Option<&Person>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let url = if path.starts_with("/healthz") {
            format!("http://{}{}", self.addr, path)
        } else {
            self.url(path)
        };
        let mut req = self.client.request(method.clone(), url);
        if let Some(who) = who {
            req = req.bearer_auth(&who.token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let res = req.send().await.expect("request");
        reply_of(&method, path, res).await
    }

    /// Sends a JSON body, with an Idempotency-Key when given.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &Person,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Reply {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(key) = idempotency_key {
            headers.push(("idempotency-key", key));
        }
        self.send(
            method,
            path,
            Some(who),
            &headers,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// GET with a token, as a [`Reply`].
    pub async fn fetch(&self, who: &Person, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, Some(who), &[], None)
            .await
    }

    /// Posts a transition with an explicit `expected_version`.
    pub async fn transition(&self, who: &Person, id: &str, body: &Value) -> Reply {
        self.send_json(
            reqwest::Method::POST,
            &format!("/dossiers/{id}/transitions"),
            who,
            body,
            None,
        )
        .await
    }

    /// Takes an action at the current version and asserts it succeeded;
    /// returns the dossier as the answer shows it.
    pub async fn must_act(
        &self,
        who: &Person,
        dossier: &Value,
        action: &str,
        extra: Value,
    ) -> Value {
        let (status, body) = self.act(who, dossier, action, extra).await;
        assert_eq!(status, StatusCode::OK, "{action} by {}: {body}", who.name);
        body
    }

    /// Deposits a dossier with a given body and asserts it was created.
    /// Deposits `body` with a file for each pièce it declares
    /// ([`TestApp::deposit_form`]); the dossier created.
    pub async fn deposit_body(&self, dar: &Person, body: &Value) -> Value {
        let (status, answer) = self.deposit_form(dar, body).await;
        assert_eq!(status, StatusCode::CREATED, "deposit: {answer}");
        answer
    }

    /// Number of events in the journal, counted in the database itself. On
    /// PostgreSQL the feed may hold back
    /// events while any older transaction of the server runs, even one of
    /// another test's database; this count never lags.
    pub async fn event_count(&self) -> i64 {
        use sqlx::{Connection, Row};
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.db.url)
            .await
            .expect("connect to the test database");
        let n: i64 = sqlx::query("select count(*) as n from dossier_event")
            .fetch_one(&mut conn)
            .await
            .expect("count events")
            .try_get("n")
            .expect("count");
        let _ = conn.close().await;
        n
    }

    /// Follows `GET /events` from `after`, `limit` at a time, until `expected`
    /// events came (waiting up to 10 s for the feed to show late commits).
    /// Returns the events and the last cursor; fails if more came.
    pub async fn follow_feed(
        &self,
        who: &Person,
        mut after: Option<String>,
        limit: u32,
        expected: usize,
    ) -> (Vec<Value>, Option<String>) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let path = match &after {
                Some(c) => format!("/events?limit={limit}&after={c}"),
                None => format!("/events?limit={limit}"),
            };
            let reply = self.fetch(who, &path).await;
            let page = reply.assert_ok(StatusCode::OK);
            let items = page["items"].as_array().expect("items").clone();
            assert!(
                items.len() <= limit as usize,
                "page longer than limit: {}",
                reply.text
            );
            if !page["next_cursor"].is_null() {
                after = page["next_cursor"].as_str().map(str::to_string);
            }
            let empty = items.is_empty();
            seen.extend(items);
            assert!(
                seen.len() <= expected,
                "more events than expected: {seen:?}"
            );
            if seen.len() == expected {
                return (seen, after);
            }
            if empty {
                assert!(
                    std::time::Instant::now() < deadline,
                    "feed stuck at {} of {expected} events",
                    seen.len()
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// [`new_dossier`], received in the given wave (1, 2 or 3).
pub fn new_dossier_in_wave(porteur: &str, programmes: &[&str], wave: u8) -> Value {
    in_wave(new_dossier(porteur, programmes), wave)
}

/// A deposit body received in the given wave (1, 2 or 3) instead.
pub fn in_wave(mut body: Value, wave: u8) -> Value {
    body["received_at"] = json!(match wave {
        1 => "2020-09-15T10:00:00+02:00",
        2 => "2021-01-15T10:00:00+01:00",
        _ => "2021-05-15T10:00:00+02:00",
    });
    body
}

// Helpers added for the existing suites (issue 8).

/// The deposit form of `body`, as [`TestApp::deposit_form`] sends it: the
/// JSON in the `dossier` part and a real file ([`sample_file`]) for each
/// pièce it declares. For clients of a child `ami` process too.
pub fn deposit_multipart(body: &Value) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new().part(
        "dossier",
        reqwest::multipart::Part::text(body.to_string())
            .mime_str("application/json")
            .expect("mime"),
    );
    for piece in body["pieces"].as_array().into_iter().flatten() {
        let kind = piece["kind"].as_str().unwrap_or_default().to_string();
        let (filename, content) = sample_file(piece["filename"].as_str().unwrap_or("piece.pdf"));
        form = form.part(
            kind,
            reqwest::multipart::Part::bytes(content).file_name(filename),
        );
    }
    form
}

/// SHA-256 of `bytes`, in lower-case hex, as the API shows it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The pièce of `kind` in a dossier as the API shows it.
pub fn piece_of<'a>(dossier: &'a Value, kind: &str) -> &'a Value {
    dossier["pieces"]
        .as_array()
        .and_then(|pieces| pieces.iter().find(|p| p["kind"] == kind))
        .unwrap_or_else(|| panic!("no pièce {kind} in {dossier}"))
}

impl TestApp {
    /// Sends a `multipart/form-data` request with extra headers, as a
    /// [`Reply`]; like [`TestApp::send`], no answer may be a 5xx.
    pub async fn send_form(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &Person,
        form: reqwest::multipart::Form,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .client
            .request(method.clone(), self.url(path))
            .bearer_auth(&who.token)
            .multipart(form);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.expect("request");
        reply_of(&method, path, res).await
    }

    /// Deposits `body` with a file for each pièce it declares
    /// ([`deposit_multipart`]), as a [`Reply`] (with its `Location`).
    pub async fn deposit_reply(&self, dar: &Person, body: &Value) -> Reply {
        self.send_form(
            reqwest::Method::POST,
            "/dossiers",
            dar,
            deposit_multipart(body),
            &[],
        )
        .await
    }

    /// Sends a file as the raw body of a PUT to `path`, which may carry a
    /// query (`?comment=…`), its name in `Content-Disposition`.
    pub async fn upload_to(
        &self,
        who: &Person,
        path: &str,
        filename: &str,
        content: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let disposition = format!("attachment; filename*=UTF-8''{}", percent_encode(filename));
        let mut all: Vec<(&str, &str)> = vec![
            ("content-type", "application/octet-stream"),
            ("content-disposition", &disposition),
        ];
        all.extend_from_slice(headers);
        self.send(reqwest::Method::PUT, path, Some(who), &all, Some(content))
            .await
    }

    /// Sends a pièce's file as `multipart/form-data` to
    /// `PUT …/pieces/{kind}`: the file in a `fichier` part, then `fields`
    /// as text parts (`expected_version`, `comment`).
    pub async fn upload_form(
        &self,
        who: &Person,
        id: &str,
        kind: &str,
        filename: &str,
        content: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> Reply {
        let mut form = reqwest::multipart::Form::new().part(
            "fichier",
            reqwest::multipart::Part::bytes(content).file_name(filename.to_string()),
        );
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        self.send_form(
            reqwest::Method::PUT,
            &format!("/dossiers/{id}/pieces/{kind}"),
            who,
            form,
            &[],
        )
        .await
    }
}
