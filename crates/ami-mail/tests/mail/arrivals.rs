//! Each corpus message gives the right arrival, or its quarantine with the
//! right reason.

use ami_core::definition::Placement;
use ami_core::Definition;
use ami_mail::{parse, Arrival, Attachment, ReceivedSource, Sender};
use chrono::{DateTime, TimeZone, Timelike, Utc};
use chrono_tz::Europe::Paris;

use crate::{corpus, example, sha256, XLSX};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("instant")
        .with_timezone(&Utc)
}

fn attachment(filename: &str, media_type: &str, data: Vec<u8>) -> Attachment {
    Attachment {
        filename: filename.into(),
        media_type: media_type.into(),
        sha256: sha256(&data),
        size: data.len() as u64,
        data,
    }
}

fn reason(name: &str) -> String {
    parse(&corpus(name)).expect_err("a quarantine").reason
}

#[test]
fn a_multipart_application_gives_its_sender_subject_text_and_both_files() {
    let raw = corpus("01-candidature-nevers.eml");

    let arrival = parse(&raw).expect("an arrival");

    let id = "3f9c2a1e-7b4d-4c1a-9e0f-5a6b7c8d9e01@mairie-nevers.fr";
    assert_eq!(
        arrival,
        Arrival {
            message_id: Some(id.into()),
            dedup_key: format!("message-id:{id}"),
            raw_sha256: sha256(&raw),
            from: Sender {
                name: Some("Élodie Marchand – Mairie de Nevers".into()),
                address: "dgs@mairie-nevers.fr".into(),
            },
            subject: "Candidature AMI – Ville de Nevers".into(),
            received_at: utc("2020-10-14T16:05:42+02:00"),
            received_source: ReceivedSource::Received,
            text: "Bonjour,\n\nVeuillez trouver ci-joint le dossier de candidature de la Ville \
                   de Nevers à l'appel à manifestation d'intérêt « Au cœur des territoires », \
                   ainsi que le budget prévisionnel.\n\nBien cordialement,\n\nÉlodie Marchand\n\
                   Directrice générale des services\nMairie de Nevers – 58000 Nevers"
                .into(),
            attachments: vec![
                attachment(
                    "dossier-candidature-nevers.pdf",
                    "application/pdf",
                    example("candidature.pdf")
                ),
                attachment("budget prévisionnel.xlsx", XLSX, example("budget.xlsx")),
            ],
        }
    );
}

#[test]
fn the_topmost_received_header_gives_the_instant_not_the_lower_ones_nor_date() {
    // Received 16:05:42 (topmost, the AMI's server), 16:05:40, 16:04:58;
    // Date 16:04:55, all +02:00.
    let arrival = parse(&corpus("01-candidature-nevers.eml")).expect("an arrival");

    assert_eq!(arrival.received_at, utc("2020-10-14T14:05:42Z"));
    assert_eq!(arrival.received_source, ReceivedSource::Received);
}

#[test]
fn a_message_received_at_23_59_59_paris_time_on_the_last_day_falls_in_the_first_wave() {
    // The sender's clock was ahead: its Date says 00:00:05 the next day,
    // which would be wave 2. The topmost Received says 23:59:59.
    let arrival = parse(&corpus("05-limite-de-vague.eml")).expect("an arrival");

    let paris = arrival.received_at.with_timezone(&Paris);
    assert_eq!(
        paris,
        Paris.with_ymd_and_hms(2020, 11, 6, 23, 59, 59).unwrap()
    );
    assert_eq!(paris.second(), 59);
    assert_eq!(arrival.received_source, ReceivedSource::Received);
    let campaign = Definition::ami2().campaign().clone();
    assert_eq!(campaign.placement(arrival.received_at), Placement::Wave(1));
    let by_date = utc("2020-11-07T00:00:05+01:00");
    assert_eq!(campaign.placement(by_date), Placement::Wave(2));
    assert_eq!(arrival.from.name.as_deref(), Some("Mairie d’Épinal"));
    assert_eq!(arrival.subject, "Candidature Épinal (88) – dernière minute");
    assert_eq!(
        arrival.text,
        "Bonjour, voici notre candidature, envoyée juste avant la clôture de la première vague."
    );
}

