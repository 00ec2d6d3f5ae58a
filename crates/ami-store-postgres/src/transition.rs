//! One transition, durably. A transition on an existing dossier is read
//! and decided outside any transaction, beside the others, then written by
//! the group commit on the condition that the dossier's version is still
//! the one read. A deposit runs whole in a transaction of its own: it takes
//! its reference number from its wave's sequence (which never makes it wait
//! for another deposit's commit) and looks for the commune's other dossiers
//! under the commune's advisory lock, so two deposits of one commune cannot
//! both pass as the first. Events get their place in the global chain just
//! after the commit ([`ami_store::Store::seal_pending`]).
//!
//! The letters an event causes are written with it, on every path (the
//! group's statement, a transaction of its own, a committee's). A
//! transition that handles an arrival runs in a transaction of its own,
//! which locks the arrival before anything else and marks it handled with
//! the event.

use ami_core::{awaiting, Definition, Dossier, Event};
use ami_store::transition::{
    creates, deposit_wave, prepare, replayed, Read, Reading, StoredReplay,
};
use ami_store::write::Written;
use ami_store::{
    due_on, list_column, read_number, search_column, to_i64, Executed, Principal, StoreError,
    TokenRecord, TransitionRequest,
};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, Postgres, Transaction};

use crate::mail::{handle_arrival, lock_arrival, write_letters};
use crate::{present, PgStore};

impl PgStore {
    pub(crate) async fn run_transition(
        &self,
        req: TransitionRequest,
    ) -> Result<Executed, StoreError> {
        let req = &req;
        // A transition that handles an arrival runs whole in a transaction
        // of its own, which locks the arrival first: the group's one
        // statement does not write arrivals.
        if !creates(req) && req.arrival.is_none() {
            if let Some(executed) = self.execute_grouped(req).await? {
                return Ok(executed);
            }
            // The dossier moved between the read and the commit, and the
            // request expected no version: it wants its action taken on
            // the dossier as it is. It is read, decided and written again
            // under the dossier's lock, as if it had come a moment later.
        }
        match self.execute_in_transaction(req).await {
            // Two requests with the same key raced and the other committed
            // first: its answer is now there to replay.
            Err(StoreError::Duplicate) if req.idempotency.is_some() => {
                self.execute_in_transaction(req).await
            }
            Err(StoreError::Duplicate) => Err(StoreError::Conflict { current: None }),
            other => other,
        }
    }

