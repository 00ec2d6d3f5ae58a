//! Mail in: follows one IMAP mailbox and gives every message not yet
//! imported to an importer, then marks it (keyword `$AmiImporte`) or moves
//! it to a folder.
//!
//! [`follow`] never gives up: a lost connection, a server restart or a
//! refused login is logged, then tried again after a wait that doubles
//! from one second to a minute (back to one second once connected).
//!
//! **Delivery is at least once.** A message is marked only after the
//! importer said `Ok`; if the process stops (or the connection drops)
//! between the two, the message is given again at the next start. The
//! importer must therefore recognise a message it already has (by its
//! `Message-ID`, or a digest of its bytes). An importer that returns `Err`
//! leaves the message unmarked: it is given again later (after a wait
//! that grows like the reconnection's). Return `Err` only for what may
//! succeed later (database unreachable); keep a message you cannot read as
//! a refused arrival and return `Ok`, or it comes back forever.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use async_imap::extensions::idle::IdleResponse;
use async_imap::types::{Flag, UnsolicitedResponse};
use futures_util::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// The keyword set on a message once imported (in the default mode).
pub const IMPORTED_KEYWORD: &str = "$AmiImporte";

/// Default wait between two looks at the mailbox when the server has no
/// IDLE.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// Longest IDLE before it is ended and started again: servers may drop an
/// IDLE after 30 minutes (RFC 2177).
pub const MAX_IDLE: Duration = Duration::from_secs(29 * 60);

/// Default IDLE length: shorter than [`MAX_IDLE`] so that a connection a
/// firewall dropped without a word is found (and made again) within
/// minutes.
pub const DEFAULT_IDLE_REFRESH: Duration = Duration::from_secs(10 * 60);

/// What is done to a message once the importer has taken it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterImport {
    /// Set the keyword [`IMPORTED_KEYWORD`]; messages carrying it are
    /// skipped. The mailbox keeps everything (the default).
    Flag,
    /// Move it to this folder (created if missing): the followed mailbox
    /// holds only what is left to import. With `MOVE` when the server has
    /// it, else `COPY`, `\Deleted` and `EXPUNGE`.
    MoveTo(String),
}

impl AfterImport {
    /// The `UID SEARCH` criteria of the messages left to import.
    fn search(&self) -> String {
        match self {
            AfterImport::Flag => format!("UNDELETED UNKEYWORD {IMPORTED_KEYWORD}"),
            AfterImport::MoveTo(_) => "UNDELETED".to_string(),
        }
    }
}

/// An `--imap-url` (or `--imap-done-folder`) `ami` cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImapUrlError {
    #[error("adresse IMAP illisible ({0}) : imaps://utilisateur@serveur/INBOX attendu")]
    Unreadable(String),
    #[error(
        "adresse IMAP : « {0}:// » inconnu, imaps:// (TLS) attendu, ou imap:// (sans chiffrement, \
         pour un serveur local ou les essais)"
    )]
    Scheme(String),
    #[error("adresse IMAP : l'utilisateur manque (imaps://utilisateur@serveur/INBOX)")]
    NoUser,
    #[error("adresse IMAP : le serveur manque (imaps://utilisateur@serveur/INBOX)")]
    NoHost,
    #[error(
        "adresse IMAP : le mot de passe ne s'écrit pas dans l'adresse, il se donne par la \
         variable AMI_IMAP_PASSWORD"
    )]
    PasswordInUrl,
    #[error("adresse IMAP : ni paramètres (?…) ni fragment (#…) attendus")]
    Extra,
    #[error(
        "dossier IMAP « {0} » : seuls les caractères ASCII imprimables sont acceptés \
         (par exemple INBOX/Importes)"
    )]
    Folder(String),
}

/// Where messages are read: server, user, mailbox, and what to do with a
/// message once imported. Made by [`ImapSource::parse`] from
/// `imaps://user@host[:port]/MAILBOX` (TLS, port 993 by default) or
/// `imap://user@host[:port]/MAILBOX` (no encryption, port 143: only for a
/// server on the same machine or the tests). The password is not part of
/// it: it is given to [`follow`] (from `AMI_IMAP_PASSWORD`).
#[derive(Clone, PartialEq, Eq)]
pub struct ImapSource {
    tls: bool,
    host: String,
    port: u16,
    user: String,
    mailbox: String,
    after_import: AfterImport,
    idle: bool,
    poll_interval: Duration,
    idle_refresh: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    command_timeout: Duration,
}

