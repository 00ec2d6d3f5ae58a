//! `diff`: what changes from one definition to the next, said in French in
//! the definitions' own words, and nothing when nothing changes.

use ami_core::diff::{diff, ChangeKind};
use ami_core::{Definition, DEFAULT_DEFINITION_TOML};

fn changed(edit: impl Fn(String) -> String) -> Definition {
    Definition::from_toml(&edit(DEFAULT_DEFINITION_TOML.to_string())).expect("valid definition")
}

fn texts(old: &Definition, new: &Definition) -> Vec<String> {
    diff(old, new).into_iter().map(|c| c.text).collect()
}

#[test]
fn the_same_definition_has_no_change() {
    assert!(diff(&Definition::ami2(), &Definition::ami2()).is_empty());
}

#[test]
fn a_moved_deadline_a_new_wave_and_a_renamed_state_are_said_once_each() {
    let old = Definition::ami2();
    let new = changed(|t| {
        t.replace("version = \"ami2-2020.2\"", "version = \"ami2-2021.1\"")
            .replace("closes_on = \"2021-02-12\"", "closes_on = \"2021-02-19\"")
            .replace(
                "{ number = 3, closes_on = \"2021-06-25\" },",
                "{ number = 3, closes_on = \"2021-06-25\" },\n  { number = 4, closes_on = \"2021-09-30\" },",
            )
            .replace("label = \"Instruit par la DAR\"", "label = \"Instruit\"")
    });

    assert_eq!(
        texts(&old, &new),
        vec![
            "Version de la définition : ami2-2020.2 → ami2-2021.1.",
            "Vague 4 ajoutée, close le 30 septembre 2021.",
            "Vague 2 : date limite du 12 février 2021 → 19 février 2021.",
            "État instruit : libellé « Instruit par la DAR » → « Instruit ».",
        ],
        "a state's new label is not a change of every action that starts from it"
    );
}

#[test]
fn rules_that_change_are_named_with_what_they_were_and_become() {
    let old = Definition::ami2();
    let new = changed(|t| {
        t.replace(
            "id = \"reserve\"\nlabel = \"Réservé\"\nrequires_motivation = true",
            "id = \"reserve\"\nlabel = \"Réservé\"",
        )
        .replace(
            "[[pieces]]\nid = \"budget_previsionnel\"",
            "[[pieces]]\nid = \"plan_financement\"\nlabel = \"Plan de financement\"\nrequired = false\n\n[[pieces]]\nid = \"budget_previsionnel\"",
        )
        .replace("guards = [\"all_avis\", \"no_blocking_verdict\"]", "guards = [\"all_avis\"]")
    });

    let changes = diff(&old, &new);
    let said: Vec<&str> = changes.iter().map(|c| c.text.as_str()).collect();
    assert!(
        said.contains(&"Verdict « Réservé » : la motivation n'est plus obligatoire."),
        "{said:?}"
    );
    assert!(
        said.contains(&"Pièce « Plan de financement » (plan_financement) ajoutée, facultative."),
        "{said:?}"
    );
    assert!(
        said.contains(&"Action « Déclarer lauréat » : conditions : tous les avis rendus, aucun avis bloquant → tous les avis rendus."),
        "{said:?}"
    );
    let piece = changes
        .iter()
        .find(|c| c.subject == "piece:plan_financement")
        .expect("piece");
    assert_eq!(piece.kind, ChangeKind::Added);
}

#[test]
fn another_circuit_shows_its_agencies_states_and_actions_added_and_removed() {
    let old = Definition::ami2();
    let new = changed(|t| {
        t.replace(
            "[[actions]]\nid = \"classer_sans_suite\"",
            "[[actions]]\nid = \"abandonner\"",
        )
        .replace("label = \"Classer sans suite\"", "label = \"Abandonner\"")
    });

    let changes = diff(&old, &new);

    let removed = changes
        .iter()
        .find(|c| c.subject == "action:classer_sans_suite")
        .expect("removed");
    assert_eq!(removed.kind, ChangeKind::Removed);
    assert_eq!(
        removed.text,
        "Action « Classer sans suite » (classer_sans_suite) supprimée."
    );
    let added = changes
        .iter()
        .find(|c| c.subject == "action:abandonner")
        .expect("added");
    assert_eq!(added.kind, ChangeKind::Added);
    assert!(
        added.text.starts_with("Action « Abandonner » (abandonner) ajoutée : Cnam – Direction de l'action régionale, rôle Responsable, depuis "),
        "{}",
        added.text
    );
}

#[test]
fn a_state_renamed_says_where_its_dossiers_go() {
    let text = DEFAULT_DEFINITION_TOML.replace("\"instruit\"", "\"instruit_dar\"")
        + "\n[migration]\nstate_map = { instruit = \"instruit_dar\" }\n";
    let new = Definition::from_toml(&text).expect("loads");

    let texts: Vec<String> = diff(&Definition::ami2(), &new)
        .into_iter()
        .map(|c| c.text)
        .collect();

    assert!(
        texts.contains(
            &"Les dossiers à l'état « Instruit par la DAR » (instruit) passent à « Instruit par la DAR » (instruit_dar).".to_string()
        ),
        "{texts:#?}"
    );
}

#[test]
fn a_deadline_and_a_calendar_that_change_are_said_in_working_days() {
    let old = Definition::ami2();
    let new = changed(|t| {
        t.replace("calendar = \"france\"", "calendar = \"alsace_moselle\"")
            .replace("working_days = 10", "working_days = 1")
            .replacen(
                "deadline = { working_days = 15, from = \"instruire\" }\n",
                "",
                1,
            )
            .replace(
                "distinct_from = \"instruire\"\n",
                "distinct_from = \"instruire\"\ndeadline = { working_days = 20, from = \"avis_ti\" }\n",
            )
    });

    assert_eq!(
        texts(&old, &new),
        vec![
            "Calendrier des jours fériés : France → Alsace-Moselle.",
            "Action « Instruire le dossier » : délai : 10 jours ouvrés après la réception du dossier → 1 jour ouvré après la réception du dossier.",
            "Action « Rendre l'avis Action Cœur de Ville » : délai : 15 jours ouvrés après « Instruire le dossier » → sans délai.",
            "Action « Déclarer lauréat » : délai : sans délai → 20 jours ouvrés après « Rendre l'avis Territoires d'industrie ».",
        ]
    );
}
