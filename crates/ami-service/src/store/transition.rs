//! One transition, durably: the idempotency check, the dossier read, the
//! engine's decision, then the event and the projection written together.
//!
//! SQLite runs it all in one transaction on its single writer connection.
//! PostgreSQL reads first, then writes the event, the projection and the
//! idempotency record in one statement (one transaction) whose every part is
//! conditional on the dossier's version being the one read: if another
//! instance moved the dossier in between, nothing is written and the caller
//! gets a conflict. That saves the round trips of an explicit transaction
//! and a row lock, which dominate the cost of a transition on PostgreSQL
//! (docs/PERFORMANCE.md).

use ami_core::{apply, awaiting, decide, Actor, Dossier, Effect, Event};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use super::{
    chain_digest, list_column, micros, search_column, to_i64, Backend, Executed, Principal, Store,
    StoreError, TransitionRequest, GENESIS_DIGEST,
};

/// Everything a transition writes, computed before any write.
struct Prepared {
    dossier: Dossier,
    previous_version: Option<u64>,
    event: Event,
    event_json: String,
    digest: String,
    body: String,
    status: u16,
}

impl Store {
    /// Runs one transition: idempotency, version check (first), decision,
    /// event and projection written atomically.
    pub async fn execute(&self, req: &TransitionRequest<'_>) -> Result<Executed, StoreError> {
        let run = || async {
            match self.backend {
                Backend::Sqlite => self.execute_in_transaction(req).await,
                Backend::Postgres => self.execute_in_one_statement(req).await,
            }
        };
        match run().await {
            // Two requests with the same key raced and the other committed
            // first: its answer is now there to replay.
            Err(StoreError::Duplicate) if req.idempotency.is_some() => run().await,
            Err(StoreError::Duplicate) => Err(StoreError::Conflict { current: None }),
            other => other,
        }
    }

