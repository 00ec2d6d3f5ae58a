//! The journal's proofs: the global digest chain and its head, the audit
//! that checks every chain and every projection against the journal, and the
//! rebuild of projections that refuses to lose a step unless told.

use std::collections::HashMap;
use std::fmt;

use ami_core::{apply, awaiting, fold, Definition, Dossier, Event};
use futures_util::TryStreamExt;
use sqlx::Row;

use super::{
    chain_digest, list_column, micros, read_number, search_column, to_i64, Backend, Store,
    StoreError, GENESIS_DIGEST,
};

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
struct ProjectionRow {
    reference: String,
    wave: i64,
    state: String,
    version: i64,
    programmes: String,
    search: String,
    awaiting: String,
    received_at_us: i64,
    updated_at_us: i64,
    last_digest: String,
    code_insee: String,
    body: String,
}

impl ProjectionRow {
    /// The row the fold of a journal should have produced.
    fn expected(def: &Definition, d: &Dossier, last_digest: &str) -> ProjectionRow {
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

    fn read(r: &sqlx::any::AnyRow) -> Result<ProjectionRow, StoreError> {
        Ok(ProjectionRow {
            reference: r.try_get("reference")?,
            wave: r.try_get("wave")?,
            state: r.try_get("state")?,
            version: r.try_get("version")?,
            programmes: r.try_get("programmes")?,
            search: r.try_get("search")?,
            awaiting: r.try_get("awaiting")?,
            received_at_us: r.try_get("received_at_us")?,
            updated_at_us: r.try_get("updated_at_us")?,
            last_digest: r.try_get("last_digest")?,
            code_insee: r.try_get("code_insee")?,
            body: r.try_get("body")?,
        })
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

const PROJECTION_COLUMNS: &str =
    "dossier_id, reference, wave, state, version, programmes, search, \
     awaiting, received_at_us, updated_at_us, last_digest, code_insee, body";

impl Store {
    /// The recorded head of the global chain (0 and the genesis digest on an
    /// empty journal).
    pub async fn global_head(&self) -> Result<GlobalHead, StoreError> {
        let row =
            sqlx::query("select global_seq, global_digest from journal_head where singleton = 1")
                .fetch_one(&self.reader)
                .await?;
        Ok(GlobalHead {
            seq: row.try_get("global_seq")?,
            digest: row.try_get("global_digest")?,
        })
    }

    /// Gives the events committed since the last sealing their place in
    /// the global chain, after every event sealed before, and moves the
    /// head; the number of events sealed. The service runs it in the
    /// background right after writes (and the audit before it checks), so
    /// that transitions never wait on one another for it. Sealers take the
    /// head's row lock: on PostgreSQL several instances seal in turn, each
    /// seeing what the one before sealed. A place, once given, never
    /// changes: an event that commits late simply gets a later one.
    pub async fn seal_pending(&self) -> Result<u64, StoreError> {
        const BATCH: i64 = 5_000;
        // Rows per statement: 3 parameters each, within SQLite's 32,766.
        const SEAL_CHUNK: usize = 500;
        let lock = match self.backend {
            Backend::Postgres => " for update",
            Backend::Sqlite => "",
        };
        let mut sealed = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let head = sqlx::query(&format!(
                "select global_seq, global_digest from journal_head where singleton = 1{lock}"
            ))
            .fetch_one(&mut *tx)
            .await?;
            let (mut seq, mut digest): (i64, String) =
                (head.try_get("global_seq")?, head.try_get("global_digest")?);
            // One index lookup per pending event, whatever the planner
            // thinks of a join with the whole journal.
            let rows = sqlx::query(
                "select p.event_id, (select e.digest from dossier_event e \
                 where e.event_id = p.event_id) as digest \
                 from journal_pending p order by p.event_id limit $1",
            )
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                tx.rollback().await?;
                return Ok(sealed);
            }
            let mut places = Vec::with_capacity(rows.len());
            let mut gone = Vec::new();
            for row in &rows {
                let event_id: i64 = row.try_get("event_id")?;
                // An event removed before its sealing gets no place; its
                // dossier's chain shows the loss to the audit.
                let Some(event_digest) = row.try_get::<Option<String>, _>("digest")? else {
                    gone.push(event_id);
                    continue;
                };
                seq += 1;
                digest = chain_digest(&digest, &event_digest);
                places.push((event_id, seq, digest.clone()));
            }
            for event_id in gone {
                sqlx::query("delete from journal_pending where event_id = $1")
                    .bind(event_id)
                    .execute(&mut *tx)
                    .await?;
            }
            // A few statements per sealing rather than two per event: on
            // SQLite the sealer holds the one writer meanwhile.
            for chunk in places.chunks(SEAL_CHUNK) {
                let mut insert = String::from(
                    "insert into journal_chain (event_id, global_seq, global_digest) values ",
                );
                let mut delete = String::from("delete from journal_pending where event_id in (");
                for (i, _) in chunk.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    insert += &format!("{sep}(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3);
                    delete += &format!("{sep}${}", i + 1);
                }
                delete.push(')');
                let mut q = sqlx::query(&insert);
                for (event_id, seq, digest) in chunk {
                    q = q.bind(*event_id).bind(*seq).bind(digest.as_str());
                }
                q.execute(&mut *tx).await?;
                let mut q = sqlx::query(&delete);
                for (event_id, _, _) in chunk {
                    q = q.bind(*event_id);
                }
                q.execute(&mut *tx).await?;
            }
            sqlx::query(
                "update journal_head set global_seq = $1, global_digest = $2 where singleton = 1",
            )
            .bind(seq)
            .bind(&digest)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            sealed += rows.len() as u64;
            if (rows.len() as i64) < BATCH {
                return Ok(sealed);
            }
        }
    }

    /// Brings rows written by an earlier version up to date: events get
    /// their place in the global chain, and dossiers their folded search
    /// key. Does nothing on a database that needs nothing.
    pub(super) async fn upgrade_rows(&self) -> Result<(), StoreError> {
        let sealed = self.seal_pending().await?;
        if sealed > 0 {
            tracing::info!(events = sealed, "events chained into the global chain");
        }

        let stale = sqlx::query("select dossier_id, body from dossier where search = ''")
            .fetch_all(&self.reader)
            .await?;
        if !stale.is_empty() {
            let mut tx = self.begin_write().await?;
            for row in &stale {
                let d: Dossier = serde_json::from_str(&row.try_get::<String, _>("body")?)?;
                sqlx::query("update dossier set search = $1 where dossier_id = $2")
                    .bind(search_column(&d))
                    .bind(row.try_get::<String, _>("dossier_id")?)
                    .execute(&mut *tx)
                    .await?;
            }
            self.refill_search_index(&mut tx).await?;
            tx.commit().await?;
            tracing::info!(dossiers = stale.len(), "search keys recomputed");
        }
        Ok(())
    }

    /// Search keys live in a table of their own (trigram-indexed), filled
    /// by a trigger when a dossier is inserted; keys recomputed in place
    /// are copied there again.
    async fn refill_search_index(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), StoreError> {
        sqlx::query("delete from dossier_search")
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "insert into dossier_search (dossier_id, search) select dossier_id, search from dossier",
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Checks everything the journal promises: each dossier's digest chain,
    /// the global chain and its recorded head (and `kept`, a head someone
    /// kept earlier), and that every projection equals the fold of its
    /// journal, column by column. Reads one consistent snapshot.
    pub async fn verify(
        &self,
        def: &Definition,
        kept: Option<&GlobalHead>,
    ) -> Result<AuditReport, StoreError> {
        // What was committed before the audit gets its place first; what
        // commits during it is counted as pending.
        self.seal_pending().await?;
        let mut tx = self.reader.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("set transaction isolation level repeatable read, read only")
                .execute(&mut *tx)
                .await?;
        }
        let mut report = AuditReport::default();

        // Projections in memory (one row per dossier); events streamed.
        let mut projections: HashMap<String, ProjectionRow> = HashMap::new();
        {
            let sql = format!("select {PROJECTION_COLUMNS} from dossier");
            let mut rows = sqlx::query(&sql).fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                projections.insert(r.try_get("dossier_id")?, ProjectionRow::read(&r)?);
            }
        }

        {
            let mut rows = sqlx::query(
                "select dossier_id, seq, body, digest from dossier_event order by dossier_id, seq",
            )
            .fetch(&mut *tx);
            let mut current: Option<DossierCheck> = None;
            while let Some(row) = rows.try_next().await? {
                let id: String = row.try_get("dossier_id")?;
                let seq: i64 = row.try_get("seq")?;
                let body: String = row.try_get("body")?;
                let digest: String = row.try_get("digest")?;
                report.events += 1;
                if current.as_ref().is_none_or(|c| c.id != id) {
                    if let Some(done) = current.take() {
                        done.finish(def, &mut projections, &mut report);
                    }
                    report.dossiers += 1;
                    current = Some(DossierCheck::new(id.clone()));
                }
                if let Some(c) = current.as_mut() {
                    c.push(seq, &body, digest, &mut report);
                }
            }
            if let Some(done) = current.take() {
                done.finish(def, &mut projections, &mut report);
            }
        }
        let mut orphans: Vec<(String, ProjectionRow)> = projections.into_iter().collect();
        orphans.sort_by(|a, b| a.1.reference.cmp(&b.1.reference));
        for (dossier_id, p) in orphans {
            report
                .findings
                .push(AuditFinding::ProjectionWithoutJournal {
                    dossier_id,
                    reference: p.reference,
                });
        }

        // The global chain, place by place. A place whose event is gone
        // reads a null digest: the chain breaks there.
        {
            let mut rows = sqlx::query(
                "select c.global_seq, c.global_digest, e.digest from journal_chain c \
                 left join dossier_event e on e.event_id = c.event_id order by c.global_seq",
            )
            .fetch(&mut *tx);
            let mut last = GlobalHead {
                seq: 0,
                digest: GENESIS_DIGEST.to_string(),
            };
            let mut broken = false;
            let mut kept_found = kept.is_some_and(|k| k.seq == 0 && k.digest == GENESIS_DIGEST);
            while let Some(row) = rows.try_next().await? {
                let global_seq: i64 = row.try_get("global_seq")?;
                let digest: Option<String> = row.try_get("digest")?;
                let global_digest: String = row.try_get("global_digest")?;
                let links = digest.is_some_and(|d| chain_digest(&last.digest, &d) == global_digest);
                if !broken && (global_seq != last.seq + 1 || !links) {
                    report.findings.push(AuditFinding::GlobalChainBroken {
                        global_seq: last.seq + 1,
                    });
                    broken = true;
                }
                if let Some(k) = kept.filter(|k| k.seq == global_seq) {
                    kept_found = true;
                    if k.digest != global_digest {
                        report.findings.push(AuditFinding::KeptHeadChanged {
                            kept: k.clone(),
                            now: Some(global_digest.clone()),
                        });
                    }
                }
                last = GlobalHead {
                    seq: global_seq,
                    digest: global_digest,
                };
            }
            if let (Some(k), false) = (kept, kept_found) {
                report.findings.push(AuditFinding::KeptHeadChanged {
                    kept: k.clone(),
                    now: None,
                });
            }
            drop(rows);
            let head = sqlx::query(
                "select global_seq, global_digest from journal_head where singleton = 1",
            )
            .fetch_one(&mut *tx)
            .await?;
            let recorded = GlobalHead {
                seq: head.try_get("global_seq")?,
                digest: head.try_get("global_digest")?,
            };
            if recorded != last {
                report.findings.push(AuditFinding::HeadMismatch {
                    recorded: recorded.clone(),
                    last,
                });
            }
            report.head = Some(recorded);
            report.pending = read_number(
                "journal_pending.count",
                sqlx::query("select count(*) as n from journal_pending")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?,
            )?;
            // An event neither placed nor waiting for a place was slipped
            // into the journal behind the service's back.
            let outside = sqlx::query(
                "select e.dossier_id, e.seq from dossier_event e \
                 where not exists (select 1 from journal_chain c where c.event_id = e.event_id) \
                 and not exists (select 1 from journal_pending p where p.event_id = e.event_id) \
                 order by e.event_id limit 100",
            )
            .fetch_all(&mut *tx)
            .await?;
            for row in &outside {
                report.findings.push(AuditFinding::OutsideTheChain {
                    dossier_id: row.try_get("dossier_id")?,
                    seq: row.try_get("seq")?,
                });
            }
        }
        tx.rollback().await?;
        Ok(report)
    }

