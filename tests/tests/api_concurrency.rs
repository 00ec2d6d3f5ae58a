//! Concurrent writers and projection rebuilds, on both backends.

use std::collections::HashSet;

use ami_tests::*;
use serde_json::{json, Value};

fn id_of(d: &Value) -> String {
    d["id"].as_str().expect("id").to_string()
}

/// The sequence numbers of a dossier's history, in its order.
async fn seqs_in_history(app: &TestApp, who: &Person, id: &str) -> Vec<u64> {
    let history = app.fetch(who, &format!("/dossiers/{id}/history")).await;
    history.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

async fn eight_concurrent_actions_on_one_version_let_exactly_one_through(backend: Backend) {
    // Arrange
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let id = id_of(&d);

    // Act: eight DAR people send an action at version 1 at once.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (app, dar, boss, id) = (app.clone(), dar.clone(), boss.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let (who, body) = if i % 2 == 0 {
                (dar, json!({"action": "instruire", "expected_version": 1, "verdict": "favorable", "comment": format!("agent {i}")}))
            } else {
                (boss, json!({"action": "classer_sans_suite", "expected_version": 1, "motivation": format!("agent {i}")}))
            };
            app.transition(&who, &id, &body).await
        }));
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("task"));
    }

    // Assert
    let ok: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "{replies:?}");
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        let problem = r.assert_problem(StatusCode::CONFLICT, "version_conflict");
        assert_eq!(problem["current_version"], 2);
    }
    let seqs = seqs_in_history(&app, &dar, &id).await;
    assert_eq!(seqs, [1, 2], "no gap, no duplicate");
    assert_eq!(app.event_count().await, 2);
    let (_, now) = app.get(&dar, &format!("/dossiers/{id}")).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["state"], ok[0].body["state"]);
    if let Ok(app) = std::sync::Arc::try_unwrap(app) {
        app.stop().await;
    }
}

async fn concurrent_deposits_get_distinct_references(backend: Backend) {
    // Arrange
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let dar = app.person("Camille Martin", "dar", "agent").await;

    // Act
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (app, dar) = (app.clone(), dar.clone());
        tasks.push(tokio::spawn(async move {
            app.deposit_body(&dar, &new_dossier(&format!("Commune {i}"), &["acv"]))
                .await
        }));
    }
    let mut refs = HashSet::new();
    for t in tasks {
        refs.insert(
            t.await.expect("task")["reference"]
                .as_str()
                .expect("reference")
                .to_string(),
        );
    }

    // Assert
    let expected: HashSet<String> = (1..=8).map(|n| format!("AMI2-V1-{n:04}")).collect();
    assert_eq!(refs, expected);
    assert_eq!(app.event_count().await, 8);
    if let Ok(app) = std::sync::Arc::try_unwrap(app) {
        app.stop().await;
    }
}

/// Every dossier, the statistics and a few lists as each reader gets them:
/// (reader, path, status, body). A dossier a reader may not know of is
/// read too: it must stay a 404.
async fn everything_read_by(
    app: &TestApp,
    readers: &[&Person],
    ids: &[String],
) -> Vec<(String, String, StatusCode, Value)> {
    let mut paths: Vec<String> = ids.iter().map(|id| format!("/dossiers/{id}")).collect();
    paths.extend(
        [
            "/stats",
            "/dossiers?awaiting=dar",
            "/dossiers?awaiting=acv",
            "/dossiers?awaiting=ti",
            "/dossiers?q=commune&limit=4",
        ]
        .map(String::from),
    );
    let mut read = Vec::new();
    for who in readers {
        for path in &paths {
            let reply = app.fetch(who, path).await;
            let dossier_of_other_programme = reply.status == StatusCode::NOT_FOUND
                && who.agency != "dar"
                && path.starts_with("/dossiers/");
            if !dossier_of_other_programme {
                reply.assert_ok(StatusCode::OK);
            }
            read.push((who.name.clone(), path.clone(), reply.status, reply.body));
        }
    }
    read
}

async fn rebuilding_the_projections_changes_no_dossier(backend: Backend) {
    // Arrange: a campaign with dossiers in every kind of state.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let ti = app.person("Karim Haddad", "ti", "agent").await;
    let mut ids = Vec::new();
    for (i, programmes) in [
        &["acv", "ti"][..],
        &["acv"],
        &["ti"],
        &["acv", "ti"],
        &["ti"],
        &["acv"],
    ]
    .iter()
    .enumerate()
    {
        let d = app
            .deposit_body(
                &dar,
                &new_dossier_in_wave(&format!("Commune {i}"), programmes, (i % 3 + 1) as u8),
            )
            .await;
        ids.push(id_of(&d));
        if i >= 1 {
            app.must_act(&dar, &d, "instruire", json!({"verdict": "favorable"}))
                .await;
        }
        if i >= 2 && programmes.contains(&"acv") {
            app.must_act(&acv, &d, "avis_acv", json!({"verdict": "favorable"}))
                .await;
        }
        if i >= 3 && programmes.contains(&"ti") {
            app.must_act(
                &ti,
                &d,
                "avis_ti",
                json!({"verdict": "reserve", "motivation": "À suivre"}),
            )
            .await;
        }
        if i == 4 {
            app.must_act(&boss, &d, "declarer_laureat", json!({})).await;
        }
        if i == 5 {
            app.must_act(&boss, &d, "refuser", json!({"motivation": "Non retenu"}))
                .await;
        }
    }
    // What each agency reads: DAR every dossier, ACV and TI those of their
    // programme (the others are 404 to them).
    let readers = [&dar, &acv, &ti];
    let before = everything_read_by(&app, &readers, &ids).await;
    let hidden = before
        .iter()
        .filter(|(_, _, status, _)| *status == StatusCode::NOT_FOUND)
        .count();
    assert_eq!(
        hidden, 4,
        "ACV knows nothing of the 2 TI-only dossiers, TI of the 2 ACV-only ones"
    );

    // Act
    let rebuilt = app
        .store
        .rebuild_projections(&app.definition, false)
        .await
        .expect("rebuild");

    // Assert
    assert!(rebuilt.applied);
    assert_eq!(rebuilt.shortened, []);
    assert_eq!(rebuilt.rebuilt, ids.len() as u64);
    let after = everything_read_by(&app, &readers, &ids).await;
    assert_eq!(after.len(), before.len());
    for (now, was) in after.iter().zip(&before) {
        assert_eq!(now, was);
    }
    // The dossiers still take actions after the rebuild.
    let first = app.fetch(&dar, &format!("/dossiers/{}", ids[0])).await.body;
    let instruit = app
        .must_act(&dar, &first, "instruire", json!({"verdict": "favorable"}))
        .await;
    assert_eq!(instruit["version"], 2);
    app.stop().await;
}

