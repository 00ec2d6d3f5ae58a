//! `POST /dossiers`, `GET /dossiers/{id}`, `GET /dossiers` and its filters,
//! pièces, history and statistics, on both backends.

use std::collections::HashSet;

use ami_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_string())
        .collect()
}

fn id_of(d: &Value) -> String {
    d["id"].as_str().expect("id").to_string()
}

// ---- POST /dossiers ----------------------------------------------------------

async fn a_deposit_answers_201_with_its_location_and_the_new_dossier(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    let body = new_dossier_of("Nevers", "58194", &["acv", "ti"]);

    // Act: the deposit form, with the file of each pièce.
    let reply = app.deposit_reply(&dar, &body).await;

    // Assert
    let d = reply.assert_ok(StatusCode::CREATED);
    let id = d["id"].as_str().expect("id");
    assert_eq!(
        reply.location.as_deref(),
        Some(format!("/api/v1/dossiers/{id}").as_str())
    );
    assert_eq!(d["reference"], "AMI2-V1-0001");
    assert_eq!(d["wave"], 1);
    assert_eq!(d["state"], "recu");
    assert_eq!(d["state_label"], "Reçu");
    assert_eq!(d["version"], 1);
    assert_eq!(d["commune"], "Nevers");
    assert_eq!(d["code_insee"], "58194");
    assert_eq!(d["porteur"]["nom"], "Ville de Nevers");
    assert_eq!(d["programmes"], json!(["acv", "ti"]));
    assert_eq!(d["pieces"].as_array().map(Vec::len), Some(2));
    for (kind, filename, content) in [
        ("dossier_candidature", "candidature.pdf", sample_pdf()),
        ("budget_previsionnel", "budget.xlsx", sample_xlsx()),
    ] {
        let piece = piece_of(d, kind);
        assert_eq!(piece["received"], true, "{piece}");
        assert_eq!(piece["filename"], filename, "{piece}");
        assert_eq!(piece["size"], content.len(), "{piece}");
        assert_eq!(piece["sha256"], sha256_hex(&content), "{piece}");
    }
    assert_eq!(d["awaiting"], json!(["dar"]));
    let actions = d["actions"].as_array().expect("actions");
    assert!(actions.contains(&json!("instruire")), "{d}");
    assert!(actions.contains(&json!("ajouter_piece")), "{d}");
    let (status, read) = app.get(&dar, &format!("/dossiers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&read, d);
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

async fn references_count_up_and_carry_the_wave_of_the_reception_date(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    // Act
    let first = app
        .deposit_body(&dar, &new_dossier_in_wave("Nevers", &["acv"], 1))
        .await;
    let second = app
        .deposit_body(&dar, &new_dossier_in_wave("Vierzon", &["ti"], 2))
        .await;
    let third = app
        .deposit_body(&dar, &new_dossier_in_wave("Autun", &["acv", "ti"], 3))
        .await;
    let late_evening = app.deposit(&dar, &["acv"]).await; // 23:30 Paris on the last day of wave 1
    let second_of_wave_2 = app
        .deposit_body(&dar, &new_dossier_in_wave("Bourges", &["ti"], 2))
        .await;

    // Assert: each wave numbers its own dossiers from 1.
    assert_eq!(
        (first["reference"].as_str(), first["wave"].as_u64()),
        (Some("AMI2-V1-0001"), Some(1))
    );
    assert_eq!(
        (second["reference"].as_str(), second["wave"].as_u64()),
        (Some("AMI2-V2-0001"), Some(2))
    );
    assert_eq!(
        (third["reference"].as_str(), third["wave"].as_u64()),
        (Some("AMI2-V3-0001"), Some(3))
    );
    assert_eq!(
        (
            late_evening["reference"].as_str(),
            late_evening["wave"].as_u64()
        ),
        (Some("AMI2-V1-0002"), Some(1))
    );
    assert_eq!(second_of_wave_2["reference"], "AMI2-V2-0002");
    app.stop().await;
}

async fn a_deposit_without_received_at_is_dated_now_and_refused_as_the_campaign_is_closed(
    backend: Backend,
) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut body = new_dossier("Nevers", &["acv"]);
    body.as_object_mut().expect("object").remove("received_at");

    // Act
    let reply = app
        .send_json(Method::POST, "/dossiers", &dar, &body, None)
        .await;

    // Assert
    reply.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "closed", "received_at");
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn a_deposit_received_in_the_future_is_refused(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut body = new_dossier("Nevers", &["acv"]);
    body["received_at"] = json!("2999-01-01T00:00:00Z");

    // Act
    let reply = app
        .send_json(Method::POST, "/dossiers", &dar, &body, None)
        .await;

    // Assert
    reply.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "received_in_future",
        "received_at",
    );
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn a_deposit_received_before_the_opening_is_refused(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut body = new_dossier("Nevers", &["acv"]);
    body["received_at"] = json!("2020-07-19T23:00:00+02:00");

    // Act
    let reply = app
        .send_json(Method::POST, "/dossiers", &dar, &body, None)
        .await;

    // Assert
    reply.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "not_open", "received_at");
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn an_acv_agent_cannot_deposit_a_dossier(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;

    // Act
    let reply = app
        .send_json(
            Method::POST,
            "/dossiers",
            &acv,
            &new_dossier("Nevers", &["acv"]),
            None,
        )
        .await;

    // Assert
    reply.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn a_deposit_without_programme_is_refused(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    // Act
    let reply = app
        .send_json(
            Method::POST,
            "/dossiers",
            &dar,
            &new_dossier("Nevers", &[]),
            None,
        )
        .await;

    // Assert
    reply.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_programme",
        "programmes",
    );
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn a_deposit_with_an_unknown_programme_is_refused(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    // Act
    let reply = app
        .send_json(
            Method::POST,
            "/dossiers",
            &dar,
            &new_dossier("Nevers", &["acv", "pvd"]),
            None,
        )
        .await;

    // Assert
    reply.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_programme",
        "programmes",
    );
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn a_deposit_with_a_bad_code_insee_is_refused_naming_the_field(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    for bad in ["5819", "581940", "58a94", "", "2C001"] {
        let mut body = new_dossier("Nevers", &["acv"]);
        body["code_insee"] = json!(bad);

        // Act
        let reply = app
            .send_json(Method::POST, "/dossiers", &dar, &body, None)
            .await;

        // Assert
        reply.assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "code_insee",
        );
    }
    app.deposit_body(&dar, &new_dossier_of("Ajaccio", "2A004", &["acv"]))
        .await;
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

async fn a_deposit_with_a_bad_piece_or_email_is_refused_naming_the_field(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut unknown_piece = new_dossier("Nevers", &["acv"]);
    unknown_piece["pieces"][1]["kind"] = json!("photo");
    let mut bad_hash = new_dossier("Nevers", &["acv"]);
    bad_hash["pieces"][0]["sha256"] = json!("abc");
    let mut bad_email = new_dossier("Nevers", &["acv"]);
    bad_email["porteur"]["email"] = json!("pas-une-adresse");
    let mut blank_commune = new_dossier("Nevers", &["acv"]);
    blank_commune["commune"] = json!("   ");

    // Act
    let replies = [
        app.send_json(Method::POST, "/dossiers", &dar, &unknown_piece, None)
            .await,
        app.send_json(Method::POST, "/dossiers", &dar, &bad_hash, None)
            .await,
        app.send_json(Method::POST, "/dossiers", &dar, &bad_email, None)
            .await,
        app.send_json(Method::POST, "/dossiers", &dar, &blank_commune, None)
            .await,
    ];

    // Assert
    replies[0].assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "pieces[1].kind",
    );
    replies[1].assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "pieces[0].sha256",
    );
    replies[2].assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "porteur.email",
    );
    replies[3].assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "commune");
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

