//! The outbox worker against a real SMTP server (aiosmtpd, see
//! `ami_tests::smtp_sink`): the letters a deposit and a decision write are
//! sent once, in French, retried when the relay says « later », given up
//! when it says « never », and shown by `GET /dossiers/{id}/messages`.

use std::sync::Arc;
use std::time::Duration;

use ami_service::http::Clock;
use ami_service::mail::outbox::{Outbox, OutboxSettings};
use ami_service::mail::smtp::SmtpSender;
use ami_tests::smtp_sink::{Received, SmtpSink, REFUSED_FOR_GOOD, REFUSED_FOR_NOW};
use ami_tests::{new_dossier, on_both_backends, Backend, StatusCode, TestApp, TestDb};
use serde_json::{json, Value};

const FROM: &str = "AMI Au cœur des territoires <ami@ami.example>";
const CONTACT: &str = "contact@ami.example";
const WAIT: Duration = Duration::from_secs(20);

/// Settings for a test: a look every 50 ms, a first retry after 1 s.
fn settings(sink: &SmtpSink) -> OutboxSettings {
    let sender = SmtpSender::from_url(&sink.url(), FROM).expect("sender");
    let mut s = OutboxSettings::new(Some(sender), FROM, CONTACT);
    s.tick = Duration::from_millis(50);
    s.first_retry = chrono::Duration::seconds(1);
    s
}

fn outbox_of(app: &TestApp, settings: OutboxSettings) -> Outbox {
    Outbox::spawn(
        app.store.clone(),
        app.definition.clone(),
        settings,
        Clock::System,
        app.letters.clone(),
    )
}

/// A message as a person reads it: subject, text, HTML, Message-ID.
struct Mail {
    to: Vec<String>,
    subject: String,
    text: String,
    html: String,
    message_id: String,
}

fn read_mail(r: &Received) -> Mail {
    let m = mail_parser::MessageParser::default()
        .parse(&r.raw)
        .expect("a message");
    Mail {
        to: r.rcpt_to.clone(),
        subject: m.subject().unwrap_or_default().to_string(),
        text: m.body_text(0).unwrap_or_default().to_string(),
        html: m.body_html(0).unwrap_or_default().to_string(),
        message_id: m.message_id().unwrap_or_default().to_string(),
    }
}

async fn deposit_with_email(app: &TestApp, dar: &ami_tests::Person, email: Option<&str>) -> Value {
    let mut body = new_dossier("Nevers", &["acv"]);
    body["porteur"]["email"] = email.map_or(Value::Null, |e| json!(e));
    let (status, d) = app.deposit_form(dar, &body).await;
    assert_eq!(status, StatusCode::CREATED, "deposit: {d}");
    d
}

