//! The journal's proofs: the global digest chain and its head, the audit
//! that checks every chain and every projection against the journal, and the
//! rebuild of projections that refuses to lose a step unless told.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A group of the kept counts: wave, state, programmes, awaiting.
type CountKey = (i64, String, String, String);
use std::fmt;

use ami_core::{apply, awaiting, fold, Definition, Dossier, Event};

use crate::{chain_digest, list_column, micros, search_column, to_i64, StoreError, GENESIS_DIGEST};

/// The head of the global chain: the place of the last event in commit
/// order and its global digest. An agency that keeps it can later prove
/// that nothing up to it changed (`ami audit verify --since-head`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalHead {
    pub seq: i64,
    pub digest: String,
}

impl fmt::Display for GlobalHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.digest)
    }
}

impl std::str::FromStr for GlobalHead {
    type Err = String;

    /// `SEQ:DIGEST`, as `ami audit head` prints it.
    fn from_str(s: &str) -> Result<GlobalHead, String> {
        let (seq, digest) = s
            .split_once(':')
            .ok_or_else(|| "tête attendue sous la forme SEQ:EMPREINTE".to_string())?;
        let seq: i64 = seq
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("numéro de séquence illisible « {seq} »"))?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("l'empreinte compte 64 caractères hexadécimaux".into());
        }
        Ok(GlobalHead {
            seq,
            digest: digest.to_ascii_lowercase(),
        })
    }
}

/// Something the audit found that does not match the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditFinding {
    /// An event's digest does not chain to the previous event of its
    /// dossier (edited, inserted or removed in the middle), or its body does
    /// not name its own dossier and sequence number.
    BrokenLink { dossier_id: String, seq: i64 },
    /// An event's body no longer reads as an event, or its dossier's journal
    /// does not fold (out of sequence, no creation first).
    UnreadableEvent {
        dossier_id: String,
        seq: i64,
        reason: String,
    },
    /// The global chain breaks at this place: a missing place, or a global
    /// digest that does not cover the previous one.
    GlobalChainBroken { global_seq: i64 },
    /// An event that has no place in the global chain and is not waiting
    /// for one: written behind the service's back.
    OutsideTheChain { dossier_id: String, seq: i64 },
    /// The recorded head is not the last event of the chain: events after
    /// it were removed, or it was edited.
    HeadMismatch {
        recorded: GlobalHead,
        last: GlobalHead,
    },
    /// A head kept by someone is no longer in the chain as it was.
    KeptHeadChanged {
        kept: GlobalHead,
        now: Option<String>,
    },
    /// A projection differs from the fold of its journal.
    ProjectionDiffers {
        dossier_id: String,
        reference: String,
        what: String,
    },
    /// A projection whose dossier has no event at all.
    ProjectionWithoutJournal {
        dossier_id: String,
        reference: String,
    },
    /// A dossier with events but no projection.
    JournalWithoutProjection { dossier_id: String },
    /// The counts kept for the dashboard differ from the dossiers
    /// (`what`: the group and both numbers).
    CountsDiffer { what: String },
    /// A pièce's file is not in the file storage.
    PieceMissing {
        reference: String,
        kind: String,
        version: u32,
        sha256: String,
    },
    /// A pièce's file is there but its content is not the one recorded.
    PieceAltered {
        reference: String,
        kind: String,
        version: u32,
        recorded: String,
        found: String,
    },
}

