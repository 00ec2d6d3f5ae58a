//! Persistence: the journal of events, the projection of each dossier, tokens
//! and idempotency records, on SQLite or PostgreSQL.
//!
//! One [`Store`] serves both databases through sqlx's `Any` driver: the SQL is
//! the same but where [`Backend`] chooses (how a transition is written, the
//! feed's order, reference numbers). The backend is chosen once, from the URL
//! scheme.

mod audit;
mod definitions;
mod error;
mod group_commit;
mod order;
mod rows;
mod sessions;
mod token;
mod transition;
mod url;
mod write;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ami_core::text::search_key;
use ami_core::{awaiting, Actor, Definition, Dossier, DossierId};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

pub use audit::{AuditFinding, AuditReport, GlobalHead, RebuildReport};
pub use definitions::{definition_sha256, DefinitionCheck, StoredDefinition};
pub use error::StoreError;
pub use order::{Content, DepositOrder, Order};
pub use rows::*;
pub use sessions::WebSession;
pub use token::{hash_secret, PresentedToken, TokenRefusal};
pub use url::{DatabaseUrl, UnknownDatabaseUrl};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Digest that starts every dossier's chain.
pub const GENESIS_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chained digest of an event: SHA-256 over the previous digest (hex)
/// and the event's canonical JSON, as stored in the journal.
pub fn chain_digest(previous: &str, canonical_event: &str) -> String {
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(canonical_event.as_bytes());
    hex::encode(h.finalize())
}

/// The database, with a connection pool for writes and one for reads.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// SQLite has one writer at a time: a pool of one connection queues
    /// writers in the process instead of failing them with SQLITE_BUSY.
    writer: AnyPool,
    reader: AnyPool,
    /// The process's writer of transitions (see [`group_commit`]).
    commits: group_commit::GroupCommit,
    /// The waves whose reference sequence this process saw exist
    /// (PostgreSQL): a deposit then skips the look for it.
    wave_sequences: Arc<std::sync::Mutex<std::collections::HashSet<u8>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Who takes an action.
pub enum Principal {
    /// Already known (the demo, the benchmark's loader).
    Actor(Actor),
    /// A token presented over HTTP, checked on the transition's own
    /// connection: one round trip less than a check of its own.
    Token(PresentedToken),
}

/// Renders the answer to a transition for the acting person.
pub type Respond = Arc<dyn Fn(&Dossier, &Actor) -> String + Send + Sync>;

/// A request to take an action, as the store needs it to run it in one
/// transaction. It owns what it carries: a deposit may be run by the
/// process's writer task, with the other writes of its group.
pub struct TransitionRequest {
    pub definition: Arc<Definition>,
    pub dossier_id: DossierId,
    /// Checked before anything else; `None` only for a creation.
    pub expected_version: Option<u64>,
    pub command: Order,
    pub principal: Principal,
    pub now: DateTime<Utc>,
    pub idempotency: Option<IdempotencyKey>,
    /// Renders the answer (for the acting person) kept for replays of the
    /// same idempotency key.
    pub respond: Respond,
}

/// What a transition did.
#[derive(Debug)]
pub enum Executed {
    /// The event was appended and the projection updated.
    Applied { dossier: Box<Dossier>, body: String },
    /// The idempotency key had been seen: this is the first answer again.
    Replayed { status: u16, body: String },
}

