//! What the DAR, ACV and TI rely on every day, through the real service on
//! both backends: search that finds, fields that hide nothing, filters that
//! take several values, duplicates, reference numbers per wave, the
//! « demande de complément », classer sans suite and rouvrir, one person per
//! e-mail for the four-eyes rule, idempotency by meaning, a history a client
//! in another language verifies, and refusals in French.

use ami_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The verifier a client would write, in Python (standard library only).
const VERIFY_DIGESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify_digests.py");

fn id_of(d: &Value) -> String {
    d["id"].as_str().expect("id").to_string()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}

fn references(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["reference"].as_str().expect("reference").to_string())
        .collect()
}

/// A query value as a browser would send it (UTF-8, percent-encoded).
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A deposit body for a commune with its INSEE code and porteur, received
/// at `received_at`, with both pièces.
fn deposit_of(
    commune: &str,
    code_insee: &str,
    porteur: &str,
    received_at: &str,
    programmes: &[&str],
) -> Value {
    let mut body = new_dossier_of(commune, code_insee, programmes);
    body["porteur"]["nom"] = json!(porteur);
    body["received_at"] = json!(received_at);
    body
}

/// A transition at the dossier's current version, as a [`Reply`].
async fn act_reply(app: &TestApp, who: &Person, d: &Value, action: &str, extra: Value) -> Reply {
    let id = id_of(d);
    let current = app.fetch(who, &format!("/dossiers/{id}")).await;
    let mut body = json!({"action": action, "expected_version": current.body["version"]});
    for (k, v) in extra.as_object().expect("extra fields") {
        body[k] = v.clone();
    }
    app.transition(who, &id, &body).await
}

async fn history(app: &TestApp, who: &Person, d: &Value) -> Vec<Value> {
    let reply = app
        .fetch(who, &format!("/dossiers/{}/history", id_of(d)))
        .await;
    reply.assert_ok(StatusCode::OK)["events"]
        .as_array()
        .expect("events")
        .clone()
}

// ---- 1. Search that finds ------------------------------------------------------------

/// Épinal, Saint-Dié-des-Vosges, Château-Thierry and Nevers, received in
/// that order in wave 1 (AMI2-V1-0001 to 0004).
async fn four_communes(app: &TestApp, dar: &Person) -> Vec<Value> {
    let towns = [
        (
            "Épinal",
            "88160",
            "Ville d'Épinal",
            "2020-09-01T10:00:00+02:00",
        ),
        (
            "Saint-Dié-des-Vosges",
            "88413",
            "Ville de Saint-Dié-des-Vosges",
            "2020-09-02T10:00:00+02:00",
        ),
        (
            "Château-Thierry",
            "02168",
            "Ville de Château-Thierry",
            "2020-09-03T10:00:00+02:00",
        ),
        (
            "Nevers",
            "58194",
            "Ville de Nevers",
            "2020-09-04T10:00:00+02:00",
        ),
    ];
    let mut deposited = Vec::new();
    for (commune, insee, porteur, at) in towns {
        let body = deposit_of(commune, insee, porteur, at, &["acv"]);
        deposited.push(app.deposit_body(dar, &body).await);
    }
    deposited
}

async fn search_ignores_accents_case_hyphens_and_spaces(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let ds = four_communes(&app, &dar).await;
    let [epinal, saint_die, chateau, _nevers] = [&ds[0], &ds[1], &ds[2], &ds[3]].map(id_of);
    let cases = [
        ("epinal", &epinal),
        ("EPINAL", &epinal),
        ("Épinal", &epinal),
        ("d'épinal", &epinal),
        ("saint-die", &saint_die),
        ("saint die", &saint_die),
        ("SAINT-DIÉ", &saint_die),
        ("die des vosges", &saint_die),
        ("chateau", &chateau),
        ("Chateau Thierry", &chateau),
    ];

    for (q, expected) in cases {
        // Act
        let reply = app
            .fetch(&dar, &format!("/dossiers?q={}", encoded(q)))
            .await;

        // Assert
        assert_eq!(
            ids(reply.assert_ok(StatusCode::OK)),
            [expected.as_str()],
            "q={q}: {}",
            reply.text
        );
    }
    // A space sent as « + » (form encoding) is a space too.
    let plus = app.fetch(&dar, "/dossiers?q=saint+die").await;
    assert_eq!(ids(plus.assert_ok(StatusCode::OK)), [saint_die.as_str()]);
    app.stop().await;
}

async fn search_folds_ligatures_and_typographic_apostrophes(backend: Backend) {
    // Arrange: names as a word processor types them.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let coeuvres = app
        .deposit_body(
            &dar,
            &deposit_of(
                "Cœuvres-et-Valsery",
                "02201",
                "Commune de Cœuvres-et-Valsery",
                "2020-09-01T10:00:00+02:00",
                &["acv"],
            ),
        )
        .await;
    let isle_adam = app
        .deposit_body(
            &dar,
            &deposit_of(
                "L\u{2019}Isle-Adam",
                "95313",
                "Ville de L\u{2019}Isle-Adam",
                "2020-09-02T10:00:00+02:00",
                &["ti"],
            ),
        )
        .await;
    let cases = [
        ("coeuvres", id_of(&coeuvres)),
        ("CŒUVRES", id_of(&coeuvres)),
        ("cœuvres et valsery", id_of(&coeuvres)),
        ("l'isle-adam", id_of(&isle_adam)),
        ("L\u{2019}Isle", id_of(&isle_adam)),
        ("isle adam", id_of(&isle_adam)),
    ];

    for (q, expected) in cases {
        // Act
        let reply = app
            .fetch(&dar, &format!("/dossiers?q={}", encoded(q)))
            .await;

        // Assert
        assert_eq!(
            ids(reply.assert_ok(StatusCode::OK)),
            [expected.as_str()],
            "q={q}: {}",
            reply.text
        );
    }
    app.stop().await;
}

async fn search_finds_a_dossier_by_its_insee_code_or_part_of_its_reference(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let ds = four_communes(&app, &dar).await;
    let all: Vec<String> = ds.iter().map(id_of).collect();
    assert_eq!(ds[1]["reference"], "AMI2-V1-0002");

    // Act
    let by_insee = app.fetch(&dar, "/dossiers?q=58194").await;
    let by_insee_with_leading_zero = app.fetch(&dar, "/dossiers?q=02168").await;
    let by_reference_part = app.fetch(&dar, "/dossiers?q=V1-0002").await;
    let by_reference_lower = app.fetch(&dar, "/dossiers?q=v1-0002").await;
    let by_reference_prefix = app.fetch(&dar, "/dossiers?q=AMI2-V1-000").await;

    // Assert
    assert_eq!(ids(by_insee.assert_ok(StatusCode::OK)), [all[3].as_str()]);
    assert_eq!(
        ids(by_insee_with_leading_zero.assert_ok(StatusCode::OK)),
        [all[2].as_str()]
    );
    assert_eq!(
        ids(by_reference_part.assert_ok(StatusCode::OK)),
        [all[1].as_str()]
    );
    assert_eq!(
        ids(by_reference_lower.assert_ok(StatusCode::OK)),
        [all[1].as_str()]
    );
    assert_eq!(ids(by_reference_prefix.assert_ok(StatusCode::OK)), all);
    app.stop().await;
}

async fn a_commune_sent_decomposed_is_shown_composed_and_found_by_its_accented_name(
    backend: Backend,
) {
    // Arrange: « É » written as « E » and a combining acute accent, as the
    // JSON escape a client library may send.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let raw = r#"{"commune": "E\u0301pinal", "code_insee": "88160",
        "porteur": {"nom": "Ville d'E\u0301pinal"}, "programmes": ["acv"],
        "received_at": "2020-09-01T10:00:00+02:00",
        "pieces": [{"kind": "dossier_candidature", "filename": "candidature.pdf"}]}"#;
    let created = app
        .send(
            Method::POST,
            "/dossiers",
            Some(&dar),
            &[("content-type", "application/json")],
            Some(raw.as_bytes().to_vec()),
        )
        .await;
    let d = created.assert_ok(StatusCode::CREATED).clone();

    // Act
    let by_accented = app
        .fetch(&dar, &format!("/dossiers?q={}", encoded("Épinal")))
        .await;
    let by_decomposed = app
        .fetch(&dar, &format!("/dossiers?q={}", encoded("E\u{301}pinal")))
        .await;
    let by_plain = app.fetch(&dar, "/dossiers?q=epinal").await;
    let read = app.fetch(&dar, &format!("/dossiers/{}", id_of(&d))).await;
    let events = history(&app, &dar, &d).await;

    // Assert
    let id = id_of(&d);
    assert_eq!(ids(by_accented.assert_ok(StatusCode::OK)), [id.as_str()]);
    assert_eq!(ids(by_decomposed.assert_ok(StatusCode::OK)), [id.as_str()]);
    assert_eq!(ids(by_plain.assert_ok(StatusCode::OK)), [id.as_str()]);
    let shown = read.assert_ok(StatusCode::OK);
    assert_eq!(shown["commune"], "\u{c9}pinal");
    assert_eq!(
        shown["commune"].as_str().map(|c| c.chars().count()),
        Some(6)
    );
    assert_eq!(shown["porteur"]["nom"], "Ville d'\u{c9}pinal");
    assert_eq!(d["commune"], "\u{c9}pinal", "the 201 answer too");
    assert_eq!(events[0]["content"]["payload"]["commune"], "\u{c9}pinal");
    app.stop().await;
}

async fn wildcards_find_nothing_and_a_blank_search_lists_everything(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let ds = four_communes(&app, &dar).await;
    let all: Vec<String> = ds.iter().map(id_of).collect();

    // Act
    let percent = app.fetch(&dar, "/dossiers?q=%25").await;
    let underscore = app.fetch(&dar, "/dossiers?q=_").await;
    let percents = app.fetch(&dar, "/dossiers?q=%25%25%25").await;
    let spaces = app.fetch(&dar, "/dossiers?q=%20%20%20").await;
    let empty = app.fetch(&dar, "/dossiers?q=").await;

    // Assert
    assert!(ids(percent.assert_ok(StatusCode::OK)).is_empty());
    assert!(ids(underscore.assert_ok(StatusCode::OK)).is_empty());
    assert!(ids(percents.assert_ok(StatusCode::OK)).is_empty());
    assert_eq!(ids(spaces.assert_ok(StatusCode::OK)), all);
    assert_eq!(ids(empty.assert_ok(StatusCode::OK)), all);
    app.stop().await;
}