impl fmt::Display for AuditFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditFinding::BrokenLink { dossier_id, seq } => write!(
                f,
                "dossier {dossier_id}, événement {seq} : l'empreinte ne correspond pas (événement modifié, inséré ou retiré)"
            ),
            AuditFinding::UnreadableEvent {
                dossier_id,
                seq,
                reason,
            } => write!(f, "dossier {dossier_id}, événement {seq} : illisible ({reason})"),
            AuditFinding::GlobalChainBroken { global_seq } => write!(
                f,
                "chaîne globale rompue à la position {global_seq} (événement retiré ou modifié)"
            ),
            AuditFinding::OutsideTheChain { dossier_id, seq } => write!(
                f,
                "dossier {dossier_id}, événement {seq} : hors de la chaîne globale (ajouté en dehors du service)"
            ),
            AuditFinding::HeadMismatch { recorded, last } => write!(
                f,
                "la tête enregistrée ({recorded}) n'est pas le dernier événement de la chaîne ({last}) : des événements ont été retirés en fin de journal"
            ),
            AuditFinding::KeptHeadChanged { kept, now } => match now {
                None => write!(
                    f,
                    "la tête conservée {kept} n'existe plus : le journal a perdu des événements"
                ),
                Some(d) => write!(
                    f,
                    "la tête conservée {kept} a changé : la position {} porte maintenant l'empreinte {d}",
                    kept.seq
                ),
            },
            AuditFinding::ProjectionDiffers {
                dossier_id,
                reference,
                what,
            } => write!(
                f,
                "dossier {reference} ({dossier_id}) : la projection diffère du journal ({what})"
            ),
            AuditFinding::ProjectionWithoutJournal {
                dossier_id,
                reference,
            } => write!(
                f,
                "dossier {reference} ({dossier_id}) : projection sans aucun événement au journal"
            ),
            AuditFinding::PieceMissing {
                reference,
                kind,
                version,
                sha256,
            } => write!(
                f,
                "dossier {reference}, pièce {kind} version {version} : fichier absent du stockage (sha256 {sha256})"
            ),
            AuditFinding::PieceAltered {
                reference,
                kind,
                version,
                recorded,
                found,
            } => write!(
                f,
                "dossier {reference}, pièce {kind} version {version} : le contenu stocké a changé (sha256 enregistré {recorded}, relu {found})"
            ),
            AuditFinding::CountsDiffer { what } => write!(
                f,
                "compteurs du tableau de bord différents des dossiers : {what}"
            ),
            AuditFinding::JournalWithoutProjection { dossier_id } => write!(
                f,
                "dossier {dossier_id} : des événements au journal mais aucune projection"
            ),
        }
    }
}

/// What `ami audit verify` checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub dossiers: u64,
    pub events: u64,
    pub head: Option<GlobalHead>,
    /// Events committed during the audit, not placed in the global chain
    /// yet (the next sealing places them).
    pub pending: u64,
    pub findings: Vec<AuditFinding>,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// What `ami rebuild` did, or would have done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub rebuilt: u64,
    /// Dossiers whose projection is ahead of their journal (reference,
    /// projected version, journal version; 0 when no event is left): a
    /// rebuild takes them back to what the journal holds.
    pub shortened: Vec<(String, i64, i64)>,
    /// False when the rebuild was refused to keep those steps.
    pub applied: bool,
}

/// A projection row as stored, every column the list and the transitions
/// rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionRow {
    pub reference: String,
    pub wave: i64,
    pub state: String,
    pub version: i64,
    pub programmes: String,
    pub search: String,
    pub awaiting: String,
    pub received_at_us: i64,
    pub updated_at_us: i64,
    pub last_digest: String,
    pub code_insee: String,
    /// The dossier's projection as JSON.
    pub body: String,
}

impl ProjectionRow {
    /// The row the fold of a journal should have produced.
    pub fn expected(def: &Definition, d: &Dossier, last_digest: &str) -> ProjectionRow {
        ProjectionRow {
            reference: d.reference.to_string(),
            wave: i64::from(d.wave),
            state: d.state.to_string(),
            version: to_i64(d.version),
            programmes: list_column(d.programmes.iter().map(|p| p.as_str())),
            search: search_column(d),
            awaiting: list_column(awaiting(def, d).into_iter()),
            received_at_us: micros(d.received_at),
            updated_at_us: micros(d.updated_at),
            last_digest: last_digest.to_string(),
            code_insee: d.code_insee.to_string(),
            body: String::new(),
        }
    }

