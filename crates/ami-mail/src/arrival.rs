//! One e-mail as `ami` records it on arrival (a « courrier arrivé »): who
//! sent it, when the mailbox received it, its text and every attached file,
//! or the reason it goes to quarantine.

use std::fmt;

use ami_core::text::{is_hidden_char, nfc};
use chrono::{DateTime, NaiveDate, Utc};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// A message the mailbox received, as read from its raw bytes by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The `Message-ID`, without its angle brackets, when the message has one.
    pub message_id: Option<String>,
    /// What tells two copies of one message apart from two messages:
    /// `message-id:<id>` (the id without brackets), or `sha256:<hex>` of the
    /// raw bytes when there is no Message-ID.
    pub dedup_key: String,
    /// The SHA-256 of the raw bytes, 64 lower-case hex digits.
    pub raw_sha256: String,
    /// The first address of `From:`.
    pub from: Sender,
    /// The subject, RFC 2047 decoded and trimmed; empty when there is none.
    pub subject: String,
    /// When the AMI's mailbox received the message, to the second.
    pub received_at: DateTime<Utc>,
    /// Which header `received_at` was read from.
    pub received_source: ReceivedSource,
    /// The text of the message: its text/plain parts (or its HTML made
    /// text when it has no plain text), then the text of each forwarded
    /// message, under a « Message transféré » heading; lines end with `\n`.
    pub text: String,
    /// Every attached file, those of forwarded messages included, in the
    /// order they appear in the message.
    pub attachments: Vec<Attachment>,
}

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The display name (« Mairie de Nevers »), RFC 2047 decoded.
    pub name: Option<String>,
    /// The e-mail address, as written.
    pub address: String,
}

/// Where the instant of reception was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceivedSource {
    /// The topmost `Received:` header: the one the receiving server added
    /// last, when it took the message in.
    Received,
    /// The `Date:` header, written by the sender's software: only when no
    /// topmost `Received:` header gives a valid date.
    Date,
}

/// A file attached to a message.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file's name, decoded (RFC 2047, RFC 2231), in Unicode form C,
    /// without path separators or control characters; when the message
    /// gives none, `piece-jointe-<n>.<ext>` from its type.
    pub filename: String,
    /// The declared type, lower case (`application/pdf`);
    /// `application/octet-stream` when none is declared.
    pub media_type: String,
    /// The decoded content. A text attachment (`text/csv`…) is its text in
    /// UTF-8, after decoding from its declared charset.
    pub data: Vec<u8>,
    /// The SHA-256 of `data`, 64 lower-case hex digits.
    pub sha256: String,
    /// The length of `data` in bytes.
    pub size: u64,
}

/// The content is shown by its size only: a 15 MiB file in a log line or a
/// failed test's message helps nobody.
impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("media_type", &self.media_type)
            .field("data", &format_args!("<{} octets>", self.data.len()))
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .finish()
    }
}

/// A message that cannot be recorded as an arrival and goes to quarantine,
/// with the reason in French for the person who looks at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unparsable {
    /// « message illisible : aucun en-tête ».
    pub reason: String,
}

impl Unparsable {
    fn new(reason: impl fmt::Display) -> Self {
        Unparsable {
            reason: format!("message illisible : {reason}"),
        }
    }
}

/// Reads one raw message (RFC 5322, MIME) into an [`Arrival`].
///
/// The message is quarantined ([`Unparsable`]) when it is empty; when it has
/// no header (binary data, text without a header block); when it has no
/// `From:` address; when a multipart's boundary is missing or never appears
/// (its parts, files included, cannot be told apart); when an attached
/// file's base64 or quoted-printable cannot be decoded, or its part is cut
/// short (no closing boundary); and when neither the topmost `Received:`
/// nor `Date:` gives a valid date. Anything else is read as well as it can
/// be: a missing subject is empty, a missing Message-ID makes the dedup key
/// the raw bytes' digest. Never panics.
pub fn parse(raw: &[u8]) -> Result<Arrival, Unparsable> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(Unparsable::new("message vide"));
    }
    // mail-parser is not known to panic, but a panic on a town's message
    // would stop the whole import: it becomes a quarantine instead.
    std::panic::catch_unwind(|| parse_message(raw)).unwrap_or_else(|_| {
        Err(Unparsable::new(
            "l'analyse du message a échoué (erreur interne de l'analyseur)",
        ))
    })
}

