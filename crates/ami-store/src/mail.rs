//! Mail in and mail out, as the store keeps them: the arrivals (messages
//! received in the AMI mailbox, each imported once and handled once) and
//! the outbox (letters to send, each written with the event that causes it
//! and sent once, whichever instance sends it).

use ami_core::{Definition, Dossier, DossierId, Effect};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{micros, to_i64, StoreError};

/// Where an arrival stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalState {
    /// Imported, waiting for the DAR.
    Nouveau,
    /// Imported but held back (unreadable, suspicious): only set aside.
    Quarantaine,
    /// Turned into a dossier or attached to one.
    Traite,
    /// Set aside, with a motivation.
    Ecarte,
}

/// What the DAR did with an arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// It became a dossier (the deposit).
    Depot,
    /// It became a new version of a pièce of an existing dossier.
    Rattachement,
    /// Set aside.
    Ecarte,
}

/// The kind of a letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutgoingKind {
    /// To the town, at the deposit.
    AccuseReception,
    /// To the town, when the dossier reaches a final state.
    Decision,
    /// To an agency, once a day.
    Digest,
}

/// Where a letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutgoingStatus {
    /// To send (again) from `next_attempt_at`.
    EnAttente,
    Envoye,
    /// Given up after the sender's last attempt.
    Echec,
    /// No address to send it to: kept, shown, never sent.
    SansDestinataire,
}

macro_rules! words {
    ($ty:ident { $($variant:ident = $word:literal,)* }) => {
        impl $ty {
            /// The value as stored (and serialized).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word,)*
                }
            }

            /// The value stored in `column`; another is a corrupt row.
            pub fn read(column: &str, s: &str) -> Result<$ty, StoreError> {
                match s {
                    $($word => Ok($ty::$variant),)*
                    _ => Err(StoreError::Corrupt(format!("{column} : valeur inconnue {s:?}"))),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(ArrivalState {
    Nouveau = "nouveau",
    Quarantaine = "quarantaine",
    Traite = "traite",
    Ecarte = "ecarte",
});
words!(Handling {
    Depot = "depot",
    Rattachement = "rattachement",
    Ecarte = "ecarte",
});
words!(OutgoingKind {
    AccuseReception = "accuse_reception",
    Decision = "decision",
    Digest = "digest",
});
words!(OutgoingStatus {
    EnAttente = "en_attente",
    Envoye = "envoye",
    Echec = "echec",
    SansDestinataire = "sans_destinataire",
});

/// A file attached to a message, kept by the content-addressed storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub filename: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
}

/// A message to import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewArrival {
    /// The Message-ID, or the SHA-256 of the raw message without one: the
    /// same message imported twice is one arrival.
    pub dedup_key: String,
    pub message_id: Option<String>,
    /// The sender's address.
    pub sender: String,
    pub sender_name: Option<String>,
    pub subject: String,
    pub received_at: DateTime<Utc>,
    /// The wave of `received_at`, as the definition places it.
    pub wave: Option<u8>,
    /// `Nouveau`, or `Quarantaine` with a reason.
    pub state: ArrivalState,
    pub quarantine_reason: Option<String>,
    /// The message's text.
    pub text: String,
    /// The raw message, as kept by the file storage.
    pub raw_sha256: String,
    pub raw_size: u64,
    pub attachments: Vec<Attachment>,
    pub imported_at: DateTime<Utc>,
    /// Where it came from (`imap`, a file's path).
    pub source: String,
}

/// What [`crate::Store::record_arrival`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedArrival {
    pub id: Uuid,
    /// False when the message had been imported already: `id` is the
    /// first import's.
    pub created: bool,
}

/// An arrival as stored, with its handling once handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalRecord {
    pub id: Uuid,
    pub dedup_key: String,
    pub message_id: Option<String>,
    pub sender: String,
    pub sender_name: Option<String>,
    pub subject: String,
    pub received_at: DateTime<Utc>,
    pub wave: Option<u8>,
    pub state: ArrivalState,
    pub quarantine_reason: Option<String>,
    pub text: String,
    pub raw_sha256: String,
    pub raw_size: u64,
    pub attachments: Vec<Attachment>,
    pub imported_at: DateTime<Utc>,
    pub source: String,
    /// Who handled it (the actor's id and name), when, and how.
    pub handled_by: Option<String>,
    pub handled_by_name: Option<String>,
    pub handled_at: Option<DateTime<Utc>>,
    pub handling: Option<Handling>,
    /// Why it was set aside.
    pub motivation: Option<String>,
    /// The dossier it became or joined, and the event that did it.
    pub dossier_id: Option<DossierId>,
    pub event_seq: Option<u64>,
}

