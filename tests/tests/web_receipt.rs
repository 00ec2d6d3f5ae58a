//! The printable receipt of a dossier: `GET /api/v1/dossiers/{id}/receipt`
//! with a token, `/dossiers/{id}/recepisse` through a session. It lists
//! every event with its person, Paris instant and the journal's digest,
//! every version of every pièce with its SHA-256, and the chain's last
//! digest; it escapes what people typed, and keeps need to know. The pages
//! are read with an HTML parser, as a browser would.

use ami_tests::web::Browser;
use ami_tests::*;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use scraper::{ElementRef, Html, Selector};
use serde_json::{json, Value};

/// What the ACV writes: markup and accents, to be shown as typed.
const MOTIVATION: &str =
    "Calendrier à préciser <script>alert('é')</script> & « phasage » déjà évoqué.";

fn id_of(dossier: &Value) -> String {
    dossier["id"].as_str().expect("id").to_string()
}

fn css(selector: &str) -> Selector {
    Selector::parse(selector).unwrap_or_else(|e| panic!("selector {selector}: {e:?}"))
}

/// An element's text, its white space collapsed.
fn text(element: ElementRef) -> String {
    element
        .text()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `<dd>` that follows the `<dt>` named `term` in the list directly
/// under `scope`.
fn field<'a>(scope: ElementRef<'a>, term: &str) -> Option<ElementRef<'a>> {
    scope
        .select(&css(":scope > dl > dt"))
        .find(|dt| text(*dt) == term)?
        .next_siblings()
        .find_map(ElementRef::wrap)
        .filter(|dd| dd.value().name() == "dd")
}

fn field_text(scope: ElementRef, term: &str) -> String {
    field(scope, term)
        .map(text)
        .unwrap_or_else(|| panic!("no « {term} » in {}", scope.html()))
}

/// The `datetime` and the text of the `<time>` of a field.
fn field_time(scope: ElementRef, term: &str) -> (String, String) {
    let dd = field(scope, term).unwrap_or_else(|| panic!("no « {term} »"));
    let time = dd
        .select(&css("time"))
        .next()
        .unwrap_or_else(|| panic!("« {term} » has no <time>: {}", dd.html()));
    (
        time.value()
            .attr("datetime")
            .unwrap_or_default()
            .to_string(),
        text(time),
    )
}

/// How the receipt writes an instant: in the campaign's time zone, to the
/// second, for machines and for people.
fn paris(app: &TestApp, at: &str) -> (String, String) {
    let tz = app.definition.campaign().time_zone;
    let at = DateTime::parse_from_rfc3339(at)
        .expect("instant")
        .with_timezone(&Utc);
    (
        at.with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::Secs, false),
        ami_core::french_instant_seconds(at, tz),
    )
}

fn agency_label(app: &TestApp, agency: &str) -> String {
    app.definition
        .agencies()
        .iter()
        .find(|a| a.id == agency)
        .map(|a| a.label.clone())
        .unwrap_or_else(|| panic!("agency {agency}"))
}

/// The receipt through the API: status, content type and body.
async fn api_receipt(app: &TestApp, who: Option<&Person>, id: &str) -> Reply {
    app.send(
        reqwest::Method::GET,
        &format!("/dossiers/{id}/receipt"),
        who,
        &[],
        None,
    )
    .await
}

