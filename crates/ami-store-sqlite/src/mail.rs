//! Mail in and mail out on SQLite: the arrivals (imported once by their
//! dedup key, handled once, in the transaction of the dossier's event that
//! handles them) and the outbox (letters written with their events,
//! claimed by one sender at a time: every claim is one `update` on the one
//! writer connection, so two claims never overlap).

use ami_core::{Actor, DossierId};
use ami_store::mail::Letter;
use ami_store::transition::handling;
use ami_store::{
    micros, read_instant, read_number, to_i64, ArrivalCursor, ArrivalFilter, ArrivalRecord,
    ArrivalState, Attachment, Handling, NewArrival, OutgoingKind, OutgoingRecord, OutgoingStatus,
    Page, RecordedArrival, StoreError, TransitionRequest,
};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use crate::SqliteStore;

/// An `arrival` row as read.
struct ArrivalRow {
    arrival_id: String,
    dedup_key: String,
    message_id: Option<String>,
    sender: String,
    sender_name: Option<String>,
    subject: String,
    received_at_us: i64,
    wave: Option<i64>,
    state: String,
    quarantine_reason: Option<String>,
    text: String,
    raw_sha256: String,
    raw_size: i64,
    attachments: String,
    imported_at_us: i64,
    source: String,
    handled_by: Option<String>,
    handled_by_name: Option<String>,
    handled_at_us: Option<i64>,
    handling: Option<String>,
    motivation: Option<String>,
    dossier_id: Option<String>,
    event_seq: Option<i64>,
}

fn read_uuid(column: &str, s: &str) -> Result<Uuid, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} : identifiant illisible {s:?}")))
}

impl ArrivalRow {
    fn record(self) -> Result<ArrivalRecord, StoreError> {
        Ok(ArrivalRecord {
            id: read_uuid("arrival.arrival_id", &self.arrival_id)?,
            dedup_key: self.dedup_key,
            message_id: self.message_id,
            sender: self.sender,
            sender_name: self.sender_name,
            subject: self.subject,
            received_at: read_instant("arrival.received_at_us", self.received_at_us)?,
            wave: self
                .wave
                .map(|w| read_number("arrival.wave", w))
                .transpose()?,
            state: ArrivalState::read("arrival.state", &self.state)?,
            quarantine_reason: self.quarantine_reason,
            text: self.text,
            raw_sha256: self.raw_sha256,
            raw_size: read_number("arrival.raw_size", self.raw_size)?,
            attachments: serde_json::from_str::<Vec<Attachment>>(&self.attachments)?,
            imported_at: read_instant("arrival.imported_at_us", self.imported_at_us)?,
            source: self.source,
            handled_by: self.handled_by,
            handled_by_name: self.handled_by_name,
            handled_at: self
                .handled_at_us
                .map(|us| read_instant("arrival.handled_at_us", us))
                .transpose()?,
            handling: self
                .handling
                .map(|h| Handling::read("arrival.handling", &h))
                .transpose()?,
            motivation: self.motivation,
            dossier_id: self
                .dossier_id
                .map(|id| read_uuid("arrival.dossier_id", &id).map(DossierId))
                .transpose()?,
            event_seq: self
                .event_seq
                .map(|s| read_number("arrival.event_seq", s))
                .transpose()?,
        })
    }
}

/// An `outgoing_message` row as read.
struct OutgoingRow {
    message_id: String,
    dossier_id: Option<String>,
    event_seq: Option<i64>,
    kind: String,
    recipient: Option<String>,
    digest_agency: Option<String>,
    digest_date: Option<String>,
    status: String,
    attempts: i64,
    next_attempt_at_us: i64,
    last_error: Option<String>,
    claim_token: Option<String>,
    claimed_until_us: Option<i64>,
    created_at_us: i64,
    sent_at_us: Option<i64>,
}