// ---- GET /dossiers/{id} --------------------------------------------------------

async fn a_dossier_shows_each_caller_the_actions_they_may_take(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let id = id_of(&d);

    // Act
    let as_dar = app.fetch(&dar, &format!("/dossiers/{id}")).await;
    let as_acv_before = app.fetch(&acv, &format!("/dossiers/{id}")).await;
    app.must_act(&dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let as_acv_after = app.fetch(&acv, &format!("/dossiers/{id}")).await;

    // Assert
    assert_eq!(
        as_dar.assert_ok(StatusCode::OK)["actions"],
        json!(["ajouter_piece", "demander_complement", "instruire"])
    );
    assert_eq!(
        as_acv_before.assert_ok(StatusCode::OK)["actions"],
        json!([])
    );
    let after = as_acv_after.assert_ok(StatusCode::OK);
    assert_eq!(after["actions"], json!(["avis_acv"]));
    assert_eq!(after["awaiting"], json!(["acv"]));
    assert_eq!(after["state"], "instruit");
    assert_eq!(after["avis"]["dar"]["verdict"], "favorable");
    assert_eq!(after["avis"]["dar"]["by"]["name"], "Camille Martin");
    app.stop().await;
}

async fn an_unknown_dossier_is_404_and_an_id_that_is_not_a_uuid_is_400(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let unknown = uuid::Uuid::new_v4();

    // Act
    let missing = app.fetch(&dar, &format!("/dossiers/{unknown}")).await;
    let garbage = app.fetch(&dar, "/dossiers/AMI2-V1-0001").await;
    let missing_history = app
        .fetch(&dar, &format!("/dossiers/{unknown}/history"))
        .await;
    let garbage_history = app.fetch(&dar, "/dossiers/42/history").await;

    // Assert
    missing.assert_problem(StatusCode::NOT_FOUND, "not_found");
    garbage.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", "id");
    missing_history.assert_problem(StatusCode::NOT_FOUND, "not_found");
    garbage_history.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", "id");
    app.stop().await;
}

// ---- GET /dossiers ---------------------------------------------------------------

/// Four dossiers: Nevers (acv, wave 1, instruit), Vierzon (ti, wave 2),
/// Autun (acv+ti, wave 3), Bourges (acv, wave 1). Returned in that order.
async fn campaign(app: &TestApp, dar: &Person) -> Vec<Value> {
    let nevers = app
        .deposit_body(dar, &new_dossier_in_wave("Nevers", &["acv"], 1))
        .await;
    let vierzon = app
        .deposit_body(dar, &new_dossier_in_wave("Vierzon", &["ti"], 2))
        .await;
    let autun = app
        .deposit_body(dar, &new_dossier_in_wave("Autun", &["acv", "ti"], 3))
        .await;
    let mut bourges_body = new_dossier_in_wave("Bourges", &["acv"], 1);
    bourges_body["received_at"] = json!("2020-10-01T10:00:00+02:00");
    bourges_body["porteur"]["nom"] = json!("Communauté d'agglomération Bourges Plus");
    let bourges = app.deposit_body(dar, &bourges_body).await;
    let nevers = app
        .must_act(dar, &nevers, "instruire", json!({"verdict": "favorable"}))
        .await;
    vec![nevers, vierzon, autun, bourges]
}

async fn the_list_filters_by_state_wave_and_programme(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let ds = campaign(&app, &dar).await;
    let [nevers, vierzon, autun, bourges] = [&ds[0], &ds[1], &ds[2], &ds[3]].map(id_of);

    // Act
    let all = app.fetch(&dar, "/dossiers").await;
    let recu = app.fetch(&dar, "/dossiers?state=recu").await;
    let instruit = app.fetch(&dar, "/dossiers?state=instruit").await;
    let wave1 = app.fetch(&dar, "/dossiers?wave=1").await;
    let wave2 = app.fetch(&dar, "/dossiers?wave=2").await;
    let ti = app.fetch(&dar, "/dossiers?programme=ti").await;
    let acv_wave1_recu = app
        .fetch(&dar, "/dossiers?programme=acv&wave=1&state=recu")
        .await;
    let laureat = app.fetch(&dar, "/dossiers?state=laureat").await;

    // Assert: reception order, whatever the filter.
    assert_eq!(
        ids(all.assert_ok(StatusCode::OK)),
        [
            nevers.as_str(),
            bourges.as_str(),
            vierzon.as_str(),
            autun.as_str()
        ]
    );
    assert!(all.body["next_cursor"].is_null());
    assert_eq!(
        ids(recu.assert_ok(StatusCode::OK)),
        [bourges.as_str(), vierzon.as_str(), autun.as_str()]
    );
    assert_eq!(ids(instruit.assert_ok(StatusCode::OK)), [nevers.as_str()]);
    assert_eq!(
        ids(wave1.assert_ok(StatusCode::OK)),
        [nevers.as_str(), bourges.as_str()]
    );
    assert_eq!(ids(wave2.assert_ok(StatusCode::OK)), [vierzon.as_str()]);
    assert_eq!(
        ids(ti.assert_ok(StatusCode::OK)),
        [vierzon.as_str(), autun.as_str()]
    );
    assert_eq!(
        ids(acv_wave1_recu.assert_ok(StatusCode::OK)),
        [bourges.as_str()]
    );
    assert_eq!(ids(laureat.assert_ok(StatusCode::OK)), Vec::<String>::new());
    // Items are the same views as GET /dossiers/{id}, for the same caller.
    let one = app.fetch(&dar, &format!("/dossiers/{nevers}")).await;
    assert_eq!(all.body["items"][0], one.body);
    app.stop().await;
}

async fn awaiting_lists_only_the_dossiers_waiting_on_that_agency(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let ti = app.person("Karim Haddad", "ti", "agent").await;
    let ds = campaign(&app, &dar).await;
    let [nevers, vierzon, autun, bourges] = [&ds[0], &ds[1], &ds[2], &ds[3]].map(id_of);
    // Vierzon (ti only) instruit: waits on TI. Autun (acv+ti) instruit: ACV first.
    // Each agency lists what waits on it; ACV does not know of Vierzon.
    app.must_act(&dar, &ds[1], "instruire", json!({"verdict": "favorable"}))
        .await;
    let autun_d = app
        .must_act(&dar, &ds[2], "instruire", json!({"verdict": "favorable"}))
        .await;

    // Act
    let for_acv = app.fetch(&acv, "/dossiers?awaiting=acv").await;
    let for_ti = app.fetch(&ti, "/dossiers?awaiting=ti").await;
    let for_dar = app.fetch(&acv, "/dossiers?awaiting=dar").await;
    let ti_seen_by_acv = app.fetch(&acv, "/dossiers?awaiting=ti").await;
    app.must_act(&acv, &autun_d, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    let for_acv_after = app.fetch(&acv, "/dossiers?awaiting=acv").await;
    let for_ti_after = app.fetch(&ti, "/dossiers?awaiting=ti&limit=1").await;

    // Assert
    assert_eq!(
        ids(for_acv.assert_ok(StatusCode::OK)),
        [nevers.as_str(), autun.as_str()]
    );
    assert!(for_acv.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|d| d["awaiting"] == json!(["acv"]) && d["actions"] == json!(["avis_acv"])));
    assert_eq!(ids(for_ti.assert_ok(StatusCode::OK)), [vierzon.as_str()]);
    assert_eq!(ids(for_dar.assert_ok(StatusCode::OK)), [bourges.as_str()]);
    assert!(
        ids(ti_seen_by_acv.assert_ok(StatusCode::OK)).is_empty(),
        "Vierzon (TI only) is not listed to ACV: {}",
        ti_seen_by_acv.text
    );
    assert_eq!(
        ids(for_acv_after.assert_ok(StatusCode::OK)),
        [nevers.as_str()]
    );
    assert_eq!(
        ids(for_ti_after.assert_ok(StatusCode::OK)),
        [vierzon.as_str()]
    );
    let next = for_ti_after.body["next_cursor"]
        .as_str()
        .expect("a second page");
    let page2 = app
        .fetch(&ti, &format!("/dossiers?awaiting=ti&limit=1&cursor={next}"))
        .await;
    assert_eq!(ids(page2.assert_ok(StatusCode::OK)), [autun.as_str()]);
    assert!(page2.body["next_cursor"].is_null());
    app.stop().await;
}

async fn q_searches_commune_reference_and_porteur_ignoring_case(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let ds = campaign(&app, &dar).await;
    let [nevers, vierzon, _autun, bourges] = [&ds[0], &ds[1], &ds[2], &ds[3]].map(id_of);
    let vierzon_ref = ds[1]["reference"]
        .as_str()
        .expect("reference")
        .to_lowercase();

    // Act
    let by_commune = app.fetch(&dar, "/dossiers?q=NEVERS").await;
    let by_reference = app.fetch(&dar, &format!("/dossiers?q={vierzon_ref}")).await;
    let by_porteur = app
        .fetch(&dar, "/dossiers?q=communaut%C3%A9%20D%27AGGLOM%C3%89RATION")
        .await;
    let by_part = app.fetch(&dar, "/dossiers?q=eR").await;
    let nothing = app.fetch(&dar, "/dossiers?q=Quimper").await;
    let wildcard = app.fetch(&dar, "/dossiers?q=%25").await;
    let underscore = app.fetch(&dar, "/dossiers?q=_").await;
    let blank = app.fetch(&dar, "/dossiers?q=%20%20").await;

    // Assert
    assert_eq!(ids(by_commune.assert_ok(StatusCode::OK)), [nevers.as_str()]);
    assert_eq!(
        ids(by_reference.assert_ok(StatusCode::OK)),
        [vierzon.as_str()]
    );
    assert_eq!(
        ids(by_porteur.assert_ok(StatusCode::OK)),
        [bourges.as_str()]
    );
    // « agglomération » holds « er » once accents are set aside.
    assert_eq!(
        ids(by_part.assert_ok(StatusCode::OK)),
        [nevers.as_str(), bourges.as_str(), vierzon.as_str()]
    );
    assert!(ids(nothing.assert_ok(StatusCode::OK)).is_empty());
    assert!(
        ids(wildcard.assert_ok(StatusCode::OK)).is_empty(),
        "% is a character, not a wildcard"
    );
    assert!(
        ids(underscore.assert_ok(StatusCode::OK)).is_empty(),
        "_ is a character, not a wildcard"
    );
    assert_eq!(ids(blank.assert_ok(StatusCode::OK)).len(), 4);
    app.stop().await;
}

async fn paging_visits_every_dossier_exactly_once_even_when_they_change_state(backend: Backend) {
    // Arrange: 7 dossiers, pages of 2.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let mut all = Vec::new();
    for i in 0..7 {
        let mut body = new_dossier_in_wave(&format!("Commune {i}"), &["acv"], 1);
        // Two share their reception instant: the id breaks the tie.
        body["received_at"] = json!(format!("2020-09-{:02}T10:00:00Z", 10 + i.min(5)));
        all.push(app.deposit_body(&dar, &body).await);
    }
    let expected: Vec<String> = all.iter().map(id_of).collect();

    // Act: between pages, dossiers already seen and not yet seen move on.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/dossiers?limit=2&cursor={c}"),
            None => "/dossiers?limit=2".to_string(),
        };
        let page = app.fetch(&dar, &path).await;
        let page = page.assert_ok(StatusCode::OK).clone();
        assert!(page["items"].as_array().expect("items").len() <= 2);
        seen.extend(ids(&page));
        pages += 1;
        let moved = &all[(pages * 2 - 1).min(6)];
        app.must_act(
            &boss,
            moved,
            "classer_sans_suite",
            json!({"motivation": "Retrait du porteur"}),
        )
        .await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }

    // Assert
    assert_eq!(seen, expected, "every dossier once, in reception order");
    assert_eq!(pages, 4);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 7);
    app.stop().await;
}

