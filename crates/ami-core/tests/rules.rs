//! Every rule of the default workflow ("Au cœur des territoires", AMI 2), one
//! test per rule, each asserting the exact [`Rejection`] and its code.

mod common;

use ami_core::{
    apply, available_actions, awaiting, decide, fold, Command, Definition, DefinitionError,
    Dossier, DossierId, Effect, Event, FoldError, Payload, Placement, Rejection,
    DEFAULT_DEFINITION_TOML,
};
use common::*;
use smol_str::SmolStr;
use uuid::Uuid;

fn s(text: &str) -> SmolStr {
    SmolStr::new(text)
}

fn action_ids<'a>(actions: &[&'a ami_core::ActionDef]) -> Vec<&'a str> {
    actions.iter().map(|a| a.id.as_str()).collect()
}

// ---------------------------------------------------------------------------
// The default definition
// ---------------------------------------------------------------------------

#[test]
fn the_embedded_definition_loads_and_is_the_default() {
    // Arrange
    let text = DEFAULT_DEFINITION_TOML;

    // Act
    let loaded = Definition::from_toml(text).expect("the embedded definition is valid");

    // Assert
    assert_eq!(loaded, Definition::ami2());
    assert_eq!(loaded.version(), "ami2-2020.1");
    assert_eq!(loaded.campaign().reference_prefix, "AMI2");
    assert_eq!(loaded.campaign().time_zone, chrono_tz::Europe::Paris);
}

#[test]
fn the_default_definition_has_the_agencies_dar_acv_and_ti() {
    // Arrange
    let def = Definition::ami2();

    // Act
    let agencies: Vec<&str> = def.agencies().iter().map(|a| a.id.as_str()).collect();

    // Assert
    assert_eq!(agencies, ["dar", "acv", "ti"]);
    assert!(def.has_agency("dar") && def.has_agency("acv") && def.has_agency("ti"));
    assert!(!def.has_agency("anct"));
}

#[test]
fn the_default_definition_ranks_agent_below_responsable() {
    // Arrange
    let def = Definition::ami2();

    // Act
    let agent = def.role_rank("agent");
    let responsable = def.role_rank("responsable");

    // Assert
    assert_eq!(agent, Some(0));
    assert_eq!(responsable, Some(1));
    assert_eq!(def.role_rank("stagiaire"), None);
}

#[test]
fn the_default_definition_has_its_states_with_french_labels_and_three_terminal_ones() {
    // Arrange
    let def = Definition::ami2();

    // Act
    let states: Vec<(&str, &str, bool)> = def
        .states()
        .iter()
        .map(|s| (s.id.as_str(), s.label.as_str(), s.terminal))
        .collect();

    // Assert
    assert_eq!(
        states,
        [
            ("recu", "Reçu", false),
            ("instruit", "Instruit par la DAR", false),
            ("avis_acv", "Avis Action Cœur de Ville rendu", false),
            ("avis_ti", "Avis Territoires d'industrie rendu", false),
            ("laureat", "Lauréat", true),
            ("refuse", "Refusé", true),
            ("sans_suite", "Classé sans suite", true),
        ]
    );
    assert!(
        def.is_terminal("laureat") && def.is_terminal("refuse") && def.is_terminal("sans_suite")
    );
    assert!(!def.is_terminal("recu"));
    assert_eq!(def.state_label("instruit"), "Instruit par la DAR");
}

#[test]
fn the_default_definition_asks_for_two_pieces() {
    // Arrange
    let def = Definition::ami2();

    // Act
    let pieces: Vec<&str> = def.pieces().iter().map(|p| p.id.as_str()).collect();

    // Assert
    assert_eq!(pieces, [CANDIDATURE, BUDGET]);
}

#[test]
fn the_default_definition_has_three_verdicts_and_only_defavorable_blocks() {
    // Arrange
    let def = Definition::ami2();

    // Act
    let verdicts: Vec<(&str, bool, bool)> = def
        .verdicts()
        .iter()
        .map(|v| (v.id.as_str(), v.requires_motivation, v.blocking))
        .collect();

    // Assert
    assert_eq!(
        verdicts,
        [
            ("favorable", false, false),
            ("reserve", true, false),
            ("defavorable", true, true),
        ]
    );
}

#[test]
fn the_default_definition_maps_each_programme_to_its_avis_action() {
    // Arrange
    let def = Definition::ami2();

    // Act
    let programmes: Vec<(&str, &str)> = def
        .programmes()
        .iter()
        .map(|p| (p.id.as_str(), p.avis_action.as_str()))
        .collect();

    // Assert
    assert_eq!(programmes, [("acv", "avis_acv"), ("ti", "avis_ti")]);
}

#[test]
fn classer_sans_suite_from_star_is_expanded_to_every_non_terminal_state() {
    // Arrange
    let def = Definition::ami2();

    // Act
    let action = def.action("classer_sans_suite").expect("defined");

    // Assert
    assert_eq!(
        ids(&action.from),
        ["recu", "instruit", "avis_acv", "avis_ti"]
    );
}

// ---------------------------------------------------------------------------
// deposer
// ---------------------------------------------------------------------------

#[test]
fn a_dar_agent_deposits_a_dossier_which_starts_in_recu() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(7, &["acv"], BOTH_PIECES));

    // Act
    let event = decide(&def, None, &command, &dar_agent(), now()).expect("accepted");
    let dossier = apply(None, &event).expect("folds");

    // Assert
    assert_eq!(event.seq, 1);
    assert_eq!(event.from, None);
    assert_eq!(event.to, "recu");
    assert_eq!(dossier.state, "recu");
    assert_eq!(dossier.version, 1);
    assert_eq!(dossier.wave, 1);
    assert_eq!(dossier.id, DossierId(Uuid::from_u128(7)));
    assert_eq!(dossier.commune, "Saint-Flour");
    assert_eq!(ids(&dossier.programmes), ["acv"]);
    assert_eq!(dossier.pieces.len(), 2);
    assert_eq!(dossier.received_at, in_wave_1());
    assert_eq!(dossier.updated_at, now());
}

#[test]
fn a_dar_responsable_may_deposit_because_a_higher_role_may_do_what_a_lower_one_does() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(7, &["ti"], BOTH_PIECES));

    // Act
    let result = decide(&def, None, &command, &dar_responsable(), now());

    // Assert
    assert_eq!(result.map(|e| e.to), Ok(s("recu")));
}

#[test]
fn an_acv_agent_cannot_deposit_a_dossier() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(7, &["acv"], BOTH_PIECES));

    // Act
    let rejection = refuse(&def, None, &command, &acv_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::WrongAgency {
            action: s("deposer"),
            required: s("dar"),
            actual: s("acv"),
        }
    );
    assert_eq!(rejection.code(), "wrong_agency");
    assert!(rejection.is_forbidden());
}

#[test]
fn an_actor_with_an_unknown_role_is_below_every_role() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(7, &["acv"], BOTH_PIECES));

    // Act
    let rejection = refuse(&def, None, &command, &actor("x", "dar", "stagiaire"));

    // Assert
    assert_eq!(
        rejection,
        Rejection::RoleTooLow {
            action: s("deposer"),
            required: s("agent"),
            actual: s("stagiaire"),
        }
    );
    assert_eq!(rejection.code(), "role_too_low");
}

#[test]
fn a_dossier_received_before_the_campaign_opens_is_refused_as_not_open() {
    // Arrange
    let def = Definition::ami2();
    let mut new = new_dossier(7, &["acv"], BOTH_PIECES);
    new.received_at = at("2020-07-01T12:00:00+02:00");

    // Act
    let rejection = refuse(&def, None, &deposer(new), &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::NotOpen {
            received_at: at("2020-07-01T12:00:00+02:00"),
            opens_at: at("2020-07-20T00:00:00+02:00"),
        }
    );
    assert_eq!(rejection.code(), "not_open");
    assert_eq!(rejection.field(), Some("received_at"));
}

#[test]
fn a_dossier_received_after_the_last_wave_is_refused_as_closed() {
    // Arrange
    let def = Definition::ami2();
    let mut new = new_dossier(7, &["acv"], BOTH_PIECES);
    new.received_at = at("2021-07-14T12:00:00+02:00");

    // Act
    let rejection = refuse(&def, None, &deposer(new), &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::Closed {
            received_at: at("2021-07-14T12:00:00+02:00"),
            closed_at: at("2021-06-26T00:00:00+02:00"),
        }
    );
    assert_eq!(rejection.code(), "closed");
}

#[test]
fn a_dossier_received_after_now_is_refused_as_received_in_the_future() {
    // Arrange
    let def = Definition::ami2();
    let mut new = new_dossier(7, &["acv"], BOTH_PIECES);
    new.received_at = at("2020-10-02T10:00:00+02:00");
    let clock = at("2020-10-01T10:00:00+02:00");

    // Act
    let rejection = decide(&def, None, &deposer(new), &dar_agent(), clock).unwrap_err();

    // Assert
    assert_eq!(
        rejection,
        Rejection::ReceivedInFuture {
            received_at: at("2020-10-02T10:00:00+02:00"),
        }
    );
    assert_eq!(rejection.code(), "received_in_future");
}