impl OutgoingRow {
    fn record(self) -> Result<OutgoingRecord, StoreError> {
        let instant =
            |column: &str, us: Option<i64>| us.map(|us| read_instant(column, us)).transpose();
        Ok(OutgoingRecord {
            id: read_uuid("outgoing_message.message_id", &self.message_id)?,
            dossier_id: self
                .dossier_id
                .map(|id| read_uuid("outgoing_message.dossier_id", &id).map(DossierId))
                .transpose()?,
            event_seq: self
                .event_seq
                .map(|s| read_number("outgoing_message.event_seq", s))
                .transpose()?,
            kind: OutgoingKind::read("outgoing_message.kind", &self.kind)?,
            recipient: self.recipient,
            digest_agency: self.digest_agency,
            digest_date: self
                .digest_date
                .map(|d| {
                    d.parse::<NaiveDate>().map_err(|_| {
                        StoreError::Corrupt(format!("outgoing_message.digest_date : {d:?}"))
                    })
                })
                .transpose()?,
            status: OutgoingStatus::read("outgoing_message.status", &self.status)?,
            attempts: read_number("outgoing_message.attempts", self.attempts)?,
            next_attempt_at: read_instant(
                "outgoing_message.next_attempt_at_us",
                self.next_attempt_at_us,
            )?,
            last_error: self.last_error,
            claim_token: self
                .claim_token
                .map(|t| read_uuid("outgoing_message.claim_token", &t))
                .transpose()?,
            claimed_until: instant("outgoing_message.claimed_until_us", self.claimed_until_us)?,
            created_at: read_instant("outgoing_message.created_at_us", self.created_at_us)?,
            sent_at: instant("outgoing_message.sent_at_us", self.sent_at_us)?,
        })
    }
}

