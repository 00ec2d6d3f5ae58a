//! Secrets: tokens are stored hashed, a wrong secret or a revoked token is
//! refused, and no token (nor its secret part) ever reaches the logs, even at
//! TRACE level, in text or JSON format.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use ami_tests::*;
use serde_json::Value;
use sqlx::{Column, Connection, Row};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Everything the service logged in this test binary.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let text = buf.clone();
        let json = buf.clone();
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(
                "warn,ami_service=trace,ami_core=trace,tower_http=trace,sqlx=debug",
            ))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_span_events(FmtSpan::FULL)
                    .with_writer(move || Capture(text.clone())),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(move || Capture(json.clone())),
            )
            .init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// The secret part of `ami_<id>_<secret>`.
fn secret_of(token: &str) -> &str {
    token
        .strip_prefix("ami_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(_, s)| s)
        .expect("token shape")
}

async fn raw_get(app: &TestApp, path: &str, authorization: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.client.get(app.url(path));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn tokens_are_hashed_and_never_logged(backend: Backend) {
    logs();
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let mut secrets: Vec<String> = Vec::new();
    for p in [&dar, &boss, &acv] {
        secrets.push(p.token.clone());
        secrets.push(secret_of(&p.token).to_string());
    }

    // Hashed at rest: no column of api_token holds a token or its secret.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db.url)
        .await
        .expect("connect");
    // Every column as text: PostgreSQL keeps ids and instants in types the
    // generic driver does not read.
    let columns = match app.db.backend {
        Backend::Sqlite => "select * from api_token",
        Backend::Postgres => {
            "select token_id::text as token_id, person_id, name, agency, role, \
             secret_sha256, created_at::text as created_at, revoked_at::text as revoked_at \
             from api_token"
        }
    };
    let rows = sqlx::query(columns)
        .fetch_all(&mut conn)
        .await
        .expect("tokens");
    conn.close().await.ok();
    assert_eq!(rows.len(), 3);
    let mut hashes = 0;
    for row in &rows {
        for col in row.columns() {
            let name = col.name();
            let Ok(Some(value)) = row.try_get::<Option<String>, _>(col.ordinal()) else {
                continue; // integers
            };
            for s in &secrets {
                assert!(
                    !value.contains(s.as_str()),
                    "api_token.{name} holds a token or a secret"
                );
            }
            if name == "secret_sha256" {
                hashes += 1;
                assert!(value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        let id: String = row.try_get("token_id").expect("token_id");
        let person = [&dar, &boss, &acv]
            .into_iter()
            .find(|p| p.token_id.to_string() == id)
            .expect("a known token");
        let stored: String = row.try_get("secret_sha256").expect("hash");
        assert_eq!(
            stored,
            ami_service::auth::hash_secret(secret_of(&person.token))
        );
    }
    assert_eq!(hashes, 3);

    // Authenticated requests, good and bad, through the real router.
    let d = app.deposit(&dar, &["acv", "ti"]).await;
    let id = d["id"].as_str().expect("id");
    let (s, b) = app
        .act(
            &dar,
            &d,
            "instruire",
            serde_json::json!({"verdict": "favorable"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .act(&boss, &d, "declarer_laureat", serde_json::json!({}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = app
        .act(
            &acv,
            &d,
            "refuser",
            serde_json::json!({"motivation": "non"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    for path in [
        "/dossiers",
        "/events",
        "/stats",
        "/workflow",
        &format!("/dossiers/{id}/history"),
    ] {
        let (s, b) = app.get(&acv, path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
    }

    // A valid token id with a wrong secret: 401, whatever the secret.
    let wrong_secrets = [
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        format!("{}x", secret_of(&dar.token)),
        secret_of(&boss.token).to_string(), // another person's secret
        secret_of(&dar.token)[..secret_of(&dar.token).len() - 1].to_string(),
    ];
    for wrong in &wrong_secrets {
        let forged = format!("ami_{}_{wrong}", dar.token_id.simple());
        secrets.push(forged.clone());
        let (s, b) = raw_get(&app, "/stats", Some(&format!("Bearer {forged}"))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        assert_eq!(b["code"], "invalid_token");
        let forged_post = app
            .client
            .post(app.url(&format!("/dossiers/{id}/transitions")))
            .bearer_auth(&forged)
            .json(&serde_json::json!({"action": "classer_sans_suite", "expected_version": 2, "motivation": "x"}))
            .send()
            .await
            .expect("request");
        assert_eq!(forged_post.status(), StatusCode::UNAUTHORIZED);
    }
    // Malformed presentations of a real token.
    for auth in [
        dar.token.clone(),                                // no scheme
        format!("Basic {}", dar.token),                   // another scheme
        format!("bearer{}", dar.token),                   // no space
        format!("Bearer ami_{}_", dar.token_id.simple()), // no secret
        format!("Bearer {}", secret_of(&dar.token)),      // the secret alone
    ] {
        let (s, b) = raw_get(&app, "/stats", Some(&auth)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?}: {b}");
    }
    let (s, b) = raw_get(&app, "/stats", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["code"], "missing_token");

    // Revoked: refused from the very next request.
    let (s, _) = app.get(&acv, "/stats").await;
    assert_eq!(s, StatusCode::OK);
    assert!(app
        .store
        .revoke_token(acv.token_id, chrono::Utc::now())
        .await
        .expect("revoke"));
    let (s, b) = app.get(&acv, "/stats").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["code"], "revoked_token");
    let (s, b) = app.get(&acv, &format!("/dossiers/{id}")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, b) = app.get(&dar, "/stats").await;
    assert_eq!(s, StatusCode::OK, "another token still works: {b}");
    // Revoked with a wrong secret is still just "invalid".
    let (s, b) = raw_get(
        &app,
        "/stats",
        Some(&format!(
            "Bearer ami_{}_{}",
            acv.token_id.simple(),
            "B".repeat(43)
        )),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["code"], "invalid_token");
    app.stop().await;

    // The logs saw all of this and none of the secrets.
    let text = captured();
    assert!(
        text.contains("status=401") || text.contains("\"status\":401"),
        "the capture works"
    );
    assert!(
        text.contains("\"status\":200"),
        "the JSON layer captured too"
    );
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "a token or secret reached the logs: {}…",
            &s[..8.min(s.len())]
        );
    }
    println!(
        "secrets ({backend:?}): {} bytes of TRACE logs checked against {} tokens and secrets",
        text.len(),
        secrets.len()
    );
}

on_both_backends!(tokens_are_hashed_and_never_logged);