// ---- 2. Invisible and bidirectional characters ----------------------------------------

const HIDDEN: [char; 5] = ['\u{200B}', '\u{202E}', '\u{2066}', '\u{FEFF}', '\u{00AD}'];

async fn hidden_characters_in_a_commune_or_porteur_name_are_refused_naming_the_field(
    backend: Backend,
) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    for c in HIDDEN {
        let mut in_commune = new_dossier("Nevers", &["acv"]);
        in_commune["commune"] = json!(format!("Nev{c}ers"));
        let mut in_porteur = new_dossier("Nevers", &["acv"]);
        in_porteur["porteur"]["nom"] = json!(format!("Ville de Nev{c}ers"));
        let mut at_the_start = new_dossier("Nevers", &["acv"]);
        at_the_start["commune"] = json!(format!("{c}Nevers"));

        // Act
        let commune = app
            .send_json(Method::POST, "/dossiers", &dar, &in_commune, None)
            .await;
        let porteur = app
            .send_json(Method::POST, "/dossiers", &dar, &in_porteur, None)
            .await;
        let start = app
            .send_json(Method::POST, "/dossiers", &dar, &at_the_start, None)
            .await;

        // Assert
        let shown = format!("U+{:04X}", u32::from(c));
        assert_eq!(commune.status, StatusCode::UNPROCESSABLE_ENTITY, "{shown}");
        commune.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "commune");
        porteur.assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "porteur.nom",
        );
        start.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "commune");
        assert_eq!(app.event_count().await, 0, "{shown}: nothing written");
    }
    // Every one-line field of a deposit is checked alike.
    let mut in_email = new_dossier("Nevers", &["acv"]);
    in_email["porteur"]["email"] = json!("contact\u{200B}@example.fr");
    let mut in_filename = new_dossier("Nevers", &["acv"]);
    in_filename["pieces"][1]["filename"] = json!("budget\u{202E}xslx.exe");
    app.send_json(Method::POST, "/dossiers", &dar, &in_email, None)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "porteur.email",
        );
    app.send_json(Method::POST, "/dossiers", &dar, &in_filename, None)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "pieces[1].filename",
        );
    assert_eq!(app.event_count().await, 0);
    // The same deposit without the hidden character goes through.
    app.deposit_body(&dar, &new_dossier("Nevers", &["acv"]))
        .await;
    assert_eq!(app.event_count().await, 1);
    let list = app.fetch(&dar, "/dossiers").await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

async fn hidden_characters_in_a_motivation_are_refused_and_nothing_is_written(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let id = id_of(&d);

    for c in HIDDEN {
        // Act
        let instruire = app
            .transition(
                &t.dar,
                &id,
                &json!({"action": "instruire", "expected_version": 1, "verdict": "reserve",
                        "motivation": format!("Budget {c}à préciser")}),
            )
            .await;
        let complement = app
            .transition(
                &t.dar,
                &id,
                &json!({"action": "demander_complement", "expected_version": 1,
                        "pieces": ["budget_previsionnel"], "due_on": "2099-01-15",
                        "motivation": format!("Budget illisible{c}")}),
            )
            .await;
        let classer = app
            .transition(
                &t.boss,
                &id,
                &json!({"action": "classer_sans_suite", "expected_version": 1,
                        "motivation": format!("{c}Retrait de la commune")}),
            )
            .await;

        // Assert
        for reply in [&instruire, &complement, &classer] {
            reply.assert_field_problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "motivation",
            );
        }
        assert_eq!(app.event_count().await, 1, "U+{:04X}", u32::from(c));
    }
    // A comment, and a pièce's comment, too.
    app.transition(
        &t.dar,
        &id,
        &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable",
                "comment": "Vu\u{2066} en comité"}),
    )
    .await
    .assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "comment");
    let hidden_comment = "Reçu\u{FEFF} par courriel";
    app.upload_to(
        &t.dar,
        &format!(
            "/dossiers/{id}/pieces/budget_previsionnel?comment={}",
            encoded(hidden_comment)
        ),
        "budget.xlsx",
        sample_xlsx(),
        &[],
    )
    .await
    .assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "comment");
    app.upload_form(
        &t.dar,
        &id,
        "budget_previsionnel",
        "budget.xlsx",
        sample_xlsx(),
        &[("comment", hidden_comment)],
    )
    .await
    .assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "comment");
    assert_eq!(app.event_count().await, 1);
    let unchanged = app.fetch(&t.dar, &format!("/dossiers/{id}")).await;
    assert_eq!(unchanged.body["version"], 1);
    assert_eq!(unchanged.body["state"], "recu");
    // Line breaks are not hidden characters: a motivation may hold them.
    let instruit = app
        .must_act(
            &t.dar,
            &d,
            "instruire",
            json!({"verdict": "reserve", "motivation": "Budget à préciser.\nVoir page 3."}),
        )
        .await;
    assert_eq!(
        instruit["avis"]["dar"]["motivation"],
        "Budget à préciser.\nVoir page 3."
    );
    app.stop().await;
}

// ---- 3. Multi-value filters -----------------------------------------------------------

/// Five dossiers, in reception order:
/// 0 Nevers   (acv, wave 1) lauréat
/// 1 Vierzon  (ti,  wave 1) instruit, awaiting TI
/// 2 Bourges  (ti,  wave 2) refusé
/// 3 Autun    (acv, wave 2) reçu, awaiting DAR
/// 4 Dole     (acv+ti, wave 3) instruit, awaiting ACV
async fn five_dossiers(app: &TestApp, t: &Team) -> Vec<String> {
    let deposit = |commune: &str, at: &str, programmes: &[&str]| {
        let mut body = new_dossier(commune, programmes);
        body["received_at"] = json!(at);
        body
    };
    let nevers = app
        .deposit_body(
            &t.dar,
            &deposit("Nevers", "2020-09-01T10:00:00+02:00", &["acv"]),
        )
        .await;
    let vierzon = app
        .deposit_body(
            &t.dar,
            &deposit("Vierzon", "2020-10-01T10:00:00+02:00", &["ti"]),
        )
        .await;
    let bourges = app
        .deposit_body(
            &t.dar,
            &deposit("Bourges", "2021-01-10T10:00:00+01:00", &["ti"]),
        )
        .await;
    let autun = app
        .deposit_body(
            &t.dar,
            &deposit("Autun", "2021-01-20T10:00:00+01:00", &["acv"]),
        )
        .await;
    let dole = app
        .deposit_body(
            &t.dar,
            &deposit("Dole", "2021-05-15T10:00:00+02:00", &["acv", "ti"]),
        )
        .await;
    let favorable = || json!({"verdict": "favorable"});
    app.must_act(&t.dar, &nevers, "instruire", favorable())
        .await;
    app.must_act(&t.acv, &nevers, "avis_acv", favorable()).await;
    app.must_act(&t.boss, &nevers, "declarer_laureat", json!({}))
        .await;
    app.must_act(&t.dar, &vierzon, "instruire", favorable())
        .await;
    app.must_act(&t.dar, &bourges, "instruire", favorable())
        .await;
    app.must_act(
        &t.ti,
        &bourges,
        "avis_ti",
        json!({"verdict": "defavorable", "motivation": "Hors périmètre industriel"}),
    )
    .await;
    app.must_act(
        &t.boss,
        &bourges,
        "refuser",
        json!({"motivation": "Avis défavorable de TI"}),
    )
    .await;
    app.must_act(&t.dar, &dole, "instruire", favorable()).await;
    [nevers, vierzon, bourges, autun, dole]
        .iter()
        .map(id_of)
        .collect()
}

