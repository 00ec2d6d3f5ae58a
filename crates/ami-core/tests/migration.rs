//! Changing the definition while dossiers are in flight: what the change
//! means for each dossier, and the journal folding across it.

mod common;

use ami_core::migration::{migration_event, plan, Fate, MIGRATION_ACTION};
use ami_core::{
    apply, available_actions, fold, Command, Definition, Dossier, Event, Payload, Target,
    DEFAULT_DEFINITION_TOML,
};
use common::*;
use proptest::prelude::*;

/// The default definition with `instruit` renamed `instruit_dar`, saying
/// where its dossiers go.
fn renamed() -> Definition {
    let text = DEFAULT_DEFINITION_TOML
        .replace("\"instruit\"", "\"instruit_dar\"")
        .replace("version = \"ami2-2020.2\"", "version = \"ami2-2021.1\"")
        + "\n[migration]\nstate_map = { instruit = \"instruit_dar\" }\n";
    Definition::from_toml(&text).expect("the renamed definition loads")
}

/// The same rename with nothing saying where `instruit`'s dossiers go.
fn renamed_without_map() -> Definition {
    let text = DEFAULT_DEFINITION_TOML
        .replace("\"instruit\"", "\"instruit_dar\"")
        .replace("version = \"ami2-2020.2\"", "version = \"ami2-2021.2\"");
    Definition::from_toml(&text).expect("loads")
}

fn migrator() -> ami_core::Actor {
    actor("migration@lecnam.net", "dar", "responsable")
}

#[test]
fn a_state_map_must_name_a_state_of_the_definition_and_a_former_one() {
    let base = DEFAULT_DEFINITION_TOML.to_string();
    let unknown = base.clone() + "\n[migration]\nstate_map = { ancien = \"nulle_part\" }\n";
    let still_there = base.clone() + "\n[migration]\nstate_map = { recu = \"instruit\" }\n";
    let reserved = base.replace("id = \"rouvrir\"", "id = \"migration\"");
    let messages: Vec<String> = [unknown, still_there, reserved]
        .iter()
        .map(|t| Definition::from_toml(t).expect_err("refused").to_string())
        .collect();
    assert_eq!(
        messages,
        [
            "migration.state_map, état `ancien` : état inconnu `nulle_part`",
            "migration.state_map, état `recu` : cet état existe encore : ses dossiers y restent",
            "action `migration` : identifiant réservé aux changements de définition",
        ]
    );
}

#[test]
fn each_open_dossier_carries_on_moves_or_is_stranded_and_a_closed_one_is_left_alone() {
    let def = ami2();
    let (recu, _) = deposited(def, &["acv"], BOTH_PIECES);
    let (instruit, _) = instructed(def, &["acv"]);
    let (done, _) = then(
        def,
        all_avis_given(def, &["acv"]),
        &cmd("declarer_laureat"),
        &dar_responsable(),
    );
    assert_eq!(done.state, "laureat");

    let with_map = plan(def, &renamed(), [&recu, &instruit, &done]);
    let without = plan(def, &renamed_without_map(), [&recu, &instruit, &done]);

    let fates = |plans: &[ami_core::migration::DossierPlan]| -> Vec<Fate> {
        plans.iter().map(|p| p.fate.clone()).collect()
    };
    let to = renamed().state_id("instruit_dar").expect("renamed state");
    assert_eq!(fates(&with_map), [Fate::CarriesOn, Fate::Moves { to }]);
    assert_eq!(fates(&without), [Fate::CarriesOn, Fate::Stranded]);
    assert!(!with_map.iter().any(|p| p.is_stranded()));
    assert!(without[1].is_stranded());
    assert_eq!(
        without[1].explain(def, &renamed_without_map()),
        "AMI2-V1-0007 (Saint-Flour) : bloqué : l'état « Instruit par la DAR » n'existe plus et [migration] state_map ne dit pas où il va"
    );
    assert!(
        migration_event(def, &renamed_without_map(), &without[1], &migrator(), now()).is_none()
    );
}

#[test]
fn a_dossier_classed_sans_suite_reopens_into_the_renamed_state_or_is_stranded() {
    let def = ami2();
    let classer = cmd("classer_sans_suite").with_motivation("La commune se retire.");
    let (closed, _) = then(def, instructed(def, &["acv"]), &classer, &dar_responsable());
    assert_eq!(
        closed.previous_state.as_ref().map(|s| s.as_str()),
        Some("instruit")
    );

    let with_map = plan(def, &renamed(), [&closed]);
    let without = plan(def, &renamed_without_map(), [&closed]);

    assert_eq!(with_map.len(), 1);
    assert_eq!(
        (&with_map[0].fate, with_map[0].is_stranded()),
        (&Fate::CarriesOn, false)
    );
    let event = migration_event(def, &renamed(), &with_map[0], &migrator(), now()).expect("event");
    let after = apply(Some(closed.clone()), &event).expect("applies");
    assert_eq!(
        (
            after.state.as_str(),
            after.previous_state.as_ref().map(|s| s.as_str())
        ),
        ("sans_suite", Some("instruit_dar"))
    );
    let rouvrir = cmd("rouvrir").with_motivation("La commune revient.");
    let reopened = ami_core::decide(
        &renamed(),
        Target::Dossier(&after),
        &rouvrir,
        &dar_responsable(),
        now(),
    )
    .expect("reopens");
    assert_eq!(reopened.to, "instruit_dar");
    assert_eq!(without.len(), 1);
    assert!(without[0].reopening_lost && without[0].is_stranded());
    assert!(without[0].explain(def, &renamed_without_map()).contains(
        "une réouverture le ramènerait à l'état « Instruit par la DAR », qui n'existe plus"
    ));
}

