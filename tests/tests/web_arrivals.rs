//! « Courrier arrivé » without JavaScript: the DAR sees the imported
//! messages, opens one with its guesses as the forms' first values, and
//! handles it once (a dossier, a pièce of a dossier, set aside) through the
//! API's own functions; a refusal names its field in French and writes
//! nothing; other agencies get the page that does not exist.

use std::path::PathBuf;

use ami_service::mail::import::Importer;
use ami_tests::web::{csrf_of, Browser};
use ami_tests::*;
use reqwest::header::LOCATION;
use serde_json::Value;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("mail-corpus")
        .join(name)
}

fn example(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Imports corpus messages as `ami import` does; the arrivals' ids.
async fn import(app: &TestApp, names: &[&str]) -> Vec<String> {
    let importer = Importer::new(app.store.clone(), app.files.clone(), app.definition.clone());
    let mut ids = Vec::new();
    for name in names {
        let raw = std::fs::read(corpus(name)).expect("corpus file");
        let imported = importer.import(&raw, name).await.expect("import");
        ids.push(imported.id.to_string());
    }
    ids
}

/// The part of a page inside the form `form_id`, if the page has it.
fn form<'a>(page: &'a str, form_id: &str) -> Option<&'a str> {
    let rest = page.split(&format!("<form id=\"{form_id}\"")).nth(1)?;
    rest.split("</form>").next()
}

/// The value of the option selected in the select `id`.
fn selected(page: &str, id: &str) -> String {
    let select = page
        .split(&format!("id=\"{id}\""))
        .nth(1)
        .and_then(|rest| rest.split("</select>").next())
        .unwrap_or_else(|| panic!("no select #{id}"));
    select
        .split("<option value=\"")
        .skip(1)
        .find(|o| {
            o.split('>')
                .next()
                .is_some_and(|tag| tag.contains("selected"))
        })
        .and_then(|o| o.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// The fields of « Créer le dossier » for the Nevers message, with the
/// page's CSRF token and `code_insee`.
fn nevers_form(csrf: &str, code_insee: &str) -> Vec<(&'static str, String)> {
    vec![
        ("csrf", csrf.to_string()),
        ("cle", "courrier-nevers-1".into()),
        ("commune", "Nevers".into()),
        ("code_insee", code_insee.into()),
        ("porteur_nom", "Ville de Nevers".into()),
        ("porteur_email", "dgs@mairie-nevers.fr".into()),
        ("programmes", "acv".into()),
        ("piece_0", "dossier_candidature".into()),
        ("piece_1", "budget_previsionnel".into()),
        ("comment", "Reçu par courriel".into()),
    ]
}

async fn post(
    browser: &mut Browser,
    path: &str,
    fields: &[(&str, String)],
) -> (StatusCode, String, String) {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, headers, page) = browser.post(path, &pairs).await;
    let location = headers
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, location, page)
}

