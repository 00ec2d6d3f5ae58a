//! `POST /dossiers/{id}/transitions`: the paths of the workflow, every
//! refusal with its code, and Idempotency-Key replays, on both backends.

use ami_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

fn id_of(d: &Value) -> String {
    d["id"].as_str().expect("id").to_string()
}

// ---- The paths to laureat --------------------------------------------------------

async fn a_dossier_of_both_programmes_becomes_laureat_after_acv_then_ti(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv", "ti"]).await;

    // Act
    let instruit = app
        .must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let avis_acv = app
        .must_act(
            &t.acv,
            &d,
            "avis_acv",
            json!({"verdict": "reserve", "motivation": "Calendrier serré"}),
        )
        .await;
    let avis_ti = app
        .must_act(&t.ti, &d, "avis_ti", json!({"verdict": "favorable"}))
        .await;
    let laureat = app
        .must_act(
            &t.boss,
            &d,
            "declarer_laureat",
            json!({"comment": "Comité du 12 janvier"}),
        )
        .await;

    // Assert
    assert_eq!(
        (instruit["state"].as_str(), instruit["version"].as_u64()),
        (Some("instruit"), Some(2))
    );
    assert_eq!(instruit["awaiting"], json!(["acv"]));
    assert_eq!(
        (avis_acv["state"].as_str(), avis_acv["version"].as_u64()),
        (Some("avis_acv"), Some(3))
    );
    assert_eq!(avis_acv["awaiting"], json!(["ti"]));
    assert_eq!(avis_acv["avis"]["acv"]["motivation"], "Calendrier serré");
    assert_eq!(avis_acv["avis"]["acv"]["verdict_label"], "Réservé");
    assert_eq!(
        (avis_ti["state"].as_str(), avis_ti["version"].as_u64()),
        (Some("avis_ti"), Some(4))
    );
    assert_eq!(avis_ti["awaiting"], json!(["dar"]));
    assert_eq!(laureat["state"], "laureat");
    assert_eq!(laureat["state_label"], "Lauréat");
    assert_eq!(laureat["version"], 5);
    assert_eq!(laureat["awaiting"], json!([]));
    assert_eq!(laureat["actions"], json!([]));
    assert_eq!(app.event_count().await, 5);
    app.stop().await;
}

async fn an_acv_only_dossier_becomes_laureat_after_the_acv_avis(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;

    // Act
    app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let avis = app
        .must_act(&t.acv, &d, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    let laureat = app
        .must_act(&t.boss, &d, "declarer_laureat", json!({}))
        .await;

    // Assert
    assert_eq!(avis["awaiting"], json!(["dar"]));
    assert_eq!(laureat["state"], "laureat");
    assert_eq!(laureat["version"], 4);
    app.stop().await;
}

async fn a_ti_only_dossier_becomes_laureat_after_the_ti_avis(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["ti"]).await;

    // Act
    let instruit = app
        .must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    app.must_act(&t.ti, &d, "avis_ti", json!({"verdict": "favorable"}))
        .await;
    let laureat = app
        .must_act(&t.boss, &d, "declarer_laureat", json!({}))
        .await;

    // Assert
    assert_eq!(instruit["awaiting"], json!(["ti"]));
    assert_eq!(laureat["state"], "laureat");
    assert_eq!(laureat["version"], 4);
    app.stop().await;
}

// ---- 403, 404, 409 ------------------------------------------------------------------------

