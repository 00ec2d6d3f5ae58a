//! Mail in, end to end on both databases: the corpus imported by `ami
//! import` (a child process, twice, two at once), listed and read over the
//! API, quarantined messages kept byte for byte, and each arrival handled
//! once: a dossier, a new version of a pièce, or set aside.

use std::path::PathBuf;

use ami_service::mail::import::Importer;
use ami_tests::dovecot::{self, Dovecot};
use ami_tests::process::{AmiProcess, Program};
use ami_tests::{piece_of, sha256_hex, Backend, Person, Reply, StatusCode, TestApp, TestDb};
use reqwest::Method;
use serde_json::{json, Value};

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

/// `ami import PATHS` on the app's database and file storage, in a child
/// process; its standard output.
async fn ami_import(app: &TestApp, paths: &[PathBuf]) -> String {
    let program = Program::new(env!("CARGO_BIN_EXE_ami-under-test"));
    let mut args: Vec<String> = vec![
        "import".into(),
        "--database-url".into(),
        app.db.url.clone(),
        "--files-url".into(),
        app.test_files.url.clone(),
    ];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        program.run(&args).expect("ami import")
    })
    .await
    .expect("join")
}

/// Imports corpus files in this process; the arrivals' ids.
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

async fn arrivals(app: &TestApp, who: &Person, query: &str) -> Vec<Value> {
    let reply = app.fetch(who, &format!("/arrivals{query}")).await;
    reply.assert_ok(StatusCode::OK)["items"]
        .as_array()
        .expect("items")
        .clone()
}

async fn download(
    app: &TestApp,
    who: &Person,
    path: &str,
) -> (StatusCode, String, String, Vec<u8>) {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(&who.token)
        .send()
        .await
        .expect("request");
    let status = res.status();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let bytes = res.bytes().await.expect("body").to_vec();
    (status, content_type, disposition, bytes)
}

async fn post(app: &TestApp, who: &Person, path: &str, body: &Value) -> Reply {
    app.send_json(Method::POST, path, who, body, None).await
}

fn nevers_dossier() -> Value {
    json!({
        "commune": "Nevers",
        "code_insee": "58194",
        "porteur": {"nom": "Ville de Nevers", "email": "dgs@mairie-nevers.fr"},
        "programmes": ["acv"],
        "pieces": [
            {"kind": "dossier_candidature", "attachment": 0},
            {"kind": "budget_previsionnel", "attachment": 1},
        ],
        "comment": "Reçu par courriel",
    })
}

async fn importing_the_corpus_lists_each_message_once_with_its_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let mut paths: Vec<PathBuf> = (1..=9)
        .map(|n| {
            std::fs::read_dir(corpus(""))
                .expect("corpus")
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .and_then(|f| f.to_str())
                        .is_some_and(|f| f.starts_with(&format!("0{n}-")))
                })
                .expect("corpus message")
        })
        .collect();
    paths.push(corpus("boite.mbox"));
    paths.push(corpus("maildir"));

    let out = ami_import(&app, &paths).await;

    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 11, "{out}");
    assert!(
        lines[0].ends_with(
            "01-candidature-nevers.eml : 1 message : 1 nouveau, 0 déjà connu, 0 en quarantaine"
        ),
        "{out}"
    );
    assert!(
        lines[7].ends_with(
            "08-pas-un-message.eml : 1 message : 0 nouveau, 0 déjà connu, 1 en quarantaine"
        ),
        "{out}"
    );
    assert!(
        lines[9].ends_with("boite.mbox : 3 messages : 3 nouveaux, 0 déjà connu, 0 en quarantaine"),
        "{out}"
    );
    assert!(
        lines[10].ends_with("maildir : 3 messages : 3 nouveaux, 0 déjà connu, 0 en quarantaine"),
        "{out}"
    );

    let items = arrivals(&app, &team.dar, "?limit=500").await;
    assert_eq!(items.len(), 15);
    let nevers = items
        .iter()
        .find(|a| a["from"] == "dgs@mairie-nevers.fr")
        .expect("the Nevers message");
    let pdf = example("candidature.pdf");
    let xlsx = example("budget.xlsx");
    assert_eq!(
        nevers,
        &json!({
            "id": nevers["id"],
            "message_id": "3f9c2a1e-7b4d-4c1a-9e0f-5a6b7c8d9e01@mairie-nevers.fr",
            "from": "dgs@mairie-nevers.fr",
            "subject": "Candidature AMI – Ville de Nevers",
            "received_at": "2020-10-14T14:05:42Z",
            "wave": 1,
            "state": "nouveau",
            "attachments": [
                {"filename": "dossier-candidature-nevers.pdf", "media_type": "application/pdf",
                 "size": pdf.len(), "sha256": sha256_hex(&pdf)},
                {"filename": "budget prévisionnel.xlsx",
                 "media_type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "size": xlsx.len(), "sha256": sha256_hex(&xlsx)},
            ],
        })
    );
    // The message received at 23:59:59 on wave 1's last day is in wave 1.
    let epinal = items
        .iter()
        .find(|a| a["from"] == "ami@ville-epinal.fr")
        .expect("the Épinal message");
    assert_eq!(epinal["wave"], 1);
    let quarantined = arrivals(&app, &team.dar, "?state=quarantaine").await;
    assert_eq!(quarantined.len(), 4);
    assert_eq!(arrivals(&app, &team.dar, "?state=nouveau").await.len(), 11);

    // Pages follow one another without loss or repeat.
    let first = app.fetch(&team.dar, "/arrivals?limit=10").await;
    let body = first.assert_ok(StatusCode::OK);
    let cursor = body["next_cursor"].as_str().expect("a next page");
    let rest = arrivals(&app, &team.dar, &format!("?limit=10&cursor={cursor}")).await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(10));
    assert_eq!(rest.len(), 5);
    app.stop().await;
}