/// A dossier for ACV and TI: deposited with both files, instructed, an
/// avis « Réservé » from ACV with a motivation full of markup and accents,
/// then a corrected budget (its second version).
async fn reviewed_dossier(app: &TestApp, team: &Team) -> Value {
    let dossier = app.deposit(&team.dar, &["acv", "ti"]).await;
    app.must_act(
        &team.dar,
        &dossier,
        "instruire",
        json!({"verdict": "favorable"}),
    )
    .await;
    app.must_act(
        &team.acv,
        &dossier,
        "avis_acv",
        json!({"verdict": "reserve", "motivation": MOTIVATION, "comment": "Vu en comité."}),
    )
    .await;
    let id = id_of(&dossier);
    app.upload(
        &team.dar,
        &id,
        "budget_previsionnel",
        "budget corrigé.pdf",
        sample_pdf(),
        &[],
    )
    .await
    .assert_ok(StatusCode::OK);
    // Every event gets its place in the global chain now, not in a moment.
    while app.store.seal_pending().await.expect("seal") > 0 {}
    app.fetch(&team.dar, &format!("/dossiers/{id}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone()
}

async fn history(app: &TestApp, who: &Person, id: &str) -> Vec<Value> {
    app.fetch(who, &format!("/dossiers/{id}/history"))
        .await
        .assert_ok(StatusCode::OK)["events"]
        .as_array()
        .expect("events")
        .clone()
}

async fn the_receipt_lists_every_event_every_file_and_the_last_digest(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let dossier = reviewed_dossier(&app, &team).await;
    let id = id_of(&dossier);
    let events = history(&app, &team.acv, &id).await;
    assert_eq!(events.len(), 4, "deposit, instruire, avis ACV, new budget");

    // Act: the ACV agent asks for it.
    let reply = api_receipt(&app, Some(&team.acv), &id).await;

    // Assert: a standalone page.
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.content_type, "text/html; charset=utf-8");
    let page = Html::parse_document(&reply.text);
    let root = page.root_element();
    assert_eq!(root.value().attr("lang"), Some("fr"));
    assert_eq!(page.select(&css("h1")).count(), 1);
    let reference = dossier["reference"].as_str().expect("reference");
    assert_eq!(
        text(page.select(&css("h1")).next().expect("h1")),
        format!("Récépissé du dossier {reference}")
    );
    assert_eq!(
        page.select(&css("nav, form")).count(),
        0,
        "no menu, no form"
    );
    assert!(
        page.select(&css("script"))
            .all(|s| s.value().attr("src").is_some()),
        "no inline script"
    );

    // The dossier.
    let facts = page
        .select(&css("#recu-dossier"))
        .next()
        .expect("#recu-dossier");
    assert_eq!(field_text(facts, "Référence"), reference);
    assert_eq!(
        field_text(facts, "Commune"),
        dossier["commune"].as_str().expect("commune")
    );
    assert_eq!(
        field_text(facts, "Code INSEE"),
        dossier["code_insee"].as_str().expect("insee")
    );
    assert_eq!(
        field_text(facts, "Porteur"),
        "Ville de Nevers — contact@example.fr"
    );
    assert_eq!(
        field_text(facts, "Programmes"),
        "Action Cœur de Ville, Territoires d'industrie"
    );
    assert_eq!(field_text(facts, "Vague"), "1");
    assert_eq!(
        field_text(facts, "État"),
        dossier["state_label"].as_str().expect("label")
    );
    assert_eq!(
        field_time(facts, "Reçu le"),
        (
            "2020-11-06T23:30:00+01:00".to_string(),
            "6 novembre 2020 à 23 h 30 min 00 s".to_string()
        )
    );

    // Every event, in order, as the history API gives it.
    let lines: Vec<ElementRef> = page.select(&css("#recu-historique ol > li")).collect();
    assert_eq!(lines.len(), events.len());
    for (line, event) in lines.iter().zip(&events) {
        let seq = event["seq"].as_u64().expect("seq");
        let action = event["action"].as_str().expect("action");
        let label = &app.definition.action(action).expect("action").label;
        let heading = line.select(&css("h3")).next().expect("h3");
        assert_eq!(text(heading), format!("{seq}. {label}"));
        assert_eq!(
            field_text(*line, "Par"),
            format!(
                "{} ({})",
                event["actor"]["name"].as_str().expect("name"),
                agency_label(&app, event["agency"].as_str().expect("agency"))
            )
        );
        assert_eq!(
            field_time(*line, "Le"),
            paris(&app, event["at"].as_str().expect("at"))
        );
        assert_eq!(
            field_text(*line, "Empreinte"),
            event["digest"].as_str().expect("digest")
        );
        assert_eq!(
            field_text(*line, "Chaîne globale"),
            format!("place n° {}", event["global_seq"].as_i64().expect("sealed"))
        );
    }
    assert_eq!(field_text(lines[1], "Avis"), "Favorable");
    assert_eq!(field_text(lines[2], "Avis"), "Réservé");
    assert_eq!(field_text(lines[2], "Commentaire"), "Vu en comité.");
    assert!(
        field(lines[0], "Avis").is_none(),
        "no verdict on the deposit"
    );

    // What the ACV typed, as typed: text on the page, never markup.
    let motivation = field(lines[2], "Motivation").expect("motivation");
    assert_eq!(motivation.text().collect::<String>(), MOTIVATION);
    assert_eq!(
        motivation.children().filter_map(ElementRef::wrap).count(),
        0
    );
    assert!(!reply.text.contains("<script>alert"));

    // Every version of every pièce, with its SHA-256.
    let files: Vec<ElementRef> = page.select(&css("#recu-pieces ol > li")).collect();
    let mut expected = Vec::new();
    for piece in dossier["pieces"].as_array().expect("pieces") {
        for version in piece["versions"].as_array().expect("versions") {
            expected.push((
                version["version"].to_string(),
                version["filename"].as_str().expect("filename").to_string(),
                version["sha256"].as_str().expect("sha256").to_string(),
                version["size"].as_u64().expect("size"),
            ));
        }
    }
    assert_eq!(expected.len(), 3, "the candidature and two budgets");
    assert_eq!(files.len(), expected.len());
    for (version, filename, sha256, size) in &expected {
        let file = files
            .iter()
            .find(|f| {
                field_text(**f, "SHA-256") == *sha256 && field_text(**f, "Fichier") == *filename
            })
            .unwrap_or_else(|| panic!("no {filename} {sha256} on the receipt"));
        assert_eq!(field_text(*file, "Version"), *version);
        // « 830 octets », « 5,8 ko (5 822 octets) »: the exact count last.
        let bytes = field_text(*file, "Taille");
        let digits: String = bytes
            .rsplit('(')
            .next()
            .expect("size")
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        assert_eq!(digits, size.to_string(), "{bytes}");
    }
    let budget = piece_of(&dossier, "budget_previsionnel");
    assert_eq!(budget["versions"][1]["filename"], "budget corrigé.pdf");

    // Where the chain ends, and who made the receipt.
    let last = events.last().expect("last event");
    let chain = page
        .select(&css("#recu-chaine"))
        .next()
        .expect("#recu-chaine");
    assert_eq!(
        field_text(chain, "Dernier événement"),
        last["seq"].to_string()
    );
    assert_eq!(
        field_text(chain, "Dernière empreinte"),
        last["digest"].as_str().expect("digest")
    );
    assert_eq!(
        field_text(chain, "Chaîne globale"),
        format!("place n° {}", last["global_seq"].as_i64().expect("sealed"))
    );
    assert_eq!(
        field_text(chain, "Empreinte globale"),
        last["global_digest"].as_str().expect("global digest")
    );
    let made = text(page.select(&css("#etabli")).next().expect("#etabli"));
    let by = format!("par Sophie Laurent ({}).", agency_label(&app, "acv"));
    assert!(made.ends_with(&by), "{made}");
    let (at, _) = field_time_of(&page, "#etabli");
    let at = DateTime::parse_from_rfc3339(&at).expect("instant");
    assert!((Utc::now() - at.with_timezone(&Utc)).num_seconds().abs() < 60);

    // The page's rules: no inline script or style, its own print sheet.
    assert!(reply.text.find(" style=").is_none(), "no inline style");
    let sheet = page
        .select(&css("link[rel=stylesheet]"))
        .filter_map(|l| l.value().attr("href"))
        .find(|h| h.ends_with("/recepisse.css"))
        .expect("the receipt's style sheet")
        .to_string();
    let res = app
        .client
        .get(format!("http://{}{sheet}", app.addr))
        .send()
        .await
        .expect("style sheet");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.expect("css").contains("@media print"));
    app.stop().await;
}