async fn one_call_with_several_values_returns_the_union_in_reception_order(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let ds = five_dossiers(&app, &t).await;
    let pick = |idx: &[usize]| idx.iter().map(|&i| ds[i].clone()).collect::<Vec<_>>();

    // Act
    let cases = [
        ("state=laureat,refuse", pick(&[0, 2])),
        ("state=refuse,laureat", pick(&[0, 2])),
        ("state=laureat,laureat", pick(&[0])),
        ("programme=acv", pick(&[0, 3, 4])),
        ("programme=ti", pick(&[1, 2, 4])),
        ("programme=acv,ti", pick(&[0, 1, 2, 3, 4])),
        ("wave=1,3", pick(&[0, 1, 4])),
        ("wave=3,1", pick(&[0, 1, 4])),
        ("awaiting=acv,ti", pick(&[1, 4])),
        ("awaiting=acv,ti,dar", pick(&[1, 3, 4])),
        ("state=instruit,recu&wave=1,2", pick(&[1, 3])),
        ("state=laureat,refuse&programme=ti", pick(&[2])),
        ("state=laureat,refuse,instruit&q=ville%20de%20n", pick(&[0])),
        ("awaiting=acv,ti&q=dole", pick(&[4])),
    ];
    for (query, expected) in cases {
        let reply = app.fetch(&t.dar, &format!("/dossiers?{query}")).await;

        // Assert
        assert_eq!(
            ids(reply.assert_ok(StatusCode::OK)),
            expected,
            "{query}: {}",
            reply.text
        );
    }
    // ACV and TI get the same union, of the dossiers of their programme.
    for (who, query, expected) in [
        (&t.acv, "programme=acv,ti", pick(&[0, 3, 4])),
        (&t.acv, "awaiting=acv,ti", pick(&[4])),
        (&t.ti, "programme=acv,ti", pick(&[1, 2, 4])),
        (&t.ti, "state=laureat,refuse", pick(&[2])),
    ] {
        let reply = app.fetch(who, &format!("/dossiers?{query}")).await;
        assert_eq!(
            ids(reply.assert_ok(StatusCode::OK)),
            expected,
            "{query} for {}: {}",
            who.name,
            reply.text
        );
    }
    // Paging a multi-value filter visits each match once.
    let first = app.fetch(&t.dar, "/dossiers?wave=1,3&limit=2").await;
    assert_eq!(ids(first.assert_ok(StatusCode::OK)), pick(&[0, 1]));
    let cursor = first.body["next_cursor"].as_str().expect("a second page");
    let second = app
        .fetch(
            &t.dar,
            &format!("/dossiers?wave=1,3&limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(ids(second.assert_ok(StatusCode::OK)), pick(&[4]));
    assert!(second.body["next_cursor"].is_null());
    app.stop().await;
}

async fn an_unknown_or_empty_value_in_a_filter_list_is_400_naming_the_parameter(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    app.deposit(&dar, &["acv"]).await;
    let cases = [
        ("state=laureat,", "state"),
        ("state=,laureat", "state"),
        ("state=laureat,,refuse", "state"),
        ("state=laureat,archive", "state"),
        ("wave=1,9", "wave"),
        ("wave=1,", "wave"),
        ("wave=1,deux", "wave"),
        ("programme=acv,pvd", "programme"),
        ("programme=acv,", "programme"),
        ("awaiting=acv,cnam", "awaiting"),
        ("awaiting=acv,ti,", "awaiting"),
    ];

    for (query, field) in cases {
        // Act
        let reply = app.fetch(&dar, &format!("/dossiers?{query}")).await;

        // Assert
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        reply.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", field);
    }
    app.stop().await;
}

// ---- 4. Duplicates --------------------------------------------------------------------

async fn a_second_deposit_of_a_commune_is_refused_as_a_doublon_naming_the_existing_reference(
    backend: Backend,
) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let first = app
        .deposit_body(
            &dar,
            &deposit_of(
                "Nevers",
                "58194",
                "Ville de Nevers",
                "2020-09-01T10:00:00+02:00",
                &["acv"],
            ),
        )
        .await;
    assert_eq!(first["reference"], "AMI2-V1-0001");
    // Another spelling, another porteur, another wave: the INSEE code decides.
    let again = deposit_of(
        "NEVERS",
        "58194",
        "Nevers Agglomération",
        "2021-01-15T10:00:00+01:00",
        &["ti"],
    );

    // Act
    let reply = app
        .send_json(Method::POST, "/dossiers", &dar, &again, None)
        .await;

    // Assert
    let problem =
        reply.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "doublon", "code_insee");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("AMI2-V1-0001"), "{detail}");
    assert!(detail.contains("doublon_confirme"), "{detail}");
    assert_eq!(app.event_count().await, 1);
    let list = app.fetch(&dar, "/dossiers").await;
    assert_eq!(ids(list.assert_ok(StatusCode::OK)), [id_of(&first)]);
    app.stop().await;
}

async fn a_confirmed_doublon_is_deposited_and_its_history_names_the_existing_reference(
    backend: Backend,
) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let body = deposit_of(
        "Nevers",
        "58194",
        "Ville de Nevers",
        "2020-09-01T10:00:00+02:00",
        &["acv"],
    );
    let first = app.deposit_body(&dar, &body).await;
    let mut second_project = body.clone();
    second_project["received_at"] = json!("2020-10-01T10:00:00+02:00");
    second_project["doublon_confirme"] = json!(true);

    // Act
    let reply = app
        .send_json(Method::POST, "/dossiers", &dar, &second_project, None)
        .await;

    // Assert
    let second = reply.assert_ok(StatusCode::CREATED).clone();
    assert_eq!(second["reference"], "AMI2-V1-0002");
    assert_eq!(second["code_insee"], "58194");
    let events = history(&app, &dar, &second).await;
    assert_eq!(
        events[0]["content"]["payload"]["doublon_de"],
        json!(["AMI2-V1-0001"])
    );
    let first_events = history(&app, &dar, &first).await;
    assert!(
        first_events[0]["content"]["payload"]
            .get("doublon_de")
            .is_none(),
        "the first dossier is no doublon: {}",
        first_events[0]
    );
    // A third one, unconfirmed, is told about both.
    let mut third = body.clone();
    third["received_at"] = json!("2021-05-15T10:00:00+02:00");
    let refused = app
        .send_json(Method::POST, "/dossiers", &dar, &third, None)
        .await;
    let detail =
        refused.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "doublon", "code_insee")
            ["detail"]
            .as_str()
            .expect("detail")
            .to_string();
    assert!(
        detail.contains("AMI2-V1-0001") && detail.contains("AMI2-V1-0002"),
        "{detail}"
    );
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

// ---- 5. References numbered per wave ---------------------------------------------------

async fn each_wave_numbers_its_dossiers_from_0001_whatever_the_order_of_deposit(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    // Act: the wave 3 dossier is keyed in first.
    let w3 = app
        .deposit_body(&dar, &new_dossier_in_wave("Autun", &["acv"], 3))
        .await;
    let w1 = app
        .deposit_body(&dar, &new_dossier_in_wave("Nevers", &["acv"], 1))
        .await;
    let w2 = app
        .deposit_body(&dar, &new_dossier_in_wave("Vierzon", &["ti"], 2))
        .await;
    let w1_again = app
        .deposit_body(&dar, &new_dossier_in_wave("Bourges", &["acv"], 1))
        .await;
    let w3_again = app
        .deposit_body(&dar, &new_dossier_in_wave("Dole", &["ti"], 3))
        .await;

    // Assert
    assert_eq!(w1["reference"], "AMI2-V1-0001");
    assert_eq!(w2["reference"], "AMI2-V2-0001");
    assert_eq!(w3["reference"], "AMI2-V3-0001");
    assert_eq!(w1_again["reference"], "AMI2-V1-0002");
    assert_eq!(w3_again["reference"], "AMI2-V3-0002");
    assert_eq!(
        (w1["wave"].as_u64(), w3["wave"].as_u64()),
        (Some(1), Some(3))
    );
    app.stop().await;
}

async fn a_wave_ends_at_midnight_in_paris_on_its_closing_day(backend: Backend) {
    // Arrange: the last second of each closing day and the first of the next.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let at = |received_at: &str| {
        let mut body = new_dossier("Nevers", &["acv"]);
        body["received_at"] = json!(received_at);
        body
    };

    // Act
    let last_of_wave_1 = app
        .deposit_body(&dar, &at("2020-11-06T23:59:59+01:00"))
        .await;
    let first_of_wave_2 = app.deposit_body(&dar, &at("2020-11-06T23:00:00Z")).await;
    let last_of_wave_3 = app.deposit_body(&dar, &at("2021-06-25T21:59:59Z")).await;
    let too_late = app
        .send_json(
            Method::POST,
            "/dossiers",
            &dar,
            &at("2021-06-26T00:00:00+02:00"),
            None,
        )
        .await;

    // Assert
    assert_eq!(last_of_wave_1["reference"], "AMI2-V1-0001");
    assert_eq!(first_of_wave_2["reference"], "AMI2-V2-0001");
    assert_eq!(last_of_wave_3["reference"], "AMI2-V3-0001");
    let detail =
        too_late.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "closed", "received_at")
            ["detail"]
            .as_str()
            .expect("detail")
            .to_string();
    assert!(
        detail.contains("26 juin 2021 à 00 h 00 min 00 s"),
        "{detail}"
    );
    app.stop().await;
}

async fn a_refused_deposit_takes_no_number(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let bourges = deposit_of(
        "Bourges",
        "18033",
        "Ville de Bourges",
        "2021-01-15T10:00:00+01:00",
        &["acv"],
    );
    let first = app.deposit_body(&dar, &bourges).await;
    assert_eq!(first["reference"], "AMI2-V2-0001");
    let mut doublon = bourges.clone();
    doublon["received_at"] = json!("2021-01-20T10:00:00+01:00");
    let mut future = new_dossier_in_wave("Vierzon", &["ti"], 2);
    future["received_at"] = json!("2999-01-15T10:00:00+01:00");
    let unknown_programme = new_dossier_in_wave("Autun", &["pvd"], 2);
    let by_acv = new_dossier_in_wave("Dole", &["acv"], 2);

    // Act
    let refusals = [
        app.send_json(Method::POST, "/dossiers", &dar, &doublon, None)
            .await,
        app.send_json(Method::POST, "/dossiers", &dar, &future, None)
            .await,
        app.send_json(Method::POST, "/dossiers", &dar, &unknown_programme, None)
            .await,
        app.send_json(Method::POST, "/dossiers", &acv, &by_acv, None)
            .await,
    ];
    let next = app
        .deposit_body(&dar, &new_dossier_in_wave("Vierzon", &["ti"], 2))
        .await;

    // Assert
    refusals[0].assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "doublon");
    refusals[1].assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "received_in_future");
    refusals[2].assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_programme");
    refusals[3].assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    assert_eq!(next["reference"], "AMI2-V2-0002", "no gap: {next}");
    let wave2 = app.fetch(&dar, "/dossiers?wave=2").await;
    assert_eq!(
        references(wave2.assert_ok(StatusCode::OK)),
        ["AMI2-V2-0001", "AMI2-V2-0002"]
    );
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

/// Sends the deposits all at once, each on its own task; the replies in
/// the order of `bodies`.
async fn deposit_all_at_once(app: &TestApp, dar: &Person, bodies: Vec<Value>) -> Vec<Reply> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let client = app.client.clone();
            let url = app.url("/dossiers");
            let token = dar.token.clone();
            tokio::spawn(async move {
                let res = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .expect("request");
                let status = res.status();
                let content_type = res
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let text = res.text().await.unwrap_or_default();
                Reply {
                    status,
                    content_type,
                    location: None,
                    body: serde_json::from_str(&text).unwrap_or(Value::Null),
                    text,
                }
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("deposit task"));
    }
    replies
}