/// Group commit: requests that carry no version want their action taken on
/// the dossier as it is when they are written. Ten uploads of one pièce at
/// once, none naming a version, all land, one after another.
async fn concurrent_writes_without_a_version_on_one_dossier_all_land_in_turn(backend: Backend) {
    // Arrange
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let id = id_of(&d);
    let before = app.event_count().await;

    // Act
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (app, dar, id) = (app.clone(), dar.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            app.upload(
                &dar,
                &id,
                "budget_previsionnel",
                &format!("budget-{i}.pdf"),
                sample_pdf(),
                &[],
            )
            .await
        }));
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("task"));
    }

    // Assert: ten answers 200, ten events, versions 2 to 11 without gap.
    for r in &replies {
        r.assert_ok(StatusCode::OK);
    }
    let mut versions: Vec<u64> = replies
        .iter()
        .map(|r| r.body["version"].as_u64().expect("version"))
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=11).collect::<Vec<u64>>(), "{replies:?}");
    assert_eq!(app.event_count().await, before + 10);
    let seqs = seqs_in_history(&app, &dar, &id).await;
    assert_eq!(seqs, (1..=11).collect::<Vec<u64>>());
    if let Ok(app) = std::sync::Arc::try_unwrap(app) {
        app.stop().await;
    }
}

/// Group commit: a refused, a stale and a valid request sent together on
/// many dossiers. Each is answered as if it had been alone: the valid ones
/// are written, the others are refused and write nothing.
async fn a_refused_or_stale_request_among_concurrent_ones_leaves_the_others_written(
    backend: Backend,
) {
    // Arrange: twelve dossiers, just received (version 1).
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(id_of(&app.deposit(&dar, &["acv"]).await));
    }
    let before = app.event_count().await;

    // Act: for each dossier at once, an instruction at version 1 (valid),
    // one at version 7 (stale) and one without its verdict (refused by the
    // rules).
    let mut tasks = Vec::new();
    for id in &ids {
        for kind in ["valid", "stale", "refused"] {
            let (app, dar, id) = (app.clone(), dar.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let reply = match kind {
                    "valid" => {
                        app.transition(&dar, &id, &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"}))
                            .await
                    }
                    "stale" => {
                        app.transition(&dar, &id, &json!({"action": "instruire", "expected_version": 7, "verdict": "favorable"}))
                            .await
                    }
                    // No verdict: refused, or found stale if the valid
                    // one was written first.
                    _ => {
                        app.transition(&dar, &id, &json!({"action": "instruire", "expected_version": 1}))
                            .await
                    }
                };
                (kind, id, reply)
            }));
        }
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("task"));
    }

    // Assert
    for (kind, id, reply) in &replies {
        match *kind {
            "valid" => {
                let body = reply.assert_ok(StatusCode::OK);
                assert_eq!(body["version"], 2, "{id}");
                assert_eq!(body["state"], "instruit", "{id}");
            }
            "stale" => {
                reply.assert_problem(StatusCode::CONFLICT, "version_conflict");
            }
            _ => {
                assert!(
                    [StatusCode::UNPROCESSABLE_ENTITY, StatusCode::CONFLICT]
                        .contains(&reply.status),
                    "{id}: {reply:?}"
                );
            }
        }
    }
    assert_eq!(
        app.event_count().await,
        before + 12,
        "the twelve valid ones only"
    );
    for id in &ids {
        let (_, now) = app.get(&dar, &format!("/dossiers/{id}")).await;
        let events = app.fetch(&dar, &format!("/dossiers/{id}/history")).await;
        assert_eq!(
            now["version"].as_u64(),
            Some(events.body["events"].as_array().expect("events").len() as u64),
            "{id}: the projection's version is its number of events"
        );
    }
    if let Ok(app) = std::sync::Arc::try_unwrap(app) {
        app.stop().await;
    }
}

on_both_backends!(
    eight_concurrent_actions_on_one_version_let_exactly_one_through,
    concurrent_deposits_get_distinct_references,
    rebuilding_the_projections_changes_no_dossier,
    concurrent_writes_without_a_version_on_one_dossier_all_land_in_turn,
    a_refused_or_stale_request_among_concurrent_ones_leaves_the_others_written,
);