/// The `<time>` inside the element `selector`.
fn field_time_of(page: &Html, selector: &str) -> (String, String) {
    let time = page
        .select(&css(&format!("{selector} time")))
        .next()
        .unwrap_or_else(|| panic!("no <time> in {selector}"));
    (
        time.value()
            .attr("datetime")
            .unwrap_or_default()
            .to_string(),
        text(time),
    )
}

async fn the_receipt_keeps_need_to_know_and_asks_for_a_token(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ti_only = id_of(&app.deposit(&team.dar, &["ti"]).await);
    let unknown = uuid::Uuid::now_v7().to_string();

    // Act
    let hidden = api_receipt(&app, Some(&team.acv), &ti_only).await;
    let dossier = app.fetch(&team.acv, &format!("/dossiers/{ti_only}")).await;
    let missing = api_receipt(&app, Some(&team.acv), &unknown).await;
    let anonymous = api_receipt(&app, None, &ti_only).await;
    let own = api_receipt(&app, Some(&team.ti), &ti_only).await;

    // Assert: the same 404 as the dossier itself, and as an unknown one.
    let body = hidden.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(body, &dossier.body);
    assert_eq!(
        missing.assert_problem(StatusCode::NOT_FOUND, "not_found"),
        body
    );
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "missing_token");
    let res = app
        .client
        .get(app.url(&format!("/dossiers/{ti_only}/receipt")))
        .send()
        .await
        .expect("request");
    assert!(res.headers().contains_key(WWW_AUTHENTICATE));
    assert_eq!(own.status, StatusCode::OK);
    app.stop().await;
}

