//! Who uses the service and under which rules: API tokens, web sessions
//! (see the migration `0003_web_session.sql`), and the definitions the
//! database has run.

use ami_core::migration::DossierPlan;
use ami_core::{Actor, Definition};
use ami_store::definitions::migration_step;
use ami_store::{
    chain_digest, definition_sha256, micros, read_number, to_i64, DefinitionCheck, StoreError,
    StoredDefinition, TokenRecord, WebSession, GENESIS_DIGEST, SESSION_TOUCH_EVERY,
};
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, Transaction};

use crate::transition::{append_event, write_projection};
use crate::PgStore;

/// A token as stored, its secret's SHA-256 aside.
struct TokenRow {
    token_id: uuid::Uuid,
    person_id: String,
    name: String,
    agency: String,
    role: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    fn record(self) -> TokenRecord {
        TokenRecord {
            id: self.token_id,
            person_id: self.person_id,
            name: self.name,
            agency: self.agency,
            role: self.role,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// A token and the SHA-256 of its secret, on any connection.
pub(crate) async fn fetch_token<'e, E: PgExecutor<'e>>(
    executor: E,
    id: uuid::Uuid,
) -> Result<Option<(TokenRecord, String)>, StoreError> {
    let row = sqlx::query!(
        "select token_id, person_id, name, agency, role, secret_sha256, created_at, \
         revoked_at from api_token where token_id = $1",
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|r| {
        let record = TokenRow {
            token_id: r.token_id,
            person_id: r.person_id,
            name: r.name,
            agency: r.agency,
            role: r.role,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
        .record();
        (record, r.secret_sha256)
    }))
}

impl PgStore {
    pub(crate) async fn add_token(
        &self,
        token: &TokenRecord,
        secret_sha256: &str,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "insert into api_token (token_id, person_id, name, agency, role, secret_sha256, \
             created_at) values ($1, $2, $3, $4, $5, $6, $7)",
            token.id,
            token.person_id,
            token.name,
            token.agency,
            token.role,
            secret_sha256,
            token.created_at,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(sqlx::query_as!(
            TokenRow,
            "select token_id, person_id, name, agency, role, created_at, revoked_at \
             from api_token order by created_at, token_id"
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TokenRow::record)
        .collect())
    }

    pub(crate) async fn revoke(
        &self,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "update api_token set revoked_at = coalesce(revoked_at, $1) where token_id = $2",
            at,
            id
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn new_session(
        &self,
        session_sha256: &str,
        token_id: uuid::Uuid,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "insert into web_session (session_sha256, token_id, csrf, created_at, \
             last_seen_at) values ($1, $2, $3, $4, $4)",
            session_sha256,
            token_id,
            csrf,
            now,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn session(
        &self,
        session_sha256: &str,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<WebSession>, StoreError> {
        let row = sqlx::query!(
            "select s.csrf, s.last_seen_at, t.token_id, t.person_id, t.name, t.agency, \
             t.role, t.created_at, t.revoked_at from web_session s \
             join api_token t on t.token_id = s.token_id where s.session_sha256 = $1",
            session_sha256
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let last_seen = micros(row.last_seen_at);
        let token = TokenRow {
            token_id: row.token_id,
            person_id: row.person_id,
            name: row.name,
            agency: row.agency,
            role: row.role,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
        .record();
        let idle_us = idle.num_microseconds().unwrap_or(i64::MAX);
        if token.revoked_at.is_some() || micros(now) - last_seen > idle_us {
            self.drop_session(session_sha256).await?;
            return Ok(None);
        }
        let touch_every_us = SESSION_TOUCH_EVERY.num_microseconds().unwrap_or(i64::MAX);
        if micros(now) - last_seen > touch_every_us {
            sqlx::query!(
                "update web_session set last_seen_at = $1 where session_sha256 = $2",
                now,
                session_sha256
            )
            .execute(&self.pool)
            .await?;
        }
        Ok(Some(WebSession {
            token,
            csrf: row.csrf,
        }))
    }

    pub(crate) async fn drop_session(&self, session_sha256: &str) -> Result<(), StoreError> {
        sqlx::query!(
            "delete from web_session where session_sha256 = $1",
            session_sha256
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn active(&self) -> Result<Option<StoredDefinition>, StoreError> {
        let row = sqlx::query!(
            "select version, sha256, source, activated_at from definition_version \
             order by seq desc limit 1"
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| StoredDefinition {
            version: r.version,
            sha256: r.sha256,
            source: r.source,
            activated_at: r.activated_at,
        }))
    }

    pub(crate) async fn check(
        &self,
        def: &Definition,
        source: &str,
    ) -> Result<DefinitionCheck, StoreError> {
        let sha256 = definition_sha256(def);
        match self.active().await? {
            Some(active) if active.sha256 == sha256 => Ok(DefinitionCheck::Same),
            Some(active) => Ok(DefinitionCheck::Changed { active }),
            None => {
                let mut tx = self.pool.begin().await?;
                // Two instances starting at once on an empty table: the
                // second sees the first's row.
                let exists =
                    sqlx::query_scalar!(r#"select count(*) as "n!" from definition_version"#)
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

    /// Appends to every planned dossier the event that records the change
    /// and makes `new` active, in one transaction.
    pub(crate) async fn replace_definition(
        &self,
        old: &Definition,
        new: &Definition,
        source: &str,
        plans: &[DossierPlan],
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut appended = 0;
        for p in plans {
            // A stranded dossier is refused before its row is read: the
            // step does not depend on the digest it chains after, which is
            // set once read.
            let mut step = migration_step(old, new, p, actor, now, GENESIS_DIGEST)?;
            let row = sqlx::query!(
                "select last_digest, version from dossier where dossier_id = $1",
                p.dossier.id.0
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            if row.version != to_i64(p.dossier.version) {
                return Err(StoreError::Conflict {
                    current: Some(read_number("dossier.version", row.version)?),
                });
            }
            let previous = if row.last_digest.is_empty() {
                GENESIS_DIGEST
            } else {
                &row.last_digest
            };
            step.digest = chain_digest(previous, &step.event_json);
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
    tx: &mut Transaction<'_, Postgres>,
    def: &Definition,
    source: &str,
    sha256: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "insert into definition_version (version, sha256, source, activated_at) \
         values ($1, $2, $3, $4)",
        def.version(),
        sha256,
        source,
        at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