async fn importing_the_same_mbox_twice_and_from_two_processes_at_once_gives_each_arrival_once(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let mbox = vec![corpus("boite.mbox")];

    let (a, b) = tokio::join!(ami_import(&app, &mbox), ami_import(&app, &mbox));
    let again = ami_import(&app, &mbox).await;

    let created: usize = [&a, &b]
        .iter()
        .map(|out| {
            let tally = out.split(" : ").nth(2).expect("a tally");
            tally
                .split(' ')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .expect("a number")
        })
        .sum();
    assert_eq!(created, 3, "{a}{b}");
    assert!(
        again.ends_with("boite.mbox : 3 messages : 0 nouveau, 3 déjà connus, 0 en quarantaine\n"),
        "{again}"
    );
    let items = arrivals(&app, &team.dar, "").await;
    let subjects: Vec<&str> = items.iter().filter_map(|a| a["subject"].as_str()).collect();
    assert_eq!(
        subjects,
        ["Premier message", "Deuxieme message", "Troisieme message"]
    );
    app.stop().await;
}

async fn a_message_that_cannot_be_read_is_quarantined_with_its_raw_bytes_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["08-pas-un-message.eml", "09-sans-expediteur.eml"]).await;

    let quarantined = arrivals(&app, &team.dar, "?state=quarantaine").await;

    assert_eq!(quarantined.len(), 2);
    let pas_un_message = quarantined
        .iter()
        .find(|a| a["id"] == ids[0])
        .expect("listed");
    assert_eq!(pas_un_message["state"], "quarantaine");
    assert_eq!(
        pas_un_message["quarantine_reason"],
        "message illisible : aucun en-tête"
    );
    assert_eq!(pas_un_message["attachments"], json!([]));
    let (status, content_type, disposition, bytes) =
        download(&app, &team.dar, &format!("/arrivals/{}/raw", ids[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "message/rfc822");
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert_eq!(
        bytes,
        std::fs::read(corpus("08-pas-un-message.eml")).expect("corpus")
    );
    let detail = app.fetch(&team.dar, &format!("/arrivals/{}", ids[1])).await;
    let detail = detail.assert_ok(StatusCode::OK);
    assert_eq!(detail["guesses"], Value::Null);
    assert!(detail["quarantine_reason"]
        .as_str()
        .is_some_and(|r| r.contains("From")));

    // Quarantine is only left by a setting aside.
    let events = app.journal_len().await;
    let refused = post(
        &app,
        &team.dar,
        &format!("/arrivals/{}/dossier", ids[0]),
        &json!({"commune": "Nevers", "code_insee": "58194",
                "porteur": {"nom": "Ville de Nevers"}, "programmes": ["acv"]}),
    )
    .await;
    refused.assert_problem(StatusCode::CONFLICT, "arrival_handled");
    assert_eq!(app.journal_len().await, events);
    app.stop().await;
}

async fn a_dossier_is_created_from_an_arrival_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["01-candidature-nevers.eml"]).await;
    let id = &ids[0];
    let detail = app.fetch(&team.dar, &format!("/arrivals/{id}")).await;
    let detail = detail.assert_ok(StatusCode::OK).clone();
    assert_eq!(
        detail["guesses"],
        json!({"budget_previsionnel": 1, "dossier_candidature": 0,
               "commune": {"code_insee": "58194", "nom": "Nevers"}, "reference": null})
    );
    assert!(detail["text"]
        .as_str()
        .is_some_and(|t| t.contains("Ville de Nevers")));

    let created = app
        .send_json(
            Method::POST,
            &format!("/arrivals/{id}/dossier"),
            &team.dar,
            &nevers_dossier(),
            Some("depot-nevers-1"),
        )
        .await;

    let dossier = created.assert_ok(StatusCode::CREATED).clone();
    assert_eq!(dossier["received_at"], "2020-10-14T14:05:42Z");
    assert_eq!(dossier["wave"], 1);
    assert_eq!(dossier["commune"], "Nevers");
    let pdf = example("candidature.pdf");
    let xlsx = example("budget.xlsx");
    let candidature = piece_of(&dossier, "dossier_candidature");
    assert_eq!(candidature["sha256"], sha256_hex(&pdf));
    assert_eq!(candidature["filename"], "dossier-candidature-nevers.pdf");
    assert_eq!(candidature["received"], true);
    assert_eq!(
        piece_of(&dossier, "budget_previsionnel")["sha256"],
        sha256_hex(&xlsx)
    );
    let dossier_id = dossier["id"].as_str().expect("id");
    let (status, _, _, file) = download(
        &app,
        &team.dar,
        &format!("/dossiers/{dossier_id}/pieces/budget_previsionnel"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256_hex(&file), sha256_hex(&xlsx));
    let (_, content_type, _, attachment) =
        download(&app, &team.dar, &format!("/arrivals/{id}/attachments/0")).await;
    assert_eq!(content_type, "application/pdf");
    assert_eq!(attachment, pdf);

    let handled = app.fetch(&team.dar, &format!("/arrivals/{id}")).await;
    let handled = handled.assert_ok(StatusCode::OK);
    assert_eq!(handled["state"], "traite");
    assert_eq!(handled["handling"]["how"], "depot");
    assert_eq!(handled["handling"]["dossier_id"], dossier_id);
    assert_eq!(handled["handling"]["by_name"], team.dar.name.as_str());

    // The same request with the same key is the first answer again.
    let replay = app
        .send_json(
            Method::POST,
            &format!("/arrivals/{id}/dossier"),
            &team.dar,
            &nevers_dossier(),
            Some("depot-nevers-1"),
        )
        .await;
    assert_eq!(replay.assert_ok(StatusCode::CREATED)["id"], dossier_id);

    let events = app.journal_len().await;
    let again = post(
        &app,
        &team.dar,
        &format!("/arrivals/{id}/dossier"),
        &json!({"commune": "Nevers", "code_insee": "58194",
                "porteur": {"nom": "Ville de Nevers"}, "programmes": ["acv"],
                "doublon_confirme": true}),
    )
    .await;
    again.assert_problem(StatusCode::CONFLICT, "arrival_handled");
    assert_eq!(app.journal_len().await, events);
    let (_, list) = app.get(&team.dar, "/dossiers").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

async fn an_arrival_is_attached_as_a_new_budget_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(
        &app,
        &["01-candidature-nevers.eml", "02-transfert-chateauroux.eml"],
    )
    .await;
    let created = post(
        &app,
        &team.dar,
        &format!("/arrivals/{}/dossier", ids[0]),
        &nevers_dossier(),
    )
    .await;
    let dossier = created.assert_ok(StatusCode::CREATED).clone();
    let dossier_id = dossier["id"].as_str().expect("id");
    let arrival = app.fetch(&team.dar, &format!("/arrivals/{}", ids[1])).await;
    let budget_sha = arrival.assert_ok(StatusCode::OK)["attachments"][1]["sha256"].clone();

    post(
        &app,
        &team.dar,
        &format!("/arrivals/{}/attach", ids[1]),
        &json!({"dossier_id": dossier_id, "expected_version": dossier["version"],
                "kind": "budget_previsionnel", "attachment": 9}),
    )
    .await
    .assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "attachment",
    );
    post(
        &app,
        &team.dar,
        &format!("/arrivals/{}/attach", ids[1]),
        &json!({"dossier_id": dossier_id, "expected_version": 0,
                "kind": "budget_previsionnel", "attachment": 1}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "version_conflict");
    let attached = post(
        &app,
        &team.dar,
        &format!("/arrivals/{}/attach", ids[1]),
        &json!({"dossier_id": dossier_id, "expected_version": dossier["version"],
                "kind": "budget_previsionnel", "attachment": 1,
                "comment": "Budget révisé, reçu par courriel"}),
    )
    .await;

    let after = attached.assert_ok(StatusCode::OK);
    let budget = piece_of(after, "budget_previsionnel");
    assert_eq!(budget["versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(budget["sha256"], budget_sha);
    assert_eq!(budget["filename"], "budget prévisionnel 2021.xlsx");
    let handled = app.fetch(&team.dar, &format!("/arrivals/{}", ids[1])).await;
    let handled = handled.assert_ok(StatusCode::OK);
    assert_eq!(handled["state"], "traite");
    assert_eq!(handled["handling"]["how"], "rattachement");
    assert_eq!(handled["handling"]["dossier_id"], dossier_id);

    let events = app.journal_len().await;
    let again = post(
        &app,
        &team.dar,
        &format!("/arrivals/{}/attach", ids[1]),
        &json!({"dossier_id": dossier_id, "expected_version": after["version"],
                "kind": "budget_previsionnel", "attachment": 1}),
    )
    .await;
    again.assert_problem(StatusCode::CONFLICT, "arrival_handled");
    assert_eq!(app.journal_len().await, events);
    app.stop().await;
}

async fn an_arrival_is_set_aside_with_its_motivation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["03-sans-message-id.eml"]).await;
    let path = format!("/arrivals/{}/set-aside", ids[0]);

    let empty = post(&app, &team.dar, &path, &json!({"motivation": "  "})).await;
    empty.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "motivation",
    );
    let set_aside = post(
        &app,
        &team.dar,
        &path,
        &json!({"motivation": "Message de test de la mairie, sans candidature."}),
    )
    .await;

    let body = set_aside.assert_ok(StatusCode::OK);
    assert_eq!(body["state"], "ecarte");
    assert_eq!(body["handling"]["how"], "ecarte");
    assert_eq!(
        body["handling"]["motivation"],
        "Message de test de la mairie, sans candidature."
    );
    assert_eq!(arrivals(&app, &team.dar, "?state=ecarte").await.len(), 1);
    let again = post(&app, &team.dar, &path, &json!({"motivation": "Encore"})).await;
    again.assert_problem(StatusCode::CONFLICT, "arrival_handled");
    app.stop().await;
}

