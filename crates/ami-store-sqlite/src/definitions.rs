//! The definitions a database has run: the active one, the check a service
//! makes when it starts, and the migration to a new one.

use ami_core::migration::{migration_event, DossierPlan};
use ami_core::{Actor, Definition};
use ami_store::definitions::migration_step;
use ami_store::{
    definition_sha256, micros, read_instant, read_number, to_i64, DefinitionCheck, StoreError,
    StoredDefinition,
};
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, Transaction};

use crate::transition::{append_event, write_projection};
use crate::SqliteStore;

impl SqliteStore {
    pub(crate) async fn last_definition(&self) -> Result<Option<StoredDefinition>, StoreError> {
        let row = sqlx::query!(
            "select version, sha256, source, activated_at_us from definition_version \
             order by seq desc limit 1"
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(StoredDefinition {
                version: r.version,
                sha256: r.sha256,
                source: r.source,
                activated_at: read_instant(
                    "definition_version.activated_at_us",
                    r.activated_at_us,
                )?,
            })
        })
        .transpose()
    }

    pub(crate) async fn compare_definition(
        &self,
        def: &Definition,
        source: &str,
    ) -> Result<DefinitionCheck, StoreError> {
        let sha256 = definition_sha256(def);
        match self.last_definition().await? {
            Some(active) if active.sha256 == sha256 => Ok(DefinitionCheck::Same),
            Some(active) => Ok(DefinitionCheck::Changed { active }),
            None => {
                let mut tx = self.begin_write().await?;
                // Two instances starting at once on an empty table: the
                // second sees the first's row.
                let exists =
                    sqlx::query_scalar!(r#"select count(*) as "n!: i64" from definition_version"#)
                        .fetch_one(&mut *tx)
                        .await?;
                if exists == 0 {
                    insert_definition(&mut tx, def, source, &sha256, Utc::now()).await?;
                }
                tx.commit().await?;
                Ok(DefinitionCheck::FirstUse)
            }
        }
    }

    /// Replaces the active definition `old` by `new`: in one transaction,
    /// appends to every planned dossier the event that records the change
    /// and makes `new` active.
    pub(crate) async fn replace_definition(
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
            // A stranded dossier is refused before its row is read, as it
            // always was: that refusal wins over a row moved or gone.
            if migration_event(old, new, p, actor, now).is_none() {
                migration_step(old, new, p, actor, now, "")?;
            }
            let id = p.dossier.id.to_string();
            let row = sqlx::query!(
                "select last_digest, version from dossier where dossier_id = $1",
                id
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            if row.version != to_i64(p.dossier.version) {
                return Err(StoreError::Conflict {
                    current: Some(read_number("dossier.version", row.version)?),
                });
            }
            let step = migration_step(old, new, p, actor, now, &row.last_digest)?;
            append_event(&mut tx, &step.event, &step.event_json, &step.digest).await?;
            write_projection(
                &mut tx,
                new,
                &step.dossier,
                Some(p.dossier.version),
                &step.digest,
            )
            .await?;
            appended += 1;
        }
        insert_definition(&mut tx, new, source, &definition_sha256(new), now).await?;
        tx.commit().await?;
        Ok(appended)
    }
}

async fn insert_definition(
    tx: &mut Transaction<'_, Sqlite>,
    def: &Definition,
    source: &str,
    sha256: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = micros(at);
    let version = def.version();
    sqlx::query!(
        "insert into definition_version (version, sha256, source, activated_at_us) \
         values ($1, $2, $3, $4)",
        version,
        sha256,
        source,
        at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
