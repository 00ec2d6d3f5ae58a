//! The database-fault drill: `cargo run -p ami-tests --bin pg-fault`.
//!
//! Not a cargo test: it stops a PostgreSQL server. It never touches the
//! shared one; it makes its own throwaway cluster (initdb in a temporary
//! folder owned by `postgres`, on a free port from 55432), runs `ami serve`
//! on it under concurrent load, stops PostgreSQL (`pg_ctl stop -m fast`) for
//! about 5 s while the clients go on, starts it again, and checks:
//!
//! - while the database is down every answer is 503 problem+json with code
//!   `database_unavailable` (never 500), and comes within the service's
//!   request timeout (10 s) plus a margin;
//! - the service recovers by itself within 30 s of PostgreSQL's restart;
//! - every transition acknowledged 2xx, before or after, is in the journal
//!   exactly once (lost = 0), and the journal is sound.
//!
//! Prints one summary line, exits non-zero on any failure, removes the
//! cluster. Bounded at 3 minutes. Run as root (it uses `runuser -u postgres`)
//! or as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ami_tests::process::{
    error_chain, walk, AmiProcess, Attempt, Crew, JournalCheck, Program, Sent, WalkLimits,
    AMI_SELF_EXEC,
};
use anyhow::{bail, ensure, Context};