async fn deposits_of_one_commune_sent_at_once_make_one_dossier_and_doublons(backend: Backend) {
    // Arrange: the same deposit keyed in on six screens at once.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let body = deposit_of(
        "Nevers",
        "58194",
        "Ville de Nevers",
        "2020-09-01T10:00:00+02:00",
        &["acv"],
    );

    // Act
    let replies = deposit_all_at_once(&app, &dar, vec![body; 6]).await;

    // Assert
    let created: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "{replies:?}");
    assert_eq!(created[0].body["reference"], "AMI2-V1-0001");
    for r in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        let problem =
            r.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "doublon", "code_insee");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains("AMI2-V1-0001"), "{detail}");
    }
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

async fn deposits_of_one_wave_sent_at_once_are_numbered_without_gap_or_repeat(backend: Backend) {
    // Arrange: ten communes of wave 2, and two refused ones among them.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut bodies: Vec<Value> = (0..10)
        .map(|i| new_dossier_in_wave(&format!("Commune {i}"), &["ti"], 2))
        .collect();
    bodies.insert(3, new_dossier_in_wave("Refusée", &["pvd"], 2));
    bodies.insert(7, new_dossier_in_wave("Refusée aussi", &[], 2));

    // Act
    let replies = deposit_all_at_once(&app, &dar, bodies).await;

    // Assert
    let mut numbers: Vec<String> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .map(|r| r.body["reference"].as_str().expect("reference").to_string())
        .collect();
    numbers.sort();
    let expected: Vec<String> = (1..=10).map(|n| format!("AMI2-V2-{n:04}")).collect();
    assert_eq!(numbers, expected, "{replies:?}");
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.status == StatusCode::UNPROCESSABLE_ENTITY)
            .count(),
        2
    );
    assert_eq!(app.event_count().await, 10);
    app.stop().await;
}

// ---- 6. Demande de complément ----------------------------------------------------------

fn complement_request(version: u64) -> Value {
    json!({"action": "demander_complement", "expected_version": version,
           "pieces": ["budget_previsionnel"], "due_on": "2099-01-15",
           "motivation": "Budget illisible"})
}

async fn a_demande_de_complement_waits_on_the_porteur_until_the_piece_arrives(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let id = id_of(&d);

    // Act
    let reply = app.transition(&t.dar, &id, &complement_request(1)).await;
    let waiting_on_porteur = app.fetch(&t.acv, "/dossiers?awaiting=porteur").await;
    let waiting_on_dar = app.fetch(&t.acv, "/dossiers?awaiting=dar").await;
    let stats = app.fetch(&t.acv, "/stats").await;
    let piece = app
        .upload(
            &t.dar,
            &id,
            "budget_previsionnel",
            "budget-v2.xlsx",
            sample_xlsx(),
            &[],
        )
        .await;
    let waiting_after = app.fetch(&t.acv, "/dossiers?awaiting=porteur").await;
    let stats_after = app.fetch(&t.acv, "/stats").await;

    // Assert: the request is open…
    let asked = reply.assert_ok(StatusCode::OK);
    assert_eq!(asked["state"], "recu");
    assert_eq!(asked["version"], 2);
    assert_eq!(asked["awaiting"], json!(["porteur"]));
    assert_eq!(asked["complement_demande"], true);
    assert_eq!(
        asked["complement"]["pieces"],
        json!(["budget_previsionnel"])
    );
    assert_eq!(asked["complement"]["due_on"], "2099-01-15");
    assert_eq!(asked["complement"]["motivation"], "Budget illisible");
    assert_eq!(
        asked["complement"]["requested_by"]["name"],
        "Camille Martin"
    );
    assert_eq!(
        ids(waiting_on_porteur.assert_ok(StatusCode::OK)),
        [id.as_str()]
    );
    assert!(ids(waiting_on_dar.assert_ok(StatusCode::OK)).is_empty());
    let stats = stats.assert_ok(StatusCode::OK);
    assert_eq!(stats["awaiting"]["porteur"], 1);
    assert_eq!(stats["awaiting"]["dar"], 0);
    assert_eq!(stats["complement_demande"], 1);
    // …and the pièce closes it.
    let closed = piece.assert_ok(StatusCode::OK);
    assert_eq!(closed["state"], "recu");
    assert_eq!(closed["version"], 3);
    assert!(closed["complement"].is_null(), "{closed}");
    assert_eq!(closed["complement_demande"], false);
    assert_eq!(closed["awaiting"], json!(["dar"]));
    let budget = closed["pieces"]
        .as_array()
        .expect("pieces")
        .iter()
        .find(|p| p["kind"] == "budget_previsionnel")
        .expect("budget");
    assert_eq!(budget["filename"], "budget-v2.xlsx");
    assert_eq!(budget["received"], true);
    assert_eq!(
        budget["versions"].as_array().map(Vec::len),
        Some(2),
        "{budget}"
    );
    assert!(ids(waiting_after.assert_ok(StatusCode::OK)).is_empty());
    let stats_after = stats_after.assert_ok(StatusCode::OK);
    assert_eq!(stats_after["awaiting"]["porteur"], 0);
    assert_eq!(stats_after["awaiting"]["dar"], 1);
    assert_eq!(stats_after["complement_demande"], 0);
    let events = history(&app, &t.dar, &d).await;
    assert_eq!(events[1]["action"], "demander_complement");
    assert_eq!(
        (events[1]["from"].as_str(), events[1]["to"].as_str()),
        (Some("recu"), Some("recu"))
    );
    assert_eq!(events[1]["motivation"], "Budget illisible");
    assert_eq!(events[2]["action"], "ajouter_piece");
    app.stop().await;
}

async fn a_corrected_budget_after_instruction_keeps_the_state_and_acv_sees_it(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let id = id_of(&d);
    let instruit = app
        .must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    assert_eq!(instruit["version"], 2);

    // Act
    let asked = app.transition(&t.dar, &id, &complement_request(2)).await;
    let for_acv_while_waiting = app.fetch(&t.acv, "/dossiers?awaiting=acv").await;
    let stats = app.fetch(&t.acv, "/stats").await;
    let corrected = sample_xlsx();
    let piece = app
        .upload(
            &t.dar,
            &id,
            "budget_previsionnel",
            "budget-v2.xlsx",
            corrected.clone(),
            &[("if-match", "\"3\"")],
        )
        .await;
    let seen_by_acv = app.fetch(&t.acv, &format!("/dossiers/{id}")).await;
    let for_acv_after = app.fetch(&t.acv, "/dossiers?awaiting=acv").await;

    // Assert
    let asked = asked.assert_ok(StatusCode::OK);
    assert_eq!(asked["state"], "instruit");
    assert_eq!(asked["version"], 3);
    assert_eq!(asked["awaiting"], json!(["porteur"]));
    assert_eq!(
        asked["complement"]["pieces"],
        json!(["budget_previsionnel"])
    );
    assert!(ids(for_acv_while_waiting.assert_ok(StatusCode::OK)).is_empty());
    assert_eq!(
        stats.assert_ok(StatusCode::OK)["awaiting"],
        json!({"acv": 0, "dar": 0, "ti": 0, "porteur": 1})
    );
    assert_eq!(stats.body["waves"][0]["states"], json!({"instruit": 1}));
    let after = piece.assert_ok(StatusCode::OK);
    assert_eq!(after["state"], "instruit");
    assert_eq!(after["version"], 4);
    assert!(after["complement"].is_null());
    assert_eq!(after["awaiting"], json!(["acv"]));
    let seen = seen_by_acv.assert_ok(StatusCode::OK);
    let budget = seen["pieces"]
        .as_array()
        .expect("pieces")
        .iter()
        .find(|p| p["kind"] == "budget_previsionnel")
        .expect("budget");
    assert_eq!(budget["filename"], "budget-v2.xlsx");
    assert_eq!(budget["sha256"], sha256_hex(&corrected));
    let versions = budget["versions"].as_array().expect("versions");
    assert_eq!(
        versions
            .iter()
            .map(|v| v["filename"].clone())
            .collect::<Vec<_>>(),
        [json!("budget.xlsx"), json!("budget-v2.xlsx")],
        "the budget of the deposit, then the corrected one"
    );
    let download = app
        .client
        .get(format!(
            "http://{}{}",
            app.addr,
            budget["url"].as_str().expect("url")
        ))
        .bearer_auth(&t.acv.token)
        .send()
        .await
        .expect("download");
    assert_eq!(
        download.status(),
        StatusCode::OK,
        "ACV downloads the corrected budget"
    );
    assert_eq!(download.bytes().await.expect("file").to_vec(), corrected);
    assert_eq!(seen["state"], "instruit");
    assert_eq!(seen["actions"], json!(["avis_acv"]));
    assert_eq!(ids(for_acv_after.assert_ok(StatusCode::OK)), [id.as_str()]);
    let avis = app
        .must_act(&t.acv, &d, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    assert_eq!(avis["state"], "avis_acv");
    app.stop().await;
}

async fn a_demande_of_two_pieces_stays_open_until_both_arrive(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let id = id_of(&d);
    let piece_path = |kind: &str| format!("/dossiers/{id}/pieces/{kind}");

    // Act
    let asked = app
        .transition(
            &t.dar,
            &id,
            &json!({"action": "demander_complement", "expected_version": 1,
                    "pieces": ["budget_previsionnel", "dossier_candidature", "budget_previsionnel"],
                    "due_on": "2099-01-15", "motivation": "Pièces illisibles"}),
        )
        .await;
    let after_budget = app
        .upload(
            &t.dar,
            &id,
            "budget_previsionnel",
            "budget-v2.xlsx",
            sample_xlsx(),
            &[],
        )
        .await;
    let after_both = app
        .upload_to(
            &t.dar,
            &piece_path("dossier_candidature"),
            "candidature-v2.pdf",
            sample_pdf(),
            &[],
        )
        .await;

    // Assert
    assert_eq!(
        asked.assert_ok(StatusCode::OK)["complement"]["pieces"],
        json!(["budget_previsionnel", "dossier_candidature"]),
        "each pièce asked once, in order"
    );
    let half = after_budget.assert_ok(StatusCode::OK);
    assert_eq!(half["complement"]["pieces"], json!(["dossier_candidature"]));
    assert_eq!(half["awaiting"], json!(["porteur"]));
    assert_eq!(half["complement_demande"], true);
    let done = after_both.assert_ok(StatusCode::OK);
    assert!(done["complement"].is_null(), "{done}");
    assert_eq!(done["awaiting"], json!(["dar"]));
    assert_eq!(done["version"], 4);
    app.stop().await;
}

async fn a_due_date_of_today_in_paris_is_accepted_and_yesterday_is_past(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let today = chrono::Utc::now()
        .with_timezone(&app.definition.campaign().time_zone)
        .date_naive();
    let yesterday = today.pred_opt().expect("yesterday");
    let request = |due_on: chrono::NaiveDate| {
        json!({"action": "demander_complement", "expected_version": 1,
               "pieces": ["budget_previsionnel"], "due_on": due_on.to_string(),
               "motivation": "Budget illisible"})
    };

    // Act
    let past = app.transition(&dar, &id_of(&d), &request(yesterday)).await;
    let due_today = app.transition(&dar, &id_of(&d), &request(today)).await;

    // Assert
    past.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "due_in_past", "due_on");
    let asked = due_today.assert_ok(StatusCode::OK);
    assert_eq!(asked["complement"]["due_on"], today.to_string());
    app.stop().await;
}