/// Filters of the arrivals' list.
#[derive(Debug, Clone, Default)]
pub struct ArrivalFilter {
    pub state: Option<ArrivalState>,
    pub cursor: Option<ArrivalCursor>,
    pub limit: u32,
}

/// Position in the arrivals' list: reception instant, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivalCursor {
    pub received_at_us: i64,
    pub arrival_id: Uuid,
}

impl ArrivalCursor {
    /// The cursor just after `a`.
    pub fn after(a: &ArrivalRecord) -> ArrivalCursor {
        ArrivalCursor {
            received_at_us: micros(a.received_at),
            arrival_id: a.id,
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}/{}", self.received_at_us, self.arrival_id))
    }

    pub fn decode(s: &str) -> Option<ArrivalCursor> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let (at, id) = text.split_once('/')?;
        Some(ArrivalCursor {
            received_at_us: at.parse().ok()?,
            arrival_id: id.parse().ok()?,
        })
    }
}

/// A letter in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingRecord {
    pub id: Uuid,
    /// The dossier and the event whose letter it is (none for a digest).
    pub dossier_id: Option<DossierId>,
    pub event_seq: Option<u64>,
    pub kind: OutgoingKind,
    pub recipient: Option<String>,
    /// The agency and day of a digest.
    pub digest_agency: Option<String>,
    pub digest_date: Option<NaiveDate>,
    pub status: OutgoingStatus,
    /// Sending attempts begun: each claim counts one.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// The claim that may record the outcome, and until when it holds.
    pub claim_token: Option<Uuid>,
    pub claimed_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A letter a transition writes with its event, as the backends write it
/// (ids as text, instants in microseconds: the group commit's document
/// carries it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Letter {
    pub message_id: String,
    pub dossier_id: String,
    pub event_seq: i64,
    pub kind: &'static str,
    pub recipient: Option<String>,
    pub status: &'static str,
    pub created_at_us: i64,
}

/// The letters an event causes: an accusé de réception when `action`
/// creates the dossier, a decision when it takes it to a final state;
/// each to the porteur's address after the event, or kept without one
/// (`sans_destinataire`) when the dossier has none.
pub fn letters(
    def: &Definition,
    action: &str,
    d: &Dossier,
    event_seq: u64,
    now: DateTime<Utc>,
) -> Vec<Letter> {
    let Some(action) = def.action(action) else {
        return Vec::new();
    };
    let mut kinds = Vec::new();
    if action.effect == Effect::Create {
        kinds.push(OutgoingKind::AccuseReception);
    }
    if action
        .to
        .as_ref()
        .is_some_and(|to| def.is_terminal(to.as_str()))
    {
        kinds.push(OutgoingKind::Decision);
    }
    let recipient = d
        .porteur
        .email
        .as_ref()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    let status = if recipient.is_some() {
        OutgoingStatus::EnAttente
    } else {
        OutgoingStatus::SansDestinataire
    };
    kinds
        .into_iter()
        .map(|kind| Letter {
            message_id: Uuid::now_v7().to_string(),
            dossier_id: d.id.to_string(),
            event_seq: to_i64(event_seq),
            kind: kind.as_str(),
            recipient: recipient.clone(),
            status: status.as_str(),
            created_at_us: micros(now),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_stored_as_their_serialized_words() {
        for s in [
            ArrivalState::Nouveau,
            ArrivalState::Quarantaine,
            ArrivalState::Traite,
            ArrivalState::Ecarte,
        ] {
            assert_eq!(
                serde_json::to_string(&s).expect("json"),
                format!("\"{}\"", s.as_str())
            );
            assert_eq!(
                ArrivalState::read("arrival.state", s.as_str()).ok(),
                Some(s)
            );
        }
        assert_eq!(
            serde_json::to_string(&OutgoingKind::AccuseReception).expect("json"),
            "\"accuse_reception\""
        );
        assert_eq!(
            serde_json::to_string(&OutgoingStatus::SansDestinataire).expect("json"),
            "\"sans_destinataire\""
        );
        assert!(matches!(
            OutgoingStatus::read("outgoing_message.status", "perdu"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn an_arrival_cursor_reads_back() {
        let c = ArrivalCursor {
            received_at_us: 1_700_000_000_000_000,
            arrival_id: Uuid::now_v7(),
        };
        assert_eq!(ArrivalCursor::decode(&c.encode()), Some(c));
        assert_eq!(ArrivalCursor::decode("nope"), None);
    }
}
