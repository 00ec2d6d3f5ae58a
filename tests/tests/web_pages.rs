//! The web pages without JavaScript: the forms run the same decisions as the
//! API, refusals come back next to their field with what was typed, a stale
//! form writes nothing and says what changed, a form of another session is
//! refused, each person sees their own buttons and dossiers only, and the
//! live stream sends what others do.

use ami_tests::web::{csrf_of, form_value, Browser};
use ami_tests::*;
use reqwest::header::LOCATION;
use serde_json::{json, Value};

fn id_of(dossier: &Value) -> String {
    dossier["id"].as_str().expect("id").to_string()
}

/// The fields of an action's form as the page gives them, plus `extra`.
fn action_form(page: &str, action: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let form_id = format!("action-{action}");
    let mut fields: Vec<(String, String)> = ["csrf", "version", "cle"]
        .iter()
        .map(|name| {
            let value = form_value(page, &form_id, name)
                .unwrap_or_else(|| panic!("{name} in the form {form_id}"));
            (name.to_string(), value)
        })
        .collect();
    fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    fields
}

async fn send(
    browser: &mut Browser,
    id: &str,
    action: &str,
    fields: &[(String, String)],
) -> (StatusCode, String, String) {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, headers, page) = browser
        .post(&format!("/dossiers/{id}/actions/{action}"), &pairs)
        .await;
    let location = headers
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, location, page)
}

