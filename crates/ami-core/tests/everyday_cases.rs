//! The DAR's everyday cases: a town withdraws and comes back, a pièce is
//! asked of the town, a commune applies twice; and refusals explained in the
//! definition's words.

mod common;

use ami_core::{
    apply, awaiting, decide, fold, Command, Definition, Payload, PieceKind, Rejection, Target,
    PORTEUR,
};
use chrono::NaiveDate;
use common::*;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

fn classer(motivation: &str) -> Command {
    cmd("classer_sans_suite").with_motivation(motivation)
}

fn rouvrir(motivation: &str) -> Command {
    cmd("rouvrir").with_motivation(motivation)
}

fn demander(pieces: &[PieceKind], due_on: NaiveDate) -> Command {
    Command::request_pieces(action("demander_complement"), pieces.to_vec(), due_on)
        .with_motivation("Budget illisible, merci de le renvoyer")
}

/// A kind of pièce of the default definition.
fn kind(id: &str) -> PieceKind {
    ami2()
        .piece_kind(id)
        .unwrap_or_else(|| panic!("no pièce `{id}` in ami2"))
}

/// A deposit decided while the campaign already holds `same_commune`, the
/// dossiers of the same commune; the fixtures' dossier numbers are their ids.
fn deposit_beside(
    def: &Definition,
    command: &Command,
    same_commune: &[String],
) -> Result<ami_core::Event, Rejection> {
    let target = Target::New {
        number: number_of(command),
        same_commune,
    };
    decide(def, target, command, &dar_agent(), now())
}

// ---------------------------------------------------------------------------
// Classer sans suite, rouvrir
// ---------------------------------------------------------------------------

#[test]
fn a_dar_agent_may_no_longer_class_a_dossier_sans_suite() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = instructed(&def, &["acv"]);

    // Act
    let rejection = refuse(&def, Some(&dossier), &classer("Retrait"), &dar_agent());

    // Assert
    assert_eq!(rejection.code(), "role_too_low");
}

#[test]
fn rouvrir_takes_a_dossier_back_to_the_state_it_left_from_every_state() {
    for state in ["recu", "instruit", "avis_acv", "avis_ti"] {
        // Arrange: a dossier in `state`, classed sans suite.
        let def = Definition::ami2();
        let mut run = deposited(&def, &["acv", "ti"], BOTH_PIECES);
        let path = [
            ("instruit", verdict("instruire", "favorable"), dar_agent()),
            ("avis_acv", avis("avis_acv", "favorable"), acv_agent()),
            ("avis_ti", avis("avis_ti", "favorable"), ti_agent()),
        ];
        for (reached, command, who) in path {
            if run.0.state == state {
                break;
            }
            run = then(&def, run, &command, &who);
            assert_eq!(run.0.state, reached);
        }
        let run = then(
            &def,
            run,
            &classer("La commune retire sa candidature"),
            &dar_responsable(),
        );
        assert_eq!(run.0.state, "sans_suite");

        // Act
        let (dossier, events) = then(
            &def,
            run,
            &rouvrir("La commune confirme finalement sa candidature"),
            &dar_responsable(),
        );

        // Assert
        assert_eq!(dossier.state, state);
        let last = events.last().expect("event");
        assert_eq!(
            (last.from.as_deref(), last.to.as_str()),
            (Some("sans_suite"), state)
        );
        assert_eq!(fold(&events).expect("folds"), Some(dossier.clone()));
        assert!(!awaiting(&def, &dossier).is_empty(), "{state}");
    }
}