async fn paging_a_filtered_list_visits_each_match_once(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut ti = Vec::new();
    for i in 0..5 {
        app.deposit_body(&dar, &new_dossier_in_wave(&format!("Acv {i}"), &["acv"], 2))
            .await;
        ti.push(id_of(
            &app.deposit_body(&dar, &new_dossier_in_wave(&format!("Ti {i}"), &["ti"], 2))
                .await,
        ));
    }

    // Act
    let mut seen = Vec::new();
    let mut path = "/dossiers?programme=ti&wave=2&state=recu&limit=2".to_string();
    loop {
        let page = app
            .fetch(&dar, &path)
            .await
            .assert_ok(StatusCode::OK)
            .clone();
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => {
                path = format!("/dossiers?programme=ti&wave=2&state=recu&limit=2&cursor={c}")
            }
            None => break,
        }
    }

    // Assert
    assert_eq!(seen, ti);
    app.stop().await;
}

async fn a_bad_list_parameter_is_400_naming_it(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    app.deposit(&dar, &["acv"]).await;
    let cases = [
        ("/dossiers?state=archive", "state"),
        ("/dossiers?wave=4", "wave"),
        ("/dossiers?wave=un", "wave"),
        ("/dossiers?programme=pvd", "programme"),
        ("/dossiers?awaiting=cnam", "awaiting"),
        ("/dossiers?sort=commune", "sort"),
        ("/dossiers?limit=0", "limit"),
        ("/dossiers?limit=501", "limit"),
        ("/dossiers?limit=-1", "limit"),
        ("/dossiers?limit=dix", "limit"),
        ("/dossiers?cursor=pas%20un%20curseur", "cursor"),
        ("/dossiers?cursor=", "cursor"),
        ("/dossiers?state=recu&state=instruit", "state"),
        ("/dossiers?q=a%00b", "q"),
    ];

    for (path, field) in cases {
        // Act
        let reply = app.fetch(&dar, path).await;

        // Assert
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        reply.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", field);
    }
    // Of the documented shape (base64url) but no position given: 422.
    for cursor in ["pas-un-curseur", "MTIz"] {
        app.fetch(&dar, &format!("/dossiers?cursor={cursor}"))
            .await
            .assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor", "cursor");
    }
    let long_q = format!("/dossiers?q={}", "a".repeat(201));
    app.fetch(&dar, &long_q).await.assert_field_problem(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "q",
    );
    app.fetch(&dar, "/dossiers?limit=500")
        .await
        .assert_ok(StatusCode::OK);
    app.stop().await;
}

