//! A real IMAP server for the mail tests: Debian's Dovecot
//! (`dovecot-imapd`, installed by `.ci/run`), one instance per test, from
//! a configuration written into a temporary folder: 127.0.0.1 on a free
//! port, no TLS, plain login allowed, one user ([`USER`], [`PASSWORD`])
//! whose maildir is in that folder. Its program is `AMI_TEST_DOVECOT`
//! when set, else `dovecot` on the PATH or in `/usr/sbin` (installed with
//! apt-get when missing and run as root). Tests that ask for it fail,
//! rather than skip, when it cannot start.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let mut server = ami_tests::dovecot::Dovecot::start()?;
//! let mut imap = server.client().await?; // logged in, for APPEND, FETCH…
//! imap.append("INBOX", None, None, b"Subject: x\r\n\r\nbody\r\n").await?;
//! server.restart()?; // SIGKILL, then the same port and mail again
//! # Ok(()) }
//! ```
//!
//! Each instance runs in its own process group, killed as a whole (SIGKILL)
//! by [`Dovecot::kill`] and on drop: like a machine losing its server.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// The one mail user of every instance.
pub const USER: &str = "ami";
/// Its password.
pub const PASSWORD: &str = "courrier-secret";

/// How long Dovecot may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// An IMAP session of the test's own, over plain TCP.
pub type Session = async_imap::Session<tokio::net::TcpStream>;

/// A running Dovecot and its folder (configuration, maildir, log).
pub struct Dovecot {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Dovecot {
    /// Writes a configuration for a free port and starts Dovecot; returns
    /// once it accepts connections.
    pub fn start() -> anyhow::Result<Dovecot> {
        Dovecot::start_advertising(None)
    }

    /// Like [`Dovecot::start`], but after login the server advertises only
    /// `capabilities` (`imap_capability`), e.g. `IMAP4rev1 UIDPLUS` for a
    /// server without IDLE nor MOVE: to test a client's fallbacks.
    pub fn start_advertising(capabilities: Option<&str>) -> anyhow::Result<Dovecot> {
        Dovecot::start_with(capabilities, false)
    }

    /// Like [`Dovecot::start`], but TLS only (`imaps://localhost:PORT`),
    /// with a certificate for `localhost` signed by a CA made for it, whose
    /// PEM file is [`Dovecot::ca_file`] (for `SSL_CERT_FILE`).
    pub fn start_tls() -> anyhow::Result<Dovecot> {
        Dovecot::start_with(None, true)
    }

    fn start_with(capabilities: Option<&str>, tls: bool) -> anyhow::Result<Dovecot> {
        let dir = tempfile::Builder::new().prefix("dovecot").tempdir()?;
        let port = crate::process::free_port()?;
        if tls {
            make_certificates(dir.path())?;
        }
        write_config(dir.path(), port, capabilities, tls)?;
        let mut server = Dovecot {
            dir,
            port,
            child: None,
        };
        server.spawn_and_wait()?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `imap://ami@127.0.0.1:PORT/MAILBOX`, for `ImapSource::parse`.
    pub fn url(&self, mailbox: &str) -> String {
        format!("imap://{USER}@127.0.0.1:{}/{mailbox}", self.port)
    }

    /// The CA of a [`Dovecot::start_tls`] server, in PEM.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Writes `raw` straight into the INBOX's maildir, as a delivery
    /// agent would (for a TLS-only server, which [`Dovecot::client`] cannot
    /// reach). Waits first for Dovecot to make the maildir (at [`USER`]'s
    /// first login). Returns the file's path.
    pub fn deliver(&self, raw: &[u8]) -> anyhow::Result<String> {
        let maildir = self.dir.path().join("mail").join(USER);
        let deadline = Instant::now() + START_TIMEOUT;
        // Dovecot makes cur/, new/ and tmp/ one after the other.
        while !["cur", "new", "tmp"]
            .iter()
            .all(|sub| maildir.join(sub).is_dir())
        {
            if Instant::now() > deadline {
                bail!("no maildir at {} (nobody logged in?)", maildir.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let name = format!(
            "{}.P{}Q{}.ami-tests",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, raw)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666))?;
        let new = maildir.join("new").join(&name);
        std::fs::rename(&tmp, &new)?;
        Ok(new.display().to_string())
    }

    /// A session logged in as [`USER`], to append messages or read flags.
    pub async fn client(&self) -> anyhow::Result<Session> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await?
            .context("Dovecot closed before its greeting")?;
        client
            .login(USER, PASSWORD)
            .await
            .map_err(|(e, _)| anyhow::Error::new(e))
            .context("login to Dovecot")
    }

    /// Kills the server and every process of its group (SIGKILL), then
    /// waits until its port refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts again on the same port and maildir, after a kill.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        // The dead master's pid file would stop the new one.
        let _ = std::fs::remove_file(self.dir.path().join("run/master.pid"));
        self.spawn_and_wait()
    }

