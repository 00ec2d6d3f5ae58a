//! One transition, durably: the idempotency check, the dossier read, the
//! engine's decision, then the event and the projection written together.
//! The event is also listed as pending: its place in the global chain is
//! given just after the commit, by the sealer, so that commits never wait
//! for it.
//!
//! A deposit runs whole in its group's transaction, on the one writer: it
//! takes its reference number per wave and looks for the commune's other
//! dossiers where it is written, so numbers have no gap and two deposits of
//! one commune cannot both pass as the first. A transition on an existing
//! dossier is read and decided outside any transaction, beside the others,
//! then written by the group commit on the condition that the dossier's
//! version is still the one read.
//!
//! The letters an event causes are written with it, on every path. A
//! transition that handles an arrival is run whole where the arrival is
//! read and marked handled with the event: a deposit in its group's
//! transaction as any deposit, another transition in a transaction of its
//! own.

use ami_core::{awaiting, Actor, Definition, Dossier, Event};
use ami_store::transition::{
    creates, deposit_wave, prepare, replayed, Read, Reading, StoredReplay,
};
use ami_store::write::Written;
use ami_store::{
    due_on, list_column, micros, read_number, search_column, to_i64, Executed, Principal,
    StoreError, TransitionRequest,
};
use sqlx::{Executor, Sqlite, Transaction};

use crate::mail::{check_arrival, handle_arrival, write_letters};
use crate::tokens::TokenRow;
use crate::{begin_write_on, present, SqliteStore};

