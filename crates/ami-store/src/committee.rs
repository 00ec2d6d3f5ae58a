//! A wave's selection committee: the session as recorded beside the
//! decisions' events, and what became of each decision it carried.

use ami_core::DossierId;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Executed, StoreError};

/// A committee session of one wave: who sat, what was said, what was
/// decided. Kept whole as one document: it is written once and read whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeSession {
    pub id: Uuid,
    pub wave: u8,
    /// The day it met.
    pub held_on: NaiveDate,
    pub minutes: String,
    pub members: Vec<CommitteeMember>,
    pub decisions: Vec<CommitteeDecisionRecord>,
    /// Who recorded it (a DAR responsable): id and name.
    pub recorded_by: String,
    pub recorded_by_name: String,
    pub recorded_at: DateTime<Utc>,
}

/// One member of a committee: a name and the agency they sat for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeMember {
    pub name: String,
    pub agency: String,
}

/// One decision of a session, as recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeDecisionRecord {
    pub dossier_id: DossierId,
    pub reference: String,
    /// The dossier's programmes: who may read the decision.
    pub programmes: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motivation: Option<String>,
    /// The version the decision's event gave the dossier.
    pub version: u64,
}

/// What became of each decision of a session, in the request's order,
/// and whether the session was written.
#[derive(Debug)]
pub struct CommitteeOutcome {
    pub decisions: Vec<Result<Executed, StoreError>>,
    /// True when every decision passed and it was not a dry run: the
    /// session and its decisions' events are durable.
    pub recorded: bool,
}

impl CommitteeOutcome {
    /// Every decision passed.
    pub fn all_passed(&self) -> bool {
        self.decisions.iter().all(Result::is_ok)
    }
}

/// The order in which a session's decisions run: by dossier id, so that
/// two sessions (or a session and a group) lock their dossiers in one
/// order; the answers still come in the request's order.
pub fn locking_order(dossiers: &[DossierId]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..dossiers.len()).collect();
    order.sort_by_key(|&i| dossiers[i].0);
    order
}
