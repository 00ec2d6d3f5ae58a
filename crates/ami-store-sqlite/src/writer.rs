//! The group commit's writes on SQLite: one `BEGIN IMMEDIATE … COMMIT` on
//! the one writer connection, and a few statements for the whole group
//! rather than a few per write: each statement is a round trip to the
//! connection's thread, which costs more than the write itself.

use std::collections::HashSet;

use ami_store::group_commit::{batch_document, GroupWriter, Outcomes};
use ami_store::write::{Remembered, Write, Written};
use ami_store::{StoreError, TransitionRequest};
use async_trait::async_trait;
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::begin_write_on;
use crate::mail::write_letters;
use crate::transition::run_in_transaction;

/// The writer task's side of the database: the writer pool.
pub(crate) struct SqliteWriter {
    pool: SqlitePool,
}

impl SqliteWriter {
    pub(crate) fn new(pool: SqlitePool) -> SqliteWriter {
        SqliteWriter { pool }
    }
}

#[async_trait]
impl GroupWriter for SqliteWriter {
    async fn write_group(
        &self,
        writes: &[Write],
        deposits: &[TransitionRequest],
    ) -> Result<Outcomes, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = begin_write_on(&mut conn).await?;
        let written = write_all(&mut tx, writes).await?;
        // Each deposit whole, one after another, a savepoint each: one
        // refused or failing leaves the others (a refused deposit takes no
        // number).
        let mut deposited = Vec::with_capacity(deposits.len());
        for request in deposits {
            sqlx::query!("savepoint deposit").execute(&mut *tx).await?;
            let outcome = run_in_transaction(&mut tx, request).await;
            if outcome.is_err() {
                sqlx::query!("rollback to deposit")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query!("release deposit").execute(&mut *tx).await?;
            deposited.push(outcome);
        }
        tx.commit().await?;
        Ok((written, deposited))
    }
}

/// The writes of a group, in the group's transaction.
async fn write_all(
    tx: &mut Transaction<'_, Sqlite>,
    writes: &[Write],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    // Each projection at the version read; the dossiers updated say which
    // writes go on (a group names each dossier once).
    let document = batch_document(writes)?;
    let updated: HashSet<String> = sqlx::query_scalar!(
        r#"update dossier set state = i.state, version = i.version,
             updated_at_us = i.updated_at_us, last_digest = i.digest, body = i.body,
             awaiting = i.awaiting, due_on = i.due_on
           from (select value ->> 'dossier_id' as dossier_id,
             value ->> 'previous_version' as previous_version, value ->> 'state' as state,
             value ->> 'version' as version, value ->> 'updated_at_us' as updated_at_us,
             value ->> 'digest' as digest, value ->> 'body' as body,
             value ->> 'awaiting' as awaiting, value ->> 'due_on' as due_on
             from json_each($1)) as i
           where dossier.dossier_id = i.dossier_id and dossier.version = i.previous_version
           returning dossier.dossier_id as "dossier_id!: String""#,
        document
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let written: Vec<&Write> = writes
        .iter()
        .filter(|w| updated.contains(&w.dossier_id))
        .collect();
    if !written.is_empty() {
        let document = serde_json::to_string(&written)?;
        let events: Vec<i64> = sqlx::query_scalar!(
            r#"insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body,
               digest)
             select value ->> 'dossier_id', value ->> 'seq', value ->> 'action',
               value ->> 'agency', value ->> 'actor_id', value ->> 'at_us', value ->> 'event',
               value ->> 'digest' from json_each($1) order by key
             returning event_id as "event_id!: i64""#,
            document
        )
        .fetch_all(&mut **tx)
        .await?;
        let events = serde_json::to_string(&events)?;
        sqlx::query!(
            "insert into journal_pending (event_id) select value from json_each($1)",
            events
        )
        .execute(&mut **tx)
        .await?;
        write_letters(tx, written.iter().flat_map(|w| w.letters.iter())).await?;
        let remembered: Vec<&Remembered> = written
            .iter()
            .filter_map(|w| w.idempotency.as_ref())
            .collect();
        if !remembered.is_empty() {
            let remembered = serde_json::to_string(&remembered)?;
            sqlx::query!(
                "insert into idempotency (actor_id, idempotency_key, request_sha256, status, \
                   body, created_at_us) \
                 select value ->> 'actor_id', value ->> 'key', value ->> 'request_sha256', \
                   value ->> 'status', value ->> 'body', value ->> 'created_at_us' \
                 from json_each($1)",
                remembered
            )
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(writes
        .iter()
        .map(|w| {
            Ok(if updated.contains(&w.dossier_id) {
                Written::Committed
            } else {
                Written::VersionMoved
            })
        })
        .collect())
}
