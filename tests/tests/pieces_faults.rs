//! Pièce files under faults, with the real `ami` program on both databases
//! and both storages: the server killed while files stream in leaves no
//! event without its file; `ami files gc` removes what no pièce references;
//! `ami audit verify --pieces` names a file deleted or altered behind the
//! service's back; ten concurrent 20 MiB uploads keep the server's memory
//! under 100 MiB.

use std::time::Duration;

use ami_tests::process::{AmiProcess, Program};
use ami_tests::{sample_pdf, Backend, Storage, TestDb, TestFiles};
use bytes::Bytes;
use serde_json::Value;

const BUDGET: &str = "budget_previsionnel";

/// The program with its file storage, and a temporary folder of its own
/// (uploads bound for S3 are spooled there; `files gc` cleans it).
fn program(files: &TestFiles, tmp: &std::path::Path) -> Program {
    let mut p = Program::new(env!("CARGO_BIN_EXE_ami-under-test"));
    p.env.push(("AMI_FILES_URL".into(), files.url.clone()));
    p.env.push(("TMPDIR".into(), tmp.display().to_string()));
    p.env.extend(files.env());
    p
}

/// The service, a DAR agent's token, and a client.
struct Setup {
    db: TestDb,
    files: TestFiles,
    program: Program,
    server: AmiProcess,
    token: String,
    client: reqwest::Client,
    tmp: tempfile::TempDir,
}

async fn setup(backend: Backend, storage: Storage) -> Setup {
    let db = TestDb::new(backend).await;
    let files = TestFiles::new(storage);
    let tmp = tempfile::tempdir().expect("tmp");
    let program = program(&files, tmp.path());
    let server = AmiProcess::start(&program, &db.url).await.expect("start");
    let (_, token) = program
        .create_token(&db.url, "Camille Martin", "dar", "agent")
        .expect("token");
    Setup {
        db,
        files,
        program,
        server,
        token,
        client: reqwest::Client::new(),
        tmp,
    }
}

impl Setup {
    async fn deposit(&self, commune: &str) -> Value {
        let body = ami_tests::new_dossier(commune, &["acv"]);
        let res = self
            .client
            .post(format!("{}/dossiers", self.server.api()))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("deposit");
        assert_eq!(res.status(), 201);
        res.json().await.expect("json")
    }

    async fn upload(&self, id: &str, body: reqwest::Body) -> reqwest::Result<reqwest::Response> {
        upload_budget(&self.client, &self.server.api(), &self.token, id, body).await
    }

    /// `ami ARGS --database-url …`: exit success, and stdout then stderr.
    fn ami(&self, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new(&self.program.path)
            .envs(self.program.env.iter().map(|(k, v)| (k, v)))
            .env("AMI_LOG", "warn,sqlx=error")
            .args(args)
            .args(["--database-url", &self.db.url])
            .output()
            .expect("run ami");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// `PUT` of a budget's file, the body streamed as it comes.
async fn upload_budget(
    client: &reqwest::Client,
    api: &str,
    token: &str,
    id: &str,
    body: reqwest::Body,
) -> reqwest::Result<reqwest::Response> {
    client
        .put(format!("{api}/dossiers/{id}/pieces/{BUDGET}"))
        .bearer_auth(token)
        .header("content-disposition", "attachment; filename=\"budget.pdf\"")
        .body(body)
        .send()
        .await
}

/// A PDF of `len` bytes, sent in chunks of 64 KiB with a pause between
/// them, so that the server is killed mid-stream.
fn slow_pdf(len: usize, pause: Duration) -> reqwest::Body {
    let mut pdf = sample_pdf();
    pdf.resize(len, b'\n');
    let chunks: Vec<Bytes> = pdf.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
    let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut rest| async move {
        let next = rest.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(next), rest))
    });
    reqwest::Body::wrap_stream(stream)
}

