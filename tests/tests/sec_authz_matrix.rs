//! Authorization matrix: every action of the workflow × every caller (each
//! agency × each role, no token, a revoked token), on a dossier brought to a
//! state from which the action is possible. The expected answer is computed
//! from the definition (the action's agency and minimum role, and the
//! programmes each agency may read), so an action added to the workflow is
//! covered without editing this test.
//!
//! The path that brings a dossier where an action is possible is found by a
//! breadth-first search run on the pure engine (`decide` + `apply`), each step
//! taken by an authorized person, then replayed over HTTP.

use std::collections::{BTreeSet, VecDeque};

use ami_core::{
    apply, decide, ActionDef, Actor, AgencyId, Command, Definition, Deposit, Dossier, DossierId,
    Effect, NewDossier, Piece, PieceKind, Porteur, RoleId, Target,
};
use ami_tests::*;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use smol_str::SmolStr;

/// Longest path searched, in actions after the creation.
const MAX_DEPTH: usize = 12;
const MOTIVATION: &str = "Motivation de la matrice d'autorisation.";

/// Who calls.
#[derive(Debug, Clone)]
enum Caller {
    NoToken,
    Revoked,
    As { agency: String, role: String },
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::NoToken => write!(f, "(no token)"),
            Caller::Revoked => write!(f, "(revoked token)"),
            Caller::As { agency, role } => write!(f, "{agency}/{role}"),
        }
    }
}

/// The answer the definition calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    status: u16,
    code: Option<&'static str>,
}

fn expected(
    def: &Definition,
    action: &ActionDef,
    caller: &Caller,
    programmes: &[SmolStr],
) -> Expected {
    match caller {
        Caller::NoToken => Expected {
            status: 401,
            code: Some("missing_token"),
        },
        Caller::Revoked => Expected {
            status: 401,
            code: Some("revoked_token"),
        },
        Caller::As { agency, role } => {
            if action.effect != Effect::Create && !def.may_read(agency, programmes) {
                // Need to know: a dossier of another agency's programmes
                // is as absent as one that does not exist.
                Expected {
                    status: 404,
                    code: Some("not_found"),
                }
            } else if *agency != action.agency {
                Expected {
                    status: 403,
                    code: Some("wrong_agency"),
                }
            } else if def.role_rank(role) < def.role_rank(&action.role) {
                Expected {
                    status: 403,
                    code: Some("role_too_low"),
                }
            } else if action.effect == Effect::Create {
                Expected {
                    status: 201,
                    code: None,
                }
            } else {
                Expected {
                    status: 200,
                    code: None,
                }
            }
        }
    }
}

/// An instant inside the first wave of the definition's campaign.
fn def_wave_instant(def: &Definition) -> DateTime<Utc> {
    def.campaign().opens_at() + chrono::Duration::days(1)
}

/// The verdict the matrix gives: a non-blocking one, preferably one that
/// needs no motivation (a motivation is sent anyway).
fn verdict_for(def: &Definition, action: &ActionDef) -> Option<ami_core::VerdictId> {
    if !action.verdict {
        return None;
    }
    def.verdicts()
        .iter()
        .filter(|v| !v.blocking)
        .min_by_key(|v| v.requires_motivation)
        .map(|v| v.id.clone())
}

fn piece_kind(def: &Definition) -> PieceKind {
    def.pieces()
        .first()
        .map(|p| p.id.clone())
        .expect("a definition with pièces")
}