async fn arrival(app: &TestApp, who: &Person, id: &str) -> Value {
    app.fetch(who, &format!("/arrivals/{id}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone()
}

async fn the_list_shows_an_imported_message_and_its_page_the_guesses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["01-candidature-nevers.eml"]).await;
    let id = &ids[0];
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;

    let (status, _, list) = dar.get("/courrier").await;

    assert_eq!(status, StatusCode::OK);
    assert!(list.contains("href=\"/courrier\" aria-current=\"page\">Courrier arrivé</a>"));
    let row = list
        .split(&format!("href=\"/courrier/{id}\""))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .expect("a row linking to the message");
    assert!(
        row.contains(">Candidature AMI – Ville de Nevers</a>"),
        "{row}"
    );
    assert!(list.contains("dgs@mairie-nevers.fr"));
    // 14:05:42 UTC is 16:05 in Paris (summer time).
    assert!(list.contains("14 octobre 2020 à 16 h 05"), "Paris time");
    assert!(
        row.contains("<td>Vague 1</td>") && row.contains("<td>2</td>"),
        "{row}"
    );
    assert!(row.contains(">Nouveau</p>"), "{row}");
    let (_, _, quarantined) = dar.get("/courrier?etat=quarantaine").await;
    assert!(!quarantined.contains(&format!("/courrier/{id}")));

    let (status, _, page) = dar.get(&format!("/courrier/{id}")).await;

    assert_eq!(status, StatusCode::OK);
    let depot = form(&page, "courrier-depot").expect("the form « Créer le dossier »");
    assert!(depot.contains("id=\"depot-commune\" name=\"commune\" value=\"Nevers\""));
    assert!(depot.contains("id=\"depot-code_insee\" name=\"code_insee\" value=\"58194\""));
    assert!(
        depot.contains("value=\"dgs@mairie-nevers.fr\""),
        "the sender"
    );
    assert!(
        depot.contains(
            "id=\"depot-porteur_nom\" name=\"porteur_nom\" value=\"Élodie Marchand – Mairie de Nevers\""
        ),
        "the sender's name as the porteur: {depot}"
    );
    assert_eq!(selected(&page, "depot-piece_0"), "dossier_candidature");
    assert_eq!(selected(&page, "depot-piece_1"), "budget_previsionnel");
    assert_eq!(selected(&page, "rattacher-piece_1"), "budget_previsionnel");
    assert_eq!(selected(&page, "rattacher-piece_0"), "");
    assert!(form(&page, "courrier-ecarter").is_some());
    assert!(page.contains("class=\"ami-courriel\""), "its text");
    assert!(page.contains("14 octobre 2020 à 16 h 05 min 42 s"));
    // The files, through the session, as the API gives them.
    let pdf = dar
        .client
        .get(format!("{}/courrier/{id}/pieces-jointes/0", dar.base))
        .header("cookie", dar.cookie_header())
        .send()
        .await
        .expect("download");
    assert_eq!(pdf.status(), StatusCode::OK);
    assert_eq!(
        pdf.bytes().await.expect("bytes").to_vec(),
        example("candidature.pdf")
    );
    let raw = dar
        .client
        .get(format!("{}/courrier/{id}/original", dar.base))
        .header("cookie", dar.cookie_header())
        .send()
        .await
        .expect("download");
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(
        raw.bytes().await.expect("bytes").to_vec(),
        std::fs::read(corpus("01-candidature-nevers.eml")).expect("corpus")
    );
    let signed_out = Browser::new(&app)
        .get(&format!("/courrier/{id}/pieces-jointes/0"))
        .await;
    assert_eq!(signed_out.0, StatusCode::SEE_OTHER, "to « Se connecter »");
    app.stop().await;
}

async fn a_dossier_is_created_from_a_message_with_its_instant_and_its_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["01-candidature-nevers.eml"]).await;
    let id = &ids[0];
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;
    let (_, _, page) = dar.get(&format!("/courrier/{id}")).await;
    let fields = nevers_form(&csrf_of(&page), "58194");

    let (status, location, _) = post(&mut dar, &format!("/courrier/{id}/dossier"), &fields).await;

    assert_eq!(status, StatusCode::SEE_OTHER);
    let dossier_id = location
        .strip_prefix("/dossiers/")
        .and_then(|l| l.strip_suffix("?fait=deposer"))
        .unwrap_or_else(|| panic!("to the new dossier's page: {location}"))
        .to_string();
    let (_, _, dossier_page) = dar.get(&location).await;
    assert!(dossier_page.contains("c&#39;est enregistré"), "flash");
    let dossier = app
        .fetch(&team.dar, &format!("/dossiers/{dossier_id}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    assert_eq!(dossier["received_at"], "2020-10-14T14:05:42Z");
    assert_eq!(dossier["wave"], 1);
    assert_eq!(dossier["commune"], "Nevers");
    assert_eq!(dossier["programmes"], serde_json::json!(["acv"]));
    let candidature = piece_of(&dossier, "dossier_candidature");
    assert_eq!(
        candidature["sha256"],
        sha256_hex(&example("candidature.pdf"))
    );
    assert_eq!(candidature["filename"], "dossier-candidature-nevers.pdf");
    assert_eq!(
        piece_of(&dossier, "budget_previsionnel")["sha256"],
        sha256_hex(&example("budget.xlsx"))
    );
    let handled = arrival(&app, &team.dar, id).await;
    assert_eq!(handled["state"], "traite");
    assert_eq!(handled["handling"]["dossier_id"], dossier_id.as_str());

    // Handled: how, by whom, the dossier; no form any more.
    let (_, _, page) = dar.get(&format!("/courrier/{id}")).await;
    assert!(page.contains("Dossier créé à partir de ce courrier"));
    assert!(page.contains(&format!("Par {}, le ", team.dar.name)));
    assert!(page.contains(&format!(
        "href=\"/dossiers/{dossier_id}\">Voir le dossier AMI2-"
    )));
    for form_id in ["courrier-depot", "courrier-rattacher", "courrier-ecarter"] {
        assert!(
            form(&page, form_id).is_none(),
            "{form_id} on a handled message"
        );
    }
    // The same form again (a double click) replays; the list moved it.
    let events = app.journal_len().await;
    let (again, replayed, _) = post(&mut dar, &format!("/courrier/{id}/dossier"), &fields).await;
    assert_eq!((again, replayed), (StatusCode::SEE_OTHER, location));
    assert_eq!(app.journal_len().await, events);
    let (_, _, list) = dar.get("/courrier?etat=traite").await;
    assert!(list.contains(&format!("/courrier/{id}\"")));
    app.stop().await;
}

async fn a_refused_dossier_names_its_field_keeps_what_was_typed_and_writes_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["01-candidature-nevers.eml"]).await;
    let id = &ids[0];
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;
    let (_, _, page) = dar.get(&format!("/courrier/{id}")).await;
    let events = app.journal_len().await;

    let (status, _, page) = post(
        &mut dar,
        &format!("/courrier/{id}/dossier"),
        &nevers_form(&csrf_of(&page), "99999"),
    )
    .await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let depot = form(&page, "courrier-depot").expect("the form again");
    assert!(depot.contains("Le dossier n'a pas été créé."), "{depot}");
    assert!(
        depot.contains("voir le champ « Code INSEE »"),
        "the summary names it"
    );
    assert!(depot.contains("<a href=\"#depot-code_insee\">Code INSEE : "));
    let error = depot
        .split("id=\"depot-code_insee-erreur\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the error under the field");
    assert!(error.contains("99999"), "{error}");
    assert!(depot.contains("aria-describedby=\"depot-code_insee-erreur\""));
    assert!(depot.contains("value=\"99999\""), "kept");
    assert!(depot.contains("value=\"Ville de Nevers\""), "kept");
    assert!(depot.contains(">Reçu par courriel</textarea>"), "kept");
    assert!(depot.contains("id=\"depot-programme-acv\" name=\"programmes\" value=\"acv\" checked"));
    assert_eq!(selected(&page, "depot-piece_1"), "budget_previsionnel");
    assert_eq!(app.journal_len().await, events, "nothing written");
    assert_eq!(arrival(&app, &team.dar, id).await["state"], "nouveau");

    // A field left empty, and two attachments for one pièce.
    let mut fields = nevers_form(&csrf_of(&page), "58194");
    fields.retain(|(k, _)| *k != "porteur_nom");
    let (status, _, page) = post(&mut dar, &format!("/courrier/{id}/dossier"), &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"depot-porteur_nom-erreur\""), "porteur");
    let mut fields = nevers_form(&csrf_of(&page), "58194");
    fields.retain(|(k, _)| *k != "piece_0");
    fields.push(("piece_0", "budget_previsionnel".into()));
    let (status, _, page) = post(&mut dar, &format!("/courrier/{id}/dossier"), &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"depot-piece_1-erreur\">Deux pièces jointes"));
    // A form of another session.
    let mut fields = nevers_form("pas-le-bon", "58194");
    fields.retain(|(k, _)| *k != "cle");
    let (status, _, _) = post(&mut dar, &format!("/courrier/{id}/dossier"), &fields).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.journal_len().await, events, "nothing written");
    assert_eq!(arrival(&app, &team.dar, id).await["state"], "nouveau");
    app.stop().await;
}

