//! Letters and SIGKILL: the real `ami serve`, sending through a real SMTP
//! server (aiosmtpd, `ami_tests::smtp_sink`), is killed between the commit
//! of an event and the sending of its letter, and restarted. Every
//! acknowledged deposit must reach the town as one accusé de réception,
//! every acknowledged decision as one decision letter, to the porteur's
//! address and with the dossier's reference, and
//! `GET /dossiers/{id}/messages` must say `envoye`.
//!
//! « One » means one `Message-ID`. Sending is at least once: a process
//! killed after the relay kept a letter but before the outbox recorded it
//! sends it again, after its claim's lease, with the same `Message-ID` (the
//! outbox row's id). The scripted test makes that happen once on purpose
//! and counts the two copies; the random test counts what it hits. Both
//! check that no event ever got two different `Message-ID`s, and that no
//! letter was lost.
//!
//! The service runs with the hidden drill settings `AMI_MAIL_LEASE=2s`,
//! `AMI_MAIL_FIRST_RETRY=300ms` and `AMI_MAIL_TICK=100ms`, so that a
//! letter claimed by a killed process, or waiting after a failure, goes out
//! within seconds instead of minutes. `AMI_FAULT_SEED` replays the random
//! test's kill schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ami_tests::process::{send_until_answered, AmiProcess, Crew, Program, Sent, WalkLimits};
use ami_tests::smtp_sink::SmtpSink;
use ami_tests::{new_dossier, Backend, TestDb};
use anyhow::{bail, ensure, Context as _};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const FROM: &str = "AMI Au cœur des territoires <ami@ami.example>";
const CONTACT: &str = "contact@ami.example";
/// The claim's lease the service runs with.
const LEASE: Duration = Duration::from_secs(2);
/// How long letters may take to be sent once everything is up again:
/// a lease, a retry's wait and a few looks of the worker; generous, since
/// `cargo test --workspace` runs every suite on the same 2 cores at once
/// (20 s was once not enough there).
const DRAIN: Duration = Duration::from_secs(60);
/// A whole scenario, per backend.
const BOUND: Duration = Duration::from_secs(150);

