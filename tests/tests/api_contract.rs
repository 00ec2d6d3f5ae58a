//! The OpenAPI document says what the service checks (issue 14): its enums
//! are the running definition's, its bounds are the checks' bounds, and
//! what it declares valid is not refused with 400. On both backends.

use std::sync::Arc;

use ami_core::{Definition, DEFAULT_DEFINITION_TOML};
use ami_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn document(app: &TestApp) -> Value {
    app.send(Method::GET, "/openapi.json", None, &[], None)
        .await
        .assert_ok(StatusCode::OK)
        .clone()
}

fn enum_of(doc: &Value, schema: &str) -> Vec<Value> {
    doc["components"]["schemas"][schema]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{schema} has no enum"))
        .clone()
}

async fn the_enums_are_those_of_the_running_definition(backend: Backend) {
    // Arrange: the second AMI with two waves and a third programme.
    let toml = DEFAULT_DEFINITION_TOML
        .replace("  { number = 3, closes_on = \"2021-06-25\" },\n", "")
        .replace("version = \"", "version = \"contract-");
    let def = Definition::from_toml(&toml).expect("a valid variant");
    let standard = TestApp::spawn(backend).await;
    let variant = TestApp::spawn_on(TestDb::new(backend).await, Arc::new(def)).await;

    // Act
    let standard_doc = document(&standard).await;
    let variant_doc = document(&variant).await;

    // Assert
    assert_eq!(
        enum_of(&standard_doc, "Wave"),
        vec![json!(1), json!(2), json!(3)]
    );
    assert_eq!(enum_of(&variant_doc, "Wave"), vec![json!(1), json!(2)]);
    let states: Vec<Value> = Definition::ami2()
        .states()
        .iter()
        .map(|s| json!(s.id.as_str()))
        .collect();
    assert_eq!(enum_of(&standard_doc, "State"), states);
    let actions = enum_of(&standard_doc, "TransitionAction");
    assert!(actions.contains(&json!("instruire")), "{actions:?}");
    assert!(
        !actions.contains(&json!("deposer")) && !actions.contains(&json!("ajouter_piece")),
        "deposits and pièces do not go through /transitions: {actions:?}"
    );
    // The list filters take the vocabularies, several at once.
    let state = standard_doc["paths"]["/dossiers"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "state")
        .expect("state")
        .clone();
    assert_eq!(
        state["schema"]["items"]["$ref"],
        "#/components/schemas/State"
    );
    assert_eq!(state["explode"], false);
    standard.stop().await;
    variant.stop().await;
}

async fn the_bounds_published_are_the_bounds_checked(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let doc = document(&app).await;
    let limit = |path: &str| -> u64 {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == "limit")
            .expect("limit")["schema"]["maximum"]
            .as_u64()
            .expect("a maximum")
    };

    // Act + Assert: at the bound, accepted; past it, 400.
    for path in ["/dossiers", "/events", "/arrivals"] {
        let max = limit(path);
        app.fetch(&dar, &format!("{path}?limit={max}"))
            .await
            .assert_ok(StatusCode::OK);
        app.fetch(&dar, &format!("{path}?limit={}", max + 1))
            .await
            .assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", "limit");
    }
    let nom = &doc["components"]["schemas"]["PorteurBody"]["properties"]["nom"];
    let longest = nom["maxLength"].as_u64().expect("maxLength") as usize;
    let mut body = new_dossier("Bornes", &["acv"]);
    body["porteur"]["nom"] = json!("é".repeat(longest));
    app.send_json(Method::POST, "/dossiers", &dar, &body, None)
        .await
        .assert_ok(StatusCode::CREATED);
    let mut body = new_dossier("Bornes", &["acv"]);
    body["porteur"]["nom"] = json!("é".repeat(longest + 1));
    app.send_json(Method::POST, "/dossiers", &dar, &body, None)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "porteur.nom",
        );
    app.stop().await;
}

