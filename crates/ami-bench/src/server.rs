//! The `ami serve` process the service measure talks to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

/// The `ami` binary: the one given, else the `ami` next to this program
/// (same target directory, as `cargo build --release -p ami-service -p
/// ami-bench` leaves them).
pub fn ami_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => {
            let me = std::env::current_exe().context("path of this program")?;
            let dir = me
                .parent()
                .context("the directory of this program")?
                .to_path_buf();
            dir.join(format!("ami{}", std::env::consts::EXE_SUFFIX))
        }
    };
    if !path.is_file() {
        bail!(
            "no ami binary at {}: build it with cargo build --release -p ami-service (or give --ami PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// When a file was last written, for the header (a stale `ami` binary
/// measures old code).
pub fn modified(path: &Path) -> String {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| {
            chrono::DateTime::<chrono::Local>::from(t)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

/// A running `ami serve` on a free local port.
pub struct Server {
    child: tokio::process::Child,
    pub pid: u32,
    pub base: String,
}

impl Server {
    /// Starts `ami serve` on `database_url` and waits until it answers.
    pub async fn start(
        ami: &Path,
        database_url: &str,
        client: &reqwest::Client,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let child = tokio::process::Command::new(ami)
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database_url,
            ])
            .env("AMI_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("démarrage de « {} serve »", ami.display()))?;
        let mut server = Server {
            pid: child.id().unwrap_or_default(),
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_healthy(client).await?;
        Ok(server)
    }

    /// Peak resident memory of the process so far, in MiB (0 where
    /// unavailable).
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_kib(self.pid) as f64 / 1024.0
    }

    /// Waits until `/healthz` answers; an error at once if the process
    /// exits first (its own message is on stderr).
    async fn wait_healthy(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let base = &self.base;
        for _ in 0..400 {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("ami serve exited before answering ({status})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("le service ne répond pas sur {base}")
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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
