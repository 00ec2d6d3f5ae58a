//! The communes of France in the API: a dossier's département and région
//! from the official geographic code, and lists (and exports) filtered by
//! them, on both databases.

use ami_tests::{new_dossier_of, on_both_backends, Backend, TestApp};
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
        app.deposit_body(&team.dar, &new_dossier_of(commune, insee, &["acv"]))
            .await;
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

/// The code INSEE is the official geographic code's: a code of no commune,
/// a former code, and a name that is not the code's are each refused with
/// their own code and the field at fault, and nothing is written.
async fn a_deposit_names_a_commune_of_the_official_geographic_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let cases: [(&str, &str, &str, &str, &str); 4] = [
        (
            "Nevers",
            "58999",
            "commune_inconnue",
            "code_insee",
            "ne correspond à aucune commune",
        ),
        // Annecy-le-Vieux, merged into Annecy in 2017.
        (
            "Annecy-le-Vieux",
            "74011",
            "commune_inconnue",
            "code_insee",
            "remplacé par 74010 (commune « Annecy »)",
        ),
        (
            "Bourges",
            "58194",
            "commune_incoherente",
            "commune",
            "celui de la commune « Nevers », pas de « Bourges »",
        ),
        (
            "Ajaccio",
            "2B033",
            "commune_incoherente",
            "commune",
            "« Bastia »",
        ),
    ];
    for (commune, insee, code, field, words) in cases {
        // Act
        let (status, problem) = app
            .deposit_form(&team.dar, &new_dossier_of(commune, insee, &["acv"]))
            .await;

        // Assert
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{commune} {insee}: {problem}"
        );
        assert_eq!(problem["code"], code, "{commune} {insee}");
        assert_eq!(problem["field"], field, "{commune} {insee}");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(words), "{commune} {insee}: {detail}");
    }
    let (_, all) = app.get(&team.dar, "/dossiers").await;
    assert_eq!(all["items"], json!([]), "nothing written");

    // Names are compared as people type them; the dossier keeps the name
    // as typed.
    for (typed, insee) in [
        ("saint etienne", "42218"),
        ("HAVRE", "76351"),
        ("Havre (Le)", "76351"),
    ] {
        let mut body = new_dossier_of(typed, insee, &["acv"]);
        body["doublon_confirme"] = json!(true);
        let (status, d) = app.deposit_form(&team.dar, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{typed}: {d}");
        assert_eq!(d["commune"], typed);
    }
    app.stop().await;
}

/// `/stats` counts the dossiers of some départements or régions, and
/// groups them by département or région, with need to know.
async fn stats_filter_and_group_by_departement_and_region(backend: Backend) {
    // Arrange: two towns of the Nièvre (one ACV, one TI), one of
    // Corse-du-Sud, one of La Réunion.
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    for (commune, insee, programme) in [
        ("Nevers", "58194", "acv"),
        ("Cosne-Cours-sur-Loire", "58086", "ti"),
        ("Ajaccio", "2A004", "acv"),
        ("Saint-Denis", "97411", "acv"),
    ] {
        app.deposit_body(&team.dar, &new_dossier_of(commune, insee, &[programme]))
            .await;
    }

    // Act
    let (status, nievre) = app.get(&team.dar, "/stats?departement=58").await;
    let (_, by_departement) = app.get(&team.dar, "/stats?group_by=departement").await;
    let (_, by_region) = app
        .get(&team.dar, "/stats?region=27,94&group_by=region")
        .await;
    let (_, acv_view) = app.get(&team.acv, "/stats?group_by=departement").await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{nievre}");
    assert_eq!(nievre["total"], 2);
    assert_eq!(nievre["awaiting"]["dar"], 2);
    assert!(
        nievre.get("departements").is_none(),
        "no grouping unless asked"
    );
    assert_eq!(by_departement["total"], 4);
    let codes: Vec<&str> = by_departement["departements"]
        .as_array()
        .expect("departements")
        .iter()
        .map(|d| d["code"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, ["2A", "58", "974"]);
    let nievre_row = &by_departement["departements"][1];
    assert_eq!(nievre_row["nom"], "Nièvre");
    assert_eq!(nievre_row["region"], "27");
    assert_eq!(nievre_row["total"], 2);
    assert_eq!(nievre_row["waves"]["1"], 2);
    assert_eq!(nievre_row["states"]["recu"], 2);
    assert_eq!(
        by_region["regions"],
        json!([
            {"code": "27", "nom": "Bourgogne-Franche-Comté", "total": 2,
             "waves": {"1": 2}, "states": {"recu": 2}},
            {"code": "94", "nom": "Corse", "total": 1,
             "waves": {"1": 1}, "states": {"recu": 1}}
        ])
    );
    // Need to know: ACV does not count the TI dossier of the Nièvre.
    assert_eq!(acv_view["total"], 3);
    assert_eq!(acv_view["departements"][1]["total"], 1);

    // A wrong parameter is 400 naming it.
    for (query, field) in [
        ("group_by=commune", "group_by"),
        ("departement=99", "departement"),
        ("wave=1", "wave"),
    ] {
        let (status, problem) = app.get(&team.dar, &format!("/stats?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        assert_eq!(problem["field"], field, "{query}");
    }
    app.stop().await;
}

on_both_backends!(
    dossiers_say_their_departement_and_region_and_lists_filter_by_them,
    a_deposit_names_a_commune_of_the_official_geographic_code,
    stats_filter_and_group_by_departement_and_region,
);