#[test]
fn rouvrir_needs_a_motivation_and_a_dar_responsable() {
    // Arrange
    let def = Definition::ami2();
    let run = instructed(&def, &["acv"]);
    let (dossier, _) = then(&def, run, &classer("Retrait"), &dar_responsable());

    // Act
    let unmotivated = refuse(&def, Some(&dossier), &cmd("rouvrir"), &dar_responsable());
    let by_an_agent = refuse(&def, Some(&dossier), &rouvrir("Erreur"), &dar_agent());
    let by_acv = refuse(&def, Some(&dossier), &rouvrir("Erreur"), &acv_agent());

    // Assert
    assert_eq!(unmotivated.code(), "motivation_missing");
    assert_eq!(by_an_agent.code(), "role_too_low");
    assert_eq!(by_acv.code(), "wrong_agency");
}

#[test]
fn rouvrir_applies_only_to_a_dossier_classed_sans_suite() {
    let def = Definition::ami2();
    // A lauréat or refused dossier stays final.
    for command in [
        cmd("declarer_laureat"),
        cmd("refuser").with_motivation("Hors critères"),
    ] {
        // Arrange
        let run = all_avis_given(&def, &["acv"]);
        let (dossier, _) = then(&def, run, &command, &dar_responsable());

        // Act
        let rejection = refuse(&def, Some(&dossier), &rouvrir("Erreur"), &dar_responsable());

        // Assert
        assert_eq!(rejection.code(), "terminal_state", "{}", dossier.state);
    }
    // A dossier in progress has nothing to reopen.
    let (dossier, _) = instructed(&def, &["acv"]);
    let rejection = refuse(&def, Some(&dossier), &rouvrir("Erreur"), &dar_responsable());
    assert_eq!(rejection.code(), "invalid_state");
}

// ---------------------------------------------------------------------------
// Demande de complément
// ---------------------------------------------------------------------------

#[test]
fn a_demande_de_complement_makes_the_dossier_wait_on_the_porteur_without_changing_state() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[CANDIDATURE]);
    assert_eq!(ids(awaiting(&def, &dossier)), ["dar"]);

    // Act
    let (dossier, event) = accept(
        &def,
        Some(dossier),
        &demander(&[kind(BUDGET)], day(2021, 9, 15)),
        &dar_agent(),
    );

    // Assert
    assert_eq!(
        (event.from.as_deref(), event.to.as_str()),
        (Some("recu"), "recu")
    );
    assert!(
        matches!(&event.payload, Payload::Complement(r) if r.pieces == [BUDGET] && r.due_on == day(2021, 9, 15))
    );
    assert_eq!(ids(awaiting(&def, &dossier)), [PORTEUR]);
    let request = dossier.complement.as_ref().expect("open request");
    assert_eq!(request.pieces, [BUDGET]);
    assert_eq!(request.due_on, day(2021, 9, 15));
    assert_eq!(request.requested_by, dar_agent());
}

#[test]
fn the_request_closes_when_every_piece_asked_for_has_arrived() {
    // Arrange: both pièces asked for after instruction.
    let def = Definition::ami2();
    let run = instructed(&def, &["acv"]);
    let run = then(
        &def,
        run,
        &demander(&[kind(BUDGET), kind(CANDIDATURE)], day(2021, 9, 15)),
        &dar_agent(),
    );

    // Act
    let run = then(&def, run, &ajouter_piece(BUDGET), &dar_agent());
    let half = run.0.clone();
    let (dossier, events) = then(&def, run, &ajouter_piece(CANDIDATURE), &dar_agent());

    // Assert
    assert_eq!(
        half.complement.as_ref().map(|c| ids(&c.pieces)),
        Some(vec![CANDIDATURE.to_string()])
    );
    assert_eq!(ids(awaiting(&def, &half)), [PORTEUR]);
    assert_eq!(dossier.complement, None);
    assert_eq!(dossier.state, "instruit");
    assert_eq!(ids(awaiting(&def, &dossier)), ["acv"]);
    assert_eq!(fold(&events).expect("folds"), Some(dossier));
}