#[test]
fn a_forwarded_message_gives_its_text_and_its_files_with_encoded_french_names() {
    let raw = corpus("02-transfert-chateauroux.eml");

    let arrival = parse(&raw).expect("an arrival");

    assert_eq!(
        arrival.message_id.as_deref(),
        Some("TR-20201106-0912@ville-chateauroux.fr")
    );
    assert_eq!(
        arrival.from,
        Sender {
            name: Some("Cabinet du maire".into()),
            address: "cabinet@ville-chateauroux.fr".into()
        }
    );
    // RFC 2047, base64 and UTF-8.
    assert_eq!(
        arrival.subject,
        "TR : Dossier de candidature Châteauroux – AMI"
    );
    assert_eq!(arrival.received_at, utc("2020-11-06T09:12:03+01:00"));
    // The outer text is base64; the forwarded one quoted-printable in
    // ISO-8859-1.
    assert_eq!(
        arrival.text,
        "Bonjour,\n\nJe vous transfère la candidature de la Ville de Châteauroux, préparée par \
         notre service urbanisme.\n\nCordialement,\nLe cabinet du maire\n\n\
         ---------- Message transféré ----------\n\
         De : Service urbanisme – Châteauroux <urbanisme@ville-chateauroux.fr>\n\
         Date : 5 novembre 2020 à 11 h 20\n\
         Objet : Dossier de candidature Châteauroux – AMI\n\n\
         Voici le dossier complet pour l'AMI, à transmettre à la Cnam."
    );
    // An RFC 2047 file name, and an RFC 2231 one in two continuations.
    assert_eq!(
        arrival.attachments,
        vec![
            attachment(
                "dossier de candidature Châteauroux.pdf",
                "application/pdf",
                example("candidature.pdf")
            ),
            attachment(
                "budget prévisionnel 2021.xlsx",
                XLSX,
                example("budget.xlsx")
            ),
        ]
    );
}

#[test]
fn a_message_without_message_id_is_deduplicated_by_the_digest_of_its_bytes() {
    let raw = corpus("03-sans-message-id.eml");

    let arrival = parse(&raw).expect("an arrival");

    assert_eq!(arrival.message_id, None);
    assert_eq!(arrival.dedup_key, format!("sha256:{}", sha256(&raw)));
    assert_eq!(arrival.raw_sha256, sha256(&raw));
    assert_eq!(
        arrival.from,
        Sender {
            name: None,
            address: "secretariat@saintdiedesvosges.fr".into()
        }
    );
    // RFC 2047 in ISO-8859-1.
    assert_eq!(arrival.subject, "Dossier Saint-Dié-des-Vosges");
    assert_eq!(arrival.received_at, utc("2020-10-12T08:30:17+02:00"));
    assert_eq!(
        arrival.text,
        "Bonjour,\n\nLe dossier de la commune suivra par courrier séparé.\n\nLe secrétariat général"
    );
    assert!(arrival.attachments.is_empty());
}

#[test]
fn a_message_with_only_a_date_header_is_received_at_that_date() {
    let arrival = parse(&corpus("04-date-seule.eml")).expect("an arrival");

    assert_eq!(arrival.received_at, utc("2020-11-06T23:30:00+01:00"));
    assert_eq!(arrival.received_source, ReceivedSource::Date);
}

#[test]
fn an_html_only_message_is_made_text_and_an_unnamed_file_is_named_from_its_type() {
    let arrival = parse(&corpus("04-date-seule.eml")).expect("an arrival");

    assert_eq!(
        arrival.text,
        "Bonjour,\nNotre candidature à l'AMI est jointe à ce message.\nLe maire de Château-Thierry"
    );
    assert_eq!(
        arrival.attachments,
        vec![attachment(
            "piece-jointe-1.pdf",
            "application/pdf",
            example("candidature.pdf")
        )]
    );
}

#[test]
fn a_multipart_whose_boundary_never_appears_is_quarantined() {
    assert_eq!(
        reason("06-mime-casse.eml"),
        "message illisible : structure MIME cassée : la frontière « frontiere-annoncee » du \
         contenu multipart n'apparaît jamais"
    );
}

