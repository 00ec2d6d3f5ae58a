//! `ami bench`: drives a real `ami serve` process over HTTP with concurrent
//! clients taking fresh dossiers through the whole path, then measures the
//! bare database doing the same writes (insert event + versioned update,
//! same tables, pools and durability settings) without the service, and
//! prints both with their ratio. Optionally loads a large campaign first
//! and measures reads on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ami_core::{Actor, Definition, DossierId, Piece, Porteur};
use anyhow::{bail, Context};
use chrono::Utc;
use serde_json::{json, Value};
use sqlx::Row;

use crate::store::{Content, DatabaseUrl, DepositOrder, Order, Store, TransitionRequest};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// An empty database to measure on (sqlite://FILE or postgres://…/DB).
    #[arg(
        long,
        env = "AMI_DATABASE_URL",
        default_value = "sqlite://ami-bench.db"
    )]
    pub database_url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds of load for each of the two measures.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Service/bare pairs of measures; the medians are reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Dossiers to load before measuring reads (5 events each); 0 skips reads.
    #[arg(long, default_value_t = 0)]
    pub load: usize,
}

/// Latencies of one measure.
struct Measure {
    transitions: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    errors: usize,
}

/// What one client task measured: its latencies and its errors.
type ClientTask = tokio::task::JoinHandle<(Vec<Duration>, usize)>;

impl Measure {
    fn empty() -> Measure {
        Measure {
            transitions: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
            errors: 0,
        }
    }

    /// Times one GET (its whole body read) into this measure.
    async fn time_get(
        &mut self,
        client: &reqwest::Client,
        url: &str,
        token: &str,
    ) -> anyhow::Result<()> {
        let t = Instant::now();
        // A web session's cookie, or an API token.
        let request = match token.strip_prefix("cookie:") {
            Some(cookie) => client.get(url).header(reqwest::header::COOKIE, cookie),
            None => client.get(url).bearer_auth(token),
        };
        let r = request.send().await?;
        let ok = r.status().is_success();
        r.bytes().await?;
        if ok {
            self.latencies.push(t.elapsed());
        } else {
            self.errors += 1;
        }
        Ok(())
    }

    /// Lets the clients run for `seconds`, stops them and gathers their figures.
    async fn after(
        seconds: u64,
        stop: &AtomicBool,
        started: Instant,
        tasks: Vec<ClientTask>,
    ) -> Measure {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut m = Measure::empty();
        for t in tasks {
            if let Ok((l, e)) = t.await {
                m.latencies.extend(l);
                m.errors += e;
            }
        }
        m.elapsed = started.elapsed();
        m.transitions = m.latencies.len();
        m
    }

