//! The `ami` store on SQLite: [`SqliteStore`] implements [`ami_store::Store`].
//!
//! One writer connection (SQLite has one writer at a time) carries the
//! process's group commit; four readers run beside it in WAL mode. Every
//! static statement is a `sqlx::query!` (or `query_as!`, `query_scalar!`)
//! checked at build time against the schema of `migrations/`; the few whose
//! text depends on the input are built with `sqlx::QueryBuilder`, each
//! saying why.
//!
//! The build reads the query data committed in `.sqlx/` (the workspace's
//! `.cargo/config.toml` sets `SQLX_OFFLINE=true`), so it needs no database.
//! After changing a statement or a migration, refresh that data from this
//! directory (`crates/ami-store-sqlite`):
//!
//! ```text
//! rm -f /tmp/ami-sqlite-prepare.db*
//! export DATABASE_URL='sqlite:/tmp/ami-sqlite-prepare.db?mode=rwc'
//! cargo sqlx migrate run --source migrations
//! cargo sqlx prepare          # writes .sqlx/, to commit
//! cargo sqlx prepare --check  # what CI checks: .sqlx/ is current
//! ```
//!
//! The migrations' files never change once released: every database
//! records their checksums.

mod audit;
mod committee;
mod definitions;
mod mail;
mod reads;
mod tokens;
mod transition;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use ami_core::migration::DossierPlan;
use ami_core::{Actor, Definition, Dossier, DossierId, PieceFile};
use ami_store::group_commit::GroupCommit;
use ami_store::{
    AuditReport, Backend, CommitteeOutcome, CommitteeSession, DatabaseUrl, DefinitionCheck,
    DossierFilter, Executed, FeedCursor, GlobalHead, Page, RebuildReport, Stats, Store, StoreError,
    StoredDefinition, StoredEvent, TokenRecord, TransitionRequest, WebSession,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

/// A pool of `connections` on the database of `url` as the store opens
/// them: the writer's is one connection (SQLite has one writer at a time),
/// the readers' four. Also what `ami-bench` measures the bare database
/// through, so that both run with the same settings.
pub async fn pool(
    url: &DatabaseUrl,
    create: bool,
    connections: u32,
) -> Result<SqlitePool, StoreError> {
    if url.backend() != Backend::Sqlite {
        return Err(StoreError::Other(format!(
            "{url} n'est pas une adresse SQLite (sqlite:…)"
        )));
    }
    let url = url.expose();
    let url = if url.contains("mode=") {
        url.to_string()
    } else {
        let sep = if url.contains('?') { '&' } else { '?' };
        let mode = if create { "rwc" } else { "rw" };
        format!("{url}{sep}mode={mode}")
    };
    // WAL lets readers run beside the writer; FULL makes every acknowledged
    // commit survive a power loss, not only a crash of the process.
    let options = SqliteConnectOptions::from_str(&url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_millis(5000))
        .foreign_keys(true);
    Ok(SqlitePoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .max_connections(connections)
        .connect_with(options)
        .await?)
}

/// The database, with a pool of one connection for writes and one of four
/// for reads.
#[derive(Clone)]
pub struct SqliteStore {
    /// SQLite has one writer at a time: a pool of one connection queues
    /// writers in the process instead of failing them with SQLITE_BUSY.
    writer: SqlitePool,
    reader: SqlitePool,
    /// The process's writer of transitions, on `writer`.
    commits: GroupCommit,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Connects, creating the file if needed, and applies migrations.
    pub async fn connect(url: &DatabaseUrl) -> Result<SqliteStore, StoreError> {
        let store = SqliteStore::open(url, true).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to a database that `ami` already uses, and brings it up to
    /// date; an error, creating nothing, when the database does not exist or
    /// holds no `ami` journal (what an audit or a rebuild wants: checking an
    /// empty database created by mistake proves nothing).
    pub async fn connect_existing(url: &DatabaseUrl) -> Result<SqliteStore, StoreError> {
        let store = SqliteStore::open(url, false).await.map_err(|e| match e {
            StoreError::Unavailable(cause) | StoreError::Other(cause) => StoreError::NotAmi(
                format!("base de données introuvable ou inaccessible ({cause})"),
            ),
            other => other,
        })?;
        let has_journal = sqlx::query_scalar!(r#"select count(*) as "n!: i64" from dossier_event"#)
            .fetch_one(&store.reader)
            .await
            .is_ok();
        if !has_journal {
            store.close_pools().await;
            return Err(StoreError::NotAmi(
                "cette base ne contient pas de journal ami (aucune table dossier_event)".into(),
            ));
        }
        store.migrate().await?;
        Ok(store)
    }

    async fn open(url: &DatabaseUrl, create: bool) -> Result<SqliteStore, StoreError> {
        let writer = pool(url, create, 1).await?;
        let reader = pool(url, create, 4).await?;
        Ok(SqliteStore {
            commits: GroupCommit::start(writer::SqliteWriter::new(writer.clone())),
            writer,
            reader,
        })
    }

    /// Applies the migrations not applied yet, then brings rows written by
    /// an earlier version up to date.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!()
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Other(e.to_string()))?;
        self.upgrade_rows().await
    }

    /// A write transaction on the writer pool ([`begin_write_on`]).
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with(BEGIN_WRITE).await?)
    }

    async fn close_pools(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// A write transaction takes the write lock at once, waiting for it up to
/// the busy timeout: a transaction that reads first and writes later fails
/// at once, without waiting, when another process (an `ami audit` or
/// `ami token create` beside the service) wrote in between.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// A write transaction on a connection ([`BEGIN_WRITE`]).
async fn begin_write_on(
    conn: &mut SqliteConnection,
) -> Result<Transaction<'_, Sqlite>, StoreError> {
    Ok(sqlx::Connection::begin_with(conn, BEGIN_WRITE).await?)
}

