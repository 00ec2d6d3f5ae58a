//! Fuzzing the router in-process (`tower::ServiceExt::oneshot` on
//! `ami_service::http::router`): random methods × paths (known routes with
//! random ids and segments, unknown paths) × headers (content type, token)
//! × JSON bodies (valid shapes with mutated fields, wrong types, huge
//! strings, SQL, HTML, control characters, unicode, deep nesting, random
//! bytes). No answer is a 5xx, nothing panics, and every 4xx wrote nothing
//! (journal length and dossier count unchanged). Strings that are stored come
//! back byte for byte. Every 4xx is an RFC 9457 problem with a `code`.
//!
//! `AMI_FUZZ_CASES` sets the number of cases per backend (300 by default).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ami_service::http;
use ami_tests::*;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use sqlx::Row;
use tower::ServiceExt;

const SQL: &[&str] = &[
    "'; DROP TABLE dossier; --",
    "' OR '1'='1",
    "Robert'); DROP TABLE dossier_event;--",
    "1; select pg_sleep(5); --",
    "%",
    "_",
    "\\",
    "%' escape '\\",
    "\" OR \"\"=\"",
    "$1",
    "'||(select secret_sha256 from api_token limit 1)||'",
];
const HTML: &[&str] = &[
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\"><svg/onload=alert(1)>",
    "&lt;&amp;&#0;",
];
const ODD: &[&str] = &[
    "",
    " ",
    "null",
    "\u{0}",
    "a\u{0}b",
    "\u{202e}gnp.exe",
    "\u{feff}BOM",
    "e\u{301}",
    "Ünïcödé 🚀 家 𝕏",
    "\u{fffd}\u{ffff}",
    "../../etc/passwd",
    "58194",
    "2A004",
    "acv",
    "ti",
    "favorable",
    "defavorable",
    "instruire",
    "deposer",
    "ajouter_piece",
    "declarer_laureat",
    "dossier_candidature",
];

/// Strings meant to hurt.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(SQL).prop_map(str::to_string),
        2 => prop::sample::select(HTML).prop_map(str::to_string),
        3 => prop::sample::select(ODD).prop_map(str::to_string),
        3 => "\\PC{0,40}",
        2 => "[\\x00-\\x1f\\x7f]{1,4}",
        2 => any::<String>(),
        2 => (1usize..=10_001, prop::sample::select(vec!['a', 'é', '🚀', '\'', '<', '\n', ' ', '%']))
            .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
        1 => (prop::sample::select(vec![9_999usize, 10_000, 10_001, 300, 301]), prop::sample::select(vec!['x', '家']))
            .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(-1)),
        Just(json!(1.5)),
        nasty().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(nasty(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field value: usually a string, sometimes any JSON.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => nasty().prop_map(Value::String),
        2 => json_value(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(Vec<String>, Value),
    Remove(Vec<String>),
}

fn mutation(fields: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let path = prop::sample::select(fields)
        .prop_map(|f| f.split('.').map(str::to_string).collect::<Vec<_>>());
    prop_oneof![
        4 => (path.clone(), field_value()).prop_map(|(p, v)| Mutation::Set(p, v)),
        1 => path.prop_map(Mutation::Remove),
        1 => (nasty(), json_value()).prop_map(|(k, v)| Mutation::Set(vec![k], v)),
    ]
}

fn mutate(mut body: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        match m {
            Mutation::Set(p, v) => set(&mut body, p, Some(v)),
            Mutation::Remove(p) => set(&mut body, p, None),
        }
    }
    body
}

/// Sets (or removes) the field at `path`, making objects on the way.
fn set(at: &mut Value, path: &[String], value: Option<&Value>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(o) = at.as_object_mut() else { return };
    if rest.is_empty() {
        match value {
            Some(v) => {
                o.insert(first.clone(), v.clone());
            }
            None => {
                o.remove(first);
            }
        }
        return;
    }
    let next = o.entry(first.clone()).or_insert_with(|| json!({}));
    if !next.is_object() {
        *next = json!({});
    }
    set(next, rest, value);
}

const DEPOSIT_FIELDS: &[&str] = &[
    "commune",
    "code_insee",
    "porteur",
    "porteur.nom",
    "porteur.email",
    "programmes",
    "received_at",
    "pieces",
    "commune",
];
const TRANSITION_FIELDS: &[&str] = &[
    "action",
    "expected_version",
    "verdict",
    "motivation",
    "comment",
    "motivation",
];
const PIECE_FIELDS: &[&str] = &["filename", "size", "sha256", "expected_version", "comment"];

/// A dossier of the fixture, one made up, or a segment that is no UUID.
#[derive(Debug, Clone)]
enum Id {
    Known(usize),
    Random(u128),
    Garbage(String),
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        4 => (0usize..8).prop_map(Id::Known),
        1 => any::<u128>().prop_map(Id::Random),
        1 => nasty().prop_map(|s| Id::Garbage(s.chars().take(200).collect())),
    ]
}