    /// The last lines of Dovecot's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let program = program()?;
        let child = Command::new(&program)
            .arg("-F")
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                self.dir.path().join("stderr.log"),
            )?))
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                bail!(
                    "Dovecot stopped ({status}): {}\n{}",
                    std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default(),
                    self.log_tail()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "Dovecot not listening on {} after {START_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `AMI_TEST_DOVECOT`, else `dovecot` from the PATH or `/usr/sbin`,
/// installed with apt-get when missing and the tests run as root on
/// Debian (as CI does; `.ci/run` installs it beforehand).
fn program() -> anyhow::Result<PathBuf> {
    static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| find_or_install().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("dovecot"))
        .find(|p| p.is_file())
}

fn find_or_install() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("AMI_TEST_DOVECOT") {
        return Ok(PathBuf::from(p));
    }
    if let Some(found) = find() {
        return Ok(found);
    }
    let how = "apt-get install dovecot-imapd (as .ci/run does), or point AMI_TEST_DOVECOT at it";
    if id("-u")? != "0" || !Path::new("/usr/bin/apt-get").is_file() {
        bail!("dovecot is missing: {how}");
    }
    // Two test processes may get here at once; apt-get's own lock makes the
    // second wait, then find it installed.
    eprintln!("Dovecot is missing: installing dovecot-imapd with apt-get");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=600"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !(apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "dovecot-imapd"])) {
        bail!("apt-get install dovecot-imapd failed: {how}");
    }
    find().with_context(|| format!("dovecot still missing after apt-get: {how}"))
}

/// Output of `id FLAG`, trimmed.
fn id(flag: &str) -> anyhow::Result<String> {
    let out = Command::new("id").arg(flag).output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// The configuration of an instance in `dir` on `port`. As root (CI),
/// Dovecot's own Debian users run the login and mail processes (Dovecot
/// refuses root for them); as anyone else, that person runs everything.
fn write_config(
    dir: &Path,
    port: u16,
    capabilities: Option<&str>,
    tls: bool,
) -> anyhow::Result<()> {
    let root = id("-u")? == "0";
    let (internal, internal_group, login, mail_user, mail_group) = if root {
        let d = "dovecot".to_string();
        (d.clone(), d.clone(), "dovenull".to_string(), d.clone(), d)
    } else {
        let user = id("-un")?;
        let group = id("-gn")?;
        (user.clone(), group.clone(), user.clone(), user, group)
    };
    for sub in ["run", "state", "mail"] {
        std::fs::create_dir(dir.join(sub))?;
    }
    if root {
        // Dovecot's users must reach their sockets and write the maildir.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(dir.join("mail"), std::fs::Permissions::from_mode(0o777))?;
    }
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, format!("{USER}:{{PLAIN}}{PASSWORD}\n"))?;
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644))?;
    let d = dir.display();
    let (ssl, listeners) = if tls {
        (
            format!("ssl = required\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem"),
            format!(
                "  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    \
                 address = 127.0.0.1\n    port = {port}\n    ssl = yes\n  }}"
            ),
        )
    } else {
        (
            "ssl = no".to_string(),
            format!(
                "  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
                 inet_listener imaps {{\n    port = 0\n  }}"
            ),
        )
    };
    let config = format!(
        r#"# Written by ami-tests (tests/src/dovecot.rs): one test's server.
base_dir = {d}/run
state_dir = {d}/state
instance_name = ami-test-{port}
listen = 127.0.0.1
protocols = imap
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {d}/dovecot.log
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={d}/mail/%u
}}
service imap-login {{
  chroot =
{listeners}
}}
"#
    );
    let config = match capabilities {
        Some(caps) => format!("{config}imap_capability = {caps}\n"),
        None => config,
    };
    std::fs::write(dir.join("dovecot.conf"), config)?;
    Ok(())
}

/// A CA and a certificate for `localhost` it signed (EC keys, two days),
/// made with `openssl` into `dir`: `ca.pem`, `cert.pem`, `key.pem`.
fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &[
                "-subj",
                "/CN=ami test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .context("openssl (apt-get install openssl)")?;
        if !out.status.success() {
            bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}
