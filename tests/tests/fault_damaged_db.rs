//! A database that is damaged or gone under the running `ami serve`: the
//! health check says so (503), and every request that needs the database
//! answers 503 `database_unavailable` with `Retry-After`, never a 500, and
//! the process keeps running. SQLite: the file, its WAL and its shared
//! index overwritten with garbage in place. PostgreSQL: the database
//! dropped, its connections terminated.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use ami_tests::process::{AmiProcess, Crew, Program};
use ami_tests::{new_dossier, postgres_server_url, Backend, TestDb};
use rand::RngCore;
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn program() -> Program {
    Program::new(env!("CARGO_BIN_EXE_ami-under-test"))
}

fn client() -> reqwest::Client {
    // Longer than the service's own request timeout (10 s), which answers
    // 503 itself.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A running service with one deposited dossier; the DAR agent's token and
/// the dossier's id.
async fn running(backend: Backend, db: &TestDb) -> (AmiProcess, Crew, String) {
    let program = program();
    let server = AmiProcess::start(&program, &db.url)
        .await
        .unwrap_or_else(|e| panic!("{backend:?}: {e:#}"));
    let crew = Crew::create(&program, &db.url, "damaged").expect("tokens");
    let client = client();
    let mut id = String::new();
    for _ in 0..20 {
        let res = client
            .post(format!("{}/dossiers", server.api()))
            .bearer_auth(&crew.dar)
            .json(&new_dossier("Nevers", &["acv", "ti"]))
            .send()
            .await
            .expect("deposit");
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.expect("json");
        id = body["id"].as_str().expect("id").to_string();
    }
    let health = client
        .get(format!("{}/healthz", server.base()))
        .send()
        .await
        .expect("healthz");
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "{backend:?}: healthy before"
    );
    let list = client
        .get(format!("{}/dossiers", server.api()))
        .bearer_auth(&crew.dar)
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), StatusCode::OK);
    (server, crew, id)
}

/// The requests a client may send meanwhile: reads, a write, the pages'
/// documents; all need the token checked in the database first.
fn requests(id: &str) -> Vec<(Method, String, Option<Value>)> {
    let mut all: Vec<(Method, String, Option<Value>)> = [
        "/dossiers".to_string(),
        "/dossiers?state=recu&limit=5".to_string(),
        format!("/dossiers/{id}"),
        format!("/dossiers/{id}/history"),
        format!("/dossiers/{id}/messages"),
        format!("/dossiers/{id}/pieces/dossier_candidature"),
        "/stats".to_string(),
        "/stats?group_by=region".to_string(),
        "/events".to_string(),
        "/workflow".to_string(),
        "/waves/1/committees".to_string(),
        "/arrivals".to_string(),
        "/exports/dossiers.csv".to_string(),
    ]
    .into_iter()
    .map(|path| (Method::GET, path, None))
    .collect();
    all.push((
        Method::POST,
        "/dossiers".into(),
        Some(new_dossier("Nevers", &["acv"])),
    ));
    all.push((
        Method::POST,
        format!("/dossiers/{id}/transitions"),
        Some(serde_json::json!({"action": "instruire", "expected_version": 1})),
    ));
    all
}

/// /healthz and every request answer 503 with a problem body and
/// `Retry-After`; the process is still up.
async fn every_answer_is_503(backend: Backend, server: &mut AmiProcess, crew: &Crew, id: &str) {
    let client = client();
    let health = client
        .get(format!("{}/healthz", server.base()))
        .send()
        .await
        .expect("healthz");
    assert_unavailable(backend, "GET /healthz", health).await;
    for (method, path, body) in requests(id) {
        let what = format!("{method} {path}");
        let mut req = client
            .request(method, format!("{}{path}", server.api()))
            .bearer_auth(&crew.dar);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        assert_unavailable(backend, &what, res).await;
    }
    assert!(server.is_running(), "{backend:?}: the service stopped");
    assert!(
        !server.log_tail().contains("panicked"),
        "{backend:?}: {}",
        server.log_tail()
    );
}

async fn assert_unavailable(backend: Backend, what: &str, res: reqwest::Response) {
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{backend:?} {what}: {text}"
    );
    assert!(
        content_type.starts_with("application/problem+json"),
        "{backend:?} {what}: {content_type}"
    );
    let body: Value = serde_json::from_str(&text).expect("problem body");
    assert_eq!(body["code"], "database_unavailable", "{backend:?} {what}");
    assert_eq!(body["status"], 503, "{backend:?} {what}");
    let seconds: u64 = retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{backend:?} {what}: Retry-After {retry_after:?}"));
    assert!(seconds > 0, "{backend:?} {what}");
}

/// Overwrites `len` bytes at `at` with random bytes, in place (the inode
/// the service has open, not a new file).
fn scribble(path: &Path, at: u64, len: usize) {
    let mut garbage = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut garbage);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.seek(SeekFrom::Start(at)).expect("seek");
    file.write_all(&garbage).expect("write");
    file.sync_all().expect("sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_damaged_under_the_running_service_gives_503_never_500() {
    // Arrange
    let db = TestDb::new(Backend::Sqlite).await;
    let (mut server, crew, id) = running(Backend::Sqlite, &db).await;
    let file = db
        .url
        .strip_prefix("sqlite://")
        .expect("sqlite url")
        .to_string();
    let file = Path::new(&file);
    // The pages written so far into the file itself, as SQLite does by
    // itself every 1,000 pages of WAL: there are pages in its middle.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("connect");
    sqlx::query("pragma wal_checkpoint(full)")
        .execute(&mut conn)
        .await
        .expect("checkpoint");
    sqlx::Connection::close(conn).await.expect("close");
    let len = std::fs::metadata(file).expect("db file").len();
    assert!(len >= 16 * 4096, "a database of {len} bytes");

    // Act: the header and the middle third of the pages, the WAL and the
    // WAL's shared index, as a failing disk would leave them.
    scribble(file, 0, 4096);
    scribble(file, len / 3, (len / 3) as usize);
    for suffix in ["-wal", "-shm"] {
        let side = file.with_file_name(format!("ami.db{suffix}"));
        if let Ok(meta) = std::fs::metadata(&side) {
            if meta.len() > 0 {
                scribble(&side, 0, meta.len() as usize);
            }
        }
    }

    // Assert
    every_answer_is_503(Backend::Sqlite, &mut server, &crew, &id).await;
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_dropped_under_the_running_service_gives_503_never_500() {
    // Arrange
    let db = TestDb::new(Backend::Postgres).await;
    let (mut server, crew, id) = running(Backend::Postgres, &db).await;
    let name = db
        .url
        .rsplit_once('/')
        .expect("database name")
        .1
        .to_string();

    // Act: the database dropped, the service's connections cut.
    sqlx::any::install_default_drivers();
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&postgres_server_url())
        .await
        .expect("admin connection");
    sqlx::query(&format!("drop database {name} with (force)"))
        .execute(&mut admin)
        .await
        .expect("drop database");

    // Assert
    every_answer_is_503(Backend::Postgres, &mut server, &crew, &id).await;
    server.kill();
}
