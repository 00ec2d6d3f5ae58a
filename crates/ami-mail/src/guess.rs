//! What an arrival probably is, proposed to the agent who registers it:
//! which attachment is the budget prévisionnel and which the dossier de
//! candidature, which commune sends it, and which dossier it completes.
//! Nothing here is decided: every guess is shown and may be changed.
//!
//! # Pièces
//!
//! The budget is the attachment whose file name, accents and case aside,
//! holds `budget`, `previsionnel`, `financement` or `financier`; else a
//! text attachment (CSV, plain text) whose content holds `budget`; else the
//! only spreadsheet (XLSX, XLS, ODS, CSV). The dossier de candidature is
//! another document (PDF, Word, OpenDocument text, RTF): the one whose name
//! holds `candidature` or `dossier`, else the only document left. Images
//! (a mairie's logo in its signature) are never proposed.
//!
//! # Commune
//!
//! The subject's words, accents, case and punctuation aside, are compared
//! with the names of the communes of France (COG); the longest name found
//! wins (« Saint-Dié-des-Vosges » before « Die »). A name shared by several
//! communes (there are many « Saint-Denis ») is proposed only when the
//! subject also gives one of their départements, by its code in brackets
//! (« Saint-Denis (974) »), by its name (« La Réunion ») or by a postcode
//! (« 93200 »); else nothing is proposed. Words that are names of communes
//! but mostly mean something else in a subject (« Ville », « Mars »,
//! « Rue », « Maire » for Mairé, « Le Bourg »…) are not read as communes.
//! When the subject names none, the sender's domain is read the same way:
//! `mairie-nevers.fr`, `ville-chateauroux.fr`, `chateau-thierry.fr`,
//! `saintdiedesvosges.fr`, with the words `mairie`, `ville`, `commune` and
//! `de` aside; webmail domains (`orange.fr`,
//! `gmail.com`…) name no commune.
//!
//! # Reference
//!
//! The first word of the subject shaped like a dossier reference, as
//! `ami-core` builds them: a prefix of letters and digits, `-V` and the wave,
//! `-` and a number of four digits or more (`AMI2-V1-0007`), in any case;
//! proposed upper case.

use std::collections::HashMap;
use std::sync::LazyLock;

use ami_core::communes::{communes, departement, Commune};
use ami_core::text::search_key;

use crate::Arrival;

/// What an arrival probably is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guesses {
    /// The index in `arrival.attachments` proposed as the budget
    /// prévisionnel (pièce `budget_previsionnel`).
    pub budget: Option<usize>,
    /// The index in `arrival.attachments` proposed as the dossier de
    /// candidature (pièce `dossier_candidature`).
    pub dossier: Option<usize>,
    /// The commune that probably sends it.
    pub commune: Option<CommuneGuess>,
    /// The reference of an existing dossier the message names, to attach
    /// the message to it.
    pub reference: Option<String>,
}

/// A commune proposed for an arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommuneGuess {
    /// Its code INSEE (« 58194 »).
    pub code_insee: String,
    /// Its official name (« Nevers »).
    pub nom: String,
}

impl From<&Commune> for CommuneGuess {
    fn from(c: &Commune) -> Self {
        CommuneGuess {
            code_insee: c.code.to_string(),
            nom: c.name.to_string(),
        }
    }
}

/// Every guess for an arrival; see the module's documentation for the rules.
pub fn guess(arrival: &Arrival) -> Guesses {
    let (budget, dossier) = guess_pieces(arrival);
    Guesses {
        budget,
        dossier,
        commune: guess_commune(&arrival.subject, &arrival.from.address),
        reference: guess_reference(&arrival.subject),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FileClass {
    Document,
    Spreadsheet,
    Text,
    Other,
}

fn classify(filename: &str, media_type: &str) -> FileClass {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match (media_type, ext.as_str()) {
        (_, "pdf" | "doc" | "docx" | "odt" | "rtf")
        | ("application/pdf" | "application/msword" | "application/rtf", _)
        | ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", _)
        | ("application/vnd.oasis.opendocument.text", _) => FileClass::Document,
        (_, "xlsx" | "xls" | "ods" | "csv")
        | ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _)
        | ("application/vnd.ms-excel" | "application/vnd.oasis.opendocument.spreadsheet", _)
        | ("text/csv", _) => FileClass::Spreadsheet,
        (t, _) if t.starts_with("text/") => FileClass::Text,
        _ => FileClass::Other,
    }
}

fn name_has(filename: &str, words: &[&str]) -> bool {
    let key = search_key(filename);
    key.split(' ')
        .any(|w| words.iter().any(|word| w.starts_with(word)))
}

fn guess_pieces(arrival: &Arrival) -> (Option<usize>, Option<usize>) {
    let files: Vec<(usize, FileClass, &str)> = arrival
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| (i, classify(&a.filename, &a.media_type), a.filename.as_str()))
        .filter(|(_, class, _)| *class != FileClass::Other)
        .collect();
    let says_budget = |name: &str| {
        name_has(
            name,
            &["budget", "previsionnel", "financement", "financier"],
        )
    };
    let text_says_budget = |i: usize| {
        let data = &arrival.attachments[i].data;
        let head = &data[..data.len().min(64 * 1024)];
        search_key(&String::from_utf8_lossy(head))
            .split(' ')
            .any(|w| w.starts_with("budget"))
    };
    let only = |mut found: Vec<usize>| (found.len() == 1).then(|| found.remove(0));

    let budget = files
        .iter()
        .find(|(_, _, name)| says_budget(name))
        .map(|(i, ..)| *i)
        .or_else(|| {
            files
                .iter()
                .find(|(i, class, _)| {
                    matches!(class, FileClass::Text | FileClass::Spreadsheet)
                        && arrival.attachments[*i].media_type.starts_with("text/")
                        && text_says_budget(*i)
                })
                .map(|(i, ..)| *i)
        })
        .or_else(|| {
            only(
                files
                    .iter()
                    .filter(|(_, class, _)| *class == FileClass::Spreadsheet)
                    .map(|(i, ..)| *i)
                    .collect(),
            )
        });

    let documents: Vec<(usize, &str)> = files
        .iter()
        .filter(|(i, class, _)| *class == FileClass::Document && Some(*i) != budget)
        .map(|(i, _, name)| (*i, *name))
        .collect();
    let dossier = documents
        .iter()
        .find(|(_, name)| name_has(name, &["candidature", "dossier"]))
        .map(|(i, _)| *i)
        .or_else(|| only(documents.iter().map(|(i, _)| *i).collect()));
    (budget, dossier)
}

