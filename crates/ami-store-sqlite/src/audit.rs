//! The journal's proofs on SQLite: the sealing of the global chain, the
//! upgrade of rows an earlier version wrote, and what the audit and the
//! rebuild read (their reasoning is `ami_store::audit`'s).

use std::collections::HashMap;

use ami_core::{Definition, Dossier, Event};
use ami_store::audit::{fold_for_rebuild, Audit, ProjectionRow};
use ami_store::{
    chain_digest, read_number, search_column, AuditReport, GlobalHead, RebuildReport, StoreError,
};
use futures_util::TryStreamExt;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use crate::transition::write_projection;
use crate::SqliteStore;

/// Pending events sealed per transaction.
const SEAL_BATCH: i64 = 5_000;
/// Rows per statement: 3 parameters each, within SQLite's 32,766.
const SEAL_CHUNK: usize = 500;

impl SqliteStore {
    /// Gives the events committed since the last sealing their place in
    /// the global chain, after every event sealed before, and moves the
    /// head; the number of events sealed. A place, once given, never
    /// changes: an event that commits late simply gets a later one.
    pub(crate) async fn seal(&self) -> Result<u64, StoreError> {
        let mut sealed = 0;
        loop {
            // The write lock, taken at once, keeps other sealers (another
            // process on the same file) out until the commit.
            let mut tx = self.begin_write().await?;
            let head = sqlx::query!(
                r#"select global_seq as "global_seq!: i64", global_digest from journal_head
                   where singleton = 1"#
            )
            .fetch_one(&mut *tx)
            .await?;
            let (mut seq, mut digest) = (head.global_seq, head.global_digest);
            // One index lookup per pending event, whatever the planner
            // thinks of a join with the whole journal.
            let rows = sqlx::query!(
                r#"select p.event_id as "event_id!: i64",
                     (select e.digest from dossier_event e where e.event_id = p.event_id)
                       as "digest?: String"
                   from journal_pending p order by p.event_id limit $1"#,
                SEAL_BATCH
            )
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                tx.rollback().await?;
                return Ok(sealed);
            }
            let mut places = Vec::with_capacity(rows.len());
            let mut gone = Vec::new();
            for row in &rows {
                // An event removed before its sealing gets no place; its
                // dossier's chain shows the loss to the audit.
                let Some(event_digest) = &row.digest else {
                    gone.push(row.event_id);
                    continue;
                };
                seq += 1;
                digest = chain_digest(&digest, event_digest);
                places.push((row.event_id, seq, digest.clone()));
            }
            for event_id in gone {
                sqlx::query!("delete from journal_pending where event_id = $1", event_id)
                    .execute(&mut *tx)
                    .await?;
            }
            // A few statements per sealing rather than two per event: the
            // sealer holds the one writer meanwhile.
            for chunk in places.chunks(SEAL_CHUNK) {
                // Dynamic: one row of values per event of the chunk.
                let mut insert = QueryBuilder::<Sqlite>::new(
                    "insert into journal_chain (event_id, global_seq, global_digest) ",
                );
                insert.push_values(chunk, |mut row, (event_id, seq, digest)| {
                    row.push_bind(*event_id)
                        .push_bind(*seq)
                        .push_bind(digest.as_str());
                });
                insert.build().execute(&mut *tx).await?;
                // Dynamic: one value per event of the chunk.
                let mut delete =
                    QueryBuilder::<Sqlite>::new("delete from journal_pending where event_id in (");
                let mut ids = delete.separated(", ");
                for (event_id, _, _) in chunk {
                    ids.push_bind(*event_id);
                }
                delete.push(")");
                delete.build().execute(&mut *tx).await?;
            }
            sqlx::query!(
                "update journal_head set global_seq = $1, global_digest = $2 where singleton = 1",
                seq,
                digest
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            sealed += rows.len() as u64;
            if (rows.len() as i64) < SEAL_BATCH {
                return Ok(sealed);
            }
        }
    }

    /// Brings rows written by an earlier version up to date: events get
    /// their place in the global chain, and dossiers their folded search
    /// key. Does nothing on a database that needs nothing.
    pub(crate) async fn upgrade_rows(&self) -> Result<(), StoreError> {
        let sealed = self.seal().await?;
        if sealed > 0 {
            tracing::info!(events = sealed, "events chained into the global chain");
        }
        let stale = sqlx::query!(
            r#"select dossier_id as "dossier_id!: String", body from dossier where search = ''"#
        )
        .fetch_all(&self.reader)
        .await?;
        if !stale.is_empty() {
            let mut tx = self.begin_write().await?;
            for row in &stale {
                let d: Dossier = serde_json::from_str(&row.body)?;
                let search = search_column(&d);
                sqlx::query!(
                    "update dossier set search = $1 where dossier_id = $2",
                    search,
                    row.dossier_id
                )
                .execute(&mut *tx)
                .await?;
            }
            refill_search_index(&mut tx).await?;
            tx.commit().await?;
            tracing::info!(dossiers = stale.len(), "search keys recomputed");
        }
        Ok(())
    }

