//! The communes of France, their départements and régions, from INSEE's
//! code officiel géographique (COG), and the check of a dossier's code INSEE
//! and commune name against it.
//!
//! The data is embedded in the binary (`data/cog/`, extracted from Etalab's
//! `@etalab/decoupage-administratif` by `scripts/extract-communes.sh`; its
//! `SOURCE.md` gives the version, the tarball's SHA-256 and the licence,
//! Licence Ouverte 2.0) and parsed on first use, with no I/O.
//!
//! Only the communes actuelles are known: Paris is 75056, not its
//! arrondissements municipaux (75101…); a commune déléguée's own code is a
//! former code (see [`successor`]). The communes of the collectivités
//! d'outre-mer (Saint-Pierre-et-Miquelon, Saint-Barthélemy, Saint-Martin,
//! Wallis-et-Futuna, Polynésie française, Nouvelle-Calédonie, the TAAF and
//! Clipperton) are there too; their « département » and « région » are the
//! collectivité's own code ([`Zone::Com`]).
//!
//! ```
//! use ami_core::communes::{check_commune, departement, region, CommuneProblem};
//!
//! let nevers = check_commune("58194", "nevers").unwrap();
//! assert_eq!(nevers.name, "Nevers");
//! assert_eq!(departement(nevers.departement).unwrap().name, "Nièvre");
//! assert_eq!(region(nevers.region).unwrap().name, "Bourgogne-Franche-Comté");
//!
//! let wrong = check_commune("58194", "Never").unwrap_err();
//! assert_eq!(wrong.code(), "commune_incoherente");
//! assert_eq!(wrong.to_string(), "Le code INSEE 58194 est celui de la commune « Nevers », pas de « Never ».");
//! ```

use std::fmt;
use std::sync::LazyLock;

use crate::text::search_key;

/// A commune actuelle of the COG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Commune {
    /// The code INSEE (code officiel géographique), five characters:
    /// « 58194 », « 2A004 », « 97411 ».
    pub code: &'static str,
    /// The official name, with its article: « Nevers », « Le Havre ».
    pub name: &'static str,
    /// The code of its département: « 58 », « 2A », « 974 ».
    pub departement: &'static str,
    /// The code of its région: « 27 », « 94 », « 04 ».
    pub region: &'static str,
}

/// A département of the COG (or, for a collectivité d'outre-mer, the
/// collectivité itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Departement {
    /// « 58 », « 2A », « 974 ».
    pub code: &'static str,
    /// « Nièvre », « Corse-du-Sud », « La Réunion ».
    pub name: &'static str,
    /// The code of its région.
    pub region: &'static str,
}

/// A région of the COG (or, for a collectivité d'outre-mer, the
/// collectivité itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    /// « 27 », « 94 », « 04 ».
    pub code: &'static str,
    /// « Bourgogne-Franche-Comté », « Corse », « La Réunion ».
    pub name: &'static str,
    /// Where it lies.
    pub zone: Zone,
}

/// Where a région lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zone {
    /// Metropolitan France, Corsica included.
    Metropole,
    /// The départements et régions d'outre-mer: Guadeloupe, Martinique,
    /// Guyane, La Réunion, Mayotte.
    Drom,
    /// The collectivités d'outre-mer (and Clipperton, the TAAF), which have
    /// no département or région: the COG gives them the collectivité's code.
    Com,
}

/// Why a code INSEE and a commune name were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommuneProblem {
    /// No commune actuelle has this code.
    Unknown {
        /// The code as given.
        code: String,
        /// When the code is a former one, the commune actuelle that took
        /// it over.
        successor: Option<&'static Commune>,
    },
    /// The code is a commune's, but the name is not its name.
    Mismatch {
        /// The commune the code belongs to.
        expected: &'static Commune,
        /// The name as given.
        given: String,
    },
}

impl CommuneProblem {
    /// A stable code for programs: `commune_inconnue`, `commune_incoherente`.
    pub fn code(&self) -> &'static str {
        match self {
            CommuneProblem::Unknown { .. } => "commune_inconnue",
            CommuneProblem::Mismatch { .. } => "commune_incoherente",
        }
    }

    /// The field of the dossier at fault: `code_insee` for an unknown code,
    /// `commune` for a name that is not the code's.
    pub fn field(&self) -> &'static str {
        match self {
            CommuneProblem::Unknown { .. } => "code_insee",
            CommuneProblem::Mismatch { .. } => "commune",
        }
    }
}