async fn a_demande_de_complement_is_refused_when_incomplete_in_the_past_or_from_acv(
    backend: Backend,
) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    // Of both programmes, so that ACV and TI may read it and be refused
    // the action itself.
    let d = app.deposit(&t.dar, &["acv", "ti"]).await;
    let id = id_of(&d);
    let acv_only = app.deposit(&t.dar, &["acv"]).await;
    let before = app.event_count().await;
    let without = |field: &str| {
        let mut body = complement_request(1);
        body.as_object_mut().expect("object").remove(field);
        body
    };
    let with = |field: &str, value: Value| {
        let mut body = complement_request(1);
        body[field] = value;
        body
    };

    // Act
    let no_pieces = app.transition(&t.dar, &id, &without("pieces")).await;
    let no_due_on = app.transition(&t.dar, &id, &without("due_on")).await;
    let no_motivation = app.transition(&t.dar, &id, &without("motivation")).await;
    let blank_motivation = app
        .transition(&t.dar, &id, &with("motivation", json!("   ")))
        .await;
    let empty_pieces = app
        .transition(&t.dar, &id, &with("pieces", json!([])))
        .await;
    let unknown_piece = app
        .transition(&t.dar, &id, &with("pieces", json!(["photo_aerienne"])))
        .await;
    let past = app
        .transition(&t.dar, &id, &with("due_on", json!("2020-01-01")))
        .await;
    let by_acv = app.transition(&t.acv, &id, &complement_request(1)).await;
    let by_ti = app.transition(&t.ti, &id, &complement_request(1)).await;
    let by_ti_not_its_own = app
        .transition(&t.ti, &id_of(&acv_only), &complement_request(1))
        .await;

    // Assert
    no_pieces.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "pieces");
    no_due_on.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "due_on");
    no_motivation.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "motivation_missing",
        "motivation",
    );
    blank_motivation.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "motivation_missing",
        "motivation",
    );
    empty_pieces.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "pieces");
    assert_eq!(
        unknown_piece.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown_piece.text
    );
    assert!(
        unknown_piece.body["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("pieces")),
        "{}",
        unknown_piece.text
    );
    assert!(
        unknown_piece.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("photo_aerienne")),
        "{}",
        unknown_piece.text
    );
    let past = past.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "due_in_past", "due_on");
    assert!(
        past["detail"]
            .as_str()
            .is_some_and(|d| d.contains("1er janvier 2020")),
        "{past}"
    );
    by_acv.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    by_ti.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    // Need to know: TI learns nothing of a dossier of ACV only.
    by_ti_not_its_own.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.event_count().await, before);
    let unchanged = app.fetch(&t.dar, &format!("/dossiers/{id}")).await;
    assert_eq!(unchanged.body["version"], 1);
    assert_eq!(unchanged.body["complement_demande"], false);
    app.stop().await;
}

async fn pieces_or_due_on_sent_with_another_action_are_refused_naming_the_field(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let id = id_of(&d);
    let before = app.event_count().await;

    // Act
    let instruire_with_pieces = app
        .transition(
            &t.dar,
            &id,
            &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable",
                    "pieces": ["budget_previsionnel"]}),
        )
        .await;
    let instruire_with_due_on = app
        .transition(
            &t.dar,
            &id,
            &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable",
                    "due_on": "2099-01-15"}),
        )
        .await;
    let classer_with_pieces = app
        .transition(
            &t.boss,
            &id,
            &json!({"action": "classer_sans_suite", "expected_version": 1,
                    "motivation": "Retrait", "pieces": ["budget_previsionnel"]}),
        )
        .await;

    // Assert
    instruire_with_pieces.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "pieces",
    );
    instruire_with_due_on.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "due_on",
    );
    classer_with_pieces.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "pieces",
    );
    assert_eq!(app.event_count().await, before);
    app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    app.stop().await;
}

// ---- 7. Classer sans suite and rouvrir -------------------------------------------------

async fn only_a_dar_responsable_classes_sans_suite_and_with_a_motivation(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let motivated = || json!({"motivation": "La commune retire sa candidature"});

    // Act
    let by_agent = act_reply(&app, &t.dar, &d, "classer_sans_suite", motivated()).await;
    let by_acv = act_reply(&app, &t.acv, &d, "classer_sans_suite", motivated()).await;
    let unmotivated = act_reply(&app, &t.boss, &d, "classer_sans_suite", json!({})).await;
    let unchanged = app.event_count().await;
    let classed = act_reply(&app, &t.boss, &d, "classer_sans_suite", motivated()).await;
    let as_agent = app.fetch(&t.dar, &format!("/dossiers/{}", id_of(&d))).await;

    // Assert
    by_agent.assert_problem(StatusCode::FORBIDDEN, "role_too_low");
    by_acv.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    unmotivated.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "motivation_missing",
        "motivation",
    );
    assert_eq!(unchanged, 1);
    let classed = classed.assert_ok(StatusCode::OK);
    assert_eq!(classed["state"], "sans_suite");
    assert_eq!(classed["state_label"], "Classé sans suite");
    assert_eq!(classed["awaiting"], json!([]));
    assert_eq!(classed["actions"], json!(["rouvrir"]));
    assert_eq!(as_agent.assert_ok(StatusCode::OK)["actions"], json!([]));
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

/// Asserts that `reopened` shows each person the same actions and awaits
/// the same agencies as `twin`, a dossier that never left that state (of
/// the same programmes: an agency of another programme reads neither).
async fn assert_same_offer(app: &TestApp, t: &Team, reopened: &Value, twin: &Value) {
    assert_eq!(reopened["programmes"], twin["programmes"]);
    for who in [&t.dar, &t.boss, &t.acv, &t.ti] {
        let a = app
            .fetch(who, &format!("/dossiers/{}", id_of(reopened)))
            .await;
        let b = app.fetch(who, &format!("/dossiers/{}", id_of(twin))).await;
        let concerned = who.agency == "dar"
            || reopened["programmes"]
                .as_array()
                .expect("programmes")
                .contains(&json!(who.agency));
        if !concerned {
            a.assert_problem(StatusCode::NOT_FOUND, "not_found");
            b.assert_problem(StatusCode::NOT_FOUND, "not_found");
            continue;
        }
        let (a, b) = (a.assert_ok(StatusCode::OK), b.assert_ok(StatusCode::OK));
        assert_eq!(a["state"], b["state"]);
        assert_eq!(a["actions"], b["actions"], "actions for {}", who.name);
        assert_eq!(a["awaiting"], b["awaiting"]);
    }
}

async fn rouvrir_brings_a_dossier_classed_from_recu_back_to_recu(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;
    let twin = app.deposit(&t.dar, &["acv"]).await;
    app.must_act(
        &t.boss,
        &d,
        "classer_sans_suite",
        json!({"motivation": "La commune retire sa candidature"}),
    )
    .await;

    // Act
    let by_agent = act_reply(&app, &t.dar, &d, "rouvrir", json!({"motivation": "Erreur"})).await;
    let unmotivated = act_reply(&app, &t.boss, &d, "rouvrir", json!({})).await;
    let reopened = act_reply(
        &app,
        &t.boss,
        &d,
        "rouvrir",
        json!({"motivation": "La commune maintient finalement sa candidature"}),
    )
    .await;

    // Assert
    by_agent.assert_problem(StatusCode::FORBIDDEN, "role_too_low");
    unmotivated.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "motivation_missing",
        "motivation",
    );
    let reopened = reopened.assert_ok(StatusCode::OK).clone();
    assert_eq!(reopened["state"], "recu");
    assert_eq!(reopened["state_label"], "Reçu");
    assert_eq!(reopened["version"], 3);
    assert_eq!(reopened["awaiting"], json!(["dar"]));
    let as_agent = app.fetch(&t.dar, &format!("/dossiers/{}", id_of(&d))).await;
    assert_eq!(
        as_agent.assert_ok(StatusCode::OK)["actions"],
        json!(["ajouter_piece", "demander_complement", "instruire"])
    );
    assert_same_offer(&app, &t, &d, &twin).await;
    let events = history(&app, &t.dar, &d).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["action"], "classer_sans_suite");
    assert_eq!(
        (events[1]["from"].as_str(), events[1]["to"].as_str()),
        (Some("recu"), Some("sans_suite"))
    );
    assert_eq!(events[2]["action"], "rouvrir");
    assert_eq!(
        (events[2]["from"].as_str(), events[2]["to"].as_str()),
        (Some("sans_suite"), Some("recu"))
    );
    assert_eq!(
        events[2]["motivation"],
        "La commune maintient finalement sa candidature"
    );
    // The workflow goes on from there.
    let instruit = app
        .must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    assert_eq!(instruit["state"], "instruit");
    app.stop().await;
}