    /// A transition on an existing dossier: read and decided here, beside
    /// the other requests, then written by the group commit with the
    /// writes that are ready at the same time. `None` when the dossier
    /// moved after the read and no version was expected: to be run again.
    #[tracing::instrument(skip_all, fields(dossier.id = %req.dossier_id, action = %req.command.action))]
    async fn execute_grouped(
        &self,
        req: &TransitionRequest,
    ) -> Result<Option<Executed>, StoreError> {
        let (actor, current) = match read_all_at_once(&self.pool, req).await?.judge(req)? {
            Read::Replay(replay) => return Ok(Some(replay)),
            Read::Dossier {
                actor,
                current: Some(current),
            } => (actor, *current),
            Read::Dossier { current: None, .. } => return Err(StoreError::NotFound),
        };
        let p = prepare(req, &actor, Some(current), None)?;
        let previous_version = p
            .previous_version
            .ok_or_else(|| StoreError::Other("a transition without a dossier".into()))?;
        let write = p.write(req, &actor, previous_version)?;
        match self.commits.write(write).await {
            Ok(Written::Committed) => Ok(Some(Executed::Applied {
                dossier: Box::new(p.dossier),
                body: p.body,
            })),
            // Moved since the read, or the idempotency key taken meanwhile:
            // if by this very request, replayed concurrently, its answer is
            // there now.
            Ok(Written::VersionMoved) | Err(StoreError::Duplicate) => {
                let mut conn = self.pool.acquire().await?;
                if let Some(replay) = find_replay(&mut *conn, req, actor.id.as_str()).await? {
                    return Ok(Some(replay));
                }
                if req.expected_version.is_none() {
                    return Ok(None);
                }
                let current = load_dossier(&mut *conn, req).await?.0.version;
                Err(StoreError::Conflict {
                    current: Some(current),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A transition run whole in one transaction of its own: a deposit, or
    /// a transition whose dossier moved under the group commit (read again
    /// under the dossier's lock).
    #[tracing::instrument(skip_all, fields(dossier.id = %req.dossier_id, action = %req.command.action))]
    async fn execute_in_transaction(
        &self,
        req: &TransitionRequest,
    ) -> Result<Executed, StoreError> {
        let mut conn = self.pool.acquire().await?;
        if let Some(wave) = deposit_wave(req) {
            // Sequences are created, never dropped: once seen, known.
            let known = |w| {
                self.wave_sequences
                    .lock()
                    .map(|seen| seen.contains(&w))
                    .unwrap_or(false)
            };
            if !known(wave) {
                ensure_wave_sequence(&mut conn, wave).await?;
                if let Ok(mut seen) = self.wave_sequences.lock() {
                    seen.insert(wave);
                }
            }
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let executed = match run_in_transaction(&mut tx, req).await {
            Ok(executed) => executed,
            Err(e) => {
                // A database restored without its sequences: look again
                // next time rather than fail every deposit of the wave.
                if let (Some(wave), Ok(mut seen)) = (deposit_wave(req), self.wave_sequences.lock())
                {
                    seen.remove(&wave);
                }
                return Err(e);
            }
        };
        // A replay wrote nothing: the transaction ends without a commit.
        if matches!(executed, Executed::Applied { .. }) {
            tx.commit().await?;
        }
        Ok(executed)
    }
}

/// Runs a transition whole inside `tx`: who acts, idempotency, the read,
/// the decision and the writes. Nothing is committed here; on an error the
/// caller rolls back what this wrote.
pub(crate) async fn run_in_transaction(
    tx: &mut Transaction<'_, Postgres>,
    req: &TransitionRequest,
) -> Result<Executed, StoreError> {
    // A replay that commits meanwhile is caught by the idempotency
    // record's key when this one is written (`Duplicate`, run again).
    let actor = match read_all_at_once(&mut **tx, req).await?.judge(req)? {
        Read::Replay(replay) => return Ok(replay),
        Read::Dossier { actor, .. } => actor,
    };
    if let Some(arrival) = req.arrival {
        lock_arrival(tx, arrival).await?;
    }
    // A deposit's number comes from the wave's sequence, which never waits
    // (deposits of one wave do not queue behind one another's commit),
    // taken once the engine has accepted the deposit under its commune's
    // lock. A refused deposit takes no number; a deposit that fails after
    // taking one (the database going away mid-write) leaves a gap.
    let wave = deposit_wave(req);
    let current = if creates(req) {
        None
    } else {
        // Locked until the commit: nothing moves it meanwhile.
        Some(load_dossier_for_update(&mut **tx, req).await?)
    };
    let mut deposit = None;
    if let Some(new) = req.command.deposited() {
        // Deposits of one commune one at a time, so that the duplicate
        // check sees every earlier one; deposits of other communes do not
        // wait.
        sqlx::query_scalar!(
            r#"select 1 as "locked!" from pg_advisory_xact_lock(hashtextextended($1, 0))"#,
            format!("ami:commune:{}", new.code_insee)
        )
        .fetch_one(&mut **tx)
        .await?;
        let same_commune = same_commune(&mut **tx, &new.code_insee).await?;
        let number = match wave {
            Some(wave) => {
                prepare(req, &actor, None, Some((0, same_commune.clone())))?;
                let n = sqlx::query_scalar!(
                    r#"select nextval($1::text::regclass) as "n!""#,
                    wave_sequence(wave)
                )
                .fetch_one(&mut **tx)
                .await?;
                read_number(&wave_sequence(wave), n)?
            }
            // The engine refuses it; no number is taken.
            None => 0,
        };
        deposit = Some((number, same_commune));
    }
    let p = prepare(req, &actor, current, deposit)?;
    append_event(tx, &p.event, &p.event_json, &p.digest).await?;
    write_projection(
        tx,
        &req.definition,
        &p.dossier,
        p.previous_version,
        &p.digest,
    )
    .await?;
    write_letters(tx, &p.letters).await?;
    if let Some(arrival) = req.arrival {
        handle_arrival(tx, req, arrival, &actor, p.dossier.id, p.event.seq).await?;
    }
    if let Some(key) = &req.idempotency {
        sqlx::query!(
            "insert into idempotency (actor_id, idempotency_key, request_sha256, status, body, \
             created_at) values ($1, $2, $3, $4, $5, $6)",
            actor.id.as_str(),
            key.key.as_str(),
            key.request_sha256.as_str(),
            i64::from(p.status),
            p.body,
            req.now,
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(Executed::Applied {
        dossier: Box::new(p.dossier),
        body: p.body,
    })
}

/// Appends an event to the journal, to be given its place in the global
/// chain by the sealer after the commit.
pub(crate) async fn append_event(
    tx: &mut Transaction<'_, Postgres>,
    event: &Event,
    event_json: &str,
    digest: &str,
) -> Result<(), StoreError> {
    let event_id = sqlx::query_scalar!(
        "insert into dossier_event (dossier_id, seq, action, agency, actor_id, occurred_at, \
         body, digest) values ($1, $2, $3, $4, $5, $6, $7, $8) returning event_id",
        event.dossier_id.0,
        to_i64(event.seq),
        event.action.as_str(),
        event.actor.agency.as_str(),
        event.actor.id.as_str(),
        event.at,
        event_json,
        digest,
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into journal_pending (event_id) values ($1)",
        event_id
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts (`previous_version` = None) or updates the projection of a
/// dossier, the update only where the version is still the one read.
pub(crate) async fn write_projection(
    tx: &mut Transaction<'_, Postgres>,
    def: &Definition,
    d: &Dossier,
    previous_version: Option<u64>,
    last_digest: &str,
) -> Result<(), StoreError> {
    // Typed as jsonb by PostgreSQL; `as _` in the binds below lets the
    // macro take the dossier serialized by `Json` (it expects a `Value`).
    let body = Json(d);
    let awaiting = list_column(awaiting(def, d).into_iter());
    let due_on = due_on(def, d);
    match previous_version {
        None => {
            sqlx::query!(
                "insert into dossier (dossier_id, reference, wave, state, version, programmes, \
                 search, awaiting, received_at, updated_at, last_digest, body, code_insee, due_on) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                d.id.0,
                d.reference.as_str(),
                i64::from(d.wave),
                d.state.as_str(),
                to_i64(d.version),
                list_column(d.programmes.iter().map(|p| p.as_str())),
                search_column(d),
                awaiting,
                d.received_at,
                d.updated_at,
                last_digest,
                body as _,
                d.code_insee.as_str(),
                due_on,
            )
            .execute(&mut **tx)
            .await?;
        }
        Some(previous) => {
            let updated = sqlx::query!(
                "update dossier set state = $1, version = $2, updated_at = $3, \
                 last_digest = $4, body = $5, awaiting = $6, due_on = $9 \
                 where dossier_id = $7 and version = $8",
                d.state.as_str(),
                to_i64(d.version),
                d.updated_at,
                last_digest,
                body as _,
                awaiting,
                d.id.0,
                to_i64(previous),
                due_on,
            )
            .execute(&mut **tx)
            .await?;
            if updated.rows_affected() != 1 {
                return Err(StoreError::Conflict { current: None });
            }
        }
    }
    Ok(())
}

/// The PostgreSQL sequence of a wave's reference numbers.
fn wave_sequence(wave: u8) -> String {
    format!("reference_wave_{wave}")
}

/// Creates the wave's sequence the first time a deposit falls in it (the
/// definition, not the schema, knows the waves). Outside the deposit's
/// transaction, which an error would abort; two instances creating it at
/// once are fine.
async fn ensure_wave_sequence(conn: &mut PgConnection, wave: u8) -> Result<(), StoreError> {
    let present = sqlx::query_scalar!(
        r#"select to_regclass($1::text) is not null as "present!""#,
        wave_sequence(wave)
    )
    .fetch_one(&mut *conn)
    .await?;
    if present {
        return Ok(());
    }
    // Dynamic: a sequence's name cannot be a bound value. The name is made
    // of a number only.
    let mut create = sqlx::QueryBuilder::<Postgres>::new(format!(
        "create sequence if not exists {}",
        wave_sequence(wave)
    ));
    match create.build().execute(&mut *conn).await {
        Ok(_) => Ok(()),
        // Another deposit created it meanwhile: `if not exists` looks
        // before it creates, so the loser of the race is told either that
        // the relation exists (42P07) or that its catalogue row does
        // (23505).
        Err(sqlx::Error::Database(e))
            if e.is_unique_violation() || e.code().as_deref() == Some("42P07") =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// References of the campaign's dossiers of a commune (by INSEE code), in
/// reception order: a handful at most in a real campaign; the refusal names
/// ten. Sorted here rather than in SQL: with `order by … limit` the planner
/// may walk the whole reception index looking for a match that is not there.
async fn same_commune<'e, E: PgExecutor<'e>>(
    executor: E,
    code_insee: &str,
) -> Result<Vec<String>, StoreError> {
    let mut found: Vec<(DateTime<Utc>, String)> = sqlx::query!(
        "select received_at, reference from dossier where code_insee = $1",
        code_insee
    )
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(|r| (r.received_at, r.reference))
    .collect();
    found.sort();
    Ok(found.into_iter().take(10).map(|(_, r)| r).collect())
}

/// The dossier and the digest of its last event; `NotFound` when absent.
async fn load_dossier<'e, E: PgExecutor<'e>>(
    executor: E,
    req: &TransitionRequest,
) -> Result<(Dossier, String), StoreError> {
    let row = sqlx::query!(
        r#"select body as "body: Json<Dossier>", last_digest from dossier where dossier_id = $1"#,
        req.dossier_id.0
    )
    .fetch_optional(executor)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok((row.body.0, row.last_digest))
}

/// [`load_dossier`], the row locked until the end of the transaction.
async fn load_dossier_for_update<'e, E: PgExecutor<'e>>(
    executor: E,
    req: &TransitionRequest,
) -> Result<(Dossier, String), StoreError> {
    let row = sqlx::query!(
        r#"select body as "body: Json<Dossier>", last_digest from dossier
           where dossier_id = $1 for update"#,
        req.dossier_id.0
    )
    .fetch_optional(executor)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok((row.body.0, row.last_digest))
}

/// The token, the idempotency record and the dossier in one query (one
/// round trip, one statement for the database to run, instead of three).
async fn read_all_at_once<'e, E: PgExecutor<'e>>(
    executor: E,
    req: &TransitionRequest,
) -> Result<Reading, StoreError> {
    let (token_id, known_actor) = match &req.principal {
        Principal::Token(token) => (Some(token.id), None),
        Principal::Actor(actor) => (None, Some(actor.id.to_string())),
    };
    let row = sqlx::query!(
        r#"select t.token_id as "token_id?", t.person_id as "person_id?", t.name as "name?",
             t.agency as "agency?", t.role as "role?", t.secret_sha256 as "secret_sha256?",
             t.created_at as "created_at?", t.revoked_at as "revoked_at?",
             i.request_sha256 as "request_sha256?", i.status as "replay_status?",
             i.body as "replay_body?", d.body::text as "body?", d.last_digest as "last_digest?"
           from (select cast($1 as uuid) as token_id, cast($2 as text) as known_actor,
             cast($3 as text) as idempotency_key, cast($4 as uuid) as dossier_id) k
           left join api_token t on t.token_id = k.token_id
           left join idempotency i on i.actor_id = coalesce(t.person_id, k.known_actor)
             and i.idempotency_key = k.idempotency_key
           left join dossier d on d.dossier_id = k.dossier_id"#,
        token_id,
        known_actor,
        req.idempotency.as_ref().map(|key| key.key.clone()),
        req.dossier_id.0,
    )
    .fetch_one(executor)
    .await?;
    let token = match row.token_id {
        Some(id) => Some((
            TokenRecord {
                id,
                person_id: present(row.person_id, "api_token.person_id")?,
                name: present(row.name, "api_token.name")?,
                agency: present(row.agency, "api_token.agency")?,
                role: present(row.role, "api_token.role")?,
                created_at: present(row.created_at, "api_token.created_at")?,
                revoked_at: row.revoked_at,
            },
            present(row.secret_sha256, "api_token.secret_sha256")?,
        )),
        None => None,
    };
    let replay = match row.request_sha256 {
        Some(request_sha256) => Some(StoredReplay {
            request_sha256,
            status: present(row.replay_status, "idempotency.status")?,
            body: present(row.replay_body, "idempotency.body")?,
        }),
        None => None,
    };
    let dossier = match row.body {
        Some(body) => Some((body, present(row.last_digest, "dossier.last_digest")?)),
        None => None,
    };
    Ok(Reading {
        token,
        replay,
        dossier,
    })
}

/// The first answer to this request's idempotency key, if it was seen; an
/// error if the key came with another request.
async fn find_replay<'e, E: PgExecutor<'e>>(
    executor: E,
    req: &TransitionRequest,
    actor_id: &str,
) -> Result<Option<Executed>, StoreError> {
    let Some(key) = &req.idempotency else {
        return Ok(None);
    };
    let stored = sqlx::query_as!(
        StoredReplay,
        "select request_sha256, status, body from idempotency \
         where actor_id = $1 and idempotency_key = $2",
        actor_id,
        key.key.as_str(),
    )
    .fetch_optional(executor)
    .await?;
    replayed(req, stored)
}