#[test]
fn a_message_with_neither_received_nor_date_is_quarantined() {
    assert_eq!(
        reason("07-sans-date.eml"),
        "message illisible : aucune date de réception valable (ni dans le premier en-tête \
         Received, celui du serveur qui a reçu le message, ni dans l'en-tête Date)"
    );
}

#[test]
fn text_without_headers_is_quarantined() {
    assert_eq!(
        reason("08-pas-un-message.eml"),
        "message illisible : aucun en-tête"
    );
}

#[test]
fn a_message_without_a_from_address_is_quarantined() {
    assert_eq!(
        reason("09-sans-expediteur.eml"),
        "message illisible : aucune adresse d'expéditeur (en-tête From)"
    );
}

#[test]
fn empty_input_and_binary_garbage_are_quarantined() {
    assert_eq!(
        parse(b"").expect_err("empty").reason,
        "message illisible : message vide"
    );
    assert_eq!(
        parse(b" \r\n\r\n").expect_err("blank").reason,
        "message illisible : message vide"
    );
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    assert!(parse(&garbage).is_err());
    assert!(parse(b"\x00\x01\x02\xff\xfe").is_err());
}

#[test]
fn an_invalid_date_is_no_date() {
    let raw = b"Received: from x by y; Mon, 31 Feb 2020 10:00:00 +0100\r\n\
                Date: 45 Octember 2020\r\n\
                From: a@b.fr\r\n\r\nBonjour.\r\n";

    assert!(parse(raw)
        .expect_err("a quarantine")
        .reason
        .contains("aucune date de réception valable"));
}

#[test]
fn a_topmost_received_without_a_valid_date_falls_back_on_date_not_on_lower_received() {
    let raw = b"Received: from mx by imap with LMTP; pas une date\r\n\
                Received: from a by mx; Tue, 13 Oct 2020 10:00:00 +0200\r\n\
                Date: Tue, 13 Oct 2020 09:59:00 +0200\r\n\
                From: a@b.fr\r\n\r\nBonjour.\r\n";

    let arrival = parse(raw).expect("an arrival");

    assert_eq!(arrival.received_source, ReceivedSource::Date);
    assert_eq!(arrival.received_at, utc("2020-10-13T09:59:00+02:00"));
}

fn with_pdf_part(base64: &str, end: &str) -> String {
    format!(
        "Date: Tue, 13 Oct 2020 09:59:00 +0200\r\n\
         From: a@b.fr\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nBonjour.\r\n\
         --b\r\nContent-Type: application/pdf; name=\"dossier.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{base64}\r\n{end}"
    )
}

#[test]
fn an_attachment_whose_base64_is_broken_is_quarantined() {
    let raw = with_pdf_part("JVBERi0x%%%%***!!!", "--b--\r\n");

    assert_eq!(
        parse(raw.as_bytes()).expect_err("a quarantine").reason,
        "message illisible : la pièce jointe « dossier.pdf » n'a pas pu être décodée (base64 \
         invalide, ou message tronqué)"
    );
}

#[test]
fn an_attachment_cut_short_before_its_closing_boundary_is_quarantined() {
    let cut = with_pdf_part("JVBERi0xLjQK", "");
    let whole = with_pdf_part("JVBERi0xLjQK", "--b--\r\n");

    assert!(parse(cut.as_bytes())
        .expect_err("a quarantine")
        .reason
        .contains("« dossier.pdf » n'a pas pu être décodée"));
    assert_eq!(
        parse(whole.as_bytes()).expect("an arrival").attachments[0].data,
        b"%PDF-1.4\n"
    );
}

#[test]
fn a_multipart_without_a_boundary_is_quarantined() {
    let raw = b"Date: Tue, 13 Oct 2020 09:59:00 +0200\r\nFrom: a@b.fr\r\n\
                Content-Type: multipart/mixed\r\n\r\nBonjour.\r\n";

    assert_eq!(
        parse(raw).expect_err("a quarantine").reason,
        "message illisible : structure MIME cassée : contenu multipart sans frontière (boundary)"
    );
}

