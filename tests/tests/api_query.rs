//! Query strings are read by one rule on every route, on both backends: a
//! parameter the route's operation does not declare in the OpenAPI document
//! is 400 `invalid_parameter` naming it, as is a parameter given twice,
//! while every declared one, given once with a valid value, is accepted.
//! The routes come from the document the service serves, so that a route
//! added later is covered without touching this test.

use std::path::PathBuf;

use ami_service::mail::import::Importer;
use ami_tests::*;
use reqwest::Method;
use serde_json::Value;

/// A valid value of each query parameter the document declares, by route
/// (`*`: any route). `None`: only a value the service gave (a cursor) is
/// valid, so only its refusals are tried. A parameter missing here fails the
/// test: whoever declares one says how to use it.
const SAMPLES: &[(&str, &str, Option<&str>)] = &[
    ("/arrivals", "state", Some("nouveau")),
    ("*", "state", Some("recu,laureat")),
    ("*", "wave", Some("1,3")),
    ("*", "programme", Some("acv")),
    ("*", "awaiting", Some("dar,porteur")),
    ("*", "overdue", Some("true")),
    ("*", "region", Some("27")),
    ("*", "departement", Some("58")),
    ("*", "group_by", Some("departement")),
    ("*", "sort", Some("due")),
    ("*", "q", Some("Nevers")),
    ("*", "limit", Some("1")),
    ("*", "cursor", None),
    ("*", "after", None),
    ("*", "comment", Some("nouvelle version")),
    ("*", "expected_version", Some("1")),
];

fn sample(route: &str, name: &str) -> Option<&'static str> {
    let found = SAMPLES
        .iter()
        .find(|(r, n, _)| *r == route && *n == name)
        .or_else(|| SAMPLES.iter().find(|(r, n, _)| *r == "*" && *n == name))
        .unwrap_or_else(|| {
            panic!("{route} declares the query parameter « {name} »: add a valid value to SAMPLES")
        });
    found.2
}

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("mail-corpus")
        .join(name)
}

/// One operation of the document: method, route template, declared query
/// parameters.
struct Operation {
    method: Method,
    route: String,
    query: Vec<String>,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut all = Vec::new();
    for (route, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "delete" => Method::DELETE,
                "patch" => Method::PATCH,
                _ => continue,
            };
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().expect("name").to_string())
                .collect();
            all.push(Operation {
                method,
                route: route.clone(),
                query,
            });
        }
    }
    all
}

/// The route with real ids in place of its path parameters.
fn concrete(route: &str, dossier: &str, arrival: &str) -> String {
    let id = if route.starts_with("/arrivals") {
        arrival
    } else {
        dossier
    };
    route
        .replace("{id}", id)
        .replace("{kind}", "dossier_candidature")
        .replace("{version}", "1")
        // A wave's number, or the first attachment of an arrival.
        .replace(
            "{n}",
            if route.starts_with("/waves") {
                "1"
            } else {
                "0"
            },
        )
}

