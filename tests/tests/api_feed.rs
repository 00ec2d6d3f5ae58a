//! `GET /events`: the global feed and its cursor, on both backends, and on
//! PostgreSQL the guarantee that a late commit is never skipped.

use std::collections::HashSet;

use ami_tests::*;
use serde_json::{json, Value};

fn id_of(d: &Value) -> String {
    d["id"].as_str().expect("id").to_string()
}

fn key(e: &Value) -> (String, u64) {
    (
        e["dossier_id"].as_str().expect("dossier_id").to_string(),
        e["seq"].as_u64().expect("seq"),
    )
}

async fn following_the_feed_two_by_two_sees_every_event_exactly_once(backend: Backend) {
    // Arrange: 3 dossiers, 7 events.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let a = app.deposit(&dar, &["acv"]).await;
    let b = app.deposit(&dar, &["ti"]).await;
    app.must_act(&dar, &a, "instruire", json!({"verdict": "favorable"}))
        .await;
    let c = app.deposit(&dar, &["acv", "ti"]).await;
    app.must_act(&acv, &a, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    app.must_act(
        &boss,
        &b,
        "classer_sans_suite",
        json!({"motivation": "Doublon"}),
    )
    .await;
    app.must_act(&dar, &c, "instruire", json!({"verdict": "favorable"}))
        .await;

    // Act: DAR follows every dossier; ACV only those of its programme.
    let (events, cursor) = app.follow_feed(&dar, None, 2, 7).await;
    let (for_acv, acv_cursor) = app.follow_feed(&acv, None, 2, 5).await;

    // Assert
    let keys: Vec<(String, u64)> = events.iter().map(key).collect();
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 7, "no duplicate");
    assert_eq!(
        keys,
        [
            (id_of(&a), 1),
            (id_of(&b), 1),
            (id_of(&a), 2),
            (id_of(&c), 1),
            (id_of(&a), 3),
            (id_of(&b), 2),
            (id_of(&c), 2)
        ],
        "commit order"
    );
    for e in &events {
        assert_eq!(e["digest"].as_str().map(str::len), Some(64));
        assert!(e["cursor"].is_string());
        assert!(e["actor"]["name"].is_string());
    }
    assert_eq!(events[6]["cursor"].as_str(), cursor.as_deref());
    // ACV sees every event of a and c (acv, acv+ti), once, in the same
    // order, and nothing of b (ti only).
    let acv_keys: Vec<(String, u64)> = for_acv.iter().map(key).collect();
    let expected_for_acv: Vec<(String, u64)> = keys
        .iter()
        .filter(|(id, _)| *id != id_of(&b))
        .cloned()
        .collect();
    assert_eq!(acv_keys, expected_for_acv);
    assert_eq!(for_acv[4]["cursor"].as_str(), acv_cursor.as_deref());
    // Each event is the same as in its dossier's history.
    let history = app
        .fetch(&acv, &format!("/dossiers/{}/history", id_of(&a)))
        .await;
    let from_history: Vec<&Value> = history.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .collect();
    let from_feed: Vec<&Value> = events
        .iter()
        .filter(|e| e["dossier_id"] == a["id"])
        .collect();
    for (h, f) in from_history.iter().zip(&from_feed) {
        for field in [
            "seq", "action", "from", "to", "agency", "actor", "at", "verdict", "digest",
        ] {
            assert_eq!(h[field], f[field], "{field}");
        }
    }
    app.stop().await;
}