async fn only_the_dar_reads_and_handles_arrivals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["01-candidature-nevers.eml"]).await;

    for path in [
        "/arrivals".to_string(),
        format!("/arrivals/{}", ids[0]),
        format!("/arrivals/{}/raw", ids[0]),
        format!("/arrivals/{}/attachments/0", ids[0]),
    ] {
        let refused = app.fetch(&team.acv, &path).await;
        refused.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    }
    let refused = post(
        &app,
        &team.ti,
        &format!("/arrivals/{}/set-aside", ids[0]),
        &json!({"motivation": "Pas pour nous"}),
    )
    .await;
    refused.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    let refused = post(
        &app,
        &team.acv,
        &format!("/arrivals/{}/dossier", ids[0]),
        &nevers_dossier(),
    )
    .await;
    refused.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    // The responsable of the DAR reads them too.
    assert_eq!(arrivals(&app, &team.boss, "").await.len(), 1);
    let nobody = app.send(Method::GET, "/arrivals", None, &[], None).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn a_bad_request_is_refused_naming_the_parameter_or_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(&app, &["01-candidature-nevers.eml"]).await;
    let id = &ids[0];

    for (query, field) in [
        ("?state=lu", "state"),
        ("?state=nouveau&state=traite", "state"),
        ("?limit=0", "limit"),
        ("?cursor=no%2Bpe", "cursor"),
        ("?sort=due", "sort"),
    ] {
        let reply = app.fetch(&team.dar, &format!("/arrivals{query}")).await;
        reply.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", field);
    }
    // Of the documented shape, but no position the service gave: 422.
    app.fetch(&team.dar, "/arrivals?cursor=nope")
        .await
        .assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor", "cursor");
    let unknown = app
        .fetch(&team.dar, &format!("/arrivals/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let no_file = app
        .fetch(&team.dar, &format!("/arrivals/{id}/attachments/2"))
        .await;
    assert_eq!(no_file.status, StatusCode::NOT_FOUND);

    let events = app.journal_len().await;
    let mut body = nevers_dossier();
    body["pieces"][1]["attachment"] = json!(7);
    post(&app, &team.dar, &format!("/arrivals/{id}/dossier"), &body)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "pieces[1].attachment",
        );
    let mut body = nevers_dossier();
    body["pieces"][0]["kind"] = json!("photo");
    post(&app, &team.dar, &format!("/arrivals/{id}/dossier"), &body)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "pieces[0].kind",
        );
    let mut body = nevers_dossier();
    body["pieces"][1]["kind"] = json!("dossier_candidature");
    post(&app, &team.dar, &format!("/arrivals/{id}/dossier"), &body)
        .await
        .assert_field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "pieces[1].kind",
        );
    let mut body = nevers_dossier();
    body["code_insee"] = json!("58195");
    let wrong_commune = post(&app, &team.dar, &format!("/arrivals/{id}/dossier"), &body).await;
    assert_eq!(wrong_commune.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut body = nevers_dossier();
    body["received_at"] = json!("2020-10-01T00:00:00Z");
    post(&app, &team.dar, &format!("/arrivals/{id}/dossier"), &body)
        .await
        .assert_field_problem(StatusCode::BAD_REQUEST, "invalid_body", "received_at");
    assert_eq!(app.journal_len().await, events);
    let still = app.fetch(&team.dar, &format!("/arrivals/{id}")).await;
    assert_eq!(still.body["state"], "nouveau");
    app.stop().await;
}

