//! The engine runs any valid definition, not only the default one: here the
//! two avis are collected in the other order (TI first, then ACV), a fourth
//! agency (the région) gives an avis for a new programme, and the lauréat is
//! declared by a third, higher role.

mod common;

use ami_core::{
    available_actions, awaiting, fold, to_mermaid, ActionId, Actor, Command, Definition,
    NewDossier, Rejection,
};
use common::{accept, actor_of, at, ids, refuse, BOTH_PIECES};
use smol_str::SmolStr;

const OTHER: &str = r#"
version = "ami3-test.1"

[campaign]
name = "Troisième AMI (essai)"
reference_prefix = "AMI3"
time_zone = "Europe/Paris"
opens_on = "2020-09-01"
waves = [
  { number = 1, closes_on = "2020-12-31" },
  { number = 2, closes_on = "2021-06-30" },
]

[[agencies]]
id = "dar"
label = "Cnam – DAR"

[[agencies]]
id = "ti"
label = "ANCT – Territoires d'industrie"

[[agencies]]
id = "acv"
label = "ANCT – Action Cœur de Ville"

[[agencies]]
id = "region"
label = "Conseil régional"

[[roles]]
id = "agent"
label = "Agent"

[[roles]]
id = "chef"
label = "Chef de bureau"

[[roles]]
id = "directeur"
label = "Directeur"

[[states]]
id = "recu"
label = "Reçu"

[[states]]
id = "instruit"
label = "Instruit"

[[states]]
id = "avis_ti"
label = "Avis TI rendu"

[[states]]
id = "avis_acv"
label = "Avis ACV rendu"

[[states]]
id = "avis_region"
label = "Avis de la région rendu"

[[states]]
id = "laureat"
label = "Lauréat"
terminal = true

[[states]]
id = "refuse"
label = "Refusé"
terminal = true

[[pieces]]
id = "dossier_candidature"
label = "Dossier de candidature"

[[pieces]]
id = "budget_previsionnel"
label = "Budget prévisionnel"

[[verdicts]]
id = "favorable"
label = "Favorable"

[[verdicts]]
id = "defavorable"
label = "Défavorable"
requires_motivation = true
blocking = true

[[programmes]]
id = "ti"
label = "Territoires d'industrie"
avis_action = "avis_ti"

[[programmes]]
id = "acv"
label = "Action Cœur de Ville"
avis_action = "avis_acv"

[[programmes]]
id = "ruralite"
label = "Ruralité régionale"
avis_action = "avis_region"

[[actions]]
id = "deposer"
label = "Déposer"
effect = "create"
to = "recu"
agency = "dar"
role = "agent"

[[actions]]
id = "instruire"
label = "Instruire"
from = ["recu"]
to = "instruit"
agency = "dar"
role = "agent"
verdict = true
next_step = true
guards = ["pieces_complete"]

[[actions]]
id = "avis_ti"
label = "Avis TI"
from = ["instruit"]
to = "avis_ti"
agency = "ti"
role = "agent"
verdict = true
next_step = true
programme = "ti"

[[actions]]
id = "avis_acv"
label = "Avis ACV"
from = ["instruit", "avis_ti"]
to = "avis_acv"
agency = "acv"
role = "agent"
verdict = true
next_step = true
programme = "acv"
avis_before = ["ti"]

[[actions]]
id = "avis_region"
label = "Avis de la région"
from = ["instruit", "avis_ti", "avis_acv"]
to = "avis_region"
agency = "region"
role = "chef"
verdict = true
next_step = true
programme = "ruralite"
avis_before = ["ti", "acv"]

[[actions]]
id = "declarer_laureat"
label = "Déclarer lauréat"
from = ["avis_ti", "avis_acv", "avis_region"]
to = "laureat"
agency = "dar"
role = "directeur"
next_step = true
guards = ["all_avis", "no_blocking_verdict"]
distinct_from = "instruire"

[[actions]]
id = "refuser"
label = "Refuser"
from = ["*"]
to = "refuse"
agency = "dar"
role = "chef"
motivation = true
"#;

fn other() -> Definition {
    Definition::from_toml(OTHER).expect("the other definition is valid")
}

/// An action of `def`.
fn action(def: &Definition, id: &str) -> ActionId {
    def.action_id(id)
        .unwrap_or_else(|| panic!("no action `{id}`"))
}