    #[tracing::instrument(skip_all, fields(dossier.id = %req.dossier_id, action = %req.command.action))]
    async fn execute_in_transaction(
        &self,
        req: &TransitionRequest<'_>,
    ) -> Result<Executed, StoreError> {
        let mut tx = self.writer.begin().await?;
        let actor = authenticate(&mut *tx, &req.principal).await?;
        let current = if creates(req) {
            None
        } else {
            Some(load_dossier(&mut *tx, req).await?)
        };
        if let Some(replay) = find_replay(&mut *tx, req, &actor).await? {
            return Ok(replay);
        }
        let number = if creates(req) {
            Some(next_sqlite_number(&mut tx).await?)
        } else {
            None
        };
        let p = prepare(req, &actor, current, number)?;
        sqlx::query(
            "insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, digest) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(p.event.dossier_id.to_string())
        .bind(to_i64(p.event.seq))
        .bind(p.event.action.as_str())
        .bind(p.event.actor.agency.as_str())
        .bind(p.event.actor.id.as_str())
        .bind(micros(p.event.at))
        .bind(&p.event_json)
        .bind(&p.digest)
        .execute(&mut *tx)
        .await?;
        self.write_projection(
            &mut tx,
            req.definition,
            &p.dossier,
            p.previous_version,
            &p.digest,
        )
        .await?;
        if let Some(key) = &req.idempotency {
            sqlx::query(
                "insert into idempotency (actor_id, idempotency_key, request_sha256, status, body, created_at_us) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(actor.id.as_str())
            .bind(key.key.as_str())
            .bind(key.request_sha256.as_str())
            .bind(i64::from(p.status))
            .bind(&p.body)
            .bind(micros(req.now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Executed::Applied {
            dossier: Box::new(p.dossier),
            body: p.body,
        })
    }

    #[tracing::instrument(skip_all, fields(dossier.id = %req.dossier_id, action = %req.command.action))]
    async fn execute_in_one_statement(
        &self,
        req: &TransitionRequest<'_>,
    ) -> Result<Executed, StoreError> {
        // One connection for the whole transition: the pool pings a
        // connection each time it takes it back, a round trip per release.
        let mut conn = self.writer.acquire().await?;
        let actor = authenticate(&mut *conn, &req.principal).await?;
        if let Some(replay) = find_replay(&mut *conn, req, &actor).await? {
            return Ok(replay);
        }
        let (current, number) = if creates(req) {
            let n: i64 = sqlx::query("select nextval('dossier_number') as n")
                .fetch_one(&mut *conn)
                .await?
                .try_get("n")?;
            (None, Some(u64::try_from(n).unwrap_or_default()))
        } else {
            (Some(load_dossier(&mut *conn, req).await?), None)
        };
        let p = prepare(req, &actor, current, number)?;
        let d = &p.dossier;
        let e = &p.event;
        let awaiting = list_column(awaiting(req.definition, d).into_iter().map(|a| a.as_str()));
        let body = serde_json::to_string(d)?;

        // The projection first (as `target`), then the event and the answer
        // selected from it: when the version moved, `target` is empty and
        // nothing at all is written.
        let mut sql = String::from("with target as (");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let mut query_params: Vec<Param> = Vec::new();
        match p.previous_version {
            None => {
                let cols = [
                    Param::Text(d.id.to_string()),
                    Param::Text(d.reference.clone()),
                    Param::Int(i64::from(d.wave)),
                    Param::Text(d.state.to_string()),
                    Param::Int(to_i64(d.version)),
                    Param::Text(list_column(d.programmes.iter().map(|p| p.as_str()))),
                    Param::Text(search_column(d)),
                    Param::Text(awaiting),
                    Param::Int(micros(d.received_at)),
                    Param::Int(micros(d.updated_at)),
                    Param::Text(p.digest.clone()),
                    Param::Text(body),
                ];
                let placeholders: Vec<String> = cols.iter().map(|_| next()).collect();
                sql += &format!(
                    "insert into dossier (dossier_id, reference, wave, state, version, programmes, search, \
                     awaiting, received_at_us, updated_at_us, last_digest, body) values ({}) returning dossier_id",
                    placeholders.join(", ")
                );
                query_params.extend(cols);
            }
            Some(previous) => {
                let cols = [
                    Param::Text(d.state.to_string()),
                    Param::Int(to_i64(d.version)),
                    Param::Int(micros(d.updated_at)),
                    Param::Text(p.digest.clone()),
                    Param::Text(body),
                    Param::Text(awaiting),
                    Param::Text(d.id.to_string()),
                    Param::Int(to_i64(previous)),
                ];
                let ph: Vec<String> = cols.iter().map(|_| next()).collect();
                sql += &format!(
                    "update dossier set state = {}, version = {}, updated_at_us = {}, last_digest = {}, body = {}, \
                     awaiting = {} where dossier_id = {} and version = {} returning dossier_id",
                    ph[0], ph[1], ph[2], ph[3], ph[4], ph[5], ph[6], ph[7]
                );
                query_params.extend(cols);
            }
        }
        let event_cols = [
            Param::Int(to_i64(e.seq)),
            Param::Text(e.action.to_string()),
            Param::Text(e.actor.agency.to_string()),
            Param::Text(e.actor.id.to_string()),
            Param::Int(micros(e.at)),
            Param::Text(p.event_json.clone()),
            Param::Text(p.digest.clone()),
        ];
        let ph: Vec<String> = event_cols.iter().map(|_| next()).collect();
        sql += &format!(
            "), appended as (insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, digest) \
             select dossier_id, {} from target returning event_id)",
            ph.join(", ")
        );
        query_params.extend(event_cols);
        if let Some(key) = &req.idempotency {
            let cols = [
                Param::Text(actor.id.to_string()),
                Param::Text(key.key.clone()),
                Param::Text(key.request_sha256.clone()),
                Param::Int(i64::from(p.status)),
                Param::Text(p.body.clone()),
                Param::Int(micros(req.now)),
            ];
            let ph: Vec<String> = cols.iter().map(|_| next()).collect();
            sql += &format!(
                ", remembered as (insert into idempotency (actor_id, idempotency_key, request_sha256, status, body, \
                 created_at_us) select {} from target)",
                ph.join(", ")
            );
            query_params.extend(cols);
        }
        sql += " select count(*) as n from appended";

        let mut query = sqlx::query(&sql);
        for param in query_params {
            query = match param {
                Param::Text(t) => query.bind(t),
                Param::Int(i) => query.bind(i),
            };
        }
        let written: i64 = query.fetch_one(&mut *conn).await?.try_get("n")?;
        if written == 1 {
            return Ok(Executed::Applied {
                dossier: Box::new(p.dossier),
                body: p.body,
            });
        }
        // The dossier moved since it was read. If it was this very request,
        // replayed concurrently, its answer is there now.
        if let Some(replay) = find_replay(&mut *conn, req, &actor).await? {
            return Ok(replay);
        }
        let current = load_dossier(&mut *conn, req).await?.0.version;
        Err(StoreError::Conflict {
            current: Some(current),
        })
    }
}

/// A bind parameter of the one-statement write.
enum Param {
    Text(String),
    Int(i64),
}

/// The next reference number; SQLite keeps a counter row, written under
/// the transaction's lock.
async fn next_sqlite_number(tx: &mut sqlx::Transaction<'_, Any>) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query(
        "update dossier_number set last = last + 1 where singleton = 1 returning last as n",
    )
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    Ok(u64::try_from(n).unwrap_or_default())
}

fn creates(req: &TransitionRequest<'_>) -> bool {
    req.definition
        .action(&req.command.action)
        .is_some_and(|a| a.effect == Effect::Create)
}

/// The person behind the principal (see [`crate::auth::PresentedToken::admit`]).
async fn authenticate<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    principal: &Principal,
) -> Result<Actor, StoreError> {
    match principal {
        Principal::Actor(actor) => Ok(actor.clone()),
        Principal::Token(token) => token
            .admit(super::fetch_token(executor, token.id).await?)
            .map_err(|code| StoreError::Unauthenticated { code }),
    }
}

/// The dossier and the digest of its last event; `NotFound` when absent.
async fn load_dossier<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    req: &TransitionRequest<'_>,
) -> Result<(Dossier, String), StoreError> {
    let row = sqlx::query("select body, last_digest from dossier where dossier_id = $1")
        .bind(req.dossier_id.to_string())
        .fetch_optional(executor)
        .await?
        .ok_or(StoreError::NotFound)?;
    let body: String = row.try_get("body")?;
    Ok((serde_json::from_str(&body)?, row.try_get("last_digest")?))
}

/// The first answer to this request's idempotency key, if it was seen; an
/// error if the key came with another request.
async fn find_replay<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    req: &TransitionRequest<'_>,
    actor: &Actor,
) -> Result<Option<Executed>, StoreError> {
    let Some(key) = &req.idempotency else {
        return Ok(None);
    };
    let row: Option<AnyRow> = sqlx::query(
        "select request_sha256, status, body from idempotency \
         where actor_id = $1 and idempotency_key = $2",
    )
    .bind(actor.id.as_str())
    .bind(key.key.as_str())
    .fetch_optional(executor)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let hash: String = row.try_get("request_sha256")?;
    if hash != key.request_sha256 {
        return Err(StoreError::IdempotencyMismatch);
    }
    let status: i64 = row.try_get("status")?;
    let body: String = row.try_get("body")?;
    Ok(Some(Executed::Replayed {
        status: u16::try_from(status).unwrap_or(200),
        body,
    }))
}