impl ImapSource {
    /// Reads an IMAP URL. The user is percent-decoded (`ami%40ville.fr`
    /// for `ami@ville.fr`); the mailbox is the path, `INBOX` when empty.
    pub fn parse(url: &str) -> Result<ImapSource, ImapUrlError> {
        let parsed = url::Url::parse(url).map_err(|e| ImapUrlError::Unreadable(e.to_string()))?;
        let tls = match parsed.scheme() {
            "imaps" => true,
            "imap" => false,
            other => return Err(ImapUrlError::Scheme(other.to_string())),
        };
        if parsed.password().is_some() {
            return Err(ImapUrlError::PasswordInUrl);
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(ImapUrlError::Extra);
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(ImapUrlError::NoHost),
        };
        let user = decode(parsed.username())?;
        if user.is_empty() {
            return Err(ImapUrlError::NoUser);
        }
        let path = decode(parsed.path().trim_start_matches('/'))?;
        let mailbox = if path.is_empty() {
            "INBOX".to_string()
        } else {
            folder(&path)?
        };
        Ok(ImapSource {
            tls,
            port: parsed.port().unwrap_or(if tls { 993 } else { 143 }),
            host,
            user,
            mailbox,
            after_import: AfterImport::Flag,
            idle: true,
            poll_interval: DEFAULT_POLL_INTERVAL,
            idle_refresh: DEFAULT_IDLE_REFRESH,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            command_timeout: Duration::from_secs(120),
        })
    }

    /// Moves imported messages to `folder` (`--imap-done-folder`) instead
    /// of marking them; `None` keeps the keyword. The name is the server's
    /// own, with its hierarchy separator (`INBOX.Importes` on a Dovecot
    /// with maildir, `INBOX/Importes` elsewhere).
    pub fn with_done_folder(mut self, done: Option<&str>) -> Result<ImapSource, ImapUrlError> {
        self.after_import = match done {
            None => AfterImport::Flag,
            Some(name) => AfterImport::MoveTo(folder(name)?),
        };
        Ok(self)
    }

    /// Waits `interval` between two looks when IDLE is not used.
    pub fn with_poll_interval(mut self, interval: Duration) -> ImapSource {
        self.poll_interval = interval;
        self
    }

    /// Whether IDLE is used when the server has it (yes by default); with
    /// `false` the mailbox is polled.
    pub fn with_idle(mut self, idle: bool) -> ImapSource {
        self.idle = idle;
        self
    }

    /// Ends and restarts each IDLE after `refresh` (at most [`MAX_IDLE`]).
    pub fn with_idle_refresh(mut self, refresh: Duration) -> ImapSource {
        self.idle_refresh = refresh.min(MAX_IDLE);
        self
    }

    /// The waits between two connection attempts (and two tries of a
    /// message the importer refused): from `min`, doubled up to `max`.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> ImapSource {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// How long one command (connection, login, search, fetch…) may take
    /// before the connection is deemed lost (2 minutes by default).
    pub fn with_command_timeout(mut self, timeout: Duration) -> ImapSource {
        self.command_timeout = timeout;
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the connection is encrypted (`imaps://`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn mailbox(&self) -> &str {
        &self.mailbox
    }

    pub fn after_import(&self) -> &AfterImport {
        &self.after_import
    }
}

impl fmt::Display for ImapSource {
    /// `imaps://user@host:port/MAILBOX`: there is no password to hide.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "imaps" } else { "imap" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "{scheme}://{}@{host}:{}/{}",
            self.user, self.port, self.mailbox
        )
    }
}

impl fmt::Debug for ImapSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapSource")
            .field("url", &self.to_string())
            .field("after_import", &self.after_import)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

fn decode(text: &str) -> Result<String, ImapUrlError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| ImapUrlError::Unreadable(e.to_string()))
}

/// A folder name sent as is: printable ASCII only (IMAP's modified UTF-7
/// for other letters is not written here).
fn folder(name: &str) -> Result<String, ImapUrlError> {
    if name.is_empty() || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ImapUrlError::Folder(name.to_string()));
    }
    Ok(name.to_string())
}

