//! The bare database measure: the service's writes without the service,
//! through a pool of the bench's own, opened on the same database with the
//! settings `ami_service::store::Store` uses, on the same tables.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ami_core::{Definition, DossierId};
use chrono::Utc;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

use crate::campaign::full_path;
use crate::measure::{ClientTask, Measure};
use crate::Kind;

/// The bench's own connection to the database under measure.
pub struct BareDb {
    pool: AnyPool,
}

impl BareDb {
    /// A pool as the store's writer pool is: on SQLite one connection (WAL,
    /// `synchronous = FULL`, busy timeout 5 s, foreign keys on); on
    /// PostgreSQL 16 connections, no ping before use, custom plans. Keep it
    /// in step with `Store::open` in crates/ami-service/src/store/mod.rs.
    pub async fn open(kind: Kind, url: &str) -> anyhow::Result<BareDb> {
        sqlx::any::install_default_drivers();
        let pool = match kind {
            Kind::Sqlite => {
                // The store has created the file already.
                let url = if url.contains("mode=") {
                    url.to_string()
                } else {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}mode=rw")
                };
                AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(5))
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
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
                    .connect_with(AnyConnectOptions::from_str(&url)?)
                    .await?
            }
            Kind::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(3))
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query("set plan_cache_mode = force_custom_plan")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(AnyConnectOptions::from_str(url)?)
                    .await?
            }
        };
        Ok(BareDb { pool })
    }

    /// Removes the rows of the bare measure: they are not dossiers of the
    /// campaign.
    pub async fn delete_bare_rows(&self) -> anyhow::Result<()> {
        sqlx::query("delete from dossier_event where action = 'bench'")
            .execute(&self.pool)
            .await?;
        sqlx::query("delete from dossier where received_at_us = 0")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Updates the planner's statistics, as autovacuum would after a load.
    pub async fn analyze(&self) -> anyhow::Result<()> {
        sqlx::query("analyze").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn count_events(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query("select count(*) as n from dossier_event")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
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
            let (pool, stop, events) = (self.pool.clone(), stop.clone(), events.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut deposits = Vec::new();
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = uuid::Uuid::now_v7().to_string();
                    for (seq, (event, dossier)) in events.iter().enumerate() {
                        let seq = seq as i64 + 1;
                        let t = Instant::now();
                        if bare_write(&pool, &id, seq, event, dossier).await.is_err() {
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

async fn bare_write(
    pool: &AnyPool,
    id: &str,
    seq: i64,
    event: &str,
    dossier: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, digest) \
         values ($1, $2, 'bench', 'dar', 'bench', $3, $4, $5)",
    )
    .bind(id)
    .bind(seq)
    .bind(Utc::now().timestamp_micros())
    .bind(event)
    .bind(ami_service::store::GENESIS_DIGEST)
    .execute(&mut *tx)
    .await?;
    if seq == 1 {
        sqlx::query(
            "insert into dossier (dossier_id, reference, wave, state, version, programmes, search, \
             awaiting, received_at_us, updated_at_us, last_digest, body) values ($1, $1, 1, 'recu', 1, ',acv,ti,', '', ',dar,', 0, 0, '', $2)",
        )
        .bind(id)
        .bind(dossier)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query("update dossier set version = $1, body = $2, awaiting = ',dar,' where dossier_id = $3 and version = $4")
            .bind(seq)
            .bind(dossier)
            .bind(id)
            .bind(seq - 1)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
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