    fn per_second(&self) -> f64 {
        self.transitions as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    fn line(&mut self, name: &str) -> String {
        format!(
            "{name:<14} {:>9.0} transitions/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} transitions, {} errors)",
            self.per_second(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            self.transitions,
            self.errors
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let def = Arc::new(Definition::ami2());
    let url: DatabaseUrl = args.database_url.parse()?;
    let store = Store::connect(&url).await?;
    if store.count_dossiers().await? > 0 {
        bail!("la base de mesure doit être vide : {url}");
    }
    let people = [
        ("Banc Agent", "banc.agent@lecnam.net", "dar", "agent"),
        (
            "Banc Responsable",
            "banc.responsable@lecnam.net",
            "dar",
            "responsable",
        ),
        ("Banc Acv", "banc.acv@anct.gouv.fr", "acv", "agent"),
        ("Banc Ti", "banc.ti@anct.gouv.fr", "ti", "agent"),
    ];
    let mut tokens = Vec::new();
    for (name, email, agency, role) in people {
        tokens.push(
            crate::auth::create_token(&store, name, email, agency, role)
                .await?
                .1,
        );
    }
    let tokens = Arc::new(tokens);

    let port = free_port()?;
    let exe = std::env::current_exe()?;
    let mut server = tokio::process::Command::new(exe)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &args.database_url,
        ])
        .env("AMI_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .context("démarrage de « ami serve »")?;
    let pid = server.id().unwrap_or_default();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    wait_healthy(&client, &base).await?;
    println!(
        "ami bench: {} clients, {} s per measure, backend {:?}, {} cores",
        args.clients,
        args.seconds,
        store.backend(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Service and bare measures alternate, so that a change in the shared
    // machine's load touches both; the medians are the figures.
    let mut ratios = Vec::new();
    let (mut services, mut bares) = (Vec::new(), Vec::new());
    for run in 1..=args.runs.max(1) {
        let mut service = http_load(&client, &base, &tokens, args.clients, args.seconds).await;
        let mut bare = bare_load(&store, &def, args.clients, args.seconds).await?;
        // The bare rows are not dossiers of the campaign.
        sqlx::query("delete from dossier_event where action = 'bench'")
            .execute(store.writer_pool())
            .await?;
        sqlx::query("delete from dossier where received_at_us = 0")
            .execute(store.writer_pool())
            .await?;
        println!("run {run}: {}", service.line("service"));
        println!("run {run}: {}", bare.line("bare database"));
        let ratio = 100.0 * service.per_second() / bare.per_second();
        println!("run {run}: ratio service/bare {ratio:.0} %");
        ratios.push(ratio);
        services.push((
            service.per_second(),
            ms(service.percentile(0.5)),
            ms(service.percentile(0.99)),
        ));
        bares.push((
            bare.per_second(),
            ms(bare.percentile(0.5)),
            ms(bare.percentile(0.99)),
        ));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median of {} runs: service {:.0} transitions/s (p50 {:.2} ms, p99 {:.2} ms), bare {:.0} transitions/s (p50 {:.2} ms, p99 {:.2} ms), ratio {:.0} %",
        args.runs.max(1),
        median(services.iter().map(|s| s.0).collect()),
        median(services.iter().map(|s| s.1).collect()),
        median(services.iter().map(|s| s.2).collect()),
        median(bares.iter().map(|s| s.0).collect()),
        median(bares.iter().map(|s| s.1).collect()),
        median(bares.iter().map(|s| s.2).collect()),
        median(ratios),
    );
    println!(
        "server peak memory (VmHWM): {:.1} MiB",
        peak_rss_kib(pid) as f64 / 1024.0
    );

    if args.load > 0 {
        let started = Instant::now();
        let loaded = load_campaign(&store, &def, args.load).await?;
        let events: i64 = sqlx::query("select count(*) as n from dossier_event")
            .fetch_one(store.writer_pool())
            .await?
            .try_get("n")?;
        println!(
            "loaded {} dossiers in {:.1} s; the database now holds {} dossiers and {} events",
            args.load,
            started.elapsed().as_secs_f64(),
            store.count_dossiers().await?,
            events
        );
        read_load(&client, &base, &tokens[0], &loaded).await?;
        println!(
            "server peak memory (VmHWM) after reads: {:.1} MiB",
            peak_rss_kib(pid) as f64 / 1024.0
        );
    }
    let _ = server.start_kill();
    let _ = server.wait().await;
    store.close().await;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_healthy(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("le service ne répond pas sur {base}")
}

/// Peak resident memory of a process, from /proc (0 where unavailable).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// The five steps of a dossier through the whole path.
const PATH: [(&str, usize, Option<&str>); 4] = [
    ("instruire", 0, Some("favorable")),
    ("avis_acv", 2, Some("favorable")),
    ("avis_ti", 3, Some("favorable")),
    ("declarer_laureat", 1, None),
];

async fn http_load(
    client: &reqwest::Client,
    base: &str,
    tokens: &Arc<Vec<String>>,
    clients: usize,
    seconds: u64,
) -> Measure {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks: Vec<ClientTask> = Vec::new();
    // Instruction needs both files: every deposit sends the same two small
    // ones (stored once, as content-addressed files are).
    let files = Arc::new((
        crate::demo_files::candidature_pdf("Banc", "00000"),
        crate::demo_files::budget_xlsx("Banc").unwrap_or_default(),
    ));
    for c in 0..clients {
        let (client, base, tokens, stop, files) = (
            client.clone(),
            base.to_string(),
            tokens.clone(),
            stop.clone(),
            files.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({
                    "commune": format!("Banc {c}-{n}"), "code_insee": format!("{:05}", (c * 7919 + n) % 100_000),
                    "porteur": {"nom": "Ville de démonstration"}, "programmes": ["acv", "ti"],
                    "received_at": "2020-11-06T23:30:00+01:00",
                    "doublon_confirme": true
                });
                let form = reqwest::multipart::Form::new()
                    .text("dossier", body.to_string())
                    .part(
                        "dossier_candidature",
                        reqwest::multipart::Part::bytes(files.0.clone()).file_name("c.pdf"),
                    )
                    .part(
                        "budget_previsionnel",
                        reqwest::multipart::Part::bytes(files.1.clone()).file_name("b.xlsx"),
                    );
                let t = Instant::now();
                let res = client
                    .post(format!("{base}/api/v1/dossiers"))
                    .bearer_auth(&tokens[0])
                    .multipart(form)
                    .send()
                    .await;
                let Some(dossier) = ok_json(res).await else {
                    errors += 1;
                    continue;
                };
                latencies.push(t.elapsed());
                let id = dossier["id"].as_str().unwrap_or_default().to_string();
                for (version, (action, who, verdict)) in (1..).zip(PATH) {
                    let mut body = json!({"action": action, "expected_version": version});
                    if let Some(v) = verdict {
                        body["verdict"] = json!(v);
                    }
                    let t = Instant::now();
                    let res = client
                        .post(format!("{base}/api/v1/dossiers/{id}/transitions"))
                        .bearer_auth(&tokens[who])
                        .json(&body)
                        .send()
                        .await;
                    if !ok_drained(res).await {
                        errors += 1;
                        break;
                    }
                    latencies.push(t.elapsed());
                }
            }
            (latencies, errors)
        }));
    }
    Measure::after(seconds, &stop, started, tasks).await
}

/// Whether the request succeeded; the body is read but not parsed, so that
/// the client spends as little of the shared CPU as it can.
async fn ok_drained(res: reqwest::Result<reqwest::Response>) -> bool {
    match res {
        Ok(res) => res.status().is_success() && res.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn ok_json(res: reqwest::Result<reqwest::Response>) -> Option<Value> {
    let res = res.ok()?;
    if !res.status().is_success() {
        return None;
    }
    res.json().await.ok()
}

/// The same writes without the service: per transition one transaction that
/// inserts the event and updates the projection where the version matches.
async fn bare_load(
    store: &Store,
    def: &Arc<Definition>,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Measure> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks: Vec<ClientTask> = Vec::new();
    let events = Arc::new(sample_events(def)?);
    for _ in 0..clients {
        let (pool, stop, events) = (store.writer_pool().clone(), stop.clone(), events.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = uuid::Uuid::now_v7().to_string();
                for (seq, (event, dossier)) in events.iter().enumerate() {
                    let seq = seq as i64 + 1;
                    let t = Instant::now();
                    if bare_write(&pool, &id, seq, event, dossier).await.is_err() {
                        errors += 1;
                        break;
                    }
                    latencies.push(t.elapsed());
                }
            }
            (latencies, errors)
        }));
    }
    Ok(Measure::after(seconds, &stop, started, tasks).await)
}

async fn bare_write(
    pool: &sqlx::AnyPool,
    id: &str,
    seq: i64,
    event: &str,
    dossier: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, digest) \
         values ($1, $2, 'bench', 'dar', 'bench', $3, $4, $5)",
    )
    .bind(id)
    .bind(seq)
    .bind(Utc::now().timestamp_micros())
    .bind(event)
    .bind(crate::store::GENESIS_DIGEST)
    .execute(&mut *tx)
    .await?;
    if seq == 1 {
        sqlx::query(
            "insert into dossier (dossier_id, reference, wave, state, version, programmes, search, \
             awaiting, received_at_us, updated_at_us, last_digest, body) values ($1, $1, 1, 'recu', 1, ',acv,ti,', '', ',dar,', 0, 0, '', $2)",
        )
        .bind(id)
        .bind(dossier)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query("update dossier set version = $1, body = $2, awaiting = ',dar,' where dossier_id = $3 and version = $4")
            .bind(seq)
            .bind(dossier)
            .bind(id)
            .bind(seq - 1)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Real event and dossier JSON of a full path, so the bare writes move the
/// same number of bytes as the service's.
fn sample_events(def: &Definition) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut dossier = None;
    for (order, actor) in full_path(def, DossierId(uuid::Uuid::now_v7()), 1)? {
        let command = order.to_command(def).map_err(|r| anyhow::anyhow!("{r}"))?;
        let target = match &dossier {
            Some(d) => ami_core::Target::Dossier(d),
            None => ami_core::Target::New {
                number: 1,
                same_commune: &[],
            },
        };
        let event = ami_core::decide(def, target, &command, &actor, Utc::now())
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        let d = ami_core::apply(dossier, &event)?;
        out.push((serde_json::to_string(&event)?, serde_json::to_string(&d)?));
        dossier = Some(d);
    }
    Ok(out)
}

fn actor(def: &Definition, name: &str, agency: &str, role: &str) -> anyhow::Result<Actor> {
    Ok(Actor {
        id: format!(
            "{}@bench.example",
            ami_core::text::search_key(name).replace(' ', ".")
        )
        .into(),
        name: name.into(),
        agency: def.agency_id(agency).context("agence du banc d'essai")?,
        role: def.role_id(role).context("rôle du banc d'essai")?,
    })
}

/// Commands and actors taking one dossier from deposit to lauréat, with a
/// budget sent again before instruction.
fn full_path(def: &Definition, id: DossierId, n: usize) -> anyhow::Result<Vec<(Order, Actor)>> {
    fn word<T>(found: Option<T>) -> anyhow::Result<T> {
        found.context("mot du banc d'essai absent de la définition")
    }
    let programmes: Vec<smol_str::SmolStr> = match n % 3 {
        0 => vec!["acv".into()],
        1 => vec!["acv".into(), "ti".into()],
        _ => vec!["ti".into()],
    };
    let (candidature, budget) = (
        word(def.piece_kind("dossier_candidature"))?,
        word(def.piece_kind("budget_previsionnel"))?,
    );
    let new = DepositOrder {
        id,
        commune: format!("Commune {n}").into(),
        code_insee: format!("{:05}", n % 99_999).into(),
        porteur: Porteur {
            nom: format!("Ville {n}").into(),
            email: None,
        },
        programmes: programmes.clone(),
        // Spread over the whole campaign (340 days), so over its three waves.
        received_at: chrono::DateTime::parse_from_rfc3339("2020-07-20T08:00:00+02:00")
            .map(|t| {
                t.with_timezone(&Utc) + chrono::Duration::seconds((n as i64 * 293) % 29_376_000)
            })
            .unwrap_or_default(),
        pieces: vec![
            Piece {
                kind: candidature,
                filename: "candidature.pdf".into(),
                size: Some(400_000),
                sha256: Some("ab".repeat(32).into()),
                media_type: Some("application/pdf".into()),
            },
            Piece {
                kind: budget.clone(),
                filename: "budget.xlsx".into(),
                size: Some(50_000),
                sha256: Some("ab".repeat(32).into()),
                media_type: Some(
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
                ),
            },
        ],
        // Communes repeat past 99,999 dossiers: each is a second project.
        doublon_confirme: true,
    };
    let deposer = Order {
        content: Content::Deposit(Box::new(new)),
        ..Order::new("deposer")
    };
    let budget_v2 = Order {
        content: Content::Piece(Piece {
            kind: budget,
            filename: "budget-v2.xlsx".into(),
            size: Some(52_000),
            sha256: Some("ab".repeat(32).into()),
            media_type: Some(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
            ),
        }),
        ..Order::new("ajouter_piece")
    };
    let mut steps = vec![
        (deposer, actor(def, "Banc Agent", "dar", "agent")?),
        (budget_v2, actor(def, "Banc Agent", "dar", "agent")?),
        (
            Order::new("instruire").with_verdict("favorable"),
            actor(def, "Banc Agent", "dar", "agent")?,
        ),
    ];
    if programmes.iter().any(|p| p == "acv") {
        steps.push((
            Order::new("avis_acv").with_verdict("favorable"),
            actor(def, "Banc Acv", "acv", "agent")?,
        ));
    }
    if programmes.iter().any(|p| p == "ti") {
        steps.push((
            Order::new("avis_ti").with_verdict("favorable"),
            actor(def, "Banc Ti", "ti", "agent")?,
        ));
    }
    steps.push((
        Order::new("declarer_laureat"),
        actor(def, "Banc Responsable", "dar", "responsable")?,
    ));
    Ok(steps)
}

/// Loads `count` dossiers through the store (the same code path as the
/// service, without HTTP), stopping each at a state of the workflow.
async fn load_campaign(
    store: &Store,
    def: &Definition,
    count: usize,
) -> anyhow::Result<Vec<DossierId>> {
    let respond = |_: &ami_core::Dossier, _: &Actor| String::new();
    let def = Arc::new(def.clone());
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (store, def) = (store.clone(), def.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            let mut ids = Vec::new();
            while n < count {
                let id = DossierId(uuid::Uuid::now_v7());
                // One in ten stops on the way, in every state of the path.
                let steps = full_path(&def, id, n)?;
                let keep = if n % 10 == 9 { 1 + n % 4 } else { steps.len() };
                let mut version = None;
                for (command, actor) in steps.into_iter().take(keep) {
                    let req = TransitionRequest {
                        definition: &def,
                        dossier_id: id,
                        expected_version: version,
                        command,
                        principal: crate::store::Principal::Actor(actor),
                        now: Utc::now(),
                        idempotency: None,
                        respond: &respond,
                    };
                    match store.execute(&req).await? {
                        crate::store::Executed::Applied { dossier, .. } => {
                            version = Some(dossier.version)
                        }
                        crate::store::Executed::Replayed { .. } => {}
                    }
                }
                ids.push(id);
                n += workers;
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::with_capacity(count);
    for t in tasks {
        ids.extend(t.await??);
    }
    // As autovacuum would after such a load: the planner needs statistics.
    sqlx::query("analyze").execute(store.writer_pool()).await?;
    Ok(ids)
}

/// Latency of `GET /dossiers/{id}`, of a filtered list page and of a search.
async fn read_load(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    loaded: &[DossierId],
) -> anyhow::Result<()> {
    // Dossiers picked across the whole load, not the first ones only.
    let step = (loaded.len() / 2000).max(1);
    let ids: Vec<String> = loaded.iter().step_by(step).map(|d| d.to_string()).collect();
    let mut get = Measure::empty();
    let mut list = Measure::empty();
    let mut search = Measure::empty();
    let filters = [
        "state=avis_ti",
        "awaiting=dar",
        "wave=2&programme=ti",
        "state=recu&wave=1",
    ];
    for i in 0..2000 {
        let url = format!("{base}/api/v1/dossiers/{}", ids[i % ids.len()]);
        get.time_get(client, &url, token).await?;
        if i % 4 == 0 {
            let filter = filters[(i / 4) % filters.len()];
            let url = format!("{base}/api/v1/dossiers?{filter}&limit=50");
            list.time_get(client, &url, token).await?;
        }
        // Searches that match a handful of dossiers (a commune, an INSEE
        // code, typed with other case and accents) and one that matches
        // none: without an index each would read every dossier.
        if i % 4 == 2 {
            let n = (i * 37) % loaded.len().max(1);
            let q = match (i / 4) % 3 {
                0 => format!("COMMUNÉ%20{n}"),
                1 => format!("{:05}", n % 99_999),
                _ => "quimper".to_string(),
            };
            let url = format!("{base}/api/v1/dossiers?q={q}&limit=50");
            search.time_get(client, &url, token).await?;
        }
    }
    println!(
        "GET /dossiers/{{id}}   p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)",
        ms(get.percentile(0.5)),
        ms(get.percentile(0.99)),
        get.latencies.len(),
        get.errors
    );
    println!(
        "GET /dossiers?filter  p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)",
        ms(list.percentile(0.5)),
        ms(list.percentile(0.99)),
        list.latencies.len(),
        list.errors
    );
    println!(
        "GET /dossiers?q=      p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)",
        ms(search.percentile(0.5)),
        ms(search.percentile(0.99)),
        search.latencies.len(),
        search.errors
    );
    page_load(client, base, token, &ids).await
}

/// The same person's web pages: « À traiter » (its first page, filtered,
/// searched) and the dossier page, each rendered whole.
async fn page_load(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    let cookie = format!("cookie:{}", sign_in(client, base, token).await?);
    let mut queue = Measure::empty();
    let mut dossier = Measure::empty();
    let queues = [
        "/a-traiter",
        "/a-traiter?vague=2",
        "/a-traiter?etat=recu&programme=ti",
        "/a-traiter?q=commune%204242",
    ];
    for i in 0..2000 {
        let url = format!("{base}/dossiers/{}", ids[(i * 7) % ids.len()]);
        dossier.time_get(client, &url, &cookie).await?;
        if i % 2 == 0 {
            let url = format!("{base}{}", queues[(i / 2) % queues.len()]);
            queue.time_get(client, &url, &cookie).await?;
        }
    }
    for (name, m) in [
        ("page À traiter     ", &mut queue),
        ("page du dossier    ", &mut dossier),
    ] {
        println!(
            "{name} p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)",
            ms(m.percentile(0.5)),
            ms(m.percentile(0.99)),
            m.latencies.len(),
            m.errors
        );
    }
    Ok(())
}

/// Signs in on « Se connecter » as a browser does; the session cookie.
async fn sign_in(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let form = client.get(format!("{base}/connexion")).send().await?;
    let csrf_cookie = set_cookie(&form, "ami_connexion")
        .context("pas de jeton de formulaire sur « Se connecter »")?;
    let csrf = csrf_cookie.trim_start_matches("ami_connexion=").to_string();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let signed = no_redirect
        .post(format!("{base}/connexion"))
        .header(reqwest::header::COOKIE, &csrf_cookie)
        .form(&[("csrf", csrf.as_str()), ("jeton", token)])
        .send()
        .await?;
    set_cookie(&signed, "ami_session").context("la connexion n'a pas ouvert de session")
}

/// `name=value` of the cookie `name` a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.split_once('=').is_some_and(|(n, _)| n == name))
        .map(str::to_string)
}
