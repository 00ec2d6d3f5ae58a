//! Mail in and mail out on PostgreSQL: the arrivals (imported once by
//! their dedup key, handled once, in the transaction of the dossier's
//! event that handles them) and the outbox (letters written with their
//! events, claimed by one sender at a time with `for update skip locked`).

use ami_core::{Actor, DossierId};
use ami_store::mail::Letter;
use ami_store::transition::handling;
use ami_store::{
    read_number, to_i64, ArrivalFilter, ArrivalRecord, ArrivalState, Attachment, Handling,
    NewArrival, OutgoingKind, OutgoingRecord, OutgoingStatus, Page, RecordedArrival, StoreError,
    TransitionRequest,
};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::PgStore;

/// An `arrival` row as read.
struct ArrivalRow {
    arrival_id: Uuid,
    dedup_key: String,
    message_id: Option<String>,
    sender: String,
    sender_name: Option<String>,
    subject: String,
    received_at: DateTime<Utc>,
    wave: Option<i32>,
    state: String,
    quarantine_reason: Option<String>,
    text: String,
    raw_sha256: String,
    raw_size: i64,
    attachments: Json<Vec<Attachment>>,
    imported_at: DateTime<Utc>,
    source: String,
    handled_by: Option<String>,
    handled_by_name: Option<String>,
    handled_at: Option<DateTime<Utc>>,
    handling: Option<String>,
    motivation: Option<String>,
    dossier_id: Option<Uuid>,
    event_seq: Option<i64>,
}

impl ArrivalRow {
    fn record(self) -> Result<ArrivalRecord, StoreError> {
        Ok(ArrivalRecord {
            id: self.arrival_id,
            dedup_key: self.dedup_key,
            message_id: self.message_id,
            sender: self.sender,
            sender_name: self.sender_name,
            subject: self.subject,
            received_at: self.received_at,
            wave: self
                .wave
                .map(|w| read_number("arrival.wave", i64::from(w)))
                .transpose()?,
            state: ArrivalState::read("arrival.state", &self.state)?,
            quarantine_reason: self.quarantine_reason,
            text: self.text,
            raw_sha256: self.raw_sha256,
            raw_size: read_number("arrival.raw_size", self.raw_size)?,
            attachments: self.attachments.0,
            imported_at: self.imported_at,
            source: self.source,
            handled_by: self.handled_by,
            handled_by_name: self.handled_by_name,
            handled_at: self.handled_at,
            handling: self
                .handling
                .map(|h| Handling::read("arrival.handling", &h))
                .transpose()?,
            motivation: self.motivation,
            dossier_id: self.dossier_id.map(DossierId),
            event_seq: self
                .event_seq
                .map(|s| read_number("arrival.event_seq", s))
                .transpose()?,
        })
    }
}

