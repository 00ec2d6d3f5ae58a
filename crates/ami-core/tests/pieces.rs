//! Pièces as files: a declared pièce is not a received one, a pièce sent
//! again is a new version, and an agency reads only the dossiers it needs to.

mod common;

use ami_core::{file_type, Command, Definition, Piece, Rejection};
use common::*;

fn declared(kind: &str) -> Piece {
    Piece {
        media_type: None,
        ..piece(kind)
    }
}

fn budget_v2() -> Piece {
    Piece {
        filename: "budget corrigé.ods".into(),
        size: Some(999),
        sha256: Some("cd".repeat(32).into()),
        media_type: Some("application/vnd.oasis.opendocument.spreadsheet".into()),
        ..piece(BUDGET)
    }
}

#[test]
fn instruire_needs_the_content_of_every_required_piece_not_its_name() {
    // Arrange: both pièces named at the deposit, only one of them sent.
    let def = Definition::ami2();
    let mut new = new_dossier(7, &["acv"], &[]);
    new.pieces = vec![piece(CANDIDATURE), declared(BUDGET)];
    let (dossier, _) = accept(&def, None, &deposer(new), &dar_agent());

    // Act
    let rejection = refuse(
        &def,
        Some(&dossier),
        &verdict("instruire", "favorable"),
        &dar_agent(),
    );

    // Assert
    assert_eq!(
        rejection,
        Rejection::PiecesMissing {
            missing: vec![def.piece_kind(BUDGET).expect("budget")]
        }
    );
    assert!(dossier.has_piece(BUDGET) && !dossier.has_content(BUDGET));
    assert!(!declared(BUDGET).received() && piece(BUDGET).received());
}

#[test]
fn the_content_sent_after_a_declaration_makes_the_dossier_complete() {
    // Arrange
    let def = Definition::ami2();
    let mut new = new_dossier(7, &["acv"], &[]);
    new.pieces = vec![piece(CANDIDATURE), declared(BUDGET)];
    let (dossier, _) = accept(&def, None, &deposer(new), &dar_agent());

    // Act
    let (dossier, _) = accept(&def, Some(dossier), &ajouter_piece(BUDGET), &dar_agent());
    let (instructed, _) = accept(
        &def,
        Some(dossier),
        &verdict("instruire", "favorable"),
        &dar_agent(),
    );

    // Assert
    assert_eq!(instructed.state, "instruit");
}

#[test]
fn a_piece_sent_again_is_a_new_version_and_the_first_one_stays() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let corrected = Command::attach_piece(action("ajouter_piece"), budget_v2());

    // Act
    let (dossier, event) = accept(&def, Some(dossier), &corrected, &dar_agent());

    // Assert
    let versions: Vec<(u32, &str, u64)> = dossier
        .versions(BUDGET)
        .map(|f| (f.version, f.sha256.as_str(), f.seq))
        .collect();
    let first = "ab".repeat(32);
    let second = "cd".repeat(32);
    assert_eq!(
        versions,
        [(1, first.as_str(), 1), (2, second.as_str(), event.seq)]
    );
    assert_eq!(dossier.versions(CANDIDATURE).count(), 1);
    let latest = dossier
        .pieces
        .iter()
        .find(|p| p.kind == BUDGET)
        .expect("budget");
    assert_eq!(latest.filename, "budget corrigé.ods");
    let v2 = dossier.versions(BUDGET).last().expect("v2");
    assert_eq!(v2.received_at, event.at);
    assert_eq!(
        v2.media_type,
        "application/vnd.oasis.opendocument.spreadsheet"
    );
}

#[test]
fn a_declaration_after_a_received_content_adds_no_version() {
    // Arrange
    let def = Definition::ami2();
    let (dossier, _) = deposited(&def, &["acv"], BOTH_PIECES);
    let named_only = Command::attach_piece(action("ajouter_piece"), declared(BUDGET));

    // Act
    let (dossier, _) = accept(&def, Some(dossier), &named_only, &dar_agent());

    // Assert: the content received stays, and the dossier stays complete.
    assert_eq!(dossier.versions(BUDGET).count(), 1);
    assert!(dossier.has_content(BUDGET));
}

#[test]
fn an_agency_that_gives_a_programmes_avis_reads_only_that_programmes_dossiers() {
    let def = Definition::ami2();
    let programme = |id: &str| def.programme_id(id).expect("a programme of ami2");
    let acv_only = [programme("acv")];
    let ti_only = [programme("ti")];
    let both = [programme("acv"), programme("ti")];

    assert_eq!(def.readable_programmes("dar"), None);
    assert_eq!(def.readable_programmes("acv"), Some(vec!["acv"]));
    assert_eq!(def.readable_programmes("ti"), Some(vec!["ti"]));
    assert!(def.may_read("dar", &ti_only) && def.may_read("dar", &acv_only));
    assert!(def.may_read("acv", &acv_only) && def.may_read("acv", &both));
    assert!(!def.may_read("acv", &ti_only));
    assert!(!def.may_read("ti", &acv_only));
}

#[test]
fn the_budget_accepts_spreadsheets_and_pdf_and_the_candidature_every_type() {
    let def = Definition::ami2();
    let budget: Vec<&str> = def
        .piece(BUDGET)
        .expect("budget")
        .accepted_types()
        .map(|t| t.id)
        .collect();
    let candidature = def
        .piece(CANDIDATURE)
        .expect("candidature")
        .accepted_types()
        .count();

    assert_eq!(budget, ["pdf", "ods", "xlsx", "xls"]);
    assert_eq!(candidature, ami_core::FILE_TYPES.len());
    assert_eq!(file_type("xlsx").map(|t| t.extensions), Some(&["xlsx"][..]));
}

#[test]
fn a_definition_naming_an_unknown_file_type_is_refused_with_the_known_ones() {
    let text = ami_core::DEFAULT_DEFINITION_TOML.replace(
        "accept = [\"ods\", \"xlsx\", \"xls\", \"pdf\"]",
        "accept = [\"ods\", \"numbers\"]",
    );

    let error = Definition::from_toml(&text).expect_err("refused");

    let message = error.to_string();
    assert!(message.contains("pièce `budget_previsionnel`"), "{message}");
    assert!(
        message.contains("`numbers`") && message.contains("xlsx"),
        "{message}"
    );
}
