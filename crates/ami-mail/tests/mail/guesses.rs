//! The guesses on realistic subjects, domains and attachments.

use ami_mail::guess::{guess_commune, guess_reference};
use ami_mail::{guess, parse, Arrival, Attachment, CommuneGuess, ReceivedSource, Sender};
use chrono::Utc;

use crate::{corpus, XLSX};

fn commune(subject: &str, from: &str) -> Option<(String, String)> {
    guess_commune(subject, from).map(|CommuneGuess { code_insee, nom }| (code_insee, nom))
}

fn some(code: &str, nom: &str) -> Option<(String, String)> {
    Some((code.into(), nom.into()))
}

#[test]
fn a_commune_named_in_the_subject_is_proposed() {
    assert_eq!(
        commune("Candidature AMI – Ville de Nevers", "x@gmail.com"),
        some("58194", "Nevers")
    );
    assert_eq!(
        commune(
            "TR: Candidature de la commune de Château-Thierry",
            "x@orange.fr"
        ),
        some("02168", "Château-Thierry")
    );
    assert_eq!(
        commune("candidature ami chateauroux", "x@orange.fr"),
        some("36044", "Châteauroux")
    );
}

#[test]
fn the_longest_name_wins_over_the_names_it_contains() {
    // « Die » and « Saint-Dié » are communes too.
    assert_eq!(
        commune("Dossier Saint-Dié-des-Vosges", "x@gmail.com"),
        some("88413", "Saint-Dié-des-Vosges")
    );
}

#[test]
fn a_name_shared_by_several_communes_is_proposed_only_with_its_departement() {
    // Saint-Denis: Seine-Saint-Denis (93) and La Réunion (974), and more.
    assert_eq!(commune("Candidature Saint-Denis", "x@gmail.com"), None);
    assert_eq!(
        commune("Candidature Saint-Denis (974)", "x@gmail.com"),
        some("97411", "Saint-Denis")
    );
    assert_eq!(
        commune("Candidature Saint-Denis – Seine-Saint-Denis", "x@gmail.com"),
        some("93066", "Saint-Denis")
    );
    assert_eq!(
        commune("Candidature Saint-Denis 93200", "x@gmail.com"),
        some("93066", "Saint-Denis")
    );
}

#[test]
fn words_that_are_also_communes_are_not_read_as_communes() {
    // Ville (Oise), Mars (Ardèche, Loire…), Rue (Somme).
    assert_eq!(
        commune(
            "Candidature ville - envoi du 3 mars, rue principale",
            "x@gmail.com"
        ),
        None
    );
    // Mairé (Vienne), Le Bourg (Lot).
    assert_eq!(
        commune("Courrier du maire : projet pour le bourg", "x@gmail.com"),
        None
    );
}

#[test]
fn the_sender_domain_names_the_commune_when_the_subject_does_not() {
    assert_eq!(
        commune("Candidature AMI", "dgs@mairie-nevers.fr"),
        some("58194", "Nevers")
    );
    assert_eq!(
        commune("Notre dossier", "accueil@ville-chateauroux.fr"),
        some("36044", "Châteauroux")
    );
    assert_eq!(
        commune("Notre dossier", "cnam@chateau-thierry.fr"),
        some("02168", "Château-Thierry")
    );
    assert_eq!(commune("Notre dossier", "jean.dupont@orange.fr"), None);
}

#[test]
fn a_domain_naming_several_communes_proposes_none_unless_the_subject_gives_the_departement() {
    // Valence: Charente (16), Drôme (26), Tarn-et-Garonne (82).
    assert_eq!(commune("Candidature AMI", "dgs@mairie-valence.fr"), None);
    assert_eq!(
        commune("Candidature AMI – Drôme", "dgs@mairie-valence.fr"),
        some("26362", "Valence")
    );
}

#[test]
fn a_dossier_reference_in_the_subject_is_proposed() {
    assert_eq!(
        guess_reference("RE: Complément au dossier AMI2-V1-0007 – budget").as_deref(),
        Some("AMI2-V1-0007")
    );
    assert_eq!(guess_reference("Candidature AMI – Ville de Nevers"), None);
}