/// An `outgoing_message` row as read.
struct OutgoingRow {
    message_id: Uuid,
    dossier_id: Option<Uuid>,
    event_seq: Option<i64>,
    kind: String,
    recipient: Option<String>,
    digest_agency: Option<String>,
    digest_date: Option<NaiveDate>,
    status: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    claim_token: Option<Uuid>,
    claimed_until: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

impl OutgoingRow {
    fn record(self) -> Result<OutgoingRecord, StoreError> {
        Ok(OutgoingRecord {
            id: self.message_id,
            dossier_id: self.dossier_id.map(DossierId),
            event_seq: self
                .event_seq
                .map(|s| read_number("outgoing_message.event_seq", s))
                .transpose()?,
            kind: OutgoingKind::read("outgoing_message.kind", &self.kind)?,
            recipient: self.recipient,
            digest_agency: self.digest_agency,
            digest_date: self.digest_date,
            status: OutgoingStatus::read("outgoing_message.status", &self.status)?,
            attempts: read_number("outgoing_message.attempts", i64::from(self.attempts))?,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
            claim_token: self.claim_token,
            claimed_until: self.claimed_until,
            created_at: self.created_at,
            sent_at: self.sent_at,
        })
    }
}

impl PgStore {
    pub(crate) async fn insert_arrival(
        &self,
        new: &NewArrival,
    ) -> Result<RecordedArrival, StoreError> {
        let id = Uuid::now_v7();
        // Two imports of one message at once: the second waits for the
        // first's row, then does nothing and reads it.
        let inserted = sqlx::query_scalar!(
            "insert into arrival (arrival_id, dedup_key, message_id, sender, sender_name, \
             subject, received_at, wave, state, quarantine_reason, text, raw_sha256, raw_size, \
             attachments, imported_at, source) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             on conflict (dedup_key) do nothing returning arrival_id",
            id,
            new.dedup_key,
            new.message_id,
            new.sender,
            new.sender_name,
            new.subject,
            new.received_at,
            new.wave.map(i32::from),
            new.state.as_str(),
            new.quarantine_reason,
            new.text,
            new.raw_sha256,
            to_i64(new.raw_size),
            Json(&new.attachments) as _,
            new.imported_at,
            new.source,
        )
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = inserted {
            return Ok(RecordedArrival { id, created: true });
        }
        let id = sqlx::query_scalar!(
            "select arrival_id from arrival where dedup_key = $1",
            new.dedup_key
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(RecordedArrival { id, created: false })
    }

    pub(crate) async fn arrival_page(
        &self,
        filter: &ArrivalFilter,
    ) -> Result<Page<ArrivalRecord>, StoreError> {
        let limit = filter.limit.max(1);
        let after = match &filter.cursor {
            Some(c) => Some((
                ami_store::read_instant("cursor", c.received_at_us)?,
                c.arrival_id,
            )),
            None => None,
        };
        let rows = sqlx::query_as!(
            ArrivalRow,
            r#"select arrival_id, dedup_key, message_id, sender, sender_name, subject,
                 received_at, wave, state, quarantine_reason, text, raw_sha256, raw_size,
                 attachments as "attachments: Json<Vec<Attachment>>", imported_at, source,
                 handled_by, handled_by_name, handled_at, handling, motivation, dossier_id,
                 event_seq
               from arrival
               where ($1::text is null or state = $1)
                 and ($2::timestamptz is null or (received_at, arrival_id) > ($2, $3::uuid))
               order by received_at, arrival_id limit $4"#,
            filter.state.map(ArrivalState::as_str),
            after.map(|(at, _)| at),
            after.map(|(_, id)| id),
            i64::from(limit) + 1,
        )
        .fetch_all(&self.pool)
        .await?;
        page(rows, limit)
    }

    pub(crate) async fn one_arrival(&self, id: Uuid) -> Result<Option<ArrivalRecord>, StoreError> {
        sqlx::query_as!(
            ArrivalRow,
            r#"select arrival_id, dedup_key, message_id, sender, sender_name, subject,
                 received_at, wave, state, quarantine_reason, text, raw_sha256, raw_size,
                 attachments as "attachments: Json<Vec<Attachment>>", imported_at, source,
                 handled_by, handled_by_name, handled_at, handling, motivation, dossier_id,
                 event_seq
               from arrival where arrival_id = $1"#,
            id
        )
        .fetch_optional(&self.pool)
        .await?
        .map(ArrivalRow::record)
        .transpose()
    }

    pub(crate) async fn arrival_aside(
        &self,
        id: Uuid,
        actor: &Actor,
        motivation: &str,
        at: DateTime<Utc>,
    ) -> Result<ArrivalRecord, StoreError> {
        // A quarantined message may be set aside (it may be nothing else).
        let updated = sqlx::query!(
            "update arrival set state = 'ecarte', handling = 'ecarte', handled_by = $2, \
             handled_by_name = $3, handled_at = $4, motivation = $5 \
             where arrival_id = $1 and state in ('nouveau', 'quarantaine')",
            id,
            actor.id.as_str(),
            actor.name.as_str(),
            at,
            motivation,
        )
        .execute(&self.pool)
        .await?;
        let found = self.one_arrival(id).await?;
        match found {
            None => Err(StoreError::ArrivalNotFound),
            Some(a) if updated.rows_affected() == 1 => Ok(a),
            Some(a) => Err(StoreError::ArrivalHandled { state: a.state }),
        }
    }

    pub(crate) async fn all_arrival_files(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"select raw_sha256 as "sha256!" from arrival
               union
               select a ->> 'sha256' as "sha256!" from arrival,
                 jsonb_array_elements(arrival.attachments) a
               where a ->> 'sha256' is not null"#
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub(crate) async fn add_digest(
        &self,
        agency: &str,
        date: NaiveDate,
        recipient: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let status = match recipient {
            Some(_) => OutgoingStatus::EnAttente,
            None => OutgoingStatus::SansDestinataire,
        };
        let inserted = sqlx::query!(
            "insert into outgoing_message (message_id, kind, recipient, digest_agency, \
             digest_date, status, next_attempt_at, created_at) \
             values ($1, 'digest', $2, $3, $4, $5, $6, $6) \
             on conflict (kind, digest_agency, digest_date) do nothing",
            Uuid::now_v7(),
            recipient,
            agency,
            date,
            status.as_str(),
            now,
        )
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    pub(crate) async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<OutgoingRecord>, StoreError> {
        let token = Uuid::now_v7();
        // Rows another sender is claiming right now are skipped, not
        // waited for; a row claimed and committed meanwhile is checked
        // again as it now is (its claim holds: left).
        sqlx::query!(
            "with ready as (select message_id from outgoing_message \
               where status = 'en_attente' and next_attempt_at <= $1 \
                 and (claimed_until is null or claimed_until <= $1) \
               order by next_attempt_at, message_id limit $2 for update skip locked) \
             update outgoing_message o set claim_token = $3, claimed_until = $4, \
               attempts = o.attempts + 1 \
             from ready where o.message_id = ready.message_id",
            now,
            i64::from(limit),
            token,
            now + lease,
        )
        .execute(&self.pool)
        .await?;
        sqlx::query_as!(
            OutgoingRow,
            "select message_id, dossier_id, event_seq, kind, recipient, digest_agency, \
             digest_date, status, attempts, next_attempt_at, last_error, claim_token, \
             claimed_until, created_at, sent_at \
             from outgoing_message where claim_token = $1 \
             order by next_attempt_at, message_id",
            token
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(OutgoingRow::record)
        .collect()
    }

    pub(crate) async fn sent(
        &self,
        id: Uuid,
        claim: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query!(
            "update outgoing_message set status = 'envoye', sent_at = $3, claim_token = null, \
             claimed_until = null, last_error = null \
             where message_id = $1 and claim_token = $2 and status = 'en_attente'",
            id,
            claim,
            at,
        )
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    pub(crate) async fn failed(
        &self,
        id: Uuid,
        claim: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query!(
            "update outgoing_message set \
               status = case when $4::timestamptz is null then 'echec' else 'en_attente' end, \
               next_attempt_at = coalesce($4, next_attempt_at), last_error = $3, \
               claim_token = null, claimed_until = null \
             where message_id = $1 and claim_token = $2 and status = 'en_attente'",
            id,
            claim,
            error,
            retry_at,
        )
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    pub(crate) async fn messages_of(
        &self,
        id: DossierId,
    ) -> Result<Vec<OutgoingRecord>, StoreError> {
        sqlx::query_as!(
            OutgoingRow,
            "select message_id, dossier_id, event_seq, kind, recipient, digest_agency, \
             digest_date, status, attempts, next_attempt_at, last_error, claim_token, \
             claimed_until, created_at, sent_at \
             from outgoing_message where dossier_id = $1 \
             order by created_at, message_id",
            id.0
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(OutgoingRow::record)
        .collect()
    }
}

/// The page of `rows` (read up to `limit + 1`) and the next one's cursor.
fn page(mut rows: Vec<ArrivalRow>, limit: u32) -> Result<Page<ArrivalRecord>, StoreError> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let items: Vec<ArrivalRecord> = rows
        .into_iter()
        .map(ArrivalRow::record)
        .collect::<Result<_, _>>()?;
    let next = if more {
        items
            .last()
            .map(|a| ami_store::ArrivalCursor::after(a).encode())
    } else {
        None
    };
    Ok(Page { items, next })
}

/// Locks the arrival a transition handles until its commit, and refuses
/// the transition when the arrival is unknown or no longer `nouveau`.
/// Taken before anything else is locked, so that two transitions naming
/// one arrival queue here, and the second finds it handled.
pub(crate) async fn lock_arrival(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
) -> Result<(), StoreError> {
    let state = sqlx::query_scalar!(
        "select state from arrival where arrival_id = $1 for update",
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::ArrivalNotFound)?;
    match ArrivalState::read("arrival.state", &state)? {
        ArrivalState::Nouveau => Ok(()),
        state => Err(StoreError::ArrivalHandled { state }),
    }
}

/// Marks the arrival of `req` handled by its event (`seq` of `dossier`),
/// only while it is still `nouveau` (checked under [`lock_arrival`]'s
/// lock; checked here again, whatever the path).
pub(crate) async fn handle_arrival(
    tx: &mut Transaction<'_, Postgres>,
    req: &TransitionRequest,
    id: Uuid,
    actor: &Actor,
    dossier: DossierId,
    seq: u64,
) -> Result<(), StoreError> {
    let updated = sqlx::query!(
        "update arrival set state = 'traite', handling = $2, handled_by = $3, \
         handled_by_name = $4, handled_at = $5, dossier_id = $6, event_seq = $7 \
         where arrival_id = $1 and state = 'nouveau'",
        id,
        handling(req).as_str(),
        actor.id.as_str(),
        actor.name.as_str(),
        req.now,
        dossier.0,
        to_i64(seq),
    )
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(match lock_arrival(tx, id).await {
            Ok(()) => StoreError::Other("courrier arrivé resté nouveau".into()),
            Err(e) => e,
        });
    }
    Ok(())
}

/// Writes the letters an event causes, in its transaction.
pub(crate) async fn write_letters(
    tx: &mut Transaction<'_, Postgres>,
    letters: &[Letter],
) -> Result<(), StoreError> {
    if letters.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "insert into outgoing_message (message_id, dossier_id, event_seq, kind, recipient, \
           status, next_attempt_at, created_at) \
         select l.message_id, l.dossier_id, l.event_seq, l.kind, l.recipient, l.status, \
           ami_instant(l.created_at_us), ami_instant(l.created_at_us) \
         from json_to_recordset($1::text::json) as l(message_id uuid, dossier_id uuid, \
           event_seq bigint, kind text, recipient text, status text, created_at_us bigint)",
        serde_json::to_string(letters)?,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
