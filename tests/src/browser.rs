//! A real browser for the end-to-end tests of the web pages: Debian's
//! headless Chromium, driven by the Node scenarios of `tests/browser/`
//! (`playwright-core`, with `axe-core` checks on every page).
//!
//! Nothing here is optional: without `node`, the npm packages or Chromium
//! the tests fail with the command that fixes it, never skip. The npm
//! packages (pinned in `tests/browser/package-lock.json`) are installed with
//! `npm ci` on first use; Chromium (`AMI_TEST_CHROMIUM`, else
//! `/usr/bin/chromium`) is installed with apt-get when the tests run as root
//! on Debian, as CI does. `.ci/run` installs both beforehand.
//!
//! A browser run is heavy for a 2-core machine: [`exclusive`] lets one test
//! of the process drive a browser at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `tests/browser/`: the scenarios, their `package.json` and lock.
pub fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The workspace's `target/ui-screenshots/<name>`, emptied: where a
/// scenario leaves its screenshots (`<nn>-<page>-<width>.png`).
pub fn screenshot_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/ui-screenshots")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The examples of `docs/examples/` (a PDF and an Excel budget) that the
/// scenarios upload.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/examples")
}

/// Holds the browser for one test at a time (the SQLite and PostgreSQL
/// variants of a scenario, and the scenarios, take turns).
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    BROWSER.lock().await
}

/// `node` on the PATH, or a failure saying how to get it.
pub fn node() -> PathBuf {
    static NODE: OnceLock<PathBuf> = OnceLock::new();
    NODE.get_or_init(|| {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("node"))
                .find(|p| p.is_file())
        });
        found.unwrap_or_else(|| {
            panic!(
                "the browser tests need Node.js (`node` and `npm`, version 20 or later) \
                 on the PATH: apt-get install -y nodejs npm"
            )
        })
    })
    .clone()
}

/// Installs the pinned npm packages into `tests/browser/node_modules` if
/// they are missing (`npm ci`, no install scripts). One install at a time:
/// within this process by a `OnceLock`, across test processes by a lock
/// directory that the first process creates.
pub fn npm_packages() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(install_npm_packages)
        .clone()
        .unwrap_or_else(|e| panic!("npm packages of the browser tests: {e}"));
}

fn packages_present(dir: &Path) -> bool {
    ["playwright-core", "axe-core"].iter().all(|p| {
        dir.join("node_modules")
            .join(p)
            .join("package.json")
            .is_file()
    })
}

fn install_npm_packages() -> Result<(), String> {
    let dir = scripts_dir();
    if packages_present(&dir) {
        return Ok(());
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let lock = target.join("browser-npm-installing");
    // A lock left by a process that died while installing goes stale.
    let stale = std::fs::metadata(&lock)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600));
    if stale {
        let _ = std::fs::remove_dir(&lock);
    }
    if std::fs::create_dir(&lock).is_ok() {
        let status = Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .status();
        let _ = std::fs::remove_dir(&lock);
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                return Err(format!(
                    "`npm ci --ignore-scripts` in {} failed ({s}); run it by hand to see why",
                    dir.display()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "cannot run npm ({e}): apt-get install -y npm, then \
                     (cd tests/browser && npm ci --ignore-scripts)"
                ))
            }
        }
    } else {
        for _ in 0..1200 {
            if !lock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    if packages_present(&dir) {
        Ok(())
    } else {
        Err(format!(
            "{}/node_modules lacks playwright-core or axe-core after `npm ci`",
            dir.display()
        ))
    }
}

/// The Chromium to drive: `AMI_TEST_CHROMIUM`, else `/usr/bin/chromium`,
/// installed with apt-get when missing and the tests run as root.
pub fn chromium() -> PathBuf {
    static CHROMIUM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CHROMIUM
        .get_or_init(find_or_install_chromium)
        .clone()
        .unwrap_or_else(|e| panic!("Chromium for the browser tests: {e}"))
}

fn find_or_install_chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("AMI_TEST_CHROMIUM") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("AMI_TEST_CHROMIUM={} is not a file", p.display()))
        };
    }
    let default = PathBuf::from("/usr/bin/chromium");
    if default.is_file() {
        return Ok(default);
    }
    let how = "install it with `apt-get update && apt-get install -y chromium` \
               (as root), or point AMI_TEST_CHROMIUM at a Chromium";
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = Path::new("/usr/bin/apt-get").is_file();
    if !(root && apt) {
        return Err(format!("{} is missing: {how}", default.display()));
    }
    // Two test processes may get here at once; apt-get's own lock makes the
    // second wait (-o DPkg::Lock::Timeout) and then find it installed.
    eprintln!("Chromium is missing: installing it with apt-get (about 2 minutes)");
    let ok = Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=600", "update", "-qq"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args([
                "-o",
                "DPkg::Lock::Timeout=600",
                "install",
                "-y",
                "-qq",
                "chromium",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
    if ok && default.is_file() {
        Ok(default)
    } else {
        Err(format!("apt-get install chromium failed: {how}"))
    }
}

/// What a scenario did: its exit status, its output, and the JSON summary
/// it prints on the last line of its stdout.
#[derive(Debug)]
pub struct ScriptRun {
    pub script: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub summary: Value,
    pub elapsed: Duration,
}

impl ScriptRun {
    /// Prints the scenario's output (shown by `cargo test` on failure or
    /// with `--nocapture`) and fails unless it exited 0 with a summary.
    pub fn assert_success(&self) -> &Value {
        println!(
            "---- {} ({:.1} s) stdout ----\n{}\n---- stderr ----\n{}",
            self.script,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        );
        assert!(
            self.success,
            "browser scenario {} failed after {:.1} s: {}\nproblems: {}\n(screenshots in target/ui-screenshots/)",
            self.script,
            self.elapsed.as_secs_f64(),
            self.summary["error"],
            self.summary["problems"]
        );
        assert!(
            self.summary.is_object(),
            "{}: no JSON summary on the last line of stdout",
            self.script
        );
        &self.summary
    }
}

/// Runs `tests/browser/<script>` with Node, the browser and `vars` in its
/// environment; kills it (and its Chromium) after `timeout`.
pub async fn run_script(script: &str, vars: &[(&str, String)], timeout: Duration) -> ScriptRun {
    npm_packages();
    let chromium = chromium();
    let started = Instant::now();
    let mut command = tokio::process::Command::new(node());
    command
        .arg(script)
        .current_dir(scripts_dir())
        .env("AMI_CHROMIUM", &chromium)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout ends Chromium too.
        .process_group(0)
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node {script}: {e}"));
    let pid = child.id();
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("node {script}: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
            panic!(
                "browser scenario {script} still running after {} s: killed",
                timeout.as_secs()
            );
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let summary = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    ScriptRun {
        script: script.to_string(),
        success: output.status.success(),
        stdout,
        stderr,
        summary,
        elapsed: started.elapsed(),
    }
}