#[test]
fn a_dossier_received_exactly_now_is_accepted() {
    // Arrange
    let def = Definition::ami2();
    let new = new_dossier(7, &["acv"], BOTH_PIECES);
    let clock = new.received_at;

    // Act
    let result = decide(&def, None, &deposer(new), &dar_agent(), clock);

    // Assert
    assert_eq!(result.map(|e| e.seq), Ok(1));
}

#[test]
fn a_dossier_without_any_programme_is_refused() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(7, &[], BOTH_PIECES));

    // Act
    let rejection = refuse(&def, None, &command, &dar_agent());

    // Assert
    assert_eq!(rejection, Rejection::NoProgramme);
    assert_eq!(rejection.code(), "no_programme");
    assert_eq!(rejection.field(), Some("programmes"));
}

#[test]
fn a_dossier_in_an_unknown_programme_is_refused() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(7, &["acv", "petites_villes"], BOTH_PIECES));

    // Act
    let rejection = refuse(&def, None, &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::UnknownProgramme {
            programme: s("petites_villes"),
        }
    );
    assert_eq!(rejection.code(), "unknown_programme");
}

#[test]
fn a_dossier_with_an_unknown_piece_is_refused() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(7, &["acv"], &[CANDIDATURE, "photo_du_maire"]));

    // Act
    let rejection = refuse(&def, None, &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::UnknownPiece {
            piece: s("photo_du_maire"),
        }
    );
    assert_eq!(rejection.code(), "unknown_piece");
}

#[test]
fn the_reference_is_built_from_the_prefix_the_wave_and_the_number_on_four_digits() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(7, &["acv"], BOTH_PIECES));

    // Act
    let (dossier, event) = accept(&def, None, &command, &dar_agent());

    // Assert
    assert_eq!(dossier.reference, "AMI2-V1-0007");
    let Payload::Create(created) = &event.payload else {
        panic!("a creation carries the dossier");
    };
    assert_eq!(created.reference, "AMI2-V1-0007");
    assert_eq!(created.wave, 1);
}

#[test]
fn the_reference_carries_the_wave_of_the_reception_date() {
    // Arrange
    let def = Definition::ami2();
    let mut new = new_dossier(1234, &["ti"], BOTH_PIECES);
    new.received_at = at("2021-03-15T09:00:00+01:00");

    // Act
    let (dossier, _) = accept(&def, None, &deposer(new), &dar_agent());

    // Assert
    assert_eq!(dossier.reference, "AMI2-V3-1234");
    assert_eq!(dossier.wave, 3);
}

#[test]
fn a_reference_number_beyond_four_digits_is_written_in_full() {
    for (number, expected) in [
        (0, "AMI2-V1-0000"),
        (10_000, "AMI2-V1-10000"),
        (u64::MAX, "AMI2-V1-18446744073709551615"),
    ] {
        // Arrange
        let def = Definition::ami2();
        let command = deposer(new_dossier(number, &["acv"], BOTH_PIECES));

        // Act
        let (dossier, _) = accept(&def, None, &command, &dar_agent());

        // Assert
        assert_eq!(dossier.reference, expected);
    }
}

#[test]
fn a_programme_given_twice_is_kept_once_in_its_first_place() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(7, &["ti", "acv", "ti"], BOTH_PIECES));

    // Act
    let (dossier, _) = accept(&def, None, &command, &dar_agent());

    // Assert
    assert_eq!(ids(&dossier.programmes), ["ti", "acv"]);
}

#[test]
fn deposer_without_the_content_of_the_dossier_is_malformed() {
    // Arrange
    let def = Definition::ami2();

    // Act
    let rejection = refuse(&def, None, &Command::new("deposer"), &dar_agent());

    // Assert
    assert!(
        matches!(&rejection, Rejection::MalformedCommand { action, .. } if action == "deposer"),
        "{rejection:?}"
    );
    assert_eq!(rejection.code(), "malformed_command");
}

#[test]
fn deposer_with_a_verdict_is_refused_as_verdict_not_expected() {
    // Arrange
    let def = Definition::ami2();
    let command = Command {
        verdict: Some(s("favorable")),
        ..deposer(new_dossier(7, &["acv"], BOTH_PIECES))
    };

    // Act
    let rejection = refuse(&def, None, &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::VerdictNotExpected {
            action: s("deposer"),
        }
    );
}

#[test]
fn deposer_on_an_existing_dossier_is_refused_as_already_exists() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let command = deposer(new_dossier(7, &["acv"], BOTH_PIECES));

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::AlreadyExists {
            action: s("deposer"),
        }
    );
    assert_eq!(rejection.code(), "already_exists");
}

#[test]
fn an_action_other_than_deposer_on_no_dossier_is_refused_as_no_dossier() {
    // Arrange
    let def = Definition::ami2();
    let command = Command::new("instruire").with_verdict("favorable");

    // Act
    let rejection = refuse(&def, None, &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::NoDossier {
            action: s("instruire"),
        }
    );
    assert_eq!(rejection.code(), "no_dossier");
}

// ---------------------------------------------------------------------------
// Waves, in Europe/Paris, across daylight saving time
// ---------------------------------------------------------------------------

/// Each edge of the campaign, written in Paris local time with its offset
/// (+02:00 in summer, +01:00 in winter), and where it must fall.
const WAVE_EDGES: &[(&str, Placement)] = &[
    ("2020-07-19T23:59:59+02:00", Placement::NotOpen),
    ("2020-07-20T00:00:00+02:00", Placement::Wave(1)),
    ("2020-11-06T23:59:59+01:00", Placement::Wave(1)),
    ("2020-11-07T00:00:00+01:00", Placement::Wave(2)),
    ("2021-02-12T23:59:59+01:00", Placement::Wave(2)),
    ("2021-02-13T00:00:00+01:00", Placement::Wave(3)),
    ("2021-06-25T23:59:59+02:00", Placement::Wave(3)),
    ("2021-06-26T00:00:00+02:00", Placement::Closed),
];

#[test]
fn each_wave_edge_falls_at_paris_local_midnight_whatever_the_daylight_saving_time() {
    // Arrange
    let def = Definition::ami2();

    for &(instant, expected) in WAVE_EDGES {
        // Act
        let placement = def.campaign().placement(at(instant));

        // Assert
        assert_eq!(placement, expected, "{instant}");
    }
}

#[test]
fn the_campaign_opens_and_closes_at_paris_midnight_in_utc() {
    // Arrange
    let def = Definition::ami2();

    // Act
    let (opens, closes) = (def.campaign().opens_at, def.campaign().closes_at());

    // Assert
    assert_eq!(opens.to_rfc3339(), "2020-07-19T22:00:00+00:00");
    assert_eq!(closes.to_rfc3339(), "2021-06-25T22:00:00+00:00");
    let wave_1_end = def.campaign().waves[0].closes_at;
    assert_eq!(wave_1_end.to_rfc3339(), "2020-11-06T23:00:00+00:00");
}

#[test]
fn deposer_places_each_wave_edge_like_the_campaign_does() {
    // Arrange
    let def = Definition::ami2();

    for (number, &(instant, expected)) in (1..).zip(WAVE_EDGES) {
        let mut new = new_dossier(number, &["acv"], BOTH_PIECES);
        new.received_at = at(instant);

        // Act
        let result = decide(&def, None, &deposer(new), &dar_agent(), now());

        // Assert
        match (expected, result) {
            (Placement::Wave(wave), Ok(event)) => {
                let dossier = apply(None, &event).expect("folds");
                assert_eq!(dossier.wave, wave, "{instant}");
                assert_eq!(dossier.reference, format!("AMI2-V{wave}-{number:04}"));
            }
            (Placement::NotOpen, Err(r)) => assert_eq!(r.code(), "not_open", "{instant}"),
            (Placement::Closed, Err(r)) => assert_eq!(r.code(), "closed", "{instant}"),
            (expected, got) => panic!("{instant}: expected {expected:?}, got {got:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// instruire and ajouter_piece
// ---------------------------------------------------------------------------

#[test]
fn instruire_refuses_a_dossier_without_pieces_and_lists_both_missing() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[]);
    let command = Command::new("instruire").with_verdict("favorable");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::PiecesMissing {
            missing: vec![s(CANDIDATURE), s(BUDGET)],
        }
    );
    assert_eq!(rejection.code(), "pieces_missing");
    assert_eq!(
        rejection.to_string(),
        "pièces manquantes : dossier_candidature, budget_previsionnel"
    );
}

#[test]
fn instruire_refuses_a_dossier_missing_one_piece_and_lists_only_that_one() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[CANDIDATURE]);
    let command = Command::new("instruire").with_verdict("favorable");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::PiecesMissing {
            missing: vec![s(BUDGET)],
        }
    );
}

