//! Tamper evidence of the journal. An untouched database verifies clean;
//! each kind of tampering done directly in the database is found, by the
//! store and by `ami audit verify` (exit 1): an edited event, an event
//! removed in the middle, a dossier's last event removed, the journal's
//! tail removed with the head and the projection made to match (found from
//! a head kept earlier), an edited projection column or body. `ami rebuild`
//! refuses to take a dossier back unless told `--accept-loss`, and the audit
//! refuses a database that does not exist or is not `ami`'s.

use std::path::PathBuf;

use ami_service::store::{chain_digest, AuditFinding, GENESIS_DIGEST};
use ami_tests::*;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

const OLD: &str = "old motivation: budget insuffisamment détaillé";

async fn raw(app: &TestApp) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&app.db.url)
        .await
        .expect("raw connection")
}

/// Runs SQL straight on the database, as someone with its password would;
/// the number of rows it touched.
async fn tamper(app: &TestApp, sql: &str, binds: &[&str]) -> u64 {
    let mut conn = raw(app).await;
    let mut query = sqlx::query(sql);
    for b in binds {
        query = query.bind(*b);
    }
    let done = query.execute(&mut conn).await.expect("tamper");
    conn.close().await.ok();
    done.rows_affected()
}

/// (seq, body, digest) of a dossier's events, straight from the table.
async fn journal_rows(app: &TestApp, dossier: &str) -> Vec<(i64, String, String)> {
    let mut conn = raw(app).await;
    let rows = sqlx::query(
        "select seq, body, digest from dossier_event where cast(dossier_id as text) = $1 order by seq",
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

/// Runs `ami ARGS --database-url URL`: exit code, stdout and stderr.
fn cli(args: &[&str], url: &str) -> (i32, String, String) {
    let out = std::process::Command::new(ami_binary())
        .args(args)
        .args(["--database-url", url])
        .env("AMI_LOG", "error")
        .output()
        .expect("run ami");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_verify(url: &str) -> (i32, String) {
    let (code, out, err) = cli(&["audit", "verify"], url);
    (code, out + &err)
}

/// Three dossiers with seven events; the second carries `OLD`.
struct Journal {
    app: TestApp,
    d1: String,
    d2: String,
    d3: String,
}

async fn journal(backend: Backend) -> Journal {
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
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
            &boss,
            &d3,
            "classer_sans_suite",
            json!({"motivation": "désistement de la commune"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Every event in its place in the global chain before anyone tampers
    // (the service's sealer would do it within a moment).
    app.store.seal_pending().await.expect("seal");
    let id = |d: &Value| d["id"].as_str().expect("id").to_string();
    Journal {
        d1: id(&d1),
        d2: id(&d2),
        d3: id(&d3),
        app,
    }
}

async fn findings(app: &TestApp) -> Vec<AuditFinding> {
    app.store
        .verify(&app.definition, None)
        .await
        .expect("verify")
        .findings
}

async fn an_untouched_journal_verifies_and_its_digests_chain(backend: Backend) {
    let Journal { app, d2, .. } = journal(backend).await;
    let dar = app.person("Lecteur Dar", "dar", "agent").await;

    let report = app
        .store
        .verify(&app.definition, None)
        .await
        .expect("verify");
    assert_eq!(report.findings, []);
    assert_eq!((report.dossiers, report.events), (3, 7));
    let head = report.head.expect("head");
    assert_eq!(head.seq, 7);
    let (code, out) = cli_verify(&app.db.url);
    assert_eq!(code, 0, "clean journal: {out}");
    assert!(out.contains("journal intègre"), "{out}");

    // The history's digests chain over the stored canonical JSON, and its
    // global places follow one another.
    let (s, history) = app.get(&dar, &format!("/dossiers/{d2}/history")).await;
    assert_eq!(s, StatusCode::OK, "{history}");
    let events = history["events"].as_array().expect("events");
    let rows = journal_rows(&app, &d2).await;
    assert_eq!((events.len(), rows.len()), (3, 3));
    let mut previous = GENESIS_DIGEST.to_string();
    for (n, (event, (seq, body, digest))) in events.iter().zip(&rows).enumerate() {
        let shown = event["digest"].as_str().expect("digest");
        assert!(is_hex64(shown), "event {n}: {shown:?}");
        assert_eq!(event["seq"].as_i64(), Some(*seq));
        // The stored body is the RFC 8785 form of the content shown.
        let canonical = serde_jcs::to_string(&event["content"]).expect("jcs");
        assert_eq!(&canonical, body, "seq {seq}: not the canonical form");
        assert_eq!(chain_digest(&previous, body), *digest, "seq {seq}");
        assert_eq!(digest, shown);
        previous = digest.clone();
    }
    app.stop().await;
}

async fn an_edited_event_is_named_by_the_audit(backend: Backend) {
    let Journal { app, d2, .. } = journal(backend).await;

    let n = tamper(
        &app,
        "update dossier_event set body = replace(body, $1, 'tampered') where cast(dossier_id as text) = $2 and seq = 2",
        &[OLD, &d2],
    )
    .await;
    assert_eq!(n, 1);

    assert!(
        findings(&app).await.contains(&AuditFinding::BrokenLink {
            dossier_id: d2.clone(),
            seq: 2
        }),
        "the audit must name the edited event"
    );
    let (code, out) = cli_verify(&app.db.url);
    assert_eq!(code, 1, "tampered journal: {out}");
    assert!(out.contains(&format!("dossier {d2}, événement 2")), "{out}");
    app.stop().await;
}

async fn an_event_removed_in_the_middle_breaks_both_chains(backend: Backend) {
    let Journal { app, d2, .. } = journal(backend).await;

    let n = tamper(
        &app,
        "delete from dossier_event where cast(dossier_id as text) = $1 and seq = 2",
        &[&d2],
    )
    .await;
    assert_eq!(n, 1);

    let found = findings(&app).await;
    assert!(
        found.contains(&AuditFinding::BrokenLink {
            dossier_id: d2.clone(),
            seq: 3
        }),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| matches!(f, AuditFinding::GlobalChainBroken { .. })),
        "{found:?}"
    );
    assert_eq!(cli_verify(&app.db.url).0, 1);
    app.stop().await;
}

async fn a_dossiers_last_event_removed_is_found_and_rebuild_refuses_to_lose_it(backend: Backend) {
    let Journal { app, d2, .. } = journal(backend).await;
    let (_, before, _) = cli(&["audit", "head"], &app.db.url);

    // The ACV avis of d2 (its seq 3) disappears; the projection still shows it.
    let n = tamper(
        &app,
        "delete from dossier_event where cast(dossier_id as text) = $1 and seq = 3",
        &[&d2],
    )
    .await;
    assert_eq!(n, 1);

    let found = findings(&app).await;
    assert!(
        found.iter().any(|f| matches!(f,
            AuditFinding::ProjectionDiffers { dossier_id, what, .. }
                if *dossier_id == d2 && what.starts_with("version"))),
        "the projection ahead of its journal: {found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| matches!(f, AuditFinding::GlobalChainBroken { .. })),
        "{found:?}"
    );
    let (code, out) = cli_verify(&app.db.url);
    assert_eq!(code, 1, "{out}");

    // Rebuild refuses, names the dossier, changes nothing.
    let reference = app
        .store
        .get_dossier(ami_core::DossierId(d2.parse().expect("uuid")))
        .await
        .expect("read")
        .expect("dossier")
        .reference;
    let (code, out, err) = cli(&["rebuild"], &app.db.url);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!(
            "{reference} : la projection est à la version 3, le journal s'arrête à 2"
        )),
        "{out}"
    );
    assert!(out.contains("--accept-loss"), "{out}");
    let still = app
        .store
        .get_dossier(ami_core::DossierId(d2.parse().expect("uuid")))
        .await
        .expect("read")
        .expect("dossier");
    assert_eq!((still.version, still.state.as_str()), (3, "avis_acv"));

    // Told to, it takes the dossier back to its journal.
    let (code, out, err) = cli(&["rebuild", "--accept-loss"], &app.db.url);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 dossiers reconstruits"), "{out}");
    let back = app
        .store
        .get_dossier(ami_core::DossierId(d2.parse().expect("uuid")))
        .await
        .expect("read")
        .expect("dossier");
    assert_eq!((back.version, back.state.as_str()), (2, "instruit"));
    // The global chain still says an event is missing, since the head kept
    // before says so.
    let (code, out, _) = cli(
        &["audit", "verify", "--since-head", before.trim()],
        &app.db.url,
    );
    assert_eq!(code, 1, "{out}");
    app.stop().await;
}

async fn a_tail_removed_with_its_traces_is_found_from_a_kept_head(backend: Backend) {
    let Journal { app, d3, .. } = journal(backend).await;
    let (code, kept, err) = cli(&["audit", "head"], &app.db.url);
    assert_eq!(code, 0, "{err}");
    let kept = kept.trim().to_string();
    assert!(kept.starts_with("7:"), "{kept}");
    assert!(is_hex64(&kept[2..]), "{kept}");
    let (code, out, _) = cli(&["audit", "verify", "--since-head", &kept], &app.db.url);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("rien n'a changé jusqu'à la tête conservée"),
        "{out}"
    );

    // Someone removes the last event (d3 classed sans suite) and its place
    // in the chain, sets the head back to the place before, and rebuilds the
    // projection to match.
    let mut conn = raw(&app).await;
    let row =
        sqlx::query("select global_seq, global_digest from journal_chain where global_seq = 6")
            .fetch_one(&mut conn)
            .await
            .expect("place 6");
    let (seq, digest): (i64, String) = (row.get("global_seq"), row.get("global_digest"));
    let last = sqlx::query(
        "select event_id from dossier_event where cast(dossier_id as text) = $1 and seq = 2",
    )
    .bind(&d3)
    .fetch_one(&mut conn)
    .await
    .expect("last event");
    let last: i64 = last.get("event_id");
    for sql in [
        "delete from journal_chain where event_id = $1",
        "delete from dossier_event where event_id = $1",
    ] {
        sqlx::query(sql)
            .bind(last)
            .execute(&mut conn)
            .await
            .expect("delete");
    }
    sqlx::query("update journal_head set global_seq = $1, global_digest = $2")
        .bind(seq)
        .bind(&digest)
        .execute(&mut conn)
        .await
        .expect("head");
    conn.close().await.ok();
    let (code, out, err) = cli(&["rebuild", "--accept-loss"], &app.db.url);
    assert_eq!(code, 0, "{out}{err}");

    // Every trace is consistent again: only the kept head can tell.
    assert_eq!(findings(&app).await, []);
    let (code, out, _) = cli(&["audit", "verify", "--since-head", &kept], &app.db.url);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("la tête conservée {kept} n'existe plus")),
        "{out}"
    );
    app.stop().await;
}