/// Follows `source` until `shutdown` resolves: connects and logs in with
/// `password`, gives every message left to import (oldest first, its raw
/// bytes as fetched with `BODY.PEEK[]`) to `import`, marks each one the
/// importer took (see [`AfterImport`]), then waits for news with IDLE (or
/// polls) and starts again. Errors are logged and the connection made
/// again; it returns only at shutdown, promptly, even mid-import (that
/// message is then given again at the next start).
///
/// Delivery is at least once: see the module's documentation.
pub async fn follow<I, F, E>(
    source: ImapSource,
    password: String,
    mut import: I,
    shutdown: impl Future<Output = ()>,
) where
    I: FnMut(Vec<u8>) -> F,
    F: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Backoff::new(source.backoff_min, source.backoff_max);
    loop {
        let lost = tokio::select! {
            biased;
            () = &mut shutdown => break,
            lost = run_session(&source, &password, &mut import, &mut backoff) => lost,
        };
        let wait = backoff.next();
        tracing::warn!(
            imap = %source,
            error = format!("{lost:#}"),
            retry_in = ?wait,
            "boîte IMAP : connexion perdue ou refusée, nouvel essai"
        );
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!(imap = %source, "boîte IMAP : suivi arrêté");
}

/// Waits that double from `min` up to `max`.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(self.max);
        wait
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

type Session = async_imap::Session<Stream>;

/// One connection, from login to its loss: returns only an error.
async fn run_session<I, F, E>(
    source: &ImapSource,
    password: &str,
    import: &mut I,
    backoff: &mut Backoff,
) -> anyhow::Error
where
    I: FnMut(Vec<u8>) -> F,
    F: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    match session(source, password, import, backoff).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn session<I, F, E>(
    source: &ImapSource,
    password: &str,
    import: &mut I,
    backoff: &mut Backoff,
) -> anyhow::Result<std::convert::Infallible>
where
    I: FnMut(Vec<u8>) -> F,
    F: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    let limit = source.command_timeout;
    let client = within(limit, "connexion", connect(source)).await?;
    let mut session = within(limit, "identification", async {
        client
            .login(&source.user, password)
            .await
            .map_err(|(e, _)| anyhow::Error::new(e))
    })
    .await?;
    let caps = within(limit, "CAPABILITY", session.capabilities()).await?;
    let server = Server {
        idle: source.idle && caps.has_str("IDLE"),
        moves: caps.has_str("MOVE"),
        uidplus: caps.has_str("UIDPLUS"),
    };
    if let AfterImport::MoveTo(done) = &source.after_import {
        // Already there is the usual answer (NO): not an error.
        if let Ok(Err(e)) = tokio::time::timeout(limit, session.create(done)).await {
            tracing::debug!(folder = %done, error = %e, "CREATE (dossier des messages importés)");
        }
    }
    let mailbox = within(limit, "SELECT", session.select(&source.mailbox)).await?;
    if source.after_import == AfterImport::Flag && !keeps_keyword(&mailbox.permanent_flags) {
        // Marks that do not stay would import the same messages forever.
        return Err(anyhow!(
            "la boîte {} ne garde pas le mot-clé {IMPORTED_KEYWORD} : déplacez les messages \
             importés dans un dossier (--imap-done-folder)",
            source.mailbox
        ));
    }
    backoff.reset();
    tracing::info!(
        imap = %source,
        idle = server.idle,
        moves = server.moves,
        "boîte IMAP suivie"
    );

    let news = session.unsolicited_responses.clone();
    let mut import_backoff = Backoff::new(source.backoff_min, source.backoff_max);
    loop {
        // What the server said before this search, the search sees.
        while news.try_recv().is_ok() {}
        let refused = import_pass(source, &server, &mut session, import).await?;
        let retry_in = if refused > 0 {
            Some(import_backoff.next())
        } else {
            import_backoff.reset();
            None
        };
        if has_news(&news) {
            continue;
        }
        session = if server.idle {
            idle(source, session, &news, retry_in).await?
        } else {
            let wait = retry_in.map_or(source.poll_interval, |r| r.min(source.poll_interval));
            tokio::time::sleep(wait).await;
            session
        };
    }
}

/// What the server can do, from its CAPABILITY.
struct Server {
    idle: bool,
    moves: bool,
    uidplus: bool,
}