#[test]
fn instruire_without_a_verdict_is_refused() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("instruire"),
        &dar_agent(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::VerdictMissing {
            action: s("instruire"),
        }
    );
    assert_eq!(rejection.code(), "verdict_missing");
    assert_eq!(rejection.field(), Some("verdict"));
}

#[test]
fn instruire_with_an_unknown_verdict_is_refused() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let command = Command::new("instruire").with_verdict("excellent");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::UnknownVerdict {
            verdict: s("excellent"),
        }
    );
    assert_eq!(rejection.code(), "unknown_verdict");
}

#[test]
fn a_reserve_or_defavorable_verdict_without_motivation_is_refused() {
    for verdict in ["reserve", "defavorable"] {
        // Arrange
        let def = Definition::ami2();
        let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
        let command = Command::new("instruire").with_verdict(verdict);

        // Act
        let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

        // Assert
        assert!(
            matches!(&rejection, Rejection::MotivationMissing { .. }),
            "{verdict}: {rejection:?}"
        );
        assert_eq!(rejection.code(), "motivation_missing");
        assert_eq!(rejection.field(), Some("motivation"));
    }
}

#[test]
fn a_blank_motivation_counts_as_no_motivation() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let command = Command::new("instruire")
        .with_verdict("defavorable")
        .with_motivation("  \n\t ");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::MotivationMissing {
            reason: "un verdict « Défavorable »".into(),
        }
    );
}

#[test]
fn a_favorable_verdict_needs_no_motivation() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let command = Command::new("instruire").with_verdict("favorable");

    // Act
    let (dossier, event) = accept(&def, Some(dossier), &command, &dar_agent());

    // Assert
    assert_eq!(dossier.state, "instruit");
    assert_eq!(event.motivation, None);
    assert_eq!(dossier.avis(_)["instruire"].verdict, "favorable");
}

#[test]
fn a_reserve_verdict_with_a_motivation_is_accepted() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let command = Command::new("instruire")
        .with_verdict("reserve")
        .with_motivation("Plan de financement fragile");

    // Act
    let (dossier, _) = accept(&def, Some(dossier), &command, &dar_agent());

    // Assert
    let avis = &dossier.avis(_)["instruire"];
    assert_eq!(avis.verdict, "reserve");
    assert_eq!(
        avis.motivation.as_deref(),
        Some("Plan de financement fragile")
    );
    assert_eq!(avis.agency, "dar");
}

#[test]
fn an_acv_agent_cannot_instruct_a_dossier() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let command = Command::new("instruire").with_verdict("favorable");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &acv_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::WrongAgency {
            action: s("instruire"),
            required: s("dar"),
            actual: s("acv"),
        }
    );
}

#[test]
fn instruire_twice_is_refused_as_invalid_state() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["acv"]);
    let command = Command::new("instruire").with_verdict("favorable");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::InvalidState {
            action: s("instruire"),
            state: s("instruit"),
        }
    );
    assert_eq!(rejection.code(), "invalid_state");
}

#[test]
fn ajouter_piece_in_recu_keeps_the_state_appends_the_piece_and_enters_the_history() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, mut events) = deposited(&def, &["acv"], &[CANDIDATURE]);

    // Act
    let (dossier, event) = accept(&def, Some(dossier), &ajouter_piece(BUDGET), &dar_agent());
    events.push(event.clone());

    // Assert
    assert_eq!(dossier.state, "recu");
    assert_eq!(dossier.version, 2);
    assert_eq!(event.seq, 2);
    assert_eq!(
        (event.from.as_deref(), event.to.as_str()),
        (Some("recu"), "recu")
    );
    assert_eq!(event.payload, Payload::Piece(piece(BUDGET)));
    let kinds: Vec<&str> = dossier.pieces.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(kinds, [CANDIDATURE, BUDGET]);
    assert_eq!(fold(&events), Ok(Some(dossier)));
}

#[test]
fn instruire_works_once_the_missing_piece_is_added() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[CANDIDATURE]);
    let (dossier, _) = accept(&def, Some(dossier), &ajouter_piece(BUDGET), &dar_agent());
    let command = Command::new("instruire").with_verdict("favorable");

    // Act
    let (dossier, event) = accept(&def, Some(dossier), &command, &dar_agent());

    // Assert
    assert_eq!(dossier.state, "instruit");
    assert_eq!(event.seq, 3);
}

#[test]
fn a_piece_sent_again_replaces_the_earlier_copy() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let mut command = ajouter_piece(BUDGET);
    command.piece.as_mut().unwrap().filename = "budget_v2.pdf".into();

    // Act
    let (dossier, _) = accept(&def, Some(dossier), &command, &dar_agent());

    // Assert
    let budgets: Vec<&str> = dossier
        .pieces
        .iter()
        .filter(|p| p.kind == BUDGET)
        .map(|p| p.filename.as_str())
        .collect();
    assert_eq!(budgets, ["budget_v2.pdf"]);
    assert_eq!(dossier.pieces.len(), 2);
}

#[test]
fn ajouter_piece_of_an_unknown_kind_is_refused() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[CANDIDATURE]);

    // Act
    let rejection = refuse(&def, Some(&dossier), &ajouter_piece("photo"), &dar_agent());

    // Assert
    assert_eq!(rejection, Rejection::UnknownPiece { piece: s("photo") });
}

#[test]
fn ajouter_piece_without_a_piece_is_malformed() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[CANDIDATURE]);

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("ajouter_piece"),
        &dar_agent(),
    );

    // Assert
    assert!(
        matches!(&rejection, Rejection::MalformedCommand { action, .. } if action == "ajouter_piece"),
        "{rejection:?}"
    );
}

#[test]
fn a_piece_on_an_action_that_does_not_take_one_is_malformed() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let command = Command {
        piece: Some(piece(BUDGET)),
        ..Command::new("instruire").with_verdict("favorable")
    };

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

    // Assert
    assert!(
        matches!(&rejection, Rejection::MalformedCommand { action, .. } if action == "instruire"),
        "{rejection:?}"
    );
}

#[test]
fn a_corrected_budget_after_instruction_is_a_new_version_in_the_same_state() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["acv"]);
    let mut corrected = ajouter_piece(BUDGET);
    if let Some(p) = corrected.piece.as_mut() {
        p.filename = "budget-corrige.xlsx".into();
    }

    // Act
    let (after, event) = accept(&def, Some(dossier.clone()), &corrected, &dar_agent());

    // Assert
    assert_eq!(
        (event.from.as_deref(), event.to.as_str()),
        (Some("instruit"), "instruit")
    );
    assert_eq!(after.version, dossier.version + 1);
    assert_eq!(after.state, "instruit");
    let budget = after
        .pieces
        .iter()
        .find(|p| p.kind == BUDGET)
        .expect("budget");
    assert_eq!(budget.filename, "budget-corrige.xlsx");
    assert_eq!(ids(awaiting(&def, &after)), ["acv"]);
}

// ---------------------------------------------------------------------------
// avis_acv
// ---------------------------------------------------------------------------

#[test]
fn avis_acv_is_given_by_an_acv_agent_on_an_instructed_acv_dossier() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["acv"]);

    // Act
    let (dossier, event) = accept(
        &def,
        Some(dossier),
        &avis("avis_acv", "favorable"),
        &acv_agent(),
    );

    // Assert
    assert_eq!(dossier.state, "avis_acv");
    assert_eq!(event.from.as_deref(), Some("instruit"));
    assert_eq!(dossier.avis(_)["avis_acv"].agency, "acv");
    assert_eq!(dossier.avis(_)["avis_acv"].actor, acv_agent());
}

#[test]
fn avis_acv_on_a_dossier_outside_the_acv_programme_is_refused() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["ti"]);

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &avis("avis_acv", "favorable"),
        &acv_agent(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::ProgrammeNotConcerned {
            action: s("avis_acv"),
            programme: s("acv"),
        }
    );
    assert_eq!(rejection.code(), "programme_not_concerned");
}

#[test]
fn avis_acv_before_instruction_is_refused_as_invalid_state() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &avis("avis_acv", "favorable"),
        &acv_agent(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::InvalidState {
            action: s("avis_acv"),
            state: s("recu"),
        }
    );
}

#[test]
fn avis_acv_cannot_be_given_twice() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed(&def, &["acv"]);
    let (dossier, _) = then(&def, run, &avis("avis_acv", "favorable"), &acv_agent());

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &avis("avis_acv", "reserve"),
        &acv_agent(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::InvalidState {
            action: s("avis_acv"),
            state: s("avis_acv"),
        }
    );
}

#[test]
fn only_an_acv_actor_gives_the_acv_avis() {
    for who in [ti_agent(), dar_agent(), dar_responsable()] {
        // Arrange
        let def = Definition::ami2();
        let (dossier, _) = instructed(&def, &["acv"]);

        // Act
        let rejection = refuse(&def, Some(&dossier), &avis("avis_acv", "favorable"), &who);

        // Assert
        assert_eq!(
            rejection,
            Rejection::WrongAgency {
                action: s("avis_acv"),
                required: s("acv"),
                actual: who.agency.clone(),
            }
        );
    }
}

