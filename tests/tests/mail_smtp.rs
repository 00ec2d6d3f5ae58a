//! Mail out: `mail::smtp::SmtpSender` against a real SMTP server (aiosmtpd
//! with a handler of ours, one per test): a French letter arrives intact;
//! no server, or a 4xx, is worth retrying; a 5xx is not.

use std::time::Duration;

use ami_service::mail::smtp::{SendError, SmtpSender};
use ami_tests::smtp_sink::{SmtpSink, REFUSED_FOR_GOOD, REFUSED_FOR_NOW};

const FROM: &str = "AMI <ami@ville.example>";

fn letter_to(sender: &SmtpSender, to: &str) -> lettre::Message {
    sender
        .message()
        .to(to.parse().expect("recipient"))
        .subject("Dossier reçu : « Cœur de ville » à Nevers")
        .body("Bonjour,\n\nVotre dossier est bien reçu ; numéro 42.\nÀ bientôt.\n".to_string())
        .expect("message")
}

#[tokio::test]
async fn a_letter_reaches_the_server_with_its_french_subject_and_body_intact() {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let sender = SmtpSender::from_url(&sink.url(), FROM).expect("sender");
    sender.check().await.expect("the sink answers");
    let letter = letter_to(&sender, "Mairie de Nevers <mairie@nevers.example>");

    // Act
    sender.send(letter).await.expect("sent");

    // Assert
    let received = sink
        .wait_for(1, Duration::from_secs(10))
        .await
        .expect("received");
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.mail_from, "ami@ville.example");
    assert_eq!(got.rcpt_to, vec!["mairie@nevers.example".to_string()]);
    let subject_line = got
        .raw
        .split(|b| *b == b'\n')
        .find(|l| l.starts_with(b"Subject:"))
        .expect("a Subject header");
    assert!(subject_line.is_ascii(), "encoded per RFC 2047");
    let parsed = mail_parser::MessageParser::default()
        .parse(&got.raw)
        .expect("a message");
    assert_eq!(
        parsed.subject(),
        Some("Dossier reçu : « Cœur de ville » à Nevers")
    );
    assert_eq!(
        parsed
            .body_text(0)
            .map(|b| b.replace("\r\n", "\n"))
            .as_deref(),
        Some("Bonjour,\n\nVotre dossier est bien reçu ; numéro 42.\nÀ bientôt.\n")
    );
    assert_eq!(
        parsed
            .from()
            .and_then(|f| f.first())
            .and_then(|a| a.address()),
        Some("ami@ville.example")
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_failure() {
    // Arrange: a port nobody listens on.
    let port = ami_tests::process::free_port().expect("port");
    let sender = SmtpSender::from_url(&format!("smtp://127.0.0.1:{port}"), FROM).expect("sender");

    // Act
    let error = sender
        .send(letter_to(&sender, "mairie@nevers.example"))
        .await
        .expect_err("nobody to send to");

    // Assert
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.code(), None);
}

#[tokio::test]
async fn a_recipient_refused_with_a_5xx_is_a_permanent_failure() {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let sender = SmtpSender::from_url(&sink.url(), FROM).expect("sender");

    // Act
    let error = sender
        .send(letter_to(&sender, REFUSED_FOR_GOOD))
        .await
        .expect_err("refused");

    // Assert
    assert!(
        matches!(
            error,
            SendError::Permanent {
                code: Some(550),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(sink.received().expect("sink folder").is_empty());
}

#[tokio::test]
async fn a_recipient_refused_with_a_4xx_is_a_transient_failure() {
    // Arrange
    let sink = SmtpSink::start().expect("smtp sink");
    let sender = SmtpSender::from_url(&sink.url(), FROM).expect("sender");

    // Act
    let error = sender
        .send(letter_to(&sender, REFUSED_FOR_NOW))
        .await
        .expect_err("refused for now");

    // Assert
    assert!(
        matches!(
            error,
            SendError::Transient {
                code: Some(451),
                ..
            }
        ),
        "{error:?}"
    );
}
