//! The bare database measure: the service's writes without the service,
//! through a pool of the bench's own, opened on the same database with the
//! settings `ami_service::store::Store` uses, on the same tables.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ami_core::{Definition, DossierId};
use ami_service::store::DatabaseUrl;
use chrono::Utc;
use sqlx::{PgPool, SqlitePool};

use crate::campaign::full_path;
use crate::measure::{ClientTask, Measure};
use crate::Kind;

/// The bench's own connection to the database under measure.
#[derive(Clone)]
pub enum BareDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl BareDb {
    /// A pool as the store's writer pool is, from the store crate itself
    /// (on SQLite one connection, WAL, `synchronous = FULL`; on PostgreSQL
    /// 16 connections, no ping before use, custom plans).
    pub async fn open(kind: Kind, url: &str) -> anyhow::Result<BareDb> {
        let url = DatabaseUrl::parse(url)?;
        Ok(match kind {
            // The store has created the file already.
            Kind::Sqlite => BareDb::Sqlite(ami_store_sqlite::pool(&url, false, 1).await?),
            Kind::Postgres => BareDb::Postgres(ami_store_postgres::pool(&url).await?),
        })
    }

    /// Removes the rows of the bare measure: they are not dossiers of the
    /// campaign.
    pub async fn delete_bare_rows(&self) -> anyhow::Result<()> {
        const EVENTS: &str = "delete from dossier_event where action = 'bench'";
        // Their reference is their id, which no dossier of the service has.
        const DOSSIERS: &str = "delete from dossier where reference = cast(dossier_id as text)";
        match self {
            BareDb::Sqlite(pool) => {
                sqlx::query(EVENTS).execute(pool).await?;
                sqlx::query(DOSSIERS).execute(pool).await?;
            }
            BareDb::Postgres(pool) => {
                sqlx::query(EVENTS).execute(pool).await?;
                sqlx::query(DOSSIERS).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Updates the planner's statistics, as autovacuum would after a load.
    pub async fn analyze(&self) -> anyhow::Result<()> {
        match self {
            BareDb::Sqlite(pool) => {
                sqlx::query("analyze").execute(pool).await?;
            }
            BareDb::Postgres(pool) => {
                sqlx::query("analyze").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn count_events(&self) -> anyhow::Result<i64> {
        const COUNT: &str = "select count(*) from dossier_event";
        Ok(match self {
            BareDb::Sqlite(pool) => sqlx::query_scalar(COUNT).fetch_one(pool).await?,
            BareDb::Postgres(pool) => sqlx::query_scalar(COUNT).fetch_one(pool).await?,
        })
    }

    pub async fn close(&self) {
        match self {
            BareDb::Sqlite(pool) => pool.close().await,
            BareDb::Postgres(pool) => pool.close().await,
        }
    }

    /// The same writes as the service's, without it: per transition one
    /// transaction that inserts the event and updates the projection where
    /// the version matches.
    pub async fn load(
        &self,
        def: &Definition,
        clients: usize,
        seconds: u64,
    ) -> anyhow::Result<Measure> {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks: Vec<ClientTask> = Vec::new();
        let events = Arc::new(sample_events(def)?);
        for _ in 0..clients {
            let (db, stop, events) = (self.clone(), stop.clone(), events.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut deposits = Vec::new();
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = uuid::Uuid::now_v7();
                    for (seq, (event, dossier)) in events.iter().enumerate() {
                        let seq = seq as i64 + 1;
                        let t = Instant::now();
                        if db.write(&id, seq, event, dossier).await.is_err() {
                            errors += 1;
                            break;
                        }
                        latencies.push(t.elapsed());
                        if seq == 1 {
                            deposits.push(t.elapsed());
                        }
                    }
                }
                (latencies, deposits, errors)
            }));
        }
        Ok(Measure::after(seconds, &stop, started, tasks).await)
    }
}

impl BareDb {
    /// One transition as the service writes it, in one transaction of its
    /// own: the event, and the projection inserted or updated where the
    /// version matches (each database's columns).
    async fn write(
        &self,
        id: &uuid::Uuid,
        seq: i64,
        event: &str,
        dossier: &str,
    ) -> Result<(), sqlx::Error> {
        let genesis = ami_service::store::GENESIS_DIGEST;
        let now = Utc::now();
        match self {
            BareDb::Sqlite(pool) => {
                let id = id.to_string();
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, \
                     body, digest) values ($1, $2, 'bench', 'dar', 'bench', $3, $4, $5)",
                )
                .bind(&id)
                .bind(seq)
                .bind(now.timestamp_micros())
                .bind(event)
                .bind(genesis)
                .execute(&mut *tx)
                .await?;
                if seq == 1 {
                    sqlx::query(
                        "insert into dossier (dossier_id, reference, wave, state, version, \
                         programmes, search, awaiting, received_at_us, updated_at_us, last_digest, \
                         body) values ($1, $1, 1, 'recu', 1, ',acv,ti,', '', ',dar,', 0, 0, '', $2)",
                    )
                    .bind(&id)
                    .bind(dossier)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query(
                        "update dossier set version = $1, body = $2, awaiting = ',dar,' \
                         where dossier_id = $3 and version = $4",
                    )
                    .bind(seq)
                    .bind(dossier)
                    .bind(&id)
                    .bind(seq - 1)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
            BareDb::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "insert into dossier_event (dossier_id, seq, action, agency, actor_id, \
                     occurred_at, body, digest) values ($1, $2, 'bench', 'dar', 'bench', $3, $4, $5)",
                )
                .bind(id)
                .bind(seq)
                .bind(now)
                .bind(event)
                .bind(genesis)
                .execute(&mut *tx)
                .await?;
                if seq == 1 {
                    sqlx::query(
                        "insert into dossier (dossier_id, reference, wave, state, version, \
                         programmes, search, awaiting, received_at, updated_at, last_digest, \
                         body) values ($1, $1::text, 1, 'recu', 1, ',acv,ti,', '', ',dar,', $2, $2, \
                         '', $3::jsonb)",
                    )
                    .bind(id)
                    .bind(now)
                    .bind(dossier)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query(
                        "update dossier set version = $1, body = $2::jsonb, awaiting = ',dar,' \
                         where dossier_id = $3 and version = $4",
                    )
                    .bind(seq)
                    .bind(dossier)
                    .bind(id)
                    .bind(seq - 1)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
        }
    }
}

/// Real event and dossier JSON of a full path, so the bare writes move the
/// same number of bytes as the service's.
fn sample_events(def: &Definition) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut dossier = None;
    for (order, actor) in full_path(def, DossierId(uuid::Uuid::now_v7()), 1)? {
        let command = order.to_command(def).map_err(|r| anyhow::anyhow!("{r}"))?;
        let target = match &dossier {
            Some(d) => ami_core::Target::Dossier(d),
            None => ami_core::Target::New {
                number: 1,
                same_commune: &[],
            },
        };
        let event = ami_core::decide(def, target, &command, &actor, Utc::now())
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        let d = ami_core::apply(dossier, &event)?;
        out.push((serde_json::to_string(&event)?, serde_json::to_string(&d)?));
        dossier = Some(d);
    }
    Ok(out)
}