async fn a_server_killed_during_uploads_leaves_no_event_without_its_file(
    backend: Backend,
    storage: Storage,
) {
    // Arrange: one upload that completes, then four cut by SIGKILL.
    let mut s = setup(backend, storage).await;
    let done = s.deposit("Nevers").await;
    let done_id = done["id"].as_str().expect("id").to_string();
    let mut first = sample_pdf();
    first.resize(300_000, b'\n');
    let res = s.upload(&done_id, first.into()).await.expect("upload");
    assert_eq!(res.status(), 200);
    let mut cut = Vec::new();
    for commune in ["Vierzon", "Bourges", "Moulins", "Auxerre"] {
        cut.push(
            s.deposit(commune).await["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }

    // Act
    let uploads: Vec<_> = cut
        .iter()
        .map(|id| {
            let body = slow_pdf(3 * 1024 * 1024, Duration::from_millis(20));
            let (id, client, api, token) = (
                id.clone(),
                s.client.clone(),
                s.server.api(),
                s.token.clone(),
            );
            tokio::spawn(async move { upload_budget(&client, &api, &token, &id, body).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.server.kill();
    for upload in uploads {
        let answer = upload.await.expect("join");
        assert!(
            answer.as_ref().map_or(true, |r| !r.status().is_success()),
            "an upload cut by the kill was acknowledged: {answer:?}"
        );
    }
    s.server.restart().await.expect("restart");

    // Assert: the dossiers cut mid-upload have no new event, the one
    // acknowledged has its file, and every file the journal names is there.
    for id in &cut {
        let res = s
            .client
            .get(format!("{}/dossiers/{id}", s.server.api()))
            .bearer_auth(&s.token)
            .send()
            .await
            .expect("get");
        let d: Value = res.json().await.expect("json");
        assert_eq!(d["version"], 1, "{d}");
    }
    let (clean, report) = s.ami(&["audit", "verify", "--pieces"]);
    assert!(clean, "{report}");
    assert!(report.contains("fichier(s) de pièces relu(s)"), "{report}");
    // What the cut uploads left behind goes with the garbage collection.
    let (ok, gc) = s.ami(&["files", "gc", "--older-than", "0s"]);
    assert!(ok, "{gc}");
    // The partial files of the cut uploads: in the local storage, or in
    // the spool of uploads bound for S3.
    let partial_dir = match storage {
        Storage::Local => {
            std::path::PathBuf::from(s.files.url.trim_start_matches("file://")).join("incoming")
        }
        Storage::S3 => s.tmp.path().join("ami-spool"),
    };
    assert!(gc.contains("supprimé "), "{gc}");
    let left = std::fs::read_dir(&partial_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "{gc}");
    let (still_clean, after_gc) = s.ami(&["audit", "verify", "--pieces"]);
    assert!(still_clean, "{after_gc}");
    let res = s
        .client
        .get(format!(
            "{}/dossiers/{done_id}/pieces/{BUDGET}",
            s.server.api()
        ))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.expect("bytes").len(), 300_000);
    s.server.kill();
}

async fn files_gc_removes_only_unreferenced_files_older_than_asked(
    backend: Backend,
    storage: Storage,
) {
    // Arrange: a referenced file, and one stored without an event (as a
    // crash between the two would leave it).
    let mut s = setup(backend, storage).await;
    let dossier = s.deposit("Nevers").await;
    let id = dossier["id"].as_str().expect("id").to_string();
    let res = s.upload(&id, sample_pdf().into()).await.expect("upload");
    assert_eq!(res.status(), 200);
    let files = s.files.open();
    let orphan = b"%PDF-1.4\norphan\n%%EOF\n".to_vec();
    let received = files
        .receive(
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(orphan))]),
            u64::MAX,
        )
        .await
        .expect("receive");
    files.keep(&received).await.expect("keep");

    // Act
    let (young_ok, young) = s.ami(&["files", "gc", "--older-than", "1h"]);
    let (dry_ok, dry) = s.ami(&["files", "gc", "--older-than", "0s", "--dry-run"]);
    let (ok, removed) = s.ami(&["files", "gc", "--older-than", "0s"]);
    let (again_ok, again) = s.ami(&["files", "gc", "--older-than", "0s"]);

    // Assert
    assert!(
        young_ok && dry_ok && ok && again_ok,
        "{young}\n{dry}\n{removed}\n{again}"
    );
    assert!(young.contains("0 fichier(s) non référencé(s)"), "{young}");
    assert!(
        dry.contains(&received.sha256) && dry.contains("à supprimer"),
        "{dry}"
    );
    assert!(
        removed.contains(&received.sha256) && removed.contains("supprimé"),
        "{removed}"
    );
    assert!(
        removed.contains("1 fichier(s) non référencé(s)"),
        "{removed}"
    );
    assert!(again.contains("0 fichier(s) non référencé(s)"), "{again}");
    let res = s
        .client
        .get(format!("{}/dossiers/{id}/pieces/{BUDGET}", s.server.api()))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.expect("bytes"), sample_pdf());
    s.server.kill();
}

async fn audit_verify_pieces_names_a_deleted_file_and_an_altered_one(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let mut s = setup(backend, storage).await;
    let mut shas = Vec::new();
    for (commune, len) in [("Nevers", 2000), ("Vierzon", 3000)] {
        let d = s.deposit(commune).await;
        let id = d["id"].as_str().expect("id").to_string();
        let mut pdf = sample_pdf();
        pdf.resize(len, b'\n');
        let res = s.upload(&id, pdf.into()).await.expect("upload");
        let body: Value = res.json().await.expect("json");
        shas.push((
            body["reference"].as_str().expect("reference").to_string(),
            body["pieces"][1]["sha256"]
                .as_str()
                .expect("sha")
                .to_string(),
        ));
    }
    let (clean_before, before) = s.ami(&["audit", "verify", "--pieces"]);
    let files = s.files.open();

    // Act
    files.delete_content(&shas[0].1).await.expect("delete");
    files
        .overwrite_content(&shas[1].1, Bytes::from_static(b"%PDF-1.4 altered"))
        .await
        .expect("alter");
    let (clean_after, after) = s.ami(&["audit", "verify", "--pieces"]);
    let (journal_only, without_pieces) = s.ami(&["audit", "verify"]);

    // Assert
    assert!(clean_before, "{before}");
    assert!(!clean_after, "the audit must fail: {after}");
    let (deleted_ref, deleted_sha) = &shas[0];
    let (altered_ref, altered_sha) = &shas[1];
    assert!(
        after.contains(&format!(
            "dossier {deleted_ref}, pièce {BUDGET} version 1 : fichier absent"
        )) && after.contains(deleted_sha.as_str()),
        "{after}"
    );
    assert!(
        after.contains(&format!(
            "dossier {altered_ref}, pièce {BUDGET} version 1 : le contenu stocké a changé"
        )) && after.contains(altered_sha.as_str()),
        "{after}"
    );
    // Without --pieces the journal alone is checked, and it is intact.
    assert!(journal_only, "{without_pieces}");
    s.server.kill();
}

/// Ten concurrent 20 MiB uploads: the server's peak resident memory
/// (VmHWM) stays under 100 MiB, on both storages.
async fn ten_concurrent_20_mib_uploads_keep_the_server_under_100_mib(storage: Storage) {
    // Arrange
    let mut s = setup(Backend::Sqlite, storage).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let d = s.deposit(&format!("Commune {i}")).await;
        ids.push(d["id"].as_str().expect("id").to_string());
    }
    let pid = s.server.pid().expect("pid");

    // Act
    let uploads: Vec<_> = ids
        .iter()
        .map(|id| {
            let body = slow_pdf(20 * 1024 * 1024, Duration::ZERO);
            let (id, client, api, token) = (
                id.clone(),
                s.client.clone(),
                s.server.api(),
                s.token.clone(),
            );
            tokio::spawn(async move {
                upload_budget(&client, &api, &token, &id, body)
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for upload in uploads {
        statuses.push(upload.await.expect("join").expect("upload"));
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");

    // Assert
    assert_eq!(statuses, [200; 10]);
    println!(
        "{storage:?}: peak resident memory after ten concurrent 20 MiB uploads: {} MiB",
        peak_kib / 1024
    );
    assert!(
        peak_kib < 100 * 1024,
        "peak resident memory {} MiB",
        peak_kib / 1024
    );
    s.server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_20_mib_uploads_stay_under_100_mib_on_a_local_folder() {
    ten_concurrent_20_mib_uploads_keep_the_server_under_100_mib(Storage::Local).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_20_mib_uploads_stay_under_100_mib_on_s3() {
    ten_concurrent_20_mib_uploads_keep_the_server_under_100_mib(Storage::S3).await
}

ami_tests::on_every_store!(
    a_server_killed_during_uploads_leaves_no_event_without_its_file,
    files_gc_removes_only_unreferenced_files_older_than_asked,
    audit_verify_pieces_names_a_deleted_file_and_an_altered_one,
);