// ---------------------------------------------------------------------------
// avis_ti
// ---------------------------------------------------------------------------

#[test]
fn avis_ti_is_given_from_instruit_on_a_ti_only_dossier() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["ti"]);

    // Act
    let (dossier, event) = accept(
        &def,
        Some(dossier),
        &avis("avis_ti", "reserve"),
        &ti_agent(),
    );

    // Assert
    assert_eq!(dossier.state, "avis_ti");
    assert_eq!(event.from.as_deref(), Some("instruit"));
    assert_eq!(dossier.avis(_)["avis_ti"].verdict, "reserve");
}

#[test]
fn avis_ti_from_instruit_on_an_acv_and_ti_dossier_waits_for_the_acv_avis() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["acv", "ti"]);

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &avis("avis_ti", "favorable"),
        &ti_agent(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::AvisMissing {
            action: s("avis_ti"),
            missing: s("avis_acv"),
        }
    );
    assert_eq!(rejection.code(), "avis_missing");
}

#[test]
fn avis_ti_after_the_acv_avis_on_an_acv_and_ti_dossier_works() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed(&def, &["acv", "ti"]);
    let (dossier, _) = then(&def, run, &avis("avis_acv", "favorable"), &acv_agent());

    // Act
    let (dossier, event) = accept(
        &def,
        Some(dossier),
        &avis("avis_ti", "favorable"),
        &ti_agent(),
    );

    // Assert
    assert_eq!(event.from.as_deref(), Some("avis_acv"));
    assert_eq!(dossier.state, "avis_ti");
    assert_eq!(dossier.avis(_).len(), 3);
}

#[test]
fn avis_ti_on_an_acv_only_dossier_is_refused() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed(&def, &["acv"]);
    let (dossier, _) = then(&def, run, &avis("avis_acv", "favorable"), &acv_agent());

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &avis("avis_ti", "favorable"),
        &ti_agent(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::ProgrammeNotConcerned {
            action: s("avis_ti"),
            programme: s("ti"),
        }
    );
}

#[test]
fn an_acv_agent_cannot_give_the_ti_avis() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["ti"]);

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &avis("avis_ti", "favorable"),
        &acv_agent(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::WrongAgency {
            action: s("avis_ti"),
            required: s("ti"),
            actual: s("acv"),
        }
    );
}

// ---------------------------------------------------------------------------
// declarer_laureat
// ---------------------------------------------------------------------------

#[test]
fn a_dar_agent_cannot_declare_a_laureat() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = all_avis_given(&def, &["acv", "ti"]);
    let other_agent = actor("dar-agent-2", "dar", "agent");

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("declarer_laureat"),
        &other_agent,
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::RoleTooLow {
            action: s("declarer_laureat"),
            required: s("responsable"),
            actual: s("agent"),
        }
    );
    assert_eq!(rejection.code(), "role_too_low");
    assert!(rejection.is_forbidden());
}

#[test]
fn a_responsable_of_another_agency_cannot_declare_a_laureat() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = all_avis_given(&def, &["acv", "ti"]);

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("declarer_laureat"),
        &actor("ti-resp-1", "ti", "responsable"),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::WrongAgency {
            action: s("declarer_laureat"),
            required: s("dar"),
            actual: s("ti"),
        }
    );
}

#[test]
fn declarer_laureat_is_refused_while_the_ti_avis_is_missing() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed(&def, &["acv", "ti"]);
    let (dossier, _) = then(&def, run, &avis("avis_acv", "favorable"), &acv_agent());

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::AvisMissing {
            action: s("declarer_laureat"),
            missing: s("avis_ti"),
        }
    );
}

#[test]
fn declarer_laureat_from_instruit_is_refused_as_invalid_state() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["acv"]);

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::InvalidState {
            action: s("declarer_laureat"),
            state: s("instruit"),
        }
    );
}

#[test]
fn a_defavorable_verdict_of_the_dar_blocks_the_declaration() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed_with(&def, &["acv"], "defavorable");
    let (dossier, _) = then(&def, run, &avis("avis_acv", "favorable"), &acv_agent());

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::BlockingVerdict {
            by: s("instruire"),
            verdict: s("defavorable"),
        }
    );
    assert_eq!(rejection.code(), "blocking_verdict");
}

#[test]
fn a_defavorable_verdict_of_the_acv_blocks_the_declaration() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed(&def, &["acv", "ti"]);
    let run = then(&def, run, &avis("avis_acv", "defavorable"), &acv_agent());
    let (dossier, _) = then(&def, run, &avis("avis_ti", "favorable"), &ti_agent());

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::BlockingVerdict {
            by: s("avis_acv"),
            verdict: s("defavorable"),
        }
    );
}

#[test]
fn a_defavorable_verdict_of_the_ti_blocks_the_declaration() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed(&def, &["ti"]);
    let (dossier, _) = then(&def, run, &avis("avis_ti", "defavorable"), &ti_agent());

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::BlockingVerdict {
            by: s("avis_ti"),
            verdict: s("defavorable"),
        }
    );
}

#[test]
fn reserve_verdicts_do_not_block_the_declaration() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed_with(&def, &["acv", "ti"], "reserve");
    let run = then(&def, run, &avis("avis_acv", "reserve"), &acv_agent());
    let (dossier, _) = then(&def, run, &avis("avis_ti", "reserve"), &ti_agent());

    // Act
    let (dossier, _) = accept(
        &def,
        Some(dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(dossier.state, "laureat");
}

#[test]
fn the_person_who_instructed_cannot_declare_the_dossier_laureat() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = all_avis_given(&def, &["acv", "ti"]);
    // Same person as `dar_agent()`, who instructed, since promoted.
    let same_person = actor("dar-agent-1", "dar", "responsable");

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("declarer_laureat"),
        &same_person,
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::FourEyes {
            action: s("declarer_laureat"),
            previous: s("instruire"),
        }
    );
    assert_eq!(rejection.code(), "four_eyes");
}

#[test]
fn a_responsable_who_instructed_cannot_declare_the_same_dossier() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["ti"], BOTH_PIECES);
    let instruire = Command::new("instruire").with_verdict("favorable");
    let run = then(&def, (dossier, vec![]), &instruire, &dar_responsable());
    let (dossier, _) = then(&def, run, &avis("avis_ti", "favorable"), &ti_agent());

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(rejection.code(), "four_eyes");
}

#[test]
fn another_dar_responsable_declares_an_acv_and_ti_dossier_laureat_from_avis_ti() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = all_avis_given(&def, &["acv", "ti"]);

    // Act
    let (dossier, event) = accept(
        &def,
        Some(dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(event.from.as_deref(), Some("avis_ti"));
    assert_eq!(dossier.state, "laureat");
    assert_eq!(dossier.version, 5);
}

#[test]
fn an_acv_only_dossier_is_declared_laureat_from_avis_acv() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = all_avis_given(&def, &["acv"]);
    assert_eq!(dossier.state, "avis_acv");

    // Act
    let (dossier, event) = accept(
        &def,
        Some(dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(event.from.as_deref(), Some("avis_acv"));
    assert_eq!(dossier.state, "laureat");
}

#[test]
fn a_ti_only_dossier_is_declared_laureat_from_avis_ti() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = all_avis_given(&def, &["ti"]);
    assert_eq!(dossier.state, "avis_ti");

    // Act
    let (dossier, event) = accept(
        &def,
        Some(dossier),
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(event.from.as_deref(), Some("avis_ti"));
    assert_eq!(dossier.state, "laureat");
}

// ---------------------------------------------------------------------------
// refuser, classer_sans_suite, terminal states
// ---------------------------------------------------------------------------

/// A dossier (ACV and TI) brought to `state` by the happy path.
fn dossier_in(def: &Definition, state: &str) -> Dossier {
    let run = deposited(def, &["acv", "ti"], BOTH_PIECES);
    if state == "recu" {
        return run.0;
    }
    let run = then(
        def,
        run,
        &Command::new("instruire").with_verdict("favorable"),
        &dar_agent(),
    );
    if state == "instruit" {
        return run.0;
    }
    let run = then(def, run, &avis("avis_acv", "favorable"), &acv_agent());
    if state == "avis_acv" {
        return run.0;
    }
    let run = then(def, run, &avis("avis_ti", "favorable"), &ti_agent());
    if state == "avis_ti" {
        return run.0;
    }
    let command = match state {
        "laureat" => Command::new("declarer_laureat"),
        "refuse" => Command::new("refuser").with_motivation("Hors critères"),
        "sans_suite" => Command::new("classer_sans_suite").with_motivation("Retrait"),
        other => panic!("no path to {other}"),
    };
    then(def, run, &command, &dar_responsable()).0
}

#[test]
fn a_dar_responsable_refuses_a_dossier_from_instruit_avis_acv_or_avis_ti() {
    for state in ["instruit", "avis_acv", "avis_ti"] {
        // Arrange
        let def = Definition::ami2();
        let dossier = dossier_in(&def, state);
        let command = Command::new("refuser").with_motivation("Projet hors périmètre");

        // Act
        let (dossier, event) = accept(&def, Some(dossier), &command, &dar_responsable());

        // Assert
        assert_eq!(event.from.as_deref(), Some(state));
        assert_eq!(dossier.state, "refuse");
        assert_eq!(event.motivation.as_deref(), Some("Projet hors périmètre"));
    }
}

#[test]
fn refuser_needs_a_motivation() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "instruit");

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("refuser"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::MotivationMissing {
            reason: "l'action « Refuser le dossier »".into(),
        }
    );
    assert_eq!(rejection.code(), "motivation_missing");
}