    /// The first column that differs from `expected`, by name.
    fn differs_from(&self, expected: &ProjectionRow, folded: &Dossier) -> Option<String> {
        let columns: [(&str, String, String); 11] = [
            (
                "version",
                self.version.to_string(),
                expected.version.to_string(),
            ),
            (
                "last_digest",
                self.last_digest.clone(),
                expected.last_digest.clone(),
            ),
            ("state", self.state.clone(), expected.state.clone()),
            (
                "reference",
                self.reference.clone(),
                expected.reference.clone(),
            ),
            ("wave", self.wave.to_string(), expected.wave.to_string()),
            (
                "programmes",
                self.programmes.clone(),
                expected.programmes.clone(),
            ),
            ("awaiting", self.awaiting.clone(), expected.awaiting.clone()),
            ("search", self.search.clone(), expected.search.clone()),
            (
                "code_insee",
                self.code_insee.clone(),
                expected.code_insee.clone(),
            ),
            (
                "received_at_us",
                self.received_at_us.to_string(),
                expected.received_at_us.to_string(),
            ),
            (
                "updated_at_us",
                self.updated_at_us.to_string(),
                expected.updated_at_us.to_string(),
            ),
        ];
        if let Some((name, stored, wanted)) = columns.iter().find(|(_, a, b)| a != b) {
            return Some(format!("{name} : « {stored} » au lieu de « {wanted} »"));
        }
        match serde_json::from_str::<Dossier>(&self.body) {
            Ok(d) if d == *folded => None,
            Ok(_) => Some("contenu (body) différent".into()),
            Err(e) => Some(format!("contenu (body) illisible : {e}")),
        }
    }
}

/// The audit's reasoning, fed by a backend with what it reads from one
/// consistent snapshot, in this order: every projection, every event in
/// (dossier, seq) order, every place of the global chain in order, the
/// recorded head, the pending count, the events outside the chain. The
/// backend reads; this decides what is wrong.
pub struct Audit<'a> {
    def: &'a Definition,
    /// The dossiers per counted group, from the projections.
    counted: BTreeMap<CountKey, i64>,
    /// The counts as kept, when the backend keeps them.
    kept_counts: Option<BTreeMap<CountKey, i64>>,
    kept: Option<&'a GlobalHead>,
    report: AuditReport,
    projections: HashMap<String, ProjectionRow>,
    current: Option<DossierCheck>,
    last: GlobalHead,
    broken: bool,
    kept_found: bool,
}

