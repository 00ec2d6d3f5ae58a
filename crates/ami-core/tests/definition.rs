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
    assert_eq!(about, "ami2-2020.2 AMI2 Europe/Paris");
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
    // the_default_definition_counts_its_deadlines_in_working_days_of_france
    assert_eq!(c.calendar, ami_core::Calendar::France);
    let deadline = |a: &ami_core::ActionDef| match &a.deadline {
        None => format!("{} -", a.id),
        Some(d) => {
            let json = serde_json::to_string(d).expect("serializes");
            format!("{} {json}", a.id)
        }
    };
    let next_steps = def.actions().iter().filter(|a| a.next_step).map(deadline);
    assert_eq!(
        next_steps.collect::<Vec<_>>(),
        [
            r#"instruire {"working_days":10,"from":"reception"}"#,
            r#"avis_acv {"working_days":15,"from":"instruire"}"#,
            r#"avis_ti {"working_days":15,"from":"instruire"}"#,
            "declarer_laureat -",
        ]
    );
    assert!(def
        .actions()
        .iter()
        .all(|a| a.next_step || a.deadline.is_none()));
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
fn a_campaign_may_count_in_the_calendar_of_alsace_moselle_and_france_is_the_default() {
    let alsace = edit("alsace").replace(r#"calendar = "france""#, r#"calendar = "alsace_moselle""#);
    let def = Definition::from_toml(&alsace.1).expect("valid");
    assert_eq!(def.campaign().calendar, ami_core::Calendar::AlsaceMoselle);
    let json = serde_json::to_value(def.campaign()).expect("serializes");
    assert_eq!(json["calendar"], "alsace_moselle");

    let unsaid = edit("unsaid").replace("calendar = \"france\"\n", "");
    let def = Definition::from_toml(&unsaid.1).expect("valid");
    assert_eq!(def.campaign().calendar, ami_core::Calendar::France);
    // The default is left out of the JSON form, as it was before calendars.
    let json = serde_json::to_value(def.campaign()).expect("serializes");
    assert_eq!(json.get("calendar"), None);
}

#[test]
fn a_deadline_may_count_from_any_action_that_carries_a_verdict() {
    let laureat = edit("laureat").replace(
        "distinct_from = \"instruire\"\n",
        "distinct_from = \"instruire\"\ndeadline = { working_days = 20, from = \"avis_ti\" }\n",
    );
    let def = Definition::from_toml(&laureat.1).expect("valid");
    let deadline = def
        .action("declarer_laureat")
        .and_then(|a| a.deadline.clone());
    let start = deadline.map(|d| (d.working_days, d.from));
    let avis_ti = def.action_id("avis_ti").expect("an action");
    assert_eq!(start, Some((20, ami_core::DeadlineStart::Action(avis_ti))));
}

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
        edit("a_deadline_from_an_unknown_action_is_rejected_and_names_it")
            .replace(r#"from = "instruire" }"#, r#"from = "instruction" }"#)
            .invalid("action `avis_acv`", "action inconnue `instruction` (deadline.from"),
        edit("a_deadline_from_an_action_whose_instant_the_dossier_does_not_keep_is_rejected")
            .replace(r#"from = "instruire" }"#, r#"from = "deposer" }"#)
            .invalid("action `avis_acv`", "ne garde pas l'instant de l'action `deposer`"),
        edit("a_deadline_from_the_action_itself_is_rejected")
            .replace(r#"from = "instruire" }"#, r#"from = "avis_acv" }"#)
            .invalid("action `avis_acv`", "l'action elle-même"),
        edit("a_deadline_of_no_working_day_is_rejected")
            .replace("working_days = 10", "working_days = 0")
            .invalid("action `instruire`", "délai de 0 jour(s) ouvré(s) : il doit être compris entre 1 et 365"),
        edit("a_deadline_of_more_than_365_working_days_is_rejected")
            .replace("working_days = 10", "working_days = 366")
            .invalid("action `instruire`", "délai de 366 jour(s) ouvré(s)"),
        edit("a_deadline_on_an_action_that_is_not_a_next_step_is_rejected")
            .replace("to = \"refuse\"\n", "to = \"refuse\"\ndeadline = { working_days = 5, from = \"instruire\" }\n")
            .invalid("action `refuser`", "ajoutez next_step = true"),
        edit("a_negative_deadline_does_not_read")
            .replace("working_days = 10", "working_days = -1").unreadable("working_days"),
        edit("a_deadline_with_an_unknown_field_does_not_read")
            .replace(r#"from = "reception" }"#, r#"from = "reception", jours = 3 }"#)
            .unreadable("jours"),
        edit("a_deadline_without_its_start_does_not_read")
            .replace(r#"working_days = 10, from = "reception" }"#, "working_days = 10 }")
            .unreadable("from"),
        edit("an_unknown_calendar_does_not_read_and_names_the_known_ones")
            .replace(r#"calendar = "france""#, r#"calendar = "bretagne""#)
            .unreadable("alsace_moselle"),
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
