//! Authentication, requests that cannot be read, hostile text, and the
//! documents the API serves about itself (OpenAPI, workflow), on both
//! backends. A refused request never writes; no answer is ever a 5xx (every
//! request goes through `TestApp::send`, which checks it).

use ami_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

fn id_of(d: &Value) -> String {
    d["id"].as_str().expect("id").to_string()
}

const JSON: (&str, &str) = ("content-type", "application/json");

// ---- Authentication ---------------------------------------------------------------

async fn a_request_without_token_is_401_missing_token(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;

    // Act
    let list = app.send(Method::GET, "/dossiers", None, &[], None).await;
    let deposit = app
        .send(
            Method::POST,
            "/dossiers",
            None,
            &[JSON],
            Some(new_dossier("Nevers", &["acv"]).to_string().into_bytes()),
        )
        .await;
    let stats = app.send(Method::GET, "/stats", None, &[], None).await;

    // Assert
    list.assert_problem(StatusCode::UNAUTHORIZED, "missing_token");
    deposit.assert_problem(StatusCode::UNAUTHORIZED, "missing_token");
    stats.assert_problem(StatusCode::UNAUTHORIZED, "missing_token");
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn a_garbage_or_forged_token_is_401_invalid_token(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let real = app.person("Camille Martin", "dar", "agent").await;
    let (prefix, _) = real.token.rsplit_once('_').expect("token shape");
    let forged = format!("{prefix}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let unknown = format!(
        "ami_{}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        uuid::Uuid::new_v4().simple()
    );
    let headers = [
        "Bearer garbage".to_string(),
        format!("Bearer {forged}"),
        format!("Bearer {unknown}"),
        format!("Basic {}", real.token),
        real.token.clone(),
        "Bearer ".to_string(),
    ];

    for value in &headers {
        // Act
        let reply = app
            .send(
                Method::GET,
                "/dossiers",
                None,
                &[("authorization", value.as_str())],
                None,
            )
            .await;

        // Assert
        reply.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    app.fetch(&real, "/dossiers")
        .await
        .assert_ok(StatusCode::OK);
    app.stop().await;
}

async fn a_revoked_token_is_refused_on_the_very_next_request(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    app.fetch(&dar, &format!("/dossiers/{}", id_of(&d)))
        .await
        .assert_ok(StatusCode::OK);

    // Act
    assert!(app
        .store
        .revoke_token(dar.token_id, chrono::Utc::now())
        .await
        .expect("revoke"));
    let read = app.fetch(&dar, &format!("/dossiers/{}", id_of(&d))).await;
    let write = app
        .transition(
            &dar,
            &id_of(&d),
            &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"}),
        )
        .await;

    // Assert
    read.assert_problem(StatusCode::UNAUTHORIZED, "revoked_token");
    write.assert_problem(StatusCode::UNAUTHORIZED, "revoked_token");
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

async fn health_and_openapi_need_no_token(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;

    // Act
    let health = app.send(Method::GET, "/healthz", None, &[], None).await;
    let openapi = app
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await;

    // Assert
    assert_eq!(health.assert_ok(StatusCode::OK)["status"], "ok");
    assert!(openapi.assert_ok(StatusCode::OK)["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3.1"));
    app.stop().await;
}

async fn an_unknown_route_or_method_is_a_problem_not_a_blank_page(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    // Act
    let unknown = app.fetch(&dar, "/dossier").await;
    let outside = app
        .send(Method::GET, "/../nothing-here", Some(&dar), &[], None)
        .await;
    let wrong_method = app
        .send(Method::DELETE, "/dossiers", Some(&dar), &[], None)
        .await;
    let put_on_dossier = app
        .send(
            Method::PUT,
            "/dossiers/00000000-0000-0000-0000-000000000000",
            Some(&dar),
            &[],
            None,
        )
        .await;

    // Assert
    unknown.assert_problem(StatusCode::NOT_FOUND, "not_found");
    outside.assert_problem(StatusCode::NOT_FOUND, "not_found");
    wrong_method.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    put_on_dossier.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.stop().await;
}

// ---- Bodies that cannot be read ------------------------------------------------------

async fn malformed_json_is_400_and_writes_nothing(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let before = app.event_count().await;
    let bodies: [(&[u8], &[u8]); 5] = [
        (b"{\"commune\": ", b"{\"action\": "),
        (b"not json", b"not json"),
        (b"", b""),
        (b"{", b"{\"action\""),
        (
            b"{\"commune\": \"Nevers\",}",
            b"{\"action\": \"instruire\",}",
        ),
    ];

    for (for_deposit, for_transition) in bodies {
        // Act
        let deposit = app
            .send(
                Method::POST,
                "/dossiers",
                Some(&dar),
                &[JSON],
                Some(for_deposit.to_vec()),
            )
            .await;
        let transition = app
            .send(
                Method::POST,
                &format!("/dossiers/{}/transitions", id_of(&d)),
                Some(&dar),
                &[JSON],
                Some(for_transition.to_vec()),
            )
            .await;

        // Assert
        deposit.assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
        transition.assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
    }
    let not_utf8 = app
        .send(
            Method::POST,
            "/dossiers",
            Some(&dar),
            &[JSON],
            Some(b"{\"commune\": \"\xff\xfe\"}".to_vec()),
        )
        .await;
    assert_eq!(
        not_utf8.status,
        StatusCode::BAD_REQUEST,
        "{}",
        not_utf8.text
    );
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

async fn a_wrong_type_or_unknown_field_is_400_naming_the_field(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let before = app.event_count().await;
    let mut deposit_unknown = new_dossier("Nevers", &["acv"]);
    deposit_unknown["priorite"] = json!("haute");
    let mut deposit_nested = new_dossier("Nevers", &["acv"]);
    deposit_nested["porteur"]["siret"] = json!("123");
    let mut deposit_bad_date = new_dossier("Nevers", &["acv"]);
    deposit_bad_date["received_at"] = json!("6 novembre 2020");
    let mut deposit_missing = new_dossier("Nevers", &["acv"]);
    deposit_missing
        .as_object_mut()
        .expect("object")
        .remove("commune");

    // Act
    let cases = [
        (app.transition(&dar, &id_of(&d), &json!({"action": "instruire", "expected_version": "1", "verdict": "favorable"})).await, "expected_version"),
        (app.transition(&dar, &id_of(&d), &json!({"action": "instruire", "expected_version": -1})).await, "expected_version"),
        (app.transition(&dar, &id_of(&d), &json!({"action": 3, "expected_version": 1})).await, "action"),
        (app.transition(&dar, &id_of(&d), &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable", "urgent": true})).await, "urgent"),
        (app.send_json(Method::POST, "/dossiers", &dar, &deposit_unknown, None).await, "priorite"),
        (app.send_json(Method::POST, "/dossiers", &dar, &deposit_nested, None).await, "siret"),
        (app.send_json(Method::POST, "/dossiers", &dar, &deposit_bad_date, None).await, "received_at"),
        (app.send_json(Method::POST, "/dossiers", &dar, &json!({"commune": "Nevers", "code_insee": 58194, "porteur": {"nom": "V"}, "programmes": ["acv"]}), None).await, "code_insee"),
        (app.deposit_reply(&dar, &deposit_unknown).await, "priorite"),
        (app.deposit_reply(&dar, &deposit_bad_date).await, "received_at"),
    ];
    // A pièce is a file: its version and comment travel as parameters or
    // form fields, which are checked as such.
    let budget = |query: &str| format!("/dossiers/{}/pieces/budget_previsionnel{query}", id_of(&d));
    let piece_cases = [
        (
            app.upload_to(
                &dar,
                &budget("?expected_version=un"),
                "b.xlsx",
                sample_xlsx(),
                &[],
            )
            .await,
            "expected_version",
        ),
        (
            app.upload_to(
                &dar,
                &budget("?expected_version=-1"),
                "b.xlsx",
                sample_xlsx(),
                &[],
            )
            .await,
            "expected_version",
        ),
        (
            app.upload_to(&dar, &budget("?urgent=1"), "b.xlsx", sample_xlsx(), &[])
                .await,
            "urgent",
        ),
        (
            app.upload_to(
                &dar,
                &budget(""),
                "b.xlsx",
                sample_xlsx(),
                &[("if-match", "\"un\"")],
            )
            .await,
            "If-Match",
        ),
        (
            app.upload_form(
                &dar,
                &id_of(&d),
                "budget_previsionnel",
                "b.xlsx",
                sample_xlsx(),
                &[("expected_version", "1.0")],
            )
            .await,
            "expected_version",
        ),
        (
            app.upload_form(
                &dar,
                &id_of(&d),
                "budget_previsionnel",
                "b.xlsx",
                sample_xlsx(),
                &[("filename", "b.xlsx")],
            )
            .await,
            "filename",
        ),
    ];
    let missing = app
        .send_json(Method::POST, "/dossiers", &dar, &deposit_missing, None)
        .await;
    let not_an_object = app.transition(&dar, &id_of(&d), &json!([1, 2])).await;

    // Assert
    for (reply, field) in &cases {
        reply.assert_problem(StatusCode::BAD_REQUEST, "invalid_body");
        let named = reply.body["field"].as_str().unwrap_or_default();
        assert!(
            named == *field || named.ends_with(&format!(".{field}")),
            "field {named:?} for {field}: {}",
            reply.text
        );
    }
    for (reply, field) in &piece_cases {
        reply.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", field);
    }
    missing.assert_problem(StatusCode::BAD_REQUEST, "invalid_body");
    assert!(
        missing.body["detail"]
            .as_str()
            .expect("detail")
            .contains("commune"),
        "{}",
        missing.text
    );
    not_an_object.assert_problem(StatusCode::BAD_REQUEST, "invalid_body");
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

async fn a_body_that_is_not_declared_json_is_415(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let body = new_dossier("Nevers", &["acv"]).to_string().into_bytes();

    // Act
    let none = app
        .send(
            Method::POST,
            "/dossiers",
            Some(&dar),
            &[],
            Some(body.clone()),
        )
        .await;
    let text = app
        .send(
            Method::POST,
            "/dossiers",
            Some(&dar),
            &[("content-type", "text/plain")],
            Some(body.clone()),
        )
        .await;
    let form = app
        .send(
            Method::POST,
            "/dossiers",
            Some(&dar),
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body.clone()),
        )
        .await;
    let with_charset = app
        .send(
            Method::POST,
            "/dossiers",
            Some(&dar),
            &[("content-type", "application/json; charset=utf-8")],
            Some(body),
        )
        .await;

    // Assert
    none.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    text.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    form.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    with_charset.assert_ok(StatusCode::CREATED);
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

async fn a_body_over_64_kib_is_413_and_writes_nothing(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let before = app.event_count().await;
    let big = json!({"action": "classer_sans_suite", "expected_version": 1, "motivation": "m", "comment": "x".repeat(70 * 1024)});

    // Act
    let reply = app.transition(&dar, &id_of(&d), &big).await;

    // Assert
    reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

// ---- Text the service must refuse, or keep byte for byte ------------------------------------

async fn control_characters_in_one_line_fields_are_422(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let cases = [
        ("commune", "Nev\u{0}ers"),
        ("commune", "Nevers\n"),
        ("commune", "Nev\u{1b}[31mers"),
        ("porteur.nom", "Ville\u{7}"),
    ];
    let before = app.event_count().await;

    for (field, value) in cases {
        let mut body = new_dossier("Nevers", &["acv"]);
        match field {
            "commune" => body["commune"] = json!(value),
            _ => body["porteur"]["nom"] = json!(value),
        }

        // Act
        let reply = app
            .send_json(Method::POST, "/dossiers", &dar, &body, None)
            .await;

        // Assert
        reply.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", field);
    }
    let mut long_commune = new_dossier("Nevers", &["acv"]);
    long_commune["commune"] = json!("N".repeat(301));
    let long = app
        .send_json(Method::POST, "/dossiers", &dar, &long_commune, None)
        .await;
    long.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "commune");
    let nul_motivation = app
        .transition(&dar, &id_of(&d), &json!({"action": "classer_sans_suite", "expected_version": 1, "motivation": "a\u{0}b"}))
        .await;
    nul_motivation.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "motivation",
    );
    let nul_comment = app
        .transition(&dar, &id_of(&d), &json!({"action": "classer_sans_suite", "expected_version": 1, "motivation": "ok", "comment": "\u{0}"}))
        .await;
    nul_comment.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "comment");
    let too_long = app
        .transition(&dar, &id_of(&d), &json!({"action": "classer_sans_suite", "expected_version": 1, "motivation": "é".repeat(10_001)}))
        .await;
    too_long.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "motivation",
    );
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

async fn a_motivation_of_10000_characters_is_kept_byte_for_byte(backend: Backend) {
    // Arrange: multi-line, accents, emoji, tabs, exactly 10,000 characters.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let unit = "Élu·e·s\tdu cœur 🏛️\r\n";
    let motivation: String = unit
        .repeat(10_000 / unit.chars().count() + 1)
        .chars()
        .take(10_000)
        .collect();
    assert_eq!(motivation.chars().count(), 10_000);

    // Act
    let closed = app
        .must_act(
            &boss,
            &d,
            "classer_sans_suite",
            json!({"motivation": motivation, "comment": motivation}),
        )
        .await;
    let history = app
        .fetch(&dar, &format!("/dossiers/{}/history", id_of(&d)))
        .await;

    // Assert
    assert_eq!(closed["state"], "sans_suite");
    let event = &history.body["events"][1];
    assert_eq!(event["motivation"].as_str(), Some(motivation.as_str()));
    assert_eq!(event["comment"].as_str(), Some(motivation.as_str()));
    app.stop().await;
}

async fn sql_and_html_in_text_fields_are_stored_and_returned_byte_for_byte(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let sql = "'; drop table dossier; --";
    let html = "<script>alert(1)</script>";
    let quotes = r#"L'Haÿ-les-Roses "\" %_ \\"#;
    let porteur = format!("{sql} {html}");
    let mut body = new_dossier("x", &["acv"]);
    body["porteur"]["nom"] = json!(porteur);
    body["porteur"]["email"] = json!("x'@\"example\".fr");
    body["pieces"][0]["filename"] = json!(quotes);
    // A file's name is kept as sent too, but for what would make it a path
    // (a slash or a backslash) or hide characters.
    let budget_name = r#"L'Haÿ "<b>" %_ '; drop table dossier; --.xlsx"#;

    // Act: the pièces declared in JSON, then the budget's file.
    let d = app
        .send_json(Method::POST, "/dossiers", &dar, &body, None)
        .await
        .assert_ok(StatusCode::CREATED)
        .clone();
    app.upload(
        &dar,
        &id_of(&d),
        "budget_previsionnel",
        budget_name,
        sample_xlsx(),
        &[],
    )
    .await
    .assert_ok(StatusCode::OK);
    let closed = app
        .must_act(
            &boss,
            &d,
            "classer_sans_suite",
            json!({"motivation": html, "comment": sql}),
        )
        .await;
    let read = app.fetch(&dar, &format!("/dossiers/{}", id_of(&d))).await;
    let found = app.fetch(&dar, "/dossiers?q=%27%3B%20drop%20table").await;
    let found_html = app.fetch(&dar, "/dossiers?q=%3Cscript%3E").await;
    let history = app
        .fetch(&dar, &format!("/dossiers/{}/history", id_of(&d)))
        .await;

    // Assert
    for view in [&d, &closed, &read.body] {
        assert_eq!(view["porteur"]["nom"], porteur);
        assert_eq!(view["porteur"]["email"], "x'@\"example\".fr");
        assert_eq!(view["pieces"][0]["filename"], quotes);
    }
    for view in [&closed, &read.body] {
        let budget = piece_of(view, "budget_previsionnel");
        assert_eq!(budget["filename"], budget_name);
        assert_eq!(budget["versions"][0]["filename"], budget_name);
    }
    assert_eq!(found.assert_ok(StatusCode::OK)["items"][0]["id"], d["id"]);
    assert_eq!(
        found_html.assert_ok(StatusCode::OK)["items"][0]["id"],
        d["id"]
    );
    assert_eq!(
        history.body["events"][1]["content"]["payload"]["filename"],
        budget_name
    );
    assert_eq!(history.body["events"][2]["motivation"], html);
    assert_eq!(history.body["events"][2]["comment"], sql);
    assert!(
        read.text.contains("<script>") || read.text.contains("\\u003cscript"),
        "JSON, not HTML-escaped text"
    );
    let stats = app.fetch(&dar, "/stats").await;
    assert_eq!(
        stats.assert_ok(StatusCode::OK)["total"],
        1,
        "the dossier table is still there"
    );
    // A commune is a commune of France: SQL there is refused, by name.
    let mut sql_commune = new_dossier("x", &["acv"]);
    sql_commune["commune"] = json!(sql);
    app.send_json(Method::POST, "/dossiers", &dar, &sql_commune, None)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "commune_incoherente",
            "commune",
        );
    app.stop().await;
}

// ---- What the API says about itself ------------------------------------------------------------

const DOCUMENTED_PATHS: [&str; 20] = [
    "/dossiers",
    "/dossiers/{id}",
    "/dossiers/{id}/transitions",
    "/dossiers/{id}/pieces/{kind}",
    "/dossiers/{id}/history",
    "/dossiers/{id}/messages",
    "/dossiers/{id}/receipt",
    "/exports/dossiers.csv",
    "/exports/dossiers.xlsx",
    "/events",
    "/stats",
    "/workflow",
    "/workflow.mmd",
    "/arrivals",
    "/arrivals/{id}",
    "/arrivals/{id}/raw",
    "/arrivals/{id}/attachments/{n}",
    "/arrivals/{id}/dossier",
    "/arrivals/{id}/attach",
    "/arrivals/{id}/set-aside",
];

async fn the_openapi_document_is_3_1_and_lists_every_route(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;

    // Act
    let reply = app
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await;

    // Assert
    let doc = reply.assert_ok(StatusCode::OK);
    assert!(doc["openapi"].as_str().expect("openapi").starts_with("3.1"));
    let paths = doc["paths"].as_object().expect("paths");
    for path in DOCUMENTED_PATHS {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    app.stop().await;
}

async fn every_documented_path_and_method_is_served(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mail-corpus/01-candidature-nevers.eml"
    ))
    .expect("corpus");
    let arrival = ami_service::mail::import::Importer::new(
        app.store.clone(),
        app.files.clone(),
        app.definition.clone(),
    )
    .import(&raw, "test")
    .await
    .expect("import")
    .id;
    let doc = app
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await
        .body;
    let mut calls = 0;

    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let id = if path.starts_with("/arrivals/") {
                arrival.to_string()
            } else {
                id_of(&d)
            };
            let concrete = path
                .replace("{id}", &id)
                .replace("{kind}", "budget_previsionnel")
                .replace("{n}", "1");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body = (method != Method::GET).then(|| b"{}".to_vec());

            // Act
            let reply = app
                .send(method.clone(), &concrete, Some(&dar), &[JSON], body)
                .await;

            // Assert
            assert!(
                reply.status != StatusCode::NOT_FOUND
                    && reply.status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but answers {}: {}",
                reply.status,
                reply.text
            );
            calls += 1;
        }
    }
    assert!(
        calls >= 10,
        "one call per documented operation, {calls} made"
    );
    app.stop().await;
}

async fn the_workflow_is_served_as_json_and_as_mermaid(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let ti = app.person("Karim Haddad", "ti", "agent").await;

    // Act
    let json = app.fetch(&ti, "/workflow").await;
    let mermaid = app.fetch(&ti, "/workflow.mmd").await;
    let anonymous = app.send(Method::GET, "/workflow", None, &[], None).await;

    // Assert
    let def = json.assert_ok(StatusCode::OK);
    assert_eq!(def["version"], "ami2-2020.2");
    let states: Vec<&str> = def["states"]
        .as_array()
        .expect("states")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(
        states,
        [
            "recu",
            "instruit",
            "avis_acv",
            "avis_ti",
            "laureat",
            "refuse",
            "sans_suite"
        ]
    );
    let actions: Vec<&str> = def["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert!(
        actions.contains(&"declarer_laureat") && actions.contains(&"avis_ti"),
        "{actions:?}"
    );
    assert_eq!(mermaid.status, StatusCode::OK);
    assert!(
        mermaid.content_type.starts_with("text/vnd.mermaid"),
        "{}",
        mermaid.content_type
    );
    assert!(
        mermaid.text.starts_with("stateDiagram-v2"),
        "{}",
        mermaid.text
    );
    assert!(mermaid.text.contains("laureat"));
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "missing_token");
    app.stop().await;
}

on_both_backends!(
    a_request_without_token_is_401_missing_token,
    a_garbage_or_forged_token_is_401_invalid_token,
    a_revoked_token_is_refused_on_the_very_next_request,
    health_and_openapi_need_no_token,
    an_unknown_route_or_method_is_a_problem_not_a_blank_page,
    malformed_json_is_400_and_writes_nothing,
    a_wrong_type_or_unknown_field_is_400_naming_the_field,
    a_body_that_is_not_declared_json_is_415,
    a_body_over_64_kib_is_413_and_writes_nothing,
    control_characters_in_one_line_fields_are_422,
    a_motivation_of_10000_characters_is_kept_byte_for_byte,
    sql_and_html_in_text_fields_are_stored_and_returned_byte_for_byte,
    the_openapi_document_is_3_1_and_lists_every_route,
    every_documented_path_and_method_is_served,
    the_workflow_is_served_as_json_and_as_mermaid,
);