impl SqliteStore {
    pub(crate) async fn insert_arrival(
        &self,
        new: &NewArrival,
    ) -> Result<RecordedArrival, StoreError> {
        let id = Uuid::now_v7().to_string();
        let wave = new.wave.map(i64::from);
        let (received_at, imported_at) = (micros(new.received_at), micros(new.imported_at));
        let raw_size = to_i64(new.raw_size);
        let attachments = serde_json::to_string(&new.attachments)?;
        let state = new.state.as_str();
        // One writer: the insert and the read that follows it see the same
        // database.
        let inserted = sqlx::query_scalar!(
            r#"insert into arrival (arrival_id, dedup_key, message_id, sender, sender_name,
                 subject, received_at_us, wave, state, quarantine_reason, text, raw_sha256,
                 raw_size, attachments, imported_at_us, source)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
               on conflict (dedup_key) do nothing returning arrival_id as "arrival_id!: String""#,
            id,
            new.dedup_key,
            new.message_id,
            new.sender,
            new.sender_name,
            new.subject,
            received_at,
            wave,
            state,
            new.quarantine_reason,
            new.text,
            new.raw_sha256,
            raw_size,
            attachments,
            imported_at,
            new.source,
        )
        .fetch_optional(&self.writer)
        .await?;
        if let Some(id) = inserted {
            return Ok(RecordedArrival {
                id: read_uuid("arrival.arrival_id", &id)?,
                created: true,
            });
        }
        let id = sqlx::query_scalar!(
            r#"select arrival_id as "arrival_id!: String" from arrival where dedup_key = $1"#,
            new.dedup_key
        )
        .fetch_one(&self.writer)
        .await?;
        Ok(RecordedArrival {
            id: read_uuid("arrival.arrival_id", &id)?,
            created: false,
        })
    }

    pub(crate) async fn arrival_page(
        &self,
        filter: &ArrivalFilter,
    ) -> Result<Page<ArrivalRecord>, StoreError> {
        let limit = filter.limit.max(1);
        let state = filter.state.map(ArrivalState::as_str);
        let after_at = filter.cursor.map(|c| c.received_at_us);
        let after_id = filter.cursor.map(|c| c.arrival_id.to_string());
        let read = i64::from(limit) + 1;
        let rows = sqlx::query_as!(
            ArrivalRow,
            r#"select arrival_id as "arrival_id!", dedup_key as "dedup_key!",
                 message_id as "message_id?", sender as "sender!", sender_name as "sender_name?",
                 subject as "subject!", received_at_us as "received_at_us!", wave as "wave?",
                 state as "state!", quarantine_reason as "quarantine_reason?", text as "text!",
                 raw_sha256 as "raw_sha256!", raw_size as "raw_size!",
                 attachments as "attachments!", imported_at_us as "imported_at_us!",
                 source as "source!", handled_by as "handled_by?",
                 handled_by_name as "handled_by_name?", handled_at_us as "handled_at_us?",
                 handling as "handling?", motivation as "motivation?",
                 dossier_id as "dossier_id?", event_seq as "event_seq?"
               from arrival
               where ($1 is null or state = $1)
                 and ($2 is null or received_at_us > $2
                   or (received_at_us = $2 and arrival_id > $3))
               order by received_at_us, arrival_id limit $4"#,
            state,
            after_at,
            after_id,
            read,
        )
        .fetch_all(&self.reader)
        .await?;
        let more = rows.len() > limit as usize;
        let items: Vec<ArrivalRecord> = rows
            .into_iter()
            .take(limit as usize)
            .map(ArrivalRow::record)
            .collect::<Result<_, _>>()?;
        let next = if more {
            items.last().map(|a| ArrivalCursor::after(a).encode())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    pub(crate) async fn one_arrival(&self, id: Uuid) -> Result<Option<ArrivalRecord>, StoreError> {
        let id = id.to_string();
        sqlx::query_as!(
            ArrivalRow,
            r#"select arrival_id as "arrival_id!", dedup_key as "dedup_key!",
                 message_id as "message_id?", sender as "sender!", sender_name as "sender_name?",
                 subject as "subject!", received_at_us as "received_at_us!", wave as "wave?",
                 state as "state!", quarantine_reason as "quarantine_reason?", text as "text!",
                 raw_sha256 as "raw_sha256!", raw_size as "raw_size!",
                 attachments as "attachments!", imported_at_us as "imported_at_us!",
                 source as "source!", handled_by as "handled_by?",
                 handled_by_name as "handled_by_name?", handled_at_us as "handled_at_us?",
                 handling as "handling?", motivation as "motivation?",
                 dossier_id as "dossier_id?", event_seq as "event_seq?"
               from arrival where arrival_id = $1"#,
            id
        )
        .fetch_optional(&self.writer)
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
        let arrival_id = id.to_string();
        let (by, name, at) = (actor.id.as_str(), actor.name.as_str(), micros(at));
        // A quarantined message may be set aside (it may be nothing else).
        let updated = sqlx::query!(
            "update arrival set state = 'ecarte', handling = 'ecarte', handled_by = $2, \
               handled_by_name = $3, handled_at_us = $4, motivation = $5 \
             where arrival_id = $1 and state in ('nouveau', 'quarantaine')",
            arrival_id,
            by,
            name,
            at,
            motivation,
        )
        .execute(&self.writer)
        .await?;
        match self.one_arrival(id).await? {
            None => Err(StoreError::ArrivalNotFound),
            Some(a) if updated.rows_affected() == 1 => Ok(a),
            Some(a) => Err(StoreError::ArrivalHandled { state: a.state }),
        }
    }

    pub(crate) async fn all_arrival_files(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"select raw_sha256 as "sha256!: String" from arrival
               union
               select a.value ->> 'sha256' as "sha256!: String"
               from arrival, json_each(arrival.attachments) a
               where a.value ->> 'sha256' is not null"#
        )
        .fetch_all(&self.reader)
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
        }
        .as_str();
        let (id, date, now) = (Uuid::now_v7().to_string(), date.to_string(), micros(now));
        let inserted = sqlx::query!(
            "insert into outgoing_message (message_id, kind, recipient, digest_agency, \
               digest_date, status, next_attempt_at_us, created_at_us) \
             values ($1, 'digest', $2, $3, $4, $5, $6, $6) \
             on conflict (kind, digest_agency, digest_date) do nothing",
            id,
            recipient,
            agency,
            date,
            status,
            now,
        )
        .execute(&self.writer)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    pub(crate) async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<OutgoingRecord>, StoreError> {
        let token = Uuid::now_v7().to_string();
        let (until, now, limit) = (micros(now + lease), micros(now), i64::from(limit));
        // One statement on the one writer: the rows it picks are claimed
        // before any other claim reads them.
        sqlx::query!(
            "update outgoing_message set claim_token = $3, claimed_until_us = $4, \
               attempts = attempts + 1 \
             where message_id in (select message_id from outgoing_message \
               where status = 'en_attente' and next_attempt_at_us <= $1 \
                 and (claimed_until_us is null or claimed_until_us <= $1) \
               order by next_attempt_at_us, message_id limit $2)",
            now,
            limit,
            token,
            until,
        )
        .execute(&self.writer)
        .await?;
        sqlx::query_as!(
            OutgoingRow,
            r#"select message_id as "message_id!", dossier_id as "dossier_id?",
                 event_seq as "event_seq?", kind as "kind!", recipient as "recipient?",
                 digest_agency as "digest_agency?", digest_date as "digest_date?",
                 status as "status!", attempts as "attempts!",
                 next_attempt_at_us as "next_attempt_at_us!", last_error as "last_error?",
                 claim_token as "claim_token?", claimed_until_us as "claimed_until_us?",
                 created_at_us as "created_at_us!", sent_at_us as "sent_at_us?"
               from outgoing_message where claim_token = $1
               order by next_attempt_at_us, message_id"#,
            token
        )
        .fetch_all(&self.writer)
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
        let (id, claim, at) = (id.to_string(), claim.to_string(), micros(at));
        let updated = sqlx::query!(
            "update outgoing_message set status = 'envoye', sent_at_us = $3, \
               claim_token = null, claimed_until_us = null, last_error = null \
             where message_id = $1 and claim_token = $2 and status = 'en_attente'",
            id,
            claim,
            at,
        )
        .execute(&self.writer)
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
        let (id, claim, retry_at) = (id.to_string(), claim.to_string(), retry_at.map(micros));
        let updated = sqlx::query!(
            "update outgoing_message set \
               status = case when $4 is null then 'echec' else 'en_attente' end, \
               next_attempt_at_us = coalesce($4, next_attempt_at_us), last_error = $3, \
               claim_token = null, claimed_until_us = null \
             where message_id = $1 and claim_token = $2 and status = 'en_attente'",
            id,
            claim,
            error,
            retry_at,
        )
        .execute(&self.writer)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    pub(crate) async fn messages_of(
        &self,
        id: DossierId,
    ) -> Result<Vec<OutgoingRecord>, StoreError> {
        let id = id.to_string();
        sqlx::query_as!(
            OutgoingRow,
            r#"select message_id as "message_id!", dossier_id as "dossier_id?",
                 event_seq as "event_seq?", kind as "kind!", recipient as "recipient?",
                 digest_agency as "digest_agency?", digest_date as "digest_date?",
                 status as "status!", attempts as "attempts!",
                 next_attempt_at_us as "next_attempt_at_us!", last_error as "last_error?",
                 claim_token as "claim_token?", claimed_until_us as "claimed_until_us?",
                 created_at_us as "created_at_us!", sent_at_us as "sent_at_us?"
               from outgoing_message where dossier_id = $1
               order by created_at_us, message_id"#,
            id
        )
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(OutgoingRow::record)
        .collect()
    }
}

/// Refuses a transition whose arrival is unknown or no longer `nouveau`.
/// The one writer holds the database until the commit: what this reads
/// cannot move before the arrival is marked.
pub(crate) async fn check_arrival(
    tx: &mut Transaction<'_, Sqlite>,
    id: Uuid,
) -> Result<(), StoreError> {
    let id = id.to_string();
    let state = sqlx::query_scalar!("select state from arrival where arrival_id = $1", id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::ArrivalNotFound)?;
    match ArrivalState::read("arrival.state", &state)? {
        ArrivalState::Nouveau => Ok(()),
        state => Err(StoreError::ArrivalHandled { state }),
    }
}

/// Marks the arrival of `req` handled by its event (`seq` of `dossier`),
/// only while it is still `nouveau`.
pub(crate) async fn handle_arrival(
    tx: &mut Transaction<'_, Sqlite>,
    req: &TransitionRequest,
    id: Uuid,
    actor: &Actor,
    dossier: DossierId,
    seq: u64,
) -> Result<(), StoreError> {
    let arrival_id = id.to_string();
    let how = handling(req).as_str();
    let (by, name, at) = (actor.id.as_str(), actor.name.as_str(), micros(req.now));
    let (dossier, seq) = (dossier.to_string(), to_i64(seq));
    let updated = sqlx::query!(
        "update arrival set state = 'traite', handling = $2, handled_by = $3, \
           handled_by_name = $4, handled_at_us = $5, dossier_id = $6, event_seq = $7 \
         where arrival_id = $1 and state = 'nouveau'",
        arrival_id,
        how,
        by,
        name,
        at,
        dossier,
        seq,
    )
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(match check_arrival(tx, id).await {
            Ok(()) => StoreError::Other("courrier arrivé resté nouveau".into()),
            Err(e) => e,
        });
    }
    Ok(())
}

/// Writes the letters events cause, in their transaction.
pub(crate) async fn write_letters<'l>(
    tx: &mut Transaction<'_, Sqlite>,
    letters: impl IntoIterator<Item = &'l Letter>,
) -> Result<(), StoreError> {
    let letters: Vec<&Letter> = letters.into_iter().collect();
    if letters.is_empty() {
        return Ok(());
    }
    let document = serde_json::to_string(&letters)?;
    sqlx::query!(
        "insert into outgoing_message (message_id, dossier_id, event_seq, kind, recipient, \
           status, next_attempt_at_us, created_at_us) \
         select value ->> 'message_id', value ->> 'dossier_id', value ->> 'event_seq', \
           value ->> 'kind', value ->> 'recipient', value ->> 'status', \
           value ->> 'created_at_us', value ->> 'created_at_us' \
         from json_each($1)",
        document
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
