//! Changing the workflow definition of a database in use, through the real
//! `ami` program: the service refuses to start on a definition the database
//! was not migrated to; `ami workflow migrate --dry-run` says what the
//! change means for every open dossier and writes nothing; `ami workflow
//! migrate` renames a state as `[migration] state_map` says, records the
//! change in each open dossier's journal (and only theirs) and makes the new
//! definition active, after which dossiers go on under its rules (an avis
//! added is required before the lauréat); a change that would strand a
//! dossier is refused, dry run or not, with nothing written. `ami token
//! create` checks agency and role against the definition the service runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ami_core::{Definition, DEFAULT_DEFINITION_TOML};
use ami_tests::process::{free_port, AmiProcess, Crew, Program};
use ami_tests::*;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

/// The version of the embedded definition.
const AMI2: &str = "ami2-2020.2";
/// The label of the committee's avis, added by [`Workflows::committee`].
const COMMITTEE: &str = "Rendre l'avis du comité Action Cœur de Ville";
/// How long a service refusing its definition may take to exit.
const REFUSAL_WITHIN: Duration = Duration::from_secs(10);

/// The real `ami` program, built by cargo for this crate's tests.
fn ami() -> Program {
    Program::new(env!("CARGO_BIN_EXE_ami-under-test"))
}

/// `ami` whose `serve` runs the definition in `workflow` (`AMI_WORKFLOW`).
fn ami_on(workflow: &Path) -> Program {
    let mut program = ami();
    program
        .env
        .push(("AMI_WORKFLOW".into(), workflow.display().to_string()));
    program
}

/// A finished run of `ami`.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The line of stdout that names `text` (a dossier's reference).
    fn line_naming(&self, text: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no line names {text}: {self:#?}"))
    }
}

/// Runs `ami ARGS --database-url URL` to completion.
fn cli(args: &[&str], url: &str) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ami-under-test"))
        .args(args)
        .args(["--database-url", url])
        .env("AMI_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run ami");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Starts `ami serve --workflow WORKFLOW` and waits for it to exit, as a
/// service refusing its definition does; fails if it still runs after
/// [`REFUSAL_WITHIN`].
fn serve_until_refused(workflow: &Path, url: &str) -> Run {
    let files = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("port").to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ami-under-test"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--database-url", url])
        .args(["--files-url", &process::files_url_of(files.path())])
        .arg("--workflow")
        .arg(workflow)
        .env("AMI_LOG", "warn,sqlx=error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ami serve");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > REFUSAL_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ami serve --workflow {} still runs after {REFUSAL_WITHIN:?}",
                workflow.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The embedded definition with each `(from, to)` replaced; every `from`
