//! Mail in and mail out: the transports, and the outbox worker that sends
//! the letters.
//!
//! - [`imap`] follows the mailbox towns write to (IMAP IDLE, polling when
//!   the server has no IDLE), gives each message's raw bytes to an importer
//!   and marks it imported once the importer has taken it.
//! - [`import`] turns a message's raw bytes into an arrival (files first,
//!   then the row, once; the unreadable in quarantine): what `ami import`
//!   and `ami serve --imap-url` give each message to.
//! - [`smtp`] sends letters through a relay with `lettre`, telling a
//!   permanent refusal (5xx) from a failure worth retrying.
//! - [`outbox`] renders the letters of the store's outbox and sends them
//!   with [`smtp`], retrying with a growing wait; `ami serve` runs it.
//!
//! Keeping messages (arrivals, the outbox's rows) belongs to the store;
//! `imap` and `smtp` only move bytes to and from the mail servers.
//!
//! Wiring them into `ami serve` (flags `--imap-url`, `--imap-done-folder`,
//! `--smtp-url`, `--mail-from`; env `AMI_IMAP_PASSWORD`, `AMI_SMTP_URL`,
//! `AMI_MAIL_FROM`) goes like this; one shutdown signal for the HTTP server
//! and the follower, e.g. a `tokio_util::sync::CancellationToken`:
//!
//! ```no_run
//! # async fn wire(stop: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
//! use ami_service::mail::{imap, smtp};
//! let source = imap::ImapSource::parse("imaps://ami%40ville.fr@mail.ville.fr/INBOX")?
//!     .with_done_folder(None)?;
//! let password = std::env::var("AMI_IMAP_PASSWORD")?;
//! tokio::spawn(imap::follow(
//!     source,
//!     password,
//!     |raw: Vec<u8>| async move {
//!         // Parse `raw` and keep it as an arrival, idempotently.
//!         Ok::<(), anyhow::Error>(())
//!     },
//!     stop.clone().cancelled_owned(),
//! ));
//! let sender = smtp::SmtpSender::from_url("smtp://127.0.0.1:25", "AMI <ami@ville.fr>")?;
//! let letter = sender.message().to("mairie@nevers.fr".parse()?).subject("…").body(String::new())?;
//! match sender.send(letter).await {
//!     Ok(()) => {}
//!     Err(e) if e.is_permanent() => { /* give up on this letter */ }
//!     Err(_) => { /* try again later, with a growing wait */ }
//! }
//! # Ok(()) }
//! ```

pub mod imap;
pub mod import;
pub mod outbox;
pub mod smtp;

/// An error and its sources, on one line, for logs and error details.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text += &format!(" : {more}");
        }
        source = s.source();
    }
    text
}

/// `url` with `***` for the password of its user part: `smtp://u:***@host`.
/// When in doubt (an `@` further on, say) it hides more, never less.
pub(crate) fn redacted_url(url: &str) -> String {
    // The last `@` ends the user part at the earliest: a password may hold
    // an `@` of its own.
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let (head, creds) = url[..at].split_at(scheme + 3);
            match creds.split_once(':') {
                Some((user, _)) => format!("{head}{user}:***{}", &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_never_shows_its_password() {
        for (url, shown) in [
            (
                "smtp://ami:s3cr3t@relay.example:587?tls=required",
                "smtp://ami:***@relay.example:587?tls=required",
            ),
            (
                "smtps://a%40b:p@ss@relay.example",
                "smtps://a%40b:***@relay.example",
            ),
            ("smtp://relay.example:25", "smtp://relay.example:25"),
            ("smtp://ami@relay.example", "smtp://ami@relay.example"),
        ] {
            assert_eq!(redacted_url(url), shown);
        }
    }
}