#[test]
fn refuser_from_recu_is_refused_as_invalid_state() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "recu");
    let command = Command::new("refuser").with_motivation("Trop tôt");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_responsable());

    // Assert
    assert_eq!(
        rejection,
        Rejection::InvalidState {
            action: s("refuser"),
            state: s("recu"),
        }
    );
}

#[test]
fn a_dar_agent_cannot_refuse_a_dossier() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "instruit");
    let command = Command::new("refuser").with_motivation("Hors critères");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

    // Assert
    assert_eq!(
        rejection,
        Rejection::RoleTooLow {
            action: s("refuser"),
            required: s("responsable"),
            actual: s("agent"),
        }
    );
}

#[test]
fn a_verdict_on_refuser_is_refused_as_verdict_not_expected() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "instruit");
    let command = Command::new("refuser")
        .with_verdict("defavorable")
        .with_motivation("Hors critères");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_responsable());

    // Assert
    assert_eq!(
        rejection,
        Rejection::VerdictNotExpected {
            action: s("refuser"),
        }
    );
    assert_eq!(rejection.code(), "verdict_not_expected");
    assert_eq!(rejection.field(), Some("verdict"));
}

#[test]
fn a_dar_responsable_classes_a_dossier_sans_suite_from_every_non_terminal_state() {
    for state in ["recu", "instruit", "avis_acv", "avis_ti"] {
        // Arrange
        let def = Definition::ami2();
        let dossier = dossier_in(&def, state);
        let command = Command::new("classer_sans_suite").with_motivation("La commune se retire");

        // Act
        let (dossier, event) = accept(&def, Some(dossier), &command, &dar_responsable());

        // Assert
        assert_eq!(event.from.as_deref(), Some(state));
        assert_eq!(dossier.state, "sans_suite");
    }
}

#[test]
fn classer_sans_suite_needs_a_motivation() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "recu");

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &Command::new("classer_sans_suite"),
        &dar_responsable(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::MotivationMissing {
            reason: "l'action « Classer sans suite »".into(),
        }
    );
}

#[test]
fn an_acv_agent_cannot_class_a_dossier_sans_suite() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "instruit");
    let command = Command::new("classer_sans_suite").with_motivation("Retrait");

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &acv_agent());

    // Assert
    assert_eq!(rejection.code(), "wrong_agency");
}

#[test]
fn a_terminal_dossier_refuses_every_action_with_terminal() {
    let def = Definition::ami2();
    let everyone = [
        dar_agent(),
        dar_responsable(),
        acv_agent(),
        ti_agent(),
        actor("someone-else", "dar", "responsable"),
    ];
    for state in ["laureat", "refuse", "sans_suite"] {
        // Arrange
        let dossier = dossier_in(&def, state);
        // Every action but a creation and the reopening of this very state.
        for action in def.actions().iter().filter(|a| {
            a.effect != Effect::Create && !(a.effect == Effect::Reopen && a.is_possible_from(state))
        }) {
            let mut command = Command::new(&action.id)
                .with_verdict("favorable")
                .with_motivation("Motif");
            if !action.verdict {
                command.verdict = None;
            }
            if action.effect == Effect::AttachPiece {
                command.piece = Some(piece(BUDGET));
            }
            for who in &everyone {
                // Act
                let rejection = refuse(&def, Some(&dossier), &command, who);

                // Assert
                assert_eq!(
                    rejection,
                    Rejection::Terminal { state: s(state) },
                    "{} by {} on {state}",
                    action.id,
                    who.id
                );
                assert_eq!(rejection.code(), "terminal_state");
            }
        }
    }
}

#[test]
fn deposer_on_a_terminal_dossier_is_refused_as_already_exists() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "laureat");
    let command = deposer(new_dossier(7, &["acv"], BOTH_PIECES));

    // Act
    let rejection = refuse(&def, Some(&dossier), &command, &dar_agent());

    // Assert
    assert_eq!(rejection.code(), "already_exists");
}

// ---------------------------------------------------------------------------
// Unknown actions, events
// ---------------------------------------------------------------------------

#[test]
fn an_unknown_action_is_refused_with_or_without_a_dossier() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "instruit");
    let command = Command::new("valider");

    // Act
    let on_dossier = refuse(&def, Some(&dossier), &command, &dar_responsable());
    let on_nothing = refuse(&def, None, &command, &dar_responsable());

    // Assert
    let expected = Rejection::UnknownAction {
        action: s("valider"),
    };
    assert_eq!(on_dossier, expected);
    assert_eq!(on_nothing, expected);
    assert_eq!(expected.code(), "unknown_action");
    assert_eq!(expected.field(), Some("action"));
}

#[test]
fn an_event_carries_everything_the_journal_needs() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let command = Command {
        comment: Some("Vu en comité".into()),
        ..Command::new("instruire")
            .with_verdict("reserve")
            .with_motivation("Budget à préciser")
    };
    let clock = at("2021-01-15T14:30:00+01:00");

    // Act
    let event = decide(&def, Some(&dossier), &command, &dar_agent(), clock).expect("accepted");

    // Assert
    assert_eq!(
        event,
        Event {
            dossier_id: DossierId(Uuid::from_u128(7)),
            seq: 2,
            action: s("instruire"),
            from: Some(s("recu")),
            to: s("instruit"),
            actor: dar_agent(),
            at: clock,
            verdict: Some(s("reserve")),
            motivation: Some("Budget à préciser".into()),
            comment: Some("Vu en comité".into()),
            definition_version: s("ami2-2020.1"),
            payload: Payload::None,
        }
    );
}

#[test]
fn a_creation_event_carries_the_definition_version_and_the_dossier() {
    // Arrange
    let def = Definition::ami2();
    let new = new_dossier(7, &["acv", "ti"], BOTH_PIECES);

    // Act
    let event = decide(&def, None, &deposer(new.clone()), &dar_agent(), now()).expect("accepted");

    // Assert
    assert_eq!(event.dossier_id, new.id);
    assert_eq!(event.seq, 1);
    assert_eq!(event.action, "deposer");
    assert_eq!(event.actor, dar_agent());
    assert_eq!(event.at, now());
    assert_eq!(event.verdict, None);
    assert_eq!(event.definition_version, "ami2-2020.1");
    let Payload::Create(created) = &event.payload else {
        panic!("a creation carries the dossier");
    };
    assert_eq!(created.dossier, new);
}

// ---------------------------------------------------------------------------
// available_actions and awaiting
// ---------------------------------------------------------------------------

#[test]
fn a_dar_agent_on_a_complete_dossier_in_recu_may_add_a_piece_ask_for_one_or_instruct() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "recu");

    // Act
    let actions = available_actions(&def, &dossier, &dar_agent());

    // Assert
    assert_eq!(
        action_ids(&actions),
        ["ajouter_piece", "demander_complement", "instruire"]
    );
}

#[test]
fn instruire_is_not_offered_while_a_piece_is_missing() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[CANDIDATURE]);

    // Act
    let actions = available_actions(&def, &dossier, &dar_agent());

    // Assert
    assert_eq!(
        action_ids(&actions),
        ["ajouter_piece", "demander_complement"]
    );
}

#[test]
fn an_acv_agent_has_nothing_to_do_on_a_dossier_in_recu() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "recu");

    // Act
    let actions = available_actions(&def, &dossier, &acv_agent());

    // Assert
    assert!(actions.is_empty(), "{:?}", action_ids(&actions));
}

#[test]
fn on_an_instructed_acv_and_ti_dossier_only_the_acv_may_act_among_the_avis_agencies() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "instruit");

    // Act
    let acv = available_actions(&def, &dossier, &acv_agent());
    let ti = available_actions(&def, &dossier, &ti_agent());

    // Assert
    assert_eq!(action_ids(&acv), ["avis_acv"]);
    assert!(ti.is_empty(), "{:?}", action_ids(&ti));
}

#[test]
fn a_dar_responsable_in_avis_ti_may_add_or_ask_for_a_piece_declare_refuse_or_class_the_dossier() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "avis_ti");

    // Act
    let actions = available_actions(&def, &dossier, &dar_responsable());

    // Assert
    assert_eq!(
        action_ids(&actions),
        [
            "ajouter_piece",
            "demander_complement",
            "declarer_laureat",
            "refuser",
            "classer_sans_suite"
        ]
    );
}

