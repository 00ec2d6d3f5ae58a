//! The real `ami` program as a child process, for the fault tests: serve on
//! a free port, wait until it answers, kill it with SIGKILL, restart it; and
//! the token subcommands run through the CLI.
//!
//! Integration tests get the program from
//! `env!("CARGO_BIN_EXE_ami-under-test")`; the `pg-fault` drill runs itself
//! as `ami` (see [`AMI_SELF_EXEC`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ami_core::{Dossier, DossierId, Event};
use ami_service::store::{FeedCursor, Store};
use anyhow::{bail, Context};

/// How long a started service may take to answer `/healthz`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Interval between two health polls.
pub const POLL: Duration = Duration::from_millis(50);

/// A program that finds this variable set runs `ami_service::cli::main()`
/// instead of its own main: lets a binary other than `ami` spawn `ami`.
pub const AMI_SELF_EXEC: &str = "AMI_TESTS_RUN_AS_AMI";

/// A port of 127.0.0.1 free a moment ago: bound to port 0, then released.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The `ami` program and how to run it.
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    /// Extra environment, e.g. [`AMI_SELF_EXEC`].
    pub env: Vec<(String, String)>,
}

impl Program {
    pub fn new(path: impl Into<PathBuf>) -> Program {
        Program {
            path: path.into(),
            env: Vec::new(),
        }
    }

