//! The web pages in a real browser: headless Chromium driven by the Node
//! scenarios of `tests/browser/` (playwright-core), axe-core on every page,
//! screenshots at 1280 and 375 px under `target/ui-screenshots/`. Each
//! scenario runs against the real service on each database; afterwards the
//! API and the journal say whether the browser did what it claims. Each
//! service first imports one message of the mail corpus, for the pages of
//! « Courrier arrivé ».

use std::time::Duration;

use ami_service::mail::import::Importer;
use ami_tests::browser;
use ami_tests::*;
use serde_json::Value;

const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// The environment of a scenario: the service, the four tokens, where to
/// put the screenshots and where the files to upload are.
fn scenario_env(
    app: &TestApp,
    team: &Team,
    shots: &std::path::Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("AMI_BASE_URL", format!("http://{}", app.addr)),
        ("AMI_TOKEN_DAR", team.dar.token.clone()),
        ("AMI_TOKEN_BOSS", team.boss.token.clone()),
        ("AMI_TOKEN_ACV", team.acv.token.clone()),
        ("AMI_TOKEN_TI", team.ti.token.clone()),
        ("AMI_SCREENSHOT_DIR", shots.display().to_string()),
        (
            "AMI_EXAMPLES_DIR",
            browser::examples_dir().display().to_string(),
        ),
    ]
}