impl SqliteStore {
    /// Runs one transition: idempotency, who may act, version check,
    /// decision, then event and projection written atomically.
    pub(crate) async fn run_transition(
        &self,
        req: TransitionRequest,
    ) -> Result<Executed, StoreError> {
        // A deposit runs whole in the next group's transaction: its number
        // and duplicate check are read where it is written, and the one
        // writer would otherwise commit it alone.
        if creates(&req) {
            return self.commits.deposit(req).await;
        }
        let req = &req;
        // A transition that handles an arrival runs whole in a transaction
        // of its own, where the arrival is read and marked: the group's
        // writes do not touch arrivals.
        if req.arrival.is_none() {
            if let Some(executed) = self.execute_grouped(req).await? {
                return Ok(executed);
            }
        }
        // The dossier moved between the read and the commit, and the request
        // expected no version: it wants its action taken on the dossier as
        // it is. It is read, decided and written again under the writer's
        // lock, as if it had come a moment later.
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
        let (actor, current) = match read_all_at_once(&self.reader, req).await?.judge(req)? {
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
            .ok_or_else(|| StoreError::Other("une transition sans dossier".into()))?;
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
                let mut conn = self.reader.acquire().await?;
                if let Some(replay) = find_replay(&mut *conn, req, &actor).await? {
                    return Ok(Some(replay));
                }
                if req.expected_version.is_none() {
                    return Ok(None);
                }
                let current = load_dossier(&mut *conn, req).await?.version;
                Err(StoreError::Conflict {
                    current: Some(current),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A transition whose dossier moved under the group commit, or that
    /// handles an arrival, run whole in one transaction of its own on the
    /// writer connection.
    #[tracing::instrument(skip_all, fields(dossier.id = %req.dossier_id, action = %req.command.action))]
    async fn execute_in_transaction(
        &self,
        req: &TransitionRequest,
    ) -> Result<Executed, StoreError> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = begin_write_on(&mut conn).await?;
        let executed = run_in_transaction(&mut tx, req).await?;
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
    tx: &mut Transaction<'_, Sqlite>,
    req: &TransitionRequest,
) -> Result<Executed, StoreError> {
    // A replay that commits meanwhile is caught by the idempotency
    // record's key when this one is written (`Duplicate`, run again).
    let (actor, current) = match read_all_at_once(&mut **tx, req).await?.judge(req)? {
        Read::Replay(replay) => return Ok(replay),
        Read::Dossier { actor, current } => (actor, current),
    };
    if let Some(arrival) = req.arrival {
        check_arrival(tx, arrival).await?;
    }
    // The one writer holds the whole database until the commit: the
    // dossier read above cannot move meanwhile.
    let current = if creates(req) {
        None
    } else {
        Some(*current.ok_or(StoreError::NotFound)?)
    };
    let mut deposit = None;
    if let Some(new) = req.command.deposited() {
        let same_commune = same_commune(&mut **tx, &new.code_insee).await?;
        // The wave's counter row, in the transaction, under the one
        // writer's lock that every write waits for anyway. A refused
        // deposit's number goes with its savepoint.
        let number = match deposit_wave(req) {
            Some(wave) => next_reference_number(&mut **tx, wave).await?,
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
        let actor_id = actor.id.as_str();
        let status = i64::from(p.status);
        let at = micros(req.now);
        sqlx::query!(
            "insert into idempotency (actor_id, idempotency_key, request_sha256, status, body, \
               created_at_us) \
             values ($1, $2, $3, $4, $5, $6)",
            actor_id,
            key.key,
            key.request_sha256,
            status,
            p.body,
            at,
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
    tx: &mut Transaction<'_, Sqlite>,
    event: &Event,
    event_json: &str,
    digest: &str,
) -> Result<(), StoreError> {
    let dossier_id = event.dossier_id.to_string();
    let seq = to_i64(event.seq);
    let at = micros(event.at);
    let (action, agency, actor_id) = (
        event.action.as_str(),
        event.actor.agency.as_str(),
        event.actor.id.as_str(),
    );
    let event_id = sqlx::query_scalar!(
        r#"insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, digest)
           values ($1, $2, $3, $4, $5, $6, $7, $8) returning event_id as "event_id!: i64""#,
        dossier_id,
        seq,
        action,
        agency,
        actor_id,
        at,
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
    tx: &mut Transaction<'_, Sqlite>,
    def: &Definition,
    d: &Dossier,
    previous_version: Option<u64>,
    last_digest: &str,
) -> Result<(), StoreError> {
    let id = d.id.to_string();
    let body = serde_json::to_string(d)?;
    let awaiting = list_column(awaiting(def, d).into_iter());
    let due_on = due_on(def, d).map(|day| day.to_string());
    let version = to_i64(d.version);
    let updated_at = micros(d.updated_at);
    let state = d.state.as_str();
    match previous_version {
        None => {
            let wave = i64::from(d.wave);
            let programmes = list_column(d.programmes.iter().map(|p| p.as_str()));
            let search = search_column(d);
            let received_at = micros(d.received_at);
            let (reference, code_insee) = (d.reference.as_str(), d.code_insee.as_str());
            sqlx::query!(
                "insert into dossier (dossier_id, reference, wave, state, version, programmes, \
                   search, awaiting, received_at_us, updated_at_us, last_digest, body, code_insee, \
                   due_on) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                id,
                reference,
                wave,
                state,
                version,
                programmes,
                search,
                awaiting,
                received_at,
                updated_at,
                last_digest,
                body,
                code_insee,
                due_on,
            )
            .execute(&mut **tx)
            .await?;
        }
        Some(previous) => {
            let previous = to_i64(previous);
            let updated = sqlx::query!(
                "update dossier set state = $1, version = $2, updated_at_us = $3, \
                   last_digest = $4, body = $5, awaiting = $6, due_on = $9 \
                 where dossier_id = $7 and version = $8",
                state,
                version,
                updated_at,
                last_digest,
                body,
                awaiting,
                id,
                previous,
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

/// The next reference number of a wave; the wave's counter stays locked
/// (as the whole database) until the end of the transaction.
async fn next_reference_number<'e, E: Executor<'e, Database = Sqlite>>(
    executor: E,
    wave: u8,
) -> Result<u64, StoreError> {
    let wave = i64::from(wave);
    let n = sqlx::query_scalar!(
        r#"insert into reference_counter (wave, last) values ($1, 1)
           on conflict (wave) do update set last = reference_counter.last + 1
           returning last as "last!: i64""#,
        wave
    )
    .fetch_one(executor)
    .await?;
    read_number("reference_counter.last", n)
}

/// References of the campaign's dossiers of a commune (by INSEE code), in
/// reception order: a handful at most in a real campaign; the refusal names
/// ten. Sorted here rather than in SQL: with `order by … limit` the planner
/// may walk the whole reception index looking for a match that is not there.
async fn same_commune<'e, E: Executor<'e, Database = Sqlite>>(
    executor: E,
    code_insee: &str,
) -> Result<Vec<String>, StoreError> {
    let mut found: Vec<(i64, String)> = sqlx::query!(
        "select received_at_us, reference from dossier where code_insee = $1",
        code_insee
    )
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(|r| (r.received_at_us, r.reference))
    .collect();
    found.sort();
    Ok(found.into_iter().take(10).map(|(_, r)| r).collect())
}

/// The dossier, as projected; `NotFound` when absent.
async fn load_dossier<'e, E: Executor<'e, Database = Sqlite>>(
    executor: E,
    req: &TransitionRequest,
) -> Result<Dossier, StoreError> {
    let id = req.dossier_id.to_string();
    let body = sqlx::query_scalar!("select body from dossier where dossier_id = $1", id)
        .fetch_optional(executor)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(serde_json::from_str(&body)?)
}

/// The token, the idempotency record and the dossier in one query (one
/// round trip, one statement for the database to run, instead of three),
/// to be judged by [`Reading::judge`].
async fn read_all_at_once<'e, E: Executor<'e, Database = Sqlite>>(
    executor: E,
    req: &TransitionRequest,
) -> Result<Reading, StoreError> {
    let (token_id, known_actor) = match &req.principal {
        Principal::Token(token) => (Some(token.id.to_string()), None),
        Principal::Actor(actor) => (None, Some(actor.id.to_string())),
    };
    let key = req.idempotency.as_ref().map(|key| key.key.as_str());
    let dossier_id = req.dossier_id.to_string();
    let row = sqlx::query!(
        r#"select t.token_id as "token_id?: String", t.person_id as "person_id?: String",
             t.name as "name?: String", t.agency as "agency?: String", t.role as "role?: String",
             t.secret_sha256 as "secret_sha256?: String",
             t.created_at_us as "created_at_us?: i64", t.revoked_at_us as "revoked_at_us?: i64",
             i.request_sha256 as "request_sha256?: String", i.status as "replay_status?: i64",
             i.body as "replay_body?: String",
             d.body as "body?: String", d.last_digest as "last_digest?: String"
           from (select cast($1 as text) as token_id, cast($2 as text) as known_actor,
             cast($3 as text) as idempotency_key, cast($4 as text) as dossier_id) k
           left join api_token t on t.token_id = k.token_id
           left join idempotency i on i.actor_id = coalesce(t.person_id, k.known_actor)
             and i.idempotency_key = k.idempotency_key
           left join dossier d on d.dossier_id = k.dossier_id"#,
        token_id,
        known_actor,
        key,
        dossier_id,
    )
    .fetch_one(executor)
    .await?;
    let token = match row.token_id {
        Some(token_id) => Some((
            TokenRow {
                token_id,
                person_id: present("api_token.person_id", row.person_id)?,
                name: present("api_token.name", row.name)?,
                agency: present("api_token.agency", row.agency)?,
                role: present("api_token.role", row.role)?,
                created_at_us: present("api_token.created_at_us", row.created_at_us)?,
                revoked_at_us: row.revoked_at_us,
            }
            .record()?,
            present("api_token.secret_sha256", row.secret_sha256)?,
        )),
        None => None,
    };
    let replay = match row.request_sha256 {
        Some(request_sha256) => Some(StoredReplay {
            request_sha256,
            status: present("idempotency.status", row.replay_status)?,
            body: present("idempotency.body", row.replay_body)?,
        }),
        None => None,
    };
    let dossier = match row.body {
        Some(body) => Some((body, present("dossier.last_digest", row.last_digest)?)),
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
async fn find_replay<'e, E: Executor<'e, Database = Sqlite>>(
    executor: E,
    req: &TransitionRequest,
    actor: &Actor,
) -> Result<Option<Executed>, StoreError> {
    let Some(key) = &req.idempotency else {
        return Ok(None);
    };
    let actor_id = actor.id.as_str();
    let stored = sqlx::query_as!(
        StoredReplay,
        "select request_sha256, status, body from idempotency \
         where actor_id = $1 and idempotency_key = $2",
        actor_id,
        key.key,
    )
    .fetch_optional(executor)
    .await?;
    replayed(req, stored)
}