    /// This very executable, which runs `ami` when [`AMI_SELF_EXEC`] is set.
    pub fn current_exe_as_ami() -> anyhow::Result<Program> {
        Ok(Program {
            path: std::env::current_exe()?,
            env: vec![(AMI_SELF_EXEC.into(), "1".into())],
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.path);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.env("AMI_LOG", "warn,sqlx=error");
        c
    }

    /// Runs `ami ARGS` to completion; its stdout, or an error with stderr.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {} {args:?}", self.path.display()))?;
        if !out.status.success() {
            bail!(
                "ami {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ami token create`: the token id and the token, read from the last
    /// line of stdout.
    pub fn create_token(
        &self,
        database_url: &str,
        name: &str,
        agency: &str,
        role: &str,
    ) -> anyhow::Result<(uuid::Uuid, String)> {
        let out = self.run(&[
            "token",
            "create",
            "--agency",
            agency,
            "--role",
            role,
            "--name",
            name,
            "--email",
            &crate::email_of(name),
            "--database-url",
            database_url,
        ])?;
        let token = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .context("no token printed")?
            .trim()
            .to_string();
        let id = token
            .strip_prefix("ami_")
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(id, _)| uuid::Uuid::try_parse(id).ok())
            .with_context(|| format!("not a token: {token}"))?;
        Ok((id, token))
    }

    /// `ami token revoke ID`.
    pub fn revoke_token(&self, database_url: &str, id: uuid::Uuid) -> anyhow::Result<()> {
        self.run(&[
            "token",
            "revoke",
            &id.to_string(),
            "--database-url",
            database_url,
        ])?;
        Ok(())
    }
}

/// `ami serve` running as a child process.
pub struct AmiProcess {
    program: Program,
    database_url: String,
    /// `--files-url`: where the pièces' files are kept; `None` when the
    /// program's environment says it (`AMI_FILES_URL`).
    pub files_url: Option<String>,
    pub addr: SocketAddr,
    child: Option<Child>,
    log_dir: tempfile::TempDir,
    /// The folder of `files_url` when it is the process's own.
    _files_dir: Option<tempfile::TempDir>,
    /// Number of starts, the first included.
    pub starts: u32,
}

/// `file:///DIR`, the `--files-url` of a folder.
pub fn files_url_of(dir: &std::path::Path) -> String {
    format!("file://{}", dir.display())
}

impl AmiProcess {
    /// Starts `ami serve` on a free port and waits until `/healthz` answers
    /// 200. The pièces' files go where `AMI_FILES_URL` in the program's
    /// environment says, else to a temporary folder of its own (kept across
    /// restarts), never to the working directory.
    pub async fn start(program: &Program, database_url: &str) -> anyhow::Result<AmiProcess> {
        if program.env.iter().any(|(k, _)| k == "AMI_FILES_URL") {
            return AmiProcess::launch(program, database_url, None, None).await;
        }
        let dir = tempfile::tempdir()?;
        let url = files_url_of(dir.path());
        AmiProcess::launch(program, database_url, Some(url), Some(dir)).await
    }

    /// Like [`AmiProcess::start`], the files kept at `files_url`: instances
    /// of one database share it.
    pub async fn start_with_files(
        program: &Program,
        database_url: &str,
        files_url: &str,
    ) -> anyhow::Result<AmiProcess> {
        AmiProcess::launch(program, database_url, Some(files_url.to_string()), None).await
    }

    async fn launch(
        program: &Program,
        database_url: &str,
        files_url: Option<String>,
        files_dir: Option<tempfile::TempDir>,
    ) -> anyhow::Result<AmiProcess> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut p = AmiProcess {
            program: program.clone(),
            database_url: database_url.to_string(),
            files_url,
            addr,
            child: None,
            log_dir: tempfile::tempdir()?,
            _files_dir: files_dir,
            starts: 0,
        };
        p.spawn_and_wait().await?;
        Ok(p)
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/api/v1`
    pub fn api(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir.path().join(format!("ami-{}.log", self.starts))
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path())?;
        let mut command = self.program.command();
        command.args([
            "serve",
            "--addr",
            &self.addr.to_string(),
            "--database-url",
            &self.database_url,
        ]);
        if let Some(url) = &self.files_url {
            command.args(["--files-url", url]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.program.path.display()))?;
        self.child = Some(child);
        self.wait_healthy(START_TIMEOUT).await
    }

    /// Polls `/healthz` every 50 ms until it answers 200, the process exits,
    /// or `within` passes.
    pub async fn wait_healthy(&mut self, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/healthz", self.base());
        let deadline = Instant::now() + within;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("ami serve exited ({status}): {}", self.log_tail());
                }
            }
            if let Ok(res) = client.get(&url).send().await {
                if res.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "ami serve on {} not healthy after {within:?}: {}",
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL (what `Child::kill` sends on unix), then reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and database, after a kill.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn_and_wait().await
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last lines the current (or last) run wrote on stderr.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for AmiProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The whole journal, read through the store, checked event by event.
#[derive(Debug, Default)]
pub struct JournalCheck {
    /// Every event per dossier, in feed order.
    pub by_dossier: BTreeMap<DossierId, Vec<Event>>,
    pub events: usize,
    /// Problems found; empty when the journal is sound.
    pub problems: Vec<String>,
}

impl JournalCheck {
    /// Reads the feed to its end and checks: per dossier seqs are 1..n with
    /// no gap and no duplicate; each projection equals the fold of its
    /// events; the digest chains verify.
    pub async fn run(store: &dyn Store) -> anyhow::Result<JournalCheck> {
        let mut check = JournalCheck::default();
        let mut cursor: Option<FeedCursor> = None;
        loop {
            let page = store.events_after(cursor.as_ref(), 1000, None).await?;
            if page.items.is_empty() {
                break;
            }
            check.events += page.items.len();
            for e in page.items {
                check
                    .by_dossier
                    .entry(e.event.dossier_id)
                    .or_default()
                    .push(e.event);
            }
            cursor = page.next.as_deref().and_then(FeedCursor::decode);
        }
        for (id, events) in &check.by_dossier {
            let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
            let expected: Vec<u64> = (1..=events.len() as u64).collect();
            if seqs != expected {
                check.problems.push(format!(
                    "dossier {id}: seqs {seqs:?}, expected 1..={}",
                    events.len()
                ));
            }
            let history: Vec<Event> = store
                .history(*id)
                .await?
                .into_iter()
                .map(|s| s.event)
                .collect();
            if history.len() != events.len() {
                check.problems.push(format!(
                    "dossier {id}: history has {} events, feed {}",
                    history.len(),
                    events.len()
                ));
            }
            let folded: Option<Dossier> = match ami_core::fold(history.iter()) {
                Ok(d) => d,
                Err(e) => {
                    check
                        .problems
                        .push(format!("dossier {id}: journal does not fold: {e}"));
                    continue;
                }
            };
            let projection = store.get_dossier(*id).await?;
            if folded != projection {
                check.problems.push(format!(
                    "dossier {id}: projection differs from the fold of its journal"
                ));
            }
        }
        let projections = store.count_dossiers().await?;
        if projections != check.by_dossier.len() as i64 {
            check.problems.push(format!(
                "{projections} projections for {} dossiers in the journal",
                check.by_dossier.len()
            ));
        }
        let audit = store.verify(&ami_core::Definition::ami2(), None).await?;
        for finding in &audit.findings {
            check.problems.push(format!("audit: {finding}"));
        }
        if audit.events != check.events as u64 {
            check.problems.push(format!(
                "verify_journal saw {} events, the feed {}",
                audit.events, check.events
            ));
        }
        Ok(check)
    }

    /// The event of a dossier at `seq`, if any.
    pub fn event(&self, id: DossierId, seq: u64) -> Option<&Event> {
        self.by_dossier
            .get(&id)
            .and_then(|events| events.iter().find(|e| e.seq == seq))
    }

    /// How many events of a dossier carry `seq`.
    pub fn count(&self, id: DossierId, seq: u64) -> usize {
        self.by_dossier
            .get(&id)
            .map_or(0, |events| events.iter().filter(|e| e.seq == seq).count())
    }
}

/// Tokens of the four people a dossier meets on its way to `laureat`.
#[derive(Debug, Clone)]
pub struct Crew {
    /// DAR agent: deposits and instructs.
    pub dar: String,
    /// DAR responsable, another person: declares the laureate.
    pub boss: String,
    pub acv: String,
    pub ti: String,
}

impl Crew {
    /// Creates the four tokens through `ami token create`; `tag` keeps the
    /// names apart between crews.
    pub fn create(program: &Program, database_url: &str, tag: &str) -> anyhow::Result<Crew> {
        let token = |name: String, agency, role| -> anyhow::Result<String> {
            Ok(program.create_token(database_url, &name, agency, role)?.1)
        };
        Ok(Crew {
            dar: token(format!("Camille Martin {tag}"), "dar", "agent")?,
            boss: token(format!("Dominique Bernard {tag}"), "dar", "responsable")?,
            acv: token(format!("Sophie Laurent {tag}"), "acv", "agent")?,
            ti: token(format!("Karim Haddad {tag}"), "ti", "agent")?,
        })
    }
}

/// One try at sending a request.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `None` when no answer came (connection refused or reset, timeout).
    pub status: Option<u16>,
    /// `code` of a problem+json body.
    pub code: Option<String>,
    pub problem_json: bool,
    pub elapsed: Duration,
    pub started: Instant,
    pub error: Option<String>,
}

/// A request a client sent, with every attempt, until it was answered.
#[derive(Debug, Clone)]
pub struct Sent {
    pub key: String,
    pub token: String,
    pub path: String,
    pub body: serde_json::Value,
    /// Sent as a deposit form: `body` in the `dossier` part and the file of
    /// each pièce it declares ([`crate::deposit_multipart`]); else as JSON.
    pub with_files: bool,
    /// `deposer` or the transition's action.
    pub action: String,
    pub attempts: Vec<Attempt>,
    /// The final answer: status and body.
    pub answer: Option<(u16, serde_json::Value)>,
}

impl Sent {
    pub fn acknowledged(&self) -> bool {
        self.answer
            .as_ref()
            .is_some_and(|(s, _)| (200..300).contains(s))
    }

    /// Whether an attempt was cut in flight: sent, then the connection
    /// closed without an answer (not refused before sending).
    pub fn cut_in_flight(&self) -> bool {
        self.attempts.iter().any(|a| {
            a.status.is_none() && a.error.as_deref().is_some_and(|e| !e.contains("refused"))
        })
    }

    /// Whether an attempt went unanswered or got 503 before the answer.
    pub fn interrupted(&self) -> bool {
        self.attempts
            .iter()
            .any(|a| a.status.is_none() || a.status == Some(503))
    }

    /// Dossier id and version the 2xx answer gives.
    pub fn acknowledged_event(&self) -> Option<(DossierId, u64)> {
        let (status, body) = self.answer.as_ref()?;
        if !(200..300).contains(status) {
            return None;
        }
        let id = body["id"]
            .as_str()
            .and_then(|s| uuid::Uuid::try_parse(s).ok())?;
        Some((DossierId(id), body["version"].as_u64()?))
    }

    /// The request, as sent every time: same key, same body (a new form
    /// of the same parts for a deposit with files).
    pub fn request(&self, client: &reqwest::Client, api: &str) -> reqwest::RequestBuilder {
        let req = client
            .post(format!("{api}{}", self.path))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", &self.key);
        if self.with_files {
            req.multipart(crate::deposit_multipart(&self.body))
        } else {
            req.json(&self.body)
        }
    }

    /// Sends once more with the same Idempotency-Key; status and body.
    pub async fn replay(
        &self,
        client: &reqwest::Client,
        api: &str,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let res = self.request(client, api).send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }
}

/// What makes a client give up retrying or stop starting dossiers.
#[derive(Debug, Clone)]
pub struct WalkLimits {
    /// No new dossier once this is set.
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// No retry after this instant: the request stays unanswered.
    pub give_up_at: Instant,
    /// Wait between two attempts of one request.
    pub retry_every: Duration,
}

/// Takes fresh dossiers from deposit to `laureat`, one after another, until
/// `limits.stop`; every request carries its own Idempotency-Key and is
/// retried with the same key and body while it goes unanswered or gets 503.
/// Any other non-2xx answer ends the walk. Returns everything sent.
pub async fn walk(
    client: reqwest::Client,
    api: String,
    crew: Crew,
    limits: WalkLimits,
) -> Vec<Sent> {
    use std::sync::atomic::Ordering;
    let mut sent = Vec::new();
    'dossiers: while !limits.stop.load(Ordering::Relaxed) {
        let deposit = Sent {
            key: uuid::Uuid::new_v4().to_string(),
            token: crew.dar.clone(),
            path: "/dossiers".into(),
            body: crate::new_dossier("Nevers", &["acv", "ti"]),
            // With the pièces' files: the dossier goes on to be instructed.
            with_files: true,
            action: "deposer".into(),
            attempts: Vec::new(),
            answer: None,
        };
        let deposit = send_until_answered(&client, &api, deposit, &limits).await;
        let Some((id, mut version)) = deposit.acknowledged_event() else {
            sent.push(deposit);
            break;
        };
        sent.push(deposit);
        let steps = [
            (&crew.dar, "instruire", Some("favorable")),
            (&crew.acv, "avis_acv", Some("favorable")),
            (&crew.ti, "avis_ti", Some("favorable")),
            (&crew.boss, "declarer_laureat", None),
        ];
        for (token, action, verdict) in steps {
            let mut body = serde_json::json!({"action": action, "expected_version": version});
            if let Some(v) = verdict {
                body["verdict"] = v.into();
            }
            let step = Sent {
                key: uuid::Uuid::new_v4().to_string(),
                token: token.clone(),
                path: format!("/dossiers/{}/transitions", id.0),
                body,
                with_files: false,
                action: action.into(),
                attempts: Vec::new(),
                answer: None,
            };
            let step = send_until_answered(&client, &api, step, &limits).await;
            let next = step.acknowledged_event();
            sent.push(step);
            match next {
                Some((_, v)) => version = v,
                None => break 'dossiers,
            }
        }
    }
    sent
}

/// An error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

/// Sends `s` until it gets an answer other than 503 or `give_up_at` passes.
pub async fn send_until_answered(
    client: &reqwest::Client,
    api: &str,
    mut s: Sent,
    limits: &WalkLimits,
) -> Sent {
    loop {
        let started = Instant::now();
        let result = s.request(client, api).send().await;
        let answered = match result {
            Ok(res) => {
                let status = res.status().as_u16();
                let problem_json = res
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/problem+json"));
                match res.text().await {
                    Ok(text) => {
                        let body: serde_json::Value =
                            serde_json::from_str(&text).unwrap_or_default();
                        s.attempts.push(Attempt {
                            status: Some(status),
                            code: body["code"].as_str().map(str::to_string),
                            problem_json,
                            elapsed: started.elapsed(),
                            started,
                            error: None,
                        });
                        (status != 503).then_some((status, body))
                    }
                    Err(e) => {
                        s.attempts.push(Attempt {
                            status: None,
                            code: None,
                            problem_json: false,
                            elapsed: started.elapsed(),
                            started,
                            error: Some(format!("reading body after {status}: {e}")),
                        });
                        None
                    }
                }
            }
            Err(e) => {
                s.attempts.push(Attempt {
                    status: None,
                    code: None,
                    problem_json: false,
                    elapsed: started.elapsed(),
                    started,
                    error: Some(error_chain(&e)),
                });
                None
            }
        };
        if let Some(answer) = answered {
            s.answer = Some(answer);
            return s;
        }
        if Instant::now() >= limits.give_up_at {
            return s;
        }
        tokio::time::sleep(limits.retry_every).await;
    }
}

impl AmiProcess {
    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}