/// The engine command for an action, with a motivation wherever one goes.
fn command(def: &Definition, action: &ActionDef, programmes: &[SmolStr]) -> Command {
    let id = action.id.clone();
    match action.effect {
        Effect::Create => Command::Deposit(Box::new(Deposit {
            action: id,
            dossier: NewDossier {
                id: DossierId(uuid::Uuid::now_v7()),
                commune: "Nevers".into(),
                code_insee: "58194".into(),
                porteur: Porteur {
                    nom: "Ville de Nevers".into(),
                    email: None,
                },
                programmes: programmes
                    .iter()
                    .map(|p| def.programme_id(p).expect("a programme"))
                    .collect(),
                received_at: def_wave_instant(def),
                pieces: def
                    .pieces()
                    .iter()
                    .map(|p| Piece {
                        kind: p.id.clone(),
                        filename: format!("{}.pdf", p.id).into(),
                        size: Some(1000),
                        sha256: Some("ab".repeat(32).into()),
                        media_type: Some("application/pdf".into()),
                    })
                    .collect(),
            },
            doublon_confirme: false,
            comment: None,
        })),
        Effect::AttachPiece => Command::attach_piece(
            id,
            Piece {
                kind: piece_kind(def),
                filename: "complement.pdf".into(),
                size: Some(1000),
                sha256: Some("cd".repeat(32).into()),
                media_type: Some("application/pdf".into()),
            },
        ),
        Effect::RequestPieces => Command::request_pieces(id, vec![piece_kind(def)], far_due_date())
            .with_motivation(MOTIVATION),
        Effect::Transition | Effect::Reopen => match verdict_for(def, action) {
            Some(v) => Command::verdict(id, v).with_motivation(MOTIVATION),
            None => Command::transition(id).with_motivation(MOTIVATION),
        },
    }
}

/// What a decision of the search is taken on.
fn on(dossier: Option<&Dossier>) -> Target<'_> {
    match dossier {
        Some(d) => Target::Dossier(d),
        None => Target::New {
            number: 1,
            same_commune: &[],
        },
    }
}

/// A due date no clock of the test run reaches.
fn far_due_date() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2099, 12, 31).expect("date")
}

/// The person who takes the steps of a path for an action: its agency, its
/// minimum role. Never one of the matrix callers.
fn path_person_name(action: &ActionDef) -> String {
    format!("Chemin {} {}", action.agency, action.role)
}

fn actor(name: &str, agency: &AgencyId, role: &RoleId) -> Actor {
    Actor {
        id: email_of(name).into(),
        name: name.into(),
        agency: agency.clone(),
        role: role.clone(),
    }
}

fn matrix_person_name(agency: &str, role: &str) -> String {
    format!("Matrice {agency} {role}")
}

/// Programmes to try for the dossier, every one first, then smaller sets.
fn programme_sets(def: &Definition) -> Vec<Vec<SmolStr>> {
    let ids: Vec<SmolStr> = def
        .programmes()
        .iter()
        .map(|p| p.id.as_str().into())
        .collect();
    let n = ids.len().min(16);
    let mut sets: Vec<Vec<SmolStr>> = (1u32..(1 << n))
        .map(|mask| {
            ids.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, p)| p.clone())
                .collect()
        })
        .collect();
    sets.sort_by_key(|s: &Vec<SmolStr>| std::cmp::Reverse(s.len()));
    if sets.is_empty() {
        sets.push(Vec::new());
    }
    sets
}

/// A way to bring a dossier where `target` is possible for an authorized
/// caller: the programmes of the deposit and the actions after it.
#[derive(Debug, Clone)]
struct Plan {
    programmes: Vec<SmolStr>,
    /// Creation first (empty when the target is the creation).
    steps: Vec<ami_core::ActionId>,
}

fn dedup_key(d: &Dossier) -> String {
    let avis: BTreeSet<String> = d
        .avis_given()
        .map(|a| format!("{}={}", a.action, a.verdict))
        .collect();
    let pieces: BTreeSet<&str> = d.pieces.iter().map(|p| p.kind.as_str()).collect();
    format!(
        "{}|{:?}|{avis:?}|{pieces:?}|{:?}|{:?}|{:?}",
        d.state,
        d.programmes,
        d.actions_taken().collect::<Vec<_>>(),
        d.complement.as_ref().map(|c| &c.pieces),
        d.previous_state
    )
}

