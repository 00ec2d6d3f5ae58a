//! The definitions a database has run: the active one, the check a service
//! makes when it starts, and the migration to a new one.

use ami_core::migration::{migration_event, plan, DossierPlan};
use ami_core::{Actor, Definition, Dossier};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{
    chain_digest, micros, read_instant, read_number, to_i64, Store, StoreError, GENESIS_DIGEST,
};

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

impl Store {
    /// The definition the database runs, if one was ever recorded.
    pub async fn active_definition(&self) -> Result<Option<StoredDefinition>, StoreError> {
        let row = sqlx::query(
            "select version, sha256, source, activated_at_us from definition_version \
             order by seq desc limit 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(StoredDefinition {
                version: r.try_get("version")?,
                sha256: r.try_get("sha256")?,
                source: r.try_get("source")?,
                activated_at: read_instant(
                    "definition_version.activated_at_us",
                    r.try_get("activated_at_us")?,
                )?,
            })
        })
        .transpose()
    }

    /// Compares `def` with the active definition; records it when the
    /// database has none yet.
    pub async fn check_definition(
        &self,
        def: &Definition,
        source: &str,
    ) -> Result<DefinitionCheck, StoreError> {
        let sha256 = definition_sha256(def);
        match self.active_definition().await? {
            Some(active) if active.sha256 == sha256 => Ok(DefinitionCheck::Same),
            Some(active) => Ok(DefinitionCheck::Changed { active }),
            None => {
                let mut tx = self.begin_write().await?;
                // Two instances starting at once on an empty table: the
                // second sees the first's row.
                let exists: i64 = sqlx::query("select count(*) as n from definition_version")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if exists == 0 {
                    insert_definition(&mut tx, def, source, &sha256, Utc::now()).await?;
                }
                tx.commit().await?;
                Ok(DefinitionCheck::FirstUse)
            }
        }
    }

    /// Every dossier, as projected.
    pub async fn all_dossiers(&self) -> Result<Vec<Dossier>, StoreError> {
        let rows = sqlx::query("select body from dossier order by reference")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>("body")?)?))
            .collect()
    }

    /// Replaces the active definition `old` by `new`: in one transaction,
    /// appends to every open dossier the event that records the change
    /// (state renamed as `new` says) and makes `new` active. Refused, with
    /// nothing written, when a dossier would be stranded or moved since
    /// `plans` were made.
    pub async fn migrate_definition(
        &self,
        old: &Definition,
        new: &Definition,
        source: &str,
        plans: &[DossierPlan],
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut appended = 0;
        for p in plans {
            let event = migration_event(old, new, p, actor, now).ok_or_else(|| {
                StoreError::Other(format!(
                    "le dossier {} serait bloqué : {}",
                    p.dossier.reference,
                    p.explain(old, new)
                ))
            })?;
            let row = sqlx::query("select last_digest, version from dossier where dossier_id = $1")
                .bind(p.dossier.id.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            let version: i64 = row.try_get("version")?;
            if version != to_i64(p.dossier.version) {
                return Err(StoreError::Conflict {
                    current: Some(read_number("dossier.version", version)?),
                });
            }
            let previous: String = row.try_get("last_digest")?;
            let previous = if previous.is_empty() {
                GENESIS_DIGEST.to_string()
            } else {
                previous
            };
            let dossier = ami_core::apply(Some(p.dossier.clone()), &event)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let event_json =
                serde_jcs::to_string(&event).map_err(|e| StoreError::Other(e.to_string()))?;
            let digest = chain_digest(&previous, &event_json);
            super::transition::append_event(&mut tx, &event, &event_json, &digest).await?;
            super::write_projection(&mut tx, new, &dossier, Some(p.dossier.version), &digest)
                .await?;
            appended += 1;
        }
        insert_definition(&mut tx, new, source, &definition_sha256(new), now).await?;
        tx.commit().await?;
        Ok(appended)
    }

    /// What replacing the active definition by `new` means for each open
    /// dossier.
    pub async fn plan_migration(
        &self,
        old: &Definition,
        new: &Definition,
    ) -> Result<Vec<DossierPlan>, StoreError> {
        let dossiers = self.all_dossiers().await?;
        Ok(plan(old, new, &dossiers))
    }
}

async fn insert_definition(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    def: &Definition,
    source: &str,
    sha256: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into definition_version (version, sha256, source, activated_at_us) \
         values ($1, $2, $3, $4)",
    )
    .bind(def.version())
    .bind(sha256)
    .bind(source)
    .bind(micros(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