fn parse_message(raw: &[u8]) -> Result<Arrival, Unparsable> {
    let no_header = || Unparsable::new("aucun en-tête");
    let message = MessageParser::new().parse(raw).ok_or_else(no_header)?;
    // mail-parser makes a header of a first line without a colon: a field
    // name is printable ASCII without spaces (RFC 5322, 3.6.8).
    let is_field_name =
        |name: &str| !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    if !message
        .root_part()
        .headers
        .iter()
        .any(|h| is_field_name(h.name.as_str()))
    {
        return Err(no_header());
    }

    let from = message
        .from()
        .and_then(|from| from.first())
        .and_then(|addr| {
            let address = addr.address.as_deref()?.trim();
            address.contains('@').then(|| Sender {
                name: addr
                    .name
                    .as_deref()
                    .map(|name| nfc(name.trim()))
                    .filter(|name| !name.is_empty()),
                address: address.to_string(),
            })
        })
        .ok_or_else(|| Unparsable::new("aucune adresse d'expéditeur (en-tête From)"))?;

    check_mime_tree(&message)?;

    let (received_at, received_source) = reception(&message).ok_or_else(|| {
        Unparsable::new(
            "aucune date de réception valable (ni dans le premier en-tête Received, celui du \
             serveur qui a reçu le message, ni dans l'en-tête Date)",
        )
    })?;

    let raw_sha256 = hex::encode(Sha256::digest(raw));
    let message_id = message
        .message_id()
        .map(|id| {
            id.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
        })
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    let dedup_key = match &message_id {
        Some(id) => format!("message-id:{id}"),
        None => format!("sha256:{raw_sha256}"),
    };

    let mut content = Content::default();
    content.read(&message, 0)?;

    Ok(Arrival {
        message_id,
        dedup_key,
        raw_sha256,
        from,
        subject: message.subject().map(|s| nfc(s.trim())).unwrap_or_default(),
        received_at,
        received_source,
        text: content.text,
        attachments: content.attachments,
    })
}

/// A multipart whose boundary is missing, or never appears, is read by
/// mail-parser as one text: its files would be lost in it.
/// Forwarded messages are checked too.
fn check_mime_tree(message: &mail_parser::Message<'_>) -> Result<(), Unparsable> {
    for part in &message.parts {
        if let PartType::Message(inner) = &part.body {
            check_mime_tree(inner)?;
        }
        let Some(ct) = part.content_type() else {
            continue;
        };
        if !ct.ctype().eq_ignore_ascii_case("multipart") || part.is_multipart() {
            continue;
        }
        return Err(Unparsable::new(match ct.attribute("boundary") {
            Some(boundary) => format!(
                "structure MIME cassée : la frontière « {boundary} » du contenu multipart \
                 n'apparaît jamais"
            ),
            None => "structure MIME cassée : contenu multipart sans frontière (boundary)".into(),
        }));
    }
    Ok(())
}

/// The instant of reception: the date after the last `;` of the topmost
/// `Received:` header, else `Date:`.
fn reception(message: &mail_parser::Message<'_>) -> Option<(DateTime<Utc>, ReceivedSource)> {
    // The headers in the order they are written: the first `Received:` is
    // the topmost (mail-parser's `header_raw` gives the last one).
    let topmost = message
        .root_part()
        .headers
        .iter()
        .find(|h| matches!(h.name, mail_parser::HeaderName::Received));
    let from_received = topmost.and_then(|header| {
        let raw = message
            .raw_message()
            .get(header.offset_start as usize..header.offset_end as usize)?;
        let raw = String::from_utf8_lossy(raw);
        let (_, date) = raw.rsplit_once(';')?;
        mail_parser::DateTime::parse_rfc822(date.trim())
            .or_else(|| header.value.as_received().and_then(|r| r.date()))
            .and_then(to_utc)
    });
    if let Some(at) = from_received {
        return Some((at, ReceivedSource::Received));
    }
    message
        .date()
        .copied()
        .and_then(to_utc)
        .map(|at| (at, ReceivedSource::Date))
}

fn to_utc(date: mail_parser::DateTime) -> Option<DateTime<Utc>> {
    if !date.is_valid() {
        return None;
    }
    let local = NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())?
        .and_hms_opt(date.hour.into(), date.minute.into(), date.second.into())?;
    let offset = i64::from(date.tz_hour) * 3600 + i64::from(date.tz_minute) * 60;
    let offset = if date.tz_before_gmt { -offset } else { offset };
    Some(local.and_utc() - chrono::Duration::seconds(offset))
}

/// The text and files gathered from a message and the messages it forwards.
#[derive(Default)]
struct Content {
    text: String,
    attachments: Vec<Attachment>,
}

/// How deep forwarded messages are followed (mail-parser stops earlier).
const MAX_DEPTH: usize = 16;

impl Content {
    fn read(&mut self, message: &mail_parser::Message<'_>, depth: usize) -> Result<(), Unparsable> {
        for i in 0..message.text_body.len() {
            if let Some(text) = message.body_text(i) {
                self.push_text(&text);
            }
        }
        for part in message.attachments() {
            match &part.body {
                PartType::Message(inner) if depth < MAX_DEPTH => {
                    self.push_text(&forwarded_heading(inner));
                    self.read(inner, depth + 1)?;
                }
                PartType::Multipart(_) => {}
                body => self.push_attachment(part, body)?,
            }
        }
        Ok(())
    }

    /// Adds a text, its lines ended by `\n` (not `\r\n`), trimmed.
    fn push_text(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n");
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.text.push_str(&nfc(text));
    }