#[test]
fn declarer_laureat_is_not_offered_to_the_person_who_instructed() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "avis_ti");
    let instructor_promoted = actor("dar-agent-1", "dar", "responsable");

    // Act
    let actions = available_actions(&def, &dossier, &instructor_promoted);

    // Assert
    assert_eq!(
        action_ids(&actions),
        [
            "ajouter_piece",
            "demander_complement",
            "refuser",
            "classer_sans_suite"
        ]
    );
}

#[test]
fn declarer_laureat_is_not_offered_after_a_defavorable_verdict() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed(&def, &["ti"]);
    let (dossier, _) = then(&def, run, &avis("avis_ti", "defavorable"), &ti_agent());

    // Act
    let actions = available_actions(&def, &dossier, &dar_responsable());

    // Assert
    assert_eq!(
        action_ids(&actions),
        [
            "ajouter_piece",
            "demander_complement",
            "refuser",
            "classer_sans_suite"
        ]
    );
}

#[test]
fn nothing_is_offered_on_a_terminal_dossier_but_reopening_one_classed_sans_suite() {
    let def = Definition::ami2();
    for (state, offered) in [
        ("laureat", &[][..]),
        ("refuse", &[][..]),
        ("sans_suite", &["rouvrir"][..]),
    ] {
        // Arrange
        let dossier = dossier_in(&def, state);

        // Act
        let actions = available_actions(&def, &dossier, &dar_responsable());
        let for_an_agent = available_actions(&def, &dossier, &dar_agent());

        // Assert
        assert_eq!(action_ids(&actions), offered, "{state}");
        assert!(
            for_an_agent.is_empty(),
            "{state}: {:?}",
            action_ids(&for_an_agent)
        );
    }
}

#[test]
fn a_dossier_in_recu_awaits_the_dar() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "recu");

    // Act
    let agencies = awaiting(&def, &dossier);

    // Assert
    assert_eq!(ids(agencies), ["dar"]);
}

#[test]
fn an_instructed_acv_and_ti_dossier_awaits_the_acv() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "instruit");

    // Act
    let agencies = awaiting(&def, &dossier);

    // Assert
    assert_eq!(ids(agencies), ["acv"]);
}

#[test]
fn an_instructed_ti_only_dossier_awaits_the_ti() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["ti"]);

    // Act
    let agencies = awaiting(&def, &dossier);

    // Assert
    assert_eq!(ids(agencies), ["ti"]);
}

#[test]
fn an_acv_and_ti_dossier_with_the_acv_avis_awaits_the_ti() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "avis_acv");

    // Act
    let agencies = awaiting(&def, &dossier);

    // Assert
    assert_eq!(ids(agencies), ["ti"]);
}

#[test]
fn an_acv_only_dossier_with_its_avis_awaits_the_dar() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = all_avis_given(&def, &["acv"]);

    // Act
    let agencies = awaiting(&def, &dossier);

    // Assert
    assert_eq!(ids(agencies), ["dar"]);
}

#[test]
fn a_dossier_with_every_avis_awaits_the_dar() {
    // Arrange
    let def = Definition::ami2();
    let dossier = dossier_in(&def, "avis_ti");

    // Act
    let agencies = awaiting(&def, &dossier);

    // Assert
    assert_eq!(ids(agencies), ["dar"]);
}

#[test]
fn a_terminal_dossier_awaits_nobody() {
    let def = Definition::ami2();
    for state in ["laureat", "refuse", "sans_suite"] {
        // Arrange
        let dossier = dossier_in(&def, state);

        // Act
        let agencies = awaiting(&def, &dossier);

        // Assert
        assert!(agencies.is_empty(), "{state}: {agencies:?}");
    }
}

// ---------------------------------------------------------------------------
// fold and apply
// ---------------------------------------------------------------------------

#[test]
fn folding_the_journal_gives_the_dossier_built_step_by_step() {
    // Arrange
    let def = Definition::ami2();
    let run = deposited(&def, &["acv", "ti"], &[CANDIDATURE]);
    let run = then(&def, run, &ajouter_piece(BUDGET), &dar_agent());
    let run = then(
        &def,
        run,
        &Command::new("instruire").with_verdict("favorable"),
        &dar_agent(),
    );
    let run = then(&def, run, &avis("avis_acv", "reserve"), &acv_agent());
    let run = then(&def, run, &avis("avis_ti", "favorable"), &ti_agent());
    let (step_by_step, events) = then(
        &def,
        run,
        &Command::new("declarer_laureat"),
        &dar_responsable(),
    );

    // Act
    let folded = fold(&events);

    // Assert
    assert_eq!(folded, Ok(Some(step_by_step.clone())));
    assert_eq!(step_by_step.version, 6);
    assert_eq!(
        ids(step_by_step.avis(_).keys()),
        ["avis_acv", "avis_ti", "instruire"]
    );
    assert_eq!(step_by_step.actors["instruire"], "dar-agent-1");
    assert_eq!(step_by_step.actors["declarer_laureat"], "dar-resp-1");
}

#[test]
fn folding_an_empty_journal_gives_no_dossier() {
    // Arrange
    let events: Vec<Event> = Vec::new();

    // Act
    let folded = fold(&events);

    // Assert
    assert_eq!(folded, Ok(None));
}

#[test]
fn apply_rejects_an_event_that_skips_a_sequence_number() {
    // Arrange
    let def = Definition::ami2();
    let run = deposited(&def, &["acv"], BOTH_PIECES);
    let run = then(
        &def,
        run,
        &Command::new("instruire").with_verdict("favorable"),
        &dar_agent(),
    );
    let (_, events) = then(&def, run, &avis("avis_acv", "favorable"), &acv_agent());
    let created = apply(None, &events[0]).expect("creation folds");

    // Act
    let result = apply(Some(created.clone()), &events[2]);

    // Assert
    assert_eq!(
        result,
        Err(FoldError::OutOfSequence {
            dossier_id: created.id,
            seq: 3,
            version: 1,
        })
    );
    assert_eq!(
        fold([&events[0], &events[2]]).map(|_| ()),
        result.map(|_| ())
    );
}

#[test]
fn apply_rejects_an_event_applied_twice() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, events) = instructed(&def, &["acv"]);

    // Act
    let result = apply(Some(dossier.clone()), &events[1]);

    // Assert
    assert_eq!(
        result,
        Err(FoldError::OutOfSequence {
            dossier_id: dossier.id,
            seq: 2,
            version: 2,
        })
    );
}

#[test]
fn apply_rejects_a_first_event_that_is_not_a_creation() {
    // Arrange
    let def = Definition::ami2();
    let (_, events) = instructed(&def, &["acv"]);

    // Act
    let result = apply(None, &events[1]);

    // Assert
    assert_eq!(result, Err(FoldError::NotACreation(events[1].dossier_id)));
}

#[test]
fn apply_rejects_a_creation_whose_sequence_number_is_not_one() {
    // Arrange
    let def = Definition::ami2();
    let (_, events) = deposited(&def, &["acv"], BOTH_PIECES);
    let mut creation = events[0].clone();
    creation.seq = 2;

    // Act
    let result = apply(None, &creation);

    // Assert
    assert_eq!(
        result,
        Err(FoldError::OutOfSequence {
            dossier_id: creation.dossier_id,
            seq: 2,
            version: 0,
        })
    );
}

#[test]
fn apply_rejects_an_event_of_another_dossier() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let (_, other_events) = instructed(&def, &["acv"]);
    let mut stray = other_events[1].clone();
    stray.dossier_id = DossierId(Uuid::from_u128(99));

    // Act
    let result = apply(Some(dossier.clone()), &stray);

    // Assert
    assert_eq!(
        result,
        Err(FoldError::WrongDossier {
            dossier_id: dossier.id,
            event_dossier: DossierId(Uuid::from_u128(99)),
            seq: 2,
        })
    );
}

#[test]
fn apply_in_place_gives_the_same_dossier_as_apply() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, events) = instructed(&def, &["acv", "ti"]);
    let mut in_place = apply(None, &events[0]).expect("creation folds");

    // Act
    ami_core::apply_in_place(&mut in_place, &events[1]).expect("folds");

    // Assert
    assert_eq!(in_place, dossier);
}

#[test]
fn apply_in_place_leaves_the_dossier_unchanged_when_the_event_does_not_follow() {
    // Arrange
    let def = Definition::ami2();
    let (mut dossier, events) = instructed(&def, &["acv"]);
    let before = dossier.clone();

    // Act
    let result = ami_core::apply_in_place(&mut dossier, &events[1]);

    // Assert
    assert_eq!(
        result.map_err(|e| e.to_string()),
        Err(format!(
            "l'événement 2 du dossier {} ne suit pas la version 2",
            before.id
        ))
    );
    assert_eq!(dossier, before);
}

// ---------------------------------------------------------------------------
// The per-action maps of a dossier
// ---------------------------------------------------------------------------

