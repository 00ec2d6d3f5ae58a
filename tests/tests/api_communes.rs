//! The communes of France in the API: a dossier's département and région
//! from the official geographic code, and lists (and exports) filtered by
//! them, on both databases.

use ami_tests::{new_dossier_in_wave, on_both_backends, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn communes(page: &Value) -> Vec<String> {
    let mut refs: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["commune"].as_str().expect("commune").to_string())
        .collect();
    refs.sort();
    refs
}

async fn dossiers_say_their_departement_and_region_and_lists_filter_by_them(backend: Backend) {
    // Arrange: a town of the Nièvre, one of Corse-du-Sud, one of La Réunion.
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    for (commune, insee) in [
        ("Nevers", "58194"),
        ("Ajaccio", "2A004"),
        ("Saint-Denis", "97411"),
    ] {
        let mut body = new_dossier_in_wave(commune, &["acv"], 1);
        body["code_insee"] = json!(insee);
        app.deposit_body(&team.dar, &body).await;
    }

    // Act
    let (status, all) = app.get(&team.dar, "/dossiers").await;

    // Assert: each dossier names its département and région.
    assert_eq!(status, StatusCode::OK);
    let ajaccio = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|d| d["commune"] == "Ajaccio")
        .expect("Ajaccio");
    assert_eq!(ajaccio["departement"], "2A");
    assert_eq!(ajaccio["departement_label"], "Corse-du-Sud");
    assert_eq!(ajaccio["region"], "94");
    assert_eq!(ajaccio["region_label"], "Corse");

    // Act + Assert: the filters, alone and together.
    let cases: [(&str, &[&str]); 6] = [
        ("departement=58", &["Nevers"]),
        ("region=94", &["Ajaccio"]),
        ("departement=2A,974", &["Ajaccio", "Saint-Denis"]),
        ("region=27,04", &["Nevers", "Saint-Denis"]),
        ("region=27&departement=58,2A", &["Nevers"]),
        ("region=27&departement=2A", &[]),
    ];
    for (query, expected) in cases {
        let (status, page) = app.get(&team.dar, &format!("/dossiers?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(communes(&page), expected, "{query}");
    }

    // An unknown code is 400 naming the parameter; nothing else changes.
    for (query, field) in [
        ("departement=99", "departement"),
        ("departement=", "departement"),
        ("region=2A", "region"),
    ] {
        let (status, problem) = app.get(&team.dar, &format!("/dossiers?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        assert_eq!(problem["field"], field, "{query}");
    }

    // The export takes the same filters.
    let res = app
        .client
        .get(app.url("/exports/dossiers.csv?region=94"))
        .bearer_auth(&team.dar.token)
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("csv");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][1], "Ajaccio");
    assert_eq!(&rows[0][3], "Corse-du-Sud (2A)");
    assert_eq!(&rows[0][4], "Corse");
    app.stop().await;
}

on_both_backends!(dossiers_say_their_departement_and_region_and_lists_filter_by_them,);