fn example(name: &str) -> Vec<u8> {
    let path = browser::examples_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Imports the Nevers application (`01-candidature-nevers.eml`) as `ami
/// import` does: the arrival the scenarios find in « Courrier arrivé ».
async fn import_nevers(app: &TestApp) -> String {
    let name = "01-candidature-nevers.eml";
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("mail-corpus")
        .join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let importer = Importer::new(app.store.clone(), app.files.clone(), app.definition.clone());
    let imported = importer.import(&raw, name).await.expect("import");
    imported.id.to_string()
}

/// The events of a dossier's history, oldest first.
async fn history(app: &TestApp, who: &Person, id: &str) -> Vec<Value> {
    let reply = app.fetch(who, &format!("/dossiers/{id}/history")).await;
    reply.assert_ok(StatusCode::OK)["events"]
        .as_array()
        .expect("events")
        .clone()
}

/// Each event's action and its actor's name.
fn actions_of(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["actor"]["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pair(action: &str, name: &str) -> (String, String) {
    (action.to_string(), name.to_string())
}

/// Every page the summary lists has its two screenshots, real PNG files.
fn assert_screenshots(summary: &Value, shots: &std::path::Path, at_least: usize) {
    let names: Vec<&str> = summary["screenshots"]
        .as_array()
        .expect("screenshots in the summary")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.len() >= at_least,
        "{} screenshots, expected at least {at_least}: {names:?}",
        names.len()
    );
    for width in ["-1280.png", "-375.png"] {
        assert_eq!(
            names.iter().filter(|n| n.ends_with(width)).count() * 2,
            names.len(),
            "one {width} per page: {names:?}"
        );
    }
    for name in names {
        let bytes = std::fs::read(shots.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", shots.join(name).display()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
            "{name} is not a PNG screenshot"
        );
    }
}

/// Deposit to lauréat by four people in their own browsers, with the
/// errors, the live update, the stale forms and need to know on the way.
async fn a_dossier_goes_from_deposit_to_laureat_in_the_browser(backend: Backend) {
    let _browser = browser::exclusive().await;
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ti_only = app.deposit(&team.dar, &["ti"]).await;
    let ti_only_id = ti_only["id"].as_str().expect("id").to_string();
    let arrival = import_nevers(&app).await;
    let events_before = app.journal_len().await;
    let shots = browser::screenshot_dir(&format!("{}/parcours", backend_name(backend)));
    let mut vars = scenario_env(&app, &team, &shots);
    vars.push(("AMI_TI_ONLY_ID", ti_only_id.clone()));

    let run = browser::run_script("parcours.mjs", &vars, SCENARIO_TIMEOUT).await;

    let summary = run.assert_success();
    let id = summary["dossier_id"]
        .as_str()
        .expect("dossier_id")
        .to_string();
    let dossier = app
        .fetch(&team.dar, &format!("/dossiers/{id}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    assert_eq!(dossier["state"], "laureat", "{dossier}");
    assert_eq!(dossier["commune"], "Château-Thierry");
    assert_eq!(dossier["code_insee"], "02168");
    assert_eq!(dossier["porteur"]["nom"], "Ville de Château-Thierry");
    assert_eq!(dossier["porteur"]["email"], "cnam@chateau-thierry.fr");
    assert_eq!(dossier["programmes"], serde_json::json!(["acv", "ti"]));
    assert_eq!(dossier["wave"], 1);
    assert_eq!(dossier["reference"], summary["reference"]);
    // 1 October 2020, 09:30 in Paris (summer time).
    let received =
        chrono::DateTime::parse_from_rfc3339(dossier["received_at"].as_str().expect("received_at"))
            .expect("instant");
    assert_eq!(
        received,
        chrono::DateTime::parse_from_rfc3339("2020-10-01T09:30:00+02:00").expect("instant")
    );
    // Both pièces came with the deposit; the budget then got a corrected
    // version (a PDF) through the API.
    let candidature = piece_of(&dossier, "dossier_candidature");
    assert_eq!(candidature["received"], true);
    assert_eq!(
        candidature["sha256"],
        sha256_hex(&example("candidature.pdf"))
    );
    let budget = piece_of(&dossier, "budget_previsionnel");
    assert_eq!(budget["received"], true);
    assert_eq!(budget["sha256"], sha256_hex(&example("candidature.pdf")));
    let versions = budget["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{budget}");
    assert_eq!(versions[0]["sha256"], sha256_hex(&example("budget.xlsx")));

    // What was refused wrote nothing: the deposit without a commune, the
    // avis « Réservé » without a motivation, the two stale forms.
    let events = history(&app, &team.dar, &id).await;
    assert_eq!(
        actions_of(&events),
        vec![
            pair("deposer", "Camille Martin"),
            pair("instruire", "Camille Martin"),
            pair("avis_acv", "Sophie Laurent"),
            pair("avis_ti", "Karim Haddad"),
            pair("ajouter_piece", "Camille Martin"),
            pair("declarer_laureat", "Dominique Bernard"),
        ]
    );
    let acv = &events[2];
    assert_eq!(acv["verdict"], "reserve");
    assert_eq!(acv["motivation"], summary["motivation_acv"]);
    assert_eq!(acv["comment"], summary["comment_acv"]);
    assert_eq!(events[1]["verdict"], "favorable");
    assert_eq!(events[3]["verdict"], "favorable");
    assert_eq!(
        summary["version_before_refusal"],
        summary["version_after_refusal"]
    );
    assert_eq!(summary["version_before_refusal"], events[1]["seq"]);
    assert_eq!(
        summary["version_before_stale_laureat"],
        summary["version_after_stale_laureat"]
    );
    assert_eq!(summary["version_before_stale_laureat"], events[4]["seq"]);
    assert_eq!(app.journal_len().await, events_before + events.len());
    let all = app
        .fetch(&team.dar, "/dossiers")
        .await
        .assert_ok(StatusCode::OK)["items"]
        .as_array()
        .expect("items")
        .len();
    assert_eq!(all, 2, "only the TI dossier and the browser's");
    // The TI-only dossier was left alone.
    assert_eq!(history(&app, &team.dar, &ti_only_id).await.len(), 1);
    // The receipt, opened once the dossier was lauréat, listed every event.
    assert_eq!(summary["receipt_events"], events.len());
    // « Écarter » without a motivation wrote nothing.
    let message = app
        .fetch(&team.dar, &format!("/arrivals/{arrival}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    assert_eq!(message["state"], "nouveau");

    assert_screenshots(summary, &shots, 2 * 20);
    println!(
        "{}: parcours in {:.1} s",
        backend_name(backend),
        run.elapsed.as_secs_f64()
    );
    app.stop().await;
}

/// The same path with the keyboard only.
async fn the_whole_path_works_with_the_keyboard_only_in_the_browser(backend: Backend) {
    let _browser = browser::exclusive().await;
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let arrival = import_nevers(&app).await;
    let shots = browser::screenshot_dir(&format!("{}/clavier", backend_name(backend)));
    let vars = scenario_env(&app, &team, &shots);

    let run = browser::run_script("clavier.mjs", &vars, SCENARIO_TIMEOUT).await;

    let summary = run.assert_success();
    let id = summary["dossier_id"]
        .as_str()
        .expect("dossier_id")
        .to_string();
    let dossier = app
        .fetch(&team.dar, &format!("/dossiers/{id}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    assert_eq!(dossier["state"], "laureat", "{dossier}");
    assert_eq!(dossier["commune"], "Saint-Dié-des-Vosges");
    assert_eq!(dossier["code_insee"], "88413");
    assert_eq!(dossier["programmes"], serde_json::json!(["acv", "ti"]));
    for kind in ["dossier_candidature", "budget_previsionnel"] {
        assert_eq!(piece_of(&dossier, kind)["received"], true, "{kind}");
    }
    let events = history(&app, &team.dar, &id).await;
    assert_eq!(
        actions_of(&events),
        vec![
            pair("deposer", "Camille Martin"),
            pair("instruire", "Camille Martin"),
            pair("avis_acv", "Sophie Laurent"),
            pair("avis_ti", "Karim Haddad"),
            pair("declarer_laureat", "Dominique Bernard"),
        ]
    );
    assert_eq!(events[3]["verdict"], "reserve");
    assert_eq!(events[3]["motivation"], summary["motivation_ti"]);
    // The dossier made from the message, with the keyboard: the message's
    // instant and files, the message handled by it.
    assert_eq!(summary["arrival_id"], arrival.as_str());
    let from_arrival = summary["arrival_dossier_id"]
        .as_str()
        .expect("arrival_dossier_id")
        .to_string();
    let made = app
        .fetch(&team.dar, &format!("/dossiers/{from_arrival}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    assert_eq!(made["commune"], "Nevers");
    assert_eq!(made["code_insee"], "58194");
    assert_eq!(made["porteur"]["nom"], "Ville de Nevers");
    assert_eq!(made["programmes"], serde_json::json!(["acv"]));
    assert_eq!(made["received_at"], "2020-10-14T14:05:42Z");
    assert_eq!(
        piece_of(&made, "dossier_candidature")["sha256"],
        sha256_hex(&example("candidature.pdf"))
    );
    assert_eq!(
        piece_of(&made, "budget_previsionnel")["sha256"],
        sha256_hex(&example("budget.xlsx"))
    );
    let message = app
        .fetch(&team.dar, &format!("/arrivals/{arrival}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    assert_eq!(message["handling"]["dossier_id"], from_arrival.as_str());
    let made_events = history(&app, &team.dar, &from_arrival).await;
    assert_eq!(
        actions_of(&made_events),
        vec![pair("deposer", "Camille Martin")]
    );
    assert_eq!(app.journal_len().await, events.len() + made_events.len());
    assert_screenshots(summary, &shots, 2 * 10);
    println!(
        "{}: clavier in {:.1} s",
        backend_name(backend),
        run.elapsed.as_secs_f64()
    );
    app.stop().await;
}

on_both_backends!(
    a_dossier_goes_from_deposit_to_laureat_in_the_browser,
    the_whole_path_works_with_the_keyboard_only_in_the_browser,
);