fn plan(def: &Definition, target: &ActionDef) -> Option<Plan> {
    let now = Utc::now();
    let target_caller = actor(
        &matrix_person_name(&target.agency, &target.role),
        &target.agency,
        &target.role,
    );
    for programmes in programme_sets(def) {
        for creation in def.creation_actions() {
            let creator = actor(
                &path_person_name(creation),
                &creation.agency,
                &creation.role,
            );
            let Ok(event) = decide(
                def,
                on(None),
                &command(def, creation, &programmes),
                &creator,
                now,
            ) else {
                continue;
            };
            if target.effect == Effect::Create {
                return Some(Plan {
                    programmes,
                    steps: Vec::new(),
                });
            }
            let start = apply(None, &event).expect("creation applies");
            let mut seen = BTreeSet::from([dedup_key(&start)]);
            let mut queue = VecDeque::from([(start, vec![creation.id.clone()])]);
            while let Some((d, path)) = queue.pop_front() {
                if decide(
                    def,
                    on(Some(&d)),
                    &command(def, target, &programmes),
                    &target_caller,
                    now,
                )
                .is_ok()
                {
                    return Some(Plan {
                        programmes,
                        steps: path,
                    });
                }
                if path.len() > MAX_DEPTH {
                    continue;
                }
                for a in def.actions().iter().filter(|a| a.effect != Effect::Create) {
                    let who = actor(&path_person_name(a), &a.agency, &a.role);
                    if let Ok(e) =
                        decide(def, on(Some(&d)), &command(def, a, &programmes), &who, now)
                    {
                        let next = apply(Some(d.clone()), &e).expect("event applies");
                        if seen.insert(dedup_key(&next)) {
                            let mut p = path.clone();
                            p.push(a.id.clone());
                            queue.push_back((next, p));
                        }
                    }
                }
            }
        }
    }
    None
}

/// Sends an action over HTTP, the way the API takes it.
async fn send(
    app: &TestApp,
    token: Option<&str>,
    action: &ActionDef,
    dossier: Option<(&str, u64)>,
    programmes: &[SmolStr],
) -> (StatusCode, Value) {
    let def = &app.definition;
    let c = command(def, action, programmes);
    let request = match action.effect {
        Effect::Create => {
            let programmes: Vec<&str> = programmes.iter().map(SmolStr::as_str).collect();
            let mut body = new_dossier("Nevers", &programmes);
            body["received_at"] = json!(def_wave_instant(def));
            body["pieces"] = json!(def
                .pieces()
                .iter()
                .map(|p| json!({"kind": p.id, "filename": format!("{}.pdf", p.id)}))
                .collect::<Vec<_>>());
            // The deposit form: the JSON and the file of each pièce.
            app.client
                .post(app.url("/dossiers"))
                .multipart(deposit_multipart(&body))
        }
        Effect::AttachPiece => {
            // The pièce's file itself, at the version read.
            let (id, version) = dossier.expect("a dossier");
            let Command::AttachPiece { piece, .. } = c else {
                panic!("a pièce")
            };
            let (filename, content) = sample_file(&piece.filename);
            app.client
                .put(app.url(&format!("/dossiers/{id}/pieces/{}", piece.kind)))
                .header(
                    "content-disposition",
                    format!("attachment; filename*=UTF-8''{}", percent_encode(&filename)),
                )
                .header("if-match", format!("\"{version}\""))
                .body(content)
        }
        Effect::Transition | Effect::RequestPieces | Effect::Reopen => {
            let (id, version) = dossier.expect("a dossier");
            let mut body = json!({"action": action.id, "expected_version": version, "motivation": c.motivation()});
            if let Some(v) = c.verdict_given() {
                body["verdict"] = json!(v);
            }
            if let Command::RequestPieces { request, .. } = &c {
                body["pieces"] = json!(request.pieces);
                body["due_on"] = json!(request.due_on);
            }
            app.client
                .post(app.url(&format!("/dossiers/{id}/transitions")))
                .json(&body)
        }
    };
    let request = match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    };
    let res = request.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn counts(app: &TestApp) -> (usize, i64) {
    (
        app.journal_len().await,
        app.store.count_dossiers().await.expect("count"),
    )
}

/// Deposits a dossier and replays a plan over HTTP: (id, version).
async fn prepare(app: &TestApp, plan: &Plan, people: &PathPeople) -> (String, u64) {
    let def = app.definition.clone();
    let mut dossier: Option<(String, u64)> = None;
    for step in &plan.steps {
        let a = def.action(step).expect("known action");
        let who = people.get(app, a).await;
        let (status, body) = send(
            app,
            Some(&who.token),
            a,
            dossier.as_ref().map(|(id, v)| (id.as_str(), *v)),
            &plan.programmes,
        )
        .await;
        assert!(
            status.is_success(),
            "path step {step} failed: {status} {body}"
        );
        dossier = Some((
            body["id"].as_str().expect("id").to_string(),
            body["version"].as_u64().expect("version"),
        ));
    }
    dossier.expect("the plan deposits a dossier")
}

