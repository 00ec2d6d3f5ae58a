//! The letters `ami` sends: the accusé de réception and the decision to a
//! town, the daily digest to an agency. Each renders, from askama templates
//! (`templates/`), to a plain text (not escaped) and an HTML text (every
//! value escaped), in French, and becomes a multipart/alternative message
//! with [`Letter::to_message`].
//!
//! Instants are written in Paris time, the way a French administration
//! writes them (« le 14 octobre 2020 à 16 h 05 »), with `ami-core`'s
//! [`french_date`] and [`french_instant`].

use std::time::SystemTime;

use ami_core::{french_date, french_instant};
use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Paris;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

/// A letter ready to send: its subject, its plain text and its HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The subject line, plain text.
    pub subject: String,
    /// The plain text version.
    pub text: String,
    /// The HTML version, a whole document.
    pub html: String,
}

/// Why a letter could not be rendered or made a message.
#[derive(Debug, thiserror::Error)]
pub enum LetterError {
    /// A template failed to render.
    #[error("le courrier n'a pas pu être mis en forme : {0}")]
    Render(#[from] askama::Error),
    /// The sender's or the recipient's address is not an address.
    #[error("adresse {role} invalide « {address} » : {source}")]
    Address {
        /// « d'expédition » or « du destinataire ».
        role: &'static str,
        /// The address as given.
        address: String,
        /// What is wrong with it.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The message could not be built.
    #[error("le message n'a pas pu être construit : {0}")]
    Build(#[from] lettre::error::Error),
}

impl Letter {
    /// The letter as an e-mail: `From`, `To`, the subject (RFC 2047 encoded
    /// when not ASCII), `Date`, `Message-ID` (`message_id` without angle
    /// brackets, chosen by the caller so that sending again gives the same
    /// id), `Auto-Submitted: auto-generated` (RFC 3834, so that automatic
    /// replies stay quiet) and a multipart/alternative body, plain text
    /// first then HTML, both UTF-8. `from` and `to` are addresses, with or without a display
    /// name (`AMI Au cœur des territoires <ami@cnam.fr>`).
    pub fn to_message(
        &self,
        from: &str,
        to: &str,
        message_id: &str,
        date: DateTime<Utc>,
    ) -> Result<lettre::Message, LetterError> {
        let mailbox = |role, address: &str| {
            address
                .parse::<Mailbox>()
                .map_err(|source| LetterError::Address {
                    role,
                    address: address.to_string(),
                    source,
                })
        };
        let message_id = message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        Ok(lettre::Message::builder()
            .from(mailbox("d'expédition", from)?)
            .to(mailbox("du destinataire", to)?)
            .subject(self.subject.clone())
            .date(SystemTime::from(date))
            .message_id(Some(format!("<{message_id}>")))
            // RFC 3834: a town's out-of-office reply must not answer a letter
            // sent by a program (its reply would come back as an arrival).
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_string(),
            ))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(self.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(self.html.clone()),
                    ),
            )?)
    }
}

/// The accusé de réception sent to a town when its dossier is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccuseReception {
    /// The dossier's reference (`AMI2-V1-0007`).
    pub reference: String,
    /// The commune's name (« Nevers »).
    pub commune: String,
    /// Who carries the application (« Ville de Nevers »).
    pub porteur_nom: String,
    /// When the AMI's mailbox received the application.
    pub received_at: DateTime<Utc>,
    /// The wave it falls in, when it falls in one.
    pub wave: Option<u8>,
    /// The pièces received: the kind's label (« Budget prévisionnel ») and
    /// the file's name.
    pub pieces: Vec<(String, String)>,
    /// The address to write to: the AMI's mailbox.
    pub contact: String,
}

/// The decision sent to a town: lauréat or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The dossier's reference.
    pub reference: String,
    /// The commune's name.
    pub commune: String,
    /// Who carries the application.
    pub porteur_nom: String,
    /// Lauréat (`true`) or refused.
    pub laureat: bool,
    /// Why, in the words of whoever decided.
    pub motivation: Option<String>,
    /// The day of the decision.
    pub decided_on: NaiveDate,
    /// The day the selection committee sat, when one did.
    pub committee_held_on: Option<NaiveDate>,
    /// The address to write to.
    pub contact: String,
}