#[derive(Debug, Clone)]
enum Route {
    List(Vec<(String, String)>),
    Dossier(Id),
    Transitions(Id),
    Piece(Id, String),
    History(Id),
    Events(Vec<(String, String)>),
    Fixed(&'static str),
    Unknown(Vec<String>),
}

fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        4 => prop::sample::select(vec!["state", "wave", "programme", "awaiting", "q", "limit", "cursor", "after"])
            .prop_map(str::to_string),
        1 => nasty().prop_map(|s| s.chars().take(50).collect()),
    ];
    let value = prop_oneof![
        2 => prop::sample::select(vec!["recu", "instruit", "1", "3", "0", "501", "-1", "acv", "dar", "ti", "MTIz", "0.0", "18446744073709551615.9223372036854775807"])
            .prop_map(str::to_string),
        3 => nasty().prop_map(|s| s.chars().take(400).collect()),
    ];
    prop::collection::vec((key, value), 0..4)
}

fn route() -> impl Strategy<Value = Route> {
    let kind = prop_oneof![
        3 => prop::sample::select(vec!["dossier_candidature", "budget_previsionnel"]).prop_map(str::to_string),
        1 => nasty().prop_map(|s| s.chars().take(200).collect()),
    ];
    prop_oneof![
        2 => query().prop_map(Route::List),
        2 => id().prop_map(Route::Dossier),
        3 => id().prop_map(Route::Transitions),
        2 => (id(), kind).prop_map(|(i, k)| Route::Piece(i, k)),
        1 => id().prop_map(Route::History),
        1 => query().prop_map(Route::Events),
        1 => prop::sample::select(vec![
            "/api/v1/stats", "/api/v1/workflow", "/api/v1/workflow.mmd", "/api/v1/openapi.json",
            "/healthz", "/", "//", "/api", "/api/v1", "/api/v1/", "/api/v2/dossiers",
            "/api/v1/dossiers/", "/api/v1/dossiers//transitions", "/api/v1/%2e%2e/%2e%2e/etc/passwd",
        ])
        .prop_map(Route::Fixed),
        1 => prop::collection::vec(nasty().prop_map(|s| s.chars().take(100).collect()), 0..5).prop_map(Route::Unknown),
    ]
}

/// Percent-encodes everything but unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn qs(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

#[derive(Debug, Clone)]
enum Auth {
    Missing,
    Valid(usize),
    Revoked,
    WrongSecret(usize),
    Raw(String),
    NonUtf8(Vec<u8>),
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        14 => (0usize..4).prop_map(Auth::Valid),
        1 => Just(Auth::Missing),
        1 => Just(Auth::Revoked),
        1 => (0usize..4).prop_map(Auth::WrongSecret),
        1 => prop_oneof![
            nasty(),
            nasty().prop_map(|s| format!("Bearer {s}")),
            any::<u128>().prop_map(|n| format!("Bearer ami_{:032x}_{}", n, "s".repeat(43))),
        ]
        .prop_map(Auth::Raw),
        1 => prop::collection::vec(0x80u8..=0xff, 1..20).prop_map(Auth::NonUtf8),
    ]
}