#[test]
fn an_action_map_keeps_its_entries_in_key_order_and_the_last_value_per_key() {
    // Arrange
    let mut map: ami_core::ActionMap<u32> = ami_core::ActionMap::new();

    // Act
    let first = map.insert(s("instruire"), 1);
    map.insert(s("avis_ti"), 2);
    map.insert(s("avis_acv"), 3);
    let replaced = map.insert(s("instruire"), 4);

    // Assert
    assert_eq!((first, replaced), (None, Some(1)));
    assert_eq!(map.len(), 3);
    assert_eq!(ids(map.keys()), ["avis_acv", "avis_ti", "instruire"]);
    assert_eq!(map.values().copied().collect::<Vec<_>>(), [3, 2, 4]);
    assert_eq!(map.get("instruire"), Some(&4));
    assert_eq!(map["avis_ti"], 2);
    assert_eq!(map[&s("avis_acv")], 3);
    assert!(map.contains_key("avis_acv") && !map.contains_key("deposer"));
    assert_eq!(map.get("deposer"), None);
    assert_eq!(
        format!("{map:?}"),
        r#"{"avis_acv": 3, "avis_ti": 2, "instruire": 4}"#
    );
    let owned: Vec<(SmolStr, u32)> = map.clone().into_iter().collect();
    assert_eq!(owned[0], (s("avis_acv"), 3));
    assert_eq!(map.iter().next_back(), Some((&s("instruire"), &4)));
}

#[test]
fn a_dossier_serializes_its_avis_and_actors_as_json_objects_and_reads_them_back() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = all_avis_given(&def, &["acv", "ti"]);

    // Act
    let json = serde_json::to_value(&dossier).expect("serializes");
    let back: Dossier = serde_json::from_value(json.clone()).expect("deserializes");

    // Assert
    let avis = json["avis"].as_object().expect("an object");
    assert_eq!(
        avis.keys().collect::<Vec<_>>(),
        ["avis_acv", "avis_ti", "instruire"]
    );
    assert_eq!(json["avis"]["avis_ti"]["agency"], "ti");
    assert_eq!(json["actors"]["instruire"], "dar-agent-1");
    assert_eq!(back, dossier);
}

#[test]
fn a_copied_dossier_takes_its_next_action_like_the_original() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = all_avis_given(&def, &["acv", "ti"]);
    let copy = dossier.clone();
    let command = Command::new("declarer_laureat");

    // Act
    let (from_original, _) = accept(&def, Some(dossier), &command, &dar_responsable());
    let (from_copy, _) = accept(&def, Some(copy), &command, &dar_responsable());

    // Assert
    assert_eq!(from_copy, from_original);
    assert_eq!(
        ids(from_copy.actors.keys()),
        [
            "avis_acv",
            "avis_ti",
            "declarer_laureat",
            "deposer",
            "instruire"
        ]
    );
}

// ---------------------------------------------------------------------------
// Rejection codes and messages
// ---------------------------------------------------------------------------

/// One value of every variant. The exhaustive `match` makes this test fail to
/// compile when a variant is added and not listed here.
fn every_rejection() -> Vec<Rejection> {
    let a = || s("instruire");
    let t = at("2020-07-20T00:00:00+02:00");
    let all = vec![
        Rejection::UnknownAction { action: a() },
        Rejection::WrongAgency {
            action: a(),
            required: s("dar"),
            actual: s("acv"),
        },
        Rejection::RoleTooLow {
            action: a(),
            required: s("responsable"),
            actual: s("agent"),
        },
        Rejection::Terminal {
            state: s("laureat"),
        },
        Rejection::InvalidState {
            action: a(),
            state: s("recu"),
        },
        Rejection::NoDossier { action: a() },
        Rejection::AlreadyExists { action: a() },
        Rejection::ProgrammeNotConcerned {
            action: a(),
            programme: s("acv"),
        },
        Rejection::AvisMissing {
            action: a(),
            missing: s("avis_acv"),
        },
        Rejection::PiecesMissing {
            missing: vec![s(BUDGET)],
        },
        Rejection::UnknownPiece { piece: s("photo") },
        Rejection::VerdictMissing { action: a() },
        Rejection::VerdictNotExpected { action: a() },
        Rejection::UnknownVerdict { verdict: s("bof") },
        Rejection::MotivationMissing {
            reason: "un verdict « Réservé »".into(),
        },
        Rejection::BlockingVerdict {
            by: a(),
            verdict: s("defavorable"),
        },
        Rejection::FourEyes {
            action: s("declarer_laureat"),
            previous: a(),
        },
        Rejection::NoProgramme,
        Rejection::UnknownProgramme { programme: s("x") },
        Rejection::NotOpen {
            received_at: t,
            opens_at: t,
        },
        Rejection::Closed {
            received_at: t,
            closed_at: t,
        },
        Rejection::ReceivedInFuture { received_at: t },
        Rejection::MalformedCommand {
            action: a(),
            expected: "une pièce".into(),
        },
        Rejection::Doublon {
            existing: vec!["AMI2-V1-0001".into()],
        },
        Rejection::DueInPast {
            due_on: chrono::NaiveDate::from_ymd_opt(2020, 11, 20).expect("date"),
        },
        Rejection::NothingToReopen,
    ];
    for r in &all {
        match r {
            Rejection::UnknownAction { .. }
            | Rejection::WrongAgency { .. }
            | Rejection::RoleTooLow { .. }
            | Rejection::Terminal { .. }
            | Rejection::InvalidState { .. }
            | Rejection::NoDossier { .. }
            | Rejection::AlreadyExists { .. }
            | Rejection::ProgrammeNotConcerned { .. }
            | Rejection::AvisMissing { .. }
            | Rejection::PiecesMissing { .. }
            | Rejection::UnknownPiece { .. }
            | Rejection::VerdictMissing { .. }
            | Rejection::VerdictNotExpected { .. }
            | Rejection::UnknownVerdict { .. }
            | Rejection::MotivationMissing { .. }
            | Rejection::BlockingVerdict { .. }
            | Rejection::FourEyes { .. }
            | Rejection::NoProgramme
            | Rejection::UnknownProgramme { .. }
            | Rejection::NotOpen { .. }
            | Rejection::Closed { .. }
            | Rejection::ReceivedInFuture { .. }
            | Rejection::MalformedCommand { .. }
            | Rejection::Doublon { .. }
            | Rejection::DueInPast { .. }
            | Rejection::NothingToReopen => {}
        }
    }
    all
}

#[test]
fn every_rejection_has_a_distinct_non_empty_code() {
    // Arrange
    let all = every_rejection();

    // Act
    let codes: std::collections::BTreeSet<&str> = all.iter().map(|r| r.code()).collect();

    // Assert
    assert_eq!(codes.len(), all.len(), "{codes:?}");
    for code in &codes {
        assert!(!code.is_empty());
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
    }
}

#[test]
fn every_rejection_has_a_non_empty_message() {
    // Arrange
    let all = every_rejection();

    // Act
    let messages: Vec<String> = all.iter().map(|r| r.to_string()).collect();

    // Assert
    for (r, m) in all.iter().zip(&messages) {
        assert!(!m.trim().is_empty(), "{}", r.code());
    }
}

#[test]
fn rejection_messages_are_in_french() {
    // Arrange
    let all = every_rejection();
    let message = |code: &str| {
        all.iter()
            .find(|r| r.code() == code)
            .map(|r| r.to_string())
            .expect("listed")
    };

    // Act and Assert
    assert_eq!(
        message("wrong_agency"),
        "l'action « instruire » revient à l'agence « dar », pas à « acv »"
    );
    assert_eq!(
        message("four_eyes"),
        "quatre yeux : la personne qui a pris l'action « instruire » ne peut pas prendre l'action « declarer_laureat »"
    );
    assert_eq!(
        message("no_programme"),
        "le dossier doit relever d'au moins un programme"
    );
    assert!(message("terminal_state").contains("état final « laureat »"));
    assert!(message("motivation_missing").starts_with("une motivation est obligatoire"));
}

#[test]
fn only_agency_and_role_refusals_are_forbidden() {
    // Arrange
    let all = every_rejection();

    // Act
    let forbidden: Vec<&str> = all
        .iter()
        .filter(|r| r.is_forbidden())
        .map(|r| r.code())
        .collect();

    // Assert
    assert_eq!(forbidden, ["wrong_agency", "role_too_low"]);
}

// ---------------------------------------------------------------------------
// Definition validation
// ---------------------------------------------------------------------------

/// The default definition with `from` replaced by `to` (which must occur).
fn variant(from: &str, to: &str) -> String {
    assert!(
        DEFAULT_DEFINITION_TOML.contains(from),
        "`{from}` is not in the default definition"
    );
    DEFAULT_DEFINITION_TOML.replacen(from, to, 1)
}

fn invalid(text: &str) -> (String, String) {
    match Definition::from_toml(text) {
        Ok(_) => panic!("the definition was accepted"),
        Err(DefinitionError::Invalid { item, problem }) => (item, problem),
        Err(other) => panic!("expected an invalid item, got {other}"),
    }
}

