//! The mbox and the Maildir of the corpus yield their messages in order;
//! an `.eml` file yields one.

use ami_mail::sources::{detect, read_path, SourceError, SourceKind};
use ami_mail::{parse, RawMessage};

use crate::corpus_dir;

fn read_all(path: &std::path::Path) -> Vec<RawMessage> {
    read_path(path)
        .expect("a source")
        .collect::<Result<Vec<_>, _>>()
        .expect("every message")
}

fn subjects(messages: &[RawMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| parse(&m.bytes).expect("an arrival").subject)
        .collect()
}

#[test]
fn an_mbox_yields_its_three_messages_in_order_with_their_number_in_the_origin() {
    let path = corpus_dir().join("boite.mbox");

    let messages = read_all(&path);

    assert_eq!(detect(&path).expect("a kind"), SourceKind::Mbox);
    assert_eq!(
        subjects(&messages),
        ["Premier message", "Deuxieme message", "Troisieme message"]
    );
    let origins: Vec<String> = messages.iter().map(|m| m.origin.clone()).collect();
    let file = path.display().to_string();
    assert_eq!(
        origins,
        [
            format!("{file}#1"),
            format!("{file}#2"),
            format!("{file}#3")
        ]
    );
}

#[test]
fn an_mbox_line_quoted_as_from_is_unquoted() {
    let messages = read_all(&corpus_dir().join("boite.mbox"));

    let second = parse(&messages[1].bytes).expect("an arrival");

    assert_eq!(
        second.text,
        "Une ligne qui commence par From dans le corps :\nFrom here on, the text is quoted.\nFin."
    );
}

#[test]
fn a_maildir_yields_new_and_cur_together_in_the_order_of_their_file_names() {
    let path = corpus_dir().join("maildir");

    let messages = read_all(&path);

    assert_eq!(detect(&path).expect("a kind"), SourceKind::Maildir);
    assert_eq!(
        subjects(&messages),
        ["Maildir un", "Maildir deux", "Maildir trois"]
    );
    assert!(messages[1].origin.ends_with("new/1602690000.M2P100.imap"));
}

#[test]
fn an_eml_file_yields_one_message_whose_origin_is_its_path() {
    let path = corpus_dir().join("01-candidature-nevers.eml");

    let messages = read_all(&path);

    assert_eq!(detect(&path).expect("a kind"), SourceKind::Eml);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].origin, path.display().to_string());
    assert_eq!(
        messages[0].bytes,
        crate::corpus("01-candidature-nevers.eml")
    );
}

#[test]
fn a_folder_without_cur_or_new_is_not_a_maildir() {
    let dir = tempfile::tempdir().expect("a folder");

    let error = read_path(dir.path()).err().expect("an error");

    assert!(matches!(error, SourceError::NotAMaildir(_)));
    assert!(error.to_string().contains("ce n'est pas une boîte Maildir"));
}

#[test]
fn a_missing_path_is_an_error_in_french() {
    let error = read_path(corpus_dir().join("absent.eml"))
        .err()
        .expect("an error");

    assert!(error.to_string().starts_with("lecture impossible de "));
}

#[test]
fn a_large_mbox_is_read_one_message_at_a_time() {
    let dir = tempfile::tempdir().expect("a folder");
    let path = dir.path().join("grosse.mbox");
    let body = "x".repeat(1024 * 1024);
    let mut mbox = String::new();
    for n in 1..=20 {
        mbox.push_str(&format!(
            "From a@b.fr Tue Oct 20 07:00:00 2020\nFrom: a@b.fr\n\
             Date: Tue, 20 Oct 2020 09:00:00 +0200\nSubject: n{n}\n\n{body}\n\n"
        ));
    }
    std::fs::write(&path, mbox).expect("written");

    let mut messages = read_path(&path).expect("a source");
    let first = messages.next().expect("one").expect("read");
    let rest = messages.count();

    assert_eq!(parse(&first.bytes).expect("an arrival").subject, "n1");
    assert!(first.bytes.len() < 2 * 1024 * 1024);
    assert_eq!(rest, 19);
}