/// Names of communes that mostly mean something else in a subject or a
/// domain, as search keys.
const NOT_COMMUNES: &[&str] = &[
    "ville", "vue", "bourg", "port", "mars", "avril", "rue", "eu", "y", "plan", "pont", "cours",
    "bar", "mer", "maire", "le bourg", "le plan",
];

/// Words of a domain that say « town hall » rather than which one.
const DOMAIN_NOISE: &[&str] = &["mairie", "ville", "commune", "de", "d", "cc", "www", "mail"];

/// Domains of webmail providers: their names say nothing of the sender's
/// commune (and `orange` is one).
const WEBMAIL: &[&str] = &[
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "sfr.fr",
    "neuf.fr",
    "laposte.net",
    "gmail.com",
    "googlemail.com",
    "yahoo.fr",
    "yahoo.com",
    "hotmail.fr",
    "hotmail.com",
    "outlook.fr",
    "outlook.com",
    "live.fr",
    "msn.com",
    "icloud.com",
    "aol.com",
    "bbox.fr",
    "numericable.fr",
    "protonmail.com",
    "proton.me",
    "gouv.fr",
];

/// The words of a subject read for a commune.
const MAX_SUBJECT_WORDS: usize = 64;

/// The longest name of a commune, in words.
const MAX_WORDS: usize = 10;

struct Index {
    /// Search key of the name (« saint die des vosges ») → communes.
    by_words: HashMap<String, Vec<&'static Commune>>,
    /// The same key without spaces (« saintdiedesvosges ») → communes.
    by_compact: HashMap<String, Vec<&'static Commune>>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let mut by_words: HashMap<String, Vec<&'static Commune>> = HashMap::new();
    let mut by_compact: HashMap<String, Vec<&'static Commune>> = HashMap::new();
    for c in communes() {
        let key = search_key(c.name);
        by_compact.entry(key.replace(' ', "")).or_default().push(c);
        by_words.entry(key).or_default().push(c);
    }
    Index {
        by_words,
        by_compact,
    }
});

/// The commune of a subject, else of a sender's address; see the module's
/// documentation.
pub fn guess_commune(subject: &str, sender_address: &str) -> Option<CommuneGuess> {
    let subject_key = search_key(subject);
    // A subject is a line; a longer one is cut, so that a hostile one costs
    // no more than a long one.
    let words: Vec<&str> = subject_key
        .split(' ')
        .filter(|w| !w.is_empty())
        .take(MAX_SUBJECT_WORDS)
        .collect();
    let candidates = subject_candidates(&words).or_else(|| domain_candidates(sender_address))?;
    pick(&candidates, subject, &words).map(CommuneGuess::from)
}

