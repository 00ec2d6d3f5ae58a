//! Manners of the API: bodies that cannot be read are explained in French
//! naming the field, with no English left from the parser; every 401 says
//! how to authenticate (RFC 6750 `WWW-Authenticate`) and the `Bearer`
//! scheme is read in any case (RFC 9110); the program's logs carry no
//! colour codes when they do not go to a terminal.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ami_tests::process::free_port;
use ami_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");

/// Words of the English of serde_json, serde, chrono and uuid that must
/// never reach a `detail` outside the « » quoting a field or a value.
const ENGLISH_WORDS: &[&str] = &[
    "expected",
    "while",
    "invalid",
    "value",
    "input",
    "parsing",
    "EOF",
    "found",
    "missing",
    "unknown",
    "duplicate",
    "field",
    "string",
    "integer",
    "floating",
    "sequence",
    "map",
    "struct",
    "formatted",
    "trailing",
    "premature",
    "at",
    "line",
    "column",
    "or",
    "of",
];

/// The words of `detail` outside « … »; `expected_version` is one word.
fn words_outside_quotes(detail: &str) -> Vec<String> {
    let mut outside = String::new();
    let mut depth = 0usize;
    for c in detail.chars() {
        match c {
            '«' => depth += 1,
            '»' => depth = depth.saturating_sub(1),
            c if depth == 0 => outside.push(c),
            _ => {}
        }
    }
    outside
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn id_of(d: &Value) -> String {
    d["id"].as_str().expect("id").to_string()
}

/// Asserts a 400 with this code and field (None: no field), a `detail`
/// holding every one of `words` and no English; returns the detail.
fn assert_french_400(reply: &Reply, code: &str, field: Option<&str>, words: &[&str]) -> String {
    let body = reply.assert_problem(StatusCode::BAD_REQUEST, code);
    match field {
        Some(f) => assert_eq!(body["field"], f, "field of {}", reply.text),
        None => assert!(body.get("field").is_none(), "no field in {}", reply.text),
    }
    let detail = body["detail"].as_str().expect("detail").to_string();
    for w in words {
        assert!(detail.contains(w), "{w:?} not in {detail:?}");
    }
    for w in words_outside_quotes(&detail) {
        assert!(
            !ENGLISH_WORDS.contains(&w.as_str()),
            "English {w:?} left in {detail:?}"
        );
    }
    for phrase in ["invalid type", "at line", "Champ « ["] {
        assert!(!detail.contains(phrase), "{phrase:?} in {detail:?}");
    }
    detail
}

async fn post_raw(app: &TestApp, who: &Person, path: &str, body: &str) -> Reply {
    app.send(
        Method::POST,
        path,
        Some(who),
        &[JSON],
        Some(body.as_bytes().to_vec()),
    )
    .await
}

// ---- Bodies that cannot be read, in French ---------------------------------------

async fn a_deposit_body_error_is_french_and_names_the_field(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let with = |key: &str, value: Value| {
        let mut b = new_dossier("Nevers", &["acv"]);
        b[key] = value;
        b.to_string()
    };
    let without = |key: &str| {
        let mut b = new_dossier("Nevers", &["acv"]);
        b.as_object_mut().expect("object").remove(key);
        b.to_string()
    };
    let mut no_nom = new_dossier("Nevers", &["acv"]);
    no_nom["porteur"]
        .as_object_mut()
        .expect("porteur")
        .remove("nom");
    let mut siret = new_dossier("Nevers", &["acv"]);
    siret["porteur"]["siret"] = json!("12345678900012");
    let date = "une date et heure RFC 3339, p. ex. 2020-11-06T23:30:00+01:00";
    #[rustfmt::skip]
    let cases: Vec<(String, &str, Option<&str>, Vec<&str>)> = vec![
        (String::new(), "malformed_json", None, vec!["vide"]),
        (r#"{"commune": "#.into(), "malformed_json", Some("commune"), vec!["JSON mal formé", "une valeur est attendue"]),
        (r#"{"commune": "Nevers""#.into(), "malformed_json", None, vec!["« } » manquant"]),
        (r#"{"commune": "Nevers",}"#.into(), "malformed_json", None, vec!["virgule en trop"]),
        (format!("{} x", new_dossier("Nevers", &["acv"])), "malformed_json", None, vec!["en trop"]),
        (with("received_at", json!("2020-11-06")), "invalid_body", Some("received_at"), vec![date, "incomplète"]),
        (with("received_at", json!("6 novembre 2020")), "invalid_body", Some("received_at"), vec![date]),
        (with("received_at", json!("2020-11-31T10:00:00Z")), "invalid_body", Some("received_at"), vec![date, "hors limites"]),
        (with("received_at", json!(1_604_701_800)), "invalid_body", Some("received_at"), vec![date, "l'entier 1604701800"]),
        (with("code_insee", json!(58194)), "invalid_body", Some("code_insee"), vec!["Le champ « code_insee » doit être un texte ; reçu : l'entier 58194."]),
        (with("programmes", json!("acv")), "invalid_body", Some("programmes"), vec!["doit être une liste"]),
        (with("porteur", json!("Ville de Nevers")), "invalid_body", Some("porteur"), vec!["« porteur » doit être un objet"]),
        (with("pieces", json!([{"kind": "budget_previsionnel", "filename": "b.xlsx", "size": "12 Kio"}])), "invalid_body", Some("pieces[0].size"), vec!["un entier positif"]),
        (with("priorite", json!("haute")), "invalid_body", Some("priorite"), vec!["Champ inconnu « priorite »", "commune"]),
        (siret.to_string(), "invalid_body", Some("porteur.siret"), vec!["Champ inconnu « porteur.siret »", "nom, email"]),
        (without("commune"), "invalid_body", Some("commune"), vec!["Le champ obligatoire « commune » est absent."]),
        (no_nom.to_string(), "invalid_body", Some("porteur.nom"), vec!["Le champ obligatoire « porteur.nom » est absent."]),
        (r#"["Nevers", "58194"]"#.into(), "invalid_body", None, vec!["Le corps de la requête doit être un objet JSON."]),
        (r#""Nevers""#.into(), "invalid_body", None, vec!["Le corps de la requête doit être un objet JSON."]),
        ("58194".into(), "invalid_body", None, vec!["Le corps de la requête doit être un objet JSON."]),
        ("null".into(), "invalid_body", None, vec!["Le corps de la requête doit être un objet JSON."]),
    ];

    for (body, code, field, words) in &cases {
        // Act
        let reply = post_raw(&app, &dar, "/dossiers", body).await;

        // Assert
        assert_french_400(&reply, code, *field, words);
    }
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn a_transition_body_error_is_french_and_names_the_field(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let d = app.deposit(&dar, &["acv"]).await;
    let path = format!("/dossiers/{}/transitions", id_of(&d));
    let before = app.event_count().await;
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Option<&str>, &str)> = vec![
        (r#"{"action": "instruire", "expected_version": "1"}"#, "invalid_body", Some("expected_version"),
            "Le champ « expected_version » doit être un entier positif ; reçu : le texte « 1 »."),
        (r#"{"action": "instruire", "expected_version": -1}"#, "invalid_body", Some("expected_version"),
            "Le champ « expected_version » doit être un entier positif ; reçu : l'entier -1."),
        (r#"{"action": "instruire", "expected_version": 1.5}"#, "invalid_body", Some("expected_version"),
            "Le champ « expected_version » doit être un entier positif ; reçu : le nombre 1.5."),
        (r#"{"action": "instruire", "expected_version": null}"#, "invalid_body", Some("expected_version"),
            "Le champ « expected_version » doit être un entier positif ; reçu : null."),
        (r#"{"action": 3, "expected_version": 1}"#, "invalid_body", Some("action"),
            "Le champ « action » doit être un texte ; reçu : l'entier 3."),
        (r#"{"action": "instruire"}"#, "invalid_body", Some("expected_version"),
            "Le champ obligatoire « expected_version » est absent."),
        (r#"{"action": "instruire", "expected_version": 1, "urgent": true}"#, "invalid_body", Some("urgent"),
            "Champ inconnu « urgent » ; champs acceptés ici : action, expected_version, verdict, motivation, comment"),
        (r#"{"action": "instruire", "action": "refuser", "expected_version": 1}"#, "invalid_body", Some("action"),
            "Le champ « action » apparaît deux fois ; gardez-en un seul."),
        (r#"{"action": "instruire", "expected_version": 1e999}"#, "malformed_json", Some("expected_version"),
            "JSON mal formé dans le champ « expected_version » (ligne 1, colonne 49) : nombre trop grand."),
        (r#"{"action": "instruire", "expected_version": }"#, "malformed_json", Some("expected_version"),
            "JSON mal formé dans le champ « expected_version » (ligne 1, colonne 45) : une valeur est attendue ici (texte entre guillemets, nombre, true, false, null, liste ou objet)."),
        (r#"{"action": "instruire" "expected_version": 1}"#, "malformed_json", None,
            "JSON mal formé (ligne 1, colonne 24) : une virgule ou « } » est attendu dans l'objet."),
        (r#"{"action": "instr"#, "malformed_json", Some("action"),
            "JSON mal formé dans le champ « action » (ligne 1, colonne 17) : le corps s'arrête avant la fin d'un texte (guillemet fermant manquant)."),
        (r#"[1, 2]"#, "invalid_body", None, "Le corps de la requête doit être un objet JSON."),
    ];

    for (body, code, field, detail) in &cases {
        // Act
        let reply = post_raw(&app, &dar, &path, body).await;

        // Assert
        let got = assert_french_400(&reply, code, *field, &[]);
        // A prefix: the list of accepted fields grows with the API.
        assert!(got.starts_with(detail), "{got:?} for {body}");
    }
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

// ---- 401: the challenge, and the scheme in any case ------------------------------

/// GET /dossiers with this `Authorization` value (None: no header); the
/// status, the `WWW-Authenticate` header and the body.
async fn get_with(
    app: &TestApp,
    authorization: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = app.client.get(app.url("/dossiers"));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii challenge").to_string());
    let body = serde_json::from_str(&res.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    (status, challenge, body)
}

const CHALLENGE: &str = r#"Bearer realm="ami""#;
const CHALLENGE_INVALID: &str = r#"Bearer realm="ami", error="invalid_token""#;

async fn every_401_carries_a_bearer_challenge(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let gone = app.person("Dominique Bernard", "dar", "agent").await;
    assert!(app
        .store
        .revoke_token(gone.token_id, chrono::Utc::now())
        .await
        .expect("revoke"));
    let unknown = format!(
        "ami_{}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        uuid::Uuid::new_v4().simple()
    );
    let cases = [
        (None, "missing_token", CHALLENGE),
        (
            Some("Bearer garbage".to_string()),
            "invalid_token",
            CHALLENGE_INVALID,
        ),
        (
            Some(format!("Bearer {unknown}")),
            "invalid_token",
            CHALLENGE_INVALID,
        ),
        (
            Some(format!("Basic {}", dar.token)),
            "invalid_token",
            CHALLENGE_INVALID,
        ),
        (
            Some(format!("Bearer {}", gone.token)),
            "revoked_token",
            CHALLENGE_INVALID,
        ),
    ];

    for (authorization, code, challenge) in &cases {
        // Act
        let (status, got, body) = get_with(&app, authorization.as_deref()).await;

        // Assert
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{authorization:?}: {body}"
        );
        assert_eq!(body["code"], *code, "{authorization:?}: {body}");
        assert_eq!(got.as_deref(), Some(*challenge), "{authorization:?}");
    }

    // A write checks its token on its own connection: same answer.
    let res = app
        .client
        .post(app.url("/dossiers"))
        .bearer_auth(&gone.token)
        .json(&new_dossier("Nevers", &["acv"]))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(CHALLENGE_INVALID)
    );
    let res = app
        .client
        .post(app.url("/dossiers"))
        .json(&new_dossier("Nevers", &["acv"]))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(CHALLENGE)
    );

    // Answers other than 401 carry no challenge.
    let (status, got, _) = get_with(&app, Some(&format!("Bearer {}", dar.token))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, None);
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

async fn the_bearer_scheme_is_read_in_any_case(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let accepted = [
        format!("Bearer {}", dar.token),
        format!("bearer {}", dar.token),
        format!("BEARER {}", dar.token),
        format!("bEaReR {}", dar.token),
        format!("Bearer   {}", dar.token),
    ];
    let refused = [
        format!("Bearer{}", dar.token),
        format!("Bearers {}", dar.token),
        format!("Bear {}", dar.token),
        "bearer".to_string(),
        "bearer ".to_string(),
    ];

    for value in &accepted {
        // Act
        let (status, challenge, body) = get_with(&app, Some(value)).await;

        // Assert
        assert_eq!(status, StatusCode::OK, "{value}: {body}");
        assert!(body["items"].is_array(), "{value}: {body}");
        assert_eq!(challenge, None);
    }
    for value in &refused {
        let (status, challenge, body) = get_with(&app, Some(value)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}: {body}");
        assert_eq!(body["code"], "invalid_token", "{value}: {body}");
        assert_eq!(challenge.as_deref(), Some(CHALLENGE_INVALID));
    }

    // A write with a lower-case scheme goes through too.
    let res = app
        .client
        .post(app.url("/dossiers"))
        .header("authorization", format!("bearer {}", dar.token))
        .json(&new_dossier("Nevers", &["acv"]))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
    app.stop().await;
}

on_both_backends!(
    a_deposit_body_error_is_french_and_names_the_field,
    a_transition_body_error_is_french_and_names_the_field,
    every_401_carries_a_bearer_challenge,
    the_bearer_scheme_is_read_in_any_case,
);

// ---- Logs without colour codes when not at a terminal ----------------------------

/// `ami serve` with its stderr in a file (not a terminal) and logs at
/// `info`: after a request answered, the log has lines and no ANSI escape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_file_carry_no_colour_codes() {
    // Arrange
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("ami.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let addr = format!("127.0.0.1:{}", free_port().expect("free port"));
    let db = format!("sqlite://{}", dir.path().join("ami.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ami-under-test"))
        .args(["serve", "--addr", &addr, "--database-url", &db])
        .env("AMI_LOG", "info,sqlx=warn")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn ami serve");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);

    // Act
    let mut answered = false;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "ami serve exited ({status}): {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if let Ok(res) = client.get(format!("http://{addr}/healthz")).send().await {
            answered = res.status().is_success();
            if answered {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = client
        .get(format!("http://{addr}/api/v1/dossiers"))
        .send()
        .await
        .map(|r| r.status());
    // The response line is written once the answer is sent; leave it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let _ = child.wait();

    // Assert
    assert!(answered, "ami serve never answered /healthz");
    assert_eq!(refused.ok(), Some(StatusCode::UNAUTHORIZED));
    let mut bytes = Vec::new();
    std::fs::File::open(&log_path)
        .expect("open log")
        .read_to_end(&mut bytes)
        .expect("read log");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.lines().count() >= 2,
        "expected a start line and a response line, got {text:?}"
    );
    assert!(text.contains("response"), "no response line in {text:?}");
    assert!(
        !bytes.windows(2).any(|w| w == b"\x1b["),
        "ANSI escape in the log: {text:?}"
    );
    assert!(!bytes.contains(&0x1b), "escape byte in the log: {text:?}");
}
