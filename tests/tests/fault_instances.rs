//! Several `ami serve` processes on one PostgreSQL database: racing
//! transitions on the same dossiers with the same expected_version (exactly
//! one wins, the others get 409), a feed consumer alternating instances while
//! writes go on (every event exactly once, in seq order per dossier), and a
//! token revoked through the CLI refused by every instance from the next
//! request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ami_core::DossierId;
use ami_tests::process::{files_url_of, AmiProcess, Crew, JournalCheck, Program};
use ami_tests::{deposit_multipart, new_dossier, Backend, TestDb};
use serde_json::{json, Value};

const INSTANCES: usize = 3;
/// Racers per step of each dossier, spread over the instances.
const RACERS: usize = 4;
const DOSSIERS: usize = 40;
/// Dossiers raced at the same time (keeps the connection count modest on a
/// shared server).
const AT_ONCE: usize = 8;
const BOUND: Duration = Duration::from_secs(90);

fn program() -> Program {
    Program::new(env!("CARGO_BIN_EXE_ami-under-test"))
}

struct Cluster {
    db: TestDb,
    program: Program,
    servers: Vec<AmiProcess>,
    /// The pièces' files, one folder for every instance.
    _files: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> anyhow::Result<Cluster> {
        let db = TestDb::new(Backend::Postgres).await;
        let program = program();
        let files = tempfile::tempdir()?;
        let files_url = files_url_of(files.path());
        let mut servers = Vec::new();
        for _ in 0..INSTANCES {
            servers.push(AmiProcess::start_with_files(&program, &db.url, &files_url).await?);
        }
        Ok(Cluster {
            db,
            program,
            servers,
            _files: files,
        })
    }

    fn apis(&self) -> Vec<String> {
        self.servers.iter().map(AmiProcess::api).collect()
    }
}

async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let res = req.send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// What one step of one dossier's race gave.
#[derive(Debug)]
struct Race {
    dossier: DossierId,
    action: &'static str,
    expected_version: u64,
    answers: Vec<(usize, u16, Value)>,
}

async fn race_dossier(
    client: reqwest::Client,
    apis: Arc<Vec<String>>,
    crews: Arc<Vec<Crew>>,
    n: usize,
) -> anyhow::Result<(DossierId, Vec<Race>)> {
    let api = &apis[n % apis.len()];
    let (status, body) = send(
        client
            .post(format!("{api}/dossiers"))
            .bearer_auth(&crews[0].dar)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            // With the pièces' files: the dossier goes on to be instructed.
            .multipart(deposit_multipart(&new_dossier("Nevers", &["acv", "ti"]))),
    )
    .await?;
    anyhow::ensure!(status == 201, "deposit: {status} {body}");
    let id = DossierId(uuid::Uuid::try_parse(
        body["id"].as_str().unwrap_or_default(),
    )?);
    let mut version = 1;
    let mut races = Vec::new();
    for (action, verdict) in [
        ("instruire", Some("favorable")),
        ("avis_acv", Some("favorable")),
        ("avis_ti", Some("favorable")),
        ("declarer_laureat", None),
    ] {
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|r| {
                let crew = &crews[r % crews.len()];
                let token = match action {
                    "instruire" => crew.dar.clone(),
                    "avis_acv" => crew.acv.clone(),
                    "avis_ti" => crew.ti.clone(),
                    _ => crew.boss.clone(),
                };
                let mut body = json!({"action": action, "expected_version": version});
                if let Some(v) = verdict {
                    body["verdict"] = v.into();
                }
                let instance = (n + r) % apis.len();
                let url = format!("{}/dossiers/{}/transitions", apis[instance], id.0);
                let client = client.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let req = client
                        .post(url)
                        .bearer_auth(token)
                        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                        .json(&body);
                    barrier.wait().await;
                    send(req).await.map(|(s, b)| (instance, s, b))
                })
            })
            .collect();
        let mut answers = Vec::new();
        for r in racers {
            answers.push(r.await??);
        }
        let winner = answers.iter().find(|(_, s, _)| *s == 200);
        let next = winner.and_then(|(_, _, b)| b["version"].as_u64());
        races.push(Race {
            dossier: id,
            action,
            expected_version: version,
            answers,
        });
        match next {
            Some(v) => version = v,
            None => break,
        }
    }
    Ok((id, races))
}

