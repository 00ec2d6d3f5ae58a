//! The group commit's writes on PostgreSQL: a whole group in one statement.

use ami_store::group_commit::{batch_document, GroupWriter, Outcomes};
use ami_store::write::{Write, Written};
use ami_store::{StoreError, TransitionRequest};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use std::sync::Arc;

use tokio::sync::Mutex;

/// The writer task's side of [`crate::PgStore`]. Deposits run in their own
/// transactions here (see `transition.rs`), so it is given none.
pub(crate) struct PgWriter {
    pool: PgPool,
    /// The connection the groups are written on, kept from one group to
    /// the next: the pool hands out its idle connections in turn, and a
    /// connection whose PostgreSQL backend has slept costs a lone
    /// transition a fraction of a millisecond to wake.
    connection: KeptConnection,
}

/// The writer's connection between groups; the store gives it back to the
/// pool when it closes (closing a pool waits for every connection).
pub(crate) type KeptConnection = Arc<Mutex<Option<PoolConnection<Postgres>>>>;

impl PgWriter {
    pub(crate) fn new(pool: PgPool, connection: KeptConnection) -> PgWriter {
        PgWriter { pool, connection }
    }
}

#[async_trait]
impl GroupWriter for PgWriter {
    async fn write_group(
        &self,
        writes: &[Write],
        deposits: &[TransitionRequest],
    ) -> Result<Outcomes, StoreError> {
        let written = if writes.is_empty() {
            Vec::new()
        } else {
            let mut kept = self.connection.lock().await;
            let mut connection = match kept.take() {
                Some(connection) => connection,
                None => self.pool.acquire().await?,
            };
            let written = batch(&mut connection, writes).await;
            // A connection the database dropped is not kept: the next
            // group takes another from the pool.
            if !matches!(written, Err(StoreError::Unavailable(_))) {
                *kept = Some(connection);
            }
            written?
        };
        let deposited = deposits
            .iter()
            .map(|_| {
                Err(StoreError::Other(
                    "dépôt confié à l'écrivain groupé, qui n'en écrit pas".into(),
                ))
            })
            .collect();
        Ok((written, deposited))
    }
}

/// The whole batch in one statement (one round trip, one commit). Each
/// projection is updated only at the version read; the events, their
/// pending marks, the idempotency records and the letters the events
/// cause are written for the dossiers updated, and the statement returns
/// those.
async fn batch(
    connection: &mut sqlx::PgConnection,
    writes: &[Write],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    // The document carries ids as text and instants in microseconds
    // (`batch_document`, shared with SQLite): converted here, in SQL.
    let written = sqlx::query_scalar!(
        r#"with input as (select * from json_to_recordset($1::text::json) as x(n bigint,
             dossier_id uuid, previous_version bigint, state text, version bigint,
             updated_at_us bigint, digest text, body text, awaiting text, due_on date, seq bigint,
             action text, agency text, actor_id text, at_us bigint, event text,
             idempotency json, letters json)),
           target as (update dossier d set state = i.state, version = i.version,
             updated_at = ami_instant(i.updated_at_us), last_digest = i.digest,
             body = i.body::jsonb, awaiting = i.awaiting, due_on = i.due_on from input i
             where d.dossier_id = i.dossier_id and d.version = i.previous_version
             returning i.n),
           written as (select i.* from input i join target t on t.n = i.n),
           appended as (insert into dossier_event (dossier_id, seq, action, agency, actor_id,
             occurred_at, body, digest) select dossier_id, seq, action, agency, actor_id,
             ami_instant(at_us), event, digest from written order by n returning event_id),
           pending as (insert into journal_pending (event_id) select event_id from appended),
           remembered as (insert into idempotency (actor_id, idempotency_key, request_sha256,
             status, body, created_at) select r.actor_id, r.key, r.request_sha256, r.status,
             r.body, ami_instant(r.created_at_us) from written w,
             json_to_record(w.idempotency) as r(actor_id text, key text, request_sha256 text,
             status bigint, body text, created_at_us bigint)
             where w.idempotency is not null and json_typeof(w.idempotency) = 'object'),
           lettered as (insert into outgoing_message (message_id, dossier_id, event_seq, kind,
             recipient, status, next_attempt_at, created_at) select l.message_id, l.dossier_id,
             l.event_seq, l.kind, l.recipient, l.status, ami_instant(l.created_at_us),
             ami_instant(l.created_at_us) from written w,
             json_to_recordset(w.letters) as l(message_id uuid, dossier_id uuid,
             event_seq bigint, kind text, recipient text, status text, created_at_us bigint))
           select n as "n!" from target"#,
        batch_document(writes)?,
    )
    .fetch_all(connection)
    .await?;
    let mut committed = vec![false; writes.len()];
    for n in written {
        if let Some(slot) = usize::try_from(n).ok().and_then(|n| committed.get_mut(n)) {
            *slot = true;
        }
    }
    Ok(committed
        .into_iter()
        .map(|c| {
            Ok(if c {
                Written::Committed
            } else {
                Written::VersionMoved
            })
        })
        .collect())
}
