//! Mail in: `mail::imap::follow` against a real Dovecot (one per test):
//! every message imported once with its exact bytes, then marked or moved;
//! news through IDLE; a refused import tried again; a server killed and
//! restarted; a prompt shutdown.

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