/// The persons taking path steps, made on first use.
struct PathPeople(tokio::sync::Mutex<Vec<(String, Person)>>);

impl PathPeople {
    async fn get(&self, app: &TestApp, a: &ActionDef) -> Person {
        let name = path_person_name(a);
        let mut all = self.0.lock().await;
        if let Some((_, p)) = all.iter().find(|(n, _)| *n == name) {
            return p.clone();
        }
        let p = app.person(&name, &a.agency, &a.role).await;
        all.push((name, p.clone()));
        p
    }
}

async fn every_action_answers_every_caller_as_the_definition_says(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let def = app.definition.clone();
    let people = PathPeople(tokio::sync::Mutex::new(Vec::new()));

    let mut callers: Vec<(Caller, Option<Person>)> = Vec::new();
    for agency in def.agencies() {
        for role in def.roles() {
            let p = app
                .person(
                    &matrix_person_name(&agency.id, &role.id),
                    &agency.id,
                    &role.id,
                )
                .await;
            callers.push((
                Caller::As {
                    agency: agency.id.to_string(),
                    role: role.id.to_string(),
                },
                Some(p),
            ));
        }
    }
    callers.push((Caller::NoToken, None));
    // The revoked token belongs to the most powerful person of each agency
    // (made per action below): revoked, it must open nothing.
    callers.push((Caller::Revoked, None));

    let mut cells = 0;
    let mut tally = std::collections::BTreeMap::<u16, usize>::new();
    for action in def.actions() {
        let plan = plan(&def, action).unwrap_or_else(|| {
            panic!("no path brings a dossier where `{}` is possible", action.id)
        });
        let top_role = &def.roles().last().expect("a role").id;
        let revoked = app
            .person(
                &format!("Revoque {} {}", action.agency, action.id),
                &action.agency,
                top_role,
            )
            .await;
        assert!(app
            .store
            .revoke_token(revoked.token_id, Utc::now())
            .await
            .expect("revoke"));

        let mut ready: Option<(String, u64)> = None;
        for (caller, person) in &callers {
            let want = expected(&def, action, caller, &plan.programmes);
            let token = match caller {
                Caller::NoToken => None,
                Caller::Revoked => Some(revoked.token.as_str()),
                Caller::As { .. } => person.as_ref().map(|p| p.token.as_str()),
            };
            if action.effect != Effect::Create && ready.is_none() {
                ready = Some(prepare(&app, &plan, &people).await);
            }
            let before = counts(&app).await;
            let (status, body) = send(
                &app,
                token,
                action,
                ready.as_ref().map(|(id, v)| (id.as_str(), *v)),
                &plan.programmes,
            )
            .await;
            let after = counts(&app).await;
            let cell = format!("action `{}` by {caller}", action.id);
            assert_eq!(status.as_u16(), want.status, "{cell}: {body}");
            *tally.entry(want.status).or_default() += 1;
            cells += 1;
            match want.code {
                Some(code) => {
                    assert_eq!(body["code"], code, "{cell}: {body}");
                    assert_eq!(before, after, "{cell}: a refusal wrote something");
                }
                None => {
                    if let Some(to) = &action.to {
                        assert_eq!(body["state"], to.as_str(), "{cell}: {body}");
                    }
                    assert_eq!(after.0, before.0 + 1, "{cell}: one event per action");
                    // The dossier moved on: the next success needs a fresh one.
                    ready = None;
                }
            }
        }
    }
    let expected_cells = def.actions().len() * (def.agencies().len() * def.roles().len() + 2);
    assert_eq!(cells, expected_cells);
    println!(
        "authz matrix ({backend:?}): {} actions × {} callers = {cells} cells checked; by status {tally:?}",
        def.actions().len(),
        callers.len()
    );
    app.stop().await;
}

/// The plan search itself finds a path for every action of the definition.
#[test]
fn every_action_of_the_definition_is_reachable() {
    let def = Definition::ami2();
    for a in def.actions() {
        let p = plan(&def, a).unwrap_or_else(|| panic!("no plan for {}", a.id));
        if a.effect != Effect::Create {
            assert!(!p.steps.is_empty());
        }
    }
}

on_both_backends!(every_action_answers_every_caller_as_the_definition_says);
