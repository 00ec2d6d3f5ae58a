//! Tamper evidence of the journal: an untouched database verifies clean, one
//! event edited directly in the database is named exactly (dossier and seq)
//! by `verify_journal` and by `ami audit verify`, and the digests the history
//! shows chain from the genesis digest over the stored canonical JSON.

use std::path::PathBuf;

use ami_core::Event;
use ami_service::store::{chain_digest, BrokenLink, GENESIS_DIGEST};
use ami_tests::*;
use serde_json::json;
use sqlx::{Connection, Row};

const OLD: &str = "old motivation: budget insuffisamment détaillé";

async fn raw(app: &TestApp) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&app.db.url)
        .await
        .expect("raw connection")
}

/// (seq, body, digest) of a dossier's events, straight from the table.
async fn journal_rows(app: &TestApp, dossier: &str) -> Vec<(i64, String, String)> {
    let mut conn = raw(app).await;
    let rows = sqlx::query(
        "select seq, body, digest from dossier_event where dossier_id = $1 order by seq",
    )
    .bind(dossier)
    .fetch_all(&mut conn)
    .await
    .expect("journal rows");
    conn.close().await.ok();
    rows.iter()
        .map(|r| {
            (
                r.try_get::<i64, _>("seq").expect("seq"),
                r.try_get::<String, _>("body").expect("body"),
                r.try_get::<String, _>("digest").expect("digest"),
            )
        })
        .collect()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The real `ami` program, built by cargo for this crate's tests.
fn ami_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ami-under-test"))
}

/// Runs `ami audit verify`: exit code and stdout.
fn cli_verify(url: &str) -> (i32, String) {
    let bin = ami_binary();
    let out = std::process::Command::new(&bin)
        .args(["audit", "verify", "--database-url", url])
        .env("AMI_LOG", "error")
        .output()
        .expect("run ami audit verify");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn an_edited_event_is_named_by_the_audit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;

    // Three dossiers; the second gets the motivation that will be tampered with.
    let d1 = app.deposit(&dar, &["acv"]).await;
    let (s, b) = app
        .act(&dar, &d1, "instruire", json!({"verdict": "favorable"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d2 = app.deposit(&dar, &["acv", "ti"]).await;
    let (s, b) = app
        .act(
            &dar,
            &d2,
            "instruire",
            json!({"verdict": "reserve", "motivation": OLD}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .act(&acv, &d2, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d3 = app.deposit(&dar, &["ti"]).await;
    let (s, b) = app
        .act(
            &dar,
            &d3,
            "classer_sans_suite",
            json!({"motivation": "désistement"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d2_id = d2["id"].as_str().expect("id").to_string();

    // Untouched: clean, every event counted.
    let total = app.journal_len().await;
    assert_eq!(total, 7);
    let report = app.store.verify_journal().await.expect("verify");
    assert_eq!(report.first_broken, None);
    assert_eq!(report.events, total as u64);
    assert_eq!(report.dossiers, 3);
    let (code, out) = cli_verify(&app.db.url);
    assert_eq!(code, 0, "clean journal: {out}");

    // The history's digests chain over the stored canonical JSON.
    let (s, history) = app.get(&dar, &format!("/dossiers/{d2_id}/history")).await;
    assert_eq!(s, StatusCode::OK, "{history}");
    let events = history["events"].as_array().expect("events");
    let rows = journal_rows(&app, &d2_id).await;
    assert_eq!(events.len(), 3);
    assert_eq!(rows.len(), events.len());
    let mut previous = GENESIS_DIGEST.to_string();
    for (n, (event, (seq, body, digest))) in events.iter().zip(&rows).enumerate() {
        let shown = event["digest"].as_str().expect("digest");
        assert!(
            is_hex64(shown),
            "event {n}: digest {shown:?} is not 64 lowercase hex"
        );
        assert_eq!(event["seq"].as_i64(), Some(*seq));
        assert_eq!(*seq, n as i64 + 1);
        // The stored body is the canonical JSON: reserializing gives it back.
        let parsed: Event = serde_json::from_str(body).expect("event JSON");
        assert_eq!(
            &serde_json::to_string(&parsed).expect("json"),
            body,
            "seq {seq}: not canonical"
        );
        let recomputed = chain_digest(&previous, body);
        assert_eq!(
            recomputed, *digest,
            "seq {seq}: stored digest does not chain"
        );
        assert_eq!(
            recomputed, shown,
            "seq {seq}: history digest does not chain"
        );
        previous = recomputed;
    }
    assert_ne!(events[0]["digest"], events[1]["digest"]);

    // Edit one event's motivation directly in the database.
    let mut conn = raw(&app).await;
    let done = sqlx::query(
        "update dossier_event set body = replace(body, $1, 'tampered') where dossier_id = $2 and seq = $3",
    )
    .bind(OLD)
    .bind(&d2_id)
    .bind(2_i64)
    .execute(&mut conn)
    .await
    .expect("tamper");
    assert_eq!(done.rows_affected(), 1);
    conn.close().await.ok();
    assert!(journal_rows(&app, &d2_id).await[1].1.contains("tampered"));

    let report = app.store.verify_journal().await.expect("verify");
    assert_eq!(
        report.first_broken,
        Some(BrokenLink {
            dossier_id: d2_id.clone(),
            seq: 2
        }),
        "the audit must name the edited event"
    );
    let (code, out) = cli_verify(&app.db.url);
    assert_eq!(code, 1, "tampered journal: {out}");
    assert!(out.contains(&d2_id), "the CLI names the dossier: {out}");
    assert!(out.contains(" 2 "), "the CLI names seq 2: {out}");
    println!("ami audit verify ({backend:?}): {}", out.trim());
    app.stop().await;
}

on_both_backends!(an_edited_event_is_named_by_the_audit);