const CLIENTS: usize = 8;
const BOUND: Duration = Duration::from_secs(180);
/// The service's request timeout (`http::REQUEST_TIMEOUT`) plus a margin.
const ANSWER_WITHIN: Duration = Duration::from_secs(12);
const DOWN_FOR: Duration = Duration::from_secs(5);
const RECOVER_WITHIN: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    if std::env::var_os(AMI_SELF_EXEC).is_some() {
        return ami_service::cli::main();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pg-fault: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match tokio::time::timeout(BOUND, drill()).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("the drill did not finish within {BOUND:?}")),
        }
    });
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pg-fault FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A throwaway PostgreSQL cluster; stopped and removed on drop.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn create() -> anyhow::Result<Cluster> {
        let bin = postgres_bin()?;
        let dir = tempfile::Builder::new().prefix("ami-pg-fault-").tempdir()?;
        run(Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path()))?;
        let port = (55432..55532)
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .context("no free port in 55432..55532")?;
        let cluster = Cluster { bin, dir, port };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        )?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs a PostgreSQL program as the `postgres` user.
    fn pg(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let exe = self.bin.join(program);
        let as_root = std::env::var("USER").map_or(true, |u| u != "postgres");
        let mut cmd = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        run(&mut cmd)
    }

    fn start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    fn stop(&self, mode: &str) -> anyhow::Result<()> {
        self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"],
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if Path::new(&self.data()).join("postmaster.pid").exists() {
            let _ = self.stop("immediate");
        }
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `bin` of the newest PostgreSQL installed under /usr/lib/postgresql.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("/usr/lib/postgresql")?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no /usr/lib/postgresql/*/bin/initdb")
}

/// Every 100 ms until `stop`, without waiting for earlier ones to answer,
/// GETs `/healthz` or a list of dossiers; every try recorded.
async fn probe(
    client: reqwest::Client,
    server: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> Vec<Attempt> {
    let mut tries = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut health = false;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        health = !health;
        let req = if health {
            client.get(format!("{server}/healthz"))
        } else {
            client
                .get(format!("{server}/api/v1/dossiers?limit=5"))
                .bearer_auth(&token)
        };
        tries.push(tokio::spawn(async move {
            let started = Instant::now();
            match req.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let problem_json = res
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with("application/problem+json"));
                    let body: serde_json::Value = res
                        .text()
                        .await
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default();
                    Attempt {
                        status: Some(status),
                        code: body["code"].as_str().map(str::to_string),
                        problem_json,
                        elapsed: started.elapsed(),
                        started,
                        error: None,
                    }
                }
                Err(e) => Attempt {
                    status: None,
                    code: None,
                    problem_json: false,
                    elapsed: started.elapsed(),
                    started,
                    error: Some(error_chain(&e)),
                },
            }
        }));
    }
    let mut attempts = Vec::new();
    for t in tries {
        if let Ok(a) = t.await {
            attempts.push(a);
        }
    }
    attempts
}

async fn drill() -> anyhow::Result<String> {
    let started = Instant::now();
    let cluster = Cluster::create()?;
    cluster.start()?;
    let url = cluster.url();
    let program = Program::current_exe_as_ami()?;
    let mut server = AmiProcess::start(&program, &url).await?;
    let crew = Crew::create(&program, &url, "pg-fault")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let stop = Arc::new(AtomicBool::new(false));
    let limits = WalkLimits {
        stop: stop.clone(),
        give_up_at: started + BOUND - Duration::from_secs(30),
        retry_every: Duration::from_millis(100),
    };
    let walkers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(walk(
                client.clone(),
                server.api(),
                crew.clone(),
                limits.clone(),
            ))
        })
        .collect();
    let prober = tokio::spawn(probe(
        client.clone(),
        server.base(),
        crew.acv.clone(),
        stop.clone(),
    ));

    // Load, then the database goes away for DOWN_FOR while clients go on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopping = Instant::now();
    cluster.stop("fast")?;
    let down = Instant::now();
    tokio::time::sleep(DOWN_FOR).await;
    let restarting = Instant::now();
    cluster.start()?;
    let up = Instant::now();

    // The service must come back by itself: no restart of ami.
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let recovered = loop {
        if let Ok(res) = health
            .get(format!("{}/healthz", server.base()))
            .send()
            .await
        {
            if res.status().is_success() {
                break up.elapsed();
            }
        }
        ensure!(
            up.elapsed() < RECOVER_WITHIN,
            "/healthz not 200 within {RECOVER_WITHIN:?} of PostgreSQL's restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent: Vec<Sent> = Vec::new();
    for w in walkers {
        sent.extend(w.await?);
    }
    let probes = prober.await?;
    ensure!(server.is_running(), "ami serve died: {}", server.log_tail());

    // Every answer: 2xx, or 503 database_unavailable problem+json; in time.
    let mut failures = Vec::new();
    let mut unavailable = 0;
    let mut unavailable_while_down = 0;
    let mut other_5xx = 0;
    let mut slowest = Duration::ZERO;
    let attempts = sent
        .iter()
        .flat_map(|s| s.attempts.iter().map(move |a| (s.action.as_str(), a)))
        .chain(probes.iter().map(|a| ("probe", a)));
    let mut total_attempts = 0;
    for (what, a) in attempts {
        total_attempts += 1;
        slowest = slowest.max(a.elapsed);
        if a.elapsed > ANSWER_WITHIN {
            failures.push(format!("{what}: answered after {:?}", a.elapsed));
        }
        let ended = a.started + a.elapsed;
        // Answered while PostgreSQL was stopped: only 503 is possible.
        let while_down = ended >= down && ended <= restarting;
        match a.status {
            Some(503) => {
                unavailable += 1;
                if while_down {
                    unavailable_while_down += 1;
                }
                if !a.problem_json || a.code.as_deref() != Some("database_unavailable") {
                    failures.push(format!(
                        "{what}: 503 with code {:?}, problem+json {}",
                        a.code, a.problem_json
                    ));
                }
            }
            Some(s) if (200..300).contains(&s) => {
                if while_down {
                    failures.push(format!("{what}: {s} while the database was down"));
                }
            }
            Some(s) => {
                if s >= 500 {
                    other_5xx += 1;
                }
                failures.push(format!("{what}: {s} {:?}", a.code));
            }
            None => failures.push(format!("{what}: no answer: {:?}", a.error)),
        }
    }
    ensure!(
        failures.is_empty(),
        "{} bad answers: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    if std::env::var_os("PG_FAULT_DEBUG").is_some() {
        for a in &probes {
            eprintln!(
                "probe start {:+.2}s took {:.2}s {:?} {:?} {:?}",
                a.started.duration_since(started).as_secs_f64() - (down - started).as_secs_f64(),
                a.elapsed.as_secs_f64(),
                a.status,
                a.code,
                a.error
            );
        }
    }
    ensure!(
        unavailable_while_down > 0,
        "no request reached the service while the database was down"
    );
    let unanswered = sent.iter().filter(|s| !s.acknowledged()).count();
    ensure!(unanswered == 0, "{unanswered} requests never acknowledged");
    let after_restart = sent
        .iter()
        .filter_map(|s| s.attempts.last())
        .filter(|a| a.started >= up)
        .count();
    ensure!(
        after_restart > 0,
        "no transition acknowledged after the restart"
    );

    // Nothing acknowledged is lost; nothing is written twice.
    let store = ami_service::store::connect(&url.parse()?).await?;
    let journal = JournalCheck::run(&*store).await?;
    store.close().await;
    ensure!(
        journal.problems.is_empty(),
        "journal: {:#?}",
        journal.problems
    );
    let acknowledged = sent.len();
    let mut found = 0;
    for s in &sent {
        let (id, seq) = s
            .acknowledged_event()
            .context("2xx without id and version")?;
        if journal.count(id, seq) == 1
            && journal
                .event(id, seq)
                .is_some_and(|e| e.action == s.action.as_str())
        {
            found += 1;
        }
    }
    let lost = acknowledged - found;
    ensure!(
        lost == 0,
        "{lost} acknowledged transitions missing from the journal"
    );
    ensure!(
        journal.events == acknowledged,
        "{} events in the journal for {acknowledged} acknowledged requests",
        journal.events
    );
    let retried = sent.iter().filter(|s| s.interrupted()).count();
    server.kill();
    drop(cluster);

    Ok(format!(
        "pg-fault: {acknowledged} acknowledged, {found} found, lost {lost}; database down {:.1} s \
         (stop took {:.1} s); {unavailable} answers 503 database_unavailable ({unavailable_while_down} while down), \
         {other_5xx} other 5xx; slowest answer {:.1} s; {retried} requests retried with their key; \
         recovered {:.2} s after restart; {total_attempts} requests in {:.1} s",
        (restarting - down).as_secs_f64(),
        (down - stopping).as_secs_f64(),
        slowest.as_secs_f64(),
        recovered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ))
}
