//! Mail in: `mail::imap::follow` against a real Dovecot (one per test):
//! every message imported once with its exact bytes, then marked or moved;
//! news through IDLE; a refused import tried again; a server killed and
//! restarted; a prompt shutdown. And the real `ami serve --imap-url`, on
//! both databases: each message one arrival although Dovecot and `ami`
//! are killed and restarted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ami_service::mail::imap::{self, ImapSource, IMPORTED_KEYWORD};
use ami_tests::dovecot::{self, Dovecot};
use async_imap::types::Flag;
use futures_util::TryStreamExt as _;
use tokio::sync::{mpsc, oneshot};

/// How long a message may take to reach the importer.
const ARRIVAL: Duration = Duration::from_secs(10);

/// A letter as a town sends it, CRLF line ends, its own Message-ID.
fn letter(subject: &str) -> Vec<u8> {
    format!(
        "From: Mairie de Nevers <mairie@nevers.example>\r\n\
         To: AMI <ami@ville.example>\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{}@nevers.example>\r\n\
         Date: Wed, 02 Dec 2026 10:00:00 +0100\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Bonjour,\r\nveuillez trouver notre candidature « {subject} ».\r\n",
        uuid::Uuid::new_v4()
    )
    .into_bytes()
}

/// A source on the test's server, retrying fast.
fn source(server: &Dovecot, mailbox: &str) -> ImapSource {
    ImapSource::parse(&server.url(mailbox))
        .expect("imap url")
        .with_backoff(Duration::from_millis(100), Duration::from_secs(1))
}

/// `follow` running in a task; what it imports comes out of `imported`.
struct Follower {
    imported: mpsc::UnboundedReceiver<Vec<u8>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Follows `source`; the importer takes every message when `accept`
    /// is true, and refuses (Err) otherwise. Every try is reported.
    fn start_with(source: ImapSource, accept: Arc<AtomicBool>) -> (Follower, TryLog) {
        // The follower's log, shown with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("ami_service=debug")
            .with_test_writer()
            .try_init();
        let (tx, imported) = mpsc::unbounded_channel();
        let (try_tx, tries) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(imap::follow(
            source,
            dovecot::PASSWORD.to_string(),
            move |raw: Vec<u8>| {
                let tx = tx.clone();
                let try_tx = try_tx.clone();
                let accept = accept.load(Ordering::SeqCst);
                async move {
                    let _ = try_tx.send(raw.clone());
                    if !accept {
                        return Err("base de données injoignable".to_string());
                    }
                    tx.send(raw).map_err(|e| e.to_string())
                }
            },
            async {
                let _ = stopped.await;
            },
        ));
        (
            Follower {
                imported,
                stop: Some(stop),
                task,
            },
            TryLog(tries),
        )
    }

    fn start(source: ImapSource) -> Follower {
        Follower::start_with(source, Arc::new(AtomicBool::new(true))).0
    }

    /// The next imported message, if one comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Vec<u8>> {
        tokio::time::timeout(wait, self.imported.recv())
            .await
            .ok()
            .flatten()
    }

    /// `count` imported messages, each within [`ARRIVAL`].
    async fn take(&mut self, count: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for _ in 0..count {
            match self.next(ARRIVAL).await {
                Some(raw) => got.push(raw),
                None => panic!("{} message(s) imported, {count} expected", got.len()),
            }
        }
        got
    }

    /// Asks `follow` to stop; how long it took to end.
    async fn stop(mut self) -> Duration {
        let asked = Instant::now();
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("follow ended within 5 s of the shutdown")
            .expect("follow did not panic");
        asked.elapsed()
    }
}

/// Every message given to the importer, taken or not.
struct TryLog(mpsc::UnboundedReceiver<Vec<u8>>);

impl TryLog {
    async fn next(&mut self) -> Vec<u8> {
        tokio::time::timeout(ARRIVAL, self.0.recv())
            .await
            .expect("a try within 10 s")
            .expect("follow running")
    }
}