/// The daily digest sent to an agency: the dossiers waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The agency's label (« ANCT – Direction Action Cœur de Ville »).
    pub agency_label: String,
    /// The day of the digest.
    pub date: NaiveDate,
    /// The dossiers waiting on the agency, in the order to show them.
    pub awaiting: Vec<DigestLine>,
    /// How many of them are late.
    pub overdue_count: usize,
}

/// A dossier waiting on an agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestLine {
    /// The dossier's reference.
    pub reference: String,
    /// The commune's name.
    pub commune: String,
    /// The last day to act, when there is a deadline.
    pub due: Option<NaiveDate>,
    /// The deadline has passed.
    pub overdue: bool,
    /// The dossier's page, when the service knows its own address.
    pub url: Option<String>,
}

/// « de » and the commune's name, as French writes it: « de Nevers »,
/// « d'Épinal », « du Havre », « des Abymes », « de La Rochelle ». A name
/// beginning with H keeps « de » (« de Hazebrouck »): whether its h is
/// aspirated is not written in the name.
pub fn de_commune(name: &str) -> String {
    let name = name.trim();
    if let Some(rest) = name.strip_prefix("Le ") {
        return format!("du {rest}");
    }
    if let Some(rest) = name.strip_prefix("Les ") {
        return format!("des {rest}");
    }
    let folded = ami_core::text::search_key(name);
    if folded.starts_with(['a', 'e', 'i', 'o', 'u', 'y']) {
        format!("d'{name}")
    } else {
        format!("de {name}")
    }
}

/// What the signature of every letter says.
const SIGNATURE: &str = "L'équipe de l'AMI « Au cœur des territoires »";

struct Piece<'a> {
    label: &'a str,
    filename: &'a str,
}

#[derive(Template)]
#[template(path = "accuse_reception.txt")]
struct AccuseText<'a> {
    l: &'a AccuseReception,
    de_commune: String,
    received: String,
    pieces: Vec<Piece<'a>>,
    signature: &'a str,
}

#[derive(Template)]
#[template(path = "accuse_reception.html")]
struct AccuseHtml<'a> {
    l: &'a AccuseReception,
    de_commune: String,
    received: String,
    pieces: Vec<Piece<'a>>,
    signature: &'a str,
}

impl AccuseReception {
    /// The letter, with the subject « Accusé de réception de votre
    /// candidature AMI2-V1-0007 – Nevers ».
    pub fn render(&self) -> Result<Letter, LetterError> {
        let received = french_instant(self.received_at, Paris);
        let pieces = || {
            self.pieces
                .iter()
                .map(|(label, filename)| Piece { label, filename })
                .collect::<Vec<_>>()
        };
        Ok(Letter {
            subject: format!(
                "Accusé de réception de votre candidature {} – {}",
                self.reference, self.commune
            ),
            text: AccuseText {
                l: self,
                de_commune: de_commune(&self.commune),
                received: received.clone(),
                pieces: pieces(),
                signature: SIGNATURE,
            }
            .render()?,
            html: AccuseHtml {
                l: self,
                de_commune: de_commune(&self.commune),
                received,
                pieces: pieces(),
                signature: SIGNATURE,
            }
            .render()?,
        })
    }
}

#[derive(Template)]
#[template(path = "decision.txt")]
struct DecisionText<'a> {
    l: &'a Decision,
    de_commune: String,
    decided_on: String,
    committee: Option<String>,
    signature: &'a str,
}

#[derive(Template)]
#[template(path = "decision.html")]
struct DecisionHtml<'a> {
    l: &'a Decision,
    de_commune: String,
    decided_on: String,
    committee: Option<String>,
    signature: &'a str,
}

