//! What the `ami` service asks of its database, whichever it is.
//!
//! The [`Store`] trait lists the operations (run a transition, read a
//! dossier, a list, a history, the event feed, the counts; tokens, web
//! sessions, definitions; the journal's proofs; the mail received and the
//! letters to send, [`mail`]). `ami-store-sqlite` and
//! `ami-store-postgres` implement it, each in its own SQL, checked at build
//! time; the service picks one from the database URL's scheme and sees
//! only the trait. What does not depend on the database lives here once:
//! the errors, the rows and filters, the engine's half of a transition
//! ([`transition`]), the group commit's gathering of writes
//! ([`group_commit`]), the audit's reasoning ([`audit`]), and the story
//! tests every backend runs ([`stories`]).

pub mod audit;
pub mod committee;
pub mod definitions;
mod error;
pub mod group_commit;
pub mod lists;
pub mod mail;
mod order;
mod rows;
pub mod stories;
mod token;
pub mod transition;
mod url;
pub mod write;

use std::sync::Arc;

use ami_core::migration::DossierPlan;
use ami_core::text::search_key;
use ami_core::{Actor, Definition, Dossier, DossierId, PieceFile};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub use audit::{AuditFinding, AuditReport, GlobalHead, RebuildReport};
pub use committee::{CommitteeDecisionRecord, CommitteeMember, CommitteeOutcome, CommitteeSession};
pub use definitions::{definition_sha256, DefinitionCheck, StoredDefinition};
pub use error::StoreError;
pub use mail::{
    ArrivalCursor, ArrivalFilter, ArrivalRecord, ArrivalState, Attachment, Handling, NewArrival,
    OutgoingKind, OutgoingRecord, OutgoingStatus, RecordedArrival,
};
pub use order::{Content, DepositOrder, Order};
pub use rows::*;
pub use token::{hash_secret, PresentedToken, TokenRefusal};
pub use url::{DatabaseUrl, UnknownDatabaseUrl};

/// Which database a URL names (the factory's choice, from the scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Digest that starts every dossier's chain.
pub const GENESIS_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chained digest of an event: SHA-256 over the previous digest (hex)
/// and the event's canonical JSON, as stored in the journal.
pub fn chain_digest(previous: &str, canonical_event: &str) -> String {
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(canonical_event.as_bytes());
    hex::encode(h.finalize())
}

/// Who takes an action.
pub enum Principal {
    /// Already known (the demo, the benchmark's loader).
    Actor(Actor),
    /// A token presented over HTTP, checked on the transition's own
    /// connection: one round trip less than a check of its own.
    Token(PresentedToken),
}

/// Renders the answer to a transition for the acting person.
pub type Respond = Arc<dyn Fn(&Dossier, &Actor) -> String + Send + Sync>;

/// A request to take an action, as the store needs it to run it in one
/// transaction. It owns what it carries: a deposit may be run by the
/// process's writer task, with the other writes of its group.
pub struct TransitionRequest {
    pub definition: Arc<Definition>,
    pub dossier_id: DossierId,
    /// Checked before anything else; `None` only for a creation.
    pub expected_version: Option<u64>,
    pub command: Order,
    pub principal: Principal,
    pub now: DateTime<Utc>,
    pub idempotency: Option<IdempotencyKey>,
    /// Renders the answer (for the acting person) kept for replays of the
    /// same idempotency key.
    pub respond: Respond,
    /// The arrival (a received message) this transition handles: marked
    /// `traite` with the dossier and the event, in the event's
    /// transaction, only if it is still `nouveau`; otherwise the whole
    /// transition is refused ([`StoreError::ArrivalHandled`]).
    pub arrival: Option<uuid::Uuid>,
}

/// What a transition did.
#[derive(Debug)]
pub enum Executed {
    /// The event was appended and the projection updated.
    Applied { dossier: Box<Dossier>, body: String },
    /// The idempotency key had been seen: this is the first answer again.
    Replayed { status: u16, body: String },
}

/// A live web session: the person's token and the form token of the
/// session.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub token: TokenRecord,
    pub csrf: String,
}

