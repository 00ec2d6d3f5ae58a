//! Crash safety: the real `ami` program, driven by concurrent clients, is
//! killed with SIGKILL at random moments and restarted. Every transition it
//! acknowledged must be in the journal exactly once, the journal must have no
//! gap, every projection must equal the fold of its journal, and replaying
//! the interrupted requests with their Idempotency-Key must change nothing.
//!
//! Set `AMI_FAULT_SEED` to replay a run's kill schedule.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ami_tests::process::{walk, AmiProcess, Crew, JournalCheck, Program, Sent, WalkLimits};
use ami_tests::{Backend, TestDb};
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 8;
/// The whole scenario, per backend.
const BOUND: Duration = Duration::from_secs(90);

fn program() -> Program {
    Program::new(env!("CARGO_BIN_EXE_ami-under-test"))
}

async fn crash_safety(backend: Backend) {
    match tokio::time::timeout(BOUND, scenario(backend)).await {
        Ok(result) => result.unwrap_or_else(|e| panic!("{backend:?}: {e:#}")),
        Err(_) => panic!("{backend:?}: crash test did not finish within {BOUND:?}"),
    }
}

async fn scenario(backend: Backend) -> anyhow::Result<()> {
    let started = Instant::now();
    let seed: u64 = std::env::var("AMI_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let db = TestDb::new(backend).await;
    let program = program();
    let mut server = AmiProcess::start(&program, &db.url).await?;
    let crew = Crew::create(&program, &db.url, "crash")?;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let limits = WalkLimits {
        stop: stop.clone(),
        give_up_at: started + BOUND - Duration::from_secs(25),
        retry_every: Duration::from_millis(50),
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(walk(
                client.clone(),
                server.api(),
                crew.clone(),
                limits.clone(),
            ))
        })
        .collect();

    let kills = rng.gen_range(3..=5);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..=600))).await;
        server.kill();
        server.restart().await?;
    }
    // Let the clients finish what the last crash interrupted and go on a bit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent: Vec<Sent> = Vec::new();
    for c in clients {
        sent.extend(c.await?);
    }

    let unanswered: Vec<&Sent> = sent.iter().filter(|s| s.answer.is_none()).collect();
    anyhow::ensure!(
        unanswered.is_empty(),
        "{} requests never answered",
        unanswered.len()
    );
    let refused: Vec<String> = sent
        .iter()
        .filter(|s| !s.acknowledged())
        .map(|s| format!("{} {}: {:?}", s.action, s.path, s.answer))
        .collect();
    anyhow::ensure!(refused.is_empty(), "requests refused: {refused:#?}");
    let acknowledged = sent.len();
    let interrupted: Vec<&Sent> = sent.iter().filter(|s| s.interrupted()).collect();
    let cut = sent.iter().filter(|s| s.cut_in_flight()).count();

    let store = ami_service::store::connect(&db.url.parse()?).await?;
    let journal = JournalCheck::run(&*store).await?;
    anyhow::ensure!(
        journal.problems.is_empty(),
        "journal: {:#?}",
        journal.problems
    );
    let mut found = 0;
    let mut per_dossier: BTreeMap<_, usize> = BTreeMap::new();
    for s in &sent {
        let (id, seq) = s
            .acknowledged_event()
            .ok_or_else(|| anyhow::anyhow!("2xx without id and version: {:?}", s.answer))?;
        *per_dossier.entry(id).or_default() += 1;
        let n = journal.count(id, seq);
        anyhow::ensure!(
            n == 1,
            "{} on {id:?} seq {seq}: {n} events in the journal",
            s.action
        );
        let event = journal.event(id, seq).expect("counted");
        anyhow::ensure!(
            event.action == s.action.as_str(),
            "{id:?} seq {seq}: journal has {}, acknowledged {}",
            event.action,
            s.action
        );
        found += 1;
    }
    // Nothing in the journal that was not acknowledged: no duplicate from a retry.
    anyhow::ensure!(
        journal.events == acknowledged,
        "{} events in the journal for {acknowledged} acknowledged requests",
        journal.events
    );
    for (id, events) in &journal.by_dossier {
        anyhow::ensure!(
            per_dossier.get(id) == Some(&events.len()),
            "dossier {id:?}: {} events, {:?} acknowledged",
            events.len(),
            per_dossier.get(id)
        );
    }

    // Replaying every interrupted request with its key gives the first answer
    // again and writes nothing.
    let before: Vec<_> = {
        let mut v = Vec::new();
        for id in journal.by_dossier.keys() {
            v.push(store.get_dossier(*id).await?);
        }
        v
    };
    for s in &interrupted {
        let (status, body) = s.replay(&client, &server.api()).await?;
        let (first_status, first_body) = s.answer.as_ref().expect("answered");
        anyhow::ensure!(
            status == *first_status && body == *first_body,
            "replay of {} {} gave {status} {body}, first answer {first_status} {first_body}",
            s.action,
            s.path
        );
    }
    let after = JournalCheck::run(&*store).await?;
    anyhow::ensure!(
        after.problems.is_empty(),
        "journal after replay: {:#?}",
        after.problems
    );
    anyhow::ensure!(
        after.events == journal.events,
        "replays wrote: {} events, {} before",
        after.events,
        journal.events
    );
    for (id, d) in journal.by_dossier.keys().zip(before) {
        anyhow::ensure!(
            store.get_dossier(*id).await? == d,
            "replay changed dossier {id:?}"
        );
    }
    store.close().await;
    server.kill();

    println!(
        "fault_crash {backend:?}: seed {seed}, {acknowledged} acknowledged, {found} found exactly once, \
         {} events in journal, {} dossiers, {} interrupted requests ({cut} cut in flight) replayed, {kills} SIGKILL survived, \
         lost 0, {:.1} s",
        journal.events,
        journal.by_dossier.len(),
        interrupted.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_survives_sigkill() {
    crash_safety(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_survives_sigkill() {
    crash_safety(Backend::Postgres).await
}
