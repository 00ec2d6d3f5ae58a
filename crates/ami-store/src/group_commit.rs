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

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::write::{Write, Written};
use crate::{Executed, StoreError, TransitionRequest};

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
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("l'écrivain de la base s'est arrêté".into())
}

impl GroupCommit {
    /// Starts the writer task of a backend.
    pub fn start<W: GroupWriter>(writer: W) -> GroupCommit {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(writer, queue));
        GroupCommit { jobs }
    }

    /// Writes `write` with whatever else is ready, and answers once its
    /// batch's commit returned.
    pub async fn write(&self, write: Write) -> Result<Written, StoreError> {
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
    pub async fn deposit(&self, request: TransitionRequest) -> Result<Executed, StoreError> {
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
async fn run<W: GroupWriter>(writer: W, mut queue: mpsc::Receiver<Job>) {
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
        let outcome = AssertUnwindSafe(write_group(&writer, &group.writes, &group.deposits))
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

/// One outcome per write and per deposit of a group, in order.
pub type Outcomes = (
    Vec<Result<Written, StoreError>>,
    Vec<Result<Executed, StoreError>>,
);

/// What a backend does for the writer task.
#[async_trait]
pub trait GroupWriter: Send + Sync + 'static {
    /// Writes a group in one transaction and commits it: each write only
    /// where its dossier is still at the version read (else
    /// [`Written::VersionMoved`], nothing of it written), each deposit run
    /// whole (a backend that runs deposits on their own is given none).
    /// An error means nothing of the group was written.
    async fn write_group(
        &self,
        writes: &[Write],
        deposits: &[TransitionRequest],
    ) -> Result<Outcomes, StoreError>;
}

/// Writes a group in one transaction; one outcome per job, in order.
async fn write_group<W: GroupWriter>(
    writer: &W,
    writes: &[Write],
    deposits: &[TransitionRequest],
) -> Outcomes {
    match writer.write_group(writes, deposits).await {
        Ok(outcomes) => outcomes,
        // A unique key taken or a deadlock with another instance's batch:
        // the batch wrote nothing; each job alone finds its own fate.
        Err(StoreError::Duplicate | StoreError::Contention)
            if writes.len() + deposits.len() > 1 =>
        {
            let mut written = Vec::with_capacity(writes.len());
            for write in writes {
                let alone = writer
                    .write_group(std::slice::from_ref(write), &[])
                    .await
                    .map(|(w, _)| w);
                written.push(alone.and_then(|mut o| o.pop().unwrap_or(Err(lost()))));
            }
            let mut deposited = Vec::with_capacity(deposits.len());
            for deposit in deposits {
                let alone = writer
                    .write_group(&[], std::slice::from_ref(deposit))
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

/// The batch as one JSON document, each write with its place `n`: the
/// database unpacks it into rows, one statement whatever the batch's size.
pub fn batch_document(writes: &[Write]) -> Result<String, StoreError> {
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