/// Checks the version (before anything else), asks the engine, folds the
/// event and renders the answer.
fn prepare(
    req: &TransitionRequest<'_>,
    actor: &Actor,
    current: Option<(Dossier, String)>,
    number: Option<u64>,
) -> Result<Prepared, StoreError> {
    let (current, previous_digest) = match current {
        Some((d, digest)) => (Some(d), digest),
        None => (None, GENESIS_DIGEST.to_string()),
    };
    if let (Some(d), Some(expected)) = (&current, req.expected_version) {
        if d.version != expected {
            return Err(StoreError::Conflict {
                current: Some(d.version),
            });
        }
    }
    let mut command = req.command.clone();
    if let (Some(new), Some(n)) = (command.new_dossier.as_mut(), number) {
        new.number = n;
    }
    let event = decide(req.definition, current.as_ref(), &command, actor, req.now)
        .map_err(StoreError::Rejected)?;
    let previous_version = current.as_ref().map(|d| d.version);
    let dossier = apply(current, &event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let event_json = serde_json::to_string(&event)?;
    let digest = chain_digest(&previous_digest, &event_json);
    let body = (req.respond)(&dossier, actor);
    Ok(Prepared {
        status: if previous_version.is_none() { 201 } else { 200 },
        dossier,
        previous_version,
        event,
        event_json,
        digest,
        body,
    })
}
