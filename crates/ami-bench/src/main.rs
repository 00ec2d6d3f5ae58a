//! `ami-bench`: drives a real `ami serve` process over HTTP with concurrent
//! clients taking fresh dossiers through the whole path, then measures the
//! bare database doing the same writes (insert event + versioned update,
//! same tables, pool and durability settings) without the service, and
//! prints both with their ratio, on SQLite, PostgreSQL or both in one run.
//! Optionally loads a large campaign first and measures reads on it, and
//! exports of it (`--export`).
//!
//! It was `ami bench`, a subcommand of the product; it lives here so that the
//! product carries neither an HTTP client nor a way to write the journal
//! beside its store.

mod bare;
mod campaign;
mod exports;
mod http_load;
mod measure;
mod reads;
mod server;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use ami_core::Definition;
use ami_service::store::{Database, DatabaseUrl};
use anyhow::{bail, Context};
use clap::Parser;

use crate::bare::BareDb;
use crate::measure::{median, Figures};
use crate::server::Server;

#[derive(Parser, Debug)]
#[command(
    name = "ami-bench",
    version,
    about = "Measures a real `ami serve` over HTTP against the bare database (see docs/PERFORMANCE.md)"
)]
struct Args {
    /// An empty SQLite database to measure on: sqlite://FILE (created if
    /// missing).
    #[arg(long, value_name = "URL")]
    sqlite: Option<String>,
    /// An empty PostgreSQL database to measure on: postgres://USER@HOST/DB.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// One database, SQLite or PostgreSQL by its scheme (as `ami bench`
    /// took it). Without any of the three: sqlite://ami-bench.db.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// The `ami` program to start as the service. Default: the `ami` next to
    /// this program, as `cargo build --release -p ami-service -p ami-bench`
    /// leaves it.
    #[arg(long, value_name = "PATH")]
    ami: Option<PathBuf>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds of load for each of the two measures.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Service/bare pairs of measures; the medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Dossiers to load before measuring reads (5 events each); 0 skips reads.
    #[arg(long, default_value_t = 0)]
    load: usize,
    /// After the reads, export every dossier as CSV then XLSX, each from a
    /// fresh server: time and the server's peak memory.
    #[arg(long)]
    export: bool,
}

/// Which database a URL names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    fn of(url: &str) -> Option<Kind> {
        if url.starts_with("sqlite:") {
            Some(Kind::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Kind::Postgres)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "PostgreSQL",
        }
    }
}