impl<'a> Audit<'a> {
    pub fn new(def: &'a Definition, kept: Option<&'a GlobalHead>) -> Audit<'a> {
        Audit {
            def,
            counted: BTreeMap::new(),
            kept_counts: None,
            kept,
            report: AuditReport::default(),
            projections: HashMap::new(),
            current: None,
            last: GlobalHead {
                seq: 0,
                digest: GENESIS_DIGEST.to_string(),
            },
            broken: false,
            kept_found: kept.is_some_and(|k| k.seq == 0 && k.digest == GENESIS_DIGEST),
        }
    }

    /// A dossier's projection as stored.
    pub fn projection(&mut self, dossier_id: String, row: ProjectionRow) {
        let key = (
            row.wave,
            row.state.clone(),
            row.programmes.clone(),
            row.awaiting.clone(),
        );
        *self.counted.entry(key).or_default() += 1;
        self.projections.insert(dossier_id, row);
    }

    /// A row of the counts the store keeps (wave, state, programmes,
    /// awaiting, number of dossiers), to be checked against the
    /// projections.
    pub fn kept_count(
        &mut self,
        wave: i64,
        state: String,
        programmes: String,
        awaiting: String,
        n: i64,
    ) {
        let counts = self.kept_counts.get_or_insert_with(BTreeMap::new);
        if n != 0 {
            *counts
                .entry((wave, state, programmes, awaiting))
                .or_default() += n;
        }
    }

    /// An event, in (dossier, seq) order; `body` is the canonical JSON the
    /// digest covers.
    pub fn event(&mut self, dossier_id: &str, seq: i64, body: &str, digest: String) {
        self.report.events += 1;
        if self.current.as_ref().is_none_or(|c| c.id != dossier_id) {
            if let Some(done) = self.current.take() {
                done.finish(self.def, &mut self.projections, &mut self.report);
            }
            self.report.dossiers += 1;
            self.current = Some(DossierCheck::new(dossier_id.to_string()));
        }
        if let Some(c) = self.current.as_mut() {
            c.push(seq, body, digest, &mut self.report);
        }
    }

    /// Ends the dossiers' journals: what is left of the projections has no
    /// journal.
    fn end_of_journal(&mut self) {
        if let Some(done) = self.current.take() {
            done.finish(self.def, &mut self.projections, &mut self.report);
        }
        let mut orphans: Vec<(String, ProjectionRow)> = self.projections.drain().collect();
        orphans.sort_by(|a, b| a.1.reference.cmp(&b.1.reference));
        for (dossier_id, p) in orphans {
            self.report
                .findings
                .push(AuditFinding::ProjectionWithoutJournal {
                    dossier_id,
                    reference: p.reference,
                });
        }
    }

    /// A place of the global chain, in order. `event_digest` is `None`
    /// when the place's event is gone: the chain breaks there.
    pub fn chain_place(
        &mut self,
        global_seq: i64,
        event_digest: Option<&str>,
        global_digest: String,
    ) {
        if !self.projections.is_empty() || self.current.is_some() {
            self.end_of_journal();
        }
        let links =
            event_digest.is_some_and(|d| chain_digest(&self.last.digest, d) == global_digest);
        if !self.broken && (global_seq != self.last.seq + 1 || !links) {
            self.report.findings.push(AuditFinding::GlobalChainBroken {
                global_seq: self.last.seq + 1,
            });
            self.broken = true;
        }
        if let Some(k) = self.kept.filter(|k| k.seq == global_seq) {
            self.kept_found = true;
            if k.digest != global_digest {
                self.report.findings.push(AuditFinding::KeptHeadChanged {
                    kept: k.clone(),
                    now: Some(global_digest.clone()),
                });
            }
        }
        self.last = GlobalHead {
            seq: global_seq,
            digest: global_digest,
        };
    }

    /// The report, given the recorded head, the number of events waiting
    /// for their place and the events neither placed nor waiting (written
    /// behind the service's back: dossier id and seq).
    pub fn finish(
        mut self,
        recorded: GlobalHead,
        pending: u64,
        outside: Vec<(String, i64)>,
    ) -> AuditReport {
        self.end_of_journal();
        if let (Some(k), false) = (self.kept, self.kept_found) {
            self.report.findings.push(AuditFinding::KeptHeadChanged {
                kept: k.clone(),
                now: None,
            });
        }
        if recorded != self.last {
            self.report.findings.push(AuditFinding::HeadMismatch {
                recorded: recorded.clone(),
                last: self.last.clone(),
            });
        }
        if let Some(kept) = &self.kept_counts {
            let groups: BTreeSet<&CountKey> = kept.keys().chain(self.counted.keys()).collect();
            for key in groups {
                let (stored, actual) = (
                    kept.get(key).copied().unwrap_or(0),
                    self.counted.get(key).copied().unwrap_or(0),
                );
                if stored != actual {
                    let (wave, state, programmes, awaiting) = key;
                    self.report.findings.push(AuditFinding::CountsDiffer {
                        what: format!(
                            "vague {wave}, état {state}, programmes {programmes}, en attente de {awaiting} : {stored} compté(s) pour {actual} dossier(s)"
                        ),
                    });
                }
            }
        }
        self.report.head = Some(recorded);
        self.report.pending = pending;
        for (dossier_id, seq) in outside {
            self.report
                .findings
                .push(AuditFinding::OutsideTheChain { dossier_id, seq });
        }
        self.report
    }
}

