//! The default definition as the engine loads it, and the edits of its
//! TOML that keep a definition from loading, each with the item and the
//! problem its error names (a table: every broken row is reported by its
//! label).

mod common;

use ami_core::{Definition, DefinitionError, DEFAULT_DEFINITION_TOML};
use common::*;

// ---------------------------------------------------------------------------

#[test]
fn the_default_definition() {
    let def = Definition::from_toml(DEFAULT_DEFINITION_TOML).expect("the embedded one is valid");
    assert_eq!(def, Definition::ami2());
    let c = &def.campaign();
    let about = format!("{} {} {:?}", def.version(), c.reference_prefix, c.time_zone);
    assert_eq!(about, "ami2-2020.1 AMI2 Europe/Paris");
    // the_default_definition_has_the_agencies_dar_acv_and_ti
    assert_eq!(join(def.agencies().iter().map(|a| &a.id)), "dar acv ti");
    let agencies = ["dar", "acv", "ti", "anct"].map(|a| def.has_agency(a));
    assert_eq!(agencies, [true, true, true, false]);
    // the_default_definition_ranks_agent_below_responsable
    let ranks = ["agent", "responsable", "stagiaire"].map(|r| def.role_rank(r));
    assert_eq!(ranks, [Some(0), Some(1), None]);
    // the_default_definition_has_its_states_with_french_labels_and_three_terminal_ones
    let state = |s: &ami_core::StateDef| format!("{} {} {}", s.id, s.label, s.terminal);
    assert_eq!(
        def.states().iter().map(state).collect::<Vec<_>>(),
        [
            "recu Reçu false",
            "instruit Instruit par la DAR false",
            "avis_acv Avis Action Cœur de Ville rendu false",
            "avis_ti Avis Territoires d'industrie rendu false",
            "laureat Lauréat true",
            "refuse Refusé true",
            "sans_suite Classé sans suite true",
        ]
    );
    let terminal = ["recu", "laureat", "refuse", "sans_suite"].map(|s| def.is_terminal(s));
    assert_eq!(terminal, [false, true, true, true]);
    assert_eq!(def.state_label("instruit"), "Instruit par la DAR");
    // the_default_definition_asks_for_two_pieces, …_has_three_verdicts_and_only_defavorable_blocks,
    // …_maps_each_programme_to_its_avis_action
    let pieces = join(def.pieces().iter().map(|p| &p.id));
    assert_eq!(pieces, "dossier_candidature budget_previsionnel");
    let verdict = |v: &ami_core::definition::VerdictDef| {
        format!("{} {} {}", v.id, v.requires_motivation, v.blocking)
    };
    let verdicts = join(def.verdicts().iter().map(verdict));
    assert_eq!(
        verdicts,
        "favorable false false reserve true false defavorable true true"
    );
    let programmes = join(
        def.programmes()
            .iter()
            .map(|p| format!("{}>{}", p.id, p.avis_action)),
    );
    assert_eq!(programmes, "acv>avis_acv ti>avis_ti");
    // classer_sans_suite_from_star_is_expanded_to_every_non_terminal_state
    let sans_suite = def.action("classer_sans_suite").expect("defined");
    assert_eq!(join(&sans_suite.from), "recu instruit avis_acv avis_ti");
    // the_campaign_opens_and_closes_at_paris_midnight_in_utc
    let utc = [c.opens_at(), c.closes_at(), c.waves[0].closes_at()].map(|t| t.to_rfc3339());
    let midnights = ["2020-07-19T22:00", "2021-06-25T22:00", "2020-11-06T23:00"];
    assert_eq!(utc, midnights.map(|t| format!("{t}:00+00:00")));
    // each_wave_edge_falls_at_paris_local_midnight_whatever_the_daylight_saving_time
    for &(instant, expected) in WAVE_EDGES {
        assert_eq!(c.placement(at(instant)), expected, "{instant}");
    }
}