/// The explanation in French, for the person who typed the dossier.
impl fmt::Display for CommuneProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommuneProblem::Unknown { code, successor } => {
                write!(
                    f,
                    "Le code INSEE {code} ne correspond à aucune commune du code officiel \
                     géographique (COG {})",
                    cog_year()
                )?;
                match successor {
                    Some(now) => write!(
                        f,
                        " : c'est un ancien code, remplacé par {} (commune « {} »).",
                        now.code, now.name
                    ),
                    None => f.write_str("."),
                }
            }
            CommuneProblem::Mismatch { expected, given } => write!(
                f,
                "Le code INSEE {} est celui de la commune « {} », pas de « {} ».",
                expected.code,
                expected.name,
                given.trim()
            ),
        }
    }
}

impl std::error::Error for CommuneProblem {}

/// The commune actuelle of this code INSEE, if there is one. The code is
/// taken as given: « 2a004 » or « 58194 » with spaces are not codes.
pub fn commune(code: &str) -> Option<&'static Commune> {
    let cog = &*COG;
    let i = cog.communes.binary_search_by(|c| c.code.cmp(code)).ok()?;
    Some(&cog.communes[i])
}

/// Every commune actuelle, sorted by code.
pub fn communes() -> &'static [Commune] {
    &COG.communes
}

/// The département of this code (« 58 », « 2A », « 974 »).
pub fn departement(code: &str) -> Option<&'static Departement> {
    COG.departements.iter().find(|d| d.code == code)
}

/// Every département, sorted by code.
pub fn departements() -> &'static [Departement] {
    &COG.departements
}

/// The région of this code (« 27 », « 94 », « 04 »).
pub fn region(code: &str) -> Option<&'static Region> {
    COG.regions.iter().find(|r| r.code == code)
}

/// Every région, sorted by code.
pub fn regions() -> &'static [Region] {
    &COG.regions
}

/// The commune actuelle that took over a former code: a commune merged
/// into a commune nouvelle (« 01340 », Saint-Bois, is now part of 01015,
/// Arboys en Bugey), or renumbered (Ajaccio was 20004 before Corsica's two
/// départements, 2A004 since). `None` for a current code or an unknown one.
pub fn successor(former_code: &str) -> Option<&'static Commune> {
    let cog = &*COG;
    let i = cog
        .former
        .binary_search_by(|(old, _)| (*old).cmp(former_code))
        .ok()?;
    Some(&cog.communes[cog.former[i].1])
}

/// The year of the COG the data comes from, e.g. « 2026 ».
pub fn cog_year() -> &'static str {
    COG.year
}

/// The version of `@etalab/decoupage-administratif` the data was
/// extracted from.
pub fn source_version() -> &'static str {
    COG.version
}

/// The commune of a dossier's code INSEE, when `name` is its name.
///
/// Names are compared as people type them: accents, case, hyphens,
/// apostrophes (straight or typographic), spaces and Unicode forms (NFC or
/// NFD) aside, so « saint etienne » and « SAINT-ÉTIENNE » are Saint-Étienne.
/// The article of the COG's name may be left out or put after the name
/// (« Havre » and « Havre (Le) » are Le Havre). Abbreviations are not
/// names: « St-Étienne » is refused, with « Saint-Étienne » in the message.
/// The code is taken as given (no trimming).
pub fn check_commune(code: &str, name: &str) -> Result<&'static Commune, CommuneProblem> {
    let Some(found) = commune(code) else {
        return Err(CommuneProblem::Unknown {
            code: code.to_string(),
            successor: successor(code),
        });
    };
    if names_match(found.name, name) {
        Ok(found)
    } else {
        Err(CommuneProblem::Mismatch {
            expected: found,
            given: name.to_string(),
        })
    }
}

/// Whether `typed` names the commune whose official name is `official`, in
/// the sense of [`check_commune`].
pub fn names_match(official: &str, typed: &str) -> bool {
    let typed = compact(typed);
    if typed.is_empty() {
        return false;
    }
    if typed == compact(official) {
        return true;
    }
    match split_article(official) {
        Some((article, bare)) => {
            let bare = compact(bare);
            typed == bare || typed == format!("{bare}{}", compact(article))
        }
        None => false,
    }
}

/// The folded name with no space left: « Saint-Étienne », « saint etienne »
/// and « Saint Étienne » are all `saintetienne`.
fn compact(name: &str) -> String {
    search_key(name).replace(' ', "")
}

