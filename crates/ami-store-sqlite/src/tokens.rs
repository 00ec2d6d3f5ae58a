//! API tokens and the web pages' sessions (see the migration
//! `0003_web_session.sql`).

use ami_store::{micros, read_instant, StoreError, TokenRecord, WebSession, SESSION_TOUCH_EVERY};
use chrono::{DateTime, Utc};
use sqlx::{Executor, Sqlite};

use crate::SqliteStore;

/// A token's row, without its secret, as stored.
pub(crate) struct TokenRow {
    pub token_id: String,
    pub person_id: String,
    pub name: String,
    pub agency: String,
    pub role: String,
    pub created_at_us: i64,
    pub revoked_at_us: Option<i64>,
}

impl TokenRow {
    /// The record; an id that is no UUID or an instant out of range is a
    /// corrupt row.
    pub(crate) fn record(self) -> Result<TokenRecord, StoreError> {
        Ok(TokenRecord {
            id: self
                .token_id
                .parse()
                .map_err(|_| StoreError::Corrupt("token_id".into()))?,
            person_id: self.person_id,
            name: self.name,
            agency: self.agency,
            role: self.role,
            created_at: read_instant("api_token.created_at_us", self.created_at_us)?,
            revoked_at: self
                .revoked_at_us
                .map(|us| read_instant("api_token.revoked_at_us", us))
                .transpose()?,
        })
    }
}

/// A token and the SHA-256 of its secret.
pub(crate) async fn fetch_token<'e, E: Executor<'e, Database = Sqlite>>(
    executor: E,
    id: uuid::Uuid,
) -> Result<Option<(TokenRecord, String)>, StoreError> {
    let id = id.to_string();
    let row = sqlx::query!(
        r#"select token_id as "token_id!: String", person_id, name, agency, role, secret_sha256,
             created_at_us, revoked_at_us
           from api_token where token_id = $1"#,
        id
    )
    .fetch_optional(executor)
    .await?;
    row.map(|r| {
        let record = TokenRow {
            token_id: r.token_id,
            person_id: r.person_id,
            name: r.name,
            agency: r.agency,
            role: r.role,
            created_at_us: r.created_at_us,
            revoked_at_us: r.revoked_at_us,
        }
        .record()?;
        Ok((record, r.secret_sha256))
    })
    .transpose()
}

impl SqliteStore {
    pub(crate) async fn add_token(
        &self,
        token: &TokenRecord,
        secret_sha256: &str,
    ) -> Result<(), StoreError> {
        let id = token.id.to_string();
        let created_at = micros(token.created_at);
        sqlx::query!(
            "insert into api_token (token_id, person_id, name, agency, role, secret_sha256, \
               created_at_us) \
             values ($1, $2, $3, $4, $5, $6, $7)",
            id,
            token.person_id,
            token.name,
            token.agency,
            token.role,
            secret_sha256,
            created_at,
        )
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(crate) async fn all_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        sqlx::query_as!(
            TokenRow,
            r#"select token_id as "token_id!: String", person_id, name, agency, role,
                 created_at_us, revoked_at_us
               from api_token order by created_at_us, token_id"#
        )
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(TokenRow::record)
        .collect()
    }

    /// Revokes a token; false when there is no such token.
    pub(crate) async fn revoke(
        &self,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let at = micros(at);
        let id = id.to_string();
        let done = sqlx::query!(
            "update api_token set revoked_at_us = coalesce(revoked_at_us, $1) where token_id = $2",
            at,
            id
        )
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn add_session(
        &self,
        session_sha256: &str,
        token_id: uuid::Uuid,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let token_id = token_id.to_string();
        let now = micros(now);
        sqlx::query!(
            "insert into web_session (session_sha256, token_id, csrf, created_at_us, \
               last_seen_at_us) \
             values ($1, $2, $3, $4, $4)",
            session_sha256,
            token_id,
            csrf,
            now,
        )
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The session, if it exists, was active within `idle` and its token is
    /// not revoked; an expired one is removed.
    pub(crate) async fn live_session(
        &self,
        session_sha256: &str,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<WebSession>, StoreError> {
        let row = sqlx::query!(
            r#"select s.csrf, s.last_seen_at_us, t.token_id as "token_id!: String", t.person_id,
                 t.name, t.agency, t.role, t.created_at_us, t.revoked_at_us
               from web_session s join api_token t on t.token_id = s.token_id
               where s.session_sha256 = $1"#,
            session_sha256
        )
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = TokenRow {
            token_id: row.token_id,
            person_id: row.person_id,
            name: row.name,
            agency: row.agency,
            role: row.role,
            created_at_us: row.created_at_us,
            revoked_at_us: row.revoked_at_us,
        }
        .record()?;
        let last_seen = row.last_seen_at_us;
        let idle_us = idle.num_microseconds().unwrap_or(i64::MAX);
        if token.revoked_at.is_some() || micros(now) - last_seen > idle_us {
            self.remove_session(session_sha256).await?;
            return Ok(None);
        }
        let touch_every_us = SESSION_TOUCH_EVERY.num_microseconds().unwrap_or(i64::MAX);
        if micros(now) - last_seen > touch_every_us {
            let now = micros(now);
            sqlx::query!(
                "update web_session set last_seen_at_us = $1 where session_sha256 = $2",
                now,
                session_sha256
            )
            .execute(&self.writer)
            .await?;
        }
        Ok(Some(WebSession {
            token,
            csrf: row.csrf,
        }))
    }

    pub(crate) async fn remove_session(&self, session_sha256: &str) -> Result<(), StoreError> {
        sqlx::query!(
            "delete from web_session where session_sha256 = $1",
            session_sha256
        )
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
