//! The definitions a database has run: the active one, the check a service
//! makes when it starts, and what a migration to a new one appends.

use ami_core::migration::{migration_event, DossierPlan};
use ami_core::{Actor, Definition, Dossier, Event};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::{chain_digest, StoreError, GENESIS_DIGEST};

/// A definition as the database keeps it.
#[derive(Debug, Clone)]
pub struct StoredDefinition {
    pub version: String,
    pub sha256: String,
    /// The TOML it was loaded from.
    pub source: String,
    pub activated_at: DateTime<Utc>,
}

/// What a service starting with a definition finds in the database.
#[derive(Debug)]
pub enum DefinitionCheck {
    /// The database had none: this one is now recorded as active.
    FirstUse,
    /// The same definition as the active one.
    Same,
    /// Another definition is active: the service must not start on this
    /// one before `ami workflow migrate` records the change.
    Changed { active: StoredDefinition },
}

/// The SHA-256 of a definition's JSON form: comments and layout of its TOML
/// do not change it, any rule or label does.
pub fn definition_sha256(def: &Definition) -> String {
    let json = serde_json::to_string(def).unwrap_or_default();
    hex::encode(Sha256::digest(json.as_bytes()))
}

/// What a migration appends to one dossier: its event (and canonical JSON),
/// the event's chained digest and the dossier after it.
pub struct MigrationStep {
    pub event: Event,
    pub event_json: String,
    pub digest: String,
    pub dossier: Dossier,
}

/// The step of `plan` under a migration from `old` to `new`, chained after
/// `previous_digest` (the dossier's last digest, as stored); refused when
/// the dossier would be stranded.
pub fn migration_step(
    old: &Definition,
    new: &Definition,
    plan: &DossierPlan,
    actor: &Actor,
    now: DateTime<Utc>,
    previous_digest: &str,
) -> Result<MigrationStep, StoreError> {
    let event = migration_event(old, new, plan, actor, now).ok_or_else(|| {
        StoreError::Other(format!(
            "le dossier {} serait bloqué : {}",
            plan.dossier.reference,
            plan.explain(old, new)
        ))
    })?;
    let previous = if previous_digest.is_empty() {
        GENESIS_DIGEST
    } else {
        previous_digest
    };
    let dossier = ami_core::apply(Some(plan.dossier.clone()), &event)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let event_json = serde_jcs::to_string(&event).map_err(|e| StoreError::Other(e.to_string()))?;
    let digest = chain_digest(previous, &event_json);
    Ok(MigrationStep {
        event,
        event_json,
        digest,
        dossier,
    })
}