/// Opens the dossier page and sends the action's form with `extra`.
async fn act(
    browser: &mut Browser,
    id: &str,
    action: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let (status, _, page) = browser.get(&format!("/dossiers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let fields = action_form(&page, action, extra);
    send(browser, id, action, &fields).await
}

/// A service, its four people, and an ACV dossier the DAR has instructed.
async fn instructed_acv_dossier(backend: Backend) -> (TestApp, Team, Value) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv"]).await;
    app.must_act(
        &team.dar,
        &dossier,
        "instruire",
        json!({"verdict": "favorable"}),
    )
    .await;
    (app, team, dossier)
}

async fn state_of(app: &TestApp, who: &Person, id: &str) -> Value {
    let (status, body) = app.get(who, &format!("/dossiers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    body
}

async fn the_whole_review_runs_through_the_forms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;
    let (_, _, page) = dar.get("/dossiers/nouveau").await;
    let csrf = csrf_of(&page);
    let pdf = sample_pdf();
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("cle", "depot-nevers-1")
        .text("commune", "Nevers")
        .text("code_insee", "58194")
        .text("porteur_nom", "Ville de Nevers")
        .text("porteur_email", "cnam@nevers.fr")
        .text("programmes", "acv")
        .text("programmes", "ti")
        .text("recu_le", "2020-10-01")
        .text("recu_a", "09:30")
        .part(
            "dossier_candidature",
            reqwest::multipart::Part::bytes(pdf.clone()).file_name("candidature.pdf"),
        )
        .part(
            "budget_previsionnel",
            reqwest::multipart::Part::bytes(sample_xlsx()).file_name("budget.xlsx"),
        );

    let (status, headers, _) = dar.post_multipart("/dossiers/nouveau", form).await;

    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[LOCATION].to_str().expect("location").to_string();
    let id = location
        .strip_prefix("/dossiers/")
        .and_then(|l| l.split('?').next())
        .expect("dossier page")
        .to_string();
    let (_, _, page) = dar.get(&location).await;
    assert!(page.contains("c&#39;est enregistré"), "notice");
    assert!(page.contains("Télécharger « candidature.pdf »"));
    let download = dar
        .client
        .get(format!(
            "{}/dossiers/{id}/pieces/dossier_candidature",
            dar.base
        ))
        .header("cookie", dar.cookie_header())
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.bytes().await.expect("bytes").to_vec(), pdf);
    let created = state_of(&app, &team.dar, &id).await;
    assert_eq!(created["wave"], 1);
    assert_eq!(created["received_at"], "2020-10-01T07:30:00Z");

    // Each agency through its own page; a double click replays.
    let (_, _, page) = dar.get(&format!("/dossiers/{id}")).await;
    let instruire = action_form(&page, "instruire", &[("verdict", "favorable")]);
    let (first, _, _) = send(&mut dar, &id, "instruire", &instruire).await;
    let (again, _, _) = send(&mut dar, &id, "instruire", &instruire).await;
    assert_eq!(
        (first, again),
        (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER)
    );
    let mut acv = Browser::signed_in(&app, &team.acv.token).await;
    let (status, _, _) = act(&mut acv, &id, "avis_acv", &[("verdict", "favorable")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let mut ti = Browser::signed_in(&app, &team.ti.token).await;
    let (status, _, _) = act(
        &mut ti,
        &id,
        "avis_ti",
        &[("verdict", "reserve"), ("motivation", "Foncier à préciser")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let mut boss = Browser::signed_in(&app, &team.boss.token).await;
    let (status, location, _) = act(&mut boss, &id, "declarer_laureat", &[]).await;

    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/dossiers/{id}?fait=declarer_laureat"));
    let done = state_of(&app, &team.dar, &id).await;
    assert_eq!(done["state"], "laureat");
    assert_eq!(
        done["version"], 5,
        "deposit, instruire once, two avis, lauréat"
    );
    assert_eq!(done["avis"]["ti"]["motivation"], "Foncier à préciser");
    app.stop().await;
}

async fn a_refusal_is_shown_next_to_its_field_with_what_was_typed(backend: Backend) {
    let (app, team, dossier) = instructed_acv_dossier(backend).await;
    let id = id_of(&dossier);
    let before = app.journal_len().await;
    let mut acv = Browser::signed_in(&app, &team.acv.token).await;

    let (status, _, page) = act(
        &mut acv,
        &id,
        "avis_acv",
        &[("verdict", "reserve"), ("comment", "Vu avec la préfecture")],
    )
    .await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = page
        .split("id=\"avis_acv-motivation-erreur\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the error next to the motivation");
    assert!(error.contains("motivation"), "{error}");
    assert!(
        error.contains("Réservé"),
        "in the definition's words: {error}"
    );
    assert!(page.contains("aria-describedby=\"avis_acv-motivation-erreur\""));
    assert!(page.contains(">Vu avec la préfecture</textarea>"), "kept");
    assert!(
        page.contains("id=\"avis_acv-verdict-reserve\" name=\"verdict\" value=\"reserve\" checked")
    );
    assert_eq!(app.journal_len().await, before, "nothing written");
    app.stop().await;
}

async fn a_stale_form_says_what_changed_and_writes_nothing(backend: Backend) {
    let (app, team, dossier) = instructed_acv_dossier(backend).await;
    let id = id_of(&dossier);
    let mut boss = Browser::signed_in(&app, &team.boss.token).await;
    let (_, _, read) = boss.get(&format!("/dossiers/{id}")).await;
    let stale = action_form(
        &read,
        "classer_sans_suite",
        &[("motivation", "La commune se retire")],
    );
    // Someone else acts meanwhile.
    app.must_act(
        &team.acv,
        &dossier,
        "avis_acv",
        json!({"verdict": "favorable"}),
    )
    .await;
    let before = app.journal_len().await;

    let (status, _, page) = send(&mut boss, &id, "classer_sans_suite", &stale).await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("Ce dossier a été modifié depuis votre lecture"));
    assert!(
        page.contains(
            "« Rendre l&#39;avis Action Cœur de Ville » (avis Favorable) par Sophie Laurent"
        ),
        "what changed"
    );
    assert!(page.contains(">La commune se retire</textarea>"), "kept");
    assert_eq!(app.journal_len().await, before, "nothing written");
    assert_eq!(state_of(&app, &team.dar, &id).await["state"], "avis_acv");
    app.stop().await;
}

async fn a_form_of_another_session_or_without_its_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv"]).await;
    let id = id_of(&dossier);
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;
    let (_, _, page) = dar.get(&format!("/dossiers/{id}")).await;
    let genuine = action_form(&page, "instruire", &[("verdict", "favorable")]);
    let other = Browser::signed_in(&app, &team.boss.token).await;
    let mut other = other;
    let (_, _, other_page) = other.get("/a-traiter").await;
    let foreign = csrf_of(&other_page);
    let before = app.journal_len().await;

    let without: Vec<(String, String)> = genuine
        .iter()
        .filter(|(k, _)| k != "csrf")
        .cloned()
        .collect();
    let (no_token, _, _) = send(&mut dar, &id, "instruire", &without).await;
    let with_foreign: Vec<(String, String)> = genuine
        .iter()
        .map(|(k, v)| {
            if k == "csrf" {
                (k.clone(), foreign.clone())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let (foreign_token, _, page) = send(&mut dar, &id, "instruire", &with_foreign).await;

    assert_eq!(no_token, StatusCode::FORBIDDEN);
    assert_eq!(foreign_token, StatusCode::FORBIDDEN);
    assert!(page.contains("Formulaire expiré"), "in French");
    assert_eq!(app.journal_len().await, before, "nothing written");
    // Without a session at all, nothing either: the sign-in page.
    let mut stranger = Browser::new(&app);
    let pairs: Vec<(&str, &str)> = genuine
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, headers, _) = stranger
        .post(&format!("/dossiers/{id}/actions/instruire"), &pairs)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/connexion");
    assert_eq!(app.journal_len().await, before);
    app.stop().await;
}

async fn each_person_sees_their_own_buttons_and_dossiers_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let both = app.deposit(&team.dar, &["acv", "ti"]).await;
    let ti_only = app.deposit(&team.dar, &["ti"]).await;
    let mut acv = Browser::signed_in(&app, &team.acv.token).await;
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;

    let (status, _, acv_page) = acv.get(&format!("/dossiers/{}", id_of(&both))).await;
    let (_, _, dar_page) = dar.get(&format!("/dossiers/{}", id_of(&both))).await;
    let (hidden, _, not_found) = acv.get(&format!("/dossiers/{}", id_of(&ti_only))).await;
    let (file, _, _) = acv
        .get(&format!(
            "/dossiers/{}/pieces/dossier_candidature",
            id_of(&ti_only)
        ))
        .await;
    let (list_status, _, list) = acv.get("/dossiers").await;

    assert_eq!(status, StatusCode::OK);
    assert!(!acv_page.contains("id=\"action-"), "no button for ACV yet");
    assert!(dar_page.contains("id=\"action-instruire\""));
    assert!(!dar_page.contains("id=\"action-declarer_laureat\""));
    assert_eq!(hidden, StatusCode::NOT_FOUND);
    assert!(not_found.contains("Page introuvable"));
    assert!(!not_found.contains(ti_only["reference"].as_str().expect("reference")));
    assert_eq!(file, StatusCode::NOT_FOUND);
    assert_eq!(
        list_status,
        StatusCode::NOT_FOUND,
        "« Tous les dossiers » is the DAR's"
    );
    assert!(!list.contains(ti_only["reference"].as_str().expect("reference")));
    app.stop().await;
}

async fn an_action_without_a_form_on_the_page_is_refused_above_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv"]).await;
    let id = id_of(&dossier);
    let mut acv = Browser::signed_in(&app, &team.acv.token).await;
    let (_, _, page) = acv.get(&format!("/dossiers/{id}")).await;
    let before = app.journal_len().await;
    let forged = [
        ("csrf".to_string(), csrf_of(&page)),
        ("version".to_string(), "1".to_string()),
        ("cle".to_string(), "forged-1".to_string()),
        ("verdict".to_string(), "favorable".to_string()),
    ];

    let (status, _, page) = send(&mut acv, &id, "instruire", &forged).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Action refusée"), "shown above the page");
    // The form's address, opened again without its form: the dossier.
    let (again, headers, _) = acv.get(&format!("/dossiers/{id}/actions/instruire")).await;
    assert_eq!(again, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], format!("/dossiers/{id}").as_str());
    assert!(
        page.contains("revient à « Cnam – Direction de l&#39;action régionale »"),
        "the engine's words"
    );
    assert_eq!(app.journal_len().await, before, "nothing written");
    app.stop().await;
}

async fn a_motivation_of_ten_thousand_accented_characters_goes_through_the_form(backend: Backend) {
    let (app, team, dossier) = instructed_acv_dossier(backend).await;
    let id = id_of(&dossier);
    let mut acv = Browser::signed_in(&app, &team.acv.token).await;
    let motivation = "é".repeat(10_000);

    let (status, _, _) = act(
        &mut acv,
        &id,
        "avis_acv",
        &[
            ("verdict", "reserve"),
            ("motivation", &motivation),
            ("comment", &motivation),
        ],
    )
    .await;

    assert_eq!(status, StatusCode::SEE_OTHER);
    let avis = &state_of(&app, &team.acv, &id).await["avis"]["acv"];
    assert_eq!(avis["motivation"], motivation.as_str(), "kept whole");
    app.stop().await;
}

async fn the_queue_filters_searches_and_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    app.deposit_body(&team.dar, &new_dossier_of("Nevers", "58194", &["acv"]))
        .await;
    app.deposit_body(&team.dar, &new_dossier_of("Épinal", "88160", &["ti"]))
        .await;
    let instructed = app
        .deposit_body(&team.dar, &new_dossier_of("Moulins", "03190", &["acv"]))
        .await;
    app.must_act(
        &team.dar,
        &instructed,
        "instruire",
        json!({"verdict": "favorable"}),
    )
    .await;
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;

    let (_, _, queue) = dar.get("/a-traiter").await;
    let (_, _, search) = dar.get("/a-traiter?q=epinal").await;
    let (_, _, ti) = dar.get("/a-traiter?programme=ti").await;
    let (_, _, all) = dar.get("/dossiers?etat=instruit").await;
    let (status, _, wrong) = dar.get("/a-traiter?etat=nimporte").await;

    assert!(queue.contains("2 dossiers") && queue.contains("Nevers") && !queue.contains("Moulins"));
    assert!(search.contains("1 dossier pour cette recherche") && search.contains("Épinal"));
    assert!(!search.contains(">Nevers<"));
    assert!(ti.contains("Épinal") && !ti.contains(">Nevers<"));
    assert!(all.contains("Moulins") && !all.contains(">Nevers<"));
    assert_eq!(status, StatusCode::OK);
    assert!(wrong.contains("Cet état n&#39;existe pas"));
    app.stop().await;
}

async fn the_live_stream_sends_what_others_do(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv"]).await;
    let id = id_of(&dossier);
    let mut boss = Browser::signed_in(&app, &team.boss.token).await;
    let (_, _, page) = boss.get(&format!("/dossiers/{id}")).await;
    let from = page
        .split("data-live-from=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page's feed position")
        .to_string();
    let mut stream = boss
        .client
        .get(format!("{}/evenements?depuis={from}", boss.base))
        .header("cookie", boss.cookie_header())
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    app.must_act(
        &team.dar,
        &dossier,
        "instruire",
        json!({"verdict": "favorable"}),
    )
    .await;

    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !seen.contains("Instruit par la DAR") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .expect("the event within 30 s")
            .expect("read")
            .expect("open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: dossier"), "{seen}");
    assert!(seen.contains(&format!("\"dossier\":\"{id}\"")), "{seen}");
    assert!(seen.contains("\"person\":\"Camille Martin\""), "{seen}");
    assert!(seen.contains("\"version\":2"), "{seen}");
    assert!(
        seen.starts_with("id: ") || seen.contains("\nid: "),
        "resumable: {seen}"
    );
    app.stop().await;
}

