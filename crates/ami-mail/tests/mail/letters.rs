//! The letters render in French, escape their values in HTML only, and
//! make e-mails that parse back.

use ami_mail::{AccuseReception, Decision, Digest, DigestLine, Letter};
use chrono::{DateTime, NaiveDate, Utc};
use mail_parser::{MessageParser, MimeHeaders};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a day")
}

fn accuse() -> AccuseReception {
    AccuseReception {
        reference: "AMI2-V1-0007".into(),
        commune: "Nevers".into(),
        porteur_nom: "Ville de Nevers".into(),
        // 16:05:42 in Paris (summer time).
        received_at: DateTime::parse_from_rfc3339("2020-10-14T14:05:42Z")
            .expect("instant")
            .with_timezone(&Utc),
        wave: Some(1),
        pieces: vec![
            (
                "Dossier de candidature".into(),
                "dossier-candidature-nevers.pdf".into(),
            ),
            (
                "Budget prévisionnel".into(),
                "budget prévisionnel.xlsx".into(),
            ),
        ],
        contact: "ami@cnam.example".into(),
    }
}

fn decision(laureat: bool, motivation: Option<&str>) -> Decision {
    Decision {
        reference: "AMI2-V2-0042".into(),
        commune: "Château-Thierry".into(),
        porteur_nom: "Ville de Château-Thierry".into(),
        laureat,
        motivation: motivation.map(str::to_string),
        decided_on: day(2021, 3, 1),
        committee_held_on: Some(day(2021, 2, 25)),
        contact: "ami@cnam.example".into(),
    }
}

#[test]
fn an_accuse_de_reception_gives_the_reference_paris_time_wave_pieces_and_contact() {
    let letter = accuse().render().expect("a letter");

    assert_eq!(
        letter.subject,
        "Accusé de réception de votre candidature AMI2-V1-0007 – Nevers"
    );
    for text in [&letter.text, &letter.html] {
        assert!(text.contains("Madame, Monsieur,"));
        assert!(text.contains("AMI2-V1-0007"));
        assert!(text.contains("14 octobre 2020 à 16 h 05"), "{text}");
        assert!(text.contains("Ville de Nevers"));
        assert!(text.contains("dossier-candidature-nevers.pdf"));
        assert!(text.contains("budget prévisionnel.xlsx"));
        assert!(text.contains("ami@cnam.example"));
    }
    assert!(letter
        .text
        .contains("Reçu le : 14 octobre 2020 à 16 h 05 (heure de Paris)\nVague : 1\n"));
    assert!(letter.text.contains(
        "Pièces reçues :\n- Dossier de candidature : dossier-candidature-nevers.pdf\n\
         - Budget prévisionnel : budget prévisionnel.xlsx\n"
    ));
    assert!(letter
        .html
        .contains("<li>Budget prévisionnel : budget prévisionnel.xlsx</li>"));
    assert!(letter
        .html
        .starts_with("<!doctype html>\n<html lang=\"fr\">"));
}

#[test]
fn the_commune_s_name_takes_d_before_a_vowel_and_du_for_le() {
    let epinal = AccuseReception {
        commune: "Épinal".into(),
        ..accuse()
    }
    .render()
    .expect("a letter");
    let le_havre = decision(true, None);
    let le_havre = Decision {
        commune: "Le Havre".into(),
        ..le_havre
    }
    .render()
    .expect("a letter");

    assert!(epinal
        .text
        .contains("la candidature de la commune d'Épinal (porteur"));
    assert!(le_havre
        .text
        .contains("la candidature de la commune du Havre (porteur"));
}

#[test]
fn an_accuse_de_reception_without_wave_or_pieces_says_so() {
    let letter = AccuseReception {
        wave: None,
        pieces: vec![],
        ..accuse()
    }
    .render()
    .expect("a letter");

    assert!(!letter.text.contains("Vague"));
    assert!(letter
        .text
        .contains("Aucune pièce jointe n'a été reçue avec votre envoi."));
    assert!(!letter.html.contains("<ul>"));
}

