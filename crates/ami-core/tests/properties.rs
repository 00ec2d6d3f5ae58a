//! Properties of the engine on random command sequences: random actors,
//! random dossiers, every action of the default definition plus an unknown
//! one. The laureat rules are checked against the journal itself, not against
//! the engine's own guards.
//!
//! Identifiers come from definitions: the default one's, and for the words it
//! lacks (an action, a verdict, a pièce, a programme) those of another
//! definition that has them ([`common::stranger`]).

mod common;

use std::collections::BTreeMap;

use ami_core::{
    add_working_days, apply, awaiting, deadlines, decide, fold, ActionId, Actor, AgencyId,
    Calendar, Command, Definition, Dossier, Event, Piece, PieceKind, ProgrammeId, RoleId, StateId,
    Target, VerdictId,
};
use chrono::{DateTime, Duration, Utc};
use common::{actor_of, at, new_dossier, stranger, BUDGET, CANDIDATURE};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};

const AGENCIES: [&str; 3] = ["dar", "acv", "ti"];
const ROLES: [&str; 2] = ["agent", "responsable"];
const PERSONS: [&str; 3] = ["p1", "p2", "p3"];
/// An action, a verdict, a pièce and a programme the default definition
/// lacks; [`common::stranger`] has them.
const UNKNOWN_ACTION: &str = "valider";
const UNKNOWN_VERDICT: &str = "excellent";
const UNKNOWN_PIECE: &str = "photo";
const UNKNOWN_PROGRAMME: &str = "petites_villes";

/// The avis each programme requires, written here rather than read from the
/// definition so that the oracle does not share the engine's data.
const REQUIRED_AVIS: [(&str, &str); 2] = [("acv", "avis_acv"), ("ti", "avis_ti")];

