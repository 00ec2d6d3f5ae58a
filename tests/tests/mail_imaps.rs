//! Mail in over TLS: `imaps://` against a real Dovecot with a certificate
//! for `localhost` from a CA of the test's own, trusted through
//! `SSL_CERT_FILE` (read by `rustls-native-certs`, as an operator with a
//! private CA would). Its own test binary: the variable is set for the
//! whole process.

use std::time::Duration;

use ami_service::mail::imap::{self, ImapSource};
use ami_tests::dovecot::{self, Dovecot};

#[test]
fn a_message_is_imported_over_imaps_from_a_server_the_system_trusts() {
    // Arrange: the CA, before any thread or connection.
    let server = Dovecot::start_tls().expect("dovecot with TLS");
    std::env::set_var("SSL_CERT_FILE", server.ca_file());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let url = format!(
            "imaps://{}@localhost:{}/INBOX",
            dovecot::USER,
            server.port()
        );
        let source = ImapSource::parse(&url)
            .expect("imaps url")
            .with_backoff(Duration::from_millis(100), Duration::from_secs(1));
        assert!(source.tls());
        let raw = b"From: mairie@nevers.example\r\nSubject: Chiffre\r\n\r\nPar TLS.\r\n".to_vec();
        let (tx, mut imported) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let follower = tokio::spawn(imap::follow(
            source,
            dovecot::PASSWORD.to_string(),
            move |raw: Vec<u8>| {
                let tx = tx.clone();
                async move { tx.send(raw).map_err(|e| e.to_string()) }
            },
            async {
                let _ = stopped.await;
            },
        ));

        // Act: the test's own client cannot speak TLS; the maildir can.
        let delivered = server.deliver(&raw).expect("delivered");

        // Assert
        let got = tokio::time::timeout(Duration::from_secs(10), imported.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing over TLS ({delivered}):\n{}", server.log_tail()));
        assert_eq!(got, Some(raw));
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("follow ended")
            .expect("no panic");
    });
}
