//! The outbox worker: sends the letters the store wrote with their events
//! (accusé de réception, decision) and the agencies' daily digests, through
//! an SMTP relay, retrying with a growing wait.
//!
//! Guarantees, with the store's:
//! - a letter is written in the same transaction as the event that causes
//!   it: no event without its letter, no letter without its event;
//! - a sender claims letters for a lease ([`LEASE`] unless
//!   [`OutboxSettings::lease`] says otherwise): two instances never send
//!   the same letter while a claim holds;
//! - sending is at least once: an instance that stops between the relay's
//!   « 250 » and `mark_sent` (a crash, a lost database) leaves the letter
//!   claimed; once the lease runs out another attempt sends it again. It
//!   goes with the same `Message-ID` (made from the outbox row's id), so
//!   that a mail client shows the two copies as one.
//!
//! The letters are rendered when sent, from the journal: the dossier as it
//! was right after the event that caused the letter (see [`render`]).

use std::sync::Arc;
use std::time::Duration;

use ami_core::{Definition, Dossier, DossierId, Payload};
use ami_mail::{AccuseReception, Decision, Digest, DigestLine, Letter};
use anyhow::{bail, Context as _};
use chrono::{DateTime, NaiveDate, Timelike as _, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::smtp::SmtpSender;
use crate::http::Clock;
use crate::store::mail::{OutgoingKind, OutgoingRecord};
use crate::store::{awaiting_columns, DossierFilter, ListCursor, Store};

/// How long a claim holds: longer than a send may take (a connection and
/// each SMTP command time out after [`super::smtp::SMTP_TIMEOUT`]).
pub const LEASE: chrono::Duration = chrono::Duration::minutes(10);
/// Letters claimed at once.
const BATCH: u32 = 20;

/// How the worker sends, and to whom the digests go.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// The relay; `None`: letters wait in the outbox, nothing is sent.
    pub sender: Option<SmtpSender>,
    /// The `From` of the letters (`AMI <ami@ville.fr>`).
    pub from: String,
    /// The address the letters give to write to.
    pub contact: String,
    /// Each agency's digest address (`--digest-to dar=a@x`).
    pub digest_to: Vec<(String, String)>,
    /// The hour (local time of the campaign) from which the day's digests
    /// are enqueued.
    pub digest_hour: u32,
    /// How often the worker looks for letters to send.
    pub tick: Duration,
    /// Wait before the first retry; doubled at each attempt.
    pub first_retry: chrono::Duration,
    /// Longest wait between two attempts.
    pub max_retry: chrono::Duration,
    /// Attempts after which a letter is given up (`echec`).
    pub max_attempts: u32,
    /// How long a claim holds ([`LEASE`]): a letter claimed by a sender
    /// that died is sent by another once it runs out. Shorter than a send
    /// may take, two instances could send one letter twice.
    pub lease: chrono::Duration,
    /// The service's address, for the links of the digest.
    pub public_url: Option<String>,
}

impl OutboxSettings {
    /// The defaults: a look every 5 s, retries after 1 min, 2 min, 4 min…
    /// up to 6 h, given up after 12 attempts; digests from 08:00.
    pub fn new(sender: Option<SmtpSender>, from: &str, contact: &str) -> OutboxSettings {
        OutboxSettings {
            sender,
            from: from.to_string(),
            contact: contact.to_string(),
            digest_to: Vec::new(),
            digest_hour: 8,
            tick: Duration::from_secs(5),
            first_retry: chrono::Duration::minutes(1),
            max_retry: chrono::Duration::hours(6),
            max_attempts: 12,
            lease: LEASE,
            public_url: None,
        }
    }

    /// When to try again after `attempts` attempts: `first_retry × 2^(attempts-1)`,
    /// at most `max_retry`; `None` once `max_attempts` are spent.
    pub fn retry_after(&self, attempts: u32) -> Option<chrono::Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let factor = 1i32 << attempts.saturating_sub(1).min(20);
        Some((self.first_retry * factor).min(self.max_retry))
    }
}