#[test]
fn a_demande_de_complement_is_refused_without_pieces_with_an_unknown_one_or_a_past_due_date() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[CANDIDATURE]);

    // Act
    let none = refuse(
        &def,
        Some(&dossier),
        &demander(&[], day(2021, 9, 15)),
        &dar_agent(),
    );
    // `photo` is a pièce of another definition, not of this one.
    let photo = stranger()
        .piece_kind("photo")
        .expect("the stranger's pièce");
    assert_eq!(def.piece_kind("photo"), None);
    let unknown = refuse(
        &def,
        Some(&dossier),
        &demander(&[photo], day(2021, 9, 15)),
        &dar_agent(),
    );
    // The tests' clock reads 1 September 2021.
    let past = refuse(
        &def,
        Some(&dossier),
        &demander(&[kind(BUDGET)], day(2021, 8, 31)),
        &dar_agent(),
    );
    let mut unmotivated = demander(&[kind(BUDGET)], day(2021, 9, 15));
    let Command::RequestPieces { motivation, .. } = &mut unmotivated else {
        panic!("a demande de complément")
    };
    *motivation = None;
    let unmotivated = refuse(&def, Some(&dossier), &unmotivated, &dar_agent());
    let by_acv = refuse(
        &def,
        Some(&dossier),
        &demander(&[kind(BUDGET)], day(2021, 9, 15)),
        &acv_agent(),
    );

    // Assert
    assert_eq!(none.code(), "malformed_command");
    assert_eq!(
        unknown,
        Rejection::UnknownPiece {
            piece: "photo".into()
        }
    );
    assert_eq!(
        past,
        Rejection::DueInPast {
            due_on: day(2021, 8, 31)
        }
    );
    assert_eq!(past.field(), Some("due_on"));
    assert_eq!(unmotivated.code(), "motivation_missing");
    assert_eq!(by_acv.code(), "wrong_agency");
}

#[test]
fn a_due_date_of_today_in_paris_is_accepted() {
    // Arrange: 1 September 2021 at 00:30 in Paris is still 31 August in UTC.
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[CANDIDATURE]);
    let now = at("2021-09-01T00:30:00+02:00");

    // Act
    let result = decide(
        &def,
        Target::Dossier(&dossier),
        &demander(&[kind(BUDGET)], day(2021, 9, 1)),
        &dar_agent(),
        now,
    );

    // Assert
    assert!(result.is_ok(), "{result:?}");
}

// ---------------------------------------------------------------------------
// Doublons
// ---------------------------------------------------------------------------

#[test]
fn a_second_deposit_for_a_commune_is_refused_naming_its_dossier() {
    // Arrange
    let def = Definition::ami2();
    let command = deposer(new_dossier(8, &["acv"], BOTH_PIECES));
    let same_commune = vec!["AMI2-V1-0007".to_string()];

    // Act
    let rejection = deposit_beside(&def, &command, &same_commune).expect_err("refused");

    // Assert
    assert_eq!(
        rejection,
        Rejection::Doublon {
            existing: vec!["AMI2-V1-0007".into()]
        }
    );
    assert_eq!(rejection.field(), Some("code_insee"));
    assert!(rejection.explain(&def).contains("AMI2-V1-0007"));
    assert!(rejection.explain(&def).contains("doublon_confirme"));
}

#[test]
fn a_confirmed_second_project_is_deposited_and_its_event_says_so() {
    // Arrange
    let def = Definition::ami2();
    let mut command = deposer(new_dossier(8, &["acv"], BOTH_PIECES));
    let same_commune = vec!["AMI2-V1-0007".to_string()];
    let Command::Deposit(deposit) = &mut command else {
        panic!("a deposit")
    };
    deposit.doublon_confirme = true;

    // Act
    let event = deposit_beside(&def, &command, &same_commune)
        .unwrap_or_else(|r| panic!("refused: {r} ({})", r.code()));
    let dossier = apply(None, &event).expect("an accepted event folds");

    // Assert
    assert_eq!(dossier.state, "recu");
    let Payload::Create(created) = &event.payload else {
        panic!("a creation")
    };
    assert_eq!(created.doublon_de, ["AMI2-V1-0007"]);
}