async fn an_action_of_another_agency_is_403_wrong_agency(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv", "ti"]).await;
    let before = app.event_count().await;

    // Act
    let (status, body) = app
        .act(&t.acv, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let reply = app
        .transition(
            &t.ti,
            &id_of(&d),
            &json!({"action": "classer_sans_suite", "expected_version": 1, "motivation": "x"}),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "wrong_agency");
    reply.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

async fn a_dar_agent_declaring_laureat_is_403_role_too_low(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let d = app
        .must_act(&t.acv, &d, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    let other_agent = app.person("Léa Petit", "dar", "agent").await;

    // Act
    let reply = app
        .transition(
            &other_agent,
            &id_of(&d),
            &json!({"action": "declarer_laureat", "expected_version": 3}),
        )
        .await;

    // Assert
    reply.assert_problem(StatusCode::FORBIDDEN, "role_too_low");
    assert_eq!(app.event_count().await, 3);
    // A responsable may also do what an agent may: a higher role.
    let (_, as_boss) = app.get(&t.boss, &format!("/dossiers/{}", id_of(&d))).await;
    assert!(as_boss["actions"]
        .as_array()
        .expect("actions")
        .contains(&json!("declarer_laureat")));
    app.stop().await;
}

async fn a_stale_expected_version_is_409_with_the_current_version(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let id = id_of(&d);
    app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;

    // Act: a second agent still looking at version 1.
    let stale = app
        .transition(&t.boss, &id, &json!({"action": "classer_sans_suite", "expected_version": 1, "motivation": "Retrait"}))
        .await;
    let ahead = app
        .transition(&t.boss, &id, &json!({"action": "classer_sans_suite", "expected_version": 9, "motivation": "Retrait"}))
        .await;

    // Assert
    let body =
        stale.assert_field_problem(StatusCode::CONFLICT, "version_conflict", "expected_version");
    assert_eq!(body["current_version"], 2);
    assert!(body["detail"].as_str().expect("detail").contains('2'));
    ahead.assert_problem(StatusCode::CONFLICT, "version_conflict");
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

async fn a_stale_version_wins_over_every_refusal_about_the_dossier(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let id = id_of(&d);
    app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let cases = [
        (
            &t.dar,
            json!({"action": "instruire", "expected_version": 1}),
        ), // invalid state, no verdict
        (
            &t.acv,
            json!({"action": "avis_acv", "expected_version": 1, "verdict": "excellent"}),
        ), // unknown verdict
        (&t.boss, json!({"action": "refuser", "expected_version": 1})), // no motivation
    ];

    for (who, body) in cases {
        // Act
        let reply = app.transition(who, &id, &body).await;

        // Assert
        let problem = reply.assert_problem(StatusCode::CONFLICT, "version_conflict");
        assert_eq!(problem["current_version"], 2, "{body}");
    }
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

/// Who may act is checked before when: a person of another agency, or
/// without the role, learns nothing about the dossier's version.
async fn a_caller_who_may_not_act_gets_403_even_with_a_stale_version(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let id = id_of(&d);
    app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let cases = [
        (
            &t.acv,
            json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"}),
            StatusCode::FORBIDDEN,
            "wrong_agency",
        ),
        // TI, who may not know of an ACV-only dossier, learns not even that
        // it exists.
        (
            &t.ti,
            json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &t.ti,
            json!({"action": "avis_ti", "expected_version": 1, "verdict": "favorable"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &t.dar,
            json!({"action": "declarer_laureat", "expected_version": 1}),
            StatusCode::FORBIDDEN,
            "role_too_low",
        ),
        (
            &t.dar,
            json!({"action": "approuver", "expected_version": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_action",
        ),
    ];

    for (who, body, status, code) in cases {
        // Act
        let reply = app.transition(who, &id, &body).await;

        // Assert
        let problem = reply.assert_problem(status, code);
        assert!(problem.get("current_version").is_none(), "{problem}");
    }
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

async fn a_transition_on_an_unknown_dossier_is_404(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let body = json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"});

    // Act
    let unknown = app
        .transition(&t.dar, &uuid::Uuid::new_v4().to_string(), &body)
        .await;
    let not_uuid = app.transition(&t.dar, "AMI2-V1-0001", &body).await;

    // Assert
    unknown.assert_problem(StatusCode::NOT_FOUND, "not_found");
    not_uuid.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", "id");
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

// ---- 422: each rule ------------------------------------------------------------------------

/// Takes `action` as `who` at the current version and asserts a 422 with
/// `code` (and `field` when given) that wrote nothing.
async fn assert_refused(
    app: &TestApp,
    who: &Person,
    d: &Value,
    action: &str,
    extra: Value,
    code: &str,
    field: Option<&str>,
) {
    let before = app.event_count().await;
    let (_, current) = app.get(who, &format!("/dossiers/{}", id_of(d))).await;
    let mut body = json!({"action": action, "expected_version": current["version"]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    let reply = app.transition(who, &id_of(d), &body).await;
    match field {
        Some(f) => reply.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, code, f),
        None => reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, code),
    };
    assert_eq!(app.event_count().await, before, "{code} wrote an event");
    let (_, after) = app.get(who, &format!("/dossiers/{}", id_of(d))).await;
    assert_eq!(after, current, "{code} changed the dossier");
}

async fn an_action_from_the_wrong_state_is_422_invalid_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    assert_refused(
        &app,
        &t.acv,
        &d,
        "avis_acv",
        json!({"verdict": "favorable"}),
        "invalid_state",
        None,
    )
    .await;
    assert_refused(
        &app,
        &t.boss,
        &d,
        "refuser",
        json!({"motivation": "Non"}),
        "invalid_state",
        None,
    )
    .await;
    app.stop().await;
}

/// The engine refuses an avis for a programme the dossier is not in
/// (`programme_not_concerned`). Over HTTP the agency of that programme does
/// not even know of the dossier (need to know): its avis is a 404 that
/// writes nothing.
async fn an_avis_for_a_programme_the_dossier_is_not_in_is_404_over_http_and_programme_not_concerned_in_the_engine(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["ti"]).await;
    let id = id_of(&d);
    app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let before = app.event_count().await;
    let (_, current) = app.get(&t.dar, &format!("/dossiers/{id}")).await;

    // Act
    let over_http = app
        .transition(
            &t.acv,
            &id,
            &json!({"action": "avis_acv", "expected_version": current["version"], "verdict": "favorable"}),
        )
        .await;
    let dossier = app
        .store
        .get_dossier(ami_core::DossierId(
            uuid::Uuid::try_parse(&id).expect("uuid"),
        ))
        .await
        .expect("read")
        .expect("the dossier");
    let def = &app.definition;
    let acv = ami_core::Actor {
        id: email_of(&t.acv.name).into(),
        name: t.acv.name.as_str().into(),
        agency: def.agency_id("acv").expect("acv"),
        role: def.role_id("agent").expect("agent"),
    };
    let by_the_engine = ami_core::decide(
        def,
        ami_core::Target::Dossier(&dossier),
        &ami_core::Command::verdict(
            def.action_id("avis_acv").expect("avis_acv"),
            def.verdict_id("favorable").expect("favorable"),
        ),
        &acv,
        chrono::Utc::now(),
    );

    // Assert
    let problem = over_http.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert!(problem.get("current_version").is_none(), "{problem}");
    assert_eq!(app.event_count().await, before);
    let (_, after) = app.get(&t.dar, &format!("/dossiers/{id}")).await;
    assert_eq!(after, current);
    let refusal = by_the_engine.expect_err("an ACV avis on a TI-only dossier");
    assert_eq!(refusal.code(), "programme_not_concerned");
    app.stop().await;
}

async fn the_ti_avis_before_the_acv_avis_is_422_avis_missing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv", "ti"]).await;
    app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    assert_refused(
        &app,
        &t.ti,
        &d,
        "avis_ti",
        json!({"verdict": "favorable"}),
        "avis_missing",
        None,
    )
    .await;
    app.must_act(&t.acv, &d, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    // Declaring before the TI avis: still missing.
    assert_refused(
        &app,
        &t.boss,
        &d,
        "declarer_laureat",
        json!({}),
        "avis_missing",
        None,
    )
    .await;
    app.stop().await;
}

async fn instruction_without_every_piece_is_422_pieces_missing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let mut body = new_dossier("Nevers", &["acv"]);
    body["pieces"] = json!([]);
    let d = app.deposit_body(&t.dar, &body).await;
    assert_refused(
        &app,
        &t.dar,
        &d,
        "instruire",
        json!({"verdict": "favorable"}),
        "pieces_missing",
        Some("pieces"),
    )
    .await;
    app.stop().await;
}

async fn verdicts_are_checked_missing_unknown_or_unmotivated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    assert_refused(
        &app,
        &t.dar,
        &d,
        "instruire",
        json!({}),
        "verdict_missing",
        Some("verdict"),
    )
    .await;
    assert_refused(
        &app,
        &t.dar,
        &d,
        "instruire",
        json!({"verdict": "excellent"}),
        "unknown_verdict",
        Some("verdict"),
    )
    .await;
    assert_refused(
        &app,
        &t.dar,
        &d,
        "instruire",
        json!({"verdict": "reserve"}),
        "motivation_missing",
        Some("motivation"),
    )
    .await;
    assert_refused(
        &app,
        &t.dar,
        &d,
        "instruire",
        json!({"verdict": "defavorable", "motivation": "   "}),
        "motivation_missing",
        Some("motivation"),
    )
    .await;
    assert_refused(
        &app,
        &t.boss,
        &d,
        "classer_sans_suite",
        json!({}),
        "motivation_missing",
        Some("motivation"),
    )
    .await;
    assert_refused(
        &app,
        &t.boss,
        &d,
        "classer_sans_suite",
        json!({"motivation": "x", "verdict": "favorable"}),
        "verdict_not_expected",
        Some("verdict"),
    )
    .await;
    app.stop().await;
}

async fn a_defavorable_avis_blocks_the_laureat_declaration(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    app.must_act(
        &t.acv,
        &d,
        "avis_acv",
        json!({"verdict": "defavorable", "motivation": "Centre-ville hors périmètre"}),
    )
    .await;
    assert_refused(
        &app,
        &t.boss,
        &d,
        "declarer_laureat",
        json!({}),
        "blocking_verdict",
        None,
    )
    .await;
    // Refusing remains possible.
    let refused = app
        .must_act(
            &t.boss,
            &d,
            "refuser",
            json!({"motivation": "Avis défavorable"}),
        )
        .await;
    assert_eq!(refused["state"], "refuse");
    app.stop().await;
}

async fn the_person_who_instructed_cannot_declare_laureat(backend: Backend) {
    // Arrange: one person with an agent token and a responsable token.
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let agent = app.person("Claire Dubois", "dar", "agent").await;
    let same_as_responsable = app.person("Claire  Dubois", "dar", "responsable").await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    app.must_act(&agent, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    app.must_act(&t.acv, &d, "avis_acv", json!({"verdict": "favorable"}))
        .await;

    // Act / Assert
    let (_, seen) = app
        .get(&same_as_responsable, &format!("/dossiers/{}", id_of(&d)))
        .await;
    assert!(
        !seen["actions"]
            .as_array()
            .expect("actions")
            .contains(&json!("declarer_laureat")),
        "{seen}"
    );
    assert_refused(
        &app,
        &same_as_responsable,
        &d,
        "declarer_laureat",
        json!({}),
        "four_eyes",
        None,
    )
    .await;
    let laureat = app
        .must_act(&t.boss, &d, "declarer_laureat", json!({}))
        .await;
    assert_eq!(laureat["state"], "laureat");
    app.stop().await;
}

async fn a_final_dossier_accepts_no_action(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let closed = app
        .must_act(
            &t.boss,
            &d,
            "classer_sans_suite",
            json!({"motivation": "Retrait du porteur"}),
        )
        .await;
    assert_eq!(closed["state"], "sans_suite");
    assert_eq!(closed["state_label"], "Classé sans suite");
    assert_refused(
        &app,
        &t.boss,
        &d,
        "classer_sans_suite",
        json!({"motivation": "Encore"}),
        "terminal_state",
        None,
    )
    .await;
    assert_refused(
        &app,
        &t.dar,
        &d,
        "instruire",
        json!({"verdict": "favorable"}),
        "terminal_state",
        None,
    )
    .await;
    let piece = app
        .send_json(
            Method::PUT,
            &format!("/dossiers/{}/pieces/budget_previsionnel", id_of(&d)),
            &t.dar,
            &json!({"filename": "b.xlsx"}),
            None,
        )
        .await;
    piece.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "terminal_state");
    app.stop().await;
}

async fn an_unknown_or_misplaced_action_is_422_naming_the_action(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    assert_refused(
        &app,
        &t.dar,
        &d,
        "approuver",
        json!({}),
        "unknown_action",
        Some("action"),
    )
    .await;
    assert_refused(
        &app,
        &t.dar,
        &d,
        "deposer",
        json!({}),
        "invalid_field",
        Some("action"),
    )
    .await;
    assert_refused(
        &app,
        &t.dar,
        &d,
        "ajouter_piece",
        json!({}),
        "invalid_field",
        Some("action"),
    )
    .await;
    app.stop().await;
}

// ---- Idempotency-Key ------------------------------------------------------------------------

async fn a_replayed_transition_gets_the_first_answer_and_writes_nothing(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let path = format!("/dossiers/{}/transitions", id_of(&d));
    let body = json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"});
    let first = app
        .send_json(
            Method::POST,
            &path,
            &t.dar,
            &body,
            Some("instruire-nevers-1"),
        )
        .await;
    let count = app.event_count().await;

    // Act: the client did not get the answer and sends again.
    let replay = app
        .send_json(
            Method::POST,
            &path,
            &t.dar,
            &body,
            Some("instruire-nevers-1"),
        )
        .await;
    let without_key = app
        .send_json(Method::POST, &path, &t.dar, &body, None)
        .await;

    // Assert
    first.assert_ok(StatusCode::OK);
    replay.assert_ok(StatusCode::OK);
    assert_eq!(replay.body, first.body);
    assert_eq!(app.event_count().await, count);
    assert_eq!(count, 2);
    // Without the key the same request is a new one, and its version is stale.
    without_key.assert_problem(StatusCode::CONFLICT, "version_conflict");
    app.stop().await;
}

async fn a_replayed_deposit_answers_201_again_and_creates_no_second_dossier(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let body = new_dossier("Nevers", &["acv"]);
    let first = app
        .send_json(
            Method::POST,
            "/dossiers",
            &t.dar,
            &body,
            Some("depot-nevers"),
        )
        .await;

    // Act
    let replay = app
        .send_json(
            Method::POST,
            "/dossiers",
            &t.dar,
            &body,
            Some("depot-nevers"),
        )
        .await;

    // Assert
    first.assert_ok(StatusCode::CREATED);
    replay.assert_ok(StatusCode::CREATED);
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.location, first.location);
    assert_eq!(app.event_count().await, 1);
    let (_, list) = app.get(&t.dar, "/dossiers").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    // Another person's key is their own: the same key deposits for them
    // (a second project of the commune, confirmed as such).
    let other = app.person("Léa Petit", "dar", "agent").await;
    let mut second = body.clone();
    second["doublon_confirme"] = json!(true);
    let theirs = app
        .send_json(
            Method::POST,
            "/dossiers",
            &other,
            &second,
            Some("depot-nevers"),
        )
        .await;
    theirs.assert_ok(StatusCode::CREATED);
    assert_ne!(theirs.body["id"], first.body["id"]);
    assert_eq!(theirs.body["reference"], "AMI2-V1-0002");
    app.stop().await;
}

async fn a_key_reused_for_a_different_request_is_422_idempotency_key_reused(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    app.send_json(
        Method::POST,
        "/dossiers",
        &t.dar,
        &new_dossier("Nevers", &["acv"]),
        Some("cle-1"),
    )
    .await
    .assert_ok(StatusCode::CREATED);
    let d = app.deposit(&t.dar, &["acv"]).await;
    let path = format!("/dossiers/{}/transitions", id_of(&d));
    let count = app.event_count().await;

    // Act
    let other_deposit = app
        .send_json(
            Method::POST,
            "/dossiers",
            &t.dar,
            &new_dossier("Vierzon", &["ti"]),
            Some("cle-1"),
        )
        .await;
    let transition_same_key = app
        .send_json(
            Method::POST,
            &path,
            &t.dar,
            &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"}),
            Some("cle-1"),
        )
        .await;
    let empty_key = app
        .send_json(
            Method::POST,
            &path,
            &t.dar,
            &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"}),
            Some(""),
        )
        .await;

    // Assert
    other_deposit.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "Idempotency-Key",
    );
    transition_same_key.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "Idempotency-Key",
    );
    empty_key.assert_field_problem(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "Idempotency-Key",
    );
    assert_eq!(app.event_count().await, count);
    app.stop().await;
}

async fn a_refused_request_does_not_burn_its_idempotency_key(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let mut body = new_dossier("Nevers", &["acv"]);
    body["pieces"] = json!([{"kind": "dossier_candidature", "filename": "c.pdf"}]);
    let d = app.deposit_body(&t.dar, &body).await;
    let id = id_of(&d);
    let instruire = json!({"action": "instruire", "expected_version": 2, "verdict": "favorable"});
    let path = format!("/dossiers/{id}/transitions");

    // Act: refused first (the version is 1), then accepted with the same key.
    let early = app
        .send_json(Method::POST, &path, &t.dar, &instruire, Some("k-instruire"))
        .await;
    app.upload(
        &t.dar,
        &id,
        "budget_previsionnel",
        "b.xlsx",
        sample_xlsx(),
        &[],
    )
    .await
    .assert_ok(StatusCode::OK);
    let later = app
        .send_json(Method::POST, &path, &t.dar, &instruire, Some("k-instruire"))
        .await;

    // Assert
    early.assert_problem(StatusCode::CONFLICT, "version_conflict");
    assert_eq!(later.assert_ok(StatusCode::OK)["state"], "instruit");
    assert_eq!(app.event_count().await, 3);
    app.stop().await;
}

on_both_backends!(
    a_dossier_of_both_programmes_becomes_laureat_after_acv_then_ti,
    an_acv_only_dossier_becomes_laureat_after_the_acv_avis,
    a_ti_only_dossier_becomes_laureat_after_the_ti_avis,
    an_action_of_another_agency_is_403_wrong_agency,
    a_dar_agent_declaring_laureat_is_403_role_too_low,
    a_stale_expected_version_is_409_with_the_current_version,
    a_stale_version_wins_over_every_refusal_about_the_dossier,
    a_caller_who_may_not_act_gets_403_even_with_a_stale_version,
    a_transition_on_an_unknown_dossier_is_404,
    an_action_from_the_wrong_state_is_422_invalid_state,
    an_avis_for_a_programme_the_dossier_is_not_in_is_404_over_http_and_programme_not_concerned_in_the_engine,
    the_ti_avis_before_the_acv_avis_is_422_avis_missing,
    instruction_without_every_piece_is_422_pieces_missing,
    verdicts_are_checked_missing_unknown_or_unmotivated,
    a_defavorable_avis_blocks_the_laureat_declaration,
    the_person_who_instructed_cannot_declare_laureat,
    a_final_dossier_accepts_no_action,
    an_unknown_or_misplaced_action_is_422_naming_the_action,
    a_replayed_transition_gets_the_first_answer_and_writes_nothing,
    a_replayed_deposit_answers_201_again_and_creates_no_second_dossier,
    a_key_reused_for_a_different_request_is_422_idempotency_key_reused,
    a_refused_request_does_not_burn_its_idempotency_key,
);
