//! A committee session on SQLite: its decisions run one after another in
//! one write transaction on the writer connection, a savepoint each, so
//! that every decision gets its own answer and the whole commits only if
//! all passed.

use ami_store::committee::locking_order;
use ami_store::{
    micros, CommitteeOutcome, CommitteeSession, Executed, StoreError, TransitionRequest,
};

use crate::transition::run_in_transaction;
use crate::{begin_write_on, SqliteStore};

impl SqliteStore {
    pub(crate) async fn run_committee(
        &self,
        session: &CommitteeSession,
        decisions: Vec<TransitionRequest>,
        dry_run: bool,
    ) -> Result<CommitteeOutcome, StoreError> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = begin_write_on(&mut conn).await?;
        let ids: Vec<_> = decisions.iter().map(|d| d.dossier_id).collect();
        let mut outcomes: Vec<Option<Result<Executed, StoreError>>> =
            (0..decisions.len()).map(|_| None).collect();
        for i in locking_order(&ids) {
            sqlx::query!("savepoint decision").execute(&mut *tx).await?;
            let outcome = run_in_transaction(&mut tx, &decisions[i]).await;
            if outcome.is_err() {
                sqlx::query!("rollback to decision")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query!("release decision").execute(&mut *tx).await?;
            outcomes[i] = Some(outcome);
        }
        let outcome = CommitteeOutcome {
            decisions: outcomes.into_iter().flatten().collect(),
            recorded: false,
        };
        if dry_run || !outcome.all_passed() {
            tx.rollback().await?;
            return Ok(outcome);
        }
        let id = session.id.to_string();
        let wave = i64::from(session.wave);
        let held_on = session.held_on.to_string();
        let recorded_at = micros(session.recorded_at);
        let body = serde_json::to_string(session)?;
        sqlx::query!(
            "insert into committee (committee_id, wave, held_on, recorded_at_us, body) \
             values ($1, $2, $3, $4, $5)",
            id,
            wave,
            held_on,
            recorded_at,
            body
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CommitteeOutcome {
            recorded: true,
            ..outcome
        })
    }

    pub(crate) async fn wave_committees(
        &self,
        wave: u8,
    ) -> Result<Vec<CommitteeSession>, StoreError> {
        let wave = i64::from(wave);
        sqlx::query_scalar!(
            "select body from committee where wave = $1 order by held_on, recorded_at_us",
            wave
        )
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|body| Ok(serde_json::from_str::<CommitteeSession>(body)?))
        .collect()
    }
}
