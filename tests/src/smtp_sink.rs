//! A real SMTP server for the mail tests: Python's `aiosmtpd` (from PyPI,
//! in a venv under `target/aiosmtpd/`, installed on first use; `.ci/run`
//! installs it beforehand), one per test on a free port, with a handler of
//! ours that keeps each message's bytes and envelope in a temporary folder.
//! Its Python is `AMI_TEST_AIOSMTPD_PYTHON` when set.
//!
//! The handler refuses some recipients, for the error tests: a local part
//! starting with `refuse-5` gets `550` (permanent), `refuse-4` gets `451`
//! (try later); see [`REFUSED_FOR_GOOD`] and [`REFUSED_FOR_NOW`].
//!
//! For the crash tests, a sink can be stopped and started again on its
//! port ([`SmtpSink::stop`], [`SmtpSink::start_again`]), frozen
//! ([`SmtpSink::freeze`]: connections are accepted by the kernel but never
//! greeted), made to keep a message and hold back its `250`
//! ([`SmtpSink::hold_replies`]), or to wait a while before each `250`
//! ([`SmtpSink::start_slow`]): the message is kept before the client
//! knows it was accepted, which is the window of a second sending.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sink = ami_tests::smtp_sink::SmtpSink::start()?;
//! // send to sink.url() (smtp://127.0.0.1:PORT), then:
//! let received = sink.wait_for(1, std::time::Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A recipient the sink refuses with `550`.
pub const REFUSED_FOR_GOOD: &str = "refuse-5xx@ville.example";
/// A recipient the sink refuses with `451`.
pub const REFUSED_FOR_NOW: &str = "refuse-4xx@ville.example";

/// The handler, written next to the messages and given to `aiosmtpd -c`.
const HANDLER: &str = r#"# Written by ami-tests (tests/src/smtp_sink.rs).
import asyncio, json, os, time


class Sink:
    def __init__(self, directory, delay="0"):
        self.directory = directory
        self.delay = float(delay)
        # While this file exists, a kept message's 250 is held back.
        self.hold = os.path.join(os.path.dirname(directory), "hold")
        self.count = 0

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("refuse-5"):
            return "550 5.1.1 Mailbox unavailable"
        if local.startswith("refuse-4"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = "%020d-%06d" % (time.time_ns(), self.count)
        path = os.path.join(self.directory, name)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(path + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(path + ".tmp", path + ".eml")
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        while os.path.exists(self.hold):
            await asyncio.sleep(0.02)
        return "250 Message accepted"
"#;

/// One message the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message's bytes as sent (after SMTP's dot-unstuffing).
    pub raw: Vec<u8>,
}

/// A running sink and the folder it writes into.
pub struct SmtpSink {
    dir: tempfile::TempDir,
    port: u16,
    /// Seconds the handler waits after keeping a message, before its 250.
    delay: f64,
    child: Option<Child>,
}

impl SmtpSink {
    /// Starts a sink on a free port; returns once it greets.
    pub fn start() -> anyhow::Result<SmtpSink> {
        SmtpSink::start_slow(Duration::ZERO)
    }

    /// Like [`SmtpSink::start`], but each message is kept, then its `250`
    /// waits `delay`: a client killed meanwhile never learns that the
    /// message arrived.
    pub fn start_slow(delay: Duration) -> anyhow::Result<SmtpSink> {
        let dir = tempfile::Builder::new().prefix("smtp-sink").tempdir()?;
        std::fs::create_dir(dir.path().join("messages"))?;
        std::fs::write(dir.path().join("ami_sink.py"), HANDLER)?;
        let port = crate::process::free_port()?;
        let mut sink = SmtpSink {
            dir,
            port,
            delay: delay.as_secs_f64(),
            child: None,
        };
        sink.spawn()?;
        Ok(sink)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let python = python()?;
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "ami_sink.Sink"])
            .arg(self.dir.path().join("messages"))
            .arg(self.delay.to_string())
            .env("PYTHONPATH", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("stderr.log"))?,
            ))
            .spawn()
            .with_context(|| format!("starting {} -m aiosmtpd", python.display()))?;
        self.child = Some(child);
        self.wait_until_greeting()
    }

    /// Kills the sink (SIGKILL) and waits until its port refuses
    /// connections: a relay gone. What it received stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the sink again on the same port, after [`SmtpSink::stop`].
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    /// SIGSTOP: the port still accepts connections (the kernel completes
    /// them) but nobody greets; a client waits.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// SIGCONT, after [`SmtpSink::freeze`].
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.child.as_ref().context("sink not running")?.id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {signal} {pid}: {status}");
        Ok(())
    }

    /// From now on each message is kept, then its `250` waits until
    /// [`SmtpSink::release_replies`].
    pub fn hold_replies(&self) -> anyhow::Result<()> {
        std::fs::write(self.dir.path().join("hold"), b"")?;
        Ok(())
    }

    /// Lets the held `250`s go.
    pub fn release_replies(&self) -> anyhow::Result<()> {
        std::fs::remove_file(self.dir.path().join("hold"))?;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT`, for `SmtpSender::from_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far, oldest first.
    pub fn received(&self) -> anyhow::Result<Vec<Received>> {
        let messages = self.dir.path().join("messages");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&messages)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|eml| {
                let envelope: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(eml.with_extension("json"))?)?;
                Ok(Received {
                    mail_from: envelope["mail_from"].as_str().unwrap_or_default().into(),
                    rcpt_to: envelope["rcpt_tos"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect(),
                    raw: std::fs::read(eml)?,
                })
            })
            .collect()
    }

    /// Waits until at least `count` messages arrived, for up to `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> anyhow::Result<Vec<Received>> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received()?;
            if received.len() >= count {
                return Ok(received);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} message(s) after {timeout:?}, {count} expected",
                    received.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn wait_until_greeting(&mut self) -> anyhow::Result<()> {
        use std::io::{BufRead as _, BufReader};
        let started = Instant::now();
        loop {
            if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("220") {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                bail!(
                    "aiosmtpd stopped ({status}): {}",
                    std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("aiosmtpd not greeting on {} after 30 s", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The venv's Python with aiosmtpd, installed into `target/aiosmtpd/venv`
/// if needed. Several test processes may get here at once: the first one
/// to create the lock directory installs, the others wait for it.
fn python() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("AMI_TEST_AIOSMTPD_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let dir = target_dir().join("aiosmtpd");
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if installed(&venv) {
        return Ok(python);
    }
    std::fs::create_dir_all(&dir)?;
    let lock = dir.join("installing");
    if std::fs::create_dir(&lock).is_ok() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "aiosmtpd"])
                .status()
                .is_ok_and(|s| s.success());
        let _ = std::fs::remove_dir(&lock);
        if !ok {
            bail!("pip install aiosmtpd failed");
        }
    } else {
        for _ in 0..600 {
            if !lock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    if installed(&venv) {
        Ok(python)
    } else {
        bail!("aiosmtpd missing from {} after install", venv.display())
    }
}

/// Whether the venv has aiosmtpd (its command is installed with it).
fn installed(venv: &Path) -> bool {
    venv.join("bin/aiosmtpd").exists()
}