impl Store {
    /// Connects, creating a SQLite file if needed, and applies migrations.
    pub async fn connect(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let store = Store::open(url, true).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to a database that `ami` already uses, and brings it up to
    /// date; an error, creating nothing, when the database does not exist or
    /// holds no `ami` journal (what an audit or a rebuild wants: checking an
    /// empty database created by mistake proves nothing).
    pub async fn connect_existing(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let store = Store::open(url, false).await.map_err(|e| match e {
            StoreError::Unavailable(cause) | StoreError::Other(cause) => StoreError::NotAmi(
                format!("base de données introuvable ou inaccessible ({cause})"),
            ),
            other => other,
        })?;
        let has_journal = sqlx::query("select count(*) as n from dossier_event")
            .fetch_one(&store.reader)
            .await
            .is_ok();
        if !has_journal {
            store.close().await;
            return Err(StoreError::NotAmi(
                "cette base ne contient pas de journal ami (aucune table dossier_event)".into(),
            ));
        }
        store.migrate().await?;
        Ok(store)
    }

    async fn open(url: &DatabaseUrl, create: bool) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = url.backend();
        let url = url.expose();
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                let mode = if create { "rwc" } else { "rw" };
                format!("{url}{sep}mode={mode}")
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(StoreError::from)?;
        let store = match backend {
            Backend::Sqlite => {
                let open = || {
                    AnyPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(5))
                        .test_before_acquire(false)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // WAL lets readers run beside the writer; FULL
                                // makes every acknowledged commit survive a
                                // power loss, not only a crash of the process.
                                for pragma in [
                                    "PRAGMA journal_mode = WAL",
                                    "PRAGMA synchronous = FULL",
                                    "PRAGMA busy_timeout = 5000",
                                    "PRAGMA foreign_keys = ON",
                                ] {
                                    sqlx::query(pragma).execute(&mut *conn).await?;
                                }
                                Ok(())
                            })
                        })
                };
                let writer = open()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await?;
                let reader = open().max_connections(4).connect_with(options).await?;
                Store {
                    backend,
                    commits: group_commit::GroupCommit::start(backend, writer.clone()),
                    wave_sequences: Arc::default(),
                    writer,
                    reader,
                }
            }
            Backend::Postgres => {
                // No ping before each use: it costs a round trip per query
                // (most of a transition's). A connection broken by a database
                // restart fails its next query with a 503 and is dropped.
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(3))
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Statements are prepared once per connection;
                            // after five runs PostgreSQL may plan them once
                            // for any value, and a list filtered on « waits
                            // on the DAR » then reads the table instead of
                            // its index (20 ms, not 2, at 100,000 dossiers).
                            // Planning each run costs a fraction of that.
                            sqlx::query("set plan_cache_mode = force_custom_plan")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                Store {
                    backend,
                    commits: group_commit::GroupCommit::start(backend, pool.clone()),
                    wave_sequences: Arc::default(),
                    writer: pool.clone(),
                    reader: pool,
                }
            }
        };
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the migrations of the backend that are not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("../../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../../migrations/postgres"),
        };
        migrator
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Other(e.to_string()))?;
        self.upgrade_rows().await
    }

    /// A write transaction on the writer pool ([`Store::begin_write_on`]).
    pub(super) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let begin = self.begin_statement();
        Ok(self.writer.begin_with(begin).await?)
    }

    /// A write transaction on a connection. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`), waiting for it up to the busy
    /// timeout: a transaction that reads first and writes later fails at
    /// once, without waiting, when another process (an `ami audit` or
    /// `ami token create` beside the service) wrote in between.
    pub(super) async fn begin_write_on<'c>(
        &self,
        conn: &'c mut sqlx::AnyConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>, StoreError> {
        Ok(sqlx::Connection::begin_with(conn, self.begin_statement()).await?)
    }

    fn begin_statement(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.reader).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    pub async fn get_dossier(&self, id: DossierId) -> Result<Option<Dossier>, StoreError> {
        let row = sqlx::query("select body from dossier where dossier_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        match row {
            Some(row) => Ok(Some(serde_json::from_str(
                &row.try_get::<String, _>("body")?,
            )?)),
            None => Ok(None),
        }
    }

    /// A page of dossiers in reception order, after `filter.after`.
    pub async fn list_dossiers(&self, filter: &DossierFilter) -> Result<Page<Dossier>, StoreError> {
        // Reception instant and id never change, so a cursor on them stays
        // correct while dossiers move between states.
        let (conditions, binds) = where_clause(filter, true);
        let sql = format!(
            "select d.body, d.received_at_us, d.dossier_id from {} where {conditions} \
             order by d.received_at_us, d.dossier_id limit ${}",
            self.dossiers_for(filter),
            binds.len() + 1
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
            };
        }
        let limit = filter.limit.clamp(1, 500);
        query = query.bind(i64::from(limit) + 1);

        let rows = query.fetch_all(&self.reader).await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows.iter().take(limit as usize) {
            items.push(serde_json::from_str::<Dossier>(
                &row.try_get::<String, _>("body")?,
            )?);
            last = Some(ListCursor {
                received_at_us: row.try_get("received_at_us")?,
                dossier_id: row
                    .try_get::<String, _>("dossier_id")?
                    .parse()
                    .map(DossierId)
                    .map_err(|e: uuid::Error| StoreError::Corrupt(e.to_string()))?,
            });
        }
        let next_cursor = if rows.len() > limit as usize {
            last
        } else {
            None
        };
        Ok(Page {
            items,
            next: next_cursor.map(|c| c.encode()),
        })
    }

    /// The dossier table of a query. SQLite's planner, with its statistics,
    /// prefers walking the reception or wave index and reading rows until
    /// it has a page, which for a queue of a few percent of 100,000
    /// dossiers reads thousands of them; the index of what waits on whom
    /// answers in a few milliseconds, so a queue names it.
    fn dossiers_for(&self, filter: &DossierFilter) -> &'static str {
        match self.backend {
            Backend::Sqlite if !filter.awaiting_columns.is_empty() => {
                "dossier d indexed by dossier_by_awaiting"
            }
            _ => "dossier d",
        }
    }

    /// How many dossiers match `filter`, whatever its cursor and limit,
    /// counted up to `cap + 1`: a page says « plus de 1 000 » rather than
    /// read 100,000 rows to be exact (the waiting-on column has no index).
    pub async fn count_matching(
        &self,
        filter: &DossierFilter,
        cap: u32,
    ) -> Result<i64, StoreError> {
        let (conditions, binds) = where_clause(filter, false);
        let sql = format!(
            "select count(*) as n from (select 1 from {} where {conditions} limit {}) matching",
            self.dossiers_for(filter),
            i64::from(cap) + 1
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
            };
        }
        Ok(query.fetch_one(&self.reader).await?.try_get("n")?)
    }

    /// Every received file of every dossier, with the dossier's reference.
    pub async fn piece_files(&self) -> Result<Vec<(String, ami_core::PieceFile)>, StoreError> {
        use futures_util::TryStreamExt;
        let mut rows =
            sqlx::query("select body from dossier order by reference").fetch(&self.reader);
        let mut found = Vec::new();
        while let Some(row) = rows.try_next().await? {
            let d: Dossier = serde_json::from_str(&row.try_get::<String, _>("body")?)?;
            found.extend(d.files.into_iter().map(|f| (d.reference.to_string(), f)));
        }
        Ok(found)
    }

    /// The SHA-256 of every file a pièce references.
    pub async fn referenced_files(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        Ok(self
            .piece_files()
            .await?
            .into_iter()
            .map(|(_, f)| f.sha256.to_string())
            .collect())
    }

    /// Every event of a dossier, in order, with its digest.
    pub async fn history(&self, id: DossierId) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "select e.event_id, e.body, e.digest, c.global_seq, c.global_digest \
             from dossier_event e left join journal_chain c on c.event_id = e.event_id \
             where e.dossier_id = $1 order by e.seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| stored_event(r, None)).collect()
    }

    /// The global feed: events after `cursor`, in an order a consumer can
    /// follow without ever missing one (see the migration's comment).
    pub async fn events_after(
        &self,
        cursor: Option<&FeedCursor>,
        limit: u32,
        readable: Option<&[&str]>,
    ) -> Result<Page<StoredEvent>, StoreError> {
        let limit = limit.clamp(1, 1000);
        // Need to know: events of the dossiers of these programmes only.
        let (join, only) = match readable {
            None => (String::new(), String::new()),
            Some(programmes) => (
                " join dossier d on d.dossier_id = e.dossier_id".to_string(),
                format!(" and {}", in_programmes("d.programmes", programmes)),
            ),
        };
        let rows = match self.backend {
            Backend::Sqlite => {
                let after = cursor.map_or(0, |c| c.event_id);
                sqlx::query(&format!(
                    "select e.event_id, e.body, e.digest, c.global_seq, c.global_digest \
                     from dossier_event e left join journal_chain c on c.event_id = e.event_id{join} \
                     where e.event_id > $1{only} order by e.event_id limit $2",
                ))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?
            }
            Backend::Postgres => {
                let (xact, after) = cursor.map_or((0, 0), |c| (c.xact_id, c.event_id));
                sqlx::query(&format!(
                    "select e.event_id, e.xact_id::text as xact, e.body, e.digest, c.global_seq, \
                     c.global_digest from dossier_event e \
                     left join journal_chain c on c.event_id = e.event_id{join} \
                     where e.xact_id < pg_snapshot_xmin(pg_current_snapshot()) \
                     and (e.xact_id, e.event_id) > ($1::text::xid8, $2){only} \
                     order by e.xact_id, e.event_id limit $3",
                ))
                .bind(xact.to_string())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?
            }
        };
        let items: Vec<StoredEvent> = rows
            .iter()
            .map(|r| stored_event(r, Some(self.backend)))
            .collect::<Result<_, _>>()?;
        // The cursor always moves to the last event seen; with no new event
        // it stays where it was, so the consumer polls again with it.
        let next = items
            .last()
            .map(|e| e.position.clone())
            .or_else(|| cursor.map(|c| c.encode()));
        Ok(Page { items, next })
    }

    /// The feed's position now: following the feed from here gives every
    /// event committed later and none before (a page's live updates start
    /// here, read before the page's dossiers).
    pub async fn feed_end(&self) -> Result<FeedCursor, StoreError> {
        let row =
            match self.backend {
                Backend::Sqlite => sqlx::query(
                    "select 0 as xact, coalesce(max(event_id), 0) as event_id from dossier_event",
                )
                .fetch_one(&self.reader)
                .await?,
                // Every transaction below the snapshot's xmin has ended: the last
                // of their events is a place no later event can come before.
                Backend::Postgres => {
                    let row = sqlx::query(
                        "select e.xact_id::text as xact, e.event_id from dossier_event e \
                     where e.xact_id < pg_snapshot_xmin(pg_current_snapshot()) \
                     order by e.xact_id desc, e.event_id desc limit 1",
                    )
                    .fetch_optional(&self.reader)
                    .await?;
                    match row {
                        Some(row) => row,
                        None => return Ok(FeedCursor::default()),
                    }
                }
            };
        let xact: String = match self.backend {
            Backend::Sqlite => "0".into(),
            Backend::Postgres => row.try_get("xact")?,
        };
        Ok(FeedCursor {
            xact_id: xact
                .parse()
                .map_err(|e: std::num::ParseIntError| StoreError::Corrupt(e.to_string()))?,
            event_id: row.try_get("event_id")?,
        })
    }

    /// Counts per wave and state, and per agency the dossiers awaiting it.
    pub async fn stats(&self, readable: Option<&[&str]>) -> Result<Stats, StoreError> {
        // Need to know: counts over the dossiers of these programmes only.
        let only = match readable {
            None => String::new(),
            Some(programmes) => format!(" where {}", in_programmes("programmes", programmes)),
        };
        let by_state = sqlx::query(&format!(
            "select cast(wave as bigint) as wave, state, count(*) as n from dossier{only} group by wave, state order by wave, state",
        ))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            Ok(StateCount {
                wave: read_number("dossier.wave", r.try_get("wave")?)?,
                state: r.try_get("state")?,
                count: r.try_get("n")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let mut awaiting: Vec<(String, i64)> = Vec::new();
        for r in sqlx::query(&format!(
            "select awaiting, count(*) as n from dossier{only} group by awaiting"
        ))
        .fetch_all(&self.reader)
        .await?
        {
            let agencies: String = r.try_get("awaiting")?;
            let n: i64 = r.try_get("n")?;
            for agency in agencies.split(',').filter(|a| !a.is_empty()) {
                match awaiting.iter_mut().find(|(a, _)| a == agency) {
                    Some((_, total)) => *total += n,
                    None => awaiting.push((agency.to_string(), n)),
                }
            }
        }
        Ok(Stats { by_state, awaiting })
    }

    pub async fn insert_token(
        &self,
        token: &TokenRecord,
        secret_sha256: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into api_token (token_id, person_id, name, agency, role, secret_sha256, created_at_us) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id.to_string())
        .bind(&token.person_id)
        .bind(&token.name)
        .bind(&token.agency)
        .bind(&token.role)
        .bind(secret_sha256)
        .bind(micros(token.created_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The token and the SHA-256 of its secret, revoked or not.
    pub async fn find_token(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<(TokenRecord, String)>, StoreError> {
        fetch_token(&self.reader, id).await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        sqlx::query(
            "select token_id, person_id, name, agency, role, created_at_us, revoked_at_us \
             from api_token order by created_at_us, token_id",
        )
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(token_record)
        .collect()
    }

    /// Revokes a token; false when there is no such token.
    pub async fn revoke_token(
        &self,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "update api_token set revoked_at_us = coalesce(revoked_at_us, $1) where token_id = $2",
        )
        .bind(micros(at))
        .bind(id.to_string())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Number of dossiers, to tell an empty database from a used one.
    pub async fn count_dossiers(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("select count(*) as n from dossier")
            .fetch_one(&self.reader)
            .await?
            .try_get("n")?)
    }
}

/// Inserts (`previous_version` = None) or updates the projection of a
/// dossier, the update only where the version is still the one read.
pub(super) async fn write_projection(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    def: &Definition,
    d: &Dossier,
    previous_version: Option<u64>,
    last_digest: &str,
) -> Result<(), StoreError> {
    let id = d.id.to_string();
    let body = serde_json::to_string(d)?;
    let awaiting = list_column(awaiting(def, d).into_iter());
    match previous_version {
        None => {
            sqlx::query(
                "insert into dossier (dossier_id, reference, wave, state, version, programmes, search, \
                 awaiting, received_at_us, updated_at_us, last_digest, body, code_insee) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&id)
            .bind(d.reference.as_str())
            .bind(i64::from(d.wave))
            .bind(d.state.as_str())
            .bind(to_i64(d.version))
            .bind(list_column(d.programmes.iter().map(|p| p.as_str())))
            .bind(search_column(d))
            .bind(&awaiting)
            .bind(micros(d.received_at))
            .bind(micros(d.updated_at))
            .bind(last_digest)
            .bind(&body)
            .bind(d.code_insee.as_str())
            .execute(&mut **tx)
            .await?;
        }
        Some(previous) => {
            let updated = sqlx::query(
                "update dossier set state = $1, version = $2, updated_at_us = $3, last_digest = $4, body = $5, \
                 awaiting = $6 where dossier_id = $7 and version = $8",
            )
            .bind(d.state.as_str())
            .bind(to_i64(d.version))
            .bind(micros(d.updated_at))
            .bind(last_digest)
            .bind(&body)
            .bind(&awaiting)
            .bind(&id)
            .bind(to_i64(previous))
            .execute(&mut **tx)
            .await?;
            if updated.rows_affected() != 1 {
                return Err(StoreError::Conflict { current: None });
            }
        }
    }
    Ok(())
}

/// A token and the SHA-256 of its secret, on any connection (a transition
/// checks its token on its own).
async fn fetch_token<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    id: uuid::Uuid,
) -> Result<Option<(TokenRecord, String)>, StoreError> {
    let row = sqlx::query(
        "select token_id, person_id, name, agency, role, secret_sha256, created_at_us, revoked_at_us \
         from api_token where token_id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(executor)
    .await?;
    row.map(|r| Ok((token_record(&r)?, r.try_get("secret_sha256")?)))
        .transpose()
}

/// The conditions of a dossier query (`d` is the dossier table) and their
/// values, numbered from `$1`.
fn where_clause(filter: &DossierFilter, with_after: bool) -> (String, Vec<Bind>) {
    let mut sql = String::from("1 = 1");
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let mut binds: Vec<Bind> = Vec::new();
    // One value or several: `state in (…)`; lists kept as `,a,b,`
    // columns match any of the values.
    let mut any_of = |sql: &mut String, column: &str, values: &[String], listed: bool| {
        if values.is_empty() {
            return;
        }
        let parts: Vec<String> = values
            .iter()
            .map(|v| {
                binds.push(Bind::Text(if listed {
                    format!("%,{v},%")
                } else {
                    v.clone()
                }));
                let p = next();
                if listed {
                    format!("{column} like {p}")
                } else {
                    format!("{column} = {p}")
                }
            })
            .collect();
        *sql += &format!(" and ({})", parts.join(" or "));
    };
    any_of(&mut sql, "d.awaiting", &filter.awaiting_columns, false);
    any_of(&mut sql, "d.state", &filter.states, false);
    any_of(&mut sql, "d.programmes", &filter.programmes, true);
    if let Some(readable) = &filter.readable {
        if readable.is_empty() {
            sql += " and 1 = 0";
        }
        any_of(&mut sql, "d.programmes", readable, true);
    }
    if !filter.waves.is_empty() {
        let parts: Vec<String> = filter
            .waves
            .iter()
            .map(|w| {
                binds.push(Bind::Int(i64::from(*w)));
                next()
            })
            .collect();
        sql += &format!(" and d.wave in ({})", parts.join(", "));
    }
    // A search with nothing searchable in it (only `%`, say) finds nothing.
    if filter
        .q
        .as_deref()
        .map(search_key)
        .is_some_and(|q| q.is_empty())
    {
        sql += " and 1 = 0";
    }
    if let Some(q) = filter
        .q
        .as_deref()
        .map(search_key)
        .filter(|q| !q.is_empty())
    {
        // The folded key holds no LIKE wildcard (see `search_key`).
        binds.push(Bind::Text(format!("%{q}%")));
        let p = next();
        // The search table's trigram index (GIN on PostgreSQL, FTS5 on
        // SQLite) serves the LIKE.
        sql += &format!(
            " and d.dossier_id in (select dossier_id from dossier_search where search like {p})"
        );
    }
    if let Some(after) = filter.after.as_ref().filter(|_| with_after) {
        binds.push(Bind::Int(after.received_at_us));
        binds.push(Bind::Text(after.dossier_id.to_string()));
        let (a, b) = (next(), next());
        sql += &format!(" and (d.received_at_us, d.dossier_id) > ({a}, {b})");
    }
    (sql, binds)
}

/// `,a,b,` so that `like '%,a,%'` finds one item.
/// The SQL condition « in one of these programmes » on a list column. The
/// ids come from the validated definition; anything but an identifier is
/// left out rather than quoted.
fn in_programmes(column: &str, programmes: &[&str]) -> String {
    let any: Vec<String> = programmes
        .iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .map(|p| format!("{column} like '%,{p},%'"))
        .chain(std::iter::once("1 = 0".to_string()))
        .collect();
    format!("({})", any.join(" or "))
}

/// Every value the `awaiting` column may hold that names one of `wanted`
/// (agencies, or `porteur`). A dossier waits on the agencies of its next
/// steps, listed in the order of the definition's actions, or on the
/// porteur alone: the values are the ordered subsets of those agencies, a
/// few for any real circuit.
pub fn awaiting_columns(def: &Definition, wanted: &[String]) -> Vec<String> {
    let mut agencies: Vec<&str> = Vec::new();
    for a in def.actions().iter().filter(|a| a.next_step) {
        if !agencies.contains(&a.agency.as_str()) {
            agencies.push(a.agency.as_str());
        }
    }
    // 2^n subsets; a circuit with more than 16 agencies taking next steps
    // would be a different kind of thing.
    let n = agencies.len().min(16);
    let mut values: Vec<String> = (1u32..(1 << n))
        .map(|mask| {
            list_column(
                agencies[..n]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, a)| *a),
            )
        })
        .filter(|v| wanted.iter().any(|w| v.contains(&format!(",{w},"))))
        .collect();
    if wanted.iter().any(|w| w == ami_core::PORTEUR) {
        values.push(list_column(std::iter::once(ami_core::PORTEUR)));
    }
    values
}

pub(super) fn list_column<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut s = String::from(",");
    for item in items {
        s.push_str(item);
        s.push(',');
    }
    s
}

/// What search looks in: the commune, the porteur, the reference and the
/// INSEE code, each folded (no accents, no case), kept apart by a `/` that
/// no folded query holds, so that a match never spans two of them.
pub(super) fn search_column(d: &Dossier) -> String {
    [&d.commune, &d.porteur.nom, &d.reference, &d.code_insee]
        .map(|field| search_key(field))
        .join(" / ")
}

/// A value bound to a query built at run time.
pub(super) enum Bind {
    Text(String),
    Int(i64),
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(super) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_awaiting_values_of_an_agency_are_the_lists_that_name_it() {
        let def = Definition::ami2();
        let dar = awaiting_columns(&def, &["dar".to_string()]);
        assert!(dar.contains(&",dar,".to_string()), "{dar:?}");
        assert!(dar.iter().all(|v| v.contains(",dar,")));
        assert_eq!(dar.len(), 4, "dar with any subset of acv and ti: {dar:?}");
        assert_eq!(
            awaiting_columns(&def, &[ami_core::PORTEUR.to_string()]),
            vec![",porteur,".to_string()]
        );
        assert!(awaiting_columns(&def, &["nobody".to_string()]).is_empty());
    }
}