/// The rebuild's reasoning: folds the journal (events in (dossier, seq)
/// order) and compares with the projections' versions (dossier id →
/// reference, version) to find the dossiers a rebuild would take back.
pub fn fold_for_rebuild(
    events: impl IntoIterator<Item = (Event, String)>,
    mut versions: HashMap<String, (String, i64)>,
) -> Result<(Vec<(Dossier, String)>, RebuildReport), StoreError> {
    let mut report = RebuildReport::default();
    let mut folded: Vec<(Dossier, String)> = Vec::new();
    let mut current: Option<(Dossier, String)> = None;
    for (event, digest) in events {
        let previous = match current.take() {
            Some((d, last)) if d.id != event.dossier_id => {
                folded.push((d, last));
                None
            }
            Some((d, _)) => Some(d),
            None => None,
        };
        let d = apply(previous, &event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        current = Some((d, digest));
    }
    folded.extend(current);
    for (d, _) in &folded {
        if let Some((reference, version)) = versions.remove(&d.id.to_string()) {
            if version > to_i64(d.version) {
                report
                    .shortened
                    .push((reference, version, to_i64(d.version)));
            }
        }
    }
    for (reference, version) in versions.into_values() {
        report.shortened.push((reference, version, 0));
    }
    report.shortened.sort();
    Ok((folded, report))
}

/// One dossier's journal as the audit reads it, event by event.
struct DossierCheck {
    id: String,
    events: Vec<Event>,
    previous_digest: String,
    expected_seq: i64,
    broken: bool,
}

impl DossierCheck {
    fn new(id: String) -> DossierCheck {
        DossierCheck {
            id,
            events: Vec::new(),
            previous_digest: GENESIS_DIGEST.to_string(),
            expected_seq: 1,
            broken: false,
        }
    }

    fn push(&mut self, seq: i64, body: &str, digest: String, report: &mut AuditReport) {
        if self.broken {
            return;
        }
        let event = serde_json::from_str::<Event>(body);
        let names_itself = event
            .as_ref()
            .is_ok_and(|e| e.dossier_id.to_string() == self.id && to_i64(e.seq) == seq);
        if seq != self.expected_seq
            || !names_itself
            || chain_digest(&self.previous_digest, body) != digest
        {
            report.findings.push(AuditFinding::BrokenLink {
                dossier_id: self.id.clone(),
                seq,
            });
            self.broken = true;
            return;
        }
        if let Ok(e) = event {
            self.events.push(e);
        }
        self.previous_digest = digest;
        self.expected_seq += 1;
    }

    /// Compares the fold of the journal with the projection.
    fn finish(
        self,
        def: &Definition,
        projections: &mut HashMap<String, ProjectionRow>,
        report: &mut AuditReport,
    ) {
        let projection = projections.remove(&self.id);
        if self.broken {
            return;
        }
        let folded = match fold(&self.events) {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(e) => {
                report.findings.push(AuditFinding::UnreadableEvent {
                    dossier_id: self.id,
                    seq: self.expected_seq - 1,
                    reason: e.to_string(),
                });
                return;
            }
        };
        let Some(stored) = projection else {
            report
                .findings
                .push(AuditFinding::JournalWithoutProjection {
                    dossier_id: self.id,
                });
            return;
        };
        let expected = ProjectionRow::expected(def, &folded, &self.previous_digest);
        if let Some(what) = stored.differs_from(&expected, &folded) {
            report.findings.push(AuditFinding::ProjectionDiffers {
                dossier_id: self.id,
                reference: stored.reference,
                what,
            });
        }
    }
}
