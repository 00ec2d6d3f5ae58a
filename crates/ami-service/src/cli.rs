//! The `ami` subcommands: serve, migrate, token, workflow, demo, files,
//! audit, export, rebuild. The benchmark is a program of its own, `ami-bench`
//! (crates/ami-bench).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use ami_core::Definition;
use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::files::Files;
use crate::http::{self, AppState};
use crate::store::{Backend, Database, DatabaseUrl, Store};

#[derive(Parser)]
#[command(
    name = "ami",
    version,
    about = "Instruction des dossiers de l'AMI « Au cœur des territoires » (Cnam, ANCT)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Log format: text for people, json for machines.
    #[arg(
        long,
        global = true,
        env = "AMI_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct Db {
    /// sqlite://FILE (created if missing) or postgres://USER@HOST/DB.
    #[arg(long, env = "AMI_DATABASE_URL", default_value = "sqlite://ami.db")]
    database_url: String,
}

impl Db {
    /// The URL given, checked once; an error names it without its password.
    /// (Not parsed by clap, whose error would print the URL as given.)
    fn url(&self) -> anyhow::Result<DatabaseUrl> {
        DatabaseUrl::parse(&self.database_url).map_err(|e| {
            let shown = e.shown.clone();
            anyhow::Error::new(e).context(format!("connexion à la base {shown}"))
        })
    }
}

#[derive(Args, Clone)]
struct FilesArgs {
    /// Where the pièces' files are kept: file:///DIR, or s3://BUCKET/PREFIX
    /// (credentials and endpoint from the AWS_* variables). Default: the
    /// folder `ami-files` next to a SQLite database, else in the working
    /// directory.
    #[arg(long, env = "AMI_FILES_URL")]
    files_url: Option<String>,
}

impl FilesArgs {
    fn open(&self, db: &DatabaseUrl) -> anyhow::Result<Files> {
        let url = self
            .files_url
            .clone()
            .unwrap_or_else(|| Files::default_url(db));
        Files::open(&url).context("stockage des fichiers")
    }
}

/// Sending letters (`ami serve`): the relay, the sender, the contact and
/// the agencies' digests.
#[derive(Args, Clone)]
struct MailArgs {
    /// The SMTP relay, in lettre's form: smtp://host:25,
    /// smtp://host:587?tls=required, smtps://user:password@host:465.
    /// Without it the letters wait in the outbox and none is sent.
    #[arg(long, env = "AMI_SMTP_URL")]
    smtp_url: Option<String>,
    /// The sender of the letters (`AMI <ami@ville.fr>`); needed with --smtp-url.
    #[arg(long, env = "AMI_MAIL_FROM")]
    mail_from: Option<String>,
    /// The address the letters give to write to; default: --mail-from.
    #[arg(long, env = "AMI_MAIL_CONTACT")]
    mail_contact: Option<String>,
    /// An agency's digest address, AGENCY=ADDRESS (`dar=dar@cnam.fr`);
    /// repeatable, or several separated by commas.
    #[arg(long, env = "AMI_DIGEST_TO", value_delimiter = ',')]
    digest_to: Vec<String>,
    /// The hour (0-23, the campaign's time zone: Europe/Paris) from which
    /// the day's digests are sent.
    #[arg(long, env = "AMI_DIGEST_HOUR", default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..24))]
    digest_hour: u32,
    /// For drills and tests (hidden): how often the worker looks at the
    /// outbox when nothing wakes it.
    #[arg(long, env = "AMI_MAIL_TICK", default_value = "5s", value_parser = humantime::parse_duration, hide = true)]
    mail_tick: std::time::Duration,
    /// For drills and tests (hidden): the wait before a letter's first
    /// retry, doubled at each attempt.
    #[arg(long, env = "AMI_MAIL_FIRST_RETRY", default_value = "1m", value_parser = humantime::parse_duration, hide = true)]
    mail_first_retry: std::time::Duration,
    /// For drills and tests (hidden): how long a claim on a letter holds,
    /// i.e. how long a letter claimed by an instance that died waits before
    /// another sends it. It must outlast a send (SMTP commands time out
    /// after 60 s) when several instances share the database.
    #[arg(long, env = "AMI_MAIL_LEASE", default_value = "10m", value_parser = humantime::parse_duration, hide = true)]
    mail_lease: std::time::Duration,
}