fn program(sink: &SmtpSink) -> Program {
    let mut p = Program::new(env!("CARGO_BIN_EXE_ami-under-test"));
    p.env.extend(
        [
            ("AMI_SMTP_URL", sink.url()),
            ("AMI_MAIL_FROM", FROM.to_string()),
            ("AMI_MAIL_CONTACT", CONTACT.to_string()),
            ("AMI_MAIL_LEASE", format!("{}s", LEASE.as_secs())),
            ("AMI_MAIL_FIRST_RETRY", "300ms".to_string()),
            ("AMI_MAIL_TICK", "100ms".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    p
}

/// A dossier a client took through the service: what it was told.
#[derive(Debug, Clone)]
struct Walked {
    id: String,
    reference: String,
    email: String,
    /// The decision acknowledged: lauréat (true) or refused (false).
    decided: Option<bool>,
}

/// One dossier: a deposit with the porteur's own address, then either
/// the path to `declarer_laureat` or `refuser`. Every request is retried
/// with its Idempotency-Key until answered. The dossier as acknowledged,
/// and everything sent; an error when a request was refused.
async fn walk_one(
    client: &reqwest::Client,
    api: &str,
    crew: &Crew,
    n: usize,
    limits: &WalkLimits,
    sent: &mut Vec<Sent>,
) -> anyhow::Result<Walked> {
    let email = format!("mairie-{n}@commune-{n}.example");
    let mut body = new_dossier(&format!("Commune {n}"), &["acv"]);
    body["porteur"]["email"] = json!(email);
    let deposit = Sent {
        key: uuid::Uuid::new_v4().to_string(),
        token: crew.dar.clone(),
        path: "/dossiers".into(),
        body,
        with_files: true,
        action: "deposer".into(),
        attempts: Vec::new(),
        answer: None,
    };
    let deposit = send_until_answered(client, api, deposit, limits).await;
    let answer = deposit.answer.clone();
    sent.push(deposit);
    let (status, d) = answer.context("deposit never answered")?;
    ensure!(status == 201, "deposit: {status} {d}");
    let mut walked = Walked {
        id: d["id"].as_str().context("id")?.to_string(),
        reference: d["reference"].as_str().context("reference")?.to_string(),
        email,
        decided: None,
    };
    let mut version = d["version"].as_u64().context("version")?;
    let laureat = n.is_multiple_of(2);
    let steps: Vec<(&String, &str, Value)> = if laureat {
        vec![
            (&crew.dar, "instruire", json!({"verdict": "favorable"})),
            (&crew.acv, "avis_acv", json!({"verdict": "favorable"})),
            (&crew.boss, "declarer_laureat", json!({})),
        ]
    } else {
        vec![
            (&crew.dar, "instruire", json!({"verdict": "favorable"})),
            (
                &crew.boss,
                "refuser",
                json!({"motivation": "Budget prévisionnel incomplet"}),
            ),
        ]
    };
    for (token, action, mut body) in steps {
        body["action"] = json!(action);
        body["expected_version"] = json!(version);
        let step = Sent {
            key: uuid::Uuid::new_v4().to_string(),
            token: token.clone(),
            path: format!("/dossiers/{}/transitions", walked.id),
            body,
            with_files: false,
            action: action.into(),
            attempts: Vec::new(),
            answer: None,
        };
        let step = send_until_answered(client, api, step, limits).await;
        let answer = step.answer.clone();
        sent.push(step);
        let (status, d) = answer.with_context(|| format!("{action} never answered"))?;
        ensure!(status == 200, "{action}: {status} {d}");
        version = d["version"].as_u64().context("version")?;
    }
    walked.decided = Some(laureat);
    Ok(walked)
}

/// Dossiers `first..` one after another until `limits.stop` (checked
/// between dossiers) or `count` are done.
async fn walk_many(
    client: reqwest::Client,
    api: String,
    crew: Crew,
    first: usize,
    count: usize,
    limits: WalkLimits,
) -> anyhow::Result<(Vec<Walked>, Vec<Sent>)> {
    let mut walked = Vec::new();
    let mut sent = Vec::new();
    for n in first..first + count {
        if limits.stop.load(Ordering::Relaxed) {
            break;
        }
        walked.push(walk_one(&client, &api, &crew, n, &limits, &mut sent).await?);
    }
    Ok((walked, sent))
}

fn limits(give_up_in: Duration) -> WalkLimits {
    WalkLimits {
        stop: Arc::new(AtomicBool::new(false)),
        give_up_at: Instant::now() + give_up_in,
        retry_every: Duration::from_millis(50),
    }
}

/// The letters of a dossier, as `GET /dossiers/{id}/messages` gives them.
async fn messages(
    client: &reqwest::Client,
    server: &AmiProcess,
    crew: &Crew,
    id: &str,
) -> anyhow::Result<Vec<Value>> {
    let res = client
        .get(format!("{}/dossiers/{id}/messages", server.api()))
        .bearer_auth(&crew.dar)
        .send()
        .await?;
    ensure!(res.status() == 200, "messages of {id}: {}", res.status());
    let body: Value = res.json().await?;
    Ok(body["items"].as_array().context("items")?.clone())
}

/// Polls a dossier's letters until `done` holds of them, for up to `within`.
async fn messages_until(
    client: &reqwest::Client,
    server: &AmiProcess,
    crew: &Crew,
    id: &str,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + within;
    loop {
        let items = messages(client, server, crew, id).await?;
        if done(&items) {
            return Ok(items);
        }
        if Instant::now() > deadline {
            bail!("dossier {id}: letters not there after {within:?}: {items:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A letter the sink received, as the town reads it.
#[derive(Debug, Clone)]
struct Got {
    /// `accuse_reception` or `decision`, from the subject.
    kind: &'static str,
    subject: String,
    to: Vec<String>,
    message_id: String,
}

fn received(sink: &SmtpSink) -> anyhow::Result<Vec<Got>> {
    sink.received()?
        .iter()
        .map(|r| {
            let m = mail_parser::MessageParser::default()
                .parse(&r.raw)
                .context("a message")?;
            let subject = m.subject().unwrap_or_default().to_string();
            let kind = if subject.starts_with("Accusé de réception") {
                "accuse_reception"
            } else if subject.starts_with("Votre candidature") {
                "decision"
            } else {
                bail!("a letter of no known kind: {subject}");
            };
            Ok(Got {
                kind,
                subject,
                to: r.rcpt_to.clone(),
                message_id: m.message_id().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// Whether `subject` names `reference` as a word of its own.
fn names(subject: &str, reference: &str) -> bool {
    subject
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .any(|w| w == reference)
}

/// What the sink and the outbox hold once every letter is sent.
#[derive(Debug, Default)]
struct Tally {
    letters: usize,
    /// Copies received beyond the first of a letter (same Message-ID).
    resent: usize,
}

/// Waits until every letter of `walked` is `envoye`, then checks the sink:
/// for each event its one letter, to the porteur, naming the reference,
/// under the `Message-ID` made from its outbox row, and nothing else.
async fn every_letter_once(
    client: &reqwest::Client,
    server: &AmiProcess,
    crew: &Crew,
    walked: &[Walked],
    sink: &SmtpSink,
) -> anyhow::Result<Tally> {
    let deadline = Instant::now() + DRAIN;
    let mut rows: BTreeMap<(String, &'static str), Value> = BTreeMap::new();
    for w in walked {
        let expected = 1 + usize::from(w.decided.is_some());
        let within = deadline.saturating_duration_since(Instant::now());
        let items = messages_until(client, server, crew, &w.id, within, |m| {
            m.len() == expected && m.iter().all(|x| x["status"] == "envoye")
        })
        .await?;
        for item in items {
            let kind = match item["kind"].as_str() {
                Some("accuse_reception") => "accuse_reception",
                Some("decision") => "decision",
                other => bail!("dossier {}: a letter of kind {other:?}", w.id),
            };
            ensure!(
                item["recipient"] == w.email.as_str(),
                "dossier {}: {kind} to {}",
                w.id,
                item["recipient"]
            );
            rows.insert((w.id.clone(), kind), item);
        }
    }
    // Every letter is recorded as sent: the relay accepted each before.
    let got = received(sink)?;
    let mut tally = Tally::default();
    let mut accounted = 0;
    for w in walked {
        let mut kinds = vec!["accuse_reception"];
        if w.decided.is_some() {
            kinds.push("decision");
        }
        for kind in kinds {
            let copies: Vec<&Got> = got
                .iter()
                .filter(|g| g.kind == kind && names(&g.subject, &w.reference))
                .collect();
            let ids: BTreeSet<&str> = copies.iter().map(|g| g.message_id.as_str()).collect();
            let row = &rows[&(w.id.clone(), kind)];
            let expected_id = format!("{}@ami.example", row["id"].as_str().context("row id")?);
            ensure!(
                ids.len() == 1 && ids.contains(expected_id.as_str()),
                "{} {kind}: Message-IDs {ids:?} in the sink, expected exactly {expected_id} \
                 ({} copies)",
                w.reference,
                copies.len()
            );
            for g in &copies {
                ensure!(
                    g.to == vec![w.email.clone()],
                    "{} {kind} sent to {:?}",
                    w.reference,
                    g.to
                );
            }
            if kind == "decision" {
                let laureat = w.decided == Some(true);
                let says_laureat = !copies[0].subject.ends_with("n'est pas retenue")
                    && copies[0].subject.ends_with("est retenue");
                ensure!(
                    says_laureat == laureat,
                    "{}: decided lauréat {laureat}, the letter says « {} »",
                    w.reference,
                    copies[0].subject
                );
            }
            tally.letters += 1;
            tally.resent += copies.len() - 1;
            accounted += copies.len();
        }
    }
    ensure!(
        accounted == got.len(),
        "{} letters in the sink, {accounted} belong to the acknowledged events",
        got.len()
    );
    Ok(tally)
}

async fn bounded(
    name: &str,
    backend: Backend,
    scenario: impl std::future::Future<Output = anyhow::Result<()>>,
) {
    match tokio::time::timeout(BOUND, scenario).await {
        Ok(result) => result.unwrap_or_else(|e| panic!("{name} {backend:?}: {e:#}")),
        Err(_) => panic!("{name} {backend:?}: not finished within {BOUND:?}"),
    }
}

/// The windows between the commit and the sending, each opened on purpose:
/// 1. the relay is down while the events are committed: every letter is
///    tried, kept, and the process is killed; the relay comes back, the
///    process restarts, every letter goes once;
/// 2. the relay accepts the connection but does not greet: the letter is
///    claimed and being sent when the process is killed; after the lease
///    the restarted process sends it, once;
/// 3. the relay keeps the letter but its `250` is held back when the
///    process is killed: the letter is sent again after the lease, with
///    the same `Message-ID`, the at-least-once window.
async fn scripted(backend: Backend) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut sink = SmtpSink::start()?;
    let db = TestDb::new(backend).await;
    let program = program(&sink);
    let mut server = AmiProcess::start(&program, &db.url).await?;
    let crew = Crew::create(&program, &db.url, "lettres")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    // 1. Relay down while deposits and decisions are committed.
    sink.stop();
    let (mut walked, _) = walk_many(
        client.clone(),
        server.api(),
        crew.clone(),
        0,
        6,
        limits(Duration::from_secs(20)),
    )
    .await?;
    for w in &walked {
        let expected = 1 + usize::from(w.decided.is_some());
        let items = messages_until(&client, &server, &crew, &w.id, DRAIN, |m| {
            m.len() == expected
                && m.iter()
                    .all(|x| x["status"] == "en_attente" && x["last_error"].is_string())
        })
        .await?;
        ensure!(items.iter().all(|x| x["sent_at"].is_null()));
    }
    server.kill();
    ensure!(sink.received()?.is_empty(), "sent while the relay was down");
    sink.start_again()?;
    server.restart().await?;
    let tally = every_letter_once(&client, &server, &crew, &walked, &sink).await?;
    ensure!(tally.resent == 0, "{tally:?}");

    // 2. Relay frozen: the letter is claimed and its sending under way.
    sink.freeze()?;
    let (second, _) = walk_many(
        client.clone(),
        server.api(),
        crew.clone(),
        6,
        1,
        limits(Duration::from_secs(10)),
    )
    .await?;
    let frozen = second[0].clone();
    // The worker is stuck on the accusé (claimed, one attempt begun, no
    // error); the decision committed meanwhile waits behind it.
    let claimed = messages_until(&client, &server, &crew, &frozen.id, DRAIN, |m| {
        m.iter().any(|x| {
            x["kind"] == "accuse_reception"
                && x["status"] == "en_attente"
                && x["attempts"] == 1
                && x["last_error"].is_null()
        })
    })
    .await?;
    server.kill();
    sink.thaw()?;
    server.restart().await?;
    walked.extend(second);
    let tally = every_letter_once(&client, &server, &crew, &walked, &sink).await?;
    ensure!(tally.resent == 0, "{tally:?}");
    let after = messages(&client, &server, &crew, &frozen.id).await?;
    ensure!(
        after
            .iter()
            .any(|x| x["kind"] == "accuse_reception" && x["attempts"].as_u64() >= Some(2)),
        "the letter claimed when killed was sent again by the restarted process: \
         before {claimed:#?}, after {after:#?}"
    );

    // 3. Relay keeps the letter, its 250 held back: killed in between.
    sink.hold_replies()?;
    let before = sink.received()?.len();
    let (third, _) = walk_many(
        client.clone(),
        server.api(),
        crew.clone(),
        7,
        1,
        limits(Duration::from_secs(10)),
    )
    .await?;
    let deadline = Instant::now() + DRAIN;
    // The accusé is kept (the decision waits behind it, same batch or next).
    while sink.received()?.len() == before {
        ensure!(Instant::now() < deadline, "the relay never got the letter");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    sink.release_replies()?;
    server.restart().await?;
    walked.extend(third);
    let tally = every_letter_once(&client, &server, &crew, &walked, &sink).await?;
    ensure!(
        tally.resent == 1,
        "one letter kept by the relay when the process was killed is sent again, once: {tally:?}"
    );
    server.kill();
    println!(
        "mail_crash scripted {backend:?}: {} dossiers, {} letters, each under one Message-ID, \
         3 SIGKILLs between commit and sending, 1 letter received twice with the same \
         Message-ID (killed before the relay's 250), lost 0, {:.1} s",
        walked.len(),
        tally.letters,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Clients deposit and decide while the process is killed at random
/// moments; the relay waits 100 ms before each `250`, so that kills land
/// while letters are being sent.
async fn random_kills(backend: Backend) -> anyhow::Result<()> {
    let started = Instant::now();
    let seed: u64 = std::env::var("AMI_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sink = SmtpSink::start_slow(Duration::from_millis(100))?;
    let db = TestDb::new(backend).await;
    let program = program(&sink);
    let mut server = AmiProcess::start(&program, &db.url).await?;
    let crew = Crew::create(&program, &db.url, "hasard")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let limits = limits(Duration::from_secs(25));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            tokio::spawn(walk_many(
                client.clone(),
                server.api(),
                crew.clone(),
                c * 1000,
                1000,
                limits.clone(),
            ))
        })
        .collect();
    let kills = rng.gen_range(4..=6);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..=900))).await;
        server.kill();
        server.restart().await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    limits.stop.store(true, Ordering::Relaxed);
    let mut walked = Vec::new();
    let mut sent = Vec::new();
    for c in clients {
        let (w, s) = c.await??;
        walked.extend(w);
        sent.extend(s);
    }
    ensure!(!walked.is_empty(), "no dossier walked");
    let cut = sent.iter().filter(|s| s.interrupted()).count();

    let tally = every_letter_once(&client, &server, &crew, &walked, &sink).await?;
    server.kill();
    println!(
        "mail_crash random {backend:?}: seed {seed}, {kills} SIGKILLs, {} dossiers, {} requests \
         ({cut} interrupted and replayed), {} letters each under one Message-ID, {} copies \
         received again with the same Message-ID, lost 0, {:.1} s",
        walked.len(),
        sent.len(),
        tally.letters,
        tally.resent,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// Named at the top level (not `sqlite::…`) so that `.ci/run` counts them
// with the other mail transport tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_letters_killed_between_commit_and_sending_go_once() {
    bounded("scripted", Backend::Sqlite, scripted(Backend::Sqlite)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_letters_killed_between_commit_and_sending_go_once() {
    bounded("scripted", Backend::Postgres, scripted(Backend::Postgres)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_letters_survive_sigkills_at_random_moments() {
    bounded("random", Backend::Sqlite, random_kills(Backend::Sqlite)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_letters_survive_sigkills_at_random_moments() {
    bounded("random", Backend::Postgres, random_kills(Backend::Postgres)).await
}