    /// Rebuilds every projection from the journal, in one transaction. A
    /// projection ahead of its journal (the journal lost events) would be
    /// taken back: unless `accept_loss`, nothing is written and the report
    /// lists those dossiers.
    pub async fn rebuild_projections(
        &self,
        def: &Definition,
        accept_loss: bool,
    ) -> Result<RebuildReport, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut report = RebuildReport::default();
        let mut versions: HashMap<String, (String, i64)> = HashMap::new();
        for r in sqlx::query("select dossier_id, reference, version from dossier")
            .fetch_all(&mut *tx)
            .await?
        {
            versions.insert(
                r.try_get("dossier_id")?,
                (r.try_get("reference")?, r.try_get("version")?),
            );
        }
        let rows = sqlx::query("select body, digest from dossier_event order by dossier_id, seq")
            .fetch_all(&mut *tx)
            .await?;
        let mut folded: Vec<(Dossier, String)> = Vec::new();
        let mut current: Option<(Dossier, String)> = None;
        for row in &rows {
            let event: Event = serde_json::from_str(&row.try_get::<String, _>("body")?)?;
            let digest: String = row.try_get("digest")?;
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
        if !report.shortened.is_empty() && !accept_loss {
            tx.rollback().await?;
            return Ok(report);
        }
        sqlx::query("delete from dossier").execute(&mut *tx).await?;
        // The insert trigger fills it again.
        sqlx::query("delete from dossier_search")
            .execute(&mut *tx)
            .await?;
        for (d, last) in &folded {
            super::write_projection(&mut tx, def, d, None, last).await?;
            report.rebuilt += 1;
        }
        tx.commit().await?;
        report.applied = true;
        Ok(report)
    }
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
