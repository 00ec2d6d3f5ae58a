//! A wave's selection committee over HTTP: tried first (dry run), then
//! recorded all at once or not at all, on both databases.

use ami_tests::{
    email_of, new_dossier_in_wave, on_both_backends, Backend, Person, Reply, Team, TestApp,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A dossier of `wave` walked to the end of its avis: instructed by the
/// DAR agent, then the avis of each of its programmes, with `verdict`.
async fn reviewed(app: &TestApp, team: &Team, commune: &str, wave: u8, verdict: &str) -> Value {
    let mut d = app
        .deposit_body(&team.dar, &new_dossier_in_wave(commune, &["acv"], wave))
        .await;
    d = app
        .must_act(&team.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let motivation = if verdict == "favorable" {
        json!(null)
    } else {
        json!("Le projet ne s'inscrit pas dans le programme.")
    };
    app.must_act(
        &team.acv,
        &d,
        "avis_acv",
        json!({"verdict": verdict, "motivation": motivation}),
    )
    .await
}

fn decision(d: &Value, action: &str) -> Value {
    let mut decision = json!({
        "dossier_id": d["id"],
        "expected_version": d["version"],
        "action": action,
    });
    if action == "refuser" {
        decision["motivation"] = json!("Le comité retient d'autres projets de la région.");
    }
    decision
}

fn session(decisions: Vec<Value>, dry_run: bool) -> Value {
    json!({
        "date": "2020-12-15",
        "minutes": "Comité de sélection de la vague 1 : quorum atteint, « cœur de ville » d'abord.",
        "members": [
            {"name": "Élise Fontaine", "agency": "dar"},
            {"name": "Inès Roussel", "agency": "acv"}
        ],
        "decisions": decisions,
        "dry_run": dry_run,
    })
}

async fn hold(app: &TestApp, who: &Person, wave: u8, body: &Value) -> Reply {
    app.send_json(
        Method::POST,
        &format!("/waves/{wave}/committees"),
        who,
        body,
        None,
    )
    .await
}

async fn state_of(app: &TestApp, who: &Person, d: &Value) -> String {
    let id = d["id"].as_str().expect("id");
    let (_, now) = app.get(who, &format!("/dossiers/{id}")).await;
    now["state"].as_str().expect("state").to_string()
}

async fn a_dry_run_answers_each_decision_and_writes_nothing(backend: Backend) {
    // Arrange: two dossiers ready, one with a défavorable avis.
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let good = reviewed(&app, &team, "Nevers", 1, "favorable").await;
    let blocked = reviewed(&app, &team, "Autun", 1, "defavorable").await;
    let events = app.event_count().await;

    // Act
    let reply = hold(
        &app,
        &team.boss,
        1,
        &session(
            vec![
                decision(&good, "declarer_laureat"),
                decision(&blocked, "declarer_laureat"),
            ],
            true,
        ),
    )
    .await;

    // Assert: one possible, one refused by the engine's rule, in order.
    let body = reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "committee_refused");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{body}");
    assert_eq!(results[0]["dossier_id"], good["id"]);
    assert_eq!(results[0]["ok"], true);
    assert_eq!(results[0]["code"], Value::Null);
    assert_eq!(results[1]["dossier_id"], blocked["id"]);
    assert_eq!(results[1]["ok"], false);
    assert_eq!(results[1]["code"], "blocking_verdict", "{body}");
    let detail = results[1]["detail"].as_str().expect("detail");
    assert!(detail.contains("Défavorable"), "{detail}");
    assert_eq!(app.event_count().await, events, "a dry run writes nothing");

    // Act: the dry run of the possible one alone.
    let reply = hold(
        &app,
        &team.boss,
        1,
        &session(vec![decision(&good, "declarer_laureat")], true),
    )
    .await;

    // Assert
    let body = reply.assert_ok(StatusCode::OK);
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["results"][0]["ok"], true);
    assert_eq!(app.event_count().await, events);
    assert_eq!(state_of(&app, &team.boss, &good).await, "avis_acv");
    app.stop().await;
}