/// Whether the mailbox keeps [`IMPORTED_KEYWORD`] (PERMANENTFLAGS has it,
/// or `\*`: any new keyword).
fn keeps_keyword(permanent: &[Flag<'_>]) -> bool {
    permanent
        .iter()
        .any(|f| *f == Flag::MayCreate || *f == Flag::Custom(IMPORTED_KEYWORD.into()))
}

/// Whether a new message was announced (EXISTS) since the last look.
fn has_news(news: &async_channel::Receiver<UnsolicitedResponse>) -> bool {
    let mut any = false;
    while let Ok(response) = news.try_recv() {
        any |= matches!(response, UnsolicitedResponse::Exists(_));
    }
    any
}

/// Waits in IDLE for news, `retry_in` (a refused message's next try) or
/// the refresh, whichever comes first.
async fn idle(
    source: &ImapSource,
    session: Session,
    news: &async_channel::Receiver<UnsolicitedResponse>,
    retry_in: Option<Duration>,
) -> anyhow::Result<Session> {
    let limit = source.command_timeout;
    let mut handle = session.idle();
    within(limit, "IDLE", handle.init()).await?;
    // News may come between the search and the server's « + idling ».
    if !has_news(news) {
        let wait = retry_in.map_or(source.idle_refresh, |r| r.min(source.idle_refresh));
        let (waiting, _stop) = handle.wait_with_timeout(wait);
        match waiting.await.context("IDLE")? {
            IdleResponse::NewData(_) | IdleResponse::Timeout => {}
            // The stop source is held: only the stream's end gets here.
            IdleResponse::ManualInterrupt => return Err(anyhow!("connexion fermée pendant IDLE")),
        }
    }
    within(limit, "DONE", handle.done()).await
}

/// Imports every message left to import; the number the importer refused.
async fn import_pass<I, F, E>(
    source: &ImapSource,
    server: &Server,
    session: &mut Session,
    import: &mut I,
) -> anyhow::Result<usize>
where
    I: FnMut(Vec<u8>) -> F,
    F: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    let limit = source.command_timeout;
    let query = source.after_import.search();
    let mut uids: Vec<u32> = within(limit, "SEARCH", session.uid_search(&query))
        .await?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let mut refused = 0;
    for uid in uids {
        let Some(raw) = within(limit, "FETCH", fetch_raw(session, uid)).await? else {
            tracing::debug!(uid, "message disparu avant sa lecture");
            continue;
        };
        let size = raw.len();
        match import(raw).await {
            Ok(()) => {
                within(limit, "marquage", mark(source, server, session, uid)).await?;
                tracing::info!(imap = %source, uid, size, "message importé");
            }
            Err(e) => {
                refused += 1;
                tracing::warn!(
                    imap = %source,
                    uid,
                    error = %e,
                    "message non importé, laissé dans la boîte : nouvel essai plus tard"
                );
            }
        }
    }
    Ok(refused)
}

/// The raw bytes of message `uid`, without setting `\Seen`; `None` when
/// it is gone.
async fn fetch_raw(session: &mut Session, uid: u32) -> anyhow::Result<Option<Vec<u8>>> {
    let fetches: Vec<_> = session
        .uid_fetch(uid.to_string(), "BODY.PEEK[]")
        .await?
        .try_collect()
        .await?;
    Ok(fetches
        .iter()
        .find(|f| f.uid == Some(uid))
        .and_then(|f| f.body())
        .map(<[u8]>::to_vec))
}

/// Marks message `uid` imported: the keyword, or the move.
async fn mark(
    source: &ImapSource,
    server: &Server,
    session: &mut Session,
    uid: u32,
) -> anyhow::Result<()> {
    let uid_set = uid.to_string();
    match &source.after_import {
        AfterImport::Flag => {
            let flags = format!("+FLAGS.SILENT ({IMPORTED_KEYWORD})");
            let _: Vec<_> = session
                .uid_store(&uid_set, &flags)
                .await?
                .try_collect()
                .await?;
        }
        AfterImport::MoveTo(done) if server.moves => session.uid_mv(&uid_set, done).await?,
        AfterImport::MoveTo(done) => {
            session.uid_copy(&uid_set, done).await?;
            let _: Vec<_> = session
                .uid_store(&uid_set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect()
                .await?;
            if server.uidplus {
                let _: Vec<_> = session.uid_expunge(&uid_set).await?.try_collect().await?;
            } else {
                let _: Vec<_> = session.expunge().await?.try_collect().await?;
            }
        }
    }
    Ok(())
}

/// `what` within `limit`, else an error naming it.
async fn within<T, E>(
    limit: Duration,
    what: &'static str,
    work: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(Into::into).context(what),
        Err(_) => Err(anyhow!("{what} : pas de réponse après {limit:?}")),
    }
}