// ---- PUT /dossiers/{id}/pieces/{kind} ----------------------------------------------

async fn a_piece_received_later_is_recorded_and_makes_instruction_possible(backend: Backend) {
    // Arrange: the budget is missing, so instruire is refused.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut body = new_dossier("Nevers", &["acv"]);
    body["pieces"] = json!([{"kind": "dossier_candidature", "filename": "candidature.pdf"}]);
    let d = app.deposit_body(&dar, &body).await;
    let id = id_of(&d);
    assert!(!d["actions"]
        .as_array()
        .expect("actions")
        .contains(&json!("instruire")));
    let (status, refused) = app
        .act(&dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "pieces_missing");
    assert_eq!(refused["field"], "pieces");

    // Act: the budget's file, at version 1, with a comment.
    let budget = sample_xlsx();
    let reply = app
        .upload_to(
            &dar,
            &format!(
                "/dossiers/{id}/pieces/budget_previsionnel?comment={}",
                percent_encode("Reçu par courriel")
            ),
            "budget 2021.xlsx",
            budget.clone(),
            &[("if-match", "\"1\"")],
        )
        .await;

    // Assert
    let after = reply.assert_ok(StatusCode::OK);
    assert_eq!(after["state"], "recu");
    assert_eq!(after["version"], 2);
    let piece = &after["pieces"][1];
    assert_eq!(piece["kind"], "budget_previsionnel");
    assert_eq!(piece["label"], "Budget prévisionnel");
    assert_eq!(piece["filename"], "budget 2021.xlsx");
    assert_eq!(piece["received"], true);
    assert_eq!(piece["size"], budget.len());
    assert_eq!(piece["sha256"], sha256_hex(&budget));
    assert_eq!(
        piece["media_type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(
        piece["url"],
        format!("/api/v1/dossiers/{id}/pieces/budget_previsionnel")
    );
    assert_eq!(
        piece["versions"].as_array().map(Vec::len),
        Some(1),
        "{piece}"
    );
    assert_eq!(piece["versions"][0]["version"], 1);
    assert_eq!(piece["versions"][0]["sha256"], piece["sha256"]);
    assert!(after["actions"]
        .as_array()
        .expect("actions")
        .contains(&json!("instruire")));
    let history = app.fetch(&dar, &format!("/dossiers/{id}/history")).await;
    let last = &history.body["events"][1];
    assert_eq!(last["action"], "ajouter_piece");
    assert_eq!(
        (last["from"].as_str(), last["to"].as_str()),
        (Some("recu"), Some("recu"))
    );
    assert_eq!(last["comment"], "Reçu par courriel");
    let instruit = app
        .must_act(&dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    assert_eq!(instruit["version"], 3);
    app.stop().await;
}

async fn a_piece_is_refused_when_unknown_from_another_agency_stale_or_too_late(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let id = id_of(&d);
    let kind = "budget_previsionnel";
    let path = format!("/dossiers/{id}/pieces/{kind}");
    let before = app.event_count().await;

    // Act
    let unknown_kind = app
        .upload(&dar, &id, "photo", "budget.xlsx", sample_xlsx(), &[])
        .await;
    let by_acv = app
        .upload(&acv, &id, kind, "budget.xlsx", sample_xlsx(), &[])
        .await;
    let stale = app
        .upload(
            &dar,
            &id,
            kind,
            "budget.xlsx",
            sample_xlsx(),
            &[("if-match", "\"7\"")],
        )
        .await;
    // The pièce is its file: an empty one, or the former JSON
    // declaration sent in its place, is no pièce.
    let empty_file = app
        .upload(&dar, &id, kind, "budget.xlsx", Vec::new(), &[])
        .await;
    let declaration = app
        .send_json(
            Method::PUT,
            &path,
            &dar,
            &json!({"filename": "budget.xlsx"}),
            None,
        )
        .await;
    let unknown_dossier = app
        .upload(
            &dar,
            &uuid::Uuid::new_v4().to_string(),
            kind,
            "budget.xlsx",
            sample_xlsx(),
            &[],
        )
        .await;
    let unchanged = app.event_count().await;
    app.must_act(
        &boss,
        &d,
        "classer_sans_suite",
        json!({"motivation": "La commune retire sa candidature"}),
    )
    .await;
    let on_sans_suite = app
        .upload(&dar, &id, kind, "budget.xlsx", sample_xlsx(), &[])
        .await;

    // Assert
    unknown_kind.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "kind");
    by_acv.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    let conflict = stale.assert_problem(StatusCode::CONFLICT, "version_conflict");
    assert_eq!(conflict["current_version"], 1);
    empty_file.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "empty_file");
    declaration.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "file_type_refused");
    unknown_dossier.assert_problem(StatusCode::NOT_FOUND, "not_found");
    on_sans_suite.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "terminal_state");
    assert_eq!(unchanged, before);
    assert_eq!(app.event_count().await, before + 1);
    let (_, now) = app.get(&dar, &format!("/dossiers/{id}")).await;
    let budget = piece_of(&now, kind);
    assert_eq!(
        budget["versions"].as_array().map(Vec::len),
        Some(1),
        "{budget}"
    );
    app.stop().await;
}