    fn push_attachment(
        &mut self,
        part: &mail_parser::MessagePart<'_>,
        body: &PartType<'_>,
    ) -> Result<(), Unparsable> {
        let media_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let number = self.attachments.len() + 1;
        let filename = part
            .attachment_name()
            .and_then(sanitize_filename)
            .unwrap_or_else(|| default_filename(number, &media_type));
        if part.is_encoding_problem {
            // mail-parser says so of content that does not decode, and of a
            // last part whose closing boundary is missing (a message cut
            // short): either way the file may be incomplete.
            return Err(Unparsable::new(format!(
                "la pièce jointe « {filename} » n'a pas pu être décodée ({} invalide, ou \
                 message tronqué)",
                part.content_transfer_encoding().unwrap_or("encodage")
            )));
        }
        let data = match body {
            PartType::Text(text) | PartType::Html(text) => text.as_bytes().to_vec(),
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.to_vec(),
            // A forwarded message too deep to follow is kept as a file.
            PartType::Message(inner) => inner.raw_message().to_vec(),
            PartType::Multipart(_) => return Ok(()),
        };
        self.attachments.push(Attachment {
            filename,
            media_type,
            sha256: hex::encode(Sha256::digest(&data)),
            size: data.len() as u64,
            data,
        });
        Ok(())
    }
}

/// The line put before a forwarded message's text, as mail clients write it.
fn forwarded_heading(inner: &mail_parser::Message<'_>) -> String {
    let mut heading = String::from("---------- Message transféré ----------");
    if let Some(addr) = inner.from().and_then(|f| f.first()) {
        let who = match (addr.name.as_deref(), addr.address.as_deref()) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (Some(name), None) => name.to_string(),
            (None, Some(address)) => address.to_string(),
            (None, None) => String::new(),
        };
        heading.push_str(&format!("\nDe : {who}"));
    }
    if let Some(date) = inner.date().copied().and_then(to_utc) {
        heading.push_str(&format!(
            "\nDate : {}",
            ami_core::french_instant(date, chrono_tz::Europe::Paris)
        ));
    }
    if let Some(subject) = inner.subject() {
        heading.push_str(&format!("\nObjet : {}", subject.trim()));
    }
    heading
}

/// The longest file name kept, in characters (file systems stop at 255
/// bytes; accents take two).
const MAX_FILENAME_CHARS: usize = 120;

/// The name's last path segment, without control or invisible characters,
/// trimmed of spaces and dots; `None` when nothing is left.
pub(crate) fn sanitize_filename(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = nfc(last).chars().filter(|c| !is_hidden_char(*c)).collect();
    let clean = clean.trim_matches(|c: char| c.is_whitespace() || c == '.');
    if clean.is_empty() {
        return None;
    }
    let count = clean.chars().count();
    if count <= MAX_FILENAME_CHARS {
        return Some(clean.to_string());
    }
    // Keep the extension: cut the stem.
    let (stem, ext) = match clean.rsplit_once('.') {
        Some((stem, ext)) if ext.chars().count() <= 10 => (stem, Some(ext)),
        _ => (clean, None),
    };
    let room = MAX_FILENAME_CHARS - ext.map_or(0, |e| e.chars().count() + 1);
    let mut cut: String = stem.chars().take(room).collect();
    if let Some(ext) = ext {
        cut.push('.');
        cut.push_str(ext);
    }
    Some(cut)
}

/// `piece-jointe-<n>.<ext>` for an attachment that has no name.
fn default_filename(number: usize, media_type: &str) -> String {
    let ext = match media_type {
        "application/pdf" => "pdf",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.oasis.opendocument.spreadsheet" => "ods",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/msword" => "doc",
        "application/vnd.oasis.opendocument.text" => "odt",
        "application/rtf" | "text/rtf" => "rtf",
        "application/zip" | "application/x-zip-compressed" => "zip",
        "text/csv" => "csv",
        "text/plain" => "txt",
        "text/html" => "html",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "message/rfc822" => "eml",
        _ => "bin",
    };
    format!("piece-jointe-{number}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_separators_and_control_characters_leave_file_names() {
        assert_eq!(
            sanitize_filename("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            sanitize_filename("C:\\Users\\mairie\\budget.xlsx").as_deref(),
            Some("budget.xlsx")
        );
        assert_eq!(
            sanitize_filename("bud\u{202E}get\n.pdf").as_deref(),
            Some("budget.pdf")
        );
        assert_eq!(sanitize_filename(" .. "), None);
        assert_eq!(sanitize_filename("dossier/"), None);
    }

    #[test]
    fn a_long_file_name_is_cut_before_its_extension() {
        let long = format!("{}.pdf", "é".repeat(300));
        let cut = sanitize_filename(&long).expect("name");
        assert_eq!(cut.chars().count(), MAX_FILENAME_CHARS);
        assert!(cut.ends_with("éé.pdf"));
    }

    #[test]
    fn an_attachment_without_a_name_is_named_from_its_type() {
        assert_eq!(default_filename(1, "application/pdf"), "piece-jointe-1.pdf");
        assert_eq!(
            default_filename(
                2,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            ),
            "piece-jointe-2.xlsx"
        );
        assert_eq!(
            default_filename(3, "application/x-unknown"),
            "piece-jointe-3.bin"
        );
    }
}