#[test]
fn file_names_lose_their_path_and_control_characters() {
    let raw = "Date: Tue, 13 Oct 2020 09:59:00 +0200\r\n\
               From: a@b.fr\r\n\
               Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
               --b\r\nContent-Type: text/plain\r\n\r\nBonjour.\r\n\
               --b\r\nContent-Type: application/pdf\r\n\
               Content-Disposition: attachment; filename=\"..\\\\..\\\\Windows\\\\dossier\t.pdf\"\r\n\
               Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n\
               --b\r\nContent-Type: application/pdf\r\n\
               Content-Disposition: attachment; filename=\"../../etc/budget.pdf\"\r\n\
               Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";

    let arrival = parse(raw.as_bytes()).expect("an arrival");

    let names: Vec<&str> = arrival
        .attachments
        .iter()
        .map(|a| a.filename.as_str())
        .collect();
    assert_eq!(names, ["dossier.pdf", "budget.pdf"]);
    assert_eq!(arrival.attachments[0].data, b"%PDF-1.4\n");
}

#[test]
fn a_message_with_a_15_mib_attachment_is_read_whole() {
    let data: Vec<u8> = (0..15 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut raw = String::from(
        "Received: from mx by imap; Wed, 14 Oct 2020 16:05:42 +0200\r\n\
         From: Mairie <dgs@mairie-nevers.fr>\r\nSubject: Gros dossier\r\n\
         Message-ID: <gros@mairie-nevers.fr>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"gros\"\r\n\r\n\
         --gros\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nLe dossier complet.\r\n\
         --gros\r\nContent-Type: application/pdf; name=\"dossier complet.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
    for line in encoded.as_bytes().chunks(76) {
        raw.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        raw.push_str("\r\n");
    }
    raw.push_str("--gros--\r\n");

    let arrival = parse(raw.as_bytes()).expect("an arrival");

    assert_eq!(arrival.text, "Le dossier complet.");
    assert_eq!(arrival.attachments.len(), 1);
    let file = &arrival.attachments[0];
    assert_eq!(file.filename, "dossier complet.pdf");
    assert_eq!(file.size, 15 * 1024 * 1024);
    assert_eq!(file.sha256, sha256(&data));
    assert!(file.data == data);
}

#[test]
fn a_broken_multipart_inside_a_forwarded_message_is_quarantined_too() {
    let raw = "Date: Tue, 13 Oct 2020 09:59:00 +0200\r\nFrom: a@b.fr\r\n\
               Content-Type: multipart/mixed; boundary=\"ext\"\r\n\r\n\
               --ext\r\nContent-Type: text/plain\r\n\r\nJe transfère.\r\n\
               --ext\r\nContent-Type: message/rfc822\r\n\r\n\
               From: c@d.fr\r\nContent-Type: multipart/mixed; boundary=\"jamais\"\r\n\r\n\
               --autre\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--autre--\r\n\
               --ext--\r\n";

    assert_eq!(
        parse(raw.as_bytes()).expect_err("a quarantine").reason,
        "message illisible : structure MIME cassée : la frontière « jamais » du contenu \
         multipart n'apparaît jamais"
    );
}

#[test]
fn a_forwarded_message_encoded_in_base64_is_flattened_too() {
    use base64::Engine;
    let inner = "From: c@d.fr\r\nSubject: Budget\r\nContent-Type: multipart/mixed; boundary=\"i\"\r\n\r\n\
                 --i\r\nContent-Type: text/plain\r\n\r\nLe budget.\r\n\
                 --i\r\nContent-Type: text/csv; name=\"budget.csv\"\r\n\r\nposte;montant\r\n--i--\r\n";
    let raw = format!(
        "Date: Tue, 13 Oct 2020 09:59:00 +0200\r\nFrom: a@b.fr\r\n\
         Content-Type: multipart/mixed; boundary=\"ext\"\r\n\r\n\
         --ext\r\nContent-Type: text/plain\r\n\r\nJe transfère.\r\n\
         --ext\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --ext--\r\n",
        base64::engine::general_purpose::STANDARD.encode(inner)
    );

    let arrival = parse(raw.as_bytes()).expect("an arrival");

    assert_eq!(
        arrival.text,
        "Je transfère.\n\n---------- Message transféré ----------\nDe : c@d.fr\nObjet : Budget\n\n\
         Le budget."
    );
    assert_eq!(arrival.attachments.len(), 1);
    assert_eq!(arrival.attachments[0].filename, "budget.csv");
    assert_eq!(arrival.attachments[0].media_type, "text/csv");
}