// ---- GET /dossiers/{id}/history ----------------------------------------------------------

async fn the_history_lists_every_event_in_order_with_distinct_digests(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let ti = app.person("Karim Haddad", "ti", "agent").await;
    let d = app.deposit(&dar, &["acv", "ti"]).await;
    let id = id_of(&d);
    app.must_act(
        &dar,
        &d,
        "instruire",
        json!({"verdict": "reserve", "motivation": "Budget à préciser", "comment": "Vu en comité"}),
    )
    .await;
    app.must_act(&acv, &d, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    app.must_act(
        &ti,
        &d,
        "avis_ti",
        json!({"verdict": "defavorable", "motivation": "Hors périmètre industriel"}),
    )
    .await;
    app.must_act(
        &boss,
        &d,
        "refuser",
        json!({"motivation": "Avis défavorable de TI"}),
    )
    .await;

    // Act
    let reply = app.fetch(&acv, &format!("/dossiers/{id}/history")).await;

    // Assert
    let history = reply.assert_ok(StatusCode::OK);
    assert_eq!(history["dossier_id"], id);
    let events = history["events"].as_array().expect("events");
    let expected = [
        (
            1,
            "deposer",
            None,
            "recu",
            "dar",
            "Camille Martin",
            None,
            None,
        ),
        (
            2,
            "instruire",
            Some("recu"),
            "instruit",
            "dar",
            "Camille Martin",
            Some("reserve"),
            Some("Budget à préciser"),
        ),
        (
            3,
            "avis_acv",
            Some("instruit"),
            "avis_acv",
            "acv",
            "Sophie Laurent",
            Some("favorable"),
            None,
        ),
        (
            4,
            "avis_ti",
            Some("avis_acv"),
            "avis_ti",
            "ti",
            "Karim Haddad",
            Some("defavorable"),
            Some("Hors périmètre industriel"),
        ),
        (
            5,
            "refuser",
            Some("avis_ti"),
            "refuse",
            "dar",
            "Dominique Bernard",
            None,
            Some("Avis défavorable de TI"),
        ),
    ];
    assert_eq!(events.len(), expected.len(), "{history}");
    let mut previous_at = String::new();
    for (e, (seq, action, from, to, agency, actor, verdict, motivation)) in
        events.iter().zip(expected)
    {
        assert_eq!(e["dossier_id"], id);
        assert_eq!(e["seq"], seq);
        assert_eq!(e["action"], action);
        assert_eq!(e["from"].as_str(), from);
        assert_eq!(e["to"], to);
        assert_eq!(e["agency"], agency);
        assert_eq!(e["actor"]["name"], actor);
        assert_eq!(e["actor"]["agency"], agency);
        assert_eq!(e["verdict"].as_str(), verdict);
        assert_eq!(e["motivation"].as_str(), motivation);
        assert_eq!(e["definition_version"], "ami2-2020.2");
        let at = e["at"].as_str().expect("at").to_string();
        let parsed = chrono::DateTime::parse_from_rfc3339(&at).expect("RFC 3339 instant");
        if !previous_at.is_empty() {
            assert!(parsed >= chrono::DateTime::parse_from_rfc3339(&previous_at).expect("instant"));
        }
        previous_at = at;
        let digest = e["digest"].as_str().expect("digest");
        assert_eq!(digest.len(), 64);
        assert!(digest
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    assert_eq!(events[1]["comment"], "Vu en comité");
    assert!(events[0]["comment"].is_null());
    let digests: HashSet<&str> = events
        .iter()
        .map(|e| e["digest"].as_str().expect("digest"))
        .collect();
    assert_eq!(digests.len(), 5);
    app.stop().await;
}

// ---- GET /stats --------------------------------------------------------------------------

async fn stats_count_dossiers_per_wave_and_state_and_what_each_agency_awaits(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let ds = campaign(&app, &dar).await; // Nevers instruit (w1), Bourges recu (w1), Vierzon recu (w2), Autun recu (w3)
    app.must_act(&acv, &ds[0], "avis_acv", json!({"verdict": "favorable"}))
        .await; // Nevers: waits on dar
    app.must_act(&dar, &ds[1], "instruire", json!({"verdict": "favorable"}))
        .await; // Vierzon: waits on ti
    app.must_act(
        &boss,
        &ds[2],
        "classer_sans_suite",
        json!({"motivation": "La commune retire sa candidature"}),
    )
    .await; // Autun: final
    app.must_act(
        &dar,
        &ds[3],
        "demander_complement",
        json!({"motivation": "Budget illisible", "pieces": ["budget_previsionnel"], "due_on": "2099-01-15"}),
    )
    .await; // Bourges: waits on the town

    // Act: DAR counts every dossier; ACV those of its programme.
    let reply = app.fetch(&dar, "/stats").await;
    let for_acv = app.fetch(&acv, "/stats").await;

    // Assert
    let stats = reply.assert_ok(StatusCode::OK);
    assert_eq!(stats["total"], 4);
    assert_eq!(
        stats["waves"],
        json!([
            {"wave": 1, "total": 2, "states": {"avis_acv": 1, "recu": 1}},
            {"wave": 2, "total": 1, "states": {"instruit": 1}},
            {"wave": 3, "total": 1, "states": {"sans_suite": 1}},
        ])
    );
    assert_eq!(
        stats["awaiting"],
        json!({"acv": 0, "dar": 1, "ti": 1, "porteur": 1})
    );
    assert_eq!(stats["complement_demande"], 1);
    // Need to know: ACV counts neither Vierzon (TI only) nor what waits on TI.
    let acv_stats = for_acv.assert_ok(StatusCode::OK);
    assert_eq!(acv_stats["total"], 3);
    assert_eq!(
        acv_stats["waves"],
        json!([
            {"wave": 1, "total": 2, "states": {"avis_acv": 1, "recu": 1}},
            {"wave": 2, "total": 0, "states": {}},
            {"wave": 3, "total": 1, "states": {"sans_suite": 1}},
        ])
    );
    assert_eq!(
        acv_stats["awaiting"],
        json!({"acv": 0, "dar": 1, "ti": 0, "porteur": 1})
    );
    assert_eq!(acv_stats["complement_demande"], 1);
    app.stop().await;
}

async fn stats_of_an_empty_campaign_are_zeros(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let ti = app.person("Karim Haddad", "ti", "agent").await;

    // Act
    let reply = app.fetch(&ti, "/stats").await;

    // Assert
    let stats = reply.assert_ok(StatusCode::OK);
    assert_eq!(stats["total"], 0);
    assert_eq!(stats["waves"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        stats["awaiting"],
        json!({"acv": 0, "dar": 0, "ti": 0, "porteur": 0})
    );
    assert_eq!(stats["complement_demande"], 0);
    app.stop().await;
}

on_both_backends!(
    a_deposit_answers_201_with_its_location_and_the_new_dossier,
    references_count_up_and_carry_the_wave_of_the_reception_date,
    a_deposit_without_received_at_is_dated_now_and_refused_as_the_campaign_is_closed,
    a_deposit_received_in_the_future_is_refused,
    a_deposit_received_before_the_opening_is_refused,
    an_acv_agent_cannot_deposit_a_dossier,
    a_deposit_without_programme_is_refused,
    a_deposit_with_an_unknown_programme_is_refused,
    a_deposit_with_a_bad_code_insee_is_refused_naming_the_field,
    a_deposit_with_a_bad_piece_or_email_is_refused_naming_the_field,
    a_dossier_shows_each_caller_the_actions_they_may_take,
    an_unknown_dossier_is_404_and_an_id_that_is_not_a_uuid_is_400,
    the_list_filters_by_state_wave_and_programme,
    awaiting_lists_only_the_dossiers_waiting_on_that_agency,
    q_searches_commune_reference_and_porteur_ignoring_case,
    paging_visits_every_dossier_exactly_once_even_when_they_change_state,
    paging_a_filtered_list_visits_each_match_once,
    a_bad_list_parameter_is_400_naming_it,
    a_piece_received_later_is_recorded_and_makes_instruction_possible,
    a_piece_is_refused_when_unknown_from_another_agency_stale_or_too_late,
    the_history_lists_every_event_in_order_with_distinct_digests,
    stats_count_dossiers_per_wave_and_state_and_what_each_agency_awaits,
    stats_of_an_empty_campaign_are_zeros,
);