async fn a_tampered_head_is_found(backend: Backend) {
    let Journal { app, .. } = journal(backend).await;
    tamper(&app, "update journal_head set global_seq = 5", &[]).await;
    let found = findings(&app).await;
    assert!(
        found
            .iter()
            .any(|f| matches!(f, AuditFinding::HeadMismatch { .. })),
        "{found:?}"
    );
    app.stop().await;
}

async fn an_edited_projection_is_found_column_or_body(backend: Backend) {
    let Journal { app, d1, d2, .. } = journal(backend).await;

    // The state column alone, as the issue saw it.
    tamper(
        &app,
        "update dossier set state = 'laureat' where cast(dossier_id as text) = $1",
        &[&d1],
    )
    .await;
    // The body alone: a verdict changed.
    let n = tamper(
        &app,
        match app.db.backend {
            Backend::Sqlite => {
                "update dossier set body = replace(body, '\"reserve\"', '\"favorable\"') \
                 where dossier_id = $1"
            }
            // The projection is jsonb there: edited as text all the same.
            Backend::Postgres => {
                "update dossier set body = replace(body::text, '\"reserve\"', \
                 '\"favorable\"')::jsonb where dossier_id = $1::uuid"
            }
        },
        &[&d2],
    )
    .await;
    assert_eq!(n, 1);

    let found = findings(&app).await;
    assert!(
        found.iter().any(|f| matches!(f,
            AuditFinding::ProjectionDiffers { dossier_id, what, .. }
                if *dossier_id == d1 && what.starts_with("state"))),
        "{found:?}"
    );
    assert!(
        found.iter().any(|f| matches!(f,
            AuditFinding::ProjectionDiffers { dossier_id, what, .. }
                if *dossier_id == d2 && what.contains("body"))),
        "{found:?}"
    );
    let (code, out) = cli_verify(&app.db.url);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("state : « laureat » au lieu de « instruit »"),
        "{out}"
    );

    // A projection with no journal at all.
    tamper(
        &app,
        "delete from dossier_event where cast(dossier_id as text) = $1",
        &[&d1],
    )
    .await;
    let found = findings(&app).await;
    assert!(
        found.iter().any(|f| matches!(f,
            AuditFinding::ProjectionWithoutJournal { dossier_id, .. } if *dossier_id == d1)),
        "{found:?}"
    );
    app.stop().await;
}