/// A column that the query's joins may leave empty but that is never empty
/// when the row it belongs to is there.
fn present<T>(column: &str, value: Option<T>) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Corrupt(format!("{column} : valeur absente")))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // On a connection of its own, opened for this read: the pools'
        // connections keep the pages they read and may answer from memory
        // what the file no longer holds; a new one reads the file's header,
        // the schema and the tables' first pages from the disk. Never
        // creating the file: one deleted under the service is away, not empty.
        let options = (*self.reader.connect_options())
            .clone()
            .create_if_missing(false);
        let mut conn = <SqliteConnection as sqlx::Connection>::connect_with(&options).await?;
        let read = sqlx::query_scalar!(
            r#"select (select count(*) from (select 1 from api_token limit 1))
                    + (select count(*) from (select 1 from dossier limit 1))
                    + (select count(*) from (select 1 from dossier_event limit 1))
                    + (select count(*) from (select 1 from journal_head limit 1)) as "n!: i64""#
        )
        .fetch_one(&mut conn)
        .await;
        let _ = sqlx::Connection::close(conn).await;
        read?;
        Ok(())
    }

    async fn close(&self) {
        self.close_pools().await;
    }

    async fn execute(&self, req: TransitionRequest) -> Result<Executed, StoreError> {
        self.run_transition(req).await
    }

    async fn get_dossier(&self, id: DossierId) -> Result<Option<Dossier>, StoreError> {
        self.read_dossier(id).await
    }

    async fn hold_committee(
        &self,
        session: &CommitteeSession,
        decisions: Vec<TransitionRequest>,
        dry_run: bool,
    ) -> Result<CommitteeOutcome, StoreError> {
        self.run_committee(session, decisions, dry_run).await
    }

    async fn committees(&self, wave: u8) -> Result<Vec<CommitteeSession>, StoreError> {
        self.wave_committees(wave).await
    }

    async fn list_dossiers(&self, filter: &DossierFilter) -> Result<Page<Dossier>, StoreError> {
        self.dossier_page(filter).await
    }

    async fn count_matching(&self, filter: &DossierFilter, cap: u32) -> Result<i64, StoreError> {
        self.count_filtered(filter, cap).await
    }

    async fn count_dossiers(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar!(r#"select coalesce(sum(n), 0) as "n!: i64" from dossier_count"#)
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn all_dossiers(&self) -> Result<Vec<Dossier>, StoreError> {
        sqlx::query_scalar!("select body from dossier order by reference")
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|body| Ok(serde_json::from_str::<Dossier>(body)?))
            .collect()
    }

    async fn piece_files(&self) -> Result<Vec<(String, PieceFile)>, StoreError> {
        self.streamed_piece_files().await
    }

    async fn history(&self, id: DossierId) -> Result<Vec<StoredEvent>, StoreError> {
        self.dossier_history(id).await
    }

    async fn events_after(
        &self,
        cursor: Option<&FeedCursor>,
        limit: u32,
        readable: Option<&[&str]>,
    ) -> Result<Page<StoredEvent>, StoreError> {
        self.feed_page(cursor, limit, readable).await
    }

    async fn feed_end(&self) -> Result<FeedCursor, StoreError> {
        // One writer: event ids grow in commit order, the last one is the
        // end of the feed.
        let event_id = sqlx::query_scalar!(
            r#"select coalesce(max(event_id), 0) as "event_id!: i64" from dossier_event"#
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(FeedCursor {
            xact_id: 0,
            event_id,
        })
    }

    async fn stats(
        &self,
        readable: Option<&[&str]>,
        today: chrono::NaiveDate,
    ) -> Result<Stats, StoreError> {
        self.counts(readable, today).await
    }

    async fn stats_of_departements(
        &self,
        readable: Option<&[&str]>,
        today: chrono::NaiveDate,
        departements: Option<&[String]>,
    ) -> Result<Stats, StoreError> {
        self.departement_counts(readable, today, departements).await
    }

    async fn insert_token(
        &self,
        token: &TokenRecord,
        secret_sha256: &str,
    ) -> Result<(), StoreError> {
        self.add_token(token, secret_sha256).await
    }

    async fn find_token(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<(TokenRecord, String)>, StoreError> {
        tokens::fetch_token(&self.reader, id).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.all_tokens().await
    }

    async fn revoke_token(&self, id: uuid::Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.revoke(id, at).await
    }

    async fn create_session(
        &self,
        session_sha256: &str,
        token_id: uuid::Uuid,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.add_session(session_sha256, token_id, csrf, now).await
    }

    async fn find_session(
        &self,
        session_sha256: &str,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<WebSession>, StoreError> {
        self.live_session(session_sha256, now, idle).await
    }

    async fn end_session(&self, session_sha256: &str) -> Result<(), StoreError> {
        self.remove_session(session_sha256).await
    }

    async fn active_definition(&self) -> Result<Option<StoredDefinition>, StoreError> {
        self.last_definition().await
    }

    async fn check_definition(
        &self,
        def: &Definition,
        source: &str,
    ) -> Result<DefinitionCheck, StoreError> {
        self.compare_definition(def, source).await
    }

    async fn migrate_definition(
        &self,
        old: &Definition,
        new: &Definition,
        source: &str,
        plans: &[DossierPlan],
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.replace_definition(old, new, source, plans, actor, now)
            .await
    }

    async fn global_head(&self) -> Result<GlobalHead, StoreError> {
        let head = sqlx::query!(
            r#"select global_seq as "global_seq!: i64", global_digest from journal_head
               where singleton = 1"#
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(GlobalHead {
            seq: head.global_seq,
            digest: head.global_digest,
        })
    }

    async fn seal_pending(&self) -> Result<u64, StoreError> {
        self.seal().await
    }

    async fn verify(
        &self,
        def: &Definition,
        kept: Option<&GlobalHead>,
    ) -> Result<AuditReport, StoreError> {
        self.audit(def, kept).await
    }

    async fn rebuild_projections(
        &self,
        def: &Definition,
        accept_loss: bool,
    ) -> Result<RebuildReport, StoreError> {
        self.rebuild(def, accept_loss).await
    }

    async fn arrival_files(&self) -> Result<Vec<String>, StoreError> {
        self.all_arrival_files().await
    }

    async fn record_arrival(
        &self,
        new: &ami_store::NewArrival,
    ) -> Result<ami_store::RecordedArrival, StoreError> {
        self.insert_arrival(new).await
    }

    async fn arrivals(
        &self,
        filter: &ami_store::ArrivalFilter,
    ) -> Result<Page<ami_store::ArrivalRecord>, StoreError> {
        self.arrival_page(filter).await
    }

    async fn arrival(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<ami_store::ArrivalRecord>, StoreError> {
        self.one_arrival(id).await
    }

    async fn set_arrival_aside(
        &self,
        id: uuid::Uuid,
        actor: &Actor,
        motivation: &str,
        at: DateTime<Utc>,
    ) -> Result<ami_store::ArrivalRecord, StoreError> {
        self.arrival_aside(id, actor, motivation, at).await
    }

    async fn enqueue_digest(
        &self,
        agency: &str,
        date: chrono::NaiveDate,
        recipient: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.add_digest(agency, date, recipient, now).await
    }

    async fn claim_outgoing(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<ami_store::OutgoingRecord>, StoreError> {
        self.claim(now, lease, limit).await
    }

    async fn mark_sent(
        &self,
        id: uuid::Uuid,
        claim: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.sent(id, claim, at).await
    }

    async fn mark_failed(
        &self,
        id: uuid::Uuid,
        claim: uuid::Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        self.failed(id, claim, error, retry_at).await
    }

    async fn dossier_messages(
        &self,
        id: DossierId,
    ) -> Result<Vec<ami_store::OutgoingRecord>, StoreError> {
        self.messages_of(id).await
    }
}