#[test]
fn markup_in_a_commune_or_a_motivation_is_escaped_in_html_and_intact_in_text() {
    let hostile = "<script>alert(1)</script> & Cie";
    let letter = Decision {
        commune: hostile.into(),
        ..decision(false, Some(hostile))
    }
    .render()
    .expect("a letter");

    assert!(letter.text.contains(hostile));
    assert!(!letter.html.contains("<script>"));
    assert!(letter
        .html
        .contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; Cie"));
    assert!(letter.subject.contains(hostile));

    let accuse = AccuseReception {
        commune: hostile.into(),
        pieces: vec![("Budget prévisionnel".into(), "a<b>&c.xlsx".into())],
        ..accuse()
    }
    .render()
    .expect("a letter");
    assert!(accuse.text.contains(hostile) && accuse.text.contains("a<b>&c.xlsx"));
    assert!(!accuse.html.contains("<script>") && !accuse.html.contains("a<b>"));
}

#[test]
fn a_laureat_decision_says_retenue_with_the_committee_day() {
    let letter = decision(true, None).render().expect("a letter");

    assert_eq!(
        letter.subject,
        "Votre candidature AMI2-V2-0042 – Château-Thierry est retenue"
    );
    assert!(letter
        .text
        .contains("est retenue : la commune est lauréate"));
    assert!(letter.text.contains(
        "Cette décision a été prise le 1er mars 2021, à la suite du comité de sélection réuni \
         le 25 février 2021."
    ));
    assert!(!letter.text.contains("Motivation"));
    assert!(letter.html.contains("<strong>est retenue</strong>"));
}

#[test]
fn a_refusal_says_n_est_pas_retenue_with_its_motivation() {
    let letter = Decision {
        committee_held_on: None,
        ..decision(
            false,
            Some("Le projet ne relève pas du périmètre de l'AMI."),
        )
    }
    .render()
    .expect("a letter");

    assert_eq!(
        letter.subject,
        "Votre candidature AMI2-V2-0042 – Château-Thierry n'est pas retenue"
    );
    assert!(letter.text.contains("n'est pas retenue à l'appel"));
    assert!(letter
        .text
        .contains("Cette décision a été prise le 1er mars 2021.\n"));
    assert!(letter
        .text
        .contains("Motivation :\nLe projet ne relève pas du périmètre de l'AMI."));
    assert!(letter
        .html
        .contains("Le projet ne relève pas du périmètre de l&#39;AMI."));
}

fn digest() -> Digest {
    Digest {
        agency_label: "ANCT – Direction Action Cœur de Ville".into(),
        date: day(2020, 11, 16),
        awaiting: vec![
            DigestLine {
                reference: "AMI2-V1-0003".into(),
                commune: "Nevers".into(),
                due: Some(day(2020, 11, 13)),
                overdue: true,
                url: Some("https://ami.example/dossiers/3?a=1&b=2".into()),
            },
            DigestLine {
                reference: "AMI2-V1-0007".into(),
                commune: "Épinal".into(),
                due: Some(day(2020, 11, 20)),
                overdue: false,
                url: None,
            },
        ],
        overdue_count: 1,
    }
}

#[test]
fn a_digest_lists_the_dossiers_waiting_with_their_deadline_and_lateness() {
    let letter = digest().render().expect("a letter");

    assert_eq!(
        letter.subject,
        "AMI – 2 dossiers en attente – ANCT – Direction Action Cœur de Ville – 16 novembre 2020"
    );
    assert!(letter
        .text
        .contains("2 dossiers attendent votre action, dont 1 en retard.\n\n"));
    assert!(letter.text.contains(
        "- AMI2-V1-0003 – Nevers – à traiter au plus tard le 13 novembre 2020 – EN RETARD\n  \
         https://ami.example/dossiers/3?a=1&b=2\n\
         - AMI2-V1-0007 – Épinal – à traiter au plus tard le 20 novembre 2020\n"
    ));
    assert!(letter
        .html
        .contains("<a href=\"https://ami.example/dossiers/3?a=1&#38;b=2\">AMI2-V1-0003</a>"));
    assert!(letter.html.contains("<strong>en retard</strong>"));
}

#[test]
fn an_empty_digest_says_nothing_waits() {
    let letter = Digest {
        awaiting: vec![],
        overdue_count: 0,
        ..digest()
    }
    .render()
    .expect("a letter");

    assert!(letter
        .subject
        .starts_with("AMI – aucun dossier en attente – "));
    assert!(letter.text.contains("Aucun dossier n'attend votre action."));
    assert!(!letter.html.contains("<table>"));
}

fn parsed_parts(letter: &Letter) -> (String, String, String, String) {
    let date = DateTime::parse_from_rfc3339("2020-10-14T14:10:00Z")
        .expect("instant")
        .with_timezone(&Utc);
    let message = letter
        .to_message(
            "AMI Au cœur des territoires <ami@cnam.example>",
            "Élodie Marchand <dgs@mairie-nevers.fr>",
            "outbox-42@ami.cnam.example",
            date,
        )
        .expect("a message");
    let raw = message.formatted();
    let parsed = MessageParser::new().parse(&raw).expect("parsed back");
    assert_eq!(parsed.message_id(), Some("outbox-42@ami.cnam.example"));
    assert_eq!(
        parsed.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert_eq!(
        parsed.date().map(|d| d.to_timestamp()),
        Some(date.timestamp())
    );
    assert!(parsed
        .root_part()
        .content_type()
        .is_some_and(|ct| ct.ctype() == "multipart" && ct.subtype() == Some("alternative")));
    let from = parsed.from().and_then(|f| f.first()).expect("a sender");
    assert_eq!(from.name.as_deref(), Some("AMI Au cœur des territoires"));
    let to = parsed.to().and_then(|t| t.first()).expect("a recipient");
    assert_eq!(to.address.as_deref(), Some("dgs@mairie-nevers.fr"));
    (
        parsed.subject().expect("a subject").to_string(),
        parsed
            .body_text(0)
            .expect("a text part")
            .replace("\r\n", "\n"),
        parsed
            .body_html(0)
            .expect("an html part")
            .replace("\r\n", "\n"),
        to.name.as_deref().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_letter_made_an_email_parses_back_with_its_french_subject_and_both_parts() {
    let letter = accuse().render().expect("a letter");

    let (subject, text, html, to_name) = parsed_parts(&letter);

    assert_eq!(subject, letter.subject);
    assert_eq!(text.trim_end(), letter.text.trim_end());
    assert_eq!(html.trim_end(), letter.html.trim_end());
    assert_eq!(to_name, "Élodie Marchand");
}

#[test]
fn an_invalid_address_is_refused_in_french() {
    let letter = accuse().render().expect("a letter");

    let error = letter
        .to_message("ami@cnam.example", "pas une adresse", "x@y", Utc::now())
        .expect_err("refused");

    assert!(error
        .to_string()
        .starts_with("adresse du destinataire invalide « pas une adresse »"));
}
