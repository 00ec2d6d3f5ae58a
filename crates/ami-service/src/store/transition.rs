//! One transition, durably: the idempotency check, the dossier read, the
//! engine's decision, then the event and the projection written together.
//! The event is also listed as pending: its place in the global chain is
//! given just after the commit, by [`Store::seal_pending`], so that commits
//! of different dossiers never wait for each other.
//!
//! A deposit runs whole in one transaction (its own on PostgreSQL, its
//! group's on SQLite): it takes its reference number per wave and looks
//! for the commune's other dossiers in that transaction, so numbers have
//! no gap (deposits of one wave wait for one another's commit) and two
//! deposits of one commune cannot both pass as the first. A transition on an existing dossier is read and decided
//! outside any transaction, beside the others, then written by the group
//! commit ([`super::group_commit`]) on the condition that the dossier's
//! version is still the one read.

use ami_core::{
    apply, authorize, awaiting, decide, may_take, Actor, Definition, Dossier, Effect, Event,
    Placement, Target,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use super::rows::read_number;
use super::write::{Remembered, Write, Written};
use super::{
    chain_digest, list_column, micros, to_i64, Backend, Executed, Principal, Store, StoreError,
    TransitionRequest, GENESIS_DIGEST,
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
    /// Runs one transition: idempotency, who may act, version check,
    /// decision, then event and projection written atomically.
    pub async fn execute(&self, req: TransitionRequest) -> Result<Executed, StoreError> {
        // On SQLite a deposit runs whole in the next group's transaction:
        // its number and duplicate check are read where it is written, and
        // the one writer would otherwise commit it alone.
        if self.backend == Backend::Sqlite && creates(&req) {
            return self.commits.deposit(req).await;
        }
        let req = &req;
        if !creates(req) {
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
        let (actor, current) = match read_all_at_once(&self.reader, req).await? {
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
        let d = &p.dossier;
        let e = &p.event;
        let write = Write {
            dossier_id: d.id.to_string(),
            previous_version: to_i64(previous_version),
            state: d.state.to_string(),
            version: to_i64(d.version),
            updated_at_us: micros(d.updated_at),
            digest: p.digest.clone(),
            body: serde_json::to_string(d)?,
            awaiting: list_column(awaiting(&req.definition, d).into_iter()),
            seq: to_i64(e.seq),
            action: e.action.to_string(),
            agency: e.actor.agency.to_string(),
            actor_id: e.actor.id.to_string(),
            at_us: micros(e.at),
            event: p.event_json.clone(),
            idempotency: req.idempotency.as_ref().map(|key| Remembered {
                actor_id: actor.id.to_string(),
                key: key.key.clone(),
                request_sha256: key.request_sha256.clone(),
                status: i64::from(p.status),
                body: p.body.clone(),
                created_at_us: micros(req.now),
            }),
        };
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
                let current = load_dossier(&mut *conn, req).await?.0.version;
                Err(StoreError::Conflict {
                    current: Some(current),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A transition run whole in one transaction of its own: a deposit on
    /// PostgreSQL, or a transition whose dossier moved under the group
    /// commit (read again under the dossier's lock).
    #[tracing::instrument(skip_all, fields(dossier.id = %req.dossier_id, action = %req.command.action))]
    async fn execute_in_transaction(
        &self,
        req: &TransitionRequest,
    ) -> Result<Executed, StoreError> {
        let mut conn = self.writer.acquire().await?;
        if let (Backend::Postgres, Some(wave)) = (self.backend, deposit_wave(req)) {
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
        let mut tx = self.begin_write_on(&mut conn).await?;
        let executed = match run_in_transaction(self.backend, &mut tx, req).await {
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

/// The wave a deposit falls in, if it is a deposit inside a wave.
fn deposit_wave(req: &TransitionRequest) -> Option<u8> {
    req.command.deposited().and_then(|new| {
        match req.definition.campaign().placement(new.received_at) {
            Placement::Wave(wave) => Some(wave),
            _ => None,
        }
    })
}

/// Runs a transition whole inside `tx`: who acts, idempotency, the read,
/// the decision and the writes. Nothing is committed here; on an error the
/// caller rolls back what this wrote.
pub(super) async fn run_in_transaction(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, Any>,
    req: &TransitionRequest,
) -> Result<Executed, StoreError> {
    // A replay that commits meanwhile is caught by the idempotency
    // record's key when this one is written (`Duplicate`, run again).
    let actor = match read_all_at_once(&mut **tx, req).await? {
        Read::Replay(replay) => return Ok(replay),
        Read::Dossier { actor, .. } => actor,
    };
    // A deposit's number: on SQLite from the wave's counter row, in the
    // transaction, under the one writer's lock that every write waits
    // for anyway; on PostgreSQL from the wave's sequence, which never
    // waits (deposits of one wave do not queue behind one another's
    // commit), taken once the engine has accepted the deposit under
    // its commune's lock. A refused deposit takes no number; on
    // PostgreSQL a deposit that fails after taking one (the database
    // going away mid-write) leaves a gap.
    let wave = deposit_wave(req);
    let current = if creates(req) {
        None
    } else {
        // Locked until the commit on PostgreSQL (SQLite's one writer
        // holds the whole database): nothing moves it meanwhile.
        let lock = match backend {
            Backend::Postgres => " for update",
            Backend::Sqlite => "",
        };
        Some(load_dossier_with(&mut **tx, req, lock).await?)
    };
    let mut deposit = None;
    if let Some(new) = req.command.deposited() {
        // Deposits of one commune one at a time on PostgreSQL (SQLite
        // has one writer), so that the duplicate check sees every
        // earlier one; deposits of other communes do not wait.
        if backend == Backend::Postgres {
            sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("ami:commune:{}", new.code_insee))
                .execute(&mut **tx)
                .await?;
        }
        let same_commune = same_commune(&mut **tx, &new.code_insee).await?;
        let number = match (backend, wave) {
            (Backend::Sqlite, Some(wave)) => next_reference_number(&mut **tx, wave).await?,
            (Backend::Postgres, Some(wave)) => {
                prepare(req, &actor, None, Some((0, same_commune.clone())))?;
                let n: i64 = sqlx::query("select nextval($1) as n")
                    .bind(wave_sequence(wave))
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("n")?;
                read_number(&wave_sequence(wave), n)?
            }
            // The engine refuses it; no number is taken.
            (_, None) => 0,
        };
        deposit = Some((number, same_commune));
    }
    let p = prepare(req, &actor, current, deposit)?;
    append_event(tx, &p.event, &p.event_json, &p.digest).await?;
    super::write_projection(
        tx,
        &req.definition,
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
pub(super) async fn append_event(
    tx: &mut sqlx::Transaction<'_, Any>,
    event: &Event,
    event_json: &str,
    digest: &str,
) -> Result<(), StoreError> {
    let event_id: i64 = sqlx::query(
        "insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, digest) \
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning event_id",
    )
    .bind(event.dossier_id.to_string())
    .bind(to_i64(event.seq))
    .bind(event.action.as_str())
    .bind(event.actor.agency.as_str())
    .bind(event.actor.id.as_str())
    .bind(micros(event.at))
    .bind(event_json)
    .bind(digest)
    .fetch_one(&mut **tx)
    .await?
    .try_get("event_id")?;
    sqlx::query("insert into journal_pending (event_id) values ($1)")
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The next reference number of a wave on SQLite; the wave's counter stays
/// locked until the end of the transaction.
async fn next_reference_number<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    wave: u8,
) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query(
        "insert into reference_counter (wave, last) values ($1, 1) \
         on conflict (wave) do update set last = reference_counter.last + 1 returning last",
    )
    .bind(i64::from(wave))
    .fetch_one(executor)
    .await?
    .try_get("last")?;
    read_number("reference_counter.last", n)
}

/// The PostgreSQL sequence of a wave's reference numbers.
fn wave_sequence(wave: u8) -> String {
    format!("reference_wave_{wave}")
}

/// Creates the wave's sequence the first time a deposit falls in it (the
/// definition, not the schema, knows the waves). Outside the deposit's
/// transaction, which an error would abort; two instances creating it at
/// once are fine.
async fn ensure_wave_sequence(conn: &mut sqlx::AnyConnection, wave: u8) -> Result<(), StoreError> {
    let present: bool = sqlx::query("select to_regclass($1) is not null as present")
        .bind(wave_sequence(wave))
        .fetch_one(&mut *conn)
        .await?
        .try_get("present")?;
    if present {
        return Ok(());
    }
    match sqlx::query(&format!(
        "create sequence if not exists {}",
        wave_sequence(wave)
    ))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)
    {
        Ok(_) | Err(StoreError::Duplicate) => Ok(()),
        Err(e) => Err(e),
    }
}

/// References of the campaign's dossiers of a commune (by INSEE code), in
/// reception order: a handful at most in a real campaign; the refusal names
/// ten. Sorted here rather than in SQL: with `order by … limit` the planner
/// may walk the whole reception index looking for a match that is not there.
async fn same_commune<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    code_insee: &str,
) -> Result<Vec<String>, StoreError> {
    let mut found: Vec<(i64, String)> =
        sqlx::query("select received_at_us, reference from dossier where code_insee = $1")
            .bind(code_insee)
            .fetch_all(executor)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("received_at_us")?, r.try_get("reference")?)))
            .collect::<Result<_, StoreError>>()?;
    found.sort();
    Ok(found.into_iter().take(10).map(|(_, r)| r).collect())
}

fn creates(req: &TransitionRequest) -> bool {
    req.definition
        .action(&req.command.action)
        .is_some_and(|a| a.effect == Effect::Create)
}

/// The dossier and the digest of its last event; `NotFound` when absent.
async fn load_dossier<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    req: &TransitionRequest,
) -> Result<(Dossier, String), StoreError> {
    load_dossier_with(executor, req, "").await
}

/// [`load_dossier`], the query ending with `suffix` (a row lock).
async fn load_dossier_with<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    req: &TransitionRequest,
    suffix: &str,
) -> Result<(Dossier, String), StoreError> {
    let row = sqlx::query(&format!(
        "select body, last_digest from dossier where dossier_id = $1{suffix}"
    ))
    .bind(req.dossier_id.to_string())
    .fetch_optional(executor)
    .await?
    .ok_or(StoreError::NotFound)?;
    let body: String = row.try_get("body")?;
    Ok((serde_json::from_str(&body)?, row.try_get("last_digest")?))
}

/// What a transition on an existing dossier reads before it is decided.
enum Read {
    /// The idempotency key was seen with this request: its first answer.
    Replay(Executed),
    /// Who acts, and the dossier with the digest of its last event (none
    /// for a deposit, or a dossier that does not exist).
    Dossier {
        actor: Actor,
        current: Option<Box<(Dossier, String)>>,
    },
}

/// The token, the idempotency record and the dossier in one query (one
/// round trip, one statement for the database to run, instead of three),
/// checked in the order of the separate reads: who acts, then a replay,
/// then whether the dossier exists.
async fn read_all_at_once<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    req: &TransitionRequest,
) -> Result<Read, StoreError> {
    let (token_id, known_actor) = match &req.principal {
        Principal::Token(token) => (Some(token.id.to_string()), None),
        Principal::Actor(actor) => (None, Some(actor.id.to_string())),
    };
    let row = sqlx::query(
        "select t.token_id, t.person_id, t.name, t.agency, t.role, t.secret_sha256, \
           t.created_at_us, t.revoked_at_us, \
           i.request_sha256, i.status as replay_status, i.body as replay_body, \
           d.body, d.last_digest \
         from (select cast($1 as text) as token_id, cast($2 as text) as known_actor, \
           cast($3 as text) as idempotency_key, cast($4 as text) as dossier_id) k \
         left join api_token t on t.token_id = k.token_id \
         left join idempotency i on i.actor_id = coalesce(t.person_id, k.known_actor) \
           and i.idempotency_key = k.idempotency_key \
         left join dossier d on d.dossier_id = k.dossier_id",
    )
    .bind(token_id)
    .bind(known_actor)
    .bind(req.idempotency.as_ref().map(|key| key.key.clone()))
    .bind(req.dossier_id.to_string())
    .fetch_one(executor)
    .await?;
    let actor = match &req.principal {
        Principal::Actor(actor) => actor.clone(),
        Principal::Token(token) => {
            let stored = match row.try_get::<Option<String>, _>("token_id")? {
                Some(_) => Some((super::token_record(&row)?, row.try_get("secret_sha256")?)),
                None => None,
            };
            token
                .admit(&req.definition, stored)
                .map_err(|code| StoreError::Unauthenticated { code })?
        }
    };
    if let Some(key) = &req.idempotency {
        if let Some(hash) = row.try_get::<Option<String>, _>("request_sha256")? {
            if hash != key.request_sha256 {
                return Err(StoreError::IdempotencyMismatch);
            }
            return Ok(Read::Replay(Executed::Replayed {
                status: read_number("idempotency.status", row.try_get("replay_status")?)?,
                body: row.try_get("replay_body")?,
            }));
        }
    }
    let current = match row.try_get::<Option<String>, _>("body")? {
        Some(body) => Some(Box::new((
            serde_json::from_str::<Dossier>(&body)?,
            row.try_get::<String, _>("last_digest")?,
        ))),
        None => None,
    };
    Ok(Read::Dossier { actor, current })
}

/// The first answer to this request's idempotency key, if it was seen; an
/// error if the key came with another request.
async fn find_replay<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    req: &TransitionRequest,
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
        status: read_number("idempotency.status", status)?,
        body,
    }))
}