    /// Reads what the audit checks, from one snapshot (a read transaction
    /// in WAL mode), in the order [`Audit`] takes it.
    pub(crate) async fn audit(
        &self,
        def: &Definition,
        kept: Option<&GlobalHead>,
    ) -> Result<AuditReport, StoreError> {
        // What was committed before the audit gets its place first; what
        // commits during it is counted as pending.
        self.seal().await?;
        let mut tx = self.reader.begin().await?;
        let mut audit = Audit::new(def, kept);
        {
            // Projections in memory (one row per dossier); events streamed.
            let mut rows = sqlx::query!(
                r#"select dossier_id as "dossier_id!: String", reference, wave, state, version,
                     programmes, search, awaiting, received_at_us, updated_at_us, last_digest,
                     code_insee, body
                   from dossier"#
            )
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                audit.projection(
                    r.dossier_id,
                    ProjectionRow {
                        reference: r.reference,
                        wave: r.wave,
                        state: r.state,
                        version: r.version,
                        programmes: r.programmes,
                        search: r.search,
                        awaiting: r.awaiting,
                        received_at_us: r.received_at_us,
                        updated_at_us: r.updated_at_us,
                        last_digest: r.last_digest,
                        code_insee: r.code_insee,
                        body: r.body,
                    },
                );
            }
        }
        for kept in
            sqlx::query!(r#"select wave, state, programmes, awaiting, n from dossier_count"#)
                .fetch_all(&mut *tx)
                .await?
        {
            audit.kept_count(
                kept.wave,
                kept.state,
                kept.programmes,
                kept.awaiting,
                kept.n,
            );
        }
        {
            let mut rows = sqlx::query!(
                "select dossier_id, seq, body, digest from dossier_event order by dossier_id, seq"
            )
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                audit.event(&r.dossier_id, r.seq, &r.body, r.digest);
            }
        }
        {
            // A place whose event is gone reads a null digest: the chain
            // breaks there.
            let mut rows = sqlx::query!(
                r#"select c.global_seq, c.global_digest, e.digest as "digest?: String"
                   from journal_chain c left join dossier_event e on e.event_id = c.event_id
                   order by c.global_seq"#
            )
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                audit.chain_place(r.global_seq, r.digest.as_deref(), r.global_digest);
            }
        }
        let head = sqlx::query!(
            r#"select global_seq as "global_seq!: i64", global_digest from journal_head
               where singleton = 1"#
        )
        .fetch_one(&mut *tx)
        .await?;
        let recorded = GlobalHead {
            seq: head.global_seq,
            digest: head.global_digest,
        };
        let pending = read_number(
            "journal_pending.count",
            sqlx::query_scalar!(r#"select count(*) as "n!: i64" from journal_pending"#)
                .fetch_one(&mut *tx)
                .await?,
        )?;
        // An event neither placed nor waiting for a place was slipped into
        // the journal behind the service's back.
        let outside = sqlx::query!(
            "select e.dossier_id, e.seq from dossier_event e \
             where not exists (select 1 from journal_chain c where c.event_id = e.event_id) \
             and not exists (select 1 from journal_pending p where p.event_id = e.event_id) \
             order by e.event_id limit 100"
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.dossier_id, r.seq))
        .collect();
        tx.rollback().await?;
        Ok(audit.finish(recorded, pending, outside))
    }

    /// Rebuilds every projection from the journal, in one transaction,
    /// unless that would take a projection back and `accept_loss` is false.
    pub(crate) async fn rebuild(
        &self,
        def: &Definition,
        accept_loss: bool,
    ) -> Result<RebuildReport, StoreError> {
        let mut tx = self.begin_write().await?;
        let versions: HashMap<String, (String, i64)> = sqlx::query!(
            r#"select dossier_id as "dossier_id!: String", reference, version from dossier"#
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.dossier_id, (r.reference, r.version)))
        .collect();
        let events =
            sqlx::query!("select body, digest from dossier_event order by dossier_id, seq")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| Ok((serde_json::from_str::<Event>(&r.body)?, r.digest)))
                .collect::<Result<Vec<_>, StoreError>>()?;
        let (folded, mut report) = fold_for_rebuild(events, versions)?;
        if !report.shortened.is_empty() && !accept_loss {
            tx.rollback().await?;
            return Ok(report);
        }
        sqlx::query!("delete from dossier")
            .execute(&mut *tx)
            .await?;
        // The insert trigger fills it again.
        sqlx::query!("delete from dossier_search")
            .execute(&mut *tx)
            .await?;
        for (d, last) in &folded {
            write_projection(&mut tx, def, d, None, last).await?;
            report.rebuilt += 1;
        }
        tx.commit().await?;
        report.applied = true;
        Ok(report)
    }
}

/// Search keys live in a table of their own (trigram-indexed), filled by a
/// trigger when a dossier is inserted; keys recomputed in place are copied
/// there again.
async fn refill_search_index(tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
    sqlx::query!("delete from dossier_search")
        .execute(&mut **tx)
        .await?;
    sqlx::query!(
        "insert into dossier_search (dossier_id, search) select dossier_id, search from dossier"
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