/// Reads `--digest-to` values: `agency=address`, several separated by
/// commas (`dar=a@x,acv=b@y`).
pub fn parse_digest_to(
    def: &Definition,
    values: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in values.iter().flat_map(|v| v.split(',')) {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((agency, address)) = pair.split_once('=') else {
            bail!("--digest-to « {pair} » : AGENCE=ADRESSE attendu (dar=dar@cnam.fr)");
        };
        let (agency, address) = (agency.trim(), address.trim());
        if !def.has_agency(agency) {
            bail!(
                "--digest-to : agence « {agency} » inconnue de la définition ({})",
                def.agencies()
                    .iter()
                    .map(|a| a.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if address.parse::<lettre::Address>().is_err() {
            bail!("--digest-to : adresse « {address} » illisible pour l'agence {agency}");
        }
        out.push((agency.to_string(), address.to_string()));
    }
    Ok(out)
}

/// A running worker.
pub struct Outbox {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Outbox {
    /// Starts the worker on `store`; it looks at the outbox every
    /// `settings.tick`, and at once when `wake` is notified (the
    /// service's [`crate::http::AppState::letters`]).
    pub fn spawn(
        store: Arc<dyn Store>,
        definition: Arc<Definition>,
        settings: OutboxSettings,
        clock: Clock,
        wake: Arc<Notify>,
    ) -> Outbox {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(store, definition, settings, clock, wake, stop.clone()));
        Outbox { stop, task }
    }

    /// Stops it once the letter being sent is recorded.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn run(
    store: Arc<dyn Store>,
    def: Arc<Definition>,
    settings: OutboxSettings,
    clock: Clock,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    match &settings.sender {
        Some(sender) => {
            tracing::info!(smtp = %sender, from = %settings.from, "outbox: sending letters")
        }
        None => tracing::info!(
            "outbox: no --smtp-url, letters are kept in the outbox and nothing is sent"
        ),
    }
    let mut digests_done: Option<NaiveDate> = None;
    loop {
        let now = clock.now();
        if digests_done != Some(local_day(&def, now)) {
            match enqueue_digests(&*store, &def, &settings, now).await {
                Ok(Some(day)) => digests_done = Some(day),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "outbox: enqueuing the digests failed")
                }
            }
        }
        if let Some(sender) = &settings.sender {
            loop {
                match send_due(&*store, &def, &settings, sender, clock, &stop).await {
                    Ok(Batch {
                        claimed,
                        relay_down: false,
                    }) if claimed == BATCH as usize && !stop.is_cancelled() => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "outbox: claiming letters failed; retrying");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(settings.tick) => {}
            () = wake.notified() => {}
        }
    }
    tracing::info!("outbox stopped");
}

fn local_day(def: &Definition, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&def.campaign().time_zone).date_naive()
}

/// From the digest hour on (campaign's time zone), enqueues today's digest
/// of every agency with an address: once per agency and day whichever
/// instance does it. The day, when its hour has come.
pub async fn enqueue_digests(
    store: &dyn Store,
    def: &Definition,
    settings: &OutboxSettings,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<NaiveDate>> {
    let local = now.with_timezone(&def.campaign().time_zone);
    if local.hour() < settings.digest_hour {
        return Ok(None);
    }
    let today = local.date_naive();
    for (agency, address) in &settings.digest_to {
        if store
            .enqueue_digest(agency, today, Some(address), now)
            .await
            .with_context(|| format!("digest de {agency}"))?
        {
            tracing::info!(agency = %agency, date = %today, "outbox: digest enqueued");
        }
    }
    Ok(Some(today))
}

/// What one batch did.
struct Batch {
    claimed: usize,
    /// The relay could not be reached: the rest of the batch was given
    /// back untried, and the next batch waits for the next look.
    relay_down: bool,
}

/// Claims the letters due and sends each. Once the relay cannot be
/// reached (no reply at all), the batch's other letters are not tried:
/// with each connection taking up to its timeout, a batch would outlast its
/// lease.
async fn send_due(
    store: &dyn Store,
    def: &Definition,
    settings: &OutboxSettings,
    sender: &SmtpSender,
    clock: Clock,
    stop: &CancellationToken,
) -> anyhow::Result<Batch> {
    let now = clock.now();
    let claimed = store.claim_outgoing(now, settings.lease, BATCH).await?;
    let n = claimed.len();
    let mut relay_down: Option<String> = None;
    for row in claimed {
        let Some(claim) = row.claim_token else {
            continue;
        };
        if stop.is_cancelled() {
            // Given back rather than left claimed until the lease ends.
            let _ = store
                .mark_failed(row.id, claim, "service arrêté avant l'envoi", Some(now))
                .await;
            continue;
        }
        let outcome = match &relay_down {
            Some(error) => Err(Failure {
                error: error.clone(),
                permanent: false,
                unreachable: true,
            }),
            None => send_one(store, def, settings, sender, &row, now).await,
        };
        if let Err(f) = &outcome {
            if f.unreachable && relay_down.is_none() {
                relay_down = Some(f.error.clone());
            }
        }
        // The service's clock: a test's fixed instant stays fixed.
        let at = clock.now();
        let recorded = match outcome {
            Ok(()) => {
                tracing::info!(message.id = %row.id, kind = %row.kind, "outbox: letter sent");
                store.mark_sent(row.id, claim, at).await
            }
            Err(Failure {
                error, permanent, ..
            }) => {
                let retry = if permanent {
                    None
                } else {
                    settings.retry_after(row.attempts).map(|wait| at + wait)
                };
                match retry {
                    Some(retry_at) => {
                        tracing::warn!(message.id = %row.id, kind = %row.kind, attempts = row.attempts, %retry_at, %error, "outbox: letter not sent; will retry")
                    }
                    None => {
                        tracing::error!(message.id = %row.id, kind = %row.kind, attempts = row.attempts, %error, "outbox: letter given up")
                    }
                }
                store.mark_failed(row.id, claim, &error, retry).await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(message.id = %row.id, "outbox: the claim ran out before the outcome was recorded")
            }
            Err(e) => {
                tracing::warn!(message.id = %row.id, error = %e, "outbox: recording the outcome failed; the letter may be sent again")
            }
        }
    }
    Ok(Batch {
        claimed: n,
        relay_down: relay_down.is_some(),
    })
}

struct Failure {
    error: String,
    permanent: bool,
    /// No reply from the relay (connection refused, timeout).
    unreachable: bool,
}

async fn send_one(
    store: &dyn Store,
    def: &Definition,
    settings: &OutboxSettings,
    sender: &SmtpSender,
    row: &OutgoingRecord,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    // Not rendered or not built: the same would fail again, give up.
    let permanent = |e: anyhow::Error| Failure {
        error: format!("{e:#}"),
        permanent: true,
        unreachable: false,
    };
    let Some(to) = row.recipient.as_deref() else {
        return Err(permanent(anyhow::anyhow!("pas de destinataire")));
    };
    let letter = render(
        store,
        def,
        row,
        &settings.contact,
        settings.public_url.as_deref(),
    )
    .await
    .map_err(permanent)?;
    let message = letter
        .to_message(&settings.from, to, &message_id(row, sender), now)
        .map_err(|e| permanent(e.into()))?;
    sender.send(message).await.map_err(|e| Failure {
        error: e.to_string(),
        permanent: e.is_permanent(),
        unreachable: e.is_transient() && e.code().is_none(),
    })
}

/// The `Message-ID` of a letter: its outbox id at the sender's domain, the
/// same at every attempt.
pub fn message_id(row: &OutgoingRecord, sender: &SmtpSender) -> String {
    format!("{}@{}", row.id, sender.from_mailbox().email.domain())
}

/// The letter of an outbox row, as the worker sends it.
pub async fn render(
    store: &dyn Store,
    def: &Definition,
    row: &OutgoingRecord,
    contact: &str,
    public_url: Option<&str>,
) -> anyhow::Result<Letter> {
    match row.kind {
        OutgoingKind::AccuseReception | OutgoingKind::Decision => {
            let (Some(id), Some(seq)) = (row.dossier_id, row.event_seq) else {
                bail!("courrier {} sans dossier ni événement", row.id);
            };
            if row.kind == OutgoingKind::AccuseReception {
                render_accuse(store, def, id, seq, contact).await
            } else {
                render_decision(store, def, id, seq, contact).await
            }
        }
        OutgoingKind::Digest => {
            let (Some(agency), Some(date)) = (row.digest_agency.as_deref(), row.digest_date) else {
                bail!("digest {} sans agence ni date", row.id);
            };
            render_digest(store, def, agency, date, public_url).await
        }
    }
}

/// The dossier right after its event `seq`, and that event. The letter
/// says what the event did, not what happened since (a pièce received
/// later, a reopening): when the dossier's version is `seq` it is used as
/// it is, otherwise its journal is folded up to `seq`.
async fn dossier_at(
    store: &dyn Store,
    id: DossierId,
    seq: u64,
) -> anyhow::Result<(Dossier, ami_core::Event)> {
    let events = store.history(id).await?;
    let Some(event) = events.iter().find(|e| e.event.seq == seq) else {
        bail!("dossier {id} : pas d'événement {seq}");
    };
    let event = event.event.clone();
    if let Some(d) = store.get_dossier(id).await? {
        if d.version == seq {
            return Ok((d, event));
        }
    }
    let dossier = ami_core::fold(events.iter().map(|e| &e.event).take_while(|e| e.seq <= seq))
        .context("relecture du journal")?
        .with_context(|| format!("dossier {id} introuvable"))?;
    Ok((dossier, event))
}

/// The accusé de réception of the deposit `seq` of dossier `id`.
pub async fn render_accuse(
    store: &dyn Store,
    def: &Definition,
    id: DossierId,
    seq: u64,
    contact: &str,
) -> anyhow::Result<Letter> {
    let (d, _) = dossier_at(store, id, seq).await?;
    Ok(AccuseReception {
        reference: d.reference.to_string(),
        commune: d.commune.to_string(),
        porteur_nom: d.porteur.nom.to_string(),
        received_at: d.received_at,
        wave: Some(d.wave),
        pieces: d
            .pieces
            .iter()
            .map(|p| {
                let label = def
                    .piece(&p.kind)
                    .map_or_else(|| p.kind.to_string(), |k| k.label.clone());
                (label, p.filename.to_string())
            })
            .collect(),
        contact: contact.to_string(),
    }
    .render()?)
}

/// The decision letter of the event `seq` (to a final state) of dossier
/// `id`: lauréat when it leads to the state `laureat`, refused otherwise,
/// with the event's motivation and the committee's day when a committee
/// decided.
pub async fn render_decision(
    store: &dyn Store,
    def: &Definition,
    id: DossierId,
    seq: u64,
    contact: &str,
) -> anyhow::Result<Letter> {
    let (d, event) = dossier_at(store, id, seq).await?;
    let committee_held_on = match &event.payload {
        Payload::Committee(c) => Some(c.held_on),
        _ => d.committee.as_ref().map(|c| c.held_on),
    };
    Ok(Decision {
        reference: d.reference.to_string(),
        commune: d.commune.to_string(),
        porteur_nom: d.porteur.nom.to_string(),
        laureat: event.to.as_str() == "laureat",
        motivation: event.motivation.as_ref().map(ToString::to_string),
        decided_on: event
            .at
            .with_timezone(&def.campaign().time_zone)
            .date_naive(),
        committee_held_on,
        contact: contact.to_string(),
    }
    .render()?)
}

/// The digest of `agency` on `date`: the dossiers awaiting it now, the
/// earliest last day first (none last).
pub async fn render_digest(
    store: &dyn Store,
    def: &Definition,
    agency: &str,
    date: NaiveDate,
    public_url: Option<&str>,
) -> anyhow::Result<Letter> {
    let Some(agency_def) = def.agency(agency) else {
        bail!("agence « {agency} » inconnue de la définition");
    };
    let mut filter = DossierFilter {
        awaiting_columns: awaiting_columns(def, &[agency.to_string()]),
        limit: 500,
        ..DossierFilter::default()
    };
    let mut awaiting = Vec::new();
    loop {
        let page = store.list_dossiers(&filter).await?;
        for d in &page.items {
            let due = ami_core::deadlines(def, d)
                .into_iter()
                .filter(|dl| dl.agency.as_str() == agency)
                .map(|dl| dl.due)
                .min();
            awaiting.push(DigestLine {
                reference: d.reference.to_string(),
                commune: d.commune.to_string(),
                due,
                overdue: due.is_some_and(|due| due < date),
                url: public_url.map(|u| format!("{}/dossiers/{}", u.trim_end_matches('/'), d.id)),
            });
        }
        match page.next.as_deref().and_then(ListCursor::decode) {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    awaiting.sort_by(|a, b| match (a.due, b.due) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.reference.cmp(&b.reference)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.reference.cmp(&b.reference),
    });
    let overdue_count = awaiting.iter().filter(|l| l.overdue).count();
    Ok(Digest {
        agency_label: agency_def.label.clone(),
        date,
        awaiting,
        overdue_count,
    }
    .render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_its_cap_and_ends_after_the_last_attempt() {
        let s = OutboxSettings::new(None, "ami@ville.fr", "ami@ville.fr");
        assert_eq!(s.retry_after(1), Some(chrono::Duration::minutes(1)));
        assert_eq!(s.retry_after(2), Some(chrono::Duration::minutes(2)));
        assert_eq!(s.retry_after(4), Some(chrono::Duration::minutes(8)));
        assert_eq!(s.retry_after(11), Some(chrono::Duration::hours(6)));
        assert_eq!(s.retry_after(12), None);
    }

    #[test]
    fn digest_addresses_are_read_per_agency() {
        let def = Definition::ami2();
        let parsed =
            parse_digest_to(&def, &["dar=a@x.fr,acv=b@y.fr".into(), "ti=c@z.fr".into()]).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0], ("dar".to_string(), "a@x.fr".to_string()));
        assert!(parse_digest_to(&def, &["anct=a@x.fr".into()]).is_err());
        assert!(parse_digest_to(&def, &["dar".into()]).is_err());
        assert!(parse_digest_to(&def, &["dar=pas une adresse".into()]).is_err());
    }
}