/// Checks who may act (a person of another agency learns nothing about the
/// dossier's version), then the version, asks the engine, folds the event
/// and renders the answer. `deposit` is the reference number and the
/// commune's other dossiers, for a creation.
fn prepare(
    req: &TransitionRequest,
    actor: &Actor,
    current: Option<(Dossier, String)>,
    deposit: Option<(u64, Vec<String>)>,
) -> Result<Prepared, StoreError> {
    let def: &Definition = &req.definition;
    let refused = |rejection: ami_core::Rejection| StoreError::Rejected {
        explanation: rejection.explain(def),
        rejection,
    };
    // Need to know: a dossier outside the caller's programmes does not exist
    // for them, whatever they ask of it.
    if let Some((d, _)) = &current {
        if !def.may_read(&actor.agency, &d.programmes) {
            return Err(StoreError::NotFound);
        }
    }
    authorize(def, &req.command.action, actor).map_err(refused)?;
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
    // Who may act and from where, before what the command carries: the
    // engine's order of refusals.
    if let Some(d) = &current {
        may_take(def, d, &req.command.action, actor).map_err(refused)?;
    }
    let command = req.command.to_command(def).map_err(refused)?;
    let target = match (&current, &deposit) {
        (Some(d), _) => Target::Dossier(d),
        (None, Some((number, same_commune))) => Target::New {
            number: *number,
            same_commune,
        },
        (None, None) => Target::New {
            number: 0,
            same_commune: &[],
        },
    };
    let event = decide(def, target, &command, actor, req.now).map_err(refused)?;
    let previous_version = current.as_ref().map(|d| d.version);
    let dossier = apply(current, &event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // The canonical form (RFC 8785) is what the digest covers, so that a
    // client in any language can recompute it from the event it reads.
    let event_json = serde_jcs::to_string(&event).map_err(|e| StoreError::Other(e.to_string()))?;
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