/// One commune among namesakes: the only one, or the only one whose
/// département the subject gives.
fn pick(
    candidates: &[&'static Commune],
    subject: &str,
    words: &[&str],
) -> Option<&'static Commune> {
    if let [one] = candidates {
        return Some(one);
    }
    let joined = format!(" {} ", words.join(" "));
    let subject = subject.to_ascii_lowercase().replace(' ', "");
    let in_departement: Vec<_> = candidates
        .iter()
        .filter(|c| {
            let code = c.departement.to_ascii_lowercase();
            let name = departement(c.departement).map(|d| search_key(d.name));
            subject.contains(&format!("({code})"))
                || words.iter().any(|w| is_postcode_of(w, &code))
                || name.is_some_and(|n| joined.contains(&format!(" {n} ")))
        })
        .collect();
    match in_departement.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

/// Whether a word is a postcode of this département: `58000` for `58`
/// (Corsica's postcodes begin with 20, not with 2A or 2B).
fn is_postcode_of(word: &str, departement: &str) -> bool {
    word.len() == 5
        && word.bytes().all(|b| b.is_ascii_digit())
        && departement.bytes().all(|b| b.is_ascii_digit())
        && word.starts_with(departement)
}

/// The communes of the longest name found in the words.
fn subject_candidates(words: &[&str]) -> Option<Vec<&'static Commune>> {
    let index = &*INDEX;
    let mut best: Option<(usize, &str, &Vec<&'static Commune>)> = None;
    let mut keys: Vec<String> = Vec::new();
    for start in 0..words.len() {
        for len in 1..=MAX_WORDS.min(words.len() - start) {
            let key = words[start..start + len].join(" ");
            if NOT_COMMUNES.contains(&key.as_str()) {
                continue;
            }
            keys.push(key);
        }
    }
    for key in &keys {
        let Some(found) = index.by_words.get(key) else {
            continue;
        };
        let longer = best.is_none_or(|(chars, best_key, _)| {
            key.len() > chars || (key.len() == chars && key.as_str() < best_key)
        });
        if longer {
            best = Some((key.len(), key, found));
        }
    }
    best.map(|(_, _, found)| found.clone())
}

/// The communes the address's domain names, if any.
fn domain_candidates(address: &str) -> Option<Vec<&'static Commune>> {
    let domain = address.rsplit_once('@')?.1.trim().to_ascii_lowercase();
    if WEBMAIL
        .iter()
        .any(|w| domain == *w || domain.ends_with(&format!(".{w}")))
    {
        return None;
    }
    // The label before the top-level domain: `mairie-nevers` of
    // `mail.mairie-nevers.fr`.
    let mut labels: Vec<&str> = domain.split('.').collect();
    labels.pop();
    let label = *labels.last()?;
    let words: Vec<&str> = label
        .split(['-', '_'])
        .filter(|w| !w.is_empty() && !DOMAIN_NOISE.contains(w))
        .collect();
    let compact: String = words.concat();
    let compact = compact
        .strip_prefix("mairiede")
        .or_else(|| compact.strip_prefix("villede"))
        .or_else(|| compact.strip_prefix("mairie"))
        .or_else(|| compact.strip_prefix("ville"))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(&compact);
    if compact.is_empty() || NOT_COMMUNES.contains(&compact) {
        return None;
    }
    INDEX.by_compact.get(compact).cloned()
}

/// The first dossier reference in a subject: `AMI2-V1-0007`.
pub fn guess_reference(subject: &str) -> Option<String> {
    subject
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find_map(reference_in)
}

/// A reference at the end of a token (`Réf.AMI2-V1-0007` has been split
/// before): the last three `-` parts.
fn reference_in(token: &str) -> Option<String> {
    let token = token.trim_matches('-');
    let mut parts = token.rsplitn(3, '-');
    let number = parts.next()?;
    let wave = parts.next()?;
    let prefix = parts.next()?;
    let prefix = prefix.rsplit('-').next()?;
    let wave_digits = wave.strip_prefix(['V', 'v'])?;
    let ok = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix.chars().all(|c| c.is_ascii_alphanumeric())
        && prefix.chars().any(|c| c.is_ascii_alphabetic())
        && !wave_digits.is_empty()
        && wave_digits.len() <= 3
        && wave_digits.chars().all(|c| c.is_ascii_digit())
        && (4..=20).contains(&number.len())
        && number.chars().all(|c| c.is_ascii_digit());
    ok.then(|| format!("{prefix}-V{wave_digits}-{number}").to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_in_any_case_and_proposed_upper_case() {
        assert_eq!(
            guess_reference("Complément dossier AMI2-V1-0007 (budget)").as_deref(),
            Some("AMI2-V1-0007")
        );
        assert_eq!(
            guess_reference("RE: ami2-v3-1234").as_deref(),
            Some("AMI2-V3-1234")
        );
        assert_eq!(
            guess_reference("Réf. :AMI2-V2-0042.").as_deref(),
            Some("AMI2-V2-0042")
        );
        assert_eq!(guess_reference("AMI2-V1-07"), None);
        assert_eq!(guess_reference("Candidature AMI 2 - V1"), None);
        assert_eq!(guess_reference(""), None);
    }

    #[test]
    fn domains_of_town_halls_name_their_commune() {
        let name = |address: &str| {
            domain_candidates(address).map(|c| c.iter().map(|c| c.name).collect::<Vec<_>>())
        };
        assert_eq!(name("dgs@mairie-nevers.fr"), Some(vec!["Nevers"]));
        assert_eq!(
            name("accueil@ville-chateauroux.fr"),
            Some(vec!["Châteauroux"])
        );
        assert_eq!(
            name("cnam@chateau-thierry.fr"),
            Some(vec!["Château-Thierry"])
        );
        assert_eq!(
            name("x@mail.saintdiedesvosges.fr"),
            Some(vec!["Saint-Dié-des-Vosges"])
        );
        assert_eq!(name("jean.dupont@orange.fr"), None);
        assert_eq!(name("no-at-sign"), None);
    }
}