async fn an_event_slipped_in_behind_the_services_back_is_found(backend: Backend) {
    let Journal { app, d1, .. } = journal(backend).await;
    let rows = journal_rows(&app, &d1).await;
    let (_, body, digest) = rows.last().expect("an event").clone();

    // A copy of d1's last event as its next one, chained correctly, written
    // straight into the journal (not through the service).
    let mut event: Value = serde_json::from_str(&body).expect("event");
    event["seq"] = json!(3);
    event["from"] = event["to"].clone();
    let forged = serde_jcs::to_string(&event).expect("jcs");
    let forged_digest = chain_digest(&digest, &forged);
    tamper(
        &app,
        match app.db.backend {
            Backend::Sqlite => {
                "insert into dossier_event (dossier_id, seq, action, agency, actor_id, \
                 at_us, body, digest) values ($1, 3, 'instruire', 'dar', 'x', 0, $2, $3)"
            }
            Backend::Postgres => {
                "insert into dossier_event (dossier_id, seq, action, agency, \
                 actor_id, occurred_at, body, digest) \
                 values ($1::uuid, 3, 'instruire', 'dar', 'x', now(), $2, $3)"
            }
        },
        &[&d1, &forged, &forged_digest],
    )
    .await;

    let found = findings(&app).await;
    assert!(
        found.iter().any(|f| matches!(f,
            AuditFinding::OutsideTheChain { dossier_id, seq } if *dossier_id == d1 && *seq == 3)),
        "{found:?}"
    );
    app.stop().await;
}