async fn an_integral_json_number_is_an_integer(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let id = d["id"].as_str().expect("id");
    let version = d["version"].as_u64().expect("version") as f64;

    // Act
    let fraction = app
        .transition(
            &dar,
            id,
            &json!({"action": "instruire", "verdict": "favorable", "expected_version": version + 0.5}),
        )
        .await;
    let integral = app
        .transition(
            &dar,
            id,
            &json!({"action": "instruire", "verdict": "favorable", "expected_version": version}),
        )
        .await;

    // Assert: `1.0` is the integer 1 (JSON Schema), `1.5` is not.
    fraction.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_body", "expected_version");
    assert_eq!(integral.assert_ok(StatusCode::OK)["state"], "instruit");
    app.stop().await;
}

async fn idempotency_keys_follow_the_published_rule(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let before = app.journal_len().await;
    let longest = "k".repeat(200);

    // Act
    let too_long = app
        .send_json(
            Method::POST,
            "/dossiers",
            &dar,
            &new_dossier("Clés", &["acv"]),
            Some(&"k".repeat(201)),
        )
        .await;
    let at_bound = app
        .send_json(
            Method::POST,
            "/dossiers",
            &dar,
            &new_dossier("Clés", &["acv"]),
            Some(&longest),
        )
        .await;

    // Assert
    too_long.assert_field_problem(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "Idempotency-Key",
    );
    at_bound.assert_ok(StatusCode::CREATED);
    assert_eq!(app.journal_len().await, before + 1);
    let doc = document(&app).await;
    let key = doc["paths"]["/dossiers"]["post"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("Idempotency-Key")
        .clone();
    assert_eq!(key["schema"]["type"], "string", "never `string | null`");
    assert_eq!(key["schema"]["maxLength"], 200);
    app.stop().await;
}

async fn a_cursor_of_the_right_shape_not_given_is_422(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    // Act
    let misshapen = app.fetch(&dar, "/dossiers?cursor=a%2Bb").await;
    let not_given = app.fetch(&dar, "/dossiers?cursor=AAAA").await;

    // Assert
    misshapen.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", "cursor");
    not_given.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor", "cursor");
    app.stop().await;
}

async fn every_operation_declares_503_and_a_201_its_location(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;

    // Act
    let doc = document(&app).await;

    // Assert
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            operations += 1;
            let responses = &op["responses"];
            assert!(
                responses["503"]["headers"]["Retry-After"].is_object(),
                "{method} {path} does not declare 503 with Retry-After"
            );
            if responses.get("201").is_some() {
                assert!(
                    responses["201"]["headers"]["Location"].is_object(),
                    "{method} {path}"
                );
            }
            assert!(op["operationId"].is_string(), "{method} {path}");
            assert!(op["description"].is_string(), "{method} {path}");
        }
    }
    assert!(operations >= 25, "{operations}");
    let links = &doc["paths"]["/dossiers"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["TakeAction"]["operationId"], "takeAction");
    let piece = &doc["paths"]["/dossiers/{id}/pieces/{kind}"]["get"]["responses"];
    for (status, header) in [
        ("200", "ETag"),
        ("200", "Accept-Ranges"),
        ("206", "Content-Range"),
        ("304", "ETag"),
        ("416", "Content-Range"),
    ] {
        assert!(
            piece[status]["headers"][header].is_object(),
            "a pièce's {status} declares {header}"
        );
    }
    assert_eq!(
        doc["paths"]["/workflow"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/Workflow"
    );
    app.stop().await;
}

/// A link's value, evaluated against the answer it hangs on as a
/// stateful client does: `$response.body#/x` is the value at `/x`, objects
/// and arrays are evaluated member by member, anything else is a literal.
fn evaluate_link(value: &Value, answer: &Value) -> Value {
    const BODY: &str = "$response.body#";
    match value {
        Value::String(s) if s.starts_with(BODY) => {
            let pointer = &s[BODY.len()..];
            answer
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{pointer} not in the answer {answer}"))
                .clone()
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), evaluate_link(v, answer)))
                .collect(),
        ),
        Value::Array(items) => items.iter().map(|v| evaluate_link(v, answer)).collect(),
        other => other.clone(),
    }
}