/// The default definition, edited; its label is the row's.
struct Edit(&'static str, String);

fn edit(label: &'static str) -> Edit {
    Edit(label, DEFAULT_DEFINITION_TOML.into())
}

impl Edit {
    /// Replaces the first `from`, which must occur.
    fn replace(self, from: &str, to: &str) -> Edit {
        assert!(self.1.contains(from), "{}: no `{from}`", self.0);
        Edit(self.0, self.1.replacen(from, to, 1))
    }
    fn append(self, text: &str) -> Edit {
        Edit(self.0, self.1 + text)
    }
    /// A state `suspendu` reached from `recu`, which `classer_sans_suite` no longer leaves.
    fn suspendu(self) -> Edit {
        let every = r#"from = ["recu", "instruit", "avis_acv", "avis_ti"]"#;
        let state = "[[states]]\nid = \"suspendu\"\nlabel = \"Suspendu\"\n\n[[pieces]]";
        let this = self.replace(
            "from = [\"*\"]\nto = \"sans_suite\"",
            &format!("{every}\nto = \"sans_suite\""),
        );
        this.replace("[[pieces]]", state).append(SUSPENDRE)
    }
    /// Refused as invalid: `item` at fault, and a fragment of the problem.
    fn invalid(self, item: &str, problem: &str) -> (&'static str, Result<Vec<String>, String>) {
        let got = match Definition::from_toml(&self.1) {
            Err(DefinitionError::Invalid {
                item: i,
                problem: p,
            }) if i == item && p.contains(problem) => vec![],
            got => vec![format!("expected {item}: …{problem}…, got {:?}", got.err())],
        };
        (self.0, Ok(got))
    }
    /// Unreadable, with `fragment` in the message.
    fn unreadable(self, fragment: &str) -> (&'static str, Result<Vec<String>, String>) {
        let got = match Definition::from_toml(&self.1) {
            Err(e @ DefinitionError::Syntax(_)) => e.to_string(),
            got => format!("{:?}", got.err()),
        };
        let expected = got.starts_with("définition illisible") && got.contains(fragment);
        let wrong = format!("expected a syntax error with {fragment}, got {got}");
        (self.0, Ok(if expected { vec![] } else { vec![wrong] }))
    }
}

const SUSPENDRE: &str =
    "\n[[actions]]\nid = \"suspendre\"\nlabel = \"Suspendre\"\nfrom = [\"recu\"]
to = \"suspendu\"\nagency = \"dar\"\nrole = \"agent\"\n";
const COMPLETER: &str =
    "\n[[actions]]\nid = \"completer\"\nlabel = \"Compléter\"\neffect = \"attach_piece\"
from = [\"suspendu\"]\nto = \"suspendu\"\nagency = \"dar\"\nrole = \"agent\"\n";
const REPRENDRE: &str =
    "\n[[actions]]\nid = \"reprendre\"\nlabel = \"Reprendre\"\nfrom = [\"refuse\"]
to = \"recu\"\nagency = \"dar\"\nrole = \"responsable\"\n";

#[test]
#[rustfmt::skip]
fn a_definition_that_breaks_a_rule_does_not_load_and_says_where() {
    let broken = edit("a_toml_syntax_error_is_rejected_and_mentions_its_line")
        .replace("label = \"Reçu\"", "label = \"Reçu");
    let line = 1 + broken.1.lines().position(|l| l == "label = \"Reçu").expect("the broken line");
    report(vec![
        edit("a_definition_referencing_an_unknown_state_is_rejected_and_names_the_action")
            .replace("to = \"refuse\"", "to = \"rejete\"")
            .invalid("action `refuser`", "état inconnu `rejete`"),
        edit("a_definition_with_an_unknown_from_state_is_rejected")
            .replace(r#"from = ["avis_acv", "avis_ti"]"#, r#"from = ["avis_acv", "avis_dar"]"#)
            .invalid("action `declarer_laureat`", "état inconnu `avis_dar` (from)"),
        edit("a_definition_referencing_an_unknown_agency_is_rejected_and_names_the_action")
            .replace("agency = \"acv\"", "agency = \"anct\"")
            .invalid("action `avis_acv`", "agence inconnue `anct`"),
        edit("a_definition_referencing_an_unknown_role_is_rejected")
            .replace("role = \"responsable\"", "role = \"directeur\"")
            .invalid("action `declarer_laureat`", "rôle inconnu `directeur`"),
        edit("a_definition_with_a_duplicate_piece_id_is_rejected_and_names_it")
            .replace("id = \"budget_previsionnel\"", "id = \"dossier_candidature\"")
            .invalid("pieces `dossier_candidature`", "en double"),
        edit("a_definition_with_a_duplicate_action_id_is_rejected_and_names_it")
            .replace("id = \"refuser\"", "id = \"instruire\"")
            .invalid("actions `instruire`", "en double"),
        edit("a_definition_with_an_unreachable_state_is_rejected_and_names_it")
            .replace("[[pieces]]",
                "[[states]]\nid = \"archive\"\nlabel = \"Archivé\"\nterminal = true\n\n[[pieces]]")
            .invalid("état `archive`", "aucun chemin"),
        edit("a_definition_with_a_non_terminal_state_without_a_way_out_is_rejected").suspendu()
            .invalid("état `suspendu`", "sans aucune issue"),
        edit("a_state_left_only_by_a_loop_has_no_way_out").suspendu().append(COMPLETER)
            .invalid("état `suspendu`", "sans aucune issue"),
        edit("a_definition_with_a_way_out_of_a_terminal_state_is_rejected").append(REPRENDRE)
            .invalid("état `refuse`", "état final"),
        edit("a_definition_whose_waves_overlap_is_rejected_and_names_the_wave")
            .replace("closes_on = \"2021-02-12\"", "closes_on = \"2020-10-01\"")
            .invalid("campaign.waves, vague 2", "chevauche"),
        edit("a_definition_whose_first_wave_ends_before_the_opening_is_rejected")
            .replace("closes_on = \"2020-11-06\"", "closes_on = \"2020-07-01\"")
            .invalid("campaign.waves, vague 1", ""),
        edit("a_definition_with_a_duplicate_wave_number_is_rejected")
            .replace("number = 3", "number = 2").invalid("campaign.waves, vague 2", "en double"),
        edit("a_programme_whose_avis_action_is_unknown_is_rejected")
            .replace("avis_action = \"avis_ti\"", "avis_action = \"avis_industrie\"")
            .invalid("programme `ti`", "avis_industrie"),
        broken.unreadable(&format!("line {line}")),
        edit("an_unknown_field_in_a_definition_is_rejected")
            .replace("terminal = true", "terminal = true\ncouleur = \"vert\"")
            .unreadable("couleur"),
    ]);
}

#[test]
fn a_committee_declares_laureat_or_refuses_but_does_not_class_sans_suite() {
    let def = ami_core::Definition::ami2();
    let actions: Vec<&str> = def.committee_actions().map(|a| a.id.as_str()).collect();
    assert_eq!(actions, ["declarer_laureat", "refuser"]);
}