/// Each message of `mailbox`: its bytes and whether it carries the
/// imported keyword, and `\Seen`.
async fn messages(server: &Dovecot, mailbox: &str) -> Vec<(Vec<u8>, bool, bool)> {
    let mut imap = server.client().await.expect("imap client");
    let selected = imap.select(mailbox).await.expect("select");
    if selected.exists == 0 {
        return Vec::new();
    }
    let fetches: Vec<_> = imap
        .fetch("1:*", "(FLAGS BODY.PEEK[])")
        .await
        .expect("fetch")
        .try_collect()
        .await
        .expect("fetch answers");
    let found = fetches
        .iter()
        .map(|f| {
            let flags: Vec<Flag<'_>> = f.flags().collect();
            (
                f.body().unwrap_or_default().to_vec(),
                flags.contains(&Flag::Custom(IMPORTED_KEYWORD.into())),
                flags.contains(&Flag::Seen),
            )
        })
        .collect();
    let _ = imap.logout().await;
    found
}

/// Polls `mailbox` until `done` holds of its messages, for up to 10 s.
async fn until(
    server: &Dovecot,
    mailbox: &str,
    done: impl Fn(&[(Vec<u8>, bool, bool)]) -> bool,
) -> Vec<(Vec<u8>, bool, bool)> {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let found = messages(server, mailbox).await;
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{mailbox} never got there: {} message(s), marks {:?}",
            found.len(),
            found.iter().map(|m| m.1).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn append(server: &Dovecot, mailbox: &str, raw: &[u8]) {
    let mut imap = server.client().await.expect("imap client");
    imap.append(mailbox, None, None, raw).await.expect("append");
    let _ = imap.logout().await;
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_in_the_mailbox_are_each_imported_once_with_their_exact_bytes_then_marked() {
    // Arrange
    let server = Dovecot::start().expect("dovecot");
    let letters: Vec<Vec<u8>> = ["Candidature Nevers", "Candidature Épinal", "Pièces"]
        .iter()
        .map(|s| letter(s))
        .collect();
    for raw in &letters {
        append(&server, "INBOX", raw).await;
    }

    // Act
    let mut follower = Follower::start(source(&server, "INBOX"));
    let imported = follower.take(letters.len()).await;

    // Assert
    assert_eq!(sorted(imported), sorted(letters.clone()));
    let inbox = until(&server, "INBOX", |m| m.iter().all(|(_, marked, _)| *marked)).await;
    assert_eq!(inbox.len(), letters.len(), "still in the mailbox");
    assert!(
        inbox.iter().all(|(_, _, seen)| !seen),
        "read without \\Seen"
    );
    assert_eq!(
        follower.next(Duration::from_millis(700)).await,
        None,
        "a marked message imported again"
    );
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_arriving_while_following_comes_through_idle_within_seconds() {
    // Arrange: the follower has read the mailbox once (and polls only
    // every minute): what comes next can come only through IDLE.
    let server = Dovecot::start().expect("dovecot");
    append(&server, "INBOX", &letter("Premier")).await;
    let mut follower = Follower::start(source(&server, "INBOX"));
    follower.take(1).await;

    // Act
    let later = letter("Arrivé pendant le suivi");
    let sent = Instant::now();
    append(&server, "INBOX", &later).await;

    // Assert
    let got = follower
        .next(Duration::from_secs(5))
        .await
        .expect("imported within 5 s");
    assert_eq!(got, later);
    tracing::info!(elapsed = ?sent.elapsed(), "IDLE delivery");
    until(&server, "INBOX", |m| m.len() == 2 && m.iter().all(|x| x.1)).await;
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idle_the_mailbox_is_polled() {
    // Arrange
    let server = Dovecot::start().expect("dovecot");
    let polled = source(&server, "INBOX")
        .with_idle(false)
        .with_poll_interval(Duration::from_millis(200));
    let mut follower = Follower::start(polled);
    append(&server, "INBOX", &letter("Premier")).await;
    follower.take(1).await;

    // Act
    let later = letter("Relevé");
    append(&server, "INBOX", &later).await;

    // Assert
    assert_eq!(follower.take(1).await, vec![later]);
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_idle_is_polled() {
    // Arrange: Dovecot advertising neither IDLE nor MOVE.
    let server = Dovecot::start_advertising(Some("IMAP4rev1 UIDPLUS")).expect("dovecot");
    let polled = source(&server, "INBOX").with_poll_interval(Duration::from_millis(200));
    let mut follower = Follower::start(polled);
    append(&server, "INBOX", &letter("Premier")).await;
    follower.take(1).await;

    // Act
    let later = letter("Relevé");
    append(&server, "INBOX", &later).await;

    // Assert
    assert_eq!(follower.take(1).await, vec![later]);
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_move_messages_are_copied_then_expunged() {
    // Arrange: Dovecot advertising no MOVE.
    let server = Dovecot::start_advertising(Some("IMAP4rev1 IDLE UIDPLUS")).expect("dovecot");
    let letters = vec![letter("Copiée 1"), letter("Copiée 2")];
    for raw in &letters {
        append(&server, "INBOX", raw).await;
    }
    let moving = source(&server, "INBOX")
        .with_done_folder(Some("Importes"))
        .expect("folder");

    // Act
    let mut follower = Follower::start(moving);
    let imported = follower.take(2).await;

    // Assert
    assert_eq!(sorted(imported), sorted(letters.clone()));
    let done = until(&server, "Importes", |m| m.len() == 2).await;
    assert_eq!(
        sorted(done.into_iter().map(|m| m.0).collect()),
        sorted(letters)
    );
    until(&server, "INBOX", <[_]>::is_empty).await;
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_importer_refuses_stays_unmarked_and_is_tried_again() {
    // Arrange
    let server = Dovecot::start().expect("dovecot");
    let raw = letter("Refusée d'abord");
    append(&server, "INBOX", &raw).await;
    let accept = Arc::new(AtomicBool::new(false));
    let (mut follower, mut tries) = Follower::start_with(source(&server, "INBOX"), accept.clone());

    // Act: refused once, and still there, unmarked.
    assert_eq!(tries.next().await, raw);
    let inbox = messages(&server, "INBOX").await;
    assert_eq!(inbox.len(), 1);
    assert!(!inbox[0].1, "marked although refused");
    accept.store(true, Ordering::SeqCst);

    // Assert: tried again, taken, marked.
    assert_eq!(follower.take(1).await, vec![raw]);
    until(&server, "INBOX", |m| m.len() == 1 && m[0].1).await;
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_done_folder_imported_messages_are_moved_there() {
    // Arrange
    let server = Dovecot::start().expect("dovecot");
    let letters = vec![letter("Déplacée 1"), letter("Déplacée 2")];
    for raw in &letters {
        append(&server, "INBOX", raw).await;
    }
    let moving = source(&server, "INBOX")
        .with_done_folder(Some("Importes"))
        .expect("folder");

    // Act
    let mut follower = Follower::start(moving);
    let imported = follower.take(2).await;

    // Assert
    assert_eq!(sorted(imported), sorted(letters.clone()));
    let done = until(&server, "Importes", |m| m.len() == 2).await;
    assert_eq!(
        sorted(done.into_iter().map(|m| m.0).collect()),
        sorted(letters)
    );
    until(&server, "INBOX", <[_]>::is_empty).await;
    assert_eq!(follower.next(Duration::from_millis(700)).await, None);
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_comes_back_when_the_server_is_killed_and_restarted() {
    // Arrange
    let mut server = Dovecot::start().expect("dovecot");
    let before = letter("Avant la panne");
    append(&server, "INBOX", &before).await;
    let mut follower = Follower::start(source(&server, "INBOX"));
    assert_eq!(follower.take(1).await, vec![before]);
    until(&server, "INBOX", |m| m.len() == 1 && m[0].1).await;

    // Act: SIGKILL to every Dovecot process, then the same port again.
    server.kill();
    // Down long enough for several refused connections (100, 200, 400 ms).
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.restart().expect("dovecot restarted");
    let after = letter("Après la panne");
    append(&server, "INBOX", &after).await;

    // Assert: the new message, and not the old one again.
    let got = follower
        .next(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("nothing after the restart:\n{}", server.log_tail()));
    assert_eq!(got, after);
    until(&server, "INBOX", |m| m.len() == 2 && m.iter().all(|x| x.1)).await;
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_following_promptly_while_idle_or_waiting_to_reconnect() {
    // Arrange: one follower in IDLE, one waiting for a dead server.
    let server = Dovecot::start().expect("dovecot");
    append(&server, "INBOX", &letter("Un")).await;
    let mut idle = Follower::start(source(&server, "INBOX"));
    idle.take(1).await;
    let mut gone = Dovecot::start().expect("dovecot");
    let waiting = Follower::start(
        source(&gone, "INBOX").with_backoff(Duration::from_secs(30), Duration::from_secs(60)),
    );
    gone.kill();

    // Act
    let idle_took = idle.stop().await;
    let waiting_took = waiting.stop().await;

    // Assert
    assert!(idle_took < Duration::from_secs(1), "{idle_took:?}");
    assert!(waiting_took < Duration::from_secs(1), "{waiting_took:?}");
}

/// The Message-IDs (without `<>`) of every arrival `ami serve` answers
/// with, one entry per arrival.
async fn arrival_ids(
    client: &reqwest::Client,
    ami: &ami_tests::process::AmiProcess,
    token: &str,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/arrivals?limit=500", ami.api());
        if let Some(c) = &cursor {
            url += &format!("&cursor={c}");
        }
        let res = client.get(url).bearer_auth(token).send().await?;
        anyhow::ensure!(res.status() == 200, "arrivals: {}", res.status());
        let page: serde_json::Value = res.json().await?;
        for item in page["items"].as_array().into_iter().flatten() {
            ids.push(item["message_id"].as_str().unwrap_or("(none)").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(ids),
        }
    }
}

/// The Message-ID of one of [`letter`]'s messages, without `<>`.
fn message_id_of(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.message_id().map(str::to_string))
        .expect("a Message-ID")
}

/// Polls the arrivals until each of `expected` is there; then every one
/// must be there exactly once, and nothing else.
async fn arrivals_exactly(
    client: &reqwest::Client,
    ami: &ami_tests::process::AmiProcess,
    token: &str,
    expected: &[String],
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let ids = arrival_ids(client, ami, token).await?;
        if expected.iter().all(|e| ids.contains(e)) {
            let mut counts = std::collections::BTreeMap::<&str, usize>::new();
            for id in &ids {
                *counts.entry(id.as_str()).or_default() += 1;
            }
            let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
            anyhow::ensure!(doubled.is_empty(), "arrivals counted twice: {doubled:?}");
            anyhow::ensure!(
                ids.len() == expected.len(),
                "{} arrivals, {} messages delivered",
                ids.len(),
                expected.len()
            );
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            let missing: Vec<_> = expected.iter().filter(|e| !ids.contains(e)).collect();
            anyhow::bail!(
                "after {within:?}, {} arrivals; missing {missing:?}",
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `ami serve --imap-url` follows a Dovecot mailbox: messages appended
/// become arrivals within seconds; Dovecot is killed, messages are
/// delivered into its maildir while it is down, it comes back on the same
/// port; `ami` itself is killed (SIGKILL) while it imports and restarted.
/// Every message is an arrival exactly once (by Message-ID) and marked
/// imported in the mailbox.
async fn ami_serve_imports_each_message_once_through_restarts(
    backend: ami_tests::Backend,
) -> anyhow::Result<()> {
    use ami_tests::process::{AmiProcess, Program};
    let started = Instant::now();
    let mut server = Dovecot::start()?;
    let db = ami_tests::TestDb::new(backend).await;
    let mut program = Program::new(env!("CARGO_BIN_EXE_ami-under-test"));
    program.env.extend([
        ("AMI_IMAP_URL".to_string(), server.url("INBOX")),
        (
            "AMI_IMAP_PASSWORD".to_string(),
            dovecot::PASSWORD.to_string(),
        ),
    ]);
    let (_, token) = program.create_token(&db.url, "Camille Martin", "dar", "agent")?;
    let mut ami = AmiProcess::start(&program, &db.url).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut delivered: Vec<Vec<u8>> = Vec::new();
    let ids = |d: &[Vec<u8>]| d.iter().map(|r| message_id_of(r)).collect::<Vec<_>>();

    // While following: each appended message is an arrival within seconds.
    for i in 0..3 {
        let raw = letter(&format!("Candidature {i}"));
        append(&server, "INBOX", &raw).await;
        delivered.push(raw);
    }
    let first = arrivals_exactly(&client, &ami, &token, &ids(&delivered), ARRIVAL).await?;

    // Dovecot killed; three messages reach its maildir while it is down.
    server.kill();
    for i in 0..3 {
        let raw = letter(&format!("Pendant la panne {i}"));
        server.deliver(&raw)?;
        delivered.push(raw);
    }
    // Down long enough for the follower to fail and wait to reconnect.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart()?;
    for i in 0..2 {
        let raw = letter(&format!("Après la panne {i}"));
        append(&server, "INBOX", &raw).await;
        delivered.push(raw);
    }
    let back = arrivals_exactly(
        &client,
        &ami,
        &token,
        &ids(&delivered),
        Duration::from_secs(20),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}\n{}", ami.log_tail(), server.log_tail()))?;

    // `ami` killed while it imports a batch, one more while it is down.
    let batch: Vec<Vec<u8>> = (0..5).map(|i| letter(&format!("Lot {i}"))).collect();
    for raw in &batch {
        append(&server, "INBOX", raw).await;
    }
    let batch_ids = ids(&batch);
    let deadline = Instant::now() + ARRIVAL;
    // As soon as the first of them is an arrival: the others are being
    // imported, or flagged.
    let at_kill = loop {
        let now = arrival_ids(&client, &ami, &token).await?;
        let there = batch_ids.iter().filter(|b| now.contains(b)).count();
        if there > 0 {
            break there;
        }
        anyhow::ensure!(Instant::now() < deadline, "the batch never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    ami.kill();
    delivered.extend(batch);
    let raw = letter("Pendant l'arrêt d'ami");
    append(&server, "INBOX", &raw).await;
    delivered.push(raw);
    ami.restart().await?;
    let last = arrivals_exactly(
        &client,
        &ami,
        &token,
        &ids(&delivered),
        Duration::from_secs(20),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", ami.log_tail()))?;

    // Every message still in the INBOX, each marked imported.
    let inbox = until(&server, "INBOX", |m| {
        m.len() == delivered.len() && m.iter().all(|(_, marked, _)| *marked)
    })
    .await;
    assert_eq!(
        sorted(inbox.into_iter().map(|m| m.0).collect()),
        sorted(delivered.clone())
    );
    ami.kill();
    println!(
        "ami serve --imap-url {backend:?}: {} messages, each one arrival; first ones in {:.1} s, \
         after Dovecot's restart in {:.1} s, after ami's SIGKILL (with {at_kill} of a batch of {} \
         imported) in {:.1} s; {:.1} s in all",
        delivered.len(),
        first.as_secs_f64(),
        back.as_secs_f64(),
        batch_ids.len(),
        last.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn ami_serve_bounded(backend: ami_tests::Backend) {
    let bound = Duration::from_secs(55);
    match tokio::time::timeout(
        bound,
        ami_serve_imports_each_message_once_through_restarts(backend),
    )
    .await
    {
        Ok(result) => result.unwrap_or_else(|e| panic!("{backend:?}: {e:#}")),
        Err(_) => panic!("{backend:?}: not finished within {bound:?}"),
    }
}

// Named at the top level (not `sqlite::…`) so that `.ci/run` counts them
// with the other mail transport tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ami_serve_imports_each_message_once_through_dovecot_and_ami_restarts() {
    ami_serve_bounded(ami_tests::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ami_serve_imports_each_message_once_through_dovecot_and_ami_restarts() {
    ami_serve_bounded(ami_tests::Backend::Postgres).await
}