/// A person of an agency and role of `def`.
fn actor(def: &Definition, id: &str, agency: &str, role: &str) -> Actor {
    actor_of(def, id, agency, role)
}

/// An action of `def` that carries nothing.
fn cmd(def: &Definition, id: &str) -> Command {
    Command::transition(action(def, id))
}

/// An avis (or an instruction) of `def`, motivated.
fn avis(def: &Definition, id: &str, verdict: &str) -> Command {
    let verdict = def
        .verdict_id(verdict)
        .unwrap_or_else(|| panic!("no verdict `{verdict}`"));
    Command::verdict(action(def, id), verdict).with_motivation("Avis motivé")
}

/// The fixtures' dossier (see [`common::new_dossier`]) under programmes and
/// with pièces of `def`.
fn new_dossier(def: &Definition, number: u64, programmes: &[&str], pieces: &[&str]) -> NewDossier {
    let mut new = common::new_dossier(number, &[], pieces);
    new.programmes = programmes
        .iter()
        .map(|p| {
            def.programme_id(p)
                .unwrap_or_else(|| panic!("no programme `{p}`"))
        })
        .collect();
    for piece in &mut new.pieces {
        piece.kind = def
            .piece_kind(&piece.kind)
            .unwrap_or_else(|| panic!("no pièce `{}`", piece.kind));
    }
    new
}

fn deposer(def: &Definition, new: NewDossier) -> Command {
    Command::deposit(action(def, "deposer"), new)
}

#[test]
fn a_definition_with_four_agencies_three_roles_and_another_avis_order_loads() {
    // Arrange
    let text = OTHER;

    // Act
    let def = Definition::from_toml(text).expect("valid");

    // Assert
    assert_eq!(def.version(), "ami3-test.1");
    assert_eq!(def.agencies().len(), 4);
    assert_eq!(def.role_rank("directeur"), Some(2));
    assert_ne!(def, Definition::ami2());
    assert_eq!(
        ids(&def.action("refuser").expect("defined").from),
        ["recu", "instruit", "avis_ti", "avis_acv", "avis_region"]
    );
}

#[test]
fn a_dossier_of_the_three_programmes_runs_ti_then_acv_then_region_to_laureat() {
    // Arrange
    let def = other();
    let instructor = actor(&def, "dar-1", "dar", "agent");
    let ti = actor(&def, "ti-1", "ti", "agent");
    let acv = actor(&def, "acv-1", "acv", "agent");
    let region = actor(&def, "region-1", "region", "chef");
    let director = actor(&def, "dar-9", "dar", "directeur");
    let mut new = new_dossier(&def, 42, &["acv", "ti", "ruralite"], BOTH_PIECES);
    new.received_at = at("2021-01-04T09:00:00+01:00");
    let mut events = Vec::new();

    // Act
    let (d, e) = accept(&def, None, &deposer(&def, new), &instructor);
    events.push(e);
    let awaited_after_deposit = ids(awaiting(&def, &d));
    let (d, e) = accept(
        &def,
        Some(d),
        &avis(&def, "instruire", "favorable"),
        &instructor,
    );
    events.push(e);
    let awaited_after_instruction = ids(awaiting(&def, &d));
    let acv_too_early = refuse(&def, Some(&d), &avis(&def, "avis_acv", "favorable"), &acv);
    let (d, e) = accept(&def, Some(d), &avis(&def, "avis_ti", "favorable"), &ti);
    events.push(e);
    let awaited_after_ti = ids(awaiting(&def, &d));
    let (d, e) = accept(&def, Some(d), &avis(&def, "avis_acv", "favorable"), &acv);
    events.push(e);
    let awaited_after_acv = ids(awaiting(&def, &d));
    let laureat_too_early = refuse(&def, Some(&d), &cmd(&def, "declarer_laureat"), &director);
    let (d, e) = accept(
        &def,
        Some(d),
        &avis(&def, "avis_region", "favorable"),
        &region,
    );
    events.push(e);
    let awaited_after_region = ids(awaiting(&def, &d));
    let offered = available_actions(&def, &d, &director)
        .iter()
        .map(|a| a.id.to_string())
        .collect::<Vec<_>>();
    let (d, e) = accept(&def, Some(d), &cmd(&def, "declarer_laureat"), &director);
    events.push(e);

    // Assert
    assert_eq!(d.reference, "AMI3-V2-0042");
    assert_eq!(d.wave, 2);
    assert_eq!(awaited_after_deposit, ["dar"]);
    assert_eq!(awaited_after_instruction, ["ti"]);
    assert_eq!(
        acv_too_early,
        Rejection::AvisMissing {
            action: action(&def, "avis_acv"),
            missing: action(&def, "avis_ti"),
        }
    );
    assert_eq!(awaited_after_ti, ["acv"]);
    assert_eq!(awaited_after_acv, ["region"]);
    assert_eq!(
        laureat_too_early,
        Rejection::AvisMissing {
            action: action(&def, "declarer_laureat"),
            missing: action(&def, "avis_region"),
        }
    );
    assert_eq!(awaited_after_region, ["dar"]);
    assert_eq!(offered, ["declarer_laureat", "refuser"]);
    assert_eq!(d.state, "laureat");
    assert_eq!(d.version, 6);
    assert_eq!(d.avis("avis_region").expect("given").agency, "region");
    assert!(awaiting(&def, &d).is_empty());
    assert_eq!(fold(&events), Ok(Some(d)));
}