/// The COG writes a name's article first (« Le Havre », « L'Isle-Adam »,
/// « Les Abymes »; Occitan « Las » and « Los », « Aux »).
fn split_article(name: &str) -> Option<(&str, &str)> {
    ["Le ", "La ", "Les ", "L'", "Aux ", "Las ", "Los "]
        .iter()
        .find_map(|article| {
            let bare = name.strip_prefix(article)?;
            Some((&name[..article.len()], bare))
        })
}

const COMMUNES_TSV: &str = include_str!("../data/cog/communes.tsv");
const DEPARTEMENTS_TSV: &str = include_str!("../data/cog/departements.tsv");
const REGIONS_TSV: &str = include_str!("../data/cog/regions.tsv");
const FORMER_TSV: &str = include_str!("../data/cog/anciens-codes.tsv");
const SOURCE_TSV: &str = include_str!("../data/cog/source.tsv");

struct Cog {
    communes: Vec<Commune>,
    departements: Vec<Departement>,
    regions: Vec<Region>,
    /// Former code, index in `communes` of its successor; sorted by code.
    former: Vec<(&'static str, usize)>,
    year: &'static str,
    version: &'static str,
}

static COG: LazyLock<Cog> = LazyLock::new(parse);

/// The embedded files' records, after their header, split at tabs. The
/// files are checked by `tests/communes.rs`: a malformed one panics there.
fn records<const N: usize>(
    file: &'static str,
    header: &str,
) -> impl Iterator<Item = [&'static str; N]> {
    let mut lines = file.lines();
    assert_eq!(lines.next(), Some(header), "embedded COG file header");
    lines.map(move |line| {
        let mut fields = line.split('\t');
        let record = std::array::from_fn(|_| fields.next().expect("embedded COG field"));
        assert!(fields.next().is_none(), "embedded COG line: {line}");
        record
    })
}

fn parse() -> Cog {
    let communes: Vec<Commune> = records(COMMUNES_TSV, "code\tnom\tdepartement\tregion")
        .map(|[code, name, departement, region]| Commune {
            code,
            name,
            departement,
            region,
        })
        .collect();
    let departements = records(DEPARTEMENTS_TSV, "code\tnom\tregion")
        .map(|[code, name, region]| Departement { code, name, region })
        .collect();
    let regions = records(REGIONS_TSV, "code\tnom\tzone")
        .map(|[code, name, zone]| Region {
            code,
            name,
            zone: match zone {
                "metro" => Zone::Metropole,
                "drom" => Zone::Drom,
                "com" => Zone::Com,
                other => panic!("embedded COG zone {other}"),
            },
        })
        .collect();
    assert!(
        communes.is_sorted_by(|a, b| a.code < b.code),
        "embedded communes sorted by code"
    );
    let former = records(FORMER_TSV, "code\tcommune")
        .map(|[old, now]| {
            let i = communes
                .binary_search_by(|c| c.code.cmp(now))
                .expect("a former code's successor is a commune");
            (old, i)
        })
        .collect();
    let source = |key: &str| {
        SOURCE_TSV
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('\t'))
            .expect("embedded COG source")
    };
    Cog {
        communes,
        departements,
        regions,
        former,
        year: source("cog"),
        version: source("version"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_may_be_left_out_or_put_after_the_name() {
        assert!(names_match("Le Havre", "Le Havre"));
        assert!(names_match("Le Havre", "havre"));
        assert!(names_match("Le Havre", "Havre (Le)"));
        assert!(names_match("L'Isle-Adam", "L’Isle Adam"));
        assert!(names_match("L'Isle-Adam", "Isle-Adam"));
        assert!(names_match("Les Abymes", "Abymes"));
        assert!(!names_match("Le Havre", "La Havre"));
        assert!(!names_match("Nevers", "Le Nevers"));
    }

    #[test]
    fn abbreviations_and_empty_names_do_not_match() {
        assert!(!names_match("Saint-Étienne", "St-Étienne"));
        assert!(!names_match("Sainte-Maxime", "Ste Maxime"));
        assert!(!names_match("Nevers", ""));
        assert!(!names_match("Nevers", " - "));
    }

    #[test]
    fn spaces_hyphens_and_unicode_forms_are_folded() {
        assert!(names_match("Saint-Étienne", "SaintEtienne"));
        assert!(names_match("Saint-Étienne", "Saint Étienne"));
        assert!(names_match("Saint-Étienne", "Saint-E\u{301}tienne"));
        assert!(names_match("Bœurs-en-Othe", "Boeurs en Othe"));
    }
}