/// The dashboard's counts are kept beside the dossiers; edited by hand,
/// the audit names the group that no longer matches.
async fn edited_counts_are_found(backend: Backend) {
    let Journal { app, .. } = journal(backend).await;
    assert!(findings(&app).await.is_empty());
    let n = tamper(
        &app,
        "update dossier_count set n = n + 5 where state = 'instruit'",
        &[],
    )
    .await;
    assert!(n >= 1);

    let found = findings(&app).await;
    assert!(
        found.iter().any(|f| matches!(f,
            AuditFinding::CountsDiffer { what } if what.contains("état instruit"))),
        "{found:?}"
    );
    let (code, out) = cli_verify(&app.db.url);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("compteurs du tableau de bord"), "{out}");
    app.stop().await;
}

on_both_backends!(
    edited_counts_are_found,
    an_event_slipped_in_behind_the_services_back_is_found,
    an_untouched_journal_verifies_and_its_digests_chain,
    an_edited_event_is_named_by_the_audit,
    an_event_removed_in_the_middle_breaks_both_chains,
    a_dossiers_last_event_removed_is_found_and_rebuild_refuses_to_lose_it,
    a_tail_removed_with_its_traces_is_found_from_a_kept_head,
    a_tampered_head_is_found,
    an_edited_projection_is_found_column_or_body,
);

#[test]
fn the_audit_refuses_a_sqlite_file_that_does_not_exist_and_creates_none() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("typo.db");
    let url = format!("sqlite://{}", path.display());

    let (code, out) = cli_verify(&url);

    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("intègre"), "{out}");
    assert!(out.contains("introuvable"), "{out}");
    assert!(!path.exists(), "the audit created {}", path.display());
    for args in [&["audit", "head"][..], &["rebuild"][..]] {
        let (code, _, err) = cli(args, &url);
        assert_ne!(code, 0, "{args:?}: {err}");
        assert!(!path.exists(), "{args:?} created the file");
    }
}

#[tokio::test]
async fn the_audit_refuses_a_database_without_ami_tables() {
    // A SQLite file that exists but is someone else's.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("other.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("create");
    sqlx::query("create table notes (id integer primary key, text text)")
        .execute(&mut conn)
        .await
        .expect("table");
    conn.close().await.ok();
    let (code, out) = cli_verify(&format!("sqlite://{}", path.display()));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("aucune table dossier_event"), "{out}");

    // An empty PostgreSQL database.
    let db = TestDb::new(Backend::Postgres).await;
    let (code, out) = cli_verify(&db.url);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("aucune table dossier_event"), "{out}");
}