/// The people the tokens are made for; the service measure takes each step
/// with the token of its index (see `http_load::PATH`).
const PEOPLE: [(&str, &str, &str, &str); 4] = [
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

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("erreur : {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The databases to measure, SQLite first.
fn databases(args: &Args) -> anyhow::Result<Vec<(Kind, String)>> {
    let mut sqlite = args.sqlite.clone();
    let mut postgres = args.postgres.clone();
    if let Some(url) = &sqlite {
        if Kind::of(url) != Some(Kind::Sqlite) {
            bail!("--sqlite takes a sqlite:// URL, not {}", redact(url));
        }
    }
    if let Some(url) = &postgres {
        if Kind::of(url) != Some(Kind::Postgres) {
            bail!("--postgres takes a postgres:// URL, not {}", redact(url));
        }
    }
    if let Some(url) = &args.database_url {
        let slot = match Kind::of(url) {
            Some(Kind::Sqlite) => &mut sqlite,
            Some(Kind::Postgres) => &mut postgres,
            None => bail!(
                "--database-url takes a sqlite:// or postgres:// URL, not {}",
                redact(url)
            ),
        };
        if slot.is_some() {
            bail!(
                "--database-url {} names a second database of the same kind as --sqlite or --postgres",
                redact(url)
            );
        }
        *slot = Some(url.clone());
    }
    if sqlite.is_none() && postgres.is_none() {
        sqlite = Some("sqlite://ami-bench.db".into());
    }
    Ok([(Kind::Sqlite, sqlite), (Kind::Postgres, postgres)]
        .into_iter()
        .filter_map(|(kind, url)| url.map(|u| (kind, u)))
        .collect())
}

/// What one database's measures came to.
struct Summary {
    kind: Kind,
    service: Figures,
    bare: Figures,
    /// Median of the runs' ratios service/bare, in percent.
    ratio: f64,
    /// The server's peak resident memory after the write measures, MiB.
    peak_mib: f64,
    /// And after the reads of `--load`.
    peak_after_reads_mib: Option<f64>,
    /// The exports of `--export`.
    exports: Vec<exports::Exported>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let databases = databases(&args)?;
    let ami = server::ami_binary(args.ami.as_deref())?;
    let def = Definition::ami2();
    // Every database is checked before any is measured: a mistake in the
    // second should not cost the first one's minutes.
    let mut stores = Vec::new();
    for (kind, url) in &databases {
        let parsed = DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = ami_service::store::connect(&parsed)
            .await
            .with_context(|| format!("connexion à la base {}", redact(url)))?;
        if store.count_dossiers().await? > 0 {
            bail!("la base de mesure doit être vide : {}", redact(url));
        }
        stores.push((*kind, url.clone(), store));
    }
    println!(
        "ami-bench: {} clients, {} s per measure, {} run(s), {} cores; server {} (built {})",
        args.clients,
        args.seconds,
        args.runs.max(1),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        ami.display(),
        server::modified(&ami),
    );
    let mut summaries = Vec::new();
    for (kind, url, store) in stores {
        println!();
        println!("== {} ({})", kind.name(), redact(&url));
        let summary = bench_database(&args, &ami, &def, kind, &url, &store).await;
        store.close().await;
        summaries.push(summary?);
    }
    print_summary(&args, &summaries);
    Ok(())
}

/// The runs of service and bare measures on one database, then the reads
/// of `--load`.
async fn bench_database(
    args: &Args,
    ami: &Path,
    def: &Definition,
    kind: Kind,
    url: &str,
    store: &Database,
) -> anyhow::Result<Summary> {
    let mut tokens = Vec::new();
    for (name, email, agency, role) in PEOPLE {
        tokens.push(
            ami_service::auth::create_token(&**store, name, email, agency, role)
                .await?
                .1,
        );
    }
    let tokens = Arc::new(tokens);
    let bare = BareDb::open(kind, url)
        .await
        .with_context(|| format!("connexion à la base {}", redact(url)))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let server = Server::start(ami, url, &client).await?;

    // Service and bare measures alternate, so that a change in the shared
    // machine's load touches both; the medians are the figures.
    let runs = args.runs.max(1);
    let (mut services, mut bares, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let mut service =
            http_load::http_load(&client, &server.base, &tokens, args.clients, args.seconds).await;
        let mut measured = bare.load(def, args.clients, args.seconds).await?;
        bare.delete_bare_rows().await?;
        println!("run {run}: {}", service.line("service"));
        println!("run {run}: {}", measured.line("bare database"));
        let ratio = 100.0 * service.per_second() / measured.per_second();
        println!("run {run}: ratio service/bare {ratio:.0} %");
        ratios.push(ratio);
        services.push(service.figures());
        bares.push(measured.figures());
    }
    let (service, bare_figures) = (Figures::medians(&services), Figures::medians(&bares));
    let ratio = median(ratios);
    println!(
        "median of {runs} runs: service {:.0} transitions/s (p50 {:.2} ms, p99 {:.2} ms), bare {:.0} transitions/s (p50 {:.2} ms, p99 {:.2} ms), ratio {ratio:.0} %",
        service.per_second,
        service.p50_ms,
        service.p99_ms,
        bare_figures.per_second,
        bare_figures.p50_ms,
        bare_figures.p99_ms,
    );
    let peak_mib = server.peak_rss_mib();
    println!("server peak memory (VmHWM): {peak_mib:.1} MiB");

    let mut peak_after_reads_mib = None;
    if args.load > 0 {
        let started = Instant::now();
        let loaded = campaign::load_campaign(store, def, args.load).await?;
        // As autovacuum would after such a load: the planner needs statistics.
        bare.analyze().await?;
        println!(
            "loaded {} dossiers in {:.1} s; the database now holds {} dossiers and {} events",
            args.load,
            started.elapsed().as_secs_f64(),
            store.count_dossiers().await?,
            bare.count_events().await?
        );
        reads::read_load(&client, &server.base, &tokens[0], &loaded).await?;
        let peak = server.peak_rss_mib();
        println!("server peak memory (VmHWM) after reads: {peak:.1} MiB");
        peak_after_reads_mib = Some(peak);
    }
    server.stop().await;
    let exports = if args.export {
        println!("exporting {} dossiers", store.count_dossiers().await?);
        exports::export_load(ami, url, &client, &tokens[0]).await?
    } else {
        Vec::new()
    };
    bare.close().await;
    Ok(Summary {
        kind,
        service,
        bare: bare_figures,
        ratio,
        peak_mib,
        peak_after_reads_mib,
        exports,
    })
}

fn print_summary(args: &Args, summaries: &[Summary]) {
    println!();
    println!(
        "summary: medians of {} run(s) of {} s, {} clients; transitions/s, latencies in ms, errors summed over the runs",
        args.runs.max(1),
        args.seconds,
        args.clients
    );
    println!(
        "{:<11} {:>12} {:>8} {:>8} {:>10} {:>8} {:>8} {:>13} {:>16} {:>16}",
        "database",
        "service tx/s",
        "p50",
        "p99",
        "bare tx/s",
        "p50",
        "p99",
        "service/bare",
        "errors svc/bare",
        "server peak"
    );
    for s in summaries {
        let peak = match s.peak_after_reads_mib {
            Some(after) => format!("{:.1}/{after:.1} MiB", s.peak_mib),
            None => format!("{:.1} MiB", s.peak_mib),
        };
        println!(
            "{:<11} {:>12.0} {:>8.2} {:>8.2} {:>10.0} {:>8.2} {:>8.2} {:>12.0} % {:>16} {:>16}",
            s.kind.name(),
            s.service.per_second,
            s.service.p50_ms,
            s.service.p99_ms,
            s.bare.per_second,
            s.bare.p50_ms,
            s.bare.p99_ms,
            s.ratio,
            format!("{}/{}", s.service.errors, s.bare.errors),
            peak
        );
    }
    if summaries.iter().any(|s| s.peak_after_reads_mib.is_some()) {
        println!("(server peak: after the writes/after the reads of --load)");
    }
    for s in summaries {
        for e in &s.exports {
            println!(
                "{:<11} export {:<4} {:>8.1} MB {:>7.1} s   server peak {:.1} MiB (at rest {:.1} MiB)",
                s.kind.name(),
                e.format,
                e.bytes as f64 / 1e6,
                e.total_s,
                e.peak_mib,
                e.idle_peak_mib
            );
        }
    }
}

/// A database URL as it may be shown: its password hidden.
fn redact(url: &str) -> String {
    DatabaseUrl::parse(url)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| "(adresse non reconnue)".into())
}