async fn a_message_is_attached_to_the_dossier_its_reference_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(
        &app,
        &["01-candidature-nevers.eml", "02-transfert-chateauroux.eml"],
    )
    .await;
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;
    let (_, _, page) = dar.get(&format!("/courrier/{}", ids[0])).await;
    let (_, location, _) = post(
        &mut dar,
        &format!("/courrier/{}/dossier", ids[0]),
        &nevers_form(&csrf_of(&page), "58194"),
    )
    .await;
    let dossier_id = location
        .strip_prefix("/dossiers/")
        .and_then(|l| l.split('?').next())
        .expect("created")
        .to_string();
    let dossier = app
        .fetch(&team.dar, &format!("/dossiers/{dossier_id}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    let reference = dossier["reference"]
        .as_str()
        .expect("reference")
        .to_string();
    let (_, _, page) = dar.get(&format!("/courrier/{}", ids[1])).await;
    let csrf = csrf_of(&page);
    let path = format!("/courrier/{}/rattacher", ids[1]);

    let (status, _, refused) = post(
        &mut dar,
        &path,
        &[
            ("csrf", csrf.clone()),
            ("reference", "AMI2-V9-9999".into()),
            ("piece_1", "budget_previsionnel".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.contains(
        "id=\"rattacher-reference-erreur\">Aucun dossier ne porte la référence « AMI2-V9-9999 »."
    ));
    let (status, location, _) = post(
        &mut dar,
        &path,
        &[
            ("csrf", csrf),
            ("cle", "rattacher-1".into()),
            ("reference", reference.to_lowercase()),
            ("piece_0", String::new()),
            ("piece_1", "budget_previsionnel".into()),
        ],
    )
    .await;

    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location,
        format!("/dossiers/{dossier_id}?fait=ajouter_piece")
    );
    let after = app
        .fetch(&team.dar, &format!("/dossiers/{dossier_id}"))
        .await
        .assert_ok(StatusCode::OK)
        .clone();
    let budget = piece_of(&after, "budget_previsionnel");
    assert_eq!(budget["versions"].as_array().map(Vec::len), Some(2));
    let handled = arrival(&app, &team.dar, &ids[1]).await;
    assert_eq!(handled["handling"]["how"], "rattachement");
    app.stop().await;
}

async fn setting_aside_needs_a_motivation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["03-sans-message-id.eml", "08-pas-un-message.eml"]).await;
    let id = &ids[0];
    let mut dar = Browser::signed_in(&app, &team.dar.token).await;
    let (_, _, page) = dar.get(&format!("/courrier/{id}")).await;
    let csrf = csrf_of(&page);
    let path = format!("/courrier/{id}/ecarter");
    let events = app.journal_len().await;

    let (status, _, refused) = post(
        &mut dar,
        &path,
        &[("csrf", csrf.clone()), ("motivation", "   ".into())],
    )
    .await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let aside = form(&refused, "courrier-ecarter").expect("the form again");
    assert!(aside.contains("voir le champ « Motivation »"), "{aside}");
    assert!(
        aside.contains("id=\"ecarter-motivation-erreur\">Le champ « motivation » est obligatoire")
    );
    assert_eq!(arrival(&app, &team.dar, id).await["state"], "nouveau");
    assert_eq!(app.journal_len().await, events);

    let motivation = "Message de test de la mairie, sans candidature.";
    let (status, location, _) = post(
        &mut dar,
        &path,
        &[("csrf", csrf.clone()), ("motivation", motivation.into())],
    )
    .await;

    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/courrier?fait=ecarte");
    let (_, _, list) = dar.get(&location).await;
    assert!(list.contains("Le courrier a été écarté : c&#39;est enregistré."));
    let handled = arrival(&app, &team.dar, id).await;
    assert_eq!(handled["state"], "ecarte");
    assert_eq!(handled["handling"]["motivation"], motivation);
    let (_, _, page) = dar.get(&format!("/courrier/{id}")).await;
    assert!(page.contains(&format!("Motivation : {motivation}")));
    assert!(form(&page, "courrier-ecarter").is_none());
    // Sent again from the old page: refused, said above, nothing written.
    let (status, _, again) = post(
        &mut dar,
        &path,
        &[("csrf", csrf), ("motivation", "Encore".into())],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(again.contains("id=\"refus\""));

    // A message in quarantine: its reason, and only « Écarter ».
    let (_, _, page) = dar.get(&format!("/courrier/{}", ids[1])).await;
    assert!(page.contains("En quarantaine"));
    assert!(page.contains("message illisible : aucun en-tête"));
    assert!(form(&page, "courrier-ecarter").is_some());
    assert!(form(&page, "courrier-depot").is_none());
    assert!(form(&page, "courrier-rattacher").is_none());
    app.stop().await;
}

async fn other_agencies_do_not_see_the_mail(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["01-candidature-nevers.eml"]).await;
    let id = &ids[0];
    let mut acv = Browser::signed_in(&app, &team.acv.token).await;
    let (_, _, home) = acv.get("/a-traiter").await;
    assert!(!home.contains("Courrier arrivé"), "no entry in the menu");
    let csrf = csrf_of(&home);

    for path in [
        "/courrier".to_string(),
        format!("/courrier/{id}"),
        format!("/courrier/{id}/original"),
        format!("/courrier/{id}/pieces-jointes/0"),
    ] {
        let (status, _, page) = acv.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.contains("Page introuvable"), "{path}");
    }
    let events = app.journal_len().await;
    let (status, _, _) = post(
        &mut acv,
        &format!("/courrier/{id}/ecarter"),
        &[
            ("csrf", csrf.clone()),
            ("motivation", "Pas pour nous".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = post(
        &mut acv,
        &format!("/courrier/{id}/dossier"),
        &nevers_form(&csrf, "58194"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.journal_len().await, events);
    assert_eq!(arrival(&app, &team.dar, id).await["state"], "nouveau");
    // The DAR's responsable has the entry.
    let mut boss = Browser::signed_in(&app, &team.boss.token).await;
    let (_, _, home) = boss.get("/a-traiter").await;
    assert!(home.contains("href=\"/courrier\""));
    app.stop().await;
}

on_both_backends!(
    the_list_shows_an_imported_message_and_its_page_the_guesses,
    a_dossier_is_created_from_a_message_with_its_instant_and_its_files,
    a_refused_dossier_names_its_field_keeps_what_was_typed_and_writes_nothing,
    a_message_is_attached_to_the_dossier_its_reference_names,
    setting_aside_needs_a_motivation,
    other_agencies_do_not_see_the_mail,
);