async fn a_session_is_recorded_whole_and_each_decision_names_it(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let laureat = reviewed(&app, &team, "Nevers", 1, "favorable").await;
    let refuse = reviewed(&app, &team, "Autun", 1, "defavorable").await;

    // Act
    let reply = hold(
        &app,
        &team.boss,
        1,
        &session(
            vec![
                decision(&laureat, "declarer_laureat"),
                decision(&refuse, "refuser"),
            ],
            false,
        ),
    )
    .await;

    // Assert: recorded, both taken, the events name the session.
    let body = reply.assert_ok(StatusCode::CREATED).clone();
    let id = body["id"].as_str().expect("committee id").to_string();
    assert_eq!(body["results"][0]["ok"], true);
    assert_eq!(body["results"][1]["ok"], true);
    assert_eq!(state_of(&app, &team.boss, &laureat).await, "laureat");
    assert_eq!(state_of(&app, &team.boss, &refuse).await, "refuse");
    for d in [&laureat, &refuse] {
        let dossier_id = d["id"].as_str().expect("id");
        let (_, history) = app
            .get(&team.boss, &format!("/dossiers/{dossier_id}/history"))
            .await;
        let last = history["events"]
            .as_array()
            .and_then(|e| e.last())
            .expect("events")
            .clone();
        let event = &last["content"];
        assert_eq!(event["payload"]["type"], "committee", "{last}");
        assert_eq!(event["payload"]["committee_id"], id.as_str());
        assert_eq!(event["payload"]["held_on"], "2020-12-15");
        assert_eq!(event["actor"]["name"], "Dominique Bernard");
        let (_, now) = app
            .get(&team.boss, &format!("/dossiers/{dossier_id}"))
            .await;
        assert_eq!(now["committee"], json!({"id": id, "held_on": "2020-12-15"}));
    }

    // Act: the wave's sessions.
    let (status, list) = app.get(&team.boss, "/waves/1/committees").await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list}");
    let s = &items[0];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["date"], "2020-12-15");
    assert!(s["minutes"]
        .as_str()
        .expect("minutes")
        .contains("« cœur de ville »"));
    assert_eq!(s["members"][0]["name"], "Élise Fontaine");
    assert_eq!(s["members"][1]["agency"], "acv");
    assert_eq!(s["recorded_by"], "Dominique Bernard");
    let decisions = s["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[0]["reference"], laureat["reference"]);
    assert_eq!(decisions[0]["action"], "declarer_laureat");
    assert_eq!(decisions[1]["action"], "refuser");
    assert!(decisions[1]["motivation"].as_str().is_some());
    let (_, other_wave) = app.get(&team.boss, "/waves/2/committees").await;
    assert_eq!(other_wave["items"], json!([]));
    app.stop().await;
}

async fn one_refusal_writes_nothing_and_every_reason_is_named(backend: Backend) {
    // Arrange: one ready, one stale, one of wave 2, one unknown, one whose
    // avis is still awaited.
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ready = reviewed(&app, &team, "Nevers", 1, "favorable").await;
    let stale = reviewed(&app, &team, "Autun", 1, "favorable").await;
    let wave2 = reviewed(&app, &team, "Cosne-Cours-sur-Loire", 2, "favorable").await;
    let waiting = app
        .deposit_body(&team.dar, &new_dossier_in_wave("Decize", &["acv"], 1))
        .await;
    let waiting = app
        .must_act(
            &team.dar,
            &waiting,
            "instruire",
            json!({"verdict": "favorable"}),
        )
        .await;
    let mut stale_decision = decision(&stale, "declarer_laureat");
    stale_decision["expected_version"] = json!(1);
    let unknown = json!({"dossier_id": "00000000-0000-4000-8000-000000000001",
        "expected_version": 3, "action": "declarer_laureat"});
    let events = app.event_count().await;

    // Act
    let reply = hold(
        &app,
        &team.boss,
        1,
        &session(
            vec![
                decision(&ready, "declarer_laureat"),
                stale_decision,
                decision(&wave2, "declarer_laureat"),
                unknown,
                decision(&waiting, "declarer_laureat"),
            ],
            false,
        ),
    )
    .await;

    // Assert: 422, each reason in the request's order, nothing written.
    let body = reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "committee_refused");
    let codes: Vec<(bool, Value)> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["ok"].as_bool().expect("ok"), r["code"].clone()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (true, Value::Null),
            (false, json!("version_conflict")),
            (false, json!("wrong_wave")),
            (false, json!("dossier_not_found")),
            (false, json!("invalid_state")),
        ],
        "{body}"
    );
    let wrong_wave = body["results"][2]["detail"].as_str().expect("detail");
    assert!(
        wrong_wave.contains(wave2["reference"].as_str().expect("reference"))
            && wrong_wave.contains("vague 2"),
        "{wrong_wave}"
    );
    assert_eq!(app.event_count().await, events, "nothing written");
    assert_eq!(state_of(&app, &team.boss, &ready).await, "avis_acv");
    let (_, list) = app.get(&team.boss, "/waves/1/committees").await;
    assert_eq!(list["items"], json!([]));
    app.stop().await;
}