async fn messages(app: &TestApp, who: &ami_tests::Person, d: &Value) -> Vec<Value> {
    let id = d["id"].as_str().expect("id");
    let (status, body) = app.get(who, &format!("/dossiers/{id}/messages")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().expect("items").clone()
}

/// Polls the dossier's letters until `done` holds of them.
async fn messages_until(
    app: &TestApp,
    who: &ami_tests::Person,
    d: &Value,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let items = messages(app, who, d).await;
        if done(&items) {
            return items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "letters never reached the expected state: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_deposit_with_an_email_sends_one_accuse_de_reception_in_french(backend: Backend) {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let outbox = outbox_of(&app, settings(&sink));

    // Act
    let d = deposit_with_email(&app, &team.dar, Some("mairie@nevers.example")).await;
    let received = sink.wait_for(1, WAIT).await.expect("one letter");

    // Assert
    let reference = d["reference"].as_str().expect("reference");
    let mail = read_mail(&received[0]);
    assert_eq!(mail.to, vec!["mairie@nevers.example".to_string()]);
    assert!(
        mail.subject.starts_with(&format!(
            "Accusé de réception de votre candidature {reference}"
        )),
        "{}",
        mail.subject
    );
    for expected in [
        reference,
        "6 novembre 2020 à 23 h 30",
        "heure de Paris",
        "Vague : 1",
        "candidature.pdf",
        "budget.xlsx",
        CONTACT,
    ] {
        assert!(
            mail.text.contains(expected),
            "« {expected} » in:\n{}",
            mail.text
        );
    }
    assert!(mail.html.contains(reference));
    let items = messages_until(&app, &team.dar, &d, |m| m[0]["status"] == "envoye").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["kind"], "accuse_reception");
    assert_eq!(items[0]["recipient"], "mairie@nevers.example");
    assert_eq!(items[0]["attempts"], 1);
    assert!(items[0]["sent_at"].is_string());
    let id = items[0]["id"].as_str().expect("id");
    assert!(mail.message_id.starts_with(id), "{}", mail.message_id);
    // Unknown query parameters and unknown dossiers are refused.
    let path = format!(
        "/dossiers/{}/messages?status=envoye",
        d["id"].as_str().unwrap()
    );
    assert_eq!(app.get(&team.dar, &path).await.0, StatusCode::BAD_REQUEST);
    let unknown = format!("/dossiers/{}/messages", uuid::Uuid::new_v4());
    assert_eq!(app.get(&team.dar, &unknown).await.0, StatusCode::NOT_FOUND);
    outbox.stop().await;
    app.stop().await;
}

async fn a_dossier_without_an_email_keeps_its_letter_sans_destinataire(backend: Backend) {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let outbox = outbox_of(&app, settings(&sink));

    // Act: one without an address, then one with, whose letter says the
    // worker has looked at the outbox since.
    let silent = deposit_with_email(&app, &team.dar, None).await;
    let other = deposit_with_email(&app, &team.dar, Some("mairie@autre.example")).await;
    messages_until(&app, &team.dar, &other, |m| m[0]["status"] == "envoye").await;

    // Assert
    let items = messages(&app, &team.dar, &silent).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "sans_destinataire");
    assert_eq!(items[0]["recipient"], Value::Null);
    assert_eq!(items[0]["attempts"], 0);
    outbox.stop().await;
    let received = sink.received().expect("received");
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].rcpt_to,
        vec!["mairie@autre.example".to_string()]
    );
    app.stop().await;
}