#[derive(Debug, Clone)]
struct DossierSpec {
    number: u64,
    programmes: Vec<ProgrammeId>,
    pieces: Vec<PieceKind>,
    received_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Step {
    /// An action id of the definition, or [`UNKNOWN_ACTION`] (the stranger's).
    action: ActionId,
    /// Take the agency of the action (when known) rather than `agency`.
    own_agency: bool,
    agency: AgencyId,
    role: RoleId,
    person: &'static str,
    verdict: Option<VerdictId>,
    motivation: Option<&'static str>,
    piece: Option<PieceKind>,
    /// Attach `piece` even to an action that does not take one.
    stray_piece: bool,
    /// Attach `verdict` even to an action that does not carry one.
    stray_verdict: bool,
}

/// The programme `id` of `def`, else of [`common::stranger`].
fn programme(def: &Definition, id: &str) -> ProgrammeId {
    def.programme_id(id)
        .or_else(|| stranger().programme_id(id))
        .unwrap_or_else(|| panic!("no programme `{id}`"))
}

/// The pièce `id` of `def`, else of [`common::stranger`].
fn kind(def: &Definition, id: &str) -> PieceKind {
    def.piece_kind(id)
        .or_else(|| stranger().piece_kind(id))
        .unwrap_or_else(|| panic!("no pièce `{id}`"))
}

/// The verdict `id` of `def`, else of [`common::stranger`].
fn verdict(def: &Definition, id: &str) -> VerdictId {
    def.verdict_id(id)
        .or_else(|| stranger().verdict_id(id))
        .unwrap_or_else(|| panic!("no verdict `{id}`"))
}

fn dossier_spec(def: &Definition) -> impl Strategy<Value = DossierSpec> {
    let programmes = |ids: &[&str]| ids.iter().map(|p| programme(def, p)).collect::<Vec<_>>();
    let programmes = prop_oneof![
        4 => Just(programmes(&["acv"])),
        4 => Just(programmes(&["ti"])),
        5 => Just(programmes(&["acv", "ti"])),
        1 => Just(programmes(&["ti", "acv", "ti"])),
        1 => Just(programmes(&[])),
        1 => Just(programmes(&["acv", UNKNOWN_PROGRAMME])),
    ];
    let (candidature, budget) = (kind(def, CANDIDATURE), kind(def, BUDGET));
    let photo = kind(def, UNKNOWN_PIECE);
    let pieces = prop_oneof![
        8 => proptest::sample::subsequence(vec![candidature.clone(), budget.clone()], 0..=2),
        1 => proptest::sample::subsequence(vec![candidature, budget, photo], 0..=3),
    ];
    // Mostly inside the campaign; also before it, after it, in the future
    // (after `now`), and on the edges of the waves.
    let during = |from: &str, to: &str| {
        let first = at(from);
        let span = (at(to) - first).num_seconds();
        (0..span).prop_map(move |s| first + Duration::seconds(s))
    };
    let received_at = prop_oneof![
        24 => during("2020-07-20T00:00:00+02:00", "2021-06-26T00:00:00+02:00"),
        1 => during("2020-06-01T00:00:00+02:00", "2020-07-20T00:00:00+02:00"),
        1 => during("2021-06-26T00:00:00+02:00", "2021-10-01T00:00:00+02:00"),
        1 => proptest::sample::select(vec![
            "2020-07-19T23:59:59+02:00",
            "2020-07-20T00:00:00+02:00",
            "2020-11-06T23:59:59+01:00",
            "2020-11-07T00:00:00+01:00",
            "2021-06-25T23:59:59+02:00",
            "2021-06-26T00:00:00+02:00",
        ])
        .prop_map(at),
    ];
    (1..10_000u64, programmes, pieces, received_at).prop_map(
        |(number, programmes, pieces, received_at)| DossierSpec {
            number,
            programmes,
            pieces,
            received_at,
        },
    )
}

/// Actions of the happy path come more often, so that many runs get far.
fn weight(action: &str) -> usize {
    match action {
        "instruire" | "avis_acv" | "avis_ti" | "declarer_laureat" => 6,
        "refuser" | "classer_sans_suite" | UNKNOWN_ACTION => 1,
        _ => 3,
    }
}

fn step(def: &Definition) -> impl Strategy<Value = Step> {
    let unknown = stranger()
        .action_id(UNKNOWN_ACTION)
        .expect("the stranger's action");
    let mut actions: Vec<ActionId> = Vec::new();
    for id in def.actions().iter().map(|a| a.id.clone()).chain([unknown]) {
        actions.extend(std::iter::repeat_n(id.clone(), weight(&id)));
    }
    let agencies: Vec<AgencyId> = AGENCIES
        .iter()
        .map(|a| def.agency_id(a).expect("an agency of the definition"))
        .collect();
    let roles: Vec<RoleId> = ROLES
        .iter()
        .map(|r| def.role_id(r).expect("a role of the definition"))
        .collect();
    let verdict = prop_oneof![
        6 => Just(Some(verdict(def, "favorable"))),
        2 => Just(Some(verdict(def, "reserve"))),
        2 => Just(Some(verdict(def, "defavorable"))),
        1 => Just(None),
        1 => Just(Some(verdict(def, UNKNOWN_VERDICT))),
    ];
    let motivation = prop_oneof![
        6 => Just(Some("Motivation détaillée")),
        2 => Just(None),
        1 => Just(Some("   ")),
    ];
    let piece = prop_oneof![
        3 => Just(Some(kind(def, CANDIDATURE))),
        3 => Just(Some(kind(def, BUDGET))),
        1 => Just(Some(kind(def, UNKNOWN_PIECE))),
        1 => Just(None),
    ];
    (
        proptest::sample::select(actions),
        proptest::bool::weighted(0.75),
        proptest::sample::select(agencies),
        proptest::sample::select(roles),
        proptest::sample::select(PERSONS.to_vec()),
        verdict,
        motivation,
        piece,
        proptest::bool::weighted(0.05),
        proptest::bool::weighted(0.05),
    )
        .prop_map(
            |(
                action,
                own_agency,
                agency,
                role,
                person,
                verdict,
                motivation,
                piece,
                stray_piece,
                stray_verdict,
            )| {
                Step {
                    action,
                    own_agency,
                    agency,
                    role,
                    person,
                    verdict,
                    motivation,
                    piece,
                    stray_piece,
                    stray_verdict,
                }
            },
        )
}

fn scenario(def: &Definition) -> impl Strategy<Value = (DossierSpec, Vec<Step>)> {
    let deposer = def.action_id("deposer").expect("the deposit");
    (
        dossier_spec(def),
        proptest::collection::vec(step(def), 1..50),
        proptest::bool::weighted(0.8),
    )
        .prop_map(move |(spec, mut steps, deposit_first)| {
            // Most runs start with a deposit, so that they get somewhere.
            if deposit_first {
                steps[0].action = deposer.clone();
                steps[0].own_agency = true;
            }
            (spec, steps)
        })
}

/// A pièce of any kind, received (as [`common::piece`] makes them).
fn piece_of(kind: &PieceKind) -> Piece {
    Piece {
        kind: kind.clone(),
        filename: format!("{kind}.pdf").into(),
        size: Some(12_345),
        sha256: Some("ab".repeat(32).into()),
        media_type: Some("application/pdf".into()),
    }
}

/// The command a step sends. A command carries what its kind of action
/// takes, so a step that adds what the action does not take sends a command
/// of another kind, which the engine refuses as it refused the stray part: a
/// stray verdict makes it a verdict (checked first by the engine), else a
/// stray pièce an attachment. A deposit carries the dossier; a stray verdict
/// makes it a verdict too, and a stray pièce is left out, as the engine always
/// ignored it on a deposit. A deposit and an attachment carry no motivation.
fn command_of(def: &Definition, spec: &DossierSpec, step: &Step) -> (Command, Actor) {
    let known = def.action(&step.action);
    let agency = match known {
        Some(a) if step.own_agency => &a.agency,
        _ => &step.agency,
    };
    let takes_piece = known.is_some_and(|a| a.effect == ami_core::Effect::AttachPiece);
    let takes_verdict = known.is_some_and(|a| a.verdict);
    let verdict = step
        .verdict
        .clone()
        .filter(|_| takes_verdict || step.stray_verdict);
    let piece = step
        .piece
        .as_ref()
        .filter(|_| takes_piece || step.stray_piece)
        .map(piece_of);
    let action = step.action.clone();
    let creates = known.is_some_and(|a| a.effect == ami_core::Effect::Create);
    let command = if creates {
        match verdict {
            Some(v) => Command::verdict(action, v),
            None => {
                let mut new = new_dossier(spec.number, &[], &[]);
                new.programmes = spec.programmes.clone();
                new.pieces = spec.pieces.iter().map(piece_of).collect();
                new.received_at = spec.received_at;
                Command::deposit(action, new)
            }
        }
    } else {
        match (verdict, piece) {
            (Some(v), _) if !takes_verdict => Command::verdict(action, v),
            (_, Some(p)) if !takes_piece => Command::attach_piece(action, p),
            (Some(v), _) => Command::verdict(action, v),
            (None, Some(p)) => Command::attach_piece(action, p),
            (None, None) => Command::transition(action),
        }
    };
    let command = match step.motivation {
        Some(m) => command.with_motivation(m),
        None => command,
    };
    (command, actor_of(def, step.person, agency, &step.role))
}

/// What a run did, for the coverage check.
#[derive(Debug, Default)]
struct Outcome {
    final_state: Option<StateId>,
    codes: Vec<&'static str>,
}

fn piece_kinds(pieces: &[Piece]) -> Vec<&str> {
    pieces.iter().map(|p| p.kind.as_str()).collect()
}

/// Runs the steps and checks every property on the way.
fn run(def: &Definition, spec: &DossierSpec, steps: &[Step]) -> Result<Outcome, TestCaseError> {
    let start = at("2021-09-01T10:00:00+02:00");
    let mut dossier: Option<Dossier> = None;
    let mut events: Vec<Event> = Vec::new();
    let mut outcome = Outcome::default();
    for (i, step) in steps.iter().enumerate() {
        let now = start + Duration::minutes(i as i64);
        let (command, who) = command_of(def, spec, step);
        let was_terminal = dossier.as_ref().is_some_and(|d| def.is_terminal(&d.state));
        let target = match &dossier {
            Some(d) => Target::Dossier(d),
            None => Target::New {
                number: spec.number,
                same_commune: &[],
            },
        };
        match decide(def, target, &command, &who, now) {
            Err(rejection) => {
                prop_assert!(!rejection.code().is_empty());
                prop_assert!(!rejection.to_string().is_empty());
                if was_terminal
                    && def.action(command.action()).is_some_and(|a| {
                        !matches!(
                            a.effect,
                            ami_core::Effect::Create | ami_core::Effect::Reopen
                        )
                    })
                {
                    prop_assert_eq!(rejection.code(), "terminal_state");
                }
                outcome.codes.push(rejection.code());
            }
            Ok(event) => {
                let action = def.action(&event.action);
                prop_assert!(
                    action.is_some(),
                    "event of an unknown action {}",
                    event.action
                );
                let action = action.unwrap();
                prop_assert!(
                    !was_terminal || action.effect == ami_core::Effect::Reopen,
                    "a terminal dossier accepted {}",
                    event.action
                );
                prop_assert_eq!(&event.action, command.action());
                // Where the event leads: the definition's `to`, the same
                // state, or (a reopening) the state the dossier left.
                let expected_to = match (&dossier, action.effect) {
                    (Some(d), ami_core::Effect::Reopen) => d.previous_state.as_deref(),
                    (Some(d), _) => action.target(&d.state),
                    (None, _) => action.to.as_deref(),
                };
                prop_assert_eq!(Some(event.to.as_str()), expected_to);
                prop_assert_eq!(&event.actor, &who);
                prop_assert_eq!(event.at, now);
                prop_assert_eq!(&event.definition_version, &def.version());
                prop_assert_eq!(&event.actor.agency, &action.agency);
                prop_assert!(def.role_rank(&event.actor.role) >= def.role_rank(&action.role));
                match &dossier {
                    None => {
                        prop_assert_eq!(action.effect, ami_core::Effect::Create);
                        prop_assert_eq!(event.seq, 1);
                        prop_assert_eq!(&event.from, &None);
                    }
                    Some(d) => {
                        prop_assert_eq!(event.dossier_id, d.id);
                        prop_assert_eq!(event.seq, d.version + 1);
                        prop_assert_eq!(event.from.as_deref(), Some(d.state.as_str()));
                        prop_assert!(
                            action.is_possible_from(&d.state),
                            "{} taken from {}",
                            action.id,
                            d.state
                        );
                    }
                }
                let next = apply(dossier.take(), &event);
                prop_assert!(next.is_ok(), "{:?}", next);
                let next = next.unwrap();
                prop_assert_eq!(&next.state, &event.to);
                prop_assert!(def.state(&next.state).is_some());
                events.push(event);
                prop_assert_eq!(next.version, events.len() as u64);
                check_journal(&next, &events)?;
                check_deadlines(def, &next)?;
                dossier = Some(next);
            }
        }
    }
    let refolded = fold(&events);
    prop_assert_eq!(&refolded, &Ok(dossier.clone()));
    outcome.final_state = dossier.map(|d| d.state);
    Ok(outcome)
}

/// The rules of the AMI, read off the journal of `d`.
fn check_journal(d: &Dossier, events: &[Event]) -> Result<(), TestCaseError> {
    let last = events.last().expect("at least the creation");
    let position = |action: &str| events.iter().position(|e| e.action == action);
    // With both programmes, the ACV avis comes before the TI one.
    if last.action == "avis_ti" && d.in_programme("acv") {
        prop_assert!(position("avis_acv").is_some(), "TI avis before the ACV one");
    }
    // Pièces are complete before instruction.
    if last.action == "instruire" {
        let kinds = piece_kinds(&d.pieces);
        prop_assert!(
            kinds.contains(&CANDIDATURE) && kinds.contains(&BUDGET),
            "{:?}",
            kinds
        );
    }
    if d.state != "laureat" {
        return Ok(());
    }
    let instructions: Vec<&Event> = events
        .iter()
        .filter(|e| e.action == "instruire" && e.actor.agency == "dar")
        .collect();
    prop_assert!(
        !instructions.is_empty(),
        "laureat without a DAR instruction"
    );
    for (programme, avis) in REQUIRED_AVIS {
        if d.in_programme(programme) {
            prop_assert!(position(avis).is_some(), "laureat without {}", avis);
        }
    }
    prop_assert!(
        events
            .iter()
            .all(|e| e.verdict.as_deref() != Some("defavorable")),
        "laureat with a defavorable verdict"
    );
    prop_assert_eq!(last.action.as_str(), "declarer_laureat");
    for instruction in instructions {
        prop_assert_ne!(&instruction.actor.id, &last.actor.id, "four-eyes broken");
    }
    Ok(())
}

/// The deadlines of `d`, against the rules of the AMI written here: the
/// DAR's instruction 10 working days after reception, the avis ACV awaits
/// (or TI's, after ACV's for a dossier of both) 15 after the instruction;
/// none while the porteur is awaited or the dossier is closed.
fn check_deadlines(def: &Definition, d: &Dossier) -> Result<(), TestCaseError> {
    let paris = |t: DateTime<Utc>| t.with_timezone(&chrono_tz::Europe::Paris).date_naive();
    let instructed = || d.avis("instruire").map(|a| a.at);
    let expected = if d.complement.is_some() {
        None
    } else {
        match d.state.as_str() {
            "recu" => Some(("dar", "instruire", Some(d.received_at), 10)),
            "instruit" if d.in_programme("acv") => Some(("acv", "avis_acv", instructed(), 15)),
            "instruit" | "avis_acv" if d.in_programme("ti") => {
                Some(("ti", "avis_ti", instructed(), 15))
            }
            _ => None,
        }
    };
    let expected: Vec<String> = expected
        .into_iter()
        .map(|(agency, action, since, n)| {
            let since = since.expect("an instructed dossier keeps its instruction");
            let due = add_working_days(paris(since), n, Calendar::France);
            format!("{agency} {action} {since} {due}")
        })
        .collect();
    let got: Vec<String> = deadlines(def, d)
        .iter()
        .map(|x| format!("{} {} {} {}", x.agency, x.action, x.since, x.due))
        .collect();
    prop_assert_eq!(got, expected, "{} {:?}", d.state, d.programmes);
    let waits = awaiting(def, d);
    for x in deadlines(def, d) {
        prop_assert!(waits.contains(&x.agency.as_str()));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_command_sequences_keep_every_rule_of_the_workflow(
        (spec, steps) in scenario(&Definition::ami2())
    ) {
        run(&Definition::ami2(), &spec, &steps)?;
    }
}

/// The property above would hold vacuously if random runs never got far:
/// check, on a fixed seed and as many cases, that they reach every end and
/// meet the rules that matter.
#[test]
fn random_runs_reach_every_terminal_state_and_meet_the_key_rejections() {
    // Arrange
    let def = Definition::ami2();
    let strategy = scenario(&def);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    let mut codes: BTreeMap<&str, usize> = BTreeMap::new();

    // Act
    for _ in 0..512 {
        let (spec, steps) = strategy
            .new_tree(&mut runner)
            .expect("a scenario")
            .current();
        let outcome = run(&def, &spec, &steps).expect("the properties hold");
        let end = outcome
            .final_state
            .map_or("none".to_owned(), |s| s.to_string());
        *ends.entry(end).or_default() += 1;
        for code in outcome.codes {
            *codes.entry(code).or_default() += 1;
        }
    }

    // Assert
    eprintln!("ends: {ends:?}\ncodes: {codes:?}");
    for state in ["recu", "instruit", "laureat", "refuse", "sans_suite"] {
        assert!(
            ends.get(state).copied().unwrap_or(0) > 0,
            "no run ended in {state}: {ends:?}"
        );
    }
    for code in [
        "four_eyes",
        "blocking_verdict",
        "avis_missing",
        "pieces_missing",
        "terminal_state",
        "programme_not_concerned",
        "not_open",
        "closed",
        "received_in_future",
        "unknown_action",
        "wrong_agency",
        "role_too_low",
        "motivation_missing",
    ] {
        assert!(codes.contains_key(code), "no run met {code}: {codes:?}");
    }
}