#[test]
fn a_region_only_dossier_goes_from_instruit_to_the_region_avis_then_laureat() {
    // Arrange
    let def = other();
    let mut new = new_dossier(&def, 3, &["ruralite"], BOTH_PIECES);
    new.received_at = at("2020-09-01T00:00:00+02:00");
    let (d, _) = accept(
        &def,
        None,
        &deposer(&def, new),
        &actor(&def, "dar-1", "dar", "agent"),
    );
    let (d, _) = accept(
        &def,
        Some(d),
        &avis(&def, "instruire", "favorable"),
        &actor(&def, "dar-1", "dar", "agent"),
    );

    // Act
    let (d, region_event) = accept(
        &def,
        Some(d),
        &avis(&def, "avis_region", "favorable"),
        &actor(&def, "r-1", "region", "directeur"),
    );
    let (d, _) = accept(
        &def,
        Some(d),
        &cmd(&def, "declarer_laureat"),
        &actor(&def, "dar-9", "dar", "directeur"),
    );

    // Assert
    assert_eq!(region_event.from.as_deref(), Some("instruit"));
    assert_eq!(d.state, "laureat");
    assert_eq!(d.reference, "AMI3-V1-0003");
}

#[test]
fn the_rules_of_the_other_definition_are_its_own() {
    // Arrange
    let def = other();
    let (d, _) = accept(
        &def,
        None,
        &deposer(&def, new_dossier(&def, 5, &["ruralite"], BOTH_PIECES)),
        &actor(&def, "dar-1", "dar", "agent"),
    );
    let (d, _) = accept(
        &def,
        Some(d),
        &avis(&def, "instruire", "favorable"),
        &actor(&def, "dar-1", "dar", "agent"),
    );

    // Act
    let region_agent = refuse(
        &def,
        Some(&d),
        &avis(&def, "avis_region", "favorable"),
        &actor(&def, "r-2", "region", "agent"),
    );
    let ti_on_ruralite = refuse(
        &def,
        Some(&d),
        &avis(&def, "avis_ti", "favorable"),
        &actor(&def, "ti-1", "ti", "agent"),
    );
    let (d, _) = accept(
        &def,
        Some(d),
        &avis(&def, "avis_region", "favorable"),
        &actor(&def, "r-1", "region", "chef"),
    );
    let dar_chef = refuse(
        &def,
        Some(&d),
        &cmd(&def, "declarer_laureat"),
        &actor(&def, "dar-5", "dar", "chef"),
    );
    let same_person = refuse(
        &def,
        Some(&d),
        &cmd(&def, "declarer_laureat"),
        &actor(&def, "dar-1", "dar", "directeur"),
    );

    // Assert
    assert_eq!(
        region_agent,
        Rejection::RoleTooLow {
            action: action(&def, "avis_region"),
            required: def.role_id("chef").expect("role"),
            actual: def.role_id("agent").expect("role"),
        }
    );
    assert_eq!(
        ti_on_ruralite,
        Rejection::ProgrammeNotConcerned {
            action: action(&def, "avis_ti"),
            programme: def.programme_id("ti").expect("programme"),
        }
    );
    assert_eq!(dar_chef.code(), "role_too_low");
    assert_eq!(same_person.code(), "four_eyes");
}