// ---------------------------------------------------------------------------
// Explanations in the definition's words
// ---------------------------------------------------------------------------

#[test]
fn refusals_are_explained_with_labels_not_identifiers() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], &[CANDIDATURE]);
    let avis_acv = dossier_after(&def, "avis_acv");

    // Act
    let missing = refuse(
        &def,
        Some(&dossier),
        &verdict("instruire", "favorable"),
        &dar_agent(),
    )
    .explain(&def);
    let wrong_state = refuse(
        &def,
        Some(&avis_acv),
        &verdict("instruire", "favorable"),
        &dar_agent(),
    )
    .explain(&def);
    let wrong_agency = refuse(
        &def,
        Some(&dossier),
        &verdict("instruire", "favorable"),
        &acv_agent(),
    )
    .explain(&def);
    let (complete, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let no_verdict = refuse(&def, Some(&complete), &cmd("instruire"), &dar_agent()).explain(&def);

    // Assert
    assert_eq!(
        missing,
        "Pièces manquantes (fichier non reçu) : Budget prévisionnel. Ajoutez leurs fichiers, ou demandez-les au porteur."
    );
    assert_eq!(
        wrong_state,
        "L'action « Instruire le dossier » n'est pas possible depuis l'état « Avis Action Cœur de Ville rendu »."
    );
    assert_eq!(
        wrong_agency,
        "L'action « Instruire le dossier » revient à « Cnam – Direction de l'action régionale », pas à « ANCT – Direction Action Cœur de Ville »."
    );
    assert!(
        no_verdict.contains("favorable (Favorable), reserve (Réservé), defavorable (Défavorable)"),
        "{no_verdict}"
    );
}

fn dossier_after(def: &Definition, state: &str) -> ami_core::Dossier {
    let run = instructed(def, &["acv", "ti"]);
    let run = then(def, run, &avis("avis_acv", "favorable"), &acv_agent());
    assert_eq!(run.0.state, state);
    run.0
}

#[test]
fn campaign_edges_are_explained_in_paris_time_and_french_form() {
    // Arrange
    let def = Definition::ami2();
    let mut early = new_dossier(8, &["acv"], BOTH_PIECES);
    early.received_at = at("2020-07-19T23:59:59+02:00");
    let mut late = new_dossier(9, &["acv"], BOTH_PIECES);
    late.received_at = at("2021-06-26T00:00:00+02:00");

    // Act
    let not_open = refuse(&def, None, &deposer(early), &dar_agent()).explain(&def);
    let closed = refuse(&def, None, &deposer(late), &dar_agent()).explain(&def);

    // Assert
    assert_eq!(
        not_open,
        "La campagne n'ouvre que le 20 juillet 2020 à 00 h 00 : un dossier reçu le 19 juillet 2020 à 23 h 59 min 59 s ne peut être déposé. Vérifiez la date de réception (« received_at »)."
    );
    assert!(closed.starts_with("La campagne est close depuis le 26 juin 2021 à 00 h 00 : un dossier reçu le 26 juin 2021 à 00 h 00 min 00 s"), "{closed}");
    assert!(
        closed.contains("indiquez sa date de réception dans « received_at »"),
        "{closed}"
    );
}

#[test]
fn an_overlapping_wave_is_refused_naming_the_day_the_previous_one_ends() {
    // Arrange: wave 2 closes on the day wave 1 closes.
    let text = ami_core::DEFAULT_DEFINITION_TOML.replacen(
        "closes_on = \"2021-02-12\"",
        "closes_on = \"2020-11-06\"",
        1,
    );

    // Act
    let error = Definition::from_toml(&text)
        .expect_err("refused")
        .to_string();

    // Assert
    assert_eq!(
        error,
        "campaign.waves, vague 2 : la vague se termine le 6 novembre 2020 et chevauche la précédente, qui se termine le 6 novembre 2020"
    );
}
