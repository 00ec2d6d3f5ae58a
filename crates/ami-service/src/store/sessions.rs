//! Sessions of the web pages (see the migration `0003_web_session.sql`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{micros, token_record, Store, StoreError, TokenRecord};

/// A live session: the person's token and the form token of the session.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub token: TokenRecord,
    pub csrf: String,
}

/// A session's last activity is written at most this often: every page
/// would otherwise be a write.
const TOUCH_EVERY_US: i64 = 60_000_000;

impl Store {
    /// Records a new session of a token; `session_sha256` is the SHA-256 of
    /// the id the browser keeps.
    pub async fn create_session(
        &self,
        session_sha256: &str,
        token_id: uuid::Uuid,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into web_session (session_sha256, token_id, csrf, created_at_us, last_seen_at_us) \
             values ($1, $2, $3, $4, $4)",
        )
        .bind(session_sha256)
        .bind(token_id.to_string())
        .bind(csrf)
        .bind(micros(now))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The session, if it exists, was active within `idle` and its token is
    /// not revoked; an expired one is removed.
    pub async fn find_session(
        &self,
        session_sha256: &str,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<WebSession>, StoreError> {
        let row = sqlx::query(
            "select s.csrf, s.last_seen_at_us, t.token_id, t.person_id, t.name, t.agency, t.role, \
             t.created_at_us, t.revoked_at_us from web_session s \
             join api_token t on t.token_id = s.token_id where s.session_sha256 = $1",
        )
        .bind(session_sha256)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = token_record(&row)?;
        let last_seen: i64 = row.try_get("last_seen_at_us")?;
        let idle_us = idle.num_microseconds().unwrap_or(i64::MAX);
        if token.revoked_at.is_some() || micros(now) - last_seen > idle_us {
            self.end_session(session_sha256).await?;
            return Ok(None);
        }
        if micros(now) - last_seen > TOUCH_EVERY_US {
            sqlx::query("update web_session set last_seen_at_us = $1 where session_sha256 = $2")
                .bind(micros(now))
                .bind(session_sha256)
                .execute(&self.writer)
                .await?;
        }
        Ok(Some(WebSession {
            token,
            csrf: row.try_get("csrf")?,
        }))
    }

    pub async fn end_session(&self, session_sha256: &str) -> Result<(), StoreError> {
        sqlx::query("delete from web_session where session_sha256 = $1")
            .bind(session_sha256)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