async fn a_laureat_decision_sends_the_decision_letter(backend: Backend) {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let d = deposit_with_email(&app, &team.dar, Some("mairie@nevers.example")).await;
    app.must_act(&team.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    app.must_act(&team.acv, &d, "avis_acv", json!({"verdict": "favorable"}))
        .await;

    // Act
    app.must_act(&team.boss, &d, "declarer_laureat", json!({}))
        .await;
    let outbox = outbox_of(&app, settings(&sink));
    let received = sink.wait_for(2, WAIT).await.expect("two letters");

    // Assert
    let reference = d["reference"].as_str().expect("reference");
    let decision = received
        .iter()
        .map(read_mail)
        .find(|m| m.subject.starts_with("Votre candidature"))
        .expect("a decision letter");
    assert!(
        decision.subject.ends_with("est retenue") && decision.subject.contains(reference),
        "{}",
        decision.subject
    );
    assert!(decision.text.contains(CONTACT), "{}", decision.text);
    let items = messages_until(&app, &team.dar, &d, |m| {
        m.len() == 2 && m.iter().all(|x| x["status"] == "envoye")
    })
    .await;
    assert_eq!(items[1]["kind"], "decision");
    outbox.stop().await;
    app.stop().await;
}

async fn a_refusal_sends_its_motivation_intact_in_text_and_escaped_in_html(backend: Backend) {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let d = deposit_with_email(&app, &team.dar, Some("mairie@nevers.example")).await;
    app.must_act(&team.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;
    let motivation = "Budget <incomplet> & plan « flou »";

    // Act
    app.must_act(&team.boss, &d, "refuser", json!({"motivation": motivation}))
        .await;
    let outbox = outbox_of(&app, settings(&sink));
    let received = sink.wait_for(2, WAIT).await.expect("two letters");

    // Assert
    let decision = received
        .iter()
        .map(read_mail)
        .find(|m| m.subject.starts_with("Votre candidature"))
        .expect("a decision letter");
    assert!(
        decision.subject.ends_with("n'est pas retenue"),
        "{}",
        decision.subject
    );
    assert!(decision.text.contains(motivation), "{}", decision.text);
    assert!(
        decision
            .html
            .contains("Budget &#60;incomplet&#62; &#38; plan"),
        "{}",
        decision.html
    );
    assert!(!decision.html.contains("<incomplet>"));
    outbox.stop().await;
    app.stop().await;
}

async fn a_recipient_refused_for_now_is_retried_then_given_up(backend: Backend) {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let mut s = settings(&sink);
    s.max_attempts = 3;
    let outbox = outbox_of(&app, s);

    // Act
    let d = deposit_with_email(&app, &team.dar, Some(REFUSED_FOR_NOW)).await;

    // Assert: waiting after a first refusal, with its reason…
    let waiting = messages_until(&app, &team.dar, &d, |m| {
        m[0]["attempts"] == 1 && m[0]["last_error"].is_string()
    })
    .await;
    assert_eq!(waiting[0]["status"], "en_attente");
    assert!(
        waiting[0]["last_error"].as_str().unwrap().contains("451"),
        "{}",
        waiting[0]["last_error"]
    );
    // …tried again after the wait, and given up after the last attempt.
    let at = |m: &Value| {
        chrono::DateTime::parse_from_rfc3339(m["next_attempt_at"].as_str().expect("instant"))
            .expect("RFC 3339")
    };
    // (While claimed, a letter counts its attempt but keeps its last wait.)
    let first_wait = at(&waiting[0]);
    let retried = messages_until(&app, &team.dar, &d, |m| {
        m[0]["attempts"] == 2 && m[0]["status"] == "en_attente" && at(&m[0]) > first_wait
    })
    .await;
    let second_wait = at(&retried[0]) - first_wait;
    assert!(
        second_wait >= chrono::Duration::seconds(2),
        "the wait doubles: {second_wait}"
    );
    let given_up = messages_until(&app, &team.dar, &d, |m| m[0]["status"] == "echec").await;
    assert_eq!(given_up[0]["attempts"], 3);
    assert!(sink.received().expect("received").is_empty());
    outbox.stop().await;
    app.stop().await;
}

async fn a_recipient_refused_for_good_ends_in_echec_at_once(backend: Backend) {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let outbox = outbox_of(&app, settings(&sink));

    // Act
    let d = deposit_with_email(&app, &team.dar, Some(REFUSED_FOR_GOOD)).await;

    // Assert
    let items = messages_until(&app, &team.dar, &d, |m| m[0]["status"] == "echec").await;
    assert_eq!(items[0]["attempts"], 1);
    assert!(
        items[0]["last_error"].as_str().unwrap().contains("550"),
        "{}",
        items[0]["last_error"]
    );
    assert!(sink.received().expect("received").is_empty());
    outbox.stop().await;
    app.stop().await;
}

async fn two_instances_send_each_letter_once(backend: Backend) {
    // Arrange: letters waiting, then two workers on two connections.
    let sink = SmtpSink::start().expect("smtp sink");
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let n = 6;
    let mut dossiers = Vec::new();
    for i in 0..n {
        let email = format!("mairie{i}@ville.example");
        dossiers.push(deposit_with_email(&app, &team.dar, Some(&email)).await);
    }
    let other = ami_service::store::connect(&app.db.url.parse().expect("url"))
        .await
        .expect("second connection");

    // Act
    let first = outbox_of(&app, settings(&sink));
    let second = Outbox::spawn(
        other.clone(),
        Arc::clone(&app.definition),
        settings(&sink),
        Clock::System,
        Arc::new(tokio::sync::Notify::new()),
    );
    sink.wait_for(n, WAIT).await.expect("every letter");
    for d in &dossiers {
        messages_until(&app, &team.dar, d, |m| m[0]["status"] == "envoye").await;
    }
    first.stop().await;
    second.stop().await;

    // Assert
    let received = sink.received().expect("received");
    assert_eq!(received.len(), n, "each letter once");
    let mut ids: Vec<String> = received.iter().map(|r| read_mail(r).message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    other.close().await;
    app.stop().await;
}

async fn the_digest_is_enqueued_once_per_agency_and_day_by_two_instances(backend: Backend) {
    // Arrange: a dossier waiting on the DAR (no letter of its own).
    let sink = SmtpSink::start().expect("smtp sink");
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let d = deposit_with_email(&app, &team.dar, None).await;
    let other = ami_service::store::connect(&app.db.url.parse().expect("url"))
        .await
        .expect("second connection");
    let digests = |sink: &SmtpSink| {
        let mut s = settings(sink);
        s.digest_hour = 0;
        s.digest_to = vec![
            ("dar".into(), "dar@cnam.example".into()),
            ("acv".into(), "acv@anct.example".into()),
        ];
        s
    };

    // Act
    let first = outbox_of(&app, digests(&sink));
    let second = Outbox::spawn(
        other.clone(),
        Arc::clone(&app.definition),
        digests(&sink),
        Clock::System,
        Arc::new(tokio::sync::Notify::new()),
    );
    sink.wait_for(2, WAIT).await.expect("two digests");
    // A few more looks of both workers: nothing more may come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.stop().await;
    second.stop().await;

    // Assert
    let mails: Vec<Mail> = sink
        .received()
        .expect("received")
        .iter()
        .map(read_mail)
        .collect();
    assert_eq!(mails.len(), 2, "one digest per agency");
    let dar = mails
        .iter()
        .find(|m| m.to == vec!["dar@cnam.example".to_string()])
        .expect("the DAR's digest");
    assert!(
        dar.subject.starts_with("AMI – 1 dossier en attente"),
        "{}",
        dar.subject
    );
    assert!(
        dar.text.contains(d["reference"].as_str().unwrap()),
        "{}",
        dar.text
    );
    let acv = mails
        .iter()
        .find(|m| m.to == vec!["acv@anct.example".to_string()])
        .expect("the ACV's digest");
    assert!(
        acv.subject.contains("aucun dossier en attente"),
        "{}",
        acv.subject
    );
    other.close().await;
    app.stop().await;
}

async fn ami_mail_preview_prints_the_accuse_of_a_demo_dossier(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;
    let files = tempfile::tempdir().expect("temp dir");
    let files_url = format!("file://{}", files.path().display());
    let ami = ami_tests::process::Program::new(env!("CARGO_BIN_EXE_ami-under-test"));
    ami.run(&["demo", "--database-url", &db.url, "--files-url", &files_url])
        .expect("ami demo");
    let store = ami_service::store::connect(&db.url.parse().expect("url"))
        .await
        .expect("connect");
    let filter = ami_service::store::DossierFilter {
        limit: 1,
        ..Default::default()
    };
    let d = store
        .list_dossiers(&filter)
        .await
        .expect("list")
        .items
        .remove(0);
    let laureat = ami_service::store::DossierFilter {
        states: vec!["laureat".into()],
        limit: 1,
        ..Default::default()
    };
    let decided = store
        .list_dossiers(&laureat)
        .await
        .expect("list")
        .items
        .remove(0);
    store.close().await;
    let reference = d.reference.to_string();

    // Act
    let text = ami
        .run(&[
            "mail",
            "preview",
            "accuse_reception",
            &reference,
            "--mail-contact",
            CONTACT,
            "--database-url",
            &db.url,
        ])
        .expect("ami mail preview");
    let html = ami
        .run(&[
            "mail",
            "preview",
            "accuse_reception",
            &d.id.to_string(),
            "--html",
            "--database-url",
            &db.url,
        ])
        .expect("ami mail preview --html");

    let decision = ami
        .run(&[
            "mail",
            "preview",
            "decision",
            decided.reference.as_str(),
            "--database-url",
            &db.url,
        ])
        .expect("ami mail preview decision");
    let digest = ami
        .run(&[
            "mail",
            "preview",
            "digest",
            "dar",
            "--database-url",
            &db.url,
        ])
        .expect("ami mail preview digest");

    // Assert
    assert!(
        text.starts_with(&format!(
            "Accusé de réception de votre candidature {reference}"
        )),
        "{text}"
    );
    assert!(text.contains(CONTACT), "{text}");
    assert!(text.contains(d.commune.as_str()), "{text}");
    assert!(
        html.contains("<html") && html.contains(&reference),
        "{html}"
    );
    assert!(
        decision.starts_with(&format!("Votre candidature {}", decided.reference))
            && decision
                .lines()
                .next()
                .unwrap_or_default()
                .ends_with("est retenue"),
        "{decision}"
    );
    assert!(digest.starts_with("AMI – "), "{digest}");
    assert!(digest.contains("Cnam"), "{digest}");
}

async fn ami_serve_given_a_relay_sends_the_accuse_of_a_deposit(backend: Backend) {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let db = TestDb::new(backend).await;
    let mut ami = ami_tests::process::Program::new(env!("CARGO_BIN_EXE_ami-under-test"));
    ami.env.extend([
        ("AMI_SMTP_URL".to_string(), sink.url()),
        ("AMI_MAIL_FROM".to_string(), FROM.to_string()),
        ("AMI_MAIL_CONTACT".to_string(), CONTACT.to_string()),
    ]);
    let server = ami_tests::process::AmiProcess::start(&ami, &db.url)
        .await
        .expect("ami serve");
    let (_, token) = ami
        .create_token(&db.url, "Camille Martin", "dar", "agent")
        .expect("token");
    let mut body = new_dossier("Nevers", &["acv"]);
    body["porteur"]["email"] = json!("mairie@nevers.example");

    // Act
    let res = reqwest::Client::new()
        .post(format!("{}/dossiers", server.api()))
        .bearer_auth(&token)
        .multipart(ami_tests::deposit_multipart(&body))
        .send()
        .await
        .expect("deposit");
    assert_eq!(res.status(), StatusCode::CREATED);
    let received = sink.wait_for(1, WAIT).await.expect("the accusé");

    // Assert
    let mail = read_mail(&received[0]);
    assert!(
        mail.subject.starts_with("Accusé de réception"),
        "{}",
        mail.subject
    );
    assert!(mail.text.contains(CONTACT), "{}", mail.text);
    drop(server);
}

async fn a_deposit_wakes_the_worker_without_waiting_for_its_tick(backend: Backend) {
    // Arrange: a worker that would look again only in an hour.
    let sink = SmtpSink::start().expect("smtp sink");
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let mut s = settings(&sink);
    s.tick = Duration::from_secs(3600);
    let outbox = outbox_of(&app, s);

    // Act
    deposit_with_email(&app, &team.dar, Some("mairie@nevers.example")).await;

    // Assert
    sink.wait_for(1, WAIT).await.expect("sent at once");
    outbox.stop().await;
    app.stop().await;
}

async fn letters_wait_while_the_relay_is_down_then_go_once_it_is_back(backend: Backend) {
    // Arrange: a relay nobody listens at.
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let port = ami_tests::process::free_port().expect("port");
    let down = SmtpSender::from_url(&format!("smtp://127.0.0.1:{port}"), FROM).expect("sender");
    let mut s = OutboxSettings::new(Some(down), FROM, CONTACT);
    s.tick = Duration::from_millis(50);
    s.first_retry = chrono::Duration::seconds(1);
    let outbox = outbox_of(&app, s);
    let first = deposit_with_email(&app, &team.dar, Some("mairie@une.example")).await;
    let second = deposit_with_email(&app, &team.dar, Some("mairie@deux.example")).await;

    // Act: both tried once and kept…
    for d in [&first, &second] {
        let items = messages_until(&app, &team.dar, d, |m| m[0]["last_error"].is_string()).await;
        assert_eq!(items[0]["status"], "en_attente");
        assert_eq!(items[0]["attempts"], 1);
    }
    outbox.stop().await;
    // …then a relay that answers.
    let sink = SmtpSink::start().expect("smtp sink");
    let outbox = outbox_of(&app, settings(&sink));

    // Assert
    sink.wait_for(2, WAIT).await.expect("both letters");
    for d in [&first, &second] {
        let items = messages_until(&app, &team.dar, d, |m| m[0]["status"] == "envoye").await;
        assert_eq!(items[0]["attempts"], 2);
    }
    outbox.stop().await;
    app.stop().await;
}

on_both_backends!(
    a_deposit_with_an_email_sends_one_accuse_de_reception_in_french,
    a_dossier_without_an_email_keeps_its_letter_sans_destinataire,
    a_laureat_decision_sends_the_decision_letter,
    a_refusal_sends_its_motivation_intact_in_text_and_escaped_in_html,
    a_recipient_refused_for_now_is_retried_then_given_up,
    a_recipient_refused_for_good_ends_in_echec_at_once,
    two_instances_send_each_letter_once,
    the_digest_is_enqueued_once_per_agency_and_day_by_two_instances,
    ami_mail_preview_prints_the_accuse_of_a_demo_dossier,
    ami_serve_given_a_relay_sends_the_accuse_of_a_deposit,
    a_deposit_wakes_the_worker_without_waiting_for_its_tick,
    letters_wait_while_the_relay_is_down_then_go_once_it_is_back,
);

#[test]
fn serve_refuses_an_smtp_url_without_a_sender_in_french() {
    // Arrange
    let ami = ami_tests::process::Program::new(env!("CARGO_BIN_EXE_ami-under-test"));
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("ami.db").display());

    // Act
    let refused = ami
        .run(&[
            "serve",
            "--smtp-url",
            "smtp://127.0.0.1:25",
            "--database-url",
            &db,
        ])
        .expect_err("refused");

    // Assert
    let message = refused.to_string();
    assert!(
        message.contains("--smtp-url donné sans --mail-from"),
        "{message}"
    );
    assert!(
        !dir.path().join("ami.db").exists(),
        "refused before opening the database"
    );
}