impl MailArgs {
    /// The worker's settings; both --smtp-url and --mail-from, or neither.
    fn settings(
        &self,
        def: &Definition,
        public_url: Option<&str>,
    ) -> anyhow::Result<crate::mail::outbox::OutboxSettings> {
        use crate::mail::{outbox::OutboxSettings, smtp::SmtpSender};
        let sender = match (&self.smtp_url, &self.mail_from) {
            (Some(url), Some(from)) => Some(SmtpSender::from_url(url, from)?),
            (None, None) => None,
            (Some(_), None) => bail!(
                "--smtp-url donné sans --mail-from : indiquez l'adresse d'expédition des courriers (AMI_MAIL_FROM)"
            ),
            (None, Some(_)) => bail!(
                "--mail-from donné sans --smtp-url : indiquez le serveur SMTP qui envoie les courriers (AMI_SMTP_URL)"
            ),
        };
        let from = self.mail_from.clone().unwrap_or_default();
        let contact = self.mail_contact.clone().unwrap_or_else(|| from.clone());
        let mut settings = OutboxSettings::new(sender, &from, &contact);
        settings.digest_to = crate::mail::outbox::parse_digest_to(def, &self.digest_to)?;
        settings.digest_hour = self.digest_hour;
        settings.public_url = public_url.map(str::to_string);
        settings.tick = self.mail_tick;
        settings.first_retry =
            chrono::Duration::from_std(self.mail_first_retry).context("--mail-first-retry")?;
        settings.lease = chrono::Duration::from_std(self.mail_lease).context("--mail-lease")?;
        Ok(settings)
    }
}

/// The mailbox `ami serve` follows, if any.
#[derive(Args, Clone)]
struct ImapArgs {
    /// Follow this mailbox and import what arrives in it:
    /// imaps://USER@HOST[:PORT]/MAILBOX (imap:// for no TLS; the user's `@`
    /// written %40). The password is read from AMI_IMAP_PASSWORD.
    #[arg(long, env = "AMI_IMAP_URL")]
    imap_url: Option<String>,
    /// Move each imported message to this folder (created if missing)
    /// rather than marking it with the keyword $AmiImporte.
    #[arg(long, env = "AMI_IMAP_DONE_FOLDER", requires = "imap_url")]
    imap_done_folder: Option<String>,
    /// The mailbox's password (only from the environment).
    #[arg(long, env = "AMI_IMAP_PASSWORD", hide = true, hide_env_values = true)]
    imap_password: Option<String>,
}

impl ImapArgs {
    /// The mailbox to follow and its password, when one is given.
    fn source(&self) -> anyhow::Result<Option<(crate::mail::imap::ImapSource, String)>> {
        let Some(url) = &self.imap_url else {
            return Ok(None);
        };
        let source = crate::mail::imap::ImapSource::parse(url)
            .context("--imap-url")?
            .with_done_folder(self.imap_done_folder.as_deref())
            .context("--imap-done-folder")?;
        let password = self
            .imap_password
            .clone()
            .context("--imap-url donné sans mot de passe : définissez AMI_IMAP_PASSWORD")?;
        Ok(Some((source, password)))
    }
}

#[derive(Args, Clone)]
struct Workflow {
    /// A workflow definition in TOML (`ami2`: the embedded second AMI). By
    /// default `serve` runs the embedded one, and the commands reading a
    /// database take its active definition (else the embedded one).
    #[arg(long, env = "AMI_WORKFLOW")]
    workflow: Option<std::path::PathBuf>,
}

impl Workflow {
    fn load(&self) -> anyhow::Result<Definition> {
        Ok(self.load_with_source()?.0)
    }

    /// The definition given, else the database's active one (else the
    /// embedded one, for a database that never recorded one): what the
    /// projections were written under.
    async fn or_active(&self, store: &dyn Store) -> anyhow::Result<Definition> {
        if self.workflow.is_some() {
            return self.load();
        }
        match store.active_definition().await? {
            Some(active) => Definition::from_toml(&active.source)
                .context("la définition active enregistrée dans la base"),
            None => Ok(Definition::ami2()),
        }
    }

    /// The definition and the TOML it was read from.
    fn load_with_source(&self) -> anyhow::Result<(Definition, String)> {
        match &self.workflow {
            None => Ok((
                Definition::ami2(),
                ami_core::DEFAULT_DEFINITION_TOML.to_string(),
            )),
            Some(path) => source_at(path),
        }
    }
}

/// A definition and its TOML, from a file (or the embedded one for `ami2`).
fn source_at(path: &std::path::Path) -> anyhow::Result<(Definition, String)> {
    if path.as_os_str() == "ami2" {
        return Ok((
            Definition::ami2(),
            ami_core::DEFAULT_DEFINITION_TOML.to_string(),
        ));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("lecture de {}", path.display()))?;
    let def =
        Definition::from_toml(&text).with_context(|| format!("workflow {}", path.display()))?;
    Ok((def, text))
}