#[derive(Debug, Clone)]
enum BodySpec {
    None,
    Deposit(Vec<Mutation>),
    Transition(Vec<Mutation>),
    Piece(Vec<Mutation>),
    Json(Value),
    Deep(usize, bool),
    Bytes(Vec<u8>),
    TooLarge,
}

fn body() -> impl Strategy<Value = BodySpec> {
    prop_oneof![
        1 => Just(BodySpec::None),
        4 => prop::collection::vec(mutation(DEPOSIT_FIELDS), 0..3).prop_map(BodySpec::Deposit),
        4 => prop::collection::vec(mutation(TRANSITION_FIELDS), 0..3).prop_map(BodySpec::Transition),
        2 => prop::collection::vec(mutation(PIECE_FIELDS), 0..3).prop_map(BodySpec::Piece),
        2 => json_value().prop_map(BodySpec::Json),
        1 => (1usize..20_000, any::<bool>()).prop_map(|(n, o)| BodySpec::Deep(n, o)),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(BodySpec::Bytes),
        1 => Just(BodySpec::TooLarge),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    route: Route,
    content_type: Option<String>,
    auth: Auth,
    idempotency: Option<String>,
    body: BodySpec,
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
    ])
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        12 => Just(Some("application/json".to_string())),
        1 => Just(None),
        1 => prop::sample::select(vec![
            "application/json; charset=utf-8", "APPLICATION/JSON", "application/problem+json",
            "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
            "application/jsonx", "json", "",
        ])
        .prop_map(|s| Some(s.to_string())),
        1 => nasty().prop_map(Some),
    ]
}

/// A case aimed at a real handler most of the time, at anything otherwise.
fn case() -> impl Strategy<Value = Case> {
    let aimed = (
        prop_oneof![
            3 => prop::collection::vec(mutation(DEPOSIT_FIELDS), 0..3)
                .prop_map(|m| (Method::POST, Route::List(Vec::new()), BodySpec::Deposit(m))),
            4 => (id(), prop::collection::vec(mutation(TRANSITION_FIELDS), 0..3))
                .prop_map(|(i, m)| (Method::POST, Route::Transitions(i), BodySpec::Transition(m))),
            2 => (id(), prop::sample::select(vec!["dossier_candidature", "budget_previsionnel"]), prop::collection::vec(mutation(PIECE_FIELDS), 0..3))
                .prop_map(|(i, k, m)| (Method::PUT, Route::Piece(i, k.to_string()), BodySpec::Piece(m))),
            2 => route().prop_map(|r| (Method::GET, r, BodySpec::None)),
            // A write route with any body at all.
            2 => (id(), body()).prop_flat_map(|(i, b)| prop_oneof![
                Just((Method::POST, Route::List(Vec::new()), b.clone())),
                Just((Method::POST, Route::Transitions(i.clone()), b.clone())),
                Just((Method::PUT, Route::Piece(i, "budget_previsionnel".into()), b)),
            ]),
        ],
        content_type(),
        auth(),
        prop::option::weighted(0.15, prop_oneof![nasty(), "[a-zA-Z0-9-]{1,40}"]),
    )
        .prop_map(|((method, route, body), content_type, auth, idempotency)| Case {
            method,
            route,
            content_type,
            auth,
            idempotency,
            body,
        });
    let wild = (
        method(),
        route(),
        content_type(),
        auth(),
        prop::option::weighted(0.1, nasty()),
        body(),
    )
        .prop_map(
            |(method, route, content_type, auth, idempotency, body)| Case {
                method,
                route,
                content_type,
                auth,
                idempotency,
                body,
            },
        );
    prop_oneof![3 => aimed, 1 => wild]
}

