//! A real S3-compatible server for the tests: Moto in server mode, from
//! PyPI, started once per test process on a free port and stopped when the
//! process ends. Its program is `AMI_TEST_MOTO_SERVER` when set, else the
//! one installed in a venv under `target/moto/` (installed there on first
//! use; `.ci/run` installs it beforehand). Tests that ask for S3 fail,
//! rather than skip, when it cannot start.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The bucket every test uses; each test writes under its own prefix.
pub const BUCKET: &str = "ami-test";

/// Settings for `Files::open_with` (and the `AWS_*` variables of a child
/// `ami` process): the endpoint, plain HTTP, any credentials Moto takes.
pub fn settings(endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("aws_endpoint".into(), endpoint.into()),
        ("aws_allow_http".into(), "true".into()),
        ("aws_access_key_id".into(), "test".into()),
        ("aws_secret_access_key".into(), "test".into()),
        ("aws_region".into(), "us-east-1".into()),
    ]
}

/// The endpoint of the shared server, started on first use.
pub fn endpoint() -> String {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(start)
        .clone()
        .unwrap_or_else(|e| panic!("S3-compatible server (Moto): {e}"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The Moto server program, installed into `target/moto/venv` if needed.
/// Several test processes may get here at once: the first one to create
/// the lock directory installs, the others wait for it.
fn moto_program() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("AMI_TEST_MOTO_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let dir = target_dir().join("moto");
    let program = dir.join("venv/bin/moto_server");
    if program.exists() {
        return Ok(program);
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let lock = dir.join("installing");
    if std::fs::create_dir(&lock).is_ok() {
        let venv = dir.join("venv");
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "moto[server]"])
                .status()
                .is_ok_and(|s| s.success());
        let _ = std::fs::remove_dir(&lock);
        if !ok {
            return Err("pip install moto[server] failed".into());
        }
    } else {
        for _ in 0..600 {
            if !lock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    if program.exists() {
        Ok(program)
    } else {
        Err(format!("{} missing after install", program.display()))
    }
}

fn start() -> Result<String, String> {
    let program = moto_program()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // A watchdog shell stops the server when this test process is gone,
    // however it ends.
    let script = format!(
        "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
        program.display(),
        parent = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    // Up when it answers; then the bucket (Moto takes unsigned requests).
    for _ in 0..300 {
        if create_bucket(port).is_ok_and(|status| status.contains(" 200 ")) {
            return Ok(endpoint);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no answer on {endpoint} after 30 s"))
}

/// `PUT /bucket` over a plain connection; the status line of the answer.
fn create_bucket(port: u16) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status)?;
    Ok(status)
}
