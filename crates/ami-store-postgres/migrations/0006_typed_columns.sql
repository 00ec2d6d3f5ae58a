-- Typed columns (issue 11). The schema was written for the SQL that SQLite
-- and PostgreSQL shared: ids as text, instants as bigint microseconds,
-- JSON as text. Each database now has its own store, so PostgreSQL gets
-- the types its operators expect, converted in place, every row kept:
--
-- * ids are `uuid`: `dossier_id` everywhere, `api_token.token_id` and
--   `web_session.token_id` (all written from Rust's `Uuid`, so every value
--   converts; one that did not would abort the migration, changing nothing);
-- * instants are `timestamptz`, renamed without their `_us` suffix, to the
--   microsecond exactly (`timestamptz` keeps microseconds, as the bigint
--   did);
-- * the projection's JSON, `dossier.body`, is `jsonb`: rebuilt from the
--   journal at will, it can be queried with jsonb's operators and indexes
--   (a body holding `\u0000`, which jsonb refuses, would abort the
--   migration likewise; none can, see below);
-- * numbers (wave, version, seq, status, event ids, global places) were
--   `bigint` already.
--
-- The event's body, `dossier_event.body`, stays `text`: it holds the
-- event's canonical JSON (RFC 8785), the very bytes its digest covers and
-- the global chain covers in turn. Kept as text, anyone can check a digest
-- with SQL and any SHA-256, and the audit hashes what is stored. As jsonb,
-- PostgreSQL would keep a re-ordered, re-spaced value (numbers as
-- `numeric`), and every read needing the proof (the audit, the history's
-- content, the rebuild) would have to canonicalize it again, trusting
-- that this gives back the same bytes for every event ever written, old
-- ones included: the proof would rest on a re-encoding instead of on what
-- was signed off. (jsonb also refuses `\u0000`. None reaches an event
-- today: the API refuses or replaces control characters in every text an
-- event carries (`check_line`, `check_text`, file names), and a definition
-- whose version held one could not be recorded in `definition_version`;
-- but a journal should not depend on those rules staying so.)
--
-- The tables are rewritten under an exclusive lock: the service waits for
-- the migration, which one instance runs at its start.

-- Microseconds since 1970 as an instant, exactly: whole seconds and the
-- microseconds left, each product exact in the double precision that
-- interval arithmetic uses (a product of the whole microseconds would not
-- be beyond 2^53 of them). The group write converts its JSON document's
-- instants with it too.
create function ami_instant(us bigint) returns timestamptz
language sql immutable strict parallel safe as $$
    select timestamptz 'epoch' + (us / 1000000) * interval '1 second'
        + (us % 1000000) * interval '1 microsecond'
$$;

-- Indexes and constraints on the changed columns (primary keys, the
-- journal's unique (dossier_id, seq), dossier_by_received, _by_state,
-- _by_wave, _by_awaiting, web_session_by_token) are rebuilt by the type
-- changes themselves; renaming a column keeps them. Each table is
-- rewritten once: its changes go in one statement.
alter table dossier_event
    alter column dossier_id type uuid using dossier_id::uuid,
    alter column at_us type timestamptz using ami_instant(at_us);
alter table dossier_event rename column at_us to occurred_at;

alter table dossier
    alter column dossier_id type uuid using dossier_id::uuid,
    alter column received_at_us type timestamptz using ami_instant(received_at_us),
    alter column updated_at_us type timestamptz using ami_instant(updated_at_us),
    alter column body type jsonb using body::jsonb;
alter table dossier rename column received_at_us to received_at;
alter table dossier rename column updated_at_us to updated_at;

-- The search table and its trigram index stay; the insert trigger copies
-- the dossier's id, now a uuid on both sides.
alter table dossier_search
    alter column dossier_id type uuid using dossier_id::uuid;

alter table api_token
    alter column token_id type uuid using token_id::uuid,
    alter column created_at_us type timestamptz using ami_instant(created_at_us),
    alter column revoked_at_us type timestamptz using ami_instant(revoked_at_us);
alter table api_token rename column created_at_us to created_at;
alter table api_token rename column revoked_at_us to revoked_at;

alter table idempotency
    alter column created_at_us type timestamptz using ami_instant(created_at_us);
alter table idempotency rename column created_at_us to created_at;

alter table web_session
    alter column token_id type uuid using token_id::uuid,
    alter column created_at_us type timestamptz using ami_instant(created_at_us),
    alter column last_seen_at_us type timestamptz using ami_instant(last_seen_at_us);
alter table web_session rename column created_at_us to created_at;
alter table web_session rename column last_seen_at_us to last_seen_at;

alter table definition_version
    alter column activated_at_us type timestamptz using ami_instant(activated_at_us);
alter table definition_version rename column activated_at_us to activated_at;