/// What the cases run against.
struct Fixture {
    router: axum::Router,
    pool: sqlx::AnyPool,
    people: Vec<Person>,
    revoked: Person,
    /// (id, version at setup)
    dossiers: Vec<(String, u64)>,
    sent: AtomicUsize,
    server_errors: AtomicUsize,
    statuses: Mutex<BTreeMap<u16, usize>>,
    written: AtomicUsize,
}

impl Fixture {
    fn id(&self, id: &Id) -> String {
        match id {
            Id::Known(i) => self.dossiers[i % self.dossiers.len()].0.clone(),
            Id::Random(n) => uuid::Uuid::from_u128(*n).to_string(),
            Id::Garbage(s) => enc(s),
        }
    }

    fn version(&self, id: &Id) -> u64 {
        match id {
            Id::Known(i) => self.dossiers[i % self.dossiers.len()].1,
            _ => 1,
        }
    }

    fn uri(&self, route: &Route) -> String {
        match route {
            Route::List(q) => format!("/api/v1/dossiers{}", qs(q)),
            Route::Dossier(i) => format!("/api/v1/dossiers/{}", self.id(i)),
            Route::Transitions(i) => format!("/api/v1/dossiers/{}/transitions", self.id(i)),
            Route::Piece(i, k) => format!("/api/v1/dossiers/{}/pieces/{}", self.id(i), enc(k)),
            Route::History(i) => format!("/api/v1/dossiers/{}/history", self.id(i)),
            Route::Events(q) => format!("/api/v1/events{}", qs(q)),
            Route::Fixed(p) => p.to_string(),
            Route::Unknown(segs) => {
                let segs: Vec<String> = segs.iter().map(|s| enc(s)).collect();
                format!("/{}", segs.join("/"))
            }
        }
    }

    fn body(&self, case: &Case) -> (Vec<u8>, Option<Value>) {
        let id = match &case.route {
            Route::Transitions(i) | Route::Piece(i, _) | Route::Dossier(i) | Route::History(i) => {
                Some(i)
            }
            _ => None,
        };
        let version = id.map_or(1, |i| self.version(i));
        let json_body = match &case.body {
            BodySpec::None => return (Vec::new(), None),
            BodySpec::Deposit(m) => mutate(new_dossier("Nevers", &["acv", "ti"]), m),
            BodySpec::Transition(m) => mutate(
                json!({"action": "instruire", "expected_version": version, "verdict": "favorable", "motivation": "ok"}),
                m,
            ),
            BodySpec::Piece(m) => mutate(
                json!({"filename": "budget-v2.xlsx", "expected_version": version}),
                m,
            ),
            BodySpec::Json(v) => v.clone(),
            BodySpec::Deep(n, object) => {
                let (open, close) = if *object {
                    ("{\"a\":", "}")
                } else {
                    ("[", "]")
                };
                let mut s = open.repeat(*n);
                s.push('1');
                s.push_str(&close.repeat(*n));
                return (s.into_bytes(), None);
            }
            BodySpec::Bytes(b) => return (b.clone(), None),
            BodySpec::TooLarge => {
                let v = json!({"commune": "x".repeat(http::BODY_LIMIT + 10)});
                return (serde_json::to_vec(&v).unwrap_or_default(), None);
            }
        };
        (
            serde_json::to_vec(&json_body).unwrap_or_default(),
            Some(json_body),
        )
    }

    fn authorization(&self, auth: &Auth) -> Option<HeaderValue> {
        match auth {
            Auth::Missing => None,
            Auth::Valid(i) => HeaderValue::from_str(&format!(
                "Bearer {}",
                self.people[i % self.people.len()].token
            ))
            .ok(),
            Auth::Revoked => HeaderValue::from_str(&format!("Bearer {}", self.revoked.token)).ok(),
            Auth::WrongSecret(i) => {
                let p = &self.people[i % self.people.len()];
                HeaderValue::from_str(&format!(
                    "Bearer ami_{}_{}",
                    p.token_id.simple(),
                    "W".repeat(43)
                ))
                .ok()
            }
            Auth::Raw(s) => HeaderValue::from_str(s).ok(),
            Auth::NonUtf8(b) => HeaderValue::from_bytes(b).ok(),
        }
    }