#[test]
fn the_corpus_application_gets_its_budget_dossier_and_commune_proposed() {
    let arrival = parse(&corpus("01-candidature-nevers.eml")).expect("an arrival");

    let guesses = guess(&arrival);

    assert_eq!(guesses.budget, Some(1));
    assert_eq!(guesses.dossier, Some(0));
    assert_eq!(
        guesses.commune,
        Some(CommuneGuess {
            code_insee: "58194".into(),
            nom: "Nevers".into()
        })
    );
    assert_eq!(guesses.reference, None);
}

#[test]
fn the_forwarded_files_are_proposed_too() {
    let arrival = parse(&corpus("02-transfert-chateauroux.eml")).expect("an arrival");

    let guesses = guess(&arrival);

    assert_eq!((guesses.budget, guesses.dossier), (Some(1), Some(0)));
    assert_eq!(
        guesses.commune.map(|c| c.nom).as_deref(),
        Some("Châteauroux")
    );
}

fn arrival(subject: &str, files: &[(&str, &str, &[u8])]) -> Arrival {
    Arrival {
        message_id: None,
        dedup_key: "sha256:00".into(),
        raw_sha256: "00".into(),
        from: Sender {
            name: None,
            address: "x@gmail.com".into(),
        },
        subject: subject.into(),
        received_at: Utc::now(),
        received_source: ReceivedSource::Date,
        text: String::new(),
        attachments: files
            .iter()
            .map(|(filename, media_type, data)| Attachment {
                filename: (*filename).into(),
                media_type: (*media_type).into(),
                data: data.to_vec(),
                sha256: String::new(),
                size: data.len() as u64,
            })
            .collect(),
    }
}

#[test]
fn the_file_named_budget_is_the_budget_whatever_its_accents_and_case() {
    let a = arrival(
        "Candidature",
        &[
            ("logo.png", "image/png", b"png"),
            ("Présentation projet.pdf", "application/pdf", b"%PDF"),
            ("BUDGET_PREVISIONNEL_2021.XLSX", XLSX, b"PK"),
        ],
    );

    let guesses = guess(&a);

    assert_eq!((guesses.budget, guesses.dossier), (Some(2), Some(1)));
}

#[test]
fn a_csv_whose_content_says_budget_is_the_budget() {
    let a = arrival(
        "Candidature",
        &[
            ("dossier de candidature.pdf", "application/pdf", b"%PDF"),
            ("annexe 2.pdf", "application/pdf", b"%PDF"),
            (
                "tableau.csv",
                "text/csv",
                "Poste;Montant\nBudget total;120000\n".as_bytes(),
            ),
        ],
    );

    let guesses = guess(&a);

    // The dossier is the one named so, among two documents.
    assert_eq!((guesses.budget, guesses.dossier), (Some(2), Some(0)));
}

#[test]
fn two_unnamed_documents_give_no_dossier_and_images_are_never_proposed() {
    let a = arrival(
        "Candidature",
        &[
            ("scan1.pdf", "application/pdf", b"%PDF"),
            ("scan2.pdf", "application/pdf", b"%PDF"),
            ("budget.png", "image/png", b"png"),
        ],
    );

    let guesses = guess(&a);

    assert_eq!((guesses.budget, guesses.dossier), (None, None));
}

#[test]
fn the_only_spreadsheet_is_proposed_as_the_budget() {
    let a = arrival(
        "Candidature",
        &[
            ("piece-jointe-1.pdf", "application/pdf", b"%PDF"),
            ("Classeur1.xlsx", XLSX, b"PK"),
        ],
    );

    let guesses = guess(&a);

    assert_eq!((guesses.budget, guesses.dossier), (Some(1), Some(0)));
}

#[test]
fn a_number_of_the_subject_is_not_taken_for_a_departement() {
    // Saint-Denis de l'Aude is 11339: « le 11 » is a day.
    assert_eq!(
        commune(
            "Candidature Saint-Denis envoyée le 11 novembre",
            "x@gmail.com"
        ),
        None
    );
}