/// Follows the feed with its cursor, one page from each instance in turn,
/// until `target` (set once the writers are done) events are seen.
async fn consume(
    client: reqwest::Client,
    apis: Arc<Vec<String>>,
    token: String,
    target: Arc<AtomicU64>,
    deadline: Instant,
) -> anyhow::Result<(Vec<(DossierId, u64)>, Vec<String>, usize)> {
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    let mut last_seq: BTreeMap<DossierId, u64> = BTreeMap::new();
    let mut set = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut polls = 0;
    loop {
        let api = &apis[polls % apis.len()];
        polls += 1;
        let mut url = format!("{api}/events?limit=37");
        if let Some(c) = &cursor {
            url += &format!("&after={c}");
        }
        let (status, page) = send(client.get(url).bearer_auth(&token)).await?;
        anyhow::ensure!(status == 200, "feed: {status} {page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for item in &items {
            let id = DossierId(uuid::Uuid::try_parse(
                item["dossier_id"].as_str().unwrap_or_default(),
            )?);
            let seq = item["seq"].as_u64().unwrap_or_default();
            if !set.insert((id, seq)) {
                problems.push(format!("{id:?} seq {seq} seen twice"));
            }
            let last = last_seq.entry(id).or_insert(0);
            if seq != *last + 1 {
                problems.push(format!("{id:?}: seq {seq} after {last}"));
            }
            *last = seq;
            seen.push((id, seq));
        }
        cursor = page["next_cursor"].as_str().map(str::to_string).or(cursor);
        let target = target.load(Ordering::SeqCst);
        if target != 0 && seen.len() as u64 >= target && items.is_empty() {
            return Ok((seen, problems, polls));
        }
        if Instant::now() > deadline {
            problems.push(format!(
                "consumer saw {} events, target {target}, at deadline",
                seen.len()
            ));
            return Ok((seen, problems, polls));
        }
        if items.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn races_and_feed() -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start().await?;
    let mut crews = Vec::new();
    for r in 0..RACERS {
        crews.push(Crew::create(
            &cluster.program,
            &cluster.db.url,
            &format!("r{r}"),
        )?);
    }
    let crews = Arc::new(crews);
    let apis = Arc::new(cluster.apis());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;

    let target = Arc::new(AtomicU64::new(0));
    let consumer = tokio::spawn(consume(
        client.clone(),
        apis.clone(),
        crews[0].acv.clone(),
        target.clone(),
        started + BOUND - Duration::from_secs(20),
    ));

    let limit = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let writers: Vec<_> = (0..DOSSIERS)
        .map(|n| {
            let (client, apis, crews, limit) =
                (client.clone(), apis.clone(), crews.clone(), limit.clone());
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await?;
                race_dossier(client, apis, crews, n).await
            })
        })
        .collect();
    let mut races = Vec::new();
    let mut dossiers = Vec::new();
    for w in writers {
        let (id, r) = w.await??;
        dossiers.push(id);
        races.extend(r);
    }
    let writes_done = started.elapsed();

    // Exactly one winner per race, every other racer 409 version_conflict.
    let mut wins = 0;
    let mut conflicts = 0;
    let mut wins_by_instance = [0usize; INSTANCES];
    for race in &races {
        let winners: Vec<_> = race.answers.iter().filter(|(_, s, _)| *s == 200).collect();
        anyhow::ensure!(
            winners.len() == 1,
            "{:?} {} at version {}: {} winners: {:?}",
            race.dossier,
            race.action,
            race.expected_version,
            winners.len(),
            race.answers
        );
        wins_by_instance[winners[0].0] += 1;
        wins += 1;
        for (_, status, body) in race.answers.iter().filter(|(_, s, _)| *s != 200) {
            anyhow::ensure!(
                *status == 409 && body["code"] == "version_conflict",
                "{:?} {}: loser got {status} {body}",
                race.dossier,
                race.action
            );
            conflicts += 1;
        }
    }
    anyhow::ensure!(
        races.len() == DOSSIERS * 4,
        "{} races for {DOSSIERS} dossiers",
        races.len()
    );

    let store = ami_service::store::connect(&cluster.db.url.parse()?).await?;
    let journal = JournalCheck::run(&*store).await?;
    anyhow::ensure!(
        journal.problems.is_empty(),
        "journal: {:#?}",
        journal.problems
    );
    anyhow::ensure!(
        journal.events == DOSSIERS + wins,
        "journal has {} events, expected {} deposits + {wins} wins",
        journal.events,
        DOSSIERS
    );
    for id in &dossiers {
        let d = store
            .get_dossier(*id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{id:?} missing"))?;
        anyhow::ensure!(
            d.state == "laureat" && d.version == 5,
            "{id:?}: {} v{}",
            d.state,
            d.version
        );
    }

    target.store(journal.events as u64, Ordering::SeqCst);
    let (seen, problems, polls) = consumer.await??;
    anyhow::ensure!(problems.is_empty(), "consumer: {problems:#?}");
    anyhow::ensure!(
        seen.len() == journal.events,
        "consumer saw {} events, journal has {}",
        seen.len(),
        journal.events
    );
    for (id, seq) in &seen {
        anyhow::ensure!(
            journal.count(*id, *seq) == 1,
            "consumer saw {id:?} seq {seq} not in the journal"
        );
    }
    store.close().await;

    println!(
        "fault_instances races: {INSTANCES} instances, {DOSSIERS} dossiers, {} races of {RACERS}, \
         {wins} won (by instance {wins_by_instance:?}), {conflicts} got 409, journal {} events no gap no duplicate, \
         consumer {} events in {polls} polls = journal, writes {:.1} s, total {:.1} s",
        races.len(),
        journal.events,
        seen.len(),
        writes_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn revocation() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let client = reqwest::Client::new();
    let (id, token) =
        cluster
            .program
            .create_token(&cluster.db.url, "Claire Petit", "acv", "agent")?;
    for api in cluster.apis() {
        let (status, body) = send(
            client
                .get(format!("{api}/dossiers?limit=1"))
                .bearer_auth(&token),
        )
        .await?;
        anyhow::ensure!(status == 200, "{api} before revocation: {status} {body}");
    }
    cluster.program.revoke_token(&cluster.db.url, id)?;
    for api in cluster.apis() {
        let (status, body) = send(
            client
                .get(format!("{api}/dossiers?limit=1"))
                .bearer_auth(&token),
        )
        .await?;
        anyhow::ensure!(
            status == 401 && body["code"] == "revoked_token",
            "{api} after revocation: {status} {body}"
        );
    }
    println!("fault_instances revocation: refused (401 revoked_token) by {INSTANCES}/{INSTANCES} instances on the next request");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_instances_keep_one_winner_and_the_feed_whole() {
    match tokio::time::timeout(BOUND, races_and_feed()).await {
        Ok(r) => r.unwrap_or_else(|e| panic!("{e:#}")),
        Err(_) => panic!("did not finish within {BOUND:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_by_every_instance() {
    match tokio::time::timeout(BOUND, revocation()).await {
        Ok(r) => r.unwrap_or_else(|e| panic!("{e:#}")),
        Err(_) => panic!("did not finish within {BOUND:?}"),
    }
}