async fn rouvrir_brings_a_dossier_classed_from_avis_acv_back_to_avis_acv(backend: Backend) {
    // Arrange: two dossiers of both programmes with the ACV avis given.
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let mut both = Vec::new();
    for _ in 0..2 {
        let d = app.deposit(&t.dar, &["acv", "ti"]).await;
        app.must_act(&t.dar, &d, "instruire", json!({"verdict": "favorable"}))
            .await;
        app.must_act(
            &t.acv,
            &d,
            "avis_acv",
            json!({"verdict": "reserve", "motivation": "Calendrier serré"}),
        )
        .await;
        both.push(d);
    }
    let (d, twin) = (&both[0], &both[1]);
    app.must_act(
        &t.boss,
        d,
        "classer_sans_suite",
        json!({"motivation": "La commune retire sa candidature"}),
    )
    .await;

    let for_ti_while_classed = app.fetch(&t.ti, "/dossiers?awaiting=ti").await;
    assert_eq!(
        ids(for_ti_while_classed.assert_ok(StatusCode::OK)),
        [id_of(twin)]
    );

    // Act
    let reopened = act_reply(
        &app,
        &t.boss,
        d,
        "rouvrir",
        json!({"motivation": "Retrait annulé par délibération"}),
    )
    .await;

    // Assert
    let reopened = reopened.assert_ok(StatusCode::OK).clone();
    assert_eq!(reopened["state"], "avis_acv");
    assert_eq!(reopened["awaiting"], json!(["ti"]));
    assert_eq!(reopened["avis"]["acv"]["verdict"], "reserve");
    assert_same_offer(&app, &t, d, twin).await;
    let as_ti = app.fetch(&t.ti, &format!("/dossiers/{}", id_of(d))).await;
    assert_eq!(
        as_ti.assert_ok(StatusCode::OK)["actions"],
        json!(["avis_ti"])
    );
    let for_ti = app.fetch(&t.ti, "/dossiers?awaiting=ti").await;
    assert_eq!(
        ids(for_ti.assert_ok(StatusCode::OK)),
        [id_of(d), id_of(twin)]
    );
    let stats = app.fetch(&t.ti, "/stats").await;
    assert_eq!(stats.assert_ok(StatusCode::OK)["awaiting"]["ti"], 2);
    assert_eq!(stats.body["waves"][0]["states"], json!({"avis_acv": 2}));
    let events = history(&app, &t.dar, d).await;
    let last_two: Vec<(Option<&str>, Option<&str>, Option<&str>)> = events[events.len() - 2..]
        .iter()
        .map(|e| (e["action"].as_str(), e["from"].as_str(), e["to"].as_str()))
        .collect();
    assert_eq!(
        last_two,
        [
            (
                Some("classer_sans_suite"),
                Some("avis_acv"),
                Some("sans_suite")
            ),
            (Some("rouvrir"), Some("sans_suite"), Some("avis_acv")),
        ]
    );
    // The workflow goes on from there, to lauréat.
    app.must_act(&t.ti, d, "avis_ti", json!({"verdict": "favorable"}))
        .await;
    let laureat = app
        .must_act(&t.boss, d, "declarer_laureat", json!({}))
        .await;
    assert_eq!(laureat["state"], "laureat");
    app.stop().await;
}

// ---- 8. Identity of a person: their e-mail ---------------------------------------------

/// A dossier instructed by `instructor` with the ACV avis given: ready for
/// the lauréat declaration.
async fn ready_for_laureat(app: &TestApp, instructor: &Person, acv: &Person) -> Value {
    let d = app.deposit(instructor, &["acv"]).await;
    app.must_act(instructor, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    app.must_act(acv, &d, "avis_acv", json!({"verdict": "favorable"}))
        .await
}

async fn two_tokens_of_one_email_are_one_person_for_the_four_eyes_rule(backend: Backend) {
    // Arrange: one person, shown under two names, with an agent token and a
    // responsable token.
    let app = TestApp::spawn(backend).await;
    let agent = app
        .person_with_email(
            "Camille Martin",
            "camille.martin@lecnam.net",
            "dar",
            "agent",
        )
        .await;
    let same_as_responsable = app
        .person_with_email(
            "Camille P. Martin",
            "camille.martin@lecnam.net",
            "dar",
            "responsable",
        )
        .await;
    let other_responsable = app.person("Dominique Bernard", "dar", "responsable").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let d = ready_for_laureat(&app, &agent, &acv).await;
    let before = app.event_count().await;

    // Act
    let refused = act_reply(
        &app,
        &same_as_responsable,
        &d,
        "declarer_laureat",
        json!({}),
    )
    .await;
    let offered = app
        .fetch(&same_as_responsable, &format!("/dossiers/{}", id_of(&d)))
        .await;
    let declared = act_reply(&app, &other_responsable, &d, "declarer_laureat", json!({})).await;

    // Assert
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "four_eyes");
    assert_eq!(
        d["avis"]["dar"]["by"]["id"], "camille.martin@lecnam.net",
        "the person is their e-mail: {d}"
    );
    let offered = offered.assert_ok(StatusCode::OK);
    assert!(
        !offered["actions"]
            .as_array()
            .expect("actions")
            .contains(&json!("declarer_laureat")),
        "{offered}"
    );
    assert_eq!(declared.assert_ok(StatusCode::OK)["state"], "laureat");
    assert_eq!(app.event_count().await, before + 1);
    app.stop().await;
}

async fn two_people_who_share_a_name_are_two_people(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let agent = app
        .person_with_email(
            "Camille Martin",
            "camille.martin@lecnam.net",
            "dar",
            "agent",
        )
        .await;
    let namesake = app
        .person_with_email(
            "Camille Martin",
            "camille.martin@assurance-maladie.fr",
            "dar",
            "responsable",
        )
        .await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let d = ready_for_laureat(&app, &agent, &acv).await;

    // Act
    let declared = act_reply(&app, &namesake, &d, "declarer_laureat", json!({})).await;

    // Assert
    let declared = declared.assert_ok(StatusCode::OK);
    assert_eq!(declared["state"], "laureat");
    let events = history(&app, &agent, &d).await;
    let instructed_by = &events[1]["actor"];
    let declared_by = &events[3]["actor"];
    assert_eq!(instructed_by["name"], declared_by["name"]);
    assert_ne!(instructed_by["id"], declared_by["id"]);
    app.stop().await;
}

async fn an_email_in_another_case_is_the_same_person(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let agent = app
        .person_with_email(
            "Camille Martin",
            "camille.martin@lecnam.net",
            "dar",
            "agent",
        )
        .await;
    let shouting = app
        .person_with_email(
            "Camille Martin",
            "Camille.Martin@LECNAM.net",
            "dar",
            "responsable",
        )
        .await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let d = ready_for_laureat(&app, &agent, &acv).await;
    let before = app.event_count().await;

    // Act
    let refused = act_reply(&app, &shouting, &d, "declarer_laureat", json!({})).await;

    // Assert
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "four_eyes");
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

async fn an_email_with_spaces_around_or_a_decomposed_accent_is_the_same_person(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let agent = app
        .person_with_email(
            "Élodie Martin",
            "\u{e9}lodie.martin@lecnam.net",
            "dar",
            "agent",
        )
        .await;
    let decomposed = app
        .person_with_email(
            "Élodie Martin",
            "  e\u{301}lodie.martin@lecnam.net ",
            "dar",
            "responsable",
        )
        .await;
    let d = ready_for_laureat(&app, &agent, &acv).await;

    // Act
    let refused = act_reply(&app, &decomposed, &d, "declarer_laureat", json!({})).await;

    // Assert
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "four_eyes");
    app.stop().await;
}

async fn revoking_one_token_of_a_person_leaves_the_other_working(backend: Backend) {
    // Arrange: one person, a token on the laptop and one on the phone.
    let app = TestApp::spawn(backend).await;
    let laptop = app
        .person_with_email(
            "Camille Martin",
            "camille.martin@lecnam.net",
            "dar",
            "agent",
        )
        .await;
    let phone = app
        .person_with_email(
            "Camille Martin",
            "camille.martin@lecnam.net",
            "dar",
            "agent",
        )
        .await;
    let d = app.deposit(&laptop, &["acv"]).await;

    // Act
    let revoked = app
        .store
        .revoke_token(laptop.token_id, chrono::Utc::now())
        .await
        .expect("revoke");
    let read_with_laptop = app
        .fetch(&laptop, &format!("/dossiers/{}", id_of(&d)))
        .await;
    let act_with_laptop = app
        .transition(
            &laptop,
            &id_of(&d),
            &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"}),
        )
        .await;
    let read_with_phone = app.fetch(&phone, &format!("/dossiers/{}", id_of(&d))).await;
    let act_with_phone = app
        .transition(
            &phone,
            &id_of(&d),
            &json!({"action": "instruire", "expected_version": 1, "verdict": "favorable"}),
        )
        .await;

    // Assert
    assert!(revoked);
    read_with_laptop.assert_problem(StatusCode::UNAUTHORIZED, "revoked_token");
    act_with_laptop.assert_problem(StatusCode::UNAUTHORIZED, "revoked_token");
    assert_eq!(read_with_phone.assert_ok(StatusCode::OK)["version"], 1);
    let instruit = act_with_phone.assert_ok(StatusCode::OK);
    assert_eq!(instruit["state"], "instruit");
    assert_eq!(
        instruit["avis"]["dar"]["by"]["id"],
        "camille.martin@lecnam.net"
    );
    app.stop().await;
}

