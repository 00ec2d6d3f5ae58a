//! Group commit: the transitions that are ready to be written at the same
//! time, across dossiers, are written in one database transaction, so that
//! one durable commit (one `fsync` of the log) serves them all.
//!
//! Each transition reads its dossier and is decided by the engine in its
//! own request, concurrently with the others; what it will write (a
//! [`Write`]) then goes to the one writer task of the process. The task
//! takes every write waiting when it is free, writes them together and
//! answers each only once their commit has returned. A lone write is
//! committed at once: batches form only while a commit is in progress,
//! so they grow with the load and no timer adds latency when idle.
//!
//! Every write is conditional on the dossier's version being the one its
//! request read ([`Written::VersionMoved`] otherwise, and nothing of it is
//! written), so a batch needs no lock: a dossier moved by another instance
//! or by a deposit between the read and the commit is caught as it is
//! without group commit. Two writes on one dossier never share a batch:
//! the later one waits for the next, where its version check decides.

use std::collections::HashSet;

use serde::Serialize;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::{Backend, StoreError};

/// The most writes one commit carries. Enough to reach the database's
/// limit with a few hundred clients; a bound on the statement's size.
const MAX_BATCH: usize = 256;

/// Everything one transition writes, decided before the write.
#[derive(Debug, Serialize)]
pub(super) struct Write {
    pub dossier_id: String,
    /// The version the request read; the write happens only if it is still
    /// the dossier's.
    pub previous_version: i64,
    pub state: String,
    pub version: i64,
    pub updated_at_us: i64,
    pub digest: String,
    /// The dossier's new projection (JSON).
    pub body: String,
    pub awaiting: String,
    pub seq: i64,
    pub action: String,
    pub agency: String,
    pub actor_id: String,
    pub at_us: i64,
    /// The event in canonical JSON.
    pub event: String,
    pub idempotency: Option<Remembered>,
}

/// The first answer to an idempotency key, kept with the write.
#[derive(Debug, Serialize)]
pub(super) struct Remembered {
    pub actor_id: String,
    pub key: String,
    pub request_sha256: String,
    pub status: i64,
    pub body: String,
    pub created_at_us: i64,
}

/// What became of one write.
#[derive(Debug)]
pub(super) enum Written {
    /// Committed: durable.
    Committed,
    /// The dossier is no longer at the version read: nothing was written.
    VersionMoved,
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<Written, StoreError>>,
}

