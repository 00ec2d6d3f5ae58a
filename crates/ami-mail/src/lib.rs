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
//!
//! ```
//! use ami_mail::{guess, parse, AccuseReception, ReceivedSource};
//!
//! let raw = "Received: from mx by imap.cnam.example; Fri, 6 Nov 2020 23:59:59 +0100\r\n\
//!            Date: Sat, 7 Nov 2020 00:00:05 +0100\r\n\
//!            From: Mairie <dgs@mairie-nevers.fr>\r\n\
//!            Subject: =?UTF-8?Q?Candidature_AMI_=E2=80=93_Nevers?=\r\n\r\n\
//!            Bonjour, voici notre candidature.\r\n";
//! let arrival = parse(raw.as_bytes()).unwrap();
//! // The topmost Received header, not Date, says when the mailbox got it.
//! assert_eq!(arrival.received_at.to_rfc3339(), "2020-11-06T22:59:59+00:00");
//! assert_eq!(arrival.received_source, ReceivedSource::Received);
//! assert_eq!(arrival.subject, "Candidature AMI – Nevers");
//! assert!(arrival.dedup_key.starts_with("sha256:"));
//!
//! let guesses = guess(&arrival);
//! assert_eq!(guesses.commune.unwrap().code_insee, "58194");
//!
//! let letter = AccuseReception {
//!     reference: "AMI2-V1-0007".into(),
//!     commune: "Nevers".into(),
//!     porteur_nom: "Ville de Nevers".into(),
//!     received_at: arrival.received_at,
//!     wave: Some(1),
//!     pieces: vec![],
//!     contact: "ami@cnam.example".into(),
//! }
//! .render()
//! .unwrap();
//! assert!(letter.text.contains("6 novembre 2020 à 23 h 59"));
//!
//! assert_eq!(
//!     parse(b"pas un message").unwrap_err().reason,
//!     "message illisible : aucun en-tête"
//! );
//! ```

#![warn(missing_docs)]

pub mod arrival;
pub mod guess;
pub mod letters;
pub mod sources;

pub use arrival::{parse, Arrival, Attachment, ReceivedSource, Sender, Unparsable};
pub use guess::{guess, CommuneGuess, Guesses};
pub use letters::{de_commune, AccuseReception, Decision, Digest, DigestLine, Letter, LetterError};
pub use sources::{read_path, Messages, RawMessage, SourceError, SourceKind};