async fn a_person_registered_in_one_agency_gets_no_token_in_another(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    app.person_with_email(
        "Camille Martin",
        "camille.martin@lecnam.net",
        "dar",
        "agent",
    )
    .await;
    let tokens_before = app.store.list_tokens().await.expect("tokens").len();

    // Act
    let in_acv = ami_service::auth::create_token(
        &*app.store,
        "Camille Martin",
        "camille.martin@lecnam.net",
        "acv",
        "agent",
    )
    .await;
    let in_ti_other_case = ami_service::auth::create_token(
        &*app.store,
        "C. Martin",
        "CAMILLE.MARTIN@lecnam.net",
        "ti",
        "responsable",
    )
    .await;
    let same_agency_other_role = ami_service::auth::create_token(
        &*app.store,
        "Camille Martin",
        "camille.martin@lecnam.net",
        "dar",
        "responsable",
    )
    .await;

    // Assert
    assert!(
        matches!(
            in_acv,
            Err(ami_service::auth::TokenError::OtherAgency { .. })
        ),
        "{:?}",
        in_acv.map(|(r, _)| r)
    );
    assert!(
        matches!(
            in_ti_other_case,
            Err(ami_service::auth::TokenError::OtherAgency { .. })
        ),
        "{:?}",
        in_ti_other_case.map(|(r, _)| r)
    );
    assert!(same_agency_other_role.is_ok());
    assert_eq!(
        app.store.list_tokens().await.expect("tokens").len(),
        tokens_before + 1
    );
    app.stop().await;
}

// ---- 9. Idempotency by meaning ---------------------------------------------------------

const DEPOSIT_PRETTY: &str = r#"{
    "commune": "Épinal",
    "code_insee": "88160",
    "porteur": {"nom": "Ville d'Épinal", "email": "contact@epinal.fr"},
    "programmes": ["acv", "ti"],
    "received_at": "2020-11-06T23:30:00+01:00",
    "pieces": [
        {"kind": "dossier_candidature", "filename": "candidature.pdf"},
        {"kind": "budget_previsionnel", "filename": "budget.xlsx"}
    ]
}"#;

/// The same deposit: no whitespace, other key order, « É » as an escape.
const DEPOSIT_COMPACT: &str = r#"{"received_at":"2020-11-06T23:30:00+01:00","pieces":[{"filename":"candidature.pdf","kind":"dossier_candidature"},{"filename":"budget.xlsx","kind":"budget_previsionnel"}],"programmes":["acv","ti"],"porteur":{"email":"contact@epinal.fr","nom":"Ville d'\u00c9pinal"},"code_insee":"88160","commune":"\u00c9pinal"}"#;

async fn send_raw(app: &TestApp, who: &Person, path: &str, body: &str, key: &str) -> Reply {
    app.send(
        Method::POST,
        path,
        Some(who),
        &[
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ],
        Some(body.as_bytes().to_vec()),
    )
    .await
}

async fn a_deposit_resent_with_other_whitespace_and_key_order_is_a_replay(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    // Act
    let first = send_raw(&app, &dar, "/dossiers", DEPOSIT_PRETTY, "depot-epinal").await;
    let again = send_raw(&app, &dar, "/dossiers", DEPOSIT_COMPACT, "depot-epinal").await;

    // Assert
    let first_body = first.assert_ok(StatusCode::CREATED);
    let again_body = again.assert_ok(StatusCode::CREATED);
    assert_eq!(first_body["id"], again_body["id"]);
    assert_eq!(first_body["reference"], "AMI2-V1-0001");
    assert_eq!(first.location, again.location);
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

async fn the_same_key_with_a_different_value_is_422_idempotency_key_reused(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    send_raw(&app, &dar, "/dossiers", DEPOSIT_PRETTY, "depot-epinal")
        .await
        .assert_ok(StatusCode::CREATED);
    let other_value = DEPOSIT_COMPACT.replace(r#"["acv","ti"]"#, r#"["acv"]"#);
    assert_ne!(other_value, DEPOSIT_COMPACT);

    // Act
    let reply = send_raw(&app, &dar, "/dossiers", &other_value, "depot-epinal").await;

    // Assert
    reply.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "Idempotency-Key",
    );
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

async fn a_transition_resent_with_other_formatting_is_a_replay(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let path = format!("/dossiers/{}/transitions", id_of(&d));
    let pretty = "{\n  \"action\": \"instruire\",\n  \"expected_version\": 1,\n  \"verdict\": \"reserve\",\n  \"motivation\": \"Budget à préciser\"\n}";
    let compact = r#"{"motivation":"Budget \u00e0 pr\u00e9ciser","verdict":"reserve","expected_version":1,"action":"instruire"}"#;
    let changed = r#"{"motivation":"Budget à revoir","verdict":"reserve","expected_version":1,"action":"instruire"}"#;

    // Act
    let first = send_raw(&app, &dar, &path, pretty, "instruction-1").await;
    let again = send_raw(&app, &dar, &path, compact, "instruction-1").await;
    let other = send_raw(&app, &dar, &path, changed, "instruction-1").await;

    // Assert
    assert_eq!(first.assert_ok(StatusCode::OK)["version"], 2);
    assert_eq!(again.assert_ok(StatusCode::OK), &first.body);
    other.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "Idempotency-Key",
    );
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

// ---- 10. A history a client verifies in Python ----------------------------------------

/// Runs the Python verifier on `{"events": events}`; its exit code and output.
async fn verify_in_python(events: &[Value]) -> (Option<i32>, String) {
    let input = json!({ "events": events }).to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .arg(VERIFY_DIGESTS)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write to python3");
        let out = child.wait_with_output().expect("python3 ends");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
    .await
    .expect("python3 task")
}

/// `events` with one character changed in one string of one event's
/// `content` (found at `pointer`).
fn tampered(events: &[Value], index: usize, pointer: &str) -> Vec<Value> {
    let mut copy = events.to_vec();
    let slot = copy[index]["content"]
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} in {}", events[index]));
    let text = slot.as_str().expect("a text field").to_string();
    let first = text.chars().next().expect("not empty");
    let other = if first == 'X' { 'Y' } else { 'X' };
    *slot = json!(format!("{other}{}", &text[first.len_utf8()..]));
    copy
}

async fn a_python_client_recomputes_every_digest_of_a_history_with_accents_quotes_and_emoji(
    backend: Backend,
) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let mut body = new_dossier_of("Saint-Dié-des-Vosges", "88413", &["acv"]);
    body["porteur"]["nom"] =
        json!("Saint-Dié-des-Vosges « \"la Déodatienne\" » 🌲 — \"Cœur de ville\" \\ 🎉");
    body["pieces"] = json!([{"kind": "dossier_candidature", "filename": "candidature été.pdf"}]);
    let d = app.deposit_body(&t.dar, &body).await;
    let piece = app
        .upload_to(
            &t.dar,
            &format!(
                "/dossiers/{}/pieces/budget_previsionnel?comment={}",
                id_of(&d),
                encoded("Reçu par courriel")
            ),
            "budget « révisé » 📊.xlsx",
            sample_xlsx(),
            &[],
        )
        .await;
    piece.assert_ok(StatusCode::OK);
    app.must_act(
        &t.dar,
        &d,
        "instruire",
        json!({"verdict": "reserve",
               "motivation": "Budget à préciser : « \"subventions\" » ✅\nVoir p. 3\tet annexe"}),
    )
    .await;
    app.must_act(
        &t.acv,
        &d,
        "avis_acv",
        json!({"verdict": "favorable", "comment": "Vu en comité 🇫🇷"}),
    )
    .await;
    let events = history(&app, &t.dar, &d).await;
    assert_eq!(events.len(), 4);

    // Act
    let (genuine, genuine_out) = verify_in_python(&events).await;
    let (commune, commune_out) = verify_in_python(&tampered(&events, 0, "/payload/commune")).await;
    let (motivation, motivation_out) = verify_in_python(&tampered(&events, 2, "/motivation")).await;
    let (filename, filename_out) =
        verify_in_python(&tampered(&events, 1, "/payload/filename")).await;

    // Assert
    assert_eq!(genuine, Some(0), "{genuine_out}");
    assert_eq!(
        genuine_out.lines().filter(|l| l.starts_with("ok ")).count(),
        4,
        "{genuine_out}"
    );
    for (code, out) in [
        (commune, commune_out),
        (motivation, motivation_out),
        (filename, filename_out),
    ] {
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("MISMATCH"), "{out}");
    }
    app.stop().await;
}

