//! The journal's proofs on PostgreSQL: sealing events into the global
//! chain, the audit's reads (the reasoning is [`ami_store::audit`]'s), the
//! rebuild of projections, and the upgrade of rows an earlier version wrote.

use std::collections::HashMap;

use ami_core::{Definition, Dossier, Event};
use ami_store::audit::{fold_for_rebuild, Audit, ProjectionRow};
use ami_store::{
    chain_digest, micros, read_number, search_column, AuditReport, GlobalHead, RebuildReport,
    StoreError,
};
use futures_util::TryStreamExt;
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};

use crate::transition::write_projection;
use crate::PgStore;

impl PgStore {
    pub(crate) async fn head(&self) -> Result<GlobalHead, StoreError> {
        let row =
            sqlx::query!("select global_seq, global_digest from journal_head where singleton = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(GlobalHead {
            seq: row.global_seq,
            digest: row.global_digest,
        })
    }

    /// Gives the events committed since the last sealing their place in
    /// the global chain, after every event sealed before, and moves the
    /// head. Sealers take the head's row lock: several instances seal in
    /// turn, each seeing what the one before sealed. A place, once given,
    /// never changes: an event that commits late simply gets a later one.
    pub(crate) async fn seal(&self) -> Result<u64, StoreError> {
        const BATCH: i64 = 5_000;
        let mut sealed = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let head = sqlx::query!(
                "select global_seq, global_digest from journal_head where singleton = 1 \
                 for update"
            )
            .fetch_one(&mut *tx)
            .await?;
            let (mut seq, mut digest) = (head.global_seq, head.global_digest);
            // One index lookup per pending event, whatever the planner
            // thinks of a join with the whole journal.
            let rows = sqlx::query!(
                r#"select p.event_id, (select e.digest from dossier_event e
                     where e.event_id = p.event_id) as "digest?"
                   from journal_pending p order by p.event_id limit $1"#,
                BATCH
            )
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                tx.rollback().await?;
                return Ok(sealed);
            }
            let mut event_ids = Vec::with_capacity(rows.len());
            let mut places = Vec::with_capacity(rows.len());
            let mut digests = Vec::with_capacity(rows.len());
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
                event_ids.push(row.event_id);
                places.push(seq);
                digests.push(digest.clone());
            }
            // Two statements per sealing rather than two per event.
            sqlx::query!(
                "insert into journal_chain (event_id, global_seq, global_digest) \
                 select * from unnest($1::bigint[], $2::bigint[], $3::text[])",
                &event_ids,
                &places,
                &digests
            )
            .execute(&mut *tx)
            .await?;
            event_ids.extend(gone);
            sqlx::query!(
                "delete from journal_pending where event_id = any($1::bigint[])",
                &event_ids
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "update journal_head set global_seq = $1, global_digest = $2 where singleton = 1",
                seq,
                digest
            )
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
    pub(crate) async fn upgrade_rows(&self) -> Result<(), StoreError> {
        let sealed = self.seal().await?;
        if sealed > 0 {
            tracing::info!(events = sealed, "events chained into the global chain");
        }
        let stale = sqlx::query!(
            r#"select dossier_id, body as "body: Json<Dossier>" from dossier where search = ''"#
        )
        .fetch_all(&self.pool)
        .await?;
        if !stale.is_empty() {
            let mut tx = self.pool.begin().await?;
            for row in &stale {
                sqlx::query!(
                    "update dossier set search = $1 where dossier_id = $2",
                    search_column(&row.body.0),
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

    /// Reads one consistent snapshot for [`Audit`]: every projection, every
    /// event by dossier, the global chain, the head and what waits.
    pub(crate) async fn audit(
        &self,
        def: &Definition,
        kept: Option<&GlobalHead>,
    ) -> Result<AuditReport, StoreError> {
        // What was committed before the audit gets its place first; what
        // commits during it is counted as pending.
        self.seal().await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query!("set transaction isolation level repeatable read, read only")
            .execute(&mut *tx)
            .await?;
        let mut audit = Audit::new(def, kept);
        {
            // The projection's JSON as text, which the audit reads back
            // as a dossier.
            let mut rows = sqlx::query!(
                r#"select dossier_id, reference, wave, state, version, programmes, search,
                     awaiting, received_at, updated_at, last_digest, code_insee,
                     body::text as "body!"
                   from dossier"#
            )
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                audit.projection(
                    r.dossier_id.to_string(),
                    ProjectionRow {
                        reference: r.reference,
                        wave: r.wave,
                        state: r.state,
                        version: r.version,
                        programmes: r.programmes,
                        search: r.search,
                        awaiting: r.awaiting,
                        received_at_us: micros(r.received_at),
                        updated_at_us: micros(r.updated_at),
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
                audit.event(&r.dossier_id.to_string(), r.seq, &r.body, r.digest);
            }
        }
        {
            // A place whose event is gone reads a null digest.
            let mut rows = sqlx::query!(
                r#"select c.global_seq, c.global_digest, e.digest as "digest?"
                   from journal_chain c left join dossier_event e on e.event_id = c.event_id
                   order by c.global_seq"#
            )
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                audit.chain_place(r.global_seq, r.digest.as_deref(), r.global_digest);
            }
        }
        let head =
            sqlx::query!("select global_seq, global_digest from journal_head where singleton = 1")
                .fetch_one(&mut *tx)
                .await?;
        let pending = read_number(
            "journal_pending.count",
            sqlx::query_scalar!(r#"select count(*) as "n!" from journal_pending"#)
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
        .map(|r| (r.dossier_id.to_string(), r.seq))
        .collect();
        tx.rollback().await?;
        Ok(audit.finish(
            GlobalHead {
                seq: head.global_seq,
                digest: head.global_digest,
            },
            pending,
            outside,
        ))
    }

    /// Rebuilds every projection from the journal, in one transaction;
    /// writes nothing when a projection would be taken back to a shorter
    /// journal, unless `accept_loss`.
    pub(crate) async fn rebuild(
        &self,
        def: &Definition,
        accept_loss: bool,
    ) -> Result<RebuildReport, StoreError> {
        let mut tx = self.pool.begin().await?;
        let versions: HashMap<String, (String, i64)> =
            sqlx::query!("select dossier_id, reference, version from dossier")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| (r.dossier_id.to_string(), (r.reference, r.version)))
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
async fn refill_search_index(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
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