/// Starts on `def` only if it is the database's active definition (or the
/// database has none yet, which records it).
async fn check_definition(store: &dyn Store, def: &Definition, source: &str) -> anyhow::Result<()> {
    match store.check_definition(def, source).await? {
        crate::store::DefinitionCheck::FirstUse => {
            tracing::info!(workflow = %def.version(), "definition recorded as active");
            Ok(())
        }
        crate::store::DefinitionCheck::Same => Ok(()),
        crate::store::DefinitionCheck::Changed { active } => bail!(
            "la définition donnée ({}, empreinte {}) n'est pas celle que la base applique ({}, empreinte {}, active depuis le {}) : \
             voyez ce qu'elle change pour chaque dossier avec « ami workflow migrate FICHIER --dry-run », \
             appliquez-la avec « ami workflow migrate FICHIER », puis démarrez avec elle",
            def.version(),
            &crate::store::definition_sha256(def)[..12],
            active.version,
            &active.sha256[..12.min(active.sha256.len())],
            active.activated_at.format("%Y-%m-%d %H:%M")
        ),
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP service.
    Serve {
        #[arg(long, env = "AMI_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        files: FilesArgs,
        #[command(flatten)]
        workflow: Workflow,
        /// The address people reach the service at, e.g.
        /// https://ami.lecnam.net (cookies are then `Secure`).
        #[arg(long, env = "AMI_PUBLIC_URL")]
        public_url: Option<String>,
        /// Largest file a pièce may have, in bytes.
        #[arg(long, env = "AMI_MAX_PIECE_SIZE", default_value_t = crate::http::pieces::DEFAULT_MAX_PIECE_SIZE)]
        max_piece_size: u64,
        #[command(flatten)]
        mail: MailArgs,
        #[command(flatten)]
        imap: ImapArgs,
    },
    /// Import received messages (`.eml` files, mboxes, Maildirs) as
    /// arrivals, each once: a message already imported is recognised (by
    /// its Message-ID, or its bytes without one), one that cannot be read
    /// is kept in quarantine.
    Import {
        /// `.eml` files, mbox files or Maildir folders.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        files: FilesArgs,
        #[command(flatten)]
        workflow: Workflow,
    },
    /// Apply the database migrations.
    Migrate {
        #[command(flatten)]
        db: Db,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCmd,
    },
    /// Show the active workflow.
    Workflow {
        #[command(subcommand)]
        command: WorkflowCmd,
    },
    /// Fill an empty database with a demo campaign and print tokens to try it.
    Demo {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        files: FilesArgs,
    },
    /// The stored files of the pièces.
    Files {
        #[command(subcommand)]
        command: FilesCmd,
    },
    /// Check the journal's digest chains.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Write the dossier list to standard output as CSV or XLSX, the file
    /// the API's `/exports/dossiers.{csv,xlsx}` gives the DAR, with the
    /// same filters: `ami export --wave 1 --format xlsx > vague1.xlsx`.
    Export {
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormatArg,
        #[command(flatten)]
        filters: ExportFilters,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        workflow: Workflow,
    },
    /// The letters: see one as it would be sent.
    Mail {
        #[command(subcommand)]
        command: MailCmd,
    },
    /// Rebuild every dossier's projection from the journal.
    Rebuild {
        /// Rebuild even when the journal holds fewer steps than a
        /// projection shows (they are then lost): by default, refuse and
        /// name those dossiers.
        #[arg(long)]
        accept_loss: bool,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        workflow: Workflow,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormatArg {
    Csv,
    Xlsx,
}

/// The list's filters, as `GET /api/v1/dossiers` takes them (same values,
/// same checks).
#[derive(Args, Clone)]
struct ExportFilters {
    /// State ids, one or several separated by commas (`laureat,refuse`).
    #[arg(long)]
    state: Option<String>,
    /// Wave numbers, e.g. `1` or `1,3`; without it, one sheet per wave in XLSX.
    #[arg(long)]
    wave: Option<String>,
    /// `acv`, `ti` or `acv,ti`.
    #[arg(long)]
    programme: Option<String>,
    /// Dossiers waiting on these agencies (`dar`, `acv`, `ti`) or on the town (`porteur`).
    #[arg(long)]
    awaiting: Option<String>,
    /// Only the dossiers an agency is late on today (`--overdue`).
    #[arg(long)]
    overdue: bool,
    /// Région codes of the official geographic code (`27`, `27,44`).
    #[arg(long)]
    region: Option<String>,
    /// Département codes (`58`, `2A,2B`).
    #[arg(long)]
    departement: Option<String>,
    /// Searches commune, porteur, reference and INSEE code.
    #[arg(long)]
    q: Option<String>,
}

impl ExportFilters {
    /// As the query of `GET /api/v1/dossiers` would carry them.
    fn query(&self) -> crate::http::extract::QueryPairs {
        let given = [
            ("state", &self.state),
            ("wave", &self.wave),
            ("programme", &self.programme),
            ("awaiting", &self.awaiting),
            ("overdue", &self.overdue.then(|| "true".to_string())),
            ("region", &self.region),
            ("departement", &self.departement),
            ("q", &self.q),
        ];
        crate::http::extract::QueryPairs(
            given
                .into_iter()
                .filter_map(|(name, value)| value.clone().map(|v| (name.to_string(), v)))
                .collect(),
        )
    }
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token; it is printed once, alone on the last line.
    Create {
        #[arg(long)]
        agency: String,
        #[arg(long)]
        role: String,
        /// First and last name of the person.
        #[arg(long)]
        name: String,
        /// Their professional e-mail address: it identifies the person (the
        /// four-eyes rule compares it); one person may hold several tokens.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        db: Db,
        /// The definition the agency and role are checked against: the one
        /// the service runs (`ami serve --workflow`).
        #[command(flatten)]
        workflow: Workflow,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        db: Db,
    },
    /// Revoke a token; every instance refuses it from the next request.
    Revoke {
        id: uuid::Uuid,
        #[command(flatten)]
        db: Db,
    },
}

#[derive(Subcommand)]
enum MailCmd {
    /// Print a letter (subject, then text) as the outbox would send it
    /// now, from the database.
    Preview {
        #[arg(value_enum)]
        kind: PreviewKind,
        /// A dossier's id or reference (`AMI2-V1-0007`); for `digest`, an
        /// agency (`dar`).
        target: String,
        /// Print the HTML part instead of the text.
        #[arg(long)]
        html: bool,
        /// The address the letter gives to write to.
        #[arg(long, env = "AMI_MAIL_CONTACT")]
        mail_contact: Option<String>,
        #[arg(long, env = "AMI_MAIL_FROM", hide = true)]
        mail_from: Option<String>,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        workflow: Workflow,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PreviewKind {
    #[value(name = "accuse_reception")]
    AccuseReception,
    Decision,
    Digest,
}

#[derive(Subcommand)]
enum WorkflowCmd {
    /// Print the definition (TOML), or its Mermaid diagram.
    Show {
        #[arg(long)]
        mermaid: bool,
        #[command(flatten)]
        workflow: Workflow,
    },
    /// Print the OpenAPI document of the API of a service running the
    /// definition (what `GET /api/v1/openapi.json` answers), e.g. to lint
    /// it or generate a client without starting a service.
    Openapi {
        #[command(flatten)]
        workflow: Workflow,
    },
    /// Explain in French what changes from one definition to another
    /// (states, actions, rules, verdicts, pièces, waves and deadlines).
    Diff {
        /// The definition in use (TOML), or `ami2` for the embedded one.
        old: std::path::PathBuf,
        /// The definition to compare it with.
        new: std::path::PathBuf,
    },
    /// Replace the database's active definition by NEW: say what it means
    /// for every open dossier, refuse a change that would strand one, and
    /// otherwise record it in each open dossier's journal and make NEW
    /// active, in one transaction.
    Migrate {
        /// The new definition (TOML), or `ami2` for the embedded one.
        new: std::path::PathBuf,
        /// Say what the change means, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Who makes the change (an e-mail address), recorded in each event.
        #[arg(long, value_name = "EMAIL", default_value = "ami-workflow-migrate")]
        par: String,
        #[command(flatten)]
        db: Db,
    },
}

/// A definition from a TOML file, or the embedded one for `ami2`.
fn definition_at(path: &std::path::Path) -> anyhow::Result<Definition> {
    Ok(source_at(path)?.0)
}

#[derive(Subcommand)]
enum FilesCmd {
    /// Remove the stored files no pièce references (uploads whose event
    /// never committed, uploads cut short), older than a delay.
    Gc {
        /// Only files written before this long ago (e.g. 24h, 30m, 7d):
        /// a younger one may belong to an upload still under way.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        files: FilesArgs,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute every chain and compare every projection with its
    /// journal; exit 1 listing what does not match.
    Verify {
        /// A head printed earlier by `ami audit head` (SEQ:DIGEST): prove that
        /// nothing up to it changed.
        #[arg(long, value_name = "SEQ:DIGEST")]
        since_head: Option<crate::store::GlobalHead>,
        /// Also read every stored file back and check its SHA-256 against
        /// the journal.
        #[arg(long)]
        pieces: bool,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        files: FilesArgs,
        #[command(flatten)]
        workflow: Workflow,
    },
    /// Print the head of the global chain (SEQ:DIGEST), to keep elsewhere.
    Head {
        #[command(flatten)]
        db: Db,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("erreur : {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("erreur : {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("AMI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colours only for a person at a terminal: a file, a pipe or a journal
    // gets plain text. NO_COLOR (https://no-color.org) turns them off too.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// `ami workflow migrate`: what the new definition means for each open
/// dossier, then (unless a dry run) the change itself.
async fn migrate_workflow(
    path: &std::path::Path,
    dry_run: bool,
    by: &str,
    db: &Db,
) -> anyhow::Result<ExitCode> {
    let (new, source) = source_at(path)?;
    let store = connect_existing(&db.url()?).await?;
    let Some(active) = store.active_definition().await? else {
        bail!(
            "la base n'a pas encore de définition active : démarrez « ami serve --workflow {} » pour l'adopter",
            path.display()
        );
    };
    let old = Definition::from_toml(&active.source)
        .context("la définition active enregistrée dans la base")?;
    if active.sha256 == crate::store::definition_sha256(&new) {
        println!(
            "La définition {} est déjà active : rien à faire.",
            new.version()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Définition active : {} ; nouvelle définition : {}.",
        old.version(),
        new.version()
    );
    for change in ami_core::diff::diff(&old, &new) {
        println!("  {}", change.text);
    }
    let plans = store.plan_migration(&old, &new).await?;
    println!("{} dossier(s) concerné(s) :", plans.len());
    for p in &plans {
        println!("  {}", p.explain(&old, &new));
    }
    let stranded = plans.iter().filter(|p| p.is_stranded()).count();
    if stranded > 0 {
        let references: Vec<&str> = plans
            .iter()
            .filter(|p| p.is_stranded())
            .map(|p| p.dossier.reference.as_str())
            .collect();
        eprintln!(
            "Refusé : {stranded} dossier(s) resteraient bloqués ({}). Donnez leur nouvel état dans [migration] state_map de la nouvelle définition.",
            references.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    if dry_run {
        println!("Essai : rien n'a été écrit.");
        return Ok(ExitCode::SUCCESS);
    }
    let creator = new
        .creation_actions()
        .next()
        .context("la définition n'a pas d'action de dépôt")?;
    let actor = ami_core::Actor {
        id: by.into(),
        name: "Changement de définition".into(),
        agency: creator.agency.clone(),
        role: new
            .roles()
            .last()
            .map(|r| r.id.clone())
            .context("la définition n'a pas de rôle")?,
    };
    let appended = store
        .migrate_definition(&old, &new, &source, &plans, &actor, Utc::now())
        .await?;
    println!(
        "Définition {} active ; changement inscrit au journal de {appended} dossier(s).",
        new.version()
    );
    Ok(ExitCode::SUCCESS)
}

/// `ami mail preview`: the letter of `kind` for `target`, rendered by the
/// outbox's own functions. The accusé and the decision are those of the
/// dossier's outbox rows when it has them (else of its deposit, of its
/// last event when it is in a final state); the digest is today's.
async fn preview(
    store: &dyn Store,
    def: &Definition,
    kind: PreviewKind,
    target: &str,
    contact: &str,
) -> anyhow::Result<ami_mail::Letter> {
    use crate::mail::outbox;
    use crate::store::OutgoingKind;
    if kind == PreviewKind::Digest {
        let today = Utc::now()
            .with_timezone(&def.campaign().time_zone)
            .date_naive();
        return outbox::render_digest(store, def, target, today, None).await;
    }
    let dossier = find_dossier(store, target).await?;
    let wanted = match kind {
        PreviewKind::AccuseReception => OutgoingKind::AccuseReception,
        _ => OutgoingKind::Decision,
    };
    let row_seq = store
        .dossier_messages(dossier.id)
        .await?
        .into_iter()
        .filter(|m| m.kind == wanted)
        .filter_map(|m| m.event_seq)
        .next_back();
    match kind {
        PreviewKind::AccuseReception => {
            outbox::render_accuse(store, def, dossier.id, row_seq.unwrap_or(1), contact).await
        }
        _ => {
            let seq = match row_seq {
                Some(seq) => seq,
                None if def.is_terminal(dossier.state.as_str()) => dossier.version,
                None => bail!(
                    "le dossier {} n'a pas de décision (état : {})",
                    dossier.reference,
                    dossier.state
                ),
            };
            outbox::render_decision(store, def, dossier.id, seq, contact).await
        }
    }
}

/// A dossier by its id or its reference.
async fn find_dossier(store: &dyn Store, target: &str) -> anyhow::Result<ami_core::Dossier> {
    let target = target.trim();
    if let Ok(id) = target.parse::<uuid::Uuid>() {
        return store
            .get_dossier(ami_core::DossierId(id))
            .await?
            .with_context(|| format!("aucun dossier d'identifiant {id}"));
    }
    let filter = crate::store::DossierFilter {
        q: Some(target.to_string()),
        limit: 50,
        ..Default::default()
    };
    store
        .list_dossiers(&filter)
        .await?
        .items
        .into_iter()
        .find(|d| d.reference.eq_ignore_ascii_case(target))
        .with_context(|| format!("aucun dossier de référence « {target} »"))
}

/// `ami import`: each source's messages imported, one French line per
/// source; fails only when the files, the storage or the database do.
async fn import(
    paths: &[std::path::PathBuf],
    db: &Db,
    files: &FilesArgs,
    workflow: &Workflow,
) -> anyhow::Result<ExitCode> {
    let url = db.url()?;
    let store = connect(&url).await?;
    let definition = Arc::new(workflow.or_active(&*store).await?);
    let files = files.open(&url)?;
    let importer = crate::mail::import::Importer::new(store.clone(), files, definition);
    for path in paths {
        let shown = path.display().to_string();
        let messages = ami_mail::read_path(path).with_context(|| format!("lecture de {shown}"))?;
        let mut tally = crate::mail::import::Tally::default();
        for message in messages {
            let message = message.with_context(|| format!("lecture de {shown}"))?;
            let imported = importer
                .import(&message.bytes, &message.origin)
                .await
                .with_context(|| format!("import de {}", message.origin))?;
            tally.add(&imported);
        }
        println!("{shown} : {tally}");
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn connect(url: &DatabaseUrl) -> anyhow::Result<Database> {
    crate::store::connect(url)
        .await
        .with_context(|| format!("connexion à la base {url}"))
}

/// A database `ami` already uses; never creates one.
async fn connect_existing(url: &DatabaseUrl) -> anyhow::Result<Database> {
    crate::store::connect_existing(url)
        .await
        .with_context(|| format!("base {url}"))
}

async fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Serve {
            addr,
            db,
            files,
            workflow,
            public_url,
            max_piece_size,
            mail,
            imap,
        } => {
            let mailbox = imap.source()?;
            let (definition, source) = workflow.load_with_source()?;
            let mail = mail.settings(&definition, public_url.as_deref())?;
            let definition = Arc::new(definition);
            let url = db.url()?;
            let store = connect(&url).await?;
            check_definition(&*store, &definition, &source).await?;
            let files = files.open(&url)?;
            if url.backend() == Backend::Postgres && files.url().starts_with("file://") {
                tracing::warn!(
                    files = %files.url(),
                    "pièce files in a local folder: instances on other machines will not see them; give them all one --files-url s3://…"
                );
            }
            // The communes of France are parsed on first use (a few
            // milliseconds): here rather than in the first request.
            let _ = ami_core::communes::communes();
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("écoute sur {addr}"))?;
            tracing::info!(
                addr = %listener.local_addr()?,
                database = %url,
                files = %files.url(),
                workflow = %definition.version(),
                "ami listening"
            );
            let state = AppState {
                store: store.clone(),
                files,
                definition,
                max_piece_size,
                secure_cookies: public_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("https://")),
                clock: http::Clock::System,
                letters: Arc::new(tokio::sync::Notify::new()),
            };
            // One stop for the HTTP server and the mailbox's follower.
            let stop = tokio_util::sync::CancellationToken::new();
            let follower = mailbox.map(|(source, password)| {
                let importer = crate::mail::import::Importer::new(
                    store.clone(),
                    state.files.clone(),
                    state.definition.clone(),
                );
                tracing::info!(imap = %source, "following the mailbox");
                tokio::spawn(crate::mail::imap::follow(
                    source,
                    password,
                    move |raw: Vec<u8>| {
                        let importer = importer.clone();
                        async move { importer.import(&raw, "imap").await.map(|_| ()) }
                    },
                    stop.clone().cancelled_owned(),
                ))
            });
            let stopping = stop.clone();
            let outbox = crate::mail::outbox::Outbox::spawn(
                store.clone(),
                state.definition.clone(),
                mail,
                http::Clock::System,
                state.letters.clone(),
            );
            let served = http::serve(listener, state, async move {
                shutdown_signal().await;
                stopping.cancel();
            })
            .await;
            stop.cancel();
            outbox.stop().await;
            if let Some(follower) = follower {
                if let Err(e) = follower.await {
                    tracing::warn!(error = %e, "the mailbox's follower ended badly");
                }
            }
            served?;
            store.close().await;
            tracing::info!("ami stopped");
        }
        Cmd::Mail {
            command:
                MailCmd::Preview {
                    kind,
                    target,
                    html,
                    mail_contact,
                    mail_from,
                    db,
                    workflow,
                },
        } => {
            let store = connect_existing(&db.url()?).await?;
            let def = workflow.or_active(&*store).await?;
            let contact = mail_contact
                .or(mail_from)
                .unwrap_or_else(|| "(adresse de contact : --mail-contact)".to_string());
            let letter = preview(&*store, &def, kind, &target, &contact).await?;
            let body = if html {
                &letter.html
            } else {
                println!("{}\n", letter.subject);
                &letter.text
            };
            // The templates end without a newline; a terminal wants one.
            println!("{}", body.trim_end_matches('\n'));
        }
        Cmd::Import {
            paths,
            db,
            files,
            workflow,
        } => return import(&paths, &db, &files, &workflow).await,
        Cmd::Migrate { db } => {
            connect(&db.url()?).await?;
            println!("migrations appliquées");
        }
        Cmd::Token { command } => token(command).await?,
        Cmd::Workflow {
            command: WorkflowCmd::Show { mermaid, workflow },
        } => {
            let def = workflow.load()?;
            if mermaid {
                print!("{}", ami_core::to_mermaid(&def));
            } else {
                match &workflow.workflow {
                    Some(path) => print!("{}", std::fs::read_to_string(path)?),
                    None => print!("{}", ami_core::DEFAULT_DEFINITION_TOML),
                }
            }
        }
        Cmd::Workflow {
            command: WorkflowCmd::Openapi { workflow },
        } => {
            let def = workflow.load()?;
            let today = Utc::now()
                .with_timezone(&def.campaign().time_zone)
                .date_naive();
            let doc = http::openapi(&def, today);
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Cmd::Workflow {
            command: WorkflowCmd::Diff { old, new },
        } => {
            let changes = ami_core::diff::diff(&definition_at(&old)?, &definition_at(&new)?);
            if changes.is_empty() {
                println!("Aucun changement.");
            }
            for c in changes {
                println!("{}", c.text);
            }
        }
        Cmd::Workflow {
            command:
                WorkflowCmd::Migrate {
                    new,
                    dry_run,
                    par,
                    db,
                },
        } => return migrate_workflow(&new, dry_run, &par, &db).await,
        Cmd::Demo { db, files } => {
            let url = db.url()?;
            let store = connect(&url).await?;
            check_definition(
                &*store,
                &Definition::ami2(),
                ami_core::DEFAULT_DEFINITION_TOML,
            )
            .await?;
            let files = files.open(&url)?;
            crate::demo::fill(&*store, &files, &std::sync::Arc::new(Definition::ami2())).await?;
        }
        Cmd::Files {
            command:
                FilesCmd::Gc {
                    older_than,
                    dry_run,
                    db,
                    files,
                },
        } => {
            let url = db.url()?;
            let store = connect_existing(&url).await?;
            let files = files.open(&url)?;
            let referenced = store.referenced_files().await?;
            let before =
                Utc::now() - chrono::Duration::from_std(older_than).context("--older-than")?;
            let orphans = files.unreferenced(&referenced, before).await?;
            let bytes: u64 = orphans.iter().map(|o| o.size).sum();
            for orphan in &orphans {
                if !dry_run {
                    files.delete(&orphan.key).await?;
                }
                println!(
                    "{} {} ({} octets, écrit le {})",
                    if dry_run { "à supprimer" } else { "supprimé" },
                    orphan.key,
                    orphan.size,
                    orphan.last_modified.format("%Y-%m-%d %H:%M:%S UTC")
                );
            }
            println!(
                "{} fichier(s) non référencé(s), {bytes} octets{} ; {} contenu(s) référencé(s) gardé(s)",
                orphans.len(),
                if dry_run { ", rien supprimé (--dry-run)" } else { " supprimés" },
                referenced.len()
            );
        }
        Cmd::Audit {
            command:
                AuditCmd::Verify {
                    since_head,
                    pieces,
                    db,
                    files,
                    workflow,
                },
        } => {
            let url = db.url()?;
            let store = connect_existing(&url).await?;
            let def = workflow.or_active(&*store).await?;
            let mut report = store.verify(&def, since_head.as_ref()).await?;
            if pieces {
                let files = files.open(&url)?;
                let checked = crate::files::verify_pieces(&*store, &files).await?;
                println!("{} fichier(s) de pièces relu(s)", checked.files);
                report.findings.extend(checked.findings);
            }
            let head = report
                .head
                .as_ref()
                .map_or(String::new(), |h| h.to_string());
            if report.is_clean() {
                println!(
                    "journal intègre : {} dossiers, {} événements, projections conformes ; tête {head}",
                    report.dossiers, report.events
                );
                if let Some(kept) = since_head {
                    println!("rien n'a changé jusqu'à la tête conservée {kept}");
                }
            } else {
                println!(
                    "journal altéré : {} anomalie(s) sur {} dossiers, {} événements",
                    report.findings.len(),
                    report.dossiers,
                    report.events
                );
                for finding in &report.findings {
                    println!("- {finding}");
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Audit {
            command: AuditCmd::Head { db },
        } => {
            let store = connect_existing(&db.url()?).await?;
            println!("{}", store.global_head().await?);
        }
        Cmd::Export {
            format,
            filters,
            db,
            workflow,
        } => {
            use std::io::IsTerminal;
            if matches!(format, ExportFormatArg::Xlsx) && std::io::stdout().is_terminal() {
                bail!("un classeur ne s'affiche pas dans un terminal : redirigez la sortie vers un fichier (ami export --format xlsx > dossiers.xlsx)");
            }
            let store = connect_existing(&db.url()?).await?;
            let def = Arc::new(workflow.or_active(&*store).await?);
            let format = match format {
                ExportFormatArg::Csv => crate::export::ExportFormat::Csv,
                ExportFormatArg::Xlsx => crate::export::ExportFormat::Xlsx,
            };
            // Whoever holds the database reads every dossier.
            let today = Utc::now()
                .with_timezone(&def.campaign().time_zone)
                .date_naive();
            let filter =
                crate::http::dossiers::list_filter(&def, None, &filters.query(), &[], today)
                    .map_err(|e| {
                        let p = e.problem();
                        match p.field {
                            Some(field) => anyhow::anyhow!("--{field} : {}", p.detail),
                            None => anyhow::anyhow!("{}", p.detail),
                        }
                    })?;
            let mut out = std::io::stdout().lock();
            crate::export::write_to(store.clone(), def, filter, format, &mut out).await?;
            store.close().await;
        }
        Cmd::Rebuild {
            accept_loss,
            db,
            workflow,
        } => {
            let store = connect_existing(&db.url()?).await?;
            let def = workflow.or_active(&*store).await?;
            let report = store.rebuild_projections(&def, accept_loss).await?;
            for (reference, projected, journal) in &report.shortened {
                println!(
                    "{reference} : la projection est à la version {projected}, le journal s'arrête à {journal}{}",
                    if report.applied { " (ramené au journal)" } else { "" }
                );
            }
            if !report.applied {
                println!(
                    "reconstruction refusée : le journal a perdu des étapes de {} dossier(s) ; vérifiez avec « ami audit verify », puis relancez avec --accept-loss pour les ramener au journal",
                    report.shortened.len()
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("{} dossiers reconstruits depuis le journal", report.rebuilt);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token(command: TokenCmd) -> anyhow::Result<()> {
    match command {
        TokenCmd::Create {
            agency,
            role,
            name,
            email,
            db,
            workflow,
        } => {
            if name.trim().is_empty() || ami_core::text::has_hidden_chars(&name) {
                bail!("--name doit donner le prénom et le nom de la personne");
            }
            let store = connect(&db.url()?).await?;
            // The definition the service runs: a token whose agency or role
            // it lacks would admit nobody.
            let def = workflow.or_active(&*store).await?;
            if !def.has_agency(&agency) {
                bail!(
                    "agence inconnue « {agency} » dans la définition {} : {}",
                    def.version(),
                    one_of(def.agencies().iter().map(|a| a.id.as_str()))
                );
            }
            if def.role_rank(&role).is_none() {
                bail!(
                    "rôle inconnu « {role} » dans la définition {} : {}",
                    def.version(),
                    one_of(def.roles().iter().map(|r| r.id.as_str()))
                );
            }
            let (record, text) =
                crate::auth::create_token(&*store, &name, &email, &agency, &role).await?;
            println!(
                "jeton {} créé pour {} <{}> ({} {}) ; il ne sera plus affiché :",
                record.id, record.name, record.person_id, record.agency, record.role
            );
            println!("{text}");
        }
        TokenCmd::List { db } => {
            let store = connect(&db.url()?).await?;
            for t in store.list_tokens().await? {
                println!(
                    "{}  {:<4} {:<12} {:<30} {:<36} créé {}{}",
                    t.id,
                    t.agency,
                    t.role,
                    t.name,
                    t.person_id,
                    t.created_at.format("%Y-%m-%d %H:%M"),
                    t.revoked_at
                        .map(|r| format!("  révoqué {}", r.format("%Y-%m-%d %H:%M")))
                        .unwrap_or_default()
                );
            }
        }
        TokenCmd::Revoke { id, db } => {
            let store = connect(&db.url()?).await?;
            if !store.revoke_token(id, Utc::now()).await? {
                bail!("aucun jeton {id}");
            }
            println!("jeton {id} révoqué");
        }
    }
    Ok(())
}

/// `a`, `a ou b`, `a, b ou c`.
fn one_of<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} ou {last}", rest.join(", ")),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_choices_reads_as_french() {
        assert_eq!(one_of([].into_iter()), "");
        assert_eq!(one_of(["dar"].into_iter()), "dar");
        assert_eq!(
            one_of(["agent", "responsable"].into_iter()),
            "agent ou responsable"
        );
        assert_eq!(one_of(["dar", "acv", "ti"].into_iter()), "dar, acv ou ti");
    }
}
