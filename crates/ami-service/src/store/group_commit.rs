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
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use serde::Serialize;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::transition::run_in_transaction;
use super::write::{Remembered, Write, Written};
use super::{Backend, Executed, StoreError, TransitionRequest};

/// The most writes one commit carries. Enough to reach the database's
/// limit with a few hundred clients; a bound on the statement's size.
const MAX_BATCH: usize = 256;

/// What the writer task is asked to do.
enum Job {
    /// Write a transition decided by its request.
    Write {
        write: Box<Write>,
        done: oneshot::Sender<Result<Written, StoreError>>,
    },
    /// Run a deposit whole inside the group's transaction (SQLite): its
    /// reference number and duplicate check must be read where it is
    /// written, and SQLite has one writer anyway.
    Deposit {
        request: Box<TransitionRequest>,
        done: oneshot::Sender<Result<Executed, StoreError>>,
    },
}

/// The sending side of a process's writer task. The task ends when the
/// last clone of this is dropped.
#[derive(Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("l'écrivain de la base s'est arrêté".into())
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
        self.jobs
            .send(Job::Write {
                write: Box::new(write),
                done,
            })
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs a deposit in the next group's transaction (SQLite only), and
    /// answers once that transaction's commit returned.
    pub(super) async fn deposit(&self, request: TransitionRequest) -> Result<Executed, StoreError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job::Deposit {
                request: Box::new(request),
                done,
            })
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

/// The jobs of one group: writes on distinct dossiers, and deposits.
#[derive(Default)]
struct Group {
    writes: Vec<Write>,
    written: Vec<oneshot::Sender<Result<Written, StoreError>>>,
    deposits: Vec<TransitionRequest>,
    deposited: Vec<oneshot::Sender<Result<Executed, StoreError>>>,
    dossiers: HashSet<String>,
}

impl Group {
    fn len(&self) -> usize {
        self.writes.len() + self.deposits.len()
    }

    /// Takes a job into the group, or gives it back when the group already
    /// writes its dossier.
    fn take(&mut self, job: Job) -> Option<Job> {
        match job {
            Job::Write { write, done } => {
                if !self.dossiers.insert(write.dossier_id.clone()) {
                    return Some(Job::Write { write, done });
                }
                self.writes.push(*write);
                self.written.push(done);
            }
            Job::Deposit { request, done } => {
                self.deposits.push(*request);
                self.deposited.push(done);
            }
        }
        None
    }
}

/// The writer task: one group at a time, each made of every job waiting.
/// It runs in its own task so that a client going away never interrupts
/// a commit that carries other clients' writes.
async fn run(backend: Backend, pool: AnyPool, mut queue: mpsc::Receiver<Job>) {
    let mut held_back: Vec<Job> = Vec::new();
    loop {
        let mut group = Group::default();
        let mut later: Vec<Job> = Vec::new();
        for job in std::mem::take(&mut held_back) {
            later.extend(group.take(job));
        }
        if group.len() == 0 {
            match queue.recv().await {
                Some(job) => later.extend(group.take(job)),
                None => return,
            }
        }
        while group.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => later.extend(group.take(job)),
                Err(_) => break,
            }
        }
        held_back = later;
        // A bug that panics in one group must not stop every later write:
        // that group's requests are answered 503 (their transaction, not
        // committed, is rolled back) and the task goes on.
        let outcome = AssertUnwindSafe(write_group(backend, &pool, &group.writes, &group.deposits))
            .catch_unwind()
            .await;
        let Ok((written, deposited)) = outcome else {
            tracing::error!(
                jobs = group.len(),
                "a group of writes panicked; its requests are answered 503"
            );
            continue;
        };
        // A request may have gone; its write stands all the same.
        for (answer, outcome) in group.written.into_iter().zip(written) {
            let _ = answer.send(outcome);
        }
        for (answer, outcome) in group.deposited.into_iter().zip(deposited) {
            let _ = answer.send(outcome);
        }
    }
}

type Outcomes = (
    Vec<Result<Written, StoreError>>,
    Vec<Result<Executed, StoreError>>,
);

/// Writes a group in one transaction; one outcome per job, in order.
async fn write_group(
    backend: Backend,
    pool: &AnyPool,
    writes: &[Write],
    deposits: &[TransitionRequest],
) -> Outcomes {
    let outcome = match backend {
        Backend::Sqlite => sqlite_batch(pool, writes, deposits).await,
        Backend::Postgres => postgres_batch(pool, writes)
            .await
            .map(|written| (written, Vec::new())),
    };
    match outcome {
        Ok(outcomes) => outcomes,
        // A unique key taken or a deadlock with another instance's batch:
        // the batch wrote nothing; each job alone finds its own fate.
        Err(StoreError::Duplicate | StoreError::Contention)
            if writes.len() + deposits.len() > 1 =>
        {
            let mut written = Vec::with_capacity(writes.len());
            for write in writes {
                let alone = match backend {
                    Backend::Sqlite => sqlite_batch(pool, std::slice::from_ref(write), &[])
                        .await
                        .map(|(w, _)| w),
                    Backend::Postgres => postgres_batch(pool, std::slice::from_ref(write)).await,
                };
                written.push(alone.and_then(|mut o| o.pop().unwrap_or(Err(lost()))));
            }
            let mut deposited = Vec::with_capacity(deposits.len());
            for deposit in deposits {
                let alone = sqlite_batch(pool, &[], std::slice::from_ref(deposit))
                    .await
                    .map(|(_, d)| d);
                deposited.push(alone.and_then(|mut o| o.pop().unwrap_or(Err(lost()))));
            }
            (written, deposited)
        }
        Err(e) => (
            writes.iter().map(|_| Err(e.for_each_caller())).collect(),
            deposits.iter().map(|_| Err(e.for_each_caller())).collect(),
        ),
    }
}

