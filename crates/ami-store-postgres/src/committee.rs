//! A committee session on PostgreSQL: its decisions run one after another
//! in one transaction, a savepoint each, every dossier locked as it is
//! read (in the order of their ids, so that two sessions never wait on
//! each other in a circle), and the whole commits only if all passed.

use ami_store::committee::locking_order;
use ami_store::{CommitteeOutcome, CommitteeSession, Executed, StoreError, TransitionRequest};
use sqlx::types::Json;

use crate::transition::run_in_transaction;
use crate::PgStore;

impl PgStore {
    pub(crate) async fn run_committee(
        &self,
        session: &CommitteeSession,
        decisions: Vec<TransitionRequest>,
        dry_run: bool,
    ) -> Result<CommitteeOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<_> = decisions.iter().map(|d| d.dossier_id).collect();
        let mut outcomes: Vec<Option<Result<Executed, StoreError>>> =
            (0..decisions.len()).map(|_| None).collect();
        for i in locking_order(&ids) {
            sqlx::query!("savepoint decision").execute(&mut *tx).await?;
            let outcome = run_in_transaction(&mut tx, &decisions[i]).await;
            if outcome.is_err() {
                sqlx::query!("rollback to savepoint decision")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query!("release savepoint decision")
                .execute(&mut *tx)
                .await?;
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
        sqlx::query!(
            "insert into committee (committee_id, wave, held_on, recorded_at, body) \
             values ($1, $2, $3, $4, $5)",
            session.id,
            i32::from(session.wave),
            session.held_on,
            session.recorded_at,
            Json(session) as _
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
        Ok(sqlx::query_scalar!(
            r#"select body as "body!: Json<CommitteeSession>" from committee where wave = $1
               order by held_on, recorded_at"#,
            i32::from(wave)
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|Json(session)| session)
        .collect())
    }
}