/// Follows the link `name` of `answer` (to `putPiece` or `takeAction`) and
/// returns the service's reply.
async fn follow(app: &TestApp, dar: &Person, links: &Value, name: &str, answer: &Value) -> Reply {
    let link = &links[name];
    let params = evaluate_link(&link["parameters"], answer);
    let body = evaluate_link(&link["requestBody"], answer);
    let id = params["id"].as_str().expect("an id");
    match link["operationId"].as_str() {
        Some("putPiece") => {
            let kind = params["kind"].as_str().expect("a kind");
            let path = format!(
                "/dossiers/{id}/pieces/{kind}?expected_version={}",
                params["expected_version"]
            );
            let file = body.as_str().expect("a file").as_bytes().to_vec();
            app.send(Method::PUT, &path, Some(dar), &[], Some(file))
                .await
        }
        Some("takeAction") => {
            app.send_json(
                Method::POST,
                &format!("/dossiers/{id}/transitions"),
                dar,
                &body,
                None,
            )
            .await
        }
        other => panic!("link {name} to {other:?}"),
    }
}

async fn following_the_links_takes_a_dossier_to_its_next_step(backend: Backend) {
    // Arrange: the document's first JSON deposit, sent as it is.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Dana Robert", "dar", "agent").await;
    let doc = document(&app).await;
    let deposit = doc["paths"]["/dossiers"]["post"]["requestBody"]["content"]["application/json"]
        ["examples"]
        .as_object()
        .and_then(|e| e.values().next())
        .map(|e| e["value"].clone())
        .expect("a deposit example");
    let links = doc["paths"]["/dossiers"]["post"]["responses"]["201"]["links"].clone();
    for (op, status) in [
        ("/dossiers/{id}/pieces/{kind}", "put"),
        ("/dossiers/{id}/transitions", "post"),
    ] {
        assert_eq!(
            doc["paths"][op][status]["responses"]["200"]["links"], links,
            "{op} leads on with the same links"
        );
    }

    // Act: deposit, then only what the links say.
    let created = app
        .send_json(Method::POST, "/dossiers", &dar, &deposit, None)
        .await
        .assert_ok(StatusCode::CREATED)
        .clone();
    assert!(
        created.get("next_step").is_none(),
        "no step before the files: {created}"
    );
    let first = follow(&app, &dar, &links, "Put_dossier_candidature", &created)
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    let second = follow(&app, &dar, &links, "Put_budget_previsionnel", &first)
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    let instruit = follow(&app, &dar, &links, "TakeNextStep", &second)
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    let complement = follow(&app, &dar, &links, "RequestPieces", &instruit)
        .await
        .assert_ok(StatusCode::OK)
        .clone();

    // Assert
    assert_eq!(second["next_step"], "instruire", "{second}");
    assert_eq!(instruit["state"], "instruit", "{instruit}");
    assert_eq!(instruit["version"], 4, "{instruit}");
    assert_eq!(complement["complement_demande"], true, "{complement}");
    let kinds: Vec<&str> = second["pieces"]
        .as_array()
        .expect("pièces")
        .iter()
        .filter(|p| p["media_type"] == "application/pdf")
        .filter_map(|p| p["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["dossier_candidature", "budget_previsionnel"]);
    app.stop().await;
}

on_both_backends!(
    the_enums_are_those_of_the_running_definition,
    the_bounds_published_are_the_bounds_checked,
    an_integral_json_number_is_an_integer,
    idempotency_keys_follow_the_published_rule,
    a_cursor_of_the_right_shape_not_given_is_422,
    every_operation_declares_503_and_a_201_its_location,
    following_the_links_takes_a_dossier_to_its_next_step,
);