#[test]
fn the_other_campaign_has_its_own_dates() {
    // Arrange
    let def = other();
    let in_september = new_dossier(&def, 1, &["ti"], BOTH_PIECES);
    let mut in_august = new_dossier(&def, 2, &["ti"], BOTH_PIECES);
    in_august.received_at = at("2020-08-31T23:59:59+02:00");

    // Act
    let (d, _) = accept(
        &def,
        None,
        &deposer(&def, in_september),
        &actor(&def, "dar-1", "dar", "agent"),
    );
    let too_early = refuse(
        &def,
        None,
        &deposer(&def, in_august),
        &actor(&def, "dar-1", "dar", "agent"),
    );

    // Assert
    assert_eq!(d.reference, "AMI3-V1-0001");
    assert_eq!(too_early.code(), "not_open");
}

#[test]
fn the_diagram_of_the_other_definition_shows_the_region() {
    // Arrange
    let def = other();

    // Act
    let diagram = to_mermaid(&def);

    // Assert
    assert!(
        diagram.contains("    avis_acv --> avis_region : avis_region (region chef)\n"),
        "{diagram}"
    );
    assert!(
        diagram.contains("    instruit --> avis_ti : avis_ti (ti agent)\n"),
        "{diagram}"
    );
    assert!(!diagram.contains("sans_suite"));
}

/// Every label and identifier of the default definition that `def` does not
/// have: words a message for `def` must never use.
fn foreign_words(def: &Definition) -> Vec<String> {
    let ami2 = Definition::ami2();
    let words = |d: &Definition| -> Vec<String> {
        let mut w: Vec<String> = Vec::new();
        w.extend(
            d.states()
                .iter()
                .flat_map(|s| [s.id.to_string(), s.label.clone()]),
        );
        w.extend(
            d.actions()
                .iter()
                .flat_map(|a| [a.id.to_string(), a.label.clone()]),
        );
        w.extend(
            d.verdicts()
                .iter()
                .flat_map(|v| [v.id.to_string(), v.label.clone()]),
        );
        w.extend(
            d.agencies()
                .iter()
                .flat_map(|a| [a.id.to_string(), a.label.clone()]),
        );
        w.extend(
            d.roles()
                .iter()
                .flat_map(|r| [r.id.to_string(), r.label.clone()]),
        );
        w.extend(
            d.programmes()
                .iter()
                .flat_map(|p| [p.id.to_string(), p.label.clone()]),
        );
        w.extend(
            d.pieces()
                .iter()
                .flat_map(|p| [p.id.to_string(), p.label.clone()]),
        );
        w
    };
    let own = words(def);
    // Short identifiers (`ti`, `dar`) appear inside ordinary words.
    words(&ami2)
        .into_iter()
        .filter(|w| w.chars().count() > 4 && !own.iter().any(|o| o.contains(w.as_str())))
        .collect()
}