impl Decision {
    /// The letter, with the subject « Votre candidature AMI2-V1-0007 –
    /// Nevers est retenue » (or « n'est pas retenue »).
    pub fn render(&self) -> Result<Letter, LetterError> {
        let decided_on = french_date(self.decided_on);
        let committee = self.committee_held_on.map(french_date);
        let outcome = if self.laureat {
            "est retenue"
        } else {
            "n'est pas retenue"
        };
        Ok(Letter {
            subject: format!(
                "Votre candidature {} – {} {outcome}",
                self.reference, self.commune
            ),
            text: DecisionText {
                l: self,
                de_commune: de_commune(&self.commune),
                decided_on: decided_on.clone(),
                committee: committee.clone(),
                signature: SIGNATURE,
            }
            .render()?,
            html: DecisionHtml {
                l: self,
                de_commune: de_commune(&self.commune),
                decided_on,
                committee,
                signature: SIGNATURE,
            }
            .render()?,
        })
    }
}

struct Line<'a> {
    reference: &'a str,
    commune: &'a str,
    due: Option<String>,
    overdue: bool,
    url: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "digest.txt")]
struct DigestText<'a> {
    l: &'a Digest,
    date: String,
    summary: String,
    lines: Vec<Line<'a>>,
    signature: &'a str,
}

#[derive(Template)]
#[template(path = "digest.html")]
struct DigestHtml<'a> {
    l: &'a Digest,
    date: String,
    summary: String,
    lines: Vec<Line<'a>>,
    signature: &'a str,
}

impl Digest {
    /// The letter, with the subject « AMI – 3 dossiers en attente –
    /// ANCT – Direction Action Cœur de Ville – 14 octobre 2020 ».
    pub fn render(&self) -> Result<Letter, LetterError> {
        let date = french_date(self.date);
        let count = self.awaiting.len();
        let dossiers = match count {
            0 => "aucun dossier en attente".to_string(),
            1 => "1 dossier en attente".to_string(),
            n => format!("{n} dossiers en attente"),
        };
        let summary = match (count, self.overdue_count) {
            (0, _) => "Aucun dossier n'attend votre action.".to_string(),
            (1, 0) => "1 dossier attend votre action.".to_string(),
            (1, _) => "1 dossier attend votre action ; son délai est dépassé.".to_string(),
            (n, 0) => format!("{n} dossiers attendent votre action."),
            (n, 1) => format!("{n} dossiers attendent votre action, dont 1 en retard."),
            (n, late) => format!("{n} dossiers attendent votre action, dont {late} en retard."),
        };
        let lines = || {
            self.awaiting
                .iter()
                .map(|d| Line {
                    reference: &d.reference,
                    commune: &d.commune,
                    due: d.due.map(french_date),
                    overdue: d.overdue,
                    url: d.url.as_deref(),
                })
                .collect::<Vec<_>>()
        };
        Ok(Letter {
            subject: format!("AMI – {dossiers} – {} – {date}", self.agency_label),
            text: DigestText {
                l: self,
                date: date.clone(),
                summary: summary.clone(),
                lines: lines(),
                signature: SIGNATURE,
            }
            .render()?,
            html: DigestHtml {
                l: self,
                date,
                summary,
                lines: lines(),
                signature: SIGNATURE,
            }
            .render()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn de_is_elided_before_a_vowel_and_contracted_with_le_and_les() {
        assert_eq!(de_commune("Nevers"), "de Nevers");
        assert_eq!(de_commune("Épinal"), "d'Épinal");
        assert_eq!(de_commune("Yvetot"), "d'Yvetot");
        assert_eq!(de_commune("Le Havre"), "du Havre");
        assert_eq!(de_commune("Les Abymes"), "des Abymes");
        assert_eq!(de_commune("La Rochelle"), "de La Rochelle");
        assert_eq!(de_commune("L'Isle-Adam"), "de L'Isle-Adam");
        assert_eq!(de_commune("Hazebrouck"), "de Hazebrouck");
    }
}