async fn the_cursor_stays_put_when_nothing_is_new_and_then_picks_up_new_events(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let empty = app.fetch(&dar, "/events").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let (_, cursor) = app.follow_feed(&dar, None, 100, 1).await;
    let cursor = cursor.expect("a cursor after one event");

    // Act
    let idle1 = app.fetch(&dar, &format!("/events?after={cursor}")).await;
    let idle2 = app
        .fetch(&dar, &format!("/events?after={cursor}&limit=5"))
        .await;
    app.must_act(&dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let (new, next) = app.follow_feed(&dar, Some(cursor.clone()), 100, 1).await;

    // Assert
    let empty = empty.assert_ok(StatusCode::OK);
    assert_eq!(empty["items"], json!([]));
    assert!(empty["next_cursor"].is_null());
    for idle in [&idle1, &idle2] {
        let page = idle.assert_ok(StatusCode::OK);
        assert_eq!(page["items"], json!([]));
        assert_eq!(page["next_cursor"].as_str(), Some(cursor.as_str()));
    }
    assert_eq!(new[0]["action"], "instruire");
    assert_ne!(next.as_deref(), Some(cursor.as_str()));
    app.stop().await;
}

async fn a_bad_feed_parameter_is_400_naming_it(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    app.deposit(&dar, &["acv"]).await;
    let cases = [
        ("/events?after=nope", "after"),
        ("/events?after=1.-2", "after"),
        ("/events?after=", "after"),
        ("/events?limit=0", "limit"),
        ("/events?limit=1001", "limit"),
        ("/events?limit=many", "limit"),
        ("/events?cursor=0.0", "cursor"),
        ("/events?limit=1&limit=2", "limit"),
    ];

    for (path, field) in cases {
        // Act
        let reply = app.fetch(&dar, path).await;

        // Assert
        reply.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", field);
    }
    app.fetch(&dar, "/events?limit=1000&after=0.0")
        .await
        .assert_ok(StatusCode::OK);
    app.stop().await;
}

on_both_backends!(
    following_the_feed_two_by_two_sees_every_event_exactly_once,
    the_cursor_stays_put_when_nothing_is_new_and_then_picks_up_new_events,
    a_bad_feed_parameter_is_400_naming_it,
);

/// PostgreSQL hands out `event_id`s in insert order, not commit order. A
/// transaction that took its id first and commits last must still reach a
/// consumer that already read past the later ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_feed_never_skips_an_event_that_commits_out_of_order() {
    use sqlx::{Connection, Row};

    // Arrange: a consumer up to date with two deposits.
    let app = TestApp::spawn(Backend::Postgres).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let first = app.deposit(&dar, &["acv"]).await;
    let second = app.deposit(&dar, &["acv"]).await;
    let (_, cursor) = app.follow_feed(&dar, None, 100, 2).await;
    let cursor = cursor.expect("cursor");

    // A slow writer: its transaction gets its id and inserts its event
    // (taking the next event_id) but does not commit yet.
    sqlx::any::install_default_drivers();
    let mut slow = sqlx::AnyConnection::connect(&app.db.url)
        .await
        .expect("connect");
    let mut tx = slow.begin().await.expect("begin");
    let slow_xact: String = sqlx::query("select pg_current_xact_id()::text as x")
        .fetch_one(&mut *tx)
        .await
        .expect("xact id")
        .try_get("x")
        .expect("x");
    let template: String =
        sqlx::query("select body from dossier_event where dossier_id = $1::uuid and seq = 1")
            .bind(id_of(&first))
            .fetch_one(&mut *tx)
            .await
            .expect("template")
            .try_get("body")
            .expect("body");
    let fake_id = uuid::Uuid::new_v4().to_string();
    let mut fake: Value = serde_json::from_str(&template).expect("event json");
    fake["dossier_id"] = json!(fake_id);
    sqlx::query(
        "insert into dossier_event (dossier_id, seq, action, agency, actor_id, occurred_at, body, \
         digest) values ($1::uuid, 1, 'deposer', 'dar', 'camille-martin', now(), $2, $3)",
    )
    .bind(&fake_id)
    .bind(fake.to_string())
    .bind("f".repeat(64))
    .execute(&mut *tx)
    .await
    .expect("insert the slow event");

    // Act: a later transaction (larger event_id and xact id) commits first.
    app.must_act(&dar, &second, "instruire", json!({"verdict": "favorable"}))
        .await;
    let while_open = app.fetch(&dar, &format!("/events?after={cursor}")).await;
    tx.commit().await.expect("commit the slow transaction");
    let _ = slow.close().await;
    let (after_commit, end) = app.follow_feed(&dar, Some(cursor.clone()), 1, 2).await;

    // Assert: nothing shown past the open transaction, then both, slow first.
    let page = while_open.assert_ok(StatusCode::OK);
    assert_eq!(
        page["items"],
        json!([]),
        "an event after a running transaction was shown: {page}"
    );
    assert_eq!(page["next_cursor"].as_str(), Some(cursor.as_str()));
    assert_eq!(after_commit[0]["dossier_id"], fake_id);
    assert!(after_commit[0]["cursor"]
        .as_str()
        .expect("cursor")
        .starts_with(&format!("{slow_xact}.")));
    assert_eq!(key(&after_commit[1]), (id_of(&second), 2));
    let rest = app
        .fetch(&dar, &format!("/events?after={}", end.expect("cursor")))
        .await;
    assert_eq!(rest.body["items"], json!([]));
    app.stop().await;
}