#[test]
fn every_refusal_speaks_the_words_of_the_definition_it_runs() {
    let def = other();
    let s = SmolStr::new;
    let a = |id: &str| action(&def, id);
    let when = at("2020-10-01T10:00:00+02:00");
    // The unknown words are unknown to this definition.
    assert_eq!(def.action_id("publier"), None);
    assert_eq!(def.piece_kind("plan"), None);
    assert_eq!(def.verdict_id("mitige"), None);
    assert_eq!(def.programme_id("culture"), None);
    let rejections = vec![
        Rejection::UnknownAction {
            action: s("publier"),
        },
        Rejection::WrongAgency {
            action: a("avis_region"),
            required: def.agency_id("region").expect("agency"),
            actual: def.agency_id("dar").expect("agency"),
        },
        Rejection::RoleTooLow {
            action: a("declarer_laureat"),
            required: def.role_id("directeur").expect("role"),
            actual: def.role_id("agent").expect("role"),
        },
        Rejection::Terminal {
            state: def.state_id("laureat").expect("state"),
        },
        Rejection::InvalidState {
            action: a("avis_acv"),
            state: def.state_id("recu").expect("state"),
        },
        Rejection::NoDossier {
            action: a("instruire"),
        },
        Rejection::AlreadyExists {
            action: a("deposer"),
        },
        Rejection::ProgrammeNotConcerned {
            action: a("avis_region"),
            programme: def.programme_id("ruralite").expect("programme"),
        },
        Rejection::AvisMissing {
            action: a("avis_acv"),
            missing: a("avis_ti"),
        },
        Rejection::PiecesMissing {
            missing: vec![def.piece_kind("budget_previsionnel").expect("pièce")],
        },
        Rejection::UnknownPiece { piece: s("plan") },
        Rejection::VerdictMissing {
            action: a("instruire"),
        },
        Rejection::VerdictNotExpected {
            action: a("declarer_laureat"),
        },
        Rejection::UnknownVerdict {
            verdict: s("mitige"),
        },
        Rejection::MotivationMissing {
            reason: "un verdict « Défavorable »".into(),
        },
        Rejection::BlockingVerdict {
            by: a("avis_ti"),
            verdict: def.verdict_id("defavorable").expect("verdict"),
        },
        Rejection::FourEyes {
            action: a("declarer_laureat"),
            previous: a("instruire"),
        },
        Rejection::NoProgramme,
        Rejection::UnknownProgramme {
            programme: s("culture"),
        },
        Rejection::NotOpen {
            received_at: when,
            opens_at: when,
        },
        Rejection::Closed {
            received_at: when,
            closed_at: when,
        },
        Rejection::ReceivedInFuture { received_at: when },
        Rejection::MalformedCommand {
            action: a("instruire"),
            expected: "un verdict".into(),
        },
        Rejection::Doublon {
            existing: vec!["AMI3-V1-0001".into()],
        },
        Rejection::DueInPast {
            due_on: when.date_naive(),
        },
        Rejection::NothingToReopen,
    ];
    // One of each kind of refusal, and none forgotten.
    let mut listed: Vec<usize> = rejections.iter().map(variant).collect();
    listed.sort_unstable();
    assert_eq!(listed, (0..REJECTION_VARIANTS).collect::<Vec<_>>());
    let foreign = foreign_words(&def);
    assert!(
        foreign.iter().any(|w| w == "Réservé"),
        "the check has teeth: {foreign:?}"
    );

    for r in &rejections {
        for message in [r.explain(&def), r.to_string()] {
            for word in &foreign {
                assert!(
                    !message.contains(word.as_str()),
                    "« {message} » ({}) names « {word} », which this definition lacks",
                    r.code()
                );
            }
        }
    }
    // And the words it does use are this definition's.
    let blocking = Rejection::BlockingVerdict {
        by: a("avis_ti"),
        verdict: def.verdict_id("defavorable").expect("verdict"),
    };
    assert!(
        blocking.explain(&def).contains("« Déclarer lauréat »"),
        "{}",
        blocking.explain(&def)
    );
}

/// How many kinds of refusal the engine has: [`variant`] numbers them.
const REJECTION_VARIANTS: usize = 26;

/// The rank of a refusal's kind. The match lists every variant: a new kind
/// of refusal does not compile here until it is added to the list above.
fn variant(r: &Rejection) -> usize {
    match r {
        Rejection::UnknownAction { .. } => 0,
        Rejection::WrongAgency { .. } => 1,
        Rejection::RoleTooLow { .. } => 2,
        Rejection::Terminal { .. } => 3,
        Rejection::InvalidState { .. } => 4,
        Rejection::NoDossier { .. } => 5,
        Rejection::AlreadyExists { .. } => 6,
        Rejection::ProgrammeNotConcerned { .. } => 7,
        Rejection::AvisMissing { .. } => 8,
        Rejection::PiecesMissing { .. } => 9,
        Rejection::UnknownPiece { .. } => 10,
        Rejection::VerdictMissing { .. } => 11,
        Rejection::VerdictNotExpected { .. } => 12,
        Rejection::UnknownVerdict { .. } => 13,
        Rejection::MotivationMissing { .. } => 14,
        Rejection::BlockingVerdict { .. } => 15,
        Rejection::FourEyes { .. } => 16,
        Rejection::NoProgramme => 17,
        Rejection::UnknownProgramme { .. } => 18,
        Rejection::NotOpen { .. } => 19,
        Rejection::Closed { .. } => 20,
        Rejection::ReceivedInFuture { .. } => 21,
        Rejection::MalformedCommand { .. } => 22,
        Rejection::Doublon { .. } => 23,
        Rejection::DueInPast { .. } => 24,
        Rejection::NothingToReopen => 25,
    }
}