/// The sending side of a process's writer task. The task ends when the
/// last clone of this is dropped.
#[derive(Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task of a pool.
    pub(super) fn start(backend: Backend, pool: AnyPool) -> GroupCommit {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(backend, pool, queue));
        GroupCommit { jobs }
    }

    /// Writes `write` with whatever else is ready, and answers once its
    /// batch's commit returned.
    pub(super) async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (done, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("l'écrivain de la base s'est arrêté".into());
        self.jobs
            .send(Job { write, done })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The writer task: one batch at a time, each made of every job waiting.
/// It runs in its own task so that a client going away never interrupts
/// a commit that carries other clients' writes.
async fn run(backend: Backend, pool: AnyPool, mut queue: mpsc::Receiver<Job>) {
    let mut held_back: Vec<Job> = Vec::new();
    loop {
        let mut batch: Vec<Job> = Vec::new();
        let mut dossiers: HashSet<String> = HashSet::new();
        let mut later: Vec<Job> = Vec::new();
        let mut take = |job: Job, batch: &mut Vec<Job>| {
            if dossiers.insert(job.write.dossier_id.clone()) {
                batch.push(job);
            } else {
                later.push(job);
            }
        };
        for job in held_back.drain(..) {
            take(job, &mut batch);
        }
        if batch.is_empty() {
            match queue.recv().await {
                Some(job) => take(job, &mut batch),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => take(job, &mut batch),
                Err(_) => break,
            }
        }
        held_back = later;
        let (writes, answers): (Vec<Write>, Vec<_>) =
            batch.into_iter().map(|j| (j.write, j.done)).unzip();
        let outcomes = write_batch(backend, &pool, &writes).await;
        for (answer, outcome) in answers.into_iter().zip(outcomes) {
            // The request may have gone; its write stands all the same.
            let _ = answer.send(outcome);
        }
    }
}

/// Writes a batch in one transaction; one outcome per write, in order.
async fn write_batch(
    backend: Backend,
    pool: &AnyPool,
    writes: &[Write],
) -> Vec<Result<Written, StoreError>> {
    let outcome = match backend {
        Backend::Sqlite => sqlite_batch(pool, writes).await,
        Backend::Postgres => postgres_batch(pool, writes).await,
    };
    match outcome {
        Ok(outcomes) => outcomes,
        // A unique key taken or a deadlock with another instance's batch:
        // the batch wrote nothing; each write alone finds its own fate.
        Err(StoreError::Duplicate | StoreError::Contention) if writes.len() > 1 => {
            let mut outcomes = Vec::with_capacity(writes.len());
            for write in writes {
                let alone = match backend {
                    Backend::Sqlite => sqlite_batch(pool, std::slice::from_ref(write)).await,
                    Backend::Postgres => postgres_batch(pool, std::slice::from_ref(write)).await,
                };
                outcomes.push(alone.and_then(|mut o| o.pop().unwrap_or(Err(lost()))));
            }
            outcomes
        }
        Err(e) => writes.iter().map(|_| Err(e.for_each_caller())).collect(),
    }
}

fn lost() -> StoreError {
    StoreError::Other("écriture sans réponse".into())
}

/// SQLite: one `BEGIN IMMEDIATE … COMMIT` on the one writer connection, a
/// savepoint per write so that one failing write leaves the others.
async fn sqlite_batch(
    pool: &AnyPool,
    writes: &[Write],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(writes.len());
    for w in writes {
        sqlx::query("savepoint one_write").execute(&mut *tx).await?;
        match sqlite_write(&mut tx, w).await {
            Ok(written) => {
                sqlx::query("release one_write").execute(&mut *tx).await?;
                outcomes.push(Ok(written));
            }
            Err(e) => {
                sqlx::query("rollback to one_write")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("release one_write").execute(&mut *tx).await?;
                outcomes.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

async fn sqlite_write(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    w: &Write,
) -> Result<Written, StoreError> {
    let updated = sqlx::query(
        "update dossier set state = $1, version = $2, updated_at_us = $3, last_digest = $4, \
         body = $5, awaiting = $6 where dossier_id = $7 and version = $8",
    )
    .bind(&w.state)
    .bind(w.version)
    .bind(w.updated_at_us)
    .bind(&w.digest)
    .bind(&w.body)
    .bind(&w.awaiting)
    .bind(&w.dossier_id)
    .bind(w.previous_version)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(Written::VersionMoved);
    }
    let event_id: i64 = sqlx::query(
        "insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, digest) \
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning event_id",
    )
    .bind(&w.dossier_id)
    .bind(w.seq)
    .bind(&w.action)
    .bind(&w.agency)
    .bind(&w.actor_id)
    .bind(w.at_us)
    .bind(&w.event)
    .bind(&w.digest)
    .fetch_one(&mut **tx)
    .await?
    .try_get("event_id")?;
    sqlx::query("insert into journal_pending (event_id) values ($1)")
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    if let Some(r) = &w.idempotency {
        sqlx::query(
            "insert into idempotency (actor_id, idempotency_key, request_sha256, status, body, \
             created_at_us) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&r.actor_id)
        .bind(&r.key)
        .bind(&r.request_sha256)
        .bind(r.status)
        .bind(&r.body)
        .bind(r.created_at_us)
        .execute(&mut **tx)
        .await?;
    }
    Ok(Written::Committed)
}

/// PostgreSQL: the whole batch in one statement (one round trip, one
/// commit). Each projection is updated only at the version read; the
/// events, their pending marks and the idempotency records are written for
/// the dossiers updated, and the statement returns those.
async fn postgres_batch(
    pool: &AnyPool,
    writes: &[Write],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    // The batch travels as one JSON document, unpacked into rows by the
    // server: one statement whatever the batch's size.
    #[derive(Serialize)]
    struct Row<'a> {
        /// The write's place in the batch, to tell each its outcome.
        n: usize,
        #[serde(flatten)]
        write: &'a Write,
    }
    let rows: Vec<Row<'_>> = writes
        .iter()
        .enumerate()
        .map(|(n, write)| Row { n, write })
        .collect();
    let document = serde_json::to_string(&rows)?;
    let written = sqlx::query(
        "with input as (select * from json_to_recordset($1::json) as x(n bigint, dossier_id text, \
           previous_version bigint, state text, version bigint, updated_at_us bigint, digest text, \
           body text, awaiting text, seq bigint, action text, agency text, actor_id text, \
           at_us bigint, event text, idempotency json)), \
         target as (update dossier d set state = i.state, version = i.version, \
           updated_at_us = i.updated_at_us, last_digest = i.digest, body = i.body, \
           awaiting = i.awaiting from input i \
           where d.dossier_id = i.dossier_id and d.version = i.previous_version \
           returning i.n), \
         written as (select i.* from input i join target t on t.n = i.n), \
         appended as (insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, \
           body, digest) select dossier_id, seq, action, agency, actor_id, at_us, event, digest \
           from written order by n returning event_id), \
         pending as (insert into journal_pending (event_id) select event_id from appended), \
         remembered as (insert into idempotency (actor_id, idempotency_key, request_sha256, status, \
           body, created_at_us) select r.actor_id, r.key, r.request_sha256, r.status, r.body, \
           r.created_at_us from written w, json_to_record(w.idempotency) as r(actor_id text, \
           key text, request_sha256 text, status bigint, body text, created_at_us bigint) \
           where w.idempotency is not null and json_typeof(w.idempotency) = 'object') \
         select n from target",
    )
    .bind(document)
    .fetch_all(pool)
    .await?;
    let mut committed = vec![false; writes.len()];
    for row in written {
        let n: i64 = row.try_get("n")?;
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