#[test]
fn an_avis_now_required_is_named() {
    // ACV's avis is now given by a committee: a dossier that had ACV's avis
    // lacks the new one.
    let text = DEFAULT_DEFINITION_TOML
        .replace(
            "avis_action = \"avis_acv\"",
            "avis_action = \"avis_comite_acv\"",
        )
        .replace("version = \"ami2-2020.2\"", "version = \"ami2-2021.3\"")
        + r#"
[[actions]]
id = "avis_comite_acv"
label = "Rendre l'avis du comité ACV"
from = ["avis_acv"]
to = "avis_acv"
agency = "acv"
role = "agent"
verdict = true
programme = "acv"
"#;
    let new = Definition::from_toml(&text).expect("loads");
    let (d, _) = all_avis_given(ami2(), &["acv"]);

    let plans = plan(ami2(), &new, [&d]);

    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].fate, Fate::CarriesOn);
    assert_eq!(
        plans[0].avis_now_required,
        [new.action_id("avis_comite_acv").unwrap()]
    );
    assert!(plans[0]
        .explain(ami2(), &new)
        .ends_with("reste à l'état « Avis Action Cœur de Ville rendu » ; doit désormais recevoir l'avis « Rendre l'avis du comité ACV »"));
}

/// A journal of up to `steps` accepted commands, each chosen among what the
/// dossier's people may do (by `choices`), from a deposit in `programmes`.
fn walk(programmes: &[&str], choices: &[usize]) -> Vec<Event> {
    let def = ami2();
    let (mut d, mut journal) = deposited(def, programmes, BOTH_PIECES);
    let people = [dar_agent(), dar_responsable(), acv_agent(), ti_agent()];
    for &choice in choices {
        let mut options: Vec<(Command, &ami_core::Actor)> = Vec::new();
        for who in &people {
            for a in available_actions(def, &d, who) {
                let command = match (a.verdict, a.effect) {
                    (true, _) => verdict(&a.id, "favorable"),
                    (false, ami_core::Effect::AttachPiece) => ajouter_piece(BUDGET),
                    (false, ami_core::Effect::RequestPieces) => Command::request_pieces(
                        a.id.clone(),
                        vec![ami2().piece_kind(BUDGET).unwrap()],
                        chrono::NaiveDate::from_ymd_opt(2099, 1, 1).unwrap(),
                    ),
                    (false, _) => cmd(&a.id),
                }
                .with_motivation("Motif");
                options.push((command, who));
            }
        }
        if options.is_empty() {
            break;
        }
        let (command, who) = &options[choice % options.len()];
        if let Ok(e) = ami_core::decide(def, Target::Dossier(&d), command, who, now()) {
            d = apply(Some(d), &e).expect("folds");
            journal.push(e);
        }
    }
    journal
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Folding a journal across a migration gives the dossier before it,
    /// renamed: the same avis, pièces, actors and history, the state and
    /// where a reopening leads in the new definition's words, one version
    /// more; and the journal before the migration folds as it did.
    #[test]
    fn folding_across_a_migration_equals_the_dossier_before_plus_its_event(
        acv in any::<bool>(),
        choices in proptest::collection::vec(0usize..16, 0..8),
    ) {
        let programmes: &[&str] = if acv { &["acv", "ti"] } else { &["ti"] };
        let journal = walk(programmes, &choices);
        let before: Dossier = fold(&journal).expect("folds").expect("a dossier");
        let new = renamed();
        let plans = plan(ami2(), &new, [&before]);
        // A closed dossier is left alone unless a reopening would lead it
        // back to the renamed state.
        let reopens_into_renamed = before.state == "sans_suite"
            && before.previous_state.as_ref().is_some_and(|p| p == "instruit");
        if ami2().is_terminal(&before.state) && !reopens_into_renamed {
            prop_assert!(plans.is_empty());
            return Ok(());
        }
        let p = &plans[0];
        prop_assert!(!p.is_stranded());
        let event = migration_event(ami2(), &new, p, &migrator(), now()).expect("an event");
        prop_assert_eq!(event.action.as_str(), MIGRATION_ACTION);
        prop_assert_eq!(event.definition_version.as_str(), "ami2-2021.1");
        prop_assert!(matches!(event.payload, Payload::Migration(_)));

        let mut whole = journal.clone();
        whole.push(event.clone());
        let after = fold(&whole).expect("folds").expect("a dossier");

        let rename = |s: &str| if s == "instruit" { "instruit_dar".to_string() } else { s.to_string() };
        let mut expected = before.clone();
        expected.version += 1;
        expected.updated_at = event.at;
        prop_assert_eq!(after.state.as_str(), rename(&before.state));
        prop_assert_eq!(
            after.previous_state.as_ref().map(|s| s.to_string()),
            before.previous_state.as_ref().map(|s| rename(s))
        );
        expected.state = after.state.clone();
        expected.previous_state = after.previous_state.clone();
        prop_assert_eq!(&after, &expected);
        prop_assert_eq!(apply(Some(before.clone()), &event).expect("applies"), after);
        prop_assert_eq!(fold(&journal).expect("folds"), Some(before));
    }
}