async fn ami_serve_with_an_imap_url_imports_what_arrives_in_the_mailbox(backend: Backend) {
    let server = Dovecot::start().expect("dovecot");
    let db = TestDb::new(backend).await;
    let mut program = Program::new(env!("CARGO_BIN_EXE_ami-under-test"));
    program
        .env
        .push(("AMI_IMAP_URL".into(), server.url("INBOX")));
    program
        .env
        .push(("AMI_IMAP_PASSWORD".into(), dovecot::PASSWORD.into()));
    let mut ami = AmiProcess::start(&program, &db.url)
        .await
        .expect("ami serve");
    let (_, token) = program
        .create_token(&db.url, "Camille Martin", "dar", "agent")
        .expect("token");
    let raw = std::fs::read(corpus("01-candidature-nevers.eml")).expect("corpus");
    let mut imap = server.client().await.expect("imap client");

    imap.append("INBOX", None, None, &raw)
        .await
        .expect("append");

    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let items = loop {
        let page: Value = client
            .get(format!("{}/arrivals", ami.api()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            break items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing imported: {}",
            ami.log_tail()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["subject"], "Candidature AMI – Ville de Nevers");
    assert_eq!(items[0]["state"], "nouveau");
    let raw_back = client
        .get(format!(
            "{}/arrivals/{}/raw",
            ami.api(),
            items[0]["id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("body");
    assert_eq!(sha256_hex(&raw_back), sha256_hex(&raw));

    // A graceful shutdown stops the follower too, promptly.
    let pid = ami.pid().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ami.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after SIGTERM: {}",
            ami.log_tail()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ami.kill();
}

async fn the_files_of_arrivals_survive_a_files_gc(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let ids = import(
        &app,
        &["01-candidature-nevers.eml", "08-pas-un-message.eml"],
    )
    .await;
    let program = Program::new(env!("CARGO_BIN_EXE_ami-under-test"));
    let (db, files) = (app.db.url.clone(), app.test_files.url.clone());

    let out = tokio::task::spawn_blocking(move || {
        program.run(&[
            "files",
            "gc",
            "--older-than",
            "0s",
            "--database-url",
            &db,
            "--files-url",
            &files,
        ])
    })
    .await
    .expect("join")
    .expect("ami files gc");

    assert!(out.contains("0 fichier(s) non référencé(s)"), "{out}");
    for (id, name) in ids
        .iter()
        .zip(["01-candidature-nevers.eml", "08-pas-un-message.eml"])
    {
        let (status, _, _, raw) = download(&app, &team.dar, &format!("/arrivals/{id}/raw")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(raw, std::fs::read(corpus(name)).expect("corpus"));
    }
    let (status, _, _, pdf) = download(
        &app,
        &team.dar,
        &format!("/arrivals/{}/attachments/0", ids[0]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pdf, example("candidature.pdf"));
    app.stop().await;
}

ami_tests::on_both_backends!(
    the_files_of_arrivals_survive_a_files_gc,
    ami_serve_with_an_imap_url_imports_what_arrives_in_the_mailbox,
    importing_the_corpus_lists_each_message_once_with_its_fields,
    importing_the_same_mbox_twice_and_from_two_processes_at_once_gives_each_arrival_once,
    a_message_that_cannot_be_read_is_quarantined_with_its_raw_bytes_kept,
    a_dossier_is_created_from_an_arrival_once,
    an_arrival_is_attached_as_a_new_budget_version,
    an_arrival_is_set_aside_with_its_motivation,
    only_the_dar_reads_and_handles_arrivals,
    a_bad_request_is_refused_naming_the_parameter_or_field,
);
