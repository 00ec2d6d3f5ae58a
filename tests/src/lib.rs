//! Shared helpers of the ami integration tests: a real service on a free
//! port over a fresh database (SQLite temp file or PostgreSQL), and a client
//! whose methods mirror the API.
//!
//! PostgreSQL tests read their server from `AMI_TEST_POSTGRES_URL` (default:
//! the local server, `postgres://postgres@127.0.0.1:5432/postgres`) and get a
//! fresh database each. They fail, rather than skip, when it cannot be
//! reached: a skipped backend must not pass for a tested one.

use std::sync::Arc;

use ami_core::Definition;
use ami_service::http::{self, AppState};
use ami_service::store::Store;
use serde_json::{json, Value};

pub use reqwest::StatusCode;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
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
                        panic!("PostgreSQL unreachable at {server} (set AMI_TEST_POSTGRES_URL): {e}")
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
    pub store: Store,
    pub db: TestDb,
    pub definition: Arc<Definition>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        let db = TestDb::new(backend).await;
        TestApp::spawn_on(db, Arc::new(Definition::ami2())).await
    }

    pub async fn spawn_on(db: TestDb, definition: Arc<Definition>) -> TestApp {
        let store = Store::connect(&db.url).await.expect("connect store");
        // Bound before the spawn: no sleep, no race.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = AppState {
            store: store.clone(),
            definition: definition.clone(),
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
            definition,
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

    pub async fn person(&self, name: &str, agency: &str, role: &str) -> Person {
        let (record, token) = ami_service::auth::create_token(&self.store, name, agency, role)
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
        let res = self
            .client
            .post(self.url(path))
            .bearer_auth(&who.token)
            .json(body)
            .send()
            .await
            .expect("request");
        read(res).await
    }

    pub async fn put(&self, who: &Person, path: &str, body: &Value) -> (StatusCode, Value) {
        let res = self
            .client
            .put(self.url(path))
            .bearer_auth(&who.token)
            .json(body)
            .send()
            .await
            .expect("request");
        read(res).await
    }

    /// Deposits a dossier (as a DAR person) received in wave 1.
    pub async fn deposit(&self, dar: &Person, programmes: &[&str]) -> Value {
        let (status, body) = self.post(dar, "/dossiers", &new_dossier("Nevers", programmes)).await;
        assert_eq!(status, StatusCode::CREATED, "deposit: {body}");
        body
    }

    /// Takes an action at the dossier's current version; status and body.
    pub async fn act(&self, who: &Person, dossier: &Value, action: &str, extra: Value) -> (StatusCode, Value) {
        let id = dossier["id"].as_str().expect("dossier id");
        let (_, current) = self.get(who, &format!("/dossiers/{id}")).await;
        let mut body = json!({"action": action, "expected_version": current["version"]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        self.post(who, &format!("/dossiers/{id}/transitions"), &body).await
    }

    /// Number of events in the journal, to check that a refusal wrote nothing.
    pub async fn journal_len(&self) -> usize {
        let mut n = 0;
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .events_after(
                    cursor
                        .as_deref()
                        .and_then(ami_service::store::FeedCursor::decode)
                        .as_ref(),
                    1000,
                )
                .await
                .expect("feed");
            if page.items.is_empty() {
                return n;
            }
            n += page.items.len();
            cursor = page.next;
        }
    }
}

/// A deposit body for a commune, received in wave 1, with both pièces.
pub fn new_dossier(commune: &str, programmes: &[&str]) -> Value {
    json!({
        "commune": commune,
        "code_insee": "58194",
        "porteur": {"nom": format!("Ville de {commune}"), "email": "contact@example.fr"},
        "programmes": programmes,
        "received_at": "2020-11-06T23:30:00+01:00",
        "pieces": [
            {"kind": "dossier_candidature", "filename": "candidature.pdf"},
            {"kind": "budget_previsionnel", "filename": "budget.xlsx"}
        ]
    })
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