#[test]
fn a_definition_referencing_an_unknown_state_is_rejected_and_names_the_action() {
    // Arrange
    let text = variant("to = \"refuse\"", "to = \"rejete\"");

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "action `refuser`");
    assert!(problem.contains("état inconnu `rejete`"), "{problem}");
}

#[test]
fn a_definition_with_an_unknown_from_state_is_rejected() {
    // Arrange
    let text = variant(
        "from = [\"avis_acv\", \"avis_ti\"]",
        "from = [\"avis_acv\", \"avis_dar\"]",
    );

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "action `declarer_laureat`");
    assert!(
        problem.contains("état inconnu `avis_dar` (from)"),
        "{problem}"
    );
}

#[test]
fn a_definition_referencing_an_unknown_agency_is_rejected_and_names_the_action() {
    // Arrange
    let text = variant("agency = \"acv\"", "agency = \"anct\"");

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "action `avis_acv`");
    assert!(problem.contains("agence inconnue `anct`"), "{problem}");
}

#[test]
fn a_definition_referencing_an_unknown_role_is_rejected() {
    // Arrange
    let text = variant("role = \"responsable\"", "role = \"directeur\"");

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "action `declarer_laureat`");
    assert!(problem.contains("rôle inconnu `directeur`"), "{problem}");
}

#[test]
fn a_definition_with_a_duplicate_piece_id_is_rejected_and_names_it() {
    // Arrange
    let text = variant(
        "id = \"budget_previsionnel\"",
        "id = \"dossier_candidature\"",
    );

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "pieces `dossier_candidature`");
    assert!(problem.contains("en double"), "{problem}");
}

#[test]
fn a_definition_with_a_duplicate_action_id_is_rejected_and_names_it() {
    // Arrange
    let text = variant("id = \"refuser\"", "id = \"instruire\"");

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "actions `instruire`");
    assert!(problem.contains("en double"), "{problem}");
}

#[test]
fn a_definition_with_an_unreachable_state_is_rejected_and_names_it() {
    // Arrange
    let text = variant(
        "[[pieces]]",
        "[[states]]\nid = \"archive\"\nlabel = \"Archivé\"\nterminal = true\n\n[[pieces]]",
    );

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "état `archive`");
    assert!(problem.contains("aucun chemin"), "{problem}");
}

#[test]
fn a_definition_with_a_non_terminal_state_without_a_way_out_is_rejected() {
    // Arrange: `suspendu` is reached from `recu`, and classer_sans_suite no
    // longer covers every non-terminal state.
    let text = variant(
        "from = [\"*\"]\nto = \"sans_suite\"",
        "from = [\"recu\", \"instruit\", \"avis_acv\", \"avis_ti\"]\nto = \"sans_suite\"",
    )
        .replacen(
            "[[pieces]]",
            "[[states]]\nid = \"suspendu\"\nlabel = \"Suspendu\"\n\n[[pieces]]",
            1,
        )
        + "\n[[actions]]\nid = \"suspendre\"\nlabel = \"Suspendre\"\nfrom = [\"recu\"]\nto = \"suspendu\"\nagency = \"dar\"\nrole = \"agent\"\n";

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "état `suspendu`");
    assert!(problem.contains("sans aucune issue"), "{problem}");
}

#[test]
fn a_state_left_only_by_a_loop_has_no_way_out() {
    // Arrange: `suspendu` may only receive pièces (from = to).
    let text = variant(
        "from = [\"*\"]\nto = \"sans_suite\"",
        "from = [\"recu\", \"instruit\", \"avis_acv\", \"avis_ti\"]\nto = \"sans_suite\"",
    )
        .replacen(
            "[[pieces]]",
            "[[states]]\nid = \"suspendu\"\nlabel = \"Suspendu\"\n\n[[pieces]]",
            1,
        )
        + "\n[[actions]]\nid = \"suspendre\"\nlabel = \"Suspendre\"\nfrom = [\"recu\"]\nto = \"suspendu\"\nagency = \"dar\"\nrole = \"agent\"\n"
        + "\n[[actions]]\nid = \"completer\"\nlabel = \"Compléter\"\neffect = \"attach_piece\"\nfrom = [\"suspendu\"]\nto = \"suspendu\"\nagency = \"dar\"\nrole = \"agent\"\n";

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "état `suspendu`");
    assert!(problem.contains("sans aucune issue"), "{problem}");
}

#[test]
fn a_definition_with_a_way_out_of_a_terminal_state_is_rejected() {
    // Arrange
    let text = DEFAULT_DEFINITION_TOML.to_owned()
        + "\n[[actions]]\nid = \"reprendre\"\nlabel = \"Reprendre\"\nfrom = [\"refuse\"]\nto = \"recu\"\nagency = \"dar\"\nrole = \"responsable\"\n";

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "état `refuse`");
    assert!(problem.contains("état final"), "{problem}");
}

#[test]
fn a_definition_whose_waves_overlap_is_rejected_and_names_the_wave() {
    // Arrange: wave 2 would end before wave 1.
    let text = variant("closes_on = \"2021-02-12\"", "closes_on = \"2020-10-01\"");

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "campaign.waves, vague 2");
    assert!(problem.contains("chevauche"), "{problem}");
}

#[test]
fn a_definition_whose_first_wave_ends_before_the_opening_is_rejected() {
    // Arrange
    let text = variant("closes_on = \"2020-11-06\"", "closes_on = \"2020-07-01\"");

    // Act
    let (item, _) = invalid(&text);

    // Assert
    assert_eq!(item, "campaign.waves, vague 1");
}

#[test]
fn a_definition_with_a_duplicate_wave_number_is_rejected() {
    // Arrange
    let text = variant("number = 3", "number = 2");

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "campaign.waves, vague 2");
    assert!(problem.contains("en double"), "{problem}");
}

#[test]
fn a_programme_whose_avis_action_is_unknown_is_rejected() {
    // Arrange
    let text = variant(
        "avis_action = \"avis_ti\"",
        "avis_action = \"avis_industrie\"",
    );

    // Act
    let (item, problem) = invalid(&text);

    // Assert
    assert_eq!(item, "programme `ti`");
    assert!(problem.contains("avis_industrie"), "{problem}");
}

#[test]
fn a_toml_syntax_error_is_rejected_and_mentions_its_line() {
    // Arrange: an unterminated string on the line of the `recu` label.
    let text = variant("label = \"Reçu\"", "label = \"Reçu");
    let line = 1 + text
        .lines()
        .position(|l| l == "label = \"Reçu")
        .expect("the broken line is there");

    // Act
    let error = Definition::from_toml(&text).unwrap_err();

    // Assert
    let DefinitionError::Syntax(message) = &error else {
        panic!("expected a syntax error, got {error}");
    };
    assert!(
        message.contains(&format!("line {line}")),
        "line {line}: {message}"
    );
    assert!(error.to_string().starts_with("définition illisible"));
}

#[test]
fn an_unknown_field_in_a_definition_is_rejected() {
    // Arrange
    let text = variant("terminal = true", "terminal = true\ncouleur = \"vert\"");

    // Act
    let error = Definition::from_toml(&text).unwrap_err();

    // Assert
    assert!(
        matches!(&error, DefinitionError::Syntax(m) if m.contains("couleur")),
        "{error}"
    );
}

#[test]
fn held_back_actions_name_the_rule_that_keeps_a_persons_button_away() {
    let def = Definition::ami2();
    // A deposit without its files: the DAR agent's « Instruire » waits for them.
    let (d, _) = deposited(&def, &["acv", "ti"], &[]);
    let held: Vec<(&str, &str)> = ami_core::held_back_actions(&def, &d, &dar_agent())
        .iter()
        .map(|(a, r)| (a.id.as_str(), r.code()))
        .collect();
    assert_eq!(held, vec![("instruire", "pieces_missing")]);

    // Instructed by the DAR agent and given every avis: the responsable who
    // instructed may not declare (four eyes), another one may.
    let (d, _) = all_avis_given(&def, &["acv", "ti"]);
    let instructor = ami_core::Actor {
        role: "responsable".into(),
        ..dar_agent()
    };
    let held: Vec<(&str, &str)> = ami_core::held_back_actions(&def, &d, &instructor)
        .iter()
        .map(|(a, r)| (a.id.as_str(), r.code()))
        .collect();
    assert_eq!(held, vec![("declarer_laureat", "four_eyes")]);
    assert!(ami_core::held_back_actions(&def, &d, &dar_responsable()).is_empty());

    // The TI avis of a dossier in both programmes waits for the ACV one; an
    // agency with nothing to do on the dossier is told nothing.
    let (d, _) = instructed(&def, &["acv", "ti"]);
    let held: Vec<(&str, &str)> = ami_core::held_back_actions(&def, &d, &ti_agent())
        .iter()
        .map(|(a, r)| (a.id.as_str(), r.code()))
        .collect();
    assert_eq!(held, vec![("avis_ti", "avis_missing")]);
    let (acv_only, _) = instructed(&def, &["acv"]);
    assert!(ami_core::held_back_actions(&def, &acv_only, &ti_agent()).is_empty());
}