async fn the_dossier_page_links_to_the_receipt_served_through_the_session(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let dossier = reviewed_dossier(&app, &team).await;
    let id = id_of(&dossier);
    let ti_only = id_of(&app.deposit(&team.dar, &["ti"]).await);
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;
    let mut acv = Browser::signed_in(&app, &team.acv.token).await;
    let mut anonymous = Browser::new(&app);

    // Act
    let (status, _, dossier_page) = dar.get(&format!("/dossiers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let dossier_page = Html::parse_document(&dossier_page);
    let href = dossier_page
        .select(&css("a[href]"))
        .find(|a| text(*a) == "Récépissé imprimable")
        .and_then(|a| a.value().attr("href"))
        .expect("a link « Récépissé imprimable »")
        .to_string();
    let (status, headers, web) = dar.get(&href).await;
    let (hidden, _, not_found) = acv.get(&format!("/dossiers/{ti_only}/recepisse")).await;
    let (signed_out, out_headers, _) = anonymous.get(&href).await;

    // Assert
    assert_eq!(href, format!("/dossiers/{id}/recepisse"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().expect("csp");
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"));
    let web = Html::parse_document(&web);
    let api = api_receipt(&app, Some(&team.dar), &id).await;
    let api = Html::parse_document(&api.text);
    let digests = |page: &Html| -> Vec<String> {
        page.select(&css("code.ami-recu-empreinte"))
            .map(text)
            .collect()
    };
    assert_eq!(digests(&web), digests(&api), "one receipt, two doors");
    assert_eq!(
        digests(&web).len(),
        4 + 3 + 2,
        "events, files, last and global digests"
    );
    let made = text(web.select(&css("#etabli")).next().expect("#etabli"));
    let by = format!("par Camille Martin ({}).", agency_label(&app, "dar"));
    assert!(made.ends_with(&by), "{made}");
    assert_eq!(hidden, StatusCode::NOT_FOUND);
    let not_found = Html::parse_document(&not_found);
    assert_eq!(
        text(not_found.select(&css("h1")).next().expect("h1")),
        "Page introuvable"
    );
    assert_eq!(signed_out, StatusCode::SEE_OTHER);
    assert_eq!(out_headers[LOCATION], "/connexion");
    app.stop().await;
}

async fn the_openapi_document_declares_the_receipt_as_html(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;

    // Act
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");

    // Assert
    let get = &doc["paths"]["/dossiers/{id}/receipt"]["get"];
    assert!(
        get["responses"]["200"]["content"]["text/html"].is_object(),
        "{get}"
    );
    for status in ["401", "404", "503"] {
        assert!(
            get["responses"][status]["content"]["application/problem+json"].is_object(),
            "{status}: {get}"
        );
    }
    assert_eq!(get["security"][0]["bearer"], json!([]));
    app.stop().await;
}

on_both_backends!(
    the_receipt_lists_every_event_every_file_and_the_last_digest,
    the_receipt_keeps_need_to_know_and_asks_for_a_token,
    the_dossier_page_links_to_the_receipt_served_through_the_session,
    the_openapi_document_declares_the_receipt_as_html,
);