async fn every_route_refuses_unknown_and_repeated_parameters_and_takes_its_own(backend: Backend) {
    // Arrange: a dossier with its pièces, an arrival with an attachment.
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv", "ti"]).await;
    let dossier = dossier["id"].as_str().expect("id").to_string();
    let raw = std::fs::read(corpus("01-candidature-nevers.eml")).expect("corpus");
    let arrival = Importer::new(app.store.clone(), app.files.clone(), app.definition.clone())
        .import(&raw, "01-candidature-nevers.eml")
        .await
        .expect("import")
        .id
        .to_string();
    let doc = app
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    let operations = operations(&doc);
    assert!(operations.len() > 20, "{} operations", operations.len());
    // What the rule refuses, the document declares.
    for (route, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            assert!(
                op["responses"]["400"].is_object(),
                "{method} {route}: no 400"
            );
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                let unavailable = &op["responses"]["503"];
                assert!(unavailable.is_object(), "{method} {route}: no 503");
            }
        }
    }
    let events_before = app.event_count().await;

    for op in &operations {
        let path = concrete(&op.route, &dossier, &arrival);
        let what = format!("{} {}", op.method, op.route);

        // Act + Assert: an unknown parameter, before anything else.
        let unknown = app
            .send(
                op.method.clone(),
                &format!("{path}?zz_inconnu=1"),
                Some(&team.dar),
                &[],
                None,
            )
            .await;
        assert_eq!(
            unknown.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            unknown.text
        );
        unknown.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", "zz_inconnu");
        assert!(
            unknown.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Paramètre inconnu « zz_inconnu »")),
            "{what}: {}",
            unknown.text
        );

        // Each declared parameter given twice, even with the same value.
        for name in &op.query {
            let value = sample(&op.route, name).unwrap_or("x");
            let repeated = app
                .send(
                    op.method.clone(),
                    &format!("{path}?{name}={value}&{name}={value}"),
                    Some(&team.dar),
                    &[],
                    None,
                )
                .await;
            assert_eq!(
                repeated.status,
                StatusCode::BAD_REQUEST,
                "{what} {name}×2: {}",
                repeated.text
            );
            repeated.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", name);
            assert!(
                repeated.body["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("répété")),
                "{what}: {}",
                repeated.text
            );
        }

        if op.method != Method::GET {
            continue;
        }
        // The valid forms of a read: bare, and each parameter once.
        let bare = app.fetch(&team.dar, &path).await;
        assert_eq!(bare.status, StatusCode::OK, "{what}: {}", bare.text);
        for name in &op.query {
            let Some(value) = sample(&op.route, name) else {
                continue;
            };
            let once = app
                .fetch(
                    &team.dar,
                    &format!("{path}?{name}={}", percent_encode(value)),
                )
                .await;
            assert_eq!(
                once.status,
                StatusCode::OK,
                "{what}?{name}={value}: {}",
                once.text
            );
        }
        // All of them together.
        let all: Vec<String> = op
            .query
            .iter()
            .filter_map(|name| {
                sample(&op.route, name).map(|v| format!("{name}={}", percent_encode(v)))
            })
            .collect();
        if !all.is_empty() {
            let together = app
                .fetch(&team.dar, &format!("{path}?{}", all.join("&")))
                .await;
            assert_eq!(
                together.status,
                StatusCode::OK,
                "{what}?{}: {}",
                all.join("&"),
                together.text
            );
        }
    }
    // The refused writes wrote nothing.
    assert_eq!(app.event_count().await, events_before);

    // The routes the document does not describe take no parameter either.
    for path in [
        "/healthz?zz_inconnu=1",
        "/openapi.json?zz_inconnu=1",
        "/healthz?verbose=1&verbose=1",
    ] {
        let reply = app.send(Method::GET, path, None, &[], None).await;
        reply.assert_problem(StatusCode::BAD_REQUEST, "invalid_parameter");
    }
    app.send(Method::GET, "/healthz", None, &[], None)
        .await
        .assert_ok(StatusCode::OK);
    app.stop().await;
}

async fn empty_filter_values_and_repeated_lists_are_refused(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    app.deposit(&team.dar, &["acv"]).await;

    for route in ["/dossiers", "/exports/dossiers.csv"] {
        for name in [
            "state",
            "programme",
            "awaiting",
            "wave",
            "region",
            "departement",
        ] {
            // Act
            let empty = app.fetch(&team.dar, &format!("{route}?{name}=")).await;
            let hole = app.fetch(&team.dar, &format!("{route}?{name}=,")).await;
            // A list is one parameter with commas, never the parameter twice.
            let twice = app
                .fetch(
                    &team.dar,
                    &format!(
                        "{route}?{name}={v}&{name}={v}",
                        v = sample(route, name)
                            .expect("sample")
                            .split(',')
                            .next()
                            .expect("value")
                    ),
                )
                .await;

            // Assert
            for reply in [&empty, &hole, &twice] {
                reply.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", name);
            }
        }
    }
    // The comma-separated list is the documented form of several values.
    let list = app
        .fetch(
            &team.dar,
            "/dossiers?state=recu,laureat&programme=acv,ti&awaiting=dar,acv",
        )
        .await;
    assert_eq!(
        list.assert_ok(StatusCode::OK)["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    app.stop().await;
}

on_both_backends!(
    every_route_refuses_unknown_and_repeated_parameters_and_takes_its_own,
    empty_filter_values_and_repeated_lists_are_refused,
);