/// The whole feed (`GET /events?limit=1000`) once its `expected` events
/// have their place in the global chain (`global_seq`, `global_digest`),
/// waiting up to 10 s for the feed to show them and the chain to reach them.
async fn sealed_feed(app: &TestApp, who: &Person, expected: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (feed, _) = app.follow_feed(who, None, 1000, expected).await;
        if feed
            .iter()
            .all(|e| e["global_seq"].is_i64() && e["global_digest"].is_string())
        {
            return feed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events without a place in the global chain: {feed:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn a_python_client_follows_the_global_chain_of_two_interleaved_dossiers(backend: Backend) {
    // Arrange: two dossiers whose events alternate in the journal.
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let a = app.deposit(&t.dar, &["acv"]).await;
    let b = app.deposit(&t.dar, &["ti"]).await;
    app.must_act(&t.dar, &a, "instruire", json!({"verdict": "favorable"}))
        .await;
    app.must_act(&t.dar, &b, "instruire", json!({"verdict": "favorable"}))
        .await;
    app.must_act(&t.acv, &a, "avis_acv", json!({"verdict": "favorable"}))
        .await;
    app.must_act(
        &t.boss,
        &b,
        "classer_sans_suite",
        json!({"motivation": "Retrait « définitif » 📭"}),
    )
    .await;
    app.must_act(&t.boss, &a, "declarer_laureat", json!({}))
        .await;
    let expected_order = [
        (id_of(&a), 1),
        (id_of(&b), 1),
        (id_of(&a), 2),
        (id_of(&b), 2),
        (id_of(&a), 3),
        (id_of(&b), 3),
        (id_of(&a), 4),
    ];

    // Act: DAR follows every dossier (ACV and TI, only their programme's).
    let feed = sealed_feed(&app, &t.dar, 7).await;
    let (genuine, genuine_out) = verify_in_python(&feed).await;
    let mut forged_global = feed.clone();
    let g = forged_global[3]["global_digest"]
        .as_str()
        .expect("global digest")
        .to_string();
    let flipped = if g.starts_with('0') { "1" } else { "0" };
    forged_global[3]["global_digest"] = json!(format!("{flipped}{}", &g[1..]));
    let (global, global_out) = verify_in_python(&forged_global).await;
    let mut missing_one = feed.clone();
    missing_one.remove(3);
    let (missing, missing_out) = verify_in_python(&missing_one).await;
    let (content, content_out) = verify_in_python(&tampered(&feed, 5, "/motivation")).await;

    // Assert: commit order, one place after the other.
    let order: Vec<(String, u64)> = feed
        .iter()
        .map(|e| {
            (
                e["dossier_id"].as_str().expect("dossier").to_string(),
                e["seq"].as_u64().expect("seq"),
            )
        })
        .collect();
    assert_eq!(order, expected_order);
    let places: Vec<Option<i64>> = feed.iter().map(|e| e["global_seq"].as_i64()).collect();
    assert_eq!(places, (1..=7).map(Some).collect::<Vec<_>>());
    assert_eq!(genuine, Some(0), "{genuine_out}");
    assert_eq!(
        genuine_out
            .lines()
            .filter(|l| l.starts_with("ok ") && l.ends_with(" ok"))
            .count(),
        7,
        "every event checked on both chains: {genuine_out}"
    );
    for (code, out) in [
        (global, global_out),
        (missing, missing_out),
        (content, content_out),
    ] {
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("MISMATCH"), "{out}");
    }
    // The history of one dossier checks on its own too.
    let (alone, alone_out) = verify_in_python(&history(&app, &t.ti, &b).await).await;
    assert_eq!(alone, Some(0), "{alone_out}");
    // So does the feed an agency follows, only its programme's events: each
    // dossier's chain is whole in it.
    let (for_acv, _) = app.follow_feed(&t.acv, None, 1000, 4).await;
    assert!(
        for_acv.iter().all(|e| e["dossier_id"] == a["id"]),
        "{for_acv:?}"
    );
    let (own, own_out) = verify_in_python(&for_acv).await;
    assert_eq!(own, Some(0), "{own_out}");
    app.stop().await;
}

// ---- 11. French messages ----------------------------------------------------------------

async fn a_deposit_dated_today_is_told_when_the_campaign_closed(backend: Backend) {
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
    let problem =
        reply.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "closed", "received_at");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("26 juin 2021 à 00 h 00"), "{detail}");
    assert!(detail.contains("« received_at »"), "{detail}");
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn a_deposit_received_before_the_opening_is_told_when_it_opened(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut body = new_dossier("Nevers", &["acv"]);
    body["received_at"] = json!("2020-07-19T23:59:59+02:00");

    // Act
    let reply = app
        .send_json(Method::POST, "/dossiers", &dar, &body, None)
        .await;

    // Assert
    let problem =
        reply.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "not_open", "received_at");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("20 juillet 2020 à 00 h 00"), "{detail}");
    assert!(
        detail.contains("19 juillet 2020 à 23 h 59 min 59 s"),
        "{detail}"
    );
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn instruction_without_the_budget_names_the_missing_piece_by_its_label(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut body = new_dossier("Nevers", &["acv"]);
    body["pieces"] = json!([{"kind": "dossier_candidature", "filename": "candidature.pdf"}]);
    let d = app.deposit_body(&dar, &body).await;

    // Act
    let reply = act_reply(&app, &dar, &d, "instruire", json!({"verdict": "favorable"})).await;

    // Assert
    let problem =
        reply.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "pieces_missing", "pieces");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains("Pièces manquantes (fichier non reçu) : Budget prévisionnel."),
        "{detail}"
    );
    assert!(
        detail.contains("Ajoutez leurs fichiers, ou demandez-les au porteur."),
        "{detail}"
    );
    assert!(!detail.contains("budget_previsionnel"), "{detail}");
    app.stop().await;
}

async fn a_refusal_names_the_action_the_agencies_and_the_roles_by_their_labels(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let t = app.team().await;
    let d = app.deposit(&t.dar, &["acv"]).await;

    // Act
    let by_acv = act_reply(
        &app,
        &t.acv,
        &d,
        "instruire",
        json!({"verdict": "favorable"}),
    )
    .await;
    let by_agent = act_reply(
        &app,
        &t.dar,
        &d,
        "classer_sans_suite",
        json!({"motivation": "Retrait"}),
    )
    .await;

    // Assert
    let detail = by_acv.assert_problem(StatusCode::FORBIDDEN, "wrong_agency")["detail"]
        .as_str()
        .expect("detail")
        .to_string();
    for words in [
        "Instruire le dossier",
        "Cnam – Direction de l'action régionale",
        "ANCT – Direction Action Cœur de Ville",
    ] {
        assert!(detail.contains(words), "{words:?} not in {detail:?}");
    }
    for id in ["« instruire »", "« dar »", "« acv »"] {
        assert!(!detail.contains(id), "{id:?} in {detail:?}");
    }
    let detail = by_agent.assert_problem(StatusCode::FORBIDDEN, "role_too_low")["detail"]
        .as_str()
        .expect("detail")
        .to_string();
    assert!(detail.contains("Classer sans suite"), "{detail}");
    assert!(detail.contains("« responsable »"), "{detail}");
    assert!(detail.contains("« agent »"), "{detail}");
    app.stop().await;
}

/// A search matches within one field: the end of the porteur's name and the
/// start of the reference do not make a match together.
async fn a_search_never_spans_two_fields(backend: Backend) {
    // Arrange: porteur « Ville de Nevers », reference AMI2-V1-0001.
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app
        .deposit_body(
            &dar,
            &deposit_of(
                "Nevers",
                "58194",
                "Ville de Nevers",
                "2020-11-06T23:30:00+01:00",
                &["acv"],
            ),
        )
        .await;
    assert_eq!(d["reference"], "AMI2-V1-0001");

    // Act
    let across = app.fetch(&dar, "/dossiers?q=nevers%20ami2").await;
    let within = app.fetch(&dar, "/dossiers?q=de%20nevers").await;

    // Assert
    assert!(ids(across.assert_ok(StatusCode::OK)).is_empty());
    assert_eq!(ids(within.assert_ok(StatusCode::OK)), [id_of(&d)]);
    app.stop().await;
}

/// A pièce's size stays within what every JSON client reads exactly
/// (2^53 − 1), since clients recompute digests over it.
async fn a_piece_size_beyond_2_pow_53_is_refused_naming_the_field(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let mut body = new_dossier("Nevers", &["acv"]);
    body["pieces"][1]["size"] = json!(9_007_199_254_740_992_u64);
    let mut largest = new_dossier("Vierzon", &["acv"]);
    largest["pieces"][1]["size"] = json!(9_007_199_254_740_991_u64);

    // Act
    let too_big = app
        .send_json(Method::POST, "/dossiers", &dar, &body, None)
        .await;
    let at_the_limit = app
        .send_json(Method::POST, "/dossiers", &dar, &largest, None)
        .await;

    // Assert
    too_big.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "pieces[1].size",
    );
    at_the_limit.assert_ok(StatusCode::CREATED);
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

on_both_backends!(
    a_search_never_spans_two_fields,
    a_piece_size_beyond_2_pow_53_is_refused_naming_the_field,
    search_ignores_accents_case_hyphens_and_spaces,
    search_folds_ligatures_and_typographic_apostrophes,
    search_finds_a_dossier_by_its_insee_code_or_part_of_its_reference,
    a_commune_sent_decomposed_is_shown_composed_and_found_by_its_accented_name,
    wildcards_find_nothing_and_a_blank_search_lists_everything,
    hidden_characters_in_a_commune_or_porteur_name_are_refused_naming_the_field,
    hidden_characters_in_a_motivation_are_refused_and_nothing_is_written,
    one_call_with_several_values_returns_the_union_in_reception_order,
    an_unknown_or_empty_value_in_a_filter_list_is_400_naming_the_parameter,
    a_second_deposit_of_a_commune_is_refused_as_a_doublon_naming_the_existing_reference,
    a_confirmed_doublon_is_deposited_and_its_history_names_the_existing_reference,
    each_wave_numbers_its_dossiers_from_0001_whatever_the_order_of_deposit,
    a_wave_ends_at_midnight_in_paris_on_its_closing_day,
    a_refused_deposit_takes_no_number,
    deposits_of_one_commune_sent_at_once_make_one_dossier_and_doublons,
    deposits_of_one_wave_sent_at_once_are_numbered_without_gap_or_repeat,
    a_demande_of_two_pieces_stays_open_until_both_arrive,
    a_due_date_of_today_in_paris_is_accepted_and_yesterday_is_past,
    a_demande_de_complement_waits_on_the_porteur_until_the_piece_arrives,
    a_corrected_budget_after_instruction_keeps_the_state_and_acv_sees_it,
    a_demande_de_complement_is_refused_when_incomplete_in_the_past_or_from_acv,
    pieces_or_due_on_sent_with_another_action_are_refused_naming_the_field,
    only_a_dar_responsable_classes_sans_suite_and_with_a_motivation,
    rouvrir_brings_a_dossier_classed_from_recu_back_to_recu,
    rouvrir_brings_a_dossier_classed_from_avis_acv_back_to_avis_acv,
    two_tokens_of_one_email_are_one_person_for_the_four_eyes_rule,
    two_people_who_share_a_name_are_two_people,
    an_email_in_another_case_is_the_same_person,
    an_email_with_spaces_around_or_a_decomposed_accent_is_the_same_person,
    revoking_one_token_of_a_person_leaves_the_other_working,
    a_person_registered_in_one_agency_gets_no_token_in_another,
    a_deposit_resent_with_other_whitespace_and_key_order_is_a_replay,
    the_same_key_with_a_different_value_is_422_idempotency_key_reused,
    a_transition_resent_with_other_formatting_is_a_replay,
    a_python_client_recomputes_every_digest_of_a_history_with_accents_quotes_and_emoji,
    a_python_client_follows_the_global_chain_of_two_interleaved_dossiers,
    a_deposit_dated_today_is_told_when_the_campaign_closed,
    a_deposit_received_before_the_opening_is_told_when_it_opened,
    instruction_without_the_budget_names_the_missing_piece_by_its_label,
    a_refusal_names_the_action_the_agencies_and_the_roles_by_their_labels,
);