async fn four_eyes_hold_inside_a_committee(backend: Backend) {
    // Arrange: the responsable who records the session instructed one of
    // its dossiers with another token of the same e-mail.
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let boss_as_agent = app
        .person_with_email(
            "Dominique Bernard",
            &email_of(&team.boss.name),
            "dar",
            "agent",
        )
        .await;
    let mut own = app
        .deposit_body(&team.dar, &new_dossier_in_wave("Nevers", &["acv"], 1))
        .await;
    own = app
        .must_act(
            &boss_as_agent,
            &own,
            "instruire",
            json!({"verdict": "favorable"}),
        )
        .await;
    own = app
        .must_act(&team.acv, &own, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    let other = reviewed(&app, &team, "Autun", 1, "favorable").await;

    // Act
    let reply = hold(
        &app,
        &team.boss,
        1,
        &session(
            vec![
                decision(&other, "declarer_laureat"),
                decision(&own, "declarer_laureat"),
            ],
            false,
        ),
    )
    .await;

    // Assert
    let body = reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "committee_refused");
    assert_eq!(body["results"][0]["ok"], true);
    assert_eq!(body["results"][1]["code"], "four_eyes", "{body}");
    assert_eq!(state_of(&app, &team.boss, &other).await, "avis_acv");
    app.stop().await;
}

async fn only_who_may_decide_records_and_the_session_is_checked_field_by_field(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let d = reviewed(&app, &team, "Nevers", 1, "favorable").await;
    let good = session(vec![decision(&d, "declarer_laureat")], true);
    let events = app.event_count().await;

    // Act + Assert: a DAR agent, an ACV agent may not.
    hold(&app, &team.dar, 1, &good)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "role_too_low");
    hold(&app, &team.acv, 1, &good)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "wrong_agency");

    // Each field named.
    let cases: Vec<(&str, Value)> = vec![
        ("date", json!("2099-01-01")),
        ("minutes", json!("   ")),
        ("members", json!([])),
        (
            "members[0].agency",
            json!([{"name": "X", "agency": "cnam"}]),
        ),
        ("members[0].name", json!([{"name": "", "agency": "dar"}])),
        ("decisions", json!([])),
    ];
    for (field, value) in cases {
        let mut body = good.clone();
        let key = field.split(['[', '.']).next().expect("key");
        body[key] = value;
        hold(&app, &team.boss, 1, &body).await.assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            field,
        );
    }
    let mut sans_suite = good.clone();
    sans_suite["decisions"][0]["action"] = json!("classer_sans_suite");
    hold(&app, &team.boss, 1, &sans_suite)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "decisions[0].action",
        );
    let mut twice = good.clone();
    twice["decisions"] = json!([decision(&d, "declarer_laureat"), decision(&d, "refuser")]);
    hold(&app, &team.boss, 1, &twice)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "decisions[1].dossier_id",
        );
    let mut hidden = good.clone();
    hidden["decisions"][0]["motivation"] = json!("caché\u{200b}");
    hold(&app, &team.boss, 1, &hidden)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "decisions[0].motivation",
        );
    hold(&app, &team.boss, 9, &good)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    hold(&app, &team.boss, 0, &good)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let reply = app
        .send_json(
            Method::POST,
            "/waves/un/committees",
            &team.boss,
            &good,
            None,
        )
        .await;
    reply.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", "n");
    let mut unknown_field = good.clone();
    unknown_field["quorum"] = json!(true);
    let reply = hold(&app, &team.boss, 1, &unknown_field).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(app.event_count().await, events, "nothing written");
    app.stop().await;
}

async fn need_to_know_holds_in_the_list_of_sessions(backend: Backend) {
    // Arrange: a session deciding a TI-only dossier and an ACV one.
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let acv = reviewed(&app, &team, "Nevers", 1, "favorable").await;
    let mut ti = app
        .deposit_body(&team.dar, &new_dossier_in_wave("Le Creusot", &["ti"], 1))
        .await;
    ti = app
        .must_act(&team.dar, &ti, "instruire", json!({"verdict": "favorable"}))
        .await;
    ti = app
        .must_act(&team.ti, &ti, "avis_ti", json!({"verdict": "favorable"}))
        .await;
    hold(
        &app,
        &team.boss,
        1,
        &session(
            vec![
                decision(&acv, "declarer_laureat"),
                decision(&ti, "declarer_laureat"),
            ],
            false,
        ),
    )
    .await
    .assert_ok(StatusCode::CREATED);

    // Act
    let (status, seen_by_acv) = app.get(&team.acv, "/waves/1/committees").await;

    // Assert: ACV sees the session and only its own dossier's decision.
    assert_eq!(status, StatusCode::OK);
    let decisions = seen_by_acv["items"][0]["decisions"]
        .as_array()
        .expect("decisions");
    assert_eq!(decisions.len(), 1, "{seen_by_acv}");
    assert_eq!(decisions[0]["dossier_id"], acv["id"]);
    app.stop().await;
}

on_both_backends!(
    a_dry_run_answers_each_decision_and_writes_nothing,
    a_session_is_recorded_whole_and_each_decision_names_it,
    one_refusal_writes_nothing_and_every_reason_is_named,
    four_eyes_hold_inside_a_committee,
    only_who_may_decide_records_and_the_session_is_checked_field_by_field,
    need_to_know_holds_in_the_list_of_sessions,
);
