-- Mail in and mail out (issue 13).
--
-- An arrival is a message received in the AMI mailbox, imported once: its
-- dedup key (the Message-ID, or the SHA-256 of the raw message when it has
-- none) is unique, so an import run twice, or by two instances at once,
-- keeps one row. The raw message and its attachments are files of the
-- content-addressed file storage; the row keeps their digests, which the
-- files' garbage collection must not remove. Handled once: the handling
-- columns are written only while the state is `nouveau` (`quarantaine` too
-- for setting aside), in the transaction of the dossier's event that
-- handles it (`event_seq`), or alone when it is set aside (`ecarte`: the
-- row is then its own record).
create table arrival (
    arrival_id text primary key,
    dedup_key text not null unique,
    message_id text,
    sender text not null,
    sender_name text,
    subject text not null,
    received_at_us integer not null,
    wave integer,
    state text not null
        check (state in ('nouveau', 'quarantaine', 'traite', 'ecarte')),
    quarantine_reason text,
    text text not null,
    raw_sha256 text not null,
    raw_size integer not null,
    -- [{filename, media_type, size, sha256}]
    attachments text not null,
    imported_at_us integer not null,
    source text not null,
    handled_by text,
    handled_by_name text,
    handled_at_us integer,
    handling text check (handling in ('depot', 'rattachement', 'ecarte')),
    motivation text,
    dossier_id text,
    event_seq integer
);
-- The lists: all arrivals, or those of one state, in reception order.
create index arrival_by_received on arrival (received_at_us, arrival_id);
create index arrival_by_state on arrival (state, received_at_us, arrival_id);

-- A letter to send, written in the transaction of the event that causes it
-- (an accusé de réception at a deposit, a decision at a final state), or
-- enqueued once per agency and day (the digest). It holds no text: the
-- sender renders the letter from the dossier's history at `event_seq`.
-- One letter of a kind per event, one digest per agency and day: a unique
-- key each (NULLs differ, so each key binds only its own kind's rows).
-- A sender claims a letter until `claimed_until` under a `claim_token` of
-- its own: only that claim may record the outcome.
create table outgoing_message (
    message_id text primary key,
    dossier_id text,
    event_seq integer,
    kind text not null check (kind in ('accuse_reception', 'decision', 'digest')),
    recipient text,
    digest_agency text,
    digest_date text,
    status text not null
        check (status in ('en_attente', 'envoye', 'echec', 'sans_destinataire')),
    attempts integer not null default 0,
    next_attempt_at_us integer not null,
    last_error text,
    claim_token text,
    claimed_until_us integer,
    created_at_us integer not null,
    sent_at_us integer,
    unique (dossier_id, event_seq, kind),
    unique (kind, digest_agency, digest_date)
);
-- What is due: the letters waiting, by when.
create index outgoing_message_due on outgoing_message (next_attempt_at_us)
    where status = 'en_attente';
