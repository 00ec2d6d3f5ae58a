//! Properties of the engine on random command sequences: random actors,
//! random dossiers, every action of the default definition plus an unknown
//! one. The laureat rules are checked against the journal itself, not against
//! the engine's own guards.

mod common;

use std::collections::BTreeMap;

use ami_core::{apply, decide, fold, Actor, Command, Definition, Dossier, Event, Piece};
use chrono::{DateTime, Duration, Utc};
use common::{actor, at, new_dossier, piece, BUDGET, CANDIDATURE};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};
use smol_str::SmolStr;

const AGENCIES: [&str; 3] = ["dar", "acv", "ti"];
const ROLES: [&str; 2] = ["agent", "responsable"];
const PERSONS: [&str; 3] = ["p1", "p2", "p3"];
const UNKNOWN_ACTION: &str = "valider";

/// The avis each programme requires, written here rather than read from the
/// definition so that the oracle does not share the engine's data.
const REQUIRED_AVIS: [(&str, &str); 2] = [("acv", "avis_acv"), ("ti", "avis_ti")];

#[derive(Debug, Clone)]
struct DossierSpec {
    number: u64,
    programmes: Vec<&'static str>,
    pieces: Vec<&'static str>,
    received_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Step {
    /// An action id of the definition, or [`UNKNOWN_ACTION`].
    action: SmolStr,
    /// Take the agency of the action (when known) rather than `agency`.
    own_agency: bool,
    agency: &'static str,
    role: &'static str,
    person: &'static str,
    verdict: Option<&'static str>,
    motivation: Option<&'static str>,
    piece: Option<&'static str>,
    /// Attach `piece` even to an action that does not take one.
    stray_piece: bool,
    /// Attach `verdict` even to an action that does not carry one.
    stray_verdict: bool,
}

fn dossier_spec() -> impl Strategy<Value = DossierSpec> {
    let programmes = prop_oneof![
        4 => Just(vec!["acv"]),
        4 => Just(vec!["ti"]),
        5 => Just(vec!["acv", "ti"]),
        1 => Just(vec!["ti", "acv", "ti"]),
        1 => Just(vec![]),
        1 => Just(vec!["acv", "petites_villes"]),
    ];
    let pieces = prop_oneof![
        8 => proptest::sample::subsequence(vec![CANDIDATURE, BUDGET], 0..=2),
        1 => proptest::sample::subsequence(vec![CANDIDATURE, BUDGET, "photo"], 0..=3),
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
    let mut actions: Vec<SmolStr> = Vec::new();
    for id in def
        .actions()
        .iter()
        .map(|a| a.id.clone())
        .chain([SmolStr::new(UNKNOWN_ACTION)])
    {
        actions.extend(std::iter::repeat_n(id.clone(), weight(&id)));
    }
    let verdict = prop_oneof![
        6 => Just(Some("favorable")),
        2 => Just(Some("reserve")),
        2 => Just(Some("defavorable")),
        1 => Just(None),
        1 => Just(Some("excellent")),
    ];
    let motivation = prop_oneof![
        6 => Just(Some("Motivation détaillée")),
        2 => Just(None),
        1 => Just(Some("   ")),
    ];
    let piece = prop_oneof![
        3 => Just(Some(CANDIDATURE)),
        3 => Just(Some(BUDGET)),
        1 => Just(Some("photo")),
        1 => Just(None),
    ];
    (
        proptest::sample::select(actions),
        proptest::bool::weighted(0.75),
        proptest::sample::select(AGENCIES.to_vec()),
        proptest::sample::select(ROLES.to_vec()),
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
    (
        dossier_spec(),
        proptest::collection::vec(step(def), 1..50),
        proptest::bool::weighted(0.8),
    )
        .prop_map(|(spec, mut steps, deposit_first)| {
            // Most runs start with a deposit, so that they get somewhere.
            if deposit_first {
                steps[0].action = SmolStr::new("deposer");
                steps[0].own_agency = true;
            }
            (spec, steps)
        })
}

fn command_of(def: &Definition, spec: &DossierSpec, step: &Step) -> (Command, Actor) {
    let known = def.action(&step.action);
    let agency = match known {
        Some(a) if step.own_agency => a.agency.as_str(),
        _ => step.agency,
    };
    let takes_piece = known.is_some_and(|a| a.effect == ami_core::Effect::AttachPiece);
    let takes_verdict = known.is_some_and(|a| a.verdict);
    let mut command = Command::new(&step.action);
    command.verdict = step
        .verdict
        .filter(|_| takes_verdict || step.stray_verdict)
        .map(SmolStr::new);
    command.motivation = step.motivation.map(str::to_owned);
    command.piece = step
        .piece
        .filter(|_| takes_piece || step.stray_piece)
        .map(piece);
    if known.is_some_and(|a| a.effect == ami_core::Effect::Create) {
        let mut new = new_dossier(spec.number, &spec.programmes, &spec.pieces);
        new.received_at = spec.received_at;
        command.new_dossier = Some(Box::new(new));
    }
    (command, actor(step.person, agency, step.role))
}

/// What a run did, for the coverage check.
#[derive(Debug, Default)]
struct Outcome {
    final_state: Option<SmolStr>,
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
        match decide(def, dossier.as_ref(), &command, &who, now) {
            Err(rejection) => {
                prop_assert!(!rejection.code().is_empty());
                prop_assert!(!rejection.to_string().is_empty());
                if was_terminal
                    && def.action(&command.action).is_some_and(|a| {
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
                prop_assert_eq!(&event.action, &command.action);
                // Where the event leads: the definition's `to`, the same
                // state, or (a reopening) the state the dossier left.
                let expected_to = match (&dossier, action.effect) {
                    (Some(d), ami_core::Effect::Reopen) => d.previous_state.clone(),
                    (Some(d), _) => action.target(&d.state).map(Into::into),
                    (None, _) => action.to.clone(),
                };
                prop_assert_eq!(Some(&event.to), expected_to.as_ref());
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