async fn unknown_pages_are_french_html_for_browsers_and_problems_for_programs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut browser = Browser::new(&app);

    let page = browser
        .client
        .get(format!("{}/nulle-part", browser.base))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("get");
    let (status, headers) = (page.status(), page.headers().clone());
    let page = page.text().await.expect("page");
    let (api, api_headers, _) = browser.get("/api/v1/nulle-part").await;
    let (program, program_headers, _) = browser.get("/nulle-part").await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/html"));
    assert!(page.contains("<html lang=\"fr\"") && page.contains("Page introuvable"));
    assert_eq!(api, StatusCode::NOT_FOUND);
    assert_eq!(api_headers["content-type"], "application/problem+json");
    assert_eq!(program, StatusCode::NOT_FOUND);
    assert_eq!(
        program_headers["content-type"], "application/problem+json",
        "a program that does not ask for HTML gets a problem"
    );
    app.stop().await;
}

on_both_backends!(
    the_whole_review_runs_through_the_forms,
    a_refusal_is_shown_next_to_its_field_with_what_was_typed,
    a_stale_form_says_what_changed_and_writes_nothing,
    a_form_of_another_session_or_without_its_token_is_refused,
    each_person_sees_their_own_buttons_and_dossiers_only,
    an_action_without_a_form_on_the_page_is_refused_above_it,
    a_motivation_of_ten_thousand_accented_characters_goes_through_the_form,
    the_queue_filters_searches_and_counts,
    the_live_stream_sends_what_others_do,
    unknown_pages_are_french_html_for_browsers_and_problems_for_programs,
);