fn lost() -> StoreError {
    StoreError::Other("écriture sans réponse".into())
}

/// SQLite: one `BEGIN IMMEDIATE … COMMIT` on the one writer connection,
/// and a few statements for the whole batch rather than a few per write:
/// each statement is a round trip to the connection's thread, which costs
/// more than the write itself.
async fn sqlite_batch(
    pool: &AnyPool,
    writes: &[Write],
    deposits: &[TransitionRequest],
) -> Result<Outcomes, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let written = sqlite_writes(&mut tx, writes).await?;
    // Each deposit whole, one after another, a savepoint each: one refused
    // or failing leaves the others (a refused deposit takes no number).
    let mut deposited = Vec::with_capacity(deposits.len());
    for request in deposits {
        sqlx::query("savepoint deposit").execute(&mut *tx).await?;
        let outcome = run_in_transaction(Backend::Sqlite, &mut tx, request).await;
        if outcome.is_err() {
            sqlx::query("rollback to deposit").execute(&mut *tx).await?;
        }
        sqlx::query("release deposit").execute(&mut *tx).await?;
        deposited.push(outcome);
    }
    tx.commit().await?;
    Ok((written, deposited))
}

/// The writes of a SQLite group, in the group's transaction.
async fn sqlite_writes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    writes: &[Write],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    // Each projection at the version read; the dossiers updated say which
    // writes go on (a batch names each dossier once).
    let updated: HashSet<String> = sqlx::query(
        "update dossier set state = i.state, version = i.version, \
           updated_at_us = i.updated_at_us, last_digest = i.digest, body = i.body, \
           awaiting = i.awaiting \
         from (select value ->> 'dossier_id' as dossier_id, \
           value ->> 'previous_version' as previous_version, value ->> 'state' as state, \
           value ->> 'version' as version, value ->> 'updated_at_us' as updated_at_us, \
           value ->> 'digest' as digest, value ->> 'body' as body, \
           value ->> 'awaiting' as awaiting from json_each($1)) as i \
         where dossier.dossier_id = i.dossier_id and dossier.version = i.previous_version \
         returning dossier.dossier_id",
    )
    .bind(batch_document(writes)?)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| row.try_get::<String, _>("dossier_id"))
    .collect::<Result<_, _>>()?;
    let written: Vec<&Write> = writes
        .iter()
        .filter(|w| updated.contains(&w.dossier_id))
        .collect();
    if !written.is_empty() {
        let document = serde_json::to_string(&written)?;
        let events: Vec<i64> = sqlx::query(
            "insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, \
               digest) \
             select value ->> 'dossier_id', value ->> 'seq', value ->> 'action', \
               value ->> 'agency', value ->> 'actor_id', value ->> 'at_us', value ->> 'event', \
               value ->> 'digest' from json_each($1) order by key \
             returning event_id",
        )
        .bind(&document)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>("event_id"))
        .collect::<Result<_, _>>()?;
        sqlx::query("insert into journal_pending (event_id) select value from json_each($1)")
            .bind(serde_json::to_string(&events)?)
            .execute(&mut **tx)
            .await?;
        let remembered: Vec<&Remembered> = written
            .iter()
            .filter_map(|w| w.idempotency.as_ref())
            .collect();
        if !remembered.is_empty() {
            sqlx::query(
                "insert into idempotency (actor_id, idempotency_key, request_sha256, status, \
                   body, created_at_us) \
                 select value ->> 'actor_id', value ->> 'key', value ->> 'request_sha256', \
                   value ->> 'status', value ->> 'body', value ->> 'created_at_us' \
                 from json_each($1)",
            )
            .bind(serde_json::to_string(&remembered)?)
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

/// The batch as one JSON document, each write with its place `n`: the
/// database unpacks it into rows, one statement whatever the batch's size.
fn batch_document(writes: &[Write]) -> Result<String, StoreError> {
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
    Ok(serde_json::to_string(&rows)?)
}

/// PostgreSQL: the whole batch in one statement (one round trip, one
/// commit). Each projection is updated only at the version read; the
/// events, their pending marks and the idempotency records are written for
/// the dossiers updated, and the statement returns those.
async fn postgres_batch(
    pool: &AnyPool,
    writes: &[Write],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
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
    .bind(batch_document(writes)?)
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
