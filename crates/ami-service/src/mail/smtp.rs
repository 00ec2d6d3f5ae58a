//! Mail out: sends letters through an SMTP relay with `lettre`, and says
//! whether a failure is worth retrying.
//!
//! The relay is given as a URL in lettre's form (`--smtp-url`,
//! `AMI_SMTP_URL`): `smtp://host:port` without encryption (a relay on the
//! same machine), `smtp://host:587?tls=required` with STARTTLS,
//! `smtps://host:465` with TLS; credentials in the user part
//! (`smtps://user:password@host`, percent-encoded). The URL is shown and
//! logged without its password.

use std::fmt;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::{Mailbox, MessageBuilder};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

/// How long one SMTP exchange (connection, each command) may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// A relay URL or a sender address `ami` cannot use.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SmtpConfigError {
    #[error(
        "adresse SMTP {shown} inutilisable ({reason}) : smtp://serveur:25, \
         smtp://serveur:587?tls=required ou smtps://utilisateur:motdepasse@serveur:465 attendu"
    )]
    Url {
        /// The URL given, without its password.
        shown: String,
        reason: String,
    },
    #[error("adresse d'expédition « {from} » illisible ({reason}) : ami@ville.fr ou « AMI <ami@ville.fr> » attendu")]
    From { from: String, reason: String },
}

/// Why a letter did not go: the outbox retries a [`SendError::Transient`]
/// later and gives up on a [`SendError::Permanent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The relay refused the letter for good (a 5xx reply: unknown
    /// recipient, message refused), or lettre cannot send it at all.
    #[error("envoi refusé par le serveur SMTP{} : {detail}", code_text(*.code))]
    Permanent { code: Option<u16>, detail: String },
    /// Worth another try later: no connection, timeout, TLS, a 4xx reply,
    /// or an authentication refusal (the relay's settings, not the
    /// letter, are at fault).
    #[error("envoi impossible pour l'instant{} : {detail}", code_text(*.code))]
    Transient { code: Option<u16>, detail: String },
}

fn code_text(code: Option<u16>) -> String {
    code.map_or_else(String::new, |c| format!(" ({c})"))
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent { .. })
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    /// The relay's reply code, when it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            SendError::Permanent { code, .. } | SendError::Transient { code, .. } => *code,
        }
    }

    fn from_lettre(e: &lettre::transport::smtp::Error) -> SendError {
        let code = e.status().map(u16::from);
        let detail = super::error_chain(e);
        // 530, 534, 535, 538: authentication refused or required. The
        // letter is not at fault, the relay's settings are: retry once an
        // operator has fixed them.
        let auth = matches!(code, Some(530 | 534 | 535 | 538));
        if (e.is_permanent() && !auth) || e.is_client() {
            SendError::Permanent { code, detail }
        } else {
            SendError::Transient { code, detail }
        }
    }
}

/// Sends letters from one sender address through one relay. Cheap to
/// clone; each letter opens its own connection.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    shown: String,
}

impl SmtpSender {
    /// The relay at `url` (lettre's form, see the module) and the sender
    /// `from` (`ami@ville.fr` or `AMI <ami@ville.fr>`); nothing is
    /// connected yet.
    pub fn from_url(url: &str, from: &str) -> Result<SmtpSender, SmtpConfigError> {
        let shown = super::redacted_url(url);
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| SmtpConfigError::Url {
                shown: shown.clone(),
                reason: super::error_chain(&e),
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = from
            .trim()
            .parse::<Mailbox>()
            .map_err(|e| SmtpConfigError::From {
                from: from.to_string(),
                reason: e.to_string(),
            })?;
        Ok(SmtpSender {
            transport,
            from,
            shown,
        })
    }

    /// The sender address letters go from.
    pub fn from_mailbox(&self) -> &Mailbox {
        &self.from
    }

    /// A message builder with the sender already in `From`.
    pub fn message(&self) -> MessageBuilder {
        Message::builder().from(self.from.clone())
    }

    /// Sends `message` to the recipients of its envelope (its `To`, `Cc`
    /// and `Bcc`).
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        self.send_raw(message.envelope(), &message.formatted())
            .await
    }

    /// Sends a letter already formatted (`raw`, as kept in an outbox) to
    /// the envelope's recipients, byte for byte.
    pub async fn send_raw(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        // lettre ends the data with CRLF . CRLF whatever the message ends
        // with: a message already ending with CRLF would gain an empty line.
        let raw = raw.strip_suffix(b"\r\n").unwrap_or(raw);
        self.transport
            .send_raw(envelope, raw)
            .await
            .map(drop)
            .map_err(|e| self.failed(&e))
    }

    /// Connects to the relay and says hello, without sending: for a check
    /// at start-up.
    pub async fn check(&self) -> Result<(), SendError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SendError::Transient {
                code: None,
                detail: format!("{} ne répond pas comme un serveur SMTP", self.shown),
            }),
            Err(e) => Err(self.failed(&e)),
        }
    }

    fn failed(&self, e: &lettre::transport::smtp::Error) -> SendError {
        let error = SendError::from_lettre(e);
        // The caller (the outbox) logs what it decides; here, the detail.
        tracing::debug!(smtp = %self.shown, error = %error, "SMTP : envoi échoué");
        error
    }
}

impl fmt::Display for SmtpSender {
    /// The relay's URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSender")
            .field("url", &self.shown)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_shows_its_url_without_the_password() {
        let sender = SmtpSender::from_url(
            "smtps://ami%40ville.fr:s3cr%3At@relay.example:465",
            "AMI <ami@ville.fr>",
        )
        .unwrap();
        assert_eq!(
            sender.to_string(),
            "smtps://ami%40ville.fr:***@relay.example:465"
        );
        assert!(!format!("{sender:?}").contains("s3cr"));
        assert_eq!(sender.from_mailbox().email.to_string(), "ami@ville.fr");
    }

    #[test]
    fn a_bad_url_or_sender_is_refused_without_showing_the_password() {
        let err = SmtpSender::from_url("ftp://u:s3cr3t@h", "ami@ville.fr").unwrap_err();
        assert!(matches!(err, SmtpConfigError::Url { .. }));
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        let err = SmtpSender::from_url("smtp://127.0.0.1:25", "pas une adresse").unwrap_err();
        assert!(matches!(err, SmtpConfigError::From { .. }), "{err}");
    }
}
