-- The counts of the dashboard and of `/stats`, kept as dossiers change
-- rather than counted at every read (1.5–2.7 s at a million dossiers). One
-- row per combination of what the counts are grouped and filtered by, and
-- per shard; a few hundred rows whatever the number of dossiers. A trigger
-- keeps them in the transaction of every write of `dossier` (transitions,
-- deposits, migrations, rebuilds), so they never drift from it; `ami audit
-- verify` checks that they do not.
--
-- Each connection adds to its own shard (its backend's pid modulo 64):
-- concurrent deposits of one wave would otherwise all wait on one counter
-- row, each until the other's commit, and commit one after another.
create table dossier_count (
    wave bigint not null,
    state text not null,
    programmes text not null,
    awaiting text not null,
    shard smallint not null,
    n bigint not null,
    primary key (wave, state, programmes, awaiting, shard)
);

insert into dossier_count (wave, state, programmes, awaiting, shard, n)
select wave, state, programmes, awaiting, 0, count(*) from dossier
group by wave, state, programmes, awaiting;

create function dossier_count_change() returns trigger language plpgsql as $$
declare
    this_shard smallint := pg_backend_pid() % 64;
begin
    if tg_op <> 'INSERT' then
        insert into dossier_count (wave, state, programmes, awaiting, shard, n)
        values (old.wave, old.state, old.programmes, old.awaiting, this_shard, -1)
        on conflict (wave, state, programmes, awaiting, shard)
        do update set n = dossier_count.n - 1;
    end if;
    if tg_op <> 'DELETE' then
        insert into dossier_count (wave, state, programmes, awaiting, shard, n)
        values (new.wave, new.state, new.programmes, new.awaiting, this_shard, 1)
        on conflict (wave, state, programmes, awaiting, shard)
        do update set n = dossier_count.n + 1;
    end if;
    return null;
end
$$;

create trigger dossier_count_insert_delete after insert or delete on dossier
for each row execute function dossier_count_change();

-- A new pièce changes neither the state nor what the dossier waits on and
-- leaves the counts alone.
create trigger dossier_count_update after update of wave, state, programmes, awaiting on dossier
for each row
when (old.wave is distinct from new.wave or old.state is distinct from new.state
      or old.programmes is distinct from new.programmes
      or old.awaiting is distinct from new.awaiting)
execute function dossier_count_change();
