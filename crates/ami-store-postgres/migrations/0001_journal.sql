-- The journal of events and the projection of each dossier, written in one
-- transaction per transition. Identifiers are UUIDs stored as text (the same
-- queries serve SQLite); instants used for sorting are bigint microseconds
-- since the Unix epoch (UTC).

-- Append-only journal. `event_id` orders events of one dossier but, with
-- several writers, sequence values are not handed out in commit order; the
-- feed therefore orders by the writing transaction's id and only shows
-- events of transactions older than every transaction still running
-- (`xact_id < pg_snapshot_xmin(pg_current_snapshot())`), so a consumer
-- following its cursor never skips an event that commits late.
create table dossier_event (
    event_id bigserial primary key,
    dossier_id text not null,
    seq bigint not null,
    action text not null,
    agency text not null,
    actor_id text not null,
    at_us bigint not null,
    -- The whole ami-core event as JSON (the source of truth).
    body text not null,
    -- SHA-256 of the previous event's digest and this event's canonical JSON.
    digest text not null,
    xact_id xid8 not null default pg_current_xact_id(),
    -- One event per (dossier, sequence number): no duplicate, no fork.
    unique (dossier_id, seq)
);
create index dossier_event_feed on dossier_event (xact_id, event_id);

-- Current state of each dossier, rebuilt from the journal at will.
create table dossier (
    dossier_id text primary key,
    reference text not null unique,
    wave bigint not null,
    state text not null,
    version bigint not null,
    programmes text not null,      -- ',acv,ti,' for LIKE filters
    search text not null,          -- lower-cased commune, reference, porteur
    -- Agencies the dossier waits on, ',acv,'. Filters on it (and on `search`)
    -- walk `dossier_by_received` and stop at the first page's worth of rows.
    awaiting text not null,
    received_at_us bigint not null,
    updated_at_us bigint not null,
    -- Digest of the last event, the link the next event chains to.
    last_digest text not null,
    -- The ami-core dossier as JSON.
    body text not null
);
create index dossier_by_received on dossier (received_at_us, dossier_id);
create index dossier_by_state on dossier (state, received_at_us, dossier_id);
create index dossier_by_wave on dossier (wave, received_at_us, dossier_id);

-- Numbers of dossier references (AMI2-V1-0007); gaps after a rollback are fine.
create sequence dossier_number;

-- Bearer tokens. Only a SHA-256 of the secret is kept.
create table api_token (
    token_id text primary key,
    person_id text not null,
    name text not null,
    agency text not null,
    role text not null,
    secret_sha256 text not null,
    created_at_us bigint not null,
    revoked_at_us bigint
);

-- First answer to each request sent with an Idempotency-Key, per person.
create table idempotency (
    actor_id text not null,
    idempotency_key text not null,
    request_sha256 text not null,
    status bigint not null,
    body text not null,
    created_at_us bigint not null,
    primary key (actor_id, idempotency_key)
);