/// must be there (a fixture that no longer edits anything fails).
fn edited(edits: &[(&str, &str)]) -> String {
    let mut text = DEFAULT_DEFINITION_TOML.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "not in ami2.toml: {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// The definition files of the stories, in a folder of their own.
struct Workflows {
    dir: tempfile::TempDir,
}

impl Workflows {
    fn new() -> Workflows {
        Workflows {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Writes `text` as `NAME.toml`, after checking it loads.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        if let Err(e) = Definition::from_toml(text) {
            panic!("{name}.toml does not load: {e}");
        }
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write definition");
        path
    }

    /// The embedded definition, as a file.
    fn ami2(&self) -> PathBuf {
        self.write("ami2", DEFAULT_DEFINITION_TOML)
    }

    /// ami2 with the state `instruit` renamed `instruit_dar` (and
    /// relabelled), its dossiers sent there by `[migration] state_map`.
    fn renamed(&self) -> PathBuf {
        let mut text = edited(&[
            (
                &format!("version = \"{AMI2}\""),
                "version = \"ami2-2021.1\"",
            ),
            ("\"instruit\"", "\"instruit_dar\""),
            (
                "label = \"Instruit par la DAR\"",
                "label = \"Instruit et transmis par la DAR\"",
            ),
        ]);
        text += "\n[migration]\nstate_map = { instruit = \"instruit_dar\" }\n";
        self.write("renamed", &text)
    }

    /// ami2 where the ACV programme's avis becomes that of a committee,
    /// given once the ACV agent's avis is in (`avis_comite_acv`).
    fn committee(&self) -> PathBuf {
        let mut text = edited(&[
            (
                &format!("version = \"{AMI2}\""),
                "version = \"ami2-2021.2\"",
            ),
            (
                "avis_action = \"avis_acv\"",
                "avis_action = \"avis_comite_acv\"",
            ),
        ]);
        text += &format!(
            "\n[[actions]]\nid = \"avis_comite_acv\"\nlabel = \"{COMMITTEE}\"\n\
             from = [\"avis_acv\"]\nto = \"avis_acv\"\nagency = \"acv\"\nrole = \"agent\"\n\
             verdict = true\nnext_step = true\nprogramme = \"acv\"\n"
        );
        self.write("committee", &text)
    }

    /// ami2 without the state `avis_ti`: the TI avis leads to `avis_acv`,
    /// relabelled; no `[migration]` says where `avis_ti`'s dossiers go.
    fn without_avis_ti(&self) -> PathBuf {
        let text = edited(&[
            (
                &format!("version = \"{AMI2}\""),
                "version = \"ami2-2021.3\"",
            ),
            (
                "[[states]]\nid = \"avis_ti\"\nlabel = \"Avis Territoires d'industrie rendu\"\n\n",
                "",
            ),
            (
                "label = \"Avis Action Cœur de Ville rendu\"",
                "label = \"Avis rendu\"",
            ),
            ("to = \"avis_ti\"", "to = \"avis_acv\""),
            (
                "from = [\"avis_acv\", \"avis_ti\"]",
                "from = [\"avis_acv\"]",
            ),
            (
                "from = [\"instruit\", \"avis_acv\", \"avis_ti\"]",
                "from = [\"instruit\", \"avis_acv\"]",
            ),
        ]);
        self.write("without_avis_ti", &text)
    }

    /// ami2 with a third role, `directeur`, above `responsable`.
    fn with_directeur(&self) -> PathBuf {
        let text = edited(&[
            (
                &format!("version = \"{AMI2}\""),
                "version = \"ami2-2021.4\"",
            ),
            (
                "[[roles]]\nid = \"responsable\"\nlabel = \"Responsable\"\n",
                "[[roles]]\nid = \"responsable\"\nlabel = \"Responsable\"\n\n\
                 [[roles]]\nid = \"directeur\"\nlabel = \"Directeur\"\n",
            ),
        ]);
        self.write("with_directeur", &text)
    }
}

/// What the database holds, read straight from its tables.
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    events: i64,
    /// Rows of `definition_version`.
    definitions: i64,
    /// The version of the last one, the active definition.
    active: Option<String>,
}

async fn facts(url: &str) -> Facts {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .expect("connect to the test database");
    let count = |sql: &'static str| sqlx::query(sql);
    let events: i64 = count("select count(*) as n from dossier_event")
        .fetch_one(&mut conn)
        .await
        .expect("count events")
        .try_get("n")
        .expect("n");
    let definitions: i64 = count("select count(*) as n from definition_version")
        .fetch_one(&mut conn)
        .await
        .expect("count definitions")
        .try_get("n")
        .expect("n");
    let active = sqlx::query("select version from definition_version order by seq desc limit 1")
        .fetch_optional(&mut conn)
        .await
        .expect("active definition")
        .map(|r| r.try_get::<String, _>("version").expect("version"));
    conn.close().await.ok();
    Facts {
        events,
        definitions,
        active,
    }
}

/// A client of a running `ami serve`.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn of(server: &AmiProcess) -> Api {
        Api {
            base: server.api(),
            client: reqwest::Client::new(),
        }
    }

    async fn answer(res: reqwest::Response) -> (StatusCode, Value) {
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        Api::answer(res).await
    }

    /// The dossier as the service shows it now.
    async fn dossier(&self, token: &str, id: &str) -> Value {
        let (status, body) = self.get(token, &format!("/dossiers/{id}")).await;
        assert_eq!(status, StatusCode::OK, "GET dossier {id}: {body}");
        body
    }

    /// The events of a dossier's history.
    async fn history(&self, token: &str, id: &str) -> Vec<Value> {
        let (status, body) = self.get(token, &format!("/dossiers/{id}/history")).await;
        assert_eq!(status, StatusCode::OK, "GET history {id}: {body}");
        body["events"].as_array().expect("events").clone()
    }

    /// Deposits a dossier of `commune` with the files of its pièces; its id.
    async fn deposit(&self, token: &str, commune: &str, programmes: &[&str]) -> String {
        let res = self
            .client
            .post(format!("{}/dossiers", self.base))
            .bearer_auth(token)
            .multipart(deposit_multipart(&new_dossier(commune, programmes)))
            .send()
            .await
            .expect("request");
        let (status, body) = Api::answer(res).await;
        assert_eq!(status, StatusCode::CREATED, "deposit {commune}: {body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// Takes `action` at the dossier's current version.
    async fn act(&self, token: &str, id: &str, action: &str, extra: Value) -> (StatusCode, Value) {
        let version = self.dossier(token, id).await["version"].clone();
        let mut body = json!({"action": action, "expected_version": version});
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let res = self
            .client
            .post(format!("{}/dossiers/{id}/transitions", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        Api::answer(res).await
    }

    async fn must_act(&self, token: &str, id: &str, action: &str, extra: Value) -> Value {
        let (status, body) = self.act(token, id, action, extra).await;
        assert_eq!(status, StatusCode::OK, "{action} on {id}: {body}");
        body
    }
}

fn favorable() -> Value {
    json!({"verdict": "favorable"})
}

/// A fresh database whose active definition is `workflow`, recorded by a
/// first start of `ami serve`, still running; the crew's tokens.
async fn serving(backend: Backend, workflow: &Path) -> (TestDb, AmiProcess, Crew) {
    let db = TestDb::new(backend).await;
    let server = AmiProcess::start(&ami_on(workflow), &db.url)
        .await
        .expect("ami serve on a fresh database");
    let crew = Crew::create(&ami(), &db.url, "migration").expect("tokens");
    (db, server, crew)
}

async fn the_service_refuses_to_start_on_a_definition_not_migrated_to(backend: Backend) {
    // Arrange: a database that ran ami2 (recorded at its first start).
    let workflows = Workflows::new();
    let ami2 = workflows.ami2();
    let renamed = workflows.renamed();
    let (db, mut server, crew) = serving(backend, &ami2).await;
    let api = Api::of(&server);
    api.deposit(&crew.dar, "Nevers", &["acv"]).await;
    server.kill();
    let before = facts(&db.url).await;
    assert_eq!(
        (before.definitions, before.active.as_deref()),
        (1, Some(AMI2))
    );

    // Act: start it on a changed definition.
    let started = Instant::now();
    let refused = serve_until_refused(&renamed, &db.url);
    let took = started.elapsed();

    // Assert: it exits with an error within seconds, saying in French which
    // definitions differ and what to run; nothing is recorded.
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert!(took < REFUSAL_WITHIN, "refused after {took:?}");
    for words in [
        "n'est pas celle que la base applique",
        "ami workflow migrate",
        "--dry-run",
        "ami2-2021.1",
        AMI2,
    ] {
        assert!(refused.stderr.contains(words), "{words:?} in {refused:#?}");
    }
    assert_eq!(facts(&db.url).await, before);

    // The definition it runs starts fine: from its file, embedded (no
    // --workflow), or with a comment added to its TOML.
    server.restart().await.expect("restart on ami2.toml");
    server.kill();
    let mut embedded = AmiProcess::start(&ami(), &db.url)
        .await
        .expect("start on the embedded ami2");
    embedded.kill();
    let commented = workflows.write(
        "commented",
        &format!("# Relu le 3 mars.\n{DEFAULT_DEFINITION_TOML}"),
    );
    let mut server = AmiProcess::start(&ami_on(&commented), &db.url)
        .await
        .expect("a comment changes no rule");
    server.kill();
    assert_eq!(facts(&db.url).await, before);
}

async fn a_state_renamed_by_state_map_moves_its_dossiers_and_they_go_on(backend: Backend) {
    // Arrange: under ami2, dossiers in `recu`, `instruit` and `laureat`.
    let workflows = Workflows::new();
    let renamed = workflows.renamed();
    let (db, mut server, crew) = serving(backend, &workflows.ami2()).await;
    let api = Api::of(&server);
    let recu = api.deposit(&crew.dar, "Nevers", &["acv"]).await;
    let instruit = api.deposit(&crew.dar, "Vierzon", &["acv"]).await;
    api.must_act(&crew.dar, &instruit, "instruire", favorable())
        .await;
    let laureat = api.deposit(&crew.dar, "Bourges", &["acv"]).await;
    api.must_act(&crew.dar, &laureat, "instruire", favorable())
        .await;
    api.must_act(&crew.acv, &laureat, "avis_acv", favorable())
        .await;
    api.must_act(&crew.boss, &laureat, "declarer_laureat", json!({}))
        .await;
    let mut before = Vec::new();
    for id in [&recu, &instruit, &laureat] {
        before.push(api.dossier(&crew.dar, id).await);
    }
    let reference = |n: usize| before[n]["reference"].as_str().expect("ref").to_string();
    let version = |n: usize| before[n]["version"].as_u64().expect("version");
    assert_eq!(before[1]["state"], "instruit");
    assert_eq!(before[2]["state"], "laureat");
    server.kill();
    let written = facts(&db.url).await;

    // Act 1: the dry run.
    let renamed_arg = renamed.to_str().expect("path");
    let dry = cli(&["workflow", "migrate", renamed_arg, "--dry-run"], &db.url);

    // Assert: each open dossier with its fate, the lauréat left out, and
    // nothing written.
    assert_eq!(dry.code, Some(0), "{dry:#?}");
    assert!(dry.stdout.contains("2 dossier(s) concerné(s)"), "{dry:#?}");
    assert!(
        dry.line_naming(&reference(0))
            .contains("reste à l'état « Reçu »"),
        "{dry:#?}"
    );
    assert!(
        dry.line_naming(&reference(1)).contains(
            "passe de l'état « Instruit par la DAR », qui n'existe plus, à « Instruit et transmis par la DAR »"
        ),
        "{dry:#?}"
    );
    assert!(!dry.stdout.contains(&reference(2)), "{dry:#?}");
    assert!(dry.stdout.contains("rien n'a été écrit"), "{dry:#?}");
    assert_eq!(facts(&db.url).await, written);

    // Act 2: the migration.
    let done = cli(
        &[
            "workflow",
            "migrate",
            renamed_arg,
            "--par",
            "dominique.bernard@test.gouv.fr",
        ],
        &db.url,
    );

    // Assert: one event per open dossier, the new definition active; the
    // service now starts on it, and no longer on ami2.
    assert_eq!(done.code, Some(0), "{done:#?}");
    assert!(
        done.stdout
            .contains("changement inscrit au journal de 2 dossier(s)"),
        "{done:#?}"
    );
    let after = facts(&db.url).await;
    assert_eq!(after.events, written.events + 2);
    assert_eq!(after.definitions, written.definitions + 1);
    assert_eq!(after.active.as_deref(), Some("ami2-2021.1"));
    let old_again = serve_until_refused(&workflows.ami2(), &db.url);
    assert_eq!(old_again.code, Some(1), "{old_again:#?}");
    let server = AmiProcess::start(&ami_on(&renamed), &db.url)
        .await
        .expect("ami serve on the migrated definition");
    let api = Api::of(&server);

    // The dossier of `instruit` is in `instruit_dar`, one version on, its
    // history ending with the change; the one in `recu` stays there.
    let moved = api.dossier(&crew.dar, &instruit).await;
    assert_eq!(moved["state"], "instruit_dar", "{moved}");
    assert_eq!(moved["version"].as_u64(), Some(version(1) + 1));
    let history = api.history(&crew.dar, &instruit).await;
    let last = history.last().expect("events");
    assert_eq!(history.len() as u64, version(1) + 1);
    assert_eq!(last["action"], "migration", "{last}");
    assert_eq!(
        (last["from"].as_str(), last["to"].as_str()),
        (Some("instruit"), Some("instruit_dar"))
    );
    assert_eq!(last["definition_version"], "ami2-2021.1");
    assert_eq!(last["actor"]["id"], "dominique.bernard@test.gouv.fr");
    assert!(
        last["motivation"]
            .as_str()
            .is_some_and(|m| m.contains(AMI2) && m.contains("ami2-2021.1")),
        "{last}"
    );
    let stayed = api.dossier(&crew.dar, &recu).await;
    assert_eq!(stayed["state"], "recu");
    assert_eq!(stayed["version"].as_u64(), Some(version(0) + 1));
    let recu_history = api.history(&crew.dar, &recu).await;
    assert_eq!(recu_history.last().expect("events")["action"], "migration");

    // It waits on ACV, in ACV's worklist.
    let (status, worklist) = api.get(&crew.acv, "/dossiers?awaiting=acv").await;
    assert_eq!(status, StatusCode::OK, "{worklist}");
    let listed: Vec<&str> = worklist["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(listed, [instruit.as_str()], "{worklist}");

    // The lauréat got no event.
    let closed = api.dossier(&crew.dar, &laureat).await;
    assert_eq!(closed["version"].as_u64(), Some(version(2)));
    assert_eq!(
        api.history(&crew.dar, &laureat)
            .await
            .last()
            .expect("events")["action"],
        "declarer_laureat"
    );

    // It goes on under the new rules: ACV gives its avis from
    // `instruit_dar`, the DAR responsable declares it lauréat.
    let avis = api
        .must_act(&crew.acv, &instruit, "avis_acv", favorable())
        .await;
    assert_eq!(avis["state"], "avis_acv", "{avis}");
    let done = api
        .must_act(&crew.boss, &instruit, "declarer_laureat", json!({}))
        .await;
    assert_eq!(done["state"], "laureat", "{done}");
    let mut server = server;
    server.kill();

    // The journal verifies against the new definition, named or not (the
    // audit takes the database's active one by default).
    let audit = cli(&["audit", "verify", "--workflow", renamed_arg], &db.url);
    assert_eq!(audit.code, Some(0), "{audit:#?}");
    assert!(audit.stdout.contains("journal intègre"), "{audit:#?}");
    let audit = cli(&["audit", "verify"], &db.url);
    assert_eq!(audit.code, Some(0), "{audit:#?}");
}

async fn an_avis_added_is_required_of_the_dossiers_waiting_for_the_laureat(backend: Backend) {
    // Arrange: an ACV dossier whose ACV avis is in, waiting for the
    // lauréat; a definition that now asks for the committee's avis.
    let workflows = Workflows::new();
    let committee = workflows.committee();
    let (db, mut server, crew) = serving(backend, &workflows.ami2()).await;
    let api = Api::of(&server);
    let id = api.deposit(&crew.dar, "Nevers", &["acv"]).await;
    api.must_act(&crew.dar, &id, "instruire", favorable()).await;
    let waiting = api.must_act(&crew.acv, &id, "avis_acv", favorable()).await;
    assert_eq!(waiting["state"], "avis_acv");
    let reference = waiting["reference"].as_str().expect("ref").to_string();
    server.kill();
    let committee_arg = committee.to_str().expect("path");

    // Act: the dry run, then the migration.
    let dry = cli(
        &["workflow", "migrate", committee_arg, "--dry-run"],
        &db.url,
    );
    let done = cli(&["workflow", "migrate", committee_arg], &db.url);

    // Assert: the dry run says the dossier now needs the committee's avis;
    // after the migration the lauréat waits for it, then is declared.
    assert_eq!(dry.code, Some(0), "{dry:#?}");
    let line = dry.line_naming(&reference);
    assert!(line.contains("reste à l'état"), "{dry:#?}");
    assert!(
        line.contains(&format!("doit désormais recevoir l'avis « {COMMITTEE} »")),
        "{dry:#?}"
    );
    assert_eq!(done.code, Some(0), "{done:#?}");
    let mut server = AmiProcess::start(&ami_on(&committee), &db.url)
        .await
        .expect("ami serve on the migrated definition");
    let api = Api::of(&server);
    let (status, problem) = api
        .act(&crew.boss, &id, "declarer_laureat", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "avis_missing", "{problem}");
    let given = api
        .must_act(&crew.acv, &id, "avis_comite_acv", favorable())
        .await;
    assert_eq!(given["state"], "avis_acv", "{given}");
    let laureat = api
        .must_act(&crew.boss, &id, "declarer_laureat", json!({}))
        .await;
    assert_eq!(laureat["state"], "laureat", "{laureat}");
    server.kill();
    let audit = cli(&["audit", "verify", "--workflow", committee_arg], &db.url);
    assert_eq!(audit.code, Some(0), "{audit:#?}");
}

async fn a_change_that_strands_a_dossier_is_refused_with_nothing_written(backend: Backend) {
    // Arrange: a TI dossier in `avis_ti`, another in `recu`; a definition
    // without `avis_ti` that does not say where its dossiers go.
    let workflows = Workflows::new();
    let without = workflows.without_avis_ti();
    let (db, mut server, crew) = serving(backend, &workflows.ami2()).await;
    let api = Api::of(&server);
    let stranded = api.deposit(&crew.dar, "Vierzon", &["ti"]).await;
    api.must_act(&crew.dar, &stranded, "instruire", favorable())
        .await;
    let at_ti = api
        .must_act(&crew.ti, &stranded, "avis_ti", favorable())
        .await;
    assert_eq!(at_ti["state"], "avis_ti");
    let reference = at_ti["reference"].as_str().expect("ref").to_string();
    let fine = api.deposit(&crew.dar, "Nevers", &["acv"]).await;
    let fine = api.dossier(&crew.dar, &fine).await;
    server.kill();
    let before = facts(&db.url).await;
    let without_arg = without.to_str().expect("path");

    for args in [
        &["workflow", "migrate", without_arg, "--dry-run"][..],
        &["workflow", "migrate", without_arg][..],
    ] {
        // Act
        let refused = cli(args, &db.url);

        // Assert: exit 1, « Refusé » on stderr, the stranded dossier named
        // as such, the other one not; nothing written.
        assert_eq!(refused.code, Some(1), "{args:?}: {refused:#?}");
        assert!(
            refused.stderr.contains("Refusé : 1 dossier(s)"),
            "{refused:#?}"
        );
        assert!(
            refused
                .line_naming(&reference)
                .contains("bloqué : l'état « Avis Territoires d'industrie rendu » n'existe plus"),
            "{refused:#?}"
        );
        assert!(
            !refused
                .line_naming(fine["reference"].as_str().expect("ref"))
                .contains("bloqué"),
            "{refused:#?}"
        );
        assert!(
            !refused.stdout.contains("rien n'a été écrit"),
            "{refused:#?}"
        );
        assert_eq!(facts(&db.url).await, before, "{args:?}");
    }

    // The database still runs ami2, its journal untouched.
    let refused = serve_until_refused(&without, &db.url);
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    let audit = cli(&["audit", "verify"], &db.url);
    assert_eq!(audit.code, Some(0), "{audit:#?}");
    let mut server = AmiProcess::start(&ami(), &db.url)
        .await
        .expect("ami serve on ami2");
    let api = Api::of(&server);
    let still = api.dossier(&crew.dar, &stranded).await;
    assert_eq!(
        (still["state"].as_str(), still["version"].as_u64()),
        (Some("avis_ti"), at_ti["version"].as_u64())
    );
    server.kill();
}

/// A dossier « classé sans suite » is closed, but a reopening leads it back
/// to the state it left: renamed with the others.
async fn a_dossier_classe_sans_suite_reopens_into_the_renamed_state(backend: Backend) {
    let workflows = Workflows::new();
    let renamed = workflows.renamed();
    let (db, mut server, crew) = serving(backend, &workflows.ami2()).await;
    let api = Api::of(&server);
    let id = api.deposit(&crew.dar, "Vierzon", &["acv"]).await;
    api.must_act(&crew.dar, &id, "instruire", favorable()).await;
    api.must_act(
        &crew.boss,
        &id,
        "classer_sans_suite",
        json!({"motivation": "désistement"}),
    )
    .await;
    server.kill();
    let done = cli(
        &["workflow", "migrate", renamed.to_str().expect("path")],
        &db.url,
    );
    assert_eq!(done.code, Some(0), "{done:#?}");
    let mut server = AmiProcess::start(&ami_on(&renamed), &db.url)
        .await
        .expect("serve");
    let api = Api::of(&server);
    let reopened = api
        .must_act(
            &crew.boss,
            &id,
            "rouvrir",
            json!({"motivation": "la commune revient"}),
        )
        .await;
    assert_eq!(reopened["state"], "instruit_dar", "{reopened}");
    api.must_act(&crew.acv, &id, "avis_acv", favorable()).await;
    server.kill();
}

async fn a_token_is_checked_against_the_definition_the_service_runs(backend: Backend) {
    // Arrange: a definition with a role the embedded one lacks, and a fresh
    // database (no active definition yet).
    let workflows = Workflows::new();
    let directeur = workflows.with_directeur();
    let directeur_arg = directeur.to_str().expect("utf-8 path");
    let db = TestDb::new(backend).await;
    let create = |email: &str, workflow: Option<&str>| {
        let mut args = vec![
            "token",
            "create",
            "--agency",
            "dar",
            "--role",
            "directeur",
            "--name",
            "Dominique Roux",
            "--email",
            email,
        ];
        args.extend(workflow.iter().flat_map(|w| ["--workflow", w]));
        cli(&args, &db.url)
    };

    // Act: without --workflow (the embedded definition), then with the
    // file; then, once the service has started on that file (which makes
    // it the database's active definition), without --workflow again.
    let refused = create("dominique.roux@lecnam.net", None);
    let given = create("dominique.roux@lecnam.net", Some(directeur_arg));
    let mut server = AmiProcess::start(&ami_on(&directeur), &db.url)
        .await
        .expect("ami serve on with_directeur.toml");
    let active = create("camille.roux@lecnam.net", None);
    let embedded_given = create("claude.roux@lecnam.net", Some("ami2"));

    // Assert: refused in French, naming the role, the definition and the
    // roles it has; accepted with the file given or active, and the
    // service it runs admits the token.
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert!(
        refused.stderr.contains(&format!(
            "rôle inconnu « directeur » dans la définition {AMI2} : agent ou responsable"
        )),
        "{refused:#?}"
    );
    for run in [&given, &active] {
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert!(run.stdout.contains("(dar directeur)"), "{run:#?}");
    }
    assert_eq!(embedded_given.code, Some(1), "{embedded_given:#?}");
    assert!(
        embedded_given.stderr.contains("rôle inconnu « directeur »"),
        "{embedded_given:#?}"
    );
    let api = Api::of(&server);
    for run in [&given, &active] {
        let token = run.stdout.lines().last().expect("token line").trim();
        let (status, body) = api.get(token, "/dossiers").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    server.kill();
}

on_both_backends!(
    a_token_is_checked_against_the_definition_the_service_runs,
    the_service_refuses_to_start_on_a_definition_not_migrated_to,
    a_state_renamed_by_state_map_moves_its_dossiers_and_they_go_on,
    an_avis_added_is_required_of_the_dossiers_waiting_for_the_laureat,
    a_change_that_strands_a_dossier_is_refused_with_nothing_written,
    a_dossier_classe_sans_suite_reopens_into_the_renamed_state,
);