/// A TCP connection, with TLS for `imaps://`, greeted by the server.
async fn connect(source: &ImapSource) -> anyhow::Result<async_imap::Client<Stream>> {
    let tcp = TcpStream::connect((source.host.as_str(), source.port))
        .await
        .with_context(|| format!("{}:{}", source.host, source.port))?;
    tcp.set_nodelay(true)?;
    let stream = if source.tls {
        let name = rustls::pki_types::ServerName::try_from(source.host.clone())
            .with_context(|| format!("nom de serveur « {} »", source.host))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .context("TLS")?;
        Stream::Tls(Box::new(tls))
    } else {
        Stream::Plain(tcp)
    };
    let mut client = async_imap::Client::new(stream);
    client
        .read_response()
        .await
        .context("accueil du serveur")?
        .context("connexion fermée avant l'accueil du serveur")?;
    Ok(client)
}

/// Checks the server's certificate against the system's roots
/// (`ca-certificates`), with the aws-lc-rs provider.
fn tls_config() -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(anyhow!(
            "aucun certificat racine sur ce système (paquet ca-certificates ?)"
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The connection to the server, plain or TLS.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_imaps_url_gives_server_user_and_mailbox() {
        let source = ImapSource::parse("imaps://ami%40ville.fr@mail.example.fr/INBOX").unwrap();
        assert!(source.tls());
        assert_eq!(source.host(), "mail.example.fr");
        assert_eq!(source.port(), 993);
        assert_eq!(source.user(), "ami@ville.fr");
        assert_eq!(source.mailbox(), "INBOX");
        assert_eq!(source.after_import(), &AfterImport::Flag);
    }

    #[test]
    fn a_plain_url_takes_its_port_and_a_sub_folder() {
        let source = ImapSource::parse("imap://ami@127.0.0.1:1143/INBOX/Candidatures").unwrap();
        assert!(!source.tls());
        assert_eq!(source.port(), 1143);
        assert_eq!(source.mailbox(), "INBOX/Candidatures");
        assert_eq!(
            source.to_string(),
            "imap://ami@127.0.0.1:1143/INBOX/Candidatures"
        );
    }

    #[test]
    fn an_empty_path_is_the_inbox() {
        let source = ImapSource::parse("imaps://ami@mail.example.fr").unwrap();
        assert_eq!(source.mailbox(), "INBOX");
    }

    #[test]
    fn bad_urls_are_refused_with_their_reason() {
        for (url, error) in [
            ("pop3://ami@h/INBOX", ImapUrlError::Scheme("pop3".into())),
            ("imaps://h/INBOX", ImapUrlError::NoUser),
            ("imaps://ami:secret@h/INBOX", ImapUrlError::PasswordInUrl),
            ("imaps://ami@h/INBOX?x=1", ImapUrlError::Extra),
            (
                "imaps://ami@h/Bo%C3%AEte",
                ImapUrlError::Folder("Boîte".into()),
            ),
        ] {
            assert_eq!(ImapSource::parse(url), Err(error), "{url}");
        }
        assert!(matches!(
            ImapSource::parse("not a url"),
            Err(ImapUrlError::Unreadable(_))
        ));
    }

    #[test]
    fn a_done_folder_moves_instead_of_marking() {
        let source = ImapSource::parse("imaps://ami@h/INBOX")
            .unwrap()
            .with_done_folder(Some("Importes"))
            .unwrap();
        assert_eq!(
            source.after_import(),
            &AfterImport::MoveTo("Importes".into())
        );
        assert_eq!(source.after_import().search(), "UNDELETED");
        assert!(ImapSource::parse("imaps://ami@h/INBOX")
            .unwrap()
            .with_done_folder(Some("Importés"))
            .is_err());
    }

    #[test]
    fn a_mailbox_keeps_the_keyword_when_it_takes_any_or_this_one() {
        assert!(keeps_keyword(&[Flag::Seen, Flag::MayCreate]));
        assert!(keeps_keyword(&[Flag::Custom(IMPORTED_KEYWORD.into())]));
        assert!(!keeps_keyword(&[Flag::Seen, Flag::Deleted]));
    }

    #[test]
    fn the_wait_doubles_up_to_its_cap_and_starts_again_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|_| backoff.next().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_secs(1));
    }
}