    async fn counts(&self) -> (i64, i64) {
        let events: i64 = sqlx::query("select count(*) as n from dossier_event")
            .fetch_one(&self.pool)
            .await
            .expect("count events")
            .try_get("n")
            .expect("n");
        let dossiers: i64 = sqlx::query("select count(*) as n from dossier")
            .fetch_one(&self.pool)
            .await
            .expect("count dossiers")
            .try_get("n")
            .expect("n");
        (events, dossiers)
    }

    async fn run(&self, case: &Case) -> Result<(), TestCaseError> {
        let uri = self.uri(&case.route);
        let (bytes, sent_json) = self.body(case);
        if std::env::var_os("AMI_FUZZ_TRACE").is_some() {
            let shown = format!(
                "{:?} {uri} {:?} {:?}",
                case.method,
                case.auth,
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
            eprintln!("fuzz case: {}", shown.chars().take(600).collect::<String>());
        }
        let mut builder = Request::builder()
            .method(case.method.clone())
            .uri(uri.as_str());
        if let Some(ct) = case
            .content_type
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            builder = builder.header("content-type", ct);
        }
        if let Some(a) = self.authorization(&case.auth) {
            builder = builder.header("authorization", a);
        }
        if let Some(k) = case
            .idempotency
            .as_deref()
            .and_then(|k| HeaderValue::from_str(k).ok())
        {
            builder = builder.header("idempotency-key", k);
        }
        let request = match builder.body(Body::from(bytes)) {
            Ok(r) => r,
            Err(e) => return Err(TestCaseError::reject(format!("not an HTTP request: {e}"))),
        };
        let before = self.counts().await;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| TestCaseError::fail(format!("router error: {e}")))?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let status = response.status();
        let problem = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes() == b"application/problem+json");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| TestCaseError::fail(format!("body: {e}")))?;
        let after = self.counts().await;
        *self
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status.as_u16())
            .or_default() += 1;
        let shown = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        if status.is_server_error() {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
            return Err(TestCaseError::fail(format!(
                "{} {uri} answered {status}: {shown}",
                case.method
            )));
        }
        if status.is_client_error() && before != after {
            return Err(TestCaseError::fail(format!(
                "{} {uri} answered {status} but wrote: {before:?} -> {after:?}: {shown}",
                case.method
            )));
        }
        if status.is_client_error() && case.method != Method::HEAD {
            // Every refusal is an RFC 9457 problem with a stable code (a
            // HEAD answer has no body).
            let code = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_string));
            if !problem || code.is_none() {
                return Err(TestCaseError::fail(format!(
                    "{} {uri} answered {status} without a problem body: {shown}",
                    case.method
                )));
            }
        }
        if after != before {
            self.written.fetch_add(1, Ordering::Relaxed);
        }
        // A deposit that was accepted stores its strings as sent, trimmed
        // and in Unicode form C (« e » + combining accent is « é »).
        if status.as_u16() == 201 {
            let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(sent) = sent_json {
                for (field, shown) in [
                    ("commune", &answer["commune"]),
                    ("porteur", &answer["porteur"]["nom"]),
                ] {
                    let original = if field == "porteur" {
                        &sent["porteur"]["nom"]
                    } else {
                        &sent[field]
                    };
                    if let Some(o) = original.as_str() {
                        let stored = ami_core::text::nfc(o.trim());
                        prop_assert_eq!(
                            shown.as_str(),
                            Some(stored.as_str()),
                            "{} stored as sent",
                            field
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

async fn fixture(app: &TestApp) -> Fixture {
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let ti = app.person("Karim Haddad", "ti", "agent").await;
    let revoked = app.person("Ancien Agent", "dar", "responsable").await;
    assert!(app
        .store
        .revoke_token(revoked.token_id, chrono::Utc::now())
        .await
        .expect("revoke"));
    // Dossiers in several states, so that transitions have somewhere to go.
    let mut dossiers = Vec::new();
    for (programmes, steps) in [
        (&["acv", "ti"][..], &[][..]),
        (&["acv"][..], &["instruire"][..]),
        (&["ti"][..], &["instruire"][..]),
        (&["acv", "ti"][..], &["instruire", "avis_acv"][..]),
        (&["ti"][..], &["instruire", "avis_ti"][..]),
        (&["acv"][..], &[][..]),
        (&["ti"][..], &["classer_sans_suite"][..]),
        (&["acv", "ti"][..], &["instruire"][..]),
    ] {
        let d = app.deposit(&dar, programmes).await;
        let mut version = 1;
        for step in steps {
            let who = match *step {
                "avis_acv" => &acv,
                "avis_ti" => &ti,
                "classer_sans_suite" => &boss,
                _ => &dar,
            };
            let (s, b) = app
                .act(
                    who,
                    &d,
                    step,
                    json!({"verdict": "favorable", "motivation": "fixture"}),
                )
                .await;
            let b = if s == StatusCode::UNPROCESSABLE_ENTITY {
                // classer_sans_suite carries no verdict.
                let (s, b) = app
                    .act(who, &d, step, json!({"motivation": "fixture"}))
                    .await;
                assert_eq!(s, StatusCode::OK, "{b}");
                b
            } else {
                assert_eq!(s, StatusCode::OK, "{step}: {b}");
                b
            };
            version = b["version"].as_u64().expect("version");
        }
        dossiers.push((d["id"].as_str().expect("id").to_string(), version));
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&app.db.url)
        .await
        .expect("count pool");
    Fixture {
        router: http::router(app.state()),
        pool,
        people: vec![dar, boss, acv, ti],
        revoked,
        dossiers,
        sent: AtomicUsize::new(0),
        server_errors: AtomicUsize::new(0),
        statuses: Mutex::new(BTreeMap::new()),
        written: AtomicUsize::new(0),
    }
}

async fn random_requests_never_5xx_and_refusals_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let fx = fixture(&app).await;
    let cases = std::env::var("AMI_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let handle = tokio::runtime::Handle::current();
    let started = std::time::Instant::now();
    // The strategies are deep types whose generation needs more stack than
    // a runtime worker has in a debug build: the runner gets its own thread,
    // and sends the requests through the test's runtime.
    let result = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("fuzz-runner".into())
                .stack_size(256 * 1024 * 1024)
                .spawn_scoped(scope, || {
                    let mut runner = TestRunner::new(Config {
                        cases,
                        failure_persistence: None,
                        max_shrink_iters: 200,
                        ..Config::default()
                    });
                    runner
                        .run(&case(), |c| handle.block_on(fx.run(&c)))
                        .map_err(|e| e.to_string())
                })
                .expect("runner thread")
                .join()
                .expect("runner thread panicked")
        })
    });
    let sent = fx.sent.load(Ordering::Relaxed);
    let errors = fx.server_errors.load(Ordering::Relaxed);
    println!(
        "fuzz ({backend:?}): {sent} requests fuzzed in {:.1}s, {errors} answered 5xx, {} wrote; statuses {:?}",
        started.elapsed().as_secs_f64(),
        fx.written.load(Ordering::Relaxed),
        fx.statuses.lock().unwrap_or_else(|e| e.into_inner())
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(errors, 0);
    assert!(sent >= cases as usize);
    // The journal still verifies after all of it.
    let report = app
        .store
        .verify(&app.definition, None)
        .await
        .expect("verify");
    assert_eq!(report.findings, []);
    fx.pool.close().await;
    app.stop().await;
}

/// SQL, HTML, unicode and a 10,000-character motivation are stored and
/// returned byte for byte; one character more is refused and writes nothing.
async fn stored_strings_come_back_byte_for_byte(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let fx = fixture(&app).await;
    let dar = &fx.people[0];
    let commune =
        "Robert'); DROP TABLE dossier;-- <script>alert('x')</script> & \"q\" \\ % _ Ünïcödé 🚀 家";
    // The commune is one of France's (checked against the official
    // geographic code); the porteur's name is free text.
    let nom = format!("{commune} <b>Ville</b> d'O'Neil; DELETE FROM api_token WHERE '1'='1");
    let nom = nom.as_str();
    let mut body = new_dossier("x", &["acv", "ti"]);
    body["porteur"]["nom"] = json!(nom);
    // With the pièces' files: the dossier is instructed below.
    let (s, d) = app.deposit_form(dar, &body).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(d["porteur"]["nom"], nom);
    let id = d["id"].as_str().expect("id").to_string();
    let (_, got) = app.get(dar, &format!("/dossiers/{id}")).await;
    assert_eq!(got["porteur"]["nom"].as_str(), Some(nom));

    // Searching with SQL finds by substring, never by injection.
    let search = |q: &str| format!("/dossiers?q={}&limit=500", enc(q));
    let (s, page) = app.get(dar, &search("drop table dossier;--")).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let ids: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
    for q in ["' OR '1'='1", "%' OR 1=1 --", "_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_"] {
        let (s, page) = app.get(dar, &search(q)).await;
        assert_eq!(s, StatusCode::OK, "{q}: {page}");
        assert_eq!(page["items"].as_array().map(Vec::len), Some(0), "{q} matched: {page}");
    }
    let (s, page) = app.get(dar, &search("% _ ünïcödé")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(1),
        "literal % and _ match themselves"
    );

    // A motivation of exactly 10,000 characters, multi-byte, with SQL and HTML.
    let unit = "A\n\t<script>alert(1)</script>'; DROP TABLE dossier_event; -- é🚀家\r\n";
    let motivation: String = unit.chars().cycle().take(10_000).collect();
    assert_eq!(motivation.chars().count(), 10_000);
    let too_long: String = unit.chars().cycle().take(10_001).collect();
    let before = (
        app.journal_len().await,
        app.store.count_dossiers().await.expect("count"),
    );
    let (s, b) = app
        .act(
            dar,
            &d,
            "instruire",
            json!({"verdict": "reserve", "motivation": too_long}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["field"], "motivation");
    let after = (
        app.journal_len().await,
        app.store.count_dossiers().await.expect("count"),
    );
    assert_eq!(before, after, "a refused motivation wrote nothing");
    let (s, b) = app
        .act(
            dar,
            &d,
            "instruire",
            json!({"verdict": "reserve", "motivation": motivation, "comment": commune}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, got) = app.get(dar, &format!("/dossiers/{id}")).await;
    let avis = got["avis"]["dar"]["motivation"]
        .as_str()
        .expect("avis motivation");
    assert_eq!(avis.as_bytes(), motivation.as_bytes());
    let (_, history) = app.get(dar, &format!("/dossiers/{id}/history")).await;
    let last = history["events"]
        .as_array()
        .and_then(|e| e.last())
        .expect("an event")
        .clone();
    assert_eq!(
        last["motivation"].as_str().map(str::as_bytes),
        Some(motivation.as_bytes())
    );
    assert_eq!(last["comment"].as_str(), Some(commune));

    // Control characters in a one-line field: refused, nothing written.
    let before = (
        app.journal_len().await,
        app.store.count_dossiers().await.expect("count"),
    );
    for bad in ["Nev\u{0}ers", "Nev\ners", "\u{7}", "   ", &"x".repeat(301)] {
        let mut body = new_dossier("x", &["acv"]);
        body["commune"] = json!(bad);
        let (s, b) = app.post(dar, "/dossiers", &body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {b}");
        assert_eq!(b["field"], "commune");
    }
    let after = (
        app.journal_len().await,
        app.store.count_dossiers().await.expect("count"),
    );
    assert_eq!(before, after);
    fx.pool.close().await;
    app.stop().await;
}

on_both_backends!(
    random_requests_never_5xx_and_refusals_write_nothing,
    stored_strings_come_back_byte_for_byte
);
