//! The `ami` store on PostgreSQL: [`PgStore`] implements [`ami_store::Store`]
//! with SQL checked at build time against the committed query data
//! (`.sqlx/`, see the README) and the migrations of `migrations/`.
//!
//! Several instances of the service may share one database: transitions
//! of one dossier are ordered by its version, deposits of one commune by an
//! advisory lock, reference numbers come from one sequence per wave, and
//! the event feed orders by the writing transaction so that a consumer
//! never skips an event that commits late.

mod audit;
mod committee;
mod dossiers;
mod group;
mod mail;
mod people;
mod transition;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ami_core::migration::DossierPlan;
use ami_core::{Actor, Definition, Dossier, DossierId, PieceFile};
use ami_store::group_commit::GroupCommit;
use ami_store::{
    AuditReport, Backend, CommitteeOutcome, CommitteeSession, DatabaseUrl, DefinitionCheck,
    DossierFilter, Executed, FeedCursor, GlobalHead, Page, RebuildReport, Stats, StoreError,
    StoredDefinition, StoredEvent, TokenRecord, TransitionRequest, WebSession,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The migrations of the schema, in order. Public so that a test can build
/// a database as an earlier version left it.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A PostgreSQL database of `ami`, with its connection pool and the
/// process's writer of transitions.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The process's writer of transitions on existing dossiers
    /// ([`ami_store::group_commit`]).
    commits: GroupCommit,
    /// The waves whose reference sequence this process saw exist: a
    /// deposit then skips the look for it.
    wave_sequences: Arc<Mutex<HashSet<u8>>>,
    /// The connection the writer task keeps between groups.
    writer_connection: group::KeptConnection,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// A pool on the database of `url` as the store opens it. Also what
/// `ami-bench` measures the bare database through, so that both run with
/// the same settings.
pub async fn pool(url: &DatabaseUrl) -> Result<PgPool, StoreError> {
    if url.backend() != Backend::Postgres {
        return Err(StoreError::Other(format!(
            "adresse PostgreSQL attendue (postgres://…) : {url}"
        )));
    }
    let options = PgConnectOptions::from_str(url.expose())?;
    // No ping before each use: it costs a round trip per query (most of a
    // transition's). A connection broken by a database restart fails its
    // next query with a 503 and is dropped.
    Ok(PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // Statements are prepared once per connection; after five
                // runs PostgreSQL may plan them once for any value, and a
                // list filtered on « waits on the DAR » then reads the table
                // instead of its index (20 ms, not 2, at 100,000 dossiers).
                // Planning each run costs a fraction of that.
                sqlx::query!("set plan_cache_mode = force_custom_plan")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?)
}

impl PgStore {
    /// Connects and applies the migrations not applied yet.
    pub async fn connect(url: &DatabaseUrl) -> Result<PgStore, StoreError> {
        let store = PgStore::open(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to a database that `ami` already uses, and brings it up to
    /// date; an error, creating nothing, when the database does not exist or
    /// holds no `ami` journal (what an audit or a rebuild wants: checking an
    /// empty database created by mistake proves nothing).
    pub async fn connect_existing(url: &DatabaseUrl) -> Result<PgStore, StoreError> {
        let store = PgStore::open(url).await.map_err(|e| match e {
            StoreError::Unavailable(cause) | StoreError::Other(cause) => StoreError::NotAmi(
                format!("base de données introuvable ou inaccessible ({cause})"),
            ),
            other => other,
        })?;
        let has_journal = sqlx::query_scalar!(r#"select count(*) as "n!" from dossier_event"#)
            .fetch_one(&store.pool)
            .await
            .is_ok();
        if !has_journal {
            store.pool.close().await;
            return Err(StoreError::NotAmi(
                "cette base ne contient pas de journal ami (aucune table dossier_event)".into(),
            ));
        }
        store.migrate().await?;
        Ok(store)
    }

    async fn open(url: &DatabaseUrl) -> Result<PgStore, StoreError> {
        let pool = pool(url).await?;
        let writer_connection = group::KeptConnection::default();
        Ok(PgStore {
            commits: GroupCommit::start(group::PgWriter::new(
                pool.clone(),
                writer_connection.clone(),
            )),
            writer_connection,
            wave_sequences: Arc::default(),
            pool,
        })
    }

    /// Applies the migrations not applied yet, then brings rows written by
    /// an earlier version up to date.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(e.to_string()))?;
        self.upgrade_rows().await
    }
}

#[async_trait]
impl ami_store::Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // The service's own tables, not `select 1`: a database that answers
        // but lost or cannot read them is not healthy.
        sqlx::query_scalar!(
            r#"select (select count(*) from (select 1 from api_token limit 1) t)
                    + (select count(*) from (select 1 from dossier limit 1) d)
                    + (select count(*) from (select 1 from dossier_event limit 1) e)
                    + (select count(*) from (select 1 from journal_head limit 1) h) as "n!: i64""#
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(())
    }

    async fn close(&self) {
        // After a group in progress, if any; a later one finds the pool
        // closed.
        self.writer_connection.lock().await.take();
        self.pool.close().await;
    }

    async fn execute(&self, req: TransitionRequest) -> Result<Executed, StoreError> {
        self.run_transition(req).await
    }

    async fn get_dossier(&self, id: DossierId) -> Result<Option<Dossier>, StoreError> {
        self.dossier(id).await
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
        self.list(filter).await
    }

    async fn count_matching(&self, filter: &DossierFilter, cap: u32) -> Result<i64, StoreError> {
        self.count(filter, cap).await
    }

    async fn count_dossiers(&self) -> Result<i64, StoreError> {
        self.count_all().await
    }

    async fn all_dossiers(&self) -> Result<Vec<Dossier>, StoreError> {
        self.every_dossier().await
    }

    async fn piece_files(&self) -> Result<Vec<(String, PieceFile)>, StoreError> {
        self.files().await
    }

    async fn history(&self, id: DossierId) -> Result<Vec<StoredEvent>, StoreError> {
        self.events_of(id).await
    }

    async fn events_after(
        &self,
        cursor: Option<&FeedCursor>,
        limit: u32,
        readable: Option<&[&str]>,
    ) -> Result<Page<StoredEvent>, StoreError> {
        self.feed(cursor, limit, readable).await
    }

    async fn feed_end(&self) -> Result<FeedCursor, StoreError> {
        self.end_of_feed().await
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
        people::fetch_token(&self.pool, id).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.tokens().await
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
        self.new_session(session_sha256, token_id, csrf, now).await
    }

    async fn find_session(
        &self,
        session_sha256: &str,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<WebSession>, StoreError> {
        self.session(session_sha256, now, idle).await
    }

    async fn end_session(&self, session_sha256: &str) -> Result<(), StoreError> {
        self.drop_session(session_sha256).await
    }

    async fn active_definition(&self) -> Result<Option<StoredDefinition>, StoreError> {
        self.active().await
    }

    async fn check_definition(
        &self,
        def: &Definition,
        source: &str,
    ) -> Result<DefinitionCheck, StoreError> {
        self.check(def, source).await
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
        self.head().await
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

/// A column the schema declares `not null` but a query's shape (an outer
/// join) makes optional: absent, the row is corrupt.
fn present<T>(value: Option<T>, column: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Corrupt(format!("{column} : valeur absente")))
}
