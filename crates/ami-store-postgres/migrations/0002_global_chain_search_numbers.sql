-- Issue 7: a global digest chain over the whole journal, the commune's INSEE
-- code for duplicate checks, search keys folded for accents with a trigram
-- index, and reference numbers counted per wave.

-- Each event's place in the global chain: `global_digest` is SHA-256 over
-- the previous place's `global_digest` (hex) and the event's `digest` (hex),
-- so removing any event, the last ones included, is seen by `ami audit
-- verify` and by anyone who kept a head (`ami audit head`). Places are given
-- just after commit, in turn, under the head's row lock (the service seals
-- in the background), so that transitions of different dossiers never wait
-- on one another. They live beside the journal, not in it: sealing adds a
-- small row instead of rewriting the event and its indexes.
create table journal_chain (
    event_id bigint primary key,
    global_seq bigint not null unique,
    global_digest text not null
);
-- Events written but not sealed yet: each transition adds its event here,
-- the sealer takes them out. Every event already in the journal waits here
-- for its place, in the order it was written.
create table journal_pending (
    event_id bigint primary key
);
insert into journal_pending (event_id) select event_id from dossier_event;

-- The head of the global chain: the last event's place and digest.
create table journal_head (
    singleton integer primary key check (singleton = 1),
    global_seq bigint not null,
    global_digest text not null
);
insert into journal_head (singleton, global_seq, global_digest)
values (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- A commune has one dossier per campaign unless the DAR confirms a second.
alter table dossier add column code_insee text not null default '';
update dossier set code_insee = body::json ->> 'code_insee';
create index dossier_by_code_insee on dossier (code_insee);

-- `search` now holds the folded text (no accents, lower case) of the
-- commune, porteur, reference and INSEE code; the service recomputes the
-- rows this migration empties when it starts.
update dossier set search = '';
-- A trigram index of the search keys, in a table of its own: `like '%…%'`
-- reads the index, not every row, and the projection's updates (one per
-- transition) never touch it. Keys never change once a dossier is created;
-- `ami rebuild` and the service's upgrade refill it as a whole.
create extension if not exists pg_trgm;
create table dossier_search (
    dossier_id text primary key,
    search text not null
);
create index dossier_search_trigrams on dossier_search using gin (search gin_trgm_ops);
create function dossier_search_insert() returns trigger language plpgsql as $$
begin
    insert into dossier_search (dossier_id, search) values (new.dossier_id, new.search);
    return new;
end
$$;
create trigger dossier_search_insert after insert on dossier
    for each row execute function dossier_search_insert();

-- Reference numbers per wave (AMI2-V2-0001 is wave 2's first dossier), from
-- one sequence per wave, `reference_wave_N`, which the service creates the
-- first time a deposit falls in wave N: a sequence never makes a deposit
-- wait for another one's commit. A database numbered across waves goes on
-- after its last number in each wave it used, so that no reference is given
-- twice.
do $$
declare
    last_number bigint;
    w record;
begin
    select case when is_called then last_value else 0 end into last_number from dossier_number;
    for w in select distinct wave from dossier loop
        execute format('create sequence reference_wave_%s start with %s', w.wave, last_number + 1);
    end loop;
end
$$;
drop sequence dossier_number;
