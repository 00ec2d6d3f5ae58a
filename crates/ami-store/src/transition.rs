//! The engine's half of a transition, the same whatever the database: who
//! acts, the replay of an idempotency key, the version check, the decision,
//! the fold, the digest and the answer; and what a decided transition
//! writes ([`Write`]). A backend reads what this needs and writes what it
//! returns.

use ami_core::{
    apply, authorize, awaiting, decide, may_take, Actor, Definition, Dossier, Effect, Event,
    Placement, Target,
};

use crate::mail::{letters, Handling, Letter};
use crate::write::{Remembered, Write};
use crate::{
    chain_digest, due_on, list_column, micros, read_number, to_i64, Executed, Principal,
    StoreError, TokenRecord, TransitionRequest, GENESIS_DIGEST,
};

/// Everything a transition writes, computed before any write.
pub struct Prepared {
    pub dossier: Dossier,
    pub previous_version: Option<u64>,
    pub event: Event,
    /// The event in canonical JSON (RFC 8785): what the digest covers.
    pub event_json: String,
    pub digest: String,
    /// The answer rendered for the acting person.
    pub body: String,
    pub status: u16,
    /// The letters the event causes ([`letters`]), written with it.
    pub letters: Vec<Letter>,
}

/// A creation (a deposit)?
pub fn creates(req: &TransitionRequest) -> bool {
    req.definition
        .action(&req.command.action)
        .is_some_and(|a| a.effect == Effect::Create)
}

/// How a transition handles the arrival it names: a deposit makes a
/// dossier of it, any other action attaches it to one.
pub fn handling(req: &TransitionRequest) -> Handling {
    if creates(req) {
        Handling::Depot
    } else {
        Handling::Rattachement
    }
}

/// The wave a deposit falls in, if it is a deposit inside a wave.
pub fn deposit_wave(req: &TransitionRequest) -> Option<u8> {
    req.command.deposited().and_then(|new| {
        match req.definition.campaign().placement(new.received_at) {
            Placement::Wave(wave) => Some(wave),
            _ => None,
        }
    })
}

/// A recorded first answer to an idempotency key, as stored.
pub struct StoredReplay {
    pub request_sha256: String,
    pub status: i64,
    pub body: String,
}

/// What a transition reads before it is decided, in one go: the presented
/// token's row (with the SHA-256 of its secret), the idempotency record of
/// the request's key, and the dossier's projection (JSON) with the digest
/// of its last event. Each `None` when absent.
pub struct Reading {
    pub token: Option<(TokenRecord, String)>,
    pub replay: Option<StoredReplay>,
    pub dossier: Option<(String, String)>,
}

/// What a transition on an existing dossier found before it is decided.
pub enum Read {
    /// The idempotency key was seen with this request: its first answer.
    Replay(Executed),
    /// Who acts, and the dossier with the digest of its last event (none
    /// for a deposit, or a dossier that does not exist).
    Dossier {
        actor: Actor,
        current: Option<Box<(Dossier, String)>>,
    },
}

impl Reading {
    /// Checked in the order of separate reads: who acts, then a replay,
    /// then whether the dossier exists.
    pub fn judge(self, req: &TransitionRequest) -> Result<Read, StoreError> {
        let actor = match &req.principal {
            Principal::Actor(actor) => actor.clone(),
            Principal::Token(token) => token
                .admit(&req.definition, self.token)
                .map_err(|code| StoreError::Unauthenticated { code })?,
        };
        if let Some(replay) = replayed(req, self.replay)? {
            return Ok(Read::Replay(replay));
        }
        let current = match self.dossier {
            Some((body, digest)) => {
                Some(Box::new((serde_json::from_str::<Dossier>(&body)?, digest)))
            }
            None => None,
        };
        Ok(Read::Dossier { actor, current })
    }
}

/// The first answer to this request's idempotency key, if `stored` is the
/// record of its key; an error if the key came with another request.
pub fn replayed(
    req: &TransitionRequest,
    stored: Option<StoredReplay>,
) -> Result<Option<Executed>, StoreError> {
    let (Some(key), Some(stored)) = (&req.idempotency, stored) else {
        return Ok(None);
    };
    if stored.request_sha256 != key.request_sha256 {
        return Err(StoreError::IdempotencyMismatch);
    }
    Ok(Some(Executed::Replayed {
        status: read_number("idempotency.status", stored.status)?,
        body: stored.body,
    }))
}

/// Checks who may act (a person of another agency learns nothing about the
/// dossier's version), then the version, asks the engine, folds the event
/// and renders the answer. `deposit` is the reference number and the
/// commune's other dossiers, for a creation.
pub fn prepare(
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
    let letters = letters(def, &req.command.action, &dossier, event.seq, req.now);
    Ok(Prepared {
        letters,
        status: if previous_version.is_none() { 201 } else { 200 },
        dossier,
        previous_version,
        event,
        event_json,
        digest,
        body,
    })
}

impl Prepared {
    /// What the group commit writes for this transition on an existing
    /// dossier, read at `previous_version`.
    pub fn write(
        &self,
        req: &TransitionRequest,
        actor: &Actor,
        previous_version: u64,
    ) -> Result<Write, StoreError> {
        let d = &self.dossier;
        let e = &self.event;
        Ok(Write {
            dossier_id: d.id.to_string(),
            previous_version: to_i64(previous_version),
            state: d.state.to_string(),
            version: to_i64(d.version),
            updated_at_us: micros(d.updated_at),
            digest: self.digest.clone(),
            body: serde_json::to_string(d)?,
            awaiting: list_column(awaiting(&req.definition, d).into_iter()),
            due_on: due_on(&req.definition, d).map(|day| day.to_string()),
            seq: to_i64(e.seq),
            action: e.action.to_string(),
            agency: e.actor.agency.to_string(),
            actor_id: e.actor.id.to_string(),
            at_us: micros(e.at),
            event: self.event_json.clone(),
            idempotency: req.idempotency.as_ref().map(|key| Remembered {
                actor_id: actor.id.to_string(),
                key: key.key.clone(),
                request_sha256: key.request_sha256.clone(),
                status: i64::from(self.status),
                body: self.body.clone(),
                created_at_us: micros(req.now),
            }),
            letters: self.letters.clone(),
        })
    }
}