/// A session's last activity is written at most this often: every page
/// would otherwise be a write.
pub const SESSION_TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// The database of the service. Every method is one consistent operation;
/// writes are durable when they return `Ok`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Answers when the database does and its tables read: the journal,
    /// the dossiers and the tokens (one row of each at most, from the
    /// storage itself rather than a cache where the backend keeps one).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the connections; the store is not used after.
    async fn close(&self);

    /// Runs one transition: who acts, idempotency, version check, the
    /// engine's decision, then event and projection written atomically
    /// (with the other transitions of its group), answered once durable.
    async fn execute(&self, req: TransitionRequest) -> Result<Executed, StoreError>;

    async fn get_dossier(&self, id: DossierId) -> Result<Option<Dossier>, StoreError>;

    /// Runs a committee session's decisions in one transaction, each as
    /// [`Store::execute`] would alone (who acts, version, the engine's
    /// rules), and keeps `session` with them: all or nothing. Every
    /// decision is tried, so that each gets its answer; the transaction
    /// commits only when all passed and `dry_run` is false.
    async fn hold_committee(
        &self,
        session: &CommitteeSession,
        decisions: Vec<TransitionRequest>,
        dry_run: bool,
    ) -> Result<CommitteeOutcome, StoreError>;

    /// The committee sessions of a wave, by the day they met then the
    /// instant they were recorded.
    async fn committees(&self, wave: u8) -> Result<Vec<CommitteeSession>, StoreError>;

    /// A page of dossiers in reception order, after `filter.after`.
    async fn list_dossiers(&self, filter: &DossierFilter) -> Result<Page<Dossier>, StoreError>;

    /// How many dossiers match `filter` (cursor and limit aside), counted
    /// up to `cap + 1`.
    async fn count_matching(&self, filter: &DossierFilter, cap: u32) -> Result<i64, StoreError>;

    /// Number of dossiers, to tell an empty database from a used one.
    async fn count_dossiers(&self) -> Result<i64, StoreError>;

    /// Every dossier, as projected, in reference order.
    async fn all_dossiers(&self) -> Result<Vec<Dossier>, StoreError>;

    /// Every received file of every dossier, with the dossier's reference.
    async fn piece_files(&self) -> Result<Vec<(String, PieceFile)>, StoreError> {
        Ok(self
            .all_dossiers()
            .await?
            .into_iter()
            .flat_map(|d| {
                let reference = d.reference.to_string();
                d.files.into_iter().map(move |f| (reference.clone(), f))
            })
            .collect())
    }

    /// The SHA-256 of every file a pièce or an arrival references: what
    /// the files' garbage collection keeps.
    async fn referenced_files(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut files: std::collections::HashSet<String> = self
            .piece_files()
            .await?
            .into_iter()
            .map(|(_, f)| f.sha256.to_string())
            .collect();
        files.extend(self.arrival_files().await?);
        Ok(files)
    }

    /// The SHA-256 of every arrival's raw message and attachments.
    async fn arrival_files(&self) -> Result<Vec<String>, StoreError>;

    /// Imports a received message once: the same `dedup_key` again (a
    /// second import, another instance's at the same time) gives the first
    /// arrival's id, `created: false`, and writes nothing.
    async fn record_arrival(&self, new: &NewArrival) -> Result<RecordedArrival, StoreError>;

    /// A page of arrivals (of one state, if asked) in reception order,
    /// after `filter.cursor`.
    async fn arrivals(&self, filter: &ArrivalFilter) -> Result<Page<ArrivalRecord>, StoreError>;

    async fn arrival(&self, id: uuid::Uuid) -> Result<Option<ArrivalRecord>, StoreError>;

    /// Sets an arrival aside (`ecarte`) with a motivation, once: refused
    /// ([`StoreError::ArrivalHandled`]) when it was handled already. The
    /// row's handling columns are the record of it.
    async fn set_arrival_aside(
        &self,
        id: uuid::Uuid,
        actor: &Actor,
        motivation: &str,
        at: DateTime<Utc>,
    ) -> Result<ArrivalRecord, StoreError>;

    /// Enqueues an agency's digest of a day, once: false when it was
    /// already (by this instance or another). Without a recipient it is
    /// kept `sans_destinataire`.
    async fn enqueue_digest(
        &self,
        agency: &str,
        date: chrono::NaiveDate,
        recipient: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Claims up to `limit` letters due at `now` (waiting, not claimed or
    /// their claim expired) until `now + lease`, under a new claim token:
    /// two senders never get the same letter while a claim holds. Each
    /// claim counts one attempt.
    async fn claim_outgoing(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<OutgoingRecord>, StoreError>;

    /// Records a claimed letter as sent; false (nothing written) when the
    /// letter is no longer held by `claim` (another sender claimed it
    /// since the lease ran out).
    async fn mark_sent(
        &self,
        id: uuid::Uuid,
        claim: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records a claimed letter's failed attempt: to try again from
    /// `retry_at`, or given up (`echec`) without one; false (nothing
    /// written) when the letter is no longer held by `claim`.
    async fn mark_failed(
        &self,
        id: uuid::Uuid,
        claim: uuid::Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError>;

    /// The letters of a dossier, in the order they were written.
    async fn dossier_messages(&self, id: DossierId) -> Result<Vec<OutgoingRecord>, StoreError>;

    /// Every event of a dossier, in order, with its digest.
    async fn history(&self, id: DossierId) -> Result<Vec<StoredEvent>, StoreError>;

    /// The global feed: events after `cursor`, in an order a consumer can
    /// follow without ever missing one; only the dossiers of `readable`
    /// programmes when given.
    async fn events_after(
        &self,
        cursor: Option<&FeedCursor>,
        limit: u32,
        readable: Option<&[&str]>,
    ) -> Result<Page<StoredEvent>, StoreError>;

    /// The feed's position now: following it from here gives every event
    /// committed later and none before.
    async fn feed_end(&self) -> Result<FeedCursor, StoreError>;

    /// Counts per wave and state, per agency the dossiers awaiting it, and
    /// those of them late on `today` (their earliest deadline before it).
    async fn stats(
        &self,
        readable: Option<&[&str]>,
        today: chrono::NaiveDate,
    ) -> Result<Stats, StoreError>;

    /// [`Store::stats`] of the dossiers of `departements` (all when
    /// `None`), with their counts per département ([`Stats::by_departement`]).
    /// Counted at the read, not kept: it reads every dossier counted.
    async fn stats_of_departements(
        &self,
        readable: Option<&[&str]>,
        today: chrono::NaiveDate,
        departements: Option<&[String]>,
    ) -> Result<Stats, StoreError>;

    async fn insert_token(
        &self,
        token: &TokenRecord,
        secret_sha256: &str,
    ) -> Result<(), StoreError>;

    /// The token and the SHA-256 of its secret, revoked or not.
    async fn find_token(&self, id: uuid::Uuid)
        -> Result<Option<(TokenRecord, String)>, StoreError>;

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token; false when there is no such token.
    async fn revoke_token(&self, id: uuid::Uuid, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Records a new session of a token; `session_sha256` is the SHA-256 of
    /// the id the browser keeps.
    async fn create_session(
        &self,
        session_sha256: &str,
        token_id: uuid::Uuid,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The session, if it exists, was active within `idle` and its token is
    /// not revoked; an expired one is removed. Its last activity is moved
    /// at most every [`SESSION_TOUCH_EVERY`].
    async fn find_session(
        &self,
        session_sha256: &str,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<WebSession>, StoreError>;

    async fn end_session(&self, session_sha256: &str) -> Result<(), StoreError>;

    /// The definition the database runs, if one was ever recorded.
    async fn active_definition(&self) -> Result<Option<StoredDefinition>, StoreError>;

    /// Compares `def` with the active definition; records it when the
    /// database has none yet.
    async fn check_definition(
        &self,
        def: &Definition,
        source: &str,
    ) -> Result<DefinitionCheck, StoreError>;

    /// Replaces the active definition `old` by `new` in one transaction:
    /// appends to every planned dossier the event that records the change
    /// and makes `new` active. Refused, nothing written, when a dossier
    /// would be stranded or moved since `plans` were made.
    async fn migrate_definition(
        &self,
        old: &Definition,
        new: &Definition,
        source: &str,
        plans: &[DossierPlan],
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError>;

    /// What replacing the active definition by `new` means for each open
    /// dossier.
    async fn plan_migration(
        &self,
        old: &Definition,
        new: &Definition,
    ) -> Result<Vec<DossierPlan>, StoreError> {
        let dossiers = self.all_dossiers().await?;
        Ok(ami_core::migration::plan(old, new, &dossiers))
    }

    /// The recorded head of the global chain (0 and the genesis digest on
    /// an empty journal).
    async fn global_head(&self) -> Result<GlobalHead, StoreError>;

    /// Gives the events committed since the last sealing their place in
    /// the global chain, and moves the head; the number of events sealed.
    async fn seal_pending(&self) -> Result<u64, StoreError>;

    /// Checks every dossier's digest chain, the global chain and its head
    /// (and `kept`, a head kept earlier), and every projection against the
    /// fold of its journal; reads one consistent snapshot.
    async fn verify(
        &self,
        def: &Definition,
        kept: Option<&GlobalHead>,
    ) -> Result<AuditReport, StoreError>;

    /// Rebuilds every projection from the journal in one transaction;
    /// refuses (writing nothing) to take a projection back to a shorter
    /// journal unless `accept_loss`.
    async fn rebuild_projections(
        &self,
        def: &Definition,
        accept_loss: bool,
    ) -> Result<RebuildReport, StoreError>;
}

/// Every value the `awaiting` column may hold that names one of `wanted`
/// (agencies, or `porteur`). A dossier waits on the agencies of its next
/// steps, listed in the order of the definition's actions, or on the
/// porteur alone: the values are the ordered subsets of those agencies, a
/// few for any real circuit.
pub fn awaiting_columns(def: &Definition, wanted: &[String]) -> Vec<String> {
    let mut agencies: Vec<&str> = Vec::new();
    for a in def.actions().iter().filter(|a| a.next_step) {
        if !agencies.contains(&a.agency.as_str()) {
            agencies.push(a.agency.as_str());
        }
    }
    // 2^n subsets; a circuit with more than 16 agencies taking next steps
    // would be a different kind of thing.
    let n = agencies.len().min(16);
    let mut values: Vec<String> = (1u32..(1 << n))
        .map(|mask| {
            list_column(
                agencies[..n]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, a)| *a),
            )
        })
        .filter(|v| wanted.iter().any(|w| v.contains(&format!(",{w},"))))
        .collect();
    if wanted.iter().any(|w| w == ami_core::PORTEUR) {
        values.push(list_column(std::iter::once(ami_core::PORTEUR)));
    }
    values
}

/// Counts per `awaiting` value (`,acv,ti,`) as counts per agency: a
/// dossier waiting on two agencies counts for each.
pub fn per_agency(rows: impl IntoIterator<Item = (String, i64)>) -> Vec<(String, i64)> {
    let mut counts: Vec<(String, i64)> = Vec::new();
    for (agencies, n) in rows {
        for agency in agencies.split(',').filter(|a| !a.is_empty()) {
            match counts.iter_mut().find(|(a, _)| a == agency) {
                Some((_, total)) => *total += n,
                None => counts.push((agency.to_string(), n)),
            }
        }
    }
    counts
}

/// The earliest last day among the deadlines of the agencies the dossier
/// waits on (`None` when it waits on none that has one): what a list of
/// late dossiers compares with today. Kept with the projection, as
/// `awaiting` is.
pub fn due_on(def: &Definition, d: &Dossier) -> Option<chrono::NaiveDate> {
    ami_core::deadlines(def, d).iter().map(|l| l.due).min()
}

/// `,a,b,` so that `like '%,a,%'` finds one item.
pub fn list_column<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut s = String::from(",");
    for item in items {
        s.push_str(item);
        s.push(',');
    }
    s
}

/// What search looks in: the commune, the porteur, the reference and the
/// INSEE code, each folded (no accents, no case), kept apart by a `/` that
/// no folded query holds, so that a match never spans two of them.
pub fn search_column(d: &Dossier) -> String {
    [&d.commune, &d.porteur.nom, &d.reference, &d.code_insee]
        .map(|field| search_key(field))
        .join(" / ")
}

/// The folded search pattern of a query (`%key%`), or `None` when the
/// query holds nothing searchable (it then finds nothing).
pub fn search_pattern(q: &str) -> Option<String> {
    let key = search_key(q);
    // The folded key holds no LIKE wildcard (see `search_key`).
    (!key.is_empty()).then(|| format!("%{key}%"))
}

/// Microseconds since 1970, as the journal keeps instants.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A count or version as the database's signed integer.
pub fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Only identifiers (the definition's programmes) go into SQL text; the
/// rest is left out rather than quoted.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_awaiting_values_of_an_agency_are_the_lists_that_name_it() {
        let def = Definition::ami2();
        let dar = awaiting_columns(&def, &["dar".to_string()]);
        assert!(dar.contains(&",dar,".to_string()), "{dar:?}");
        assert!(dar.iter().all(|v| v.contains(",dar,")));
        assert_eq!(dar.len(), 4, "dar with any subset of acv and ti: {dar:?}");
        assert_eq!(
            awaiting_columns(&def, &[ami_core::PORTEUR.to_string()]),
            vec![",porteur,".to_string()]
        );
        assert!(awaiting_columns(&def, &["nobody".to_string()]).is_empty());
    }
}
