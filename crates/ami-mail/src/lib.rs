//! `ami-mail`: mail in and mail out for `ami`, without I/O (except
//! [`sources`], which reads files).
//!
//! - [`parse`] reads a raw message into an [`Arrival`] (a « courrier
//!   arrivé »), or says in French why it goes to quarantine ([`Unparsable`]);
//! - [`sources`] reads messages from an `.eml` file, an mbox or a Maildir;
//! - [`guess`](guess::guess) proposes the arrival's pièces, commune and
//!   dossier reference;
//! - [`letters`] renders the letters `ami` sends (accusé de réception,
//!   decision, daily digest) and makes them e-mails.
//!
//! The crate's README says what is parsed how.

#![warn(missing_docs)]

pub mod arrival;
pub mod guess;
pub mod letters;
pub mod sources;

pub use arrival::{parse, Arrival, Attachment, ReceivedSource, Sender, Unparsable};
pub use guess::{guess, CommuneGuess, Guesses};
pub use letters::{de_commune, AccuseReception, Decision, Digest, DigestLine, Letter, LetterError};
pub use sources::{read_path, Messages, RawMessage, SourceError, SourceKind};
