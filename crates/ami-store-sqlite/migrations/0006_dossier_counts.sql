-- Issue 11: the counts of the dashboard and of `/stats`, kept as dossiers
-- change rather than counted at every read (a million dossiers took
-- seconds). One row per combination of what the counts are grouped and
-- filtered by; a handful of rows whatever the number of dossiers. Triggers
-- keep them in the transaction of every write of `dossier` (transitions,
-- deposits, migrations, rebuilds), so they never drift from it; `ami audit
-- verify` checks that they do not.
create table dossier_count (
    wave integer not null,
    state text not null,
    programmes text not null,
    awaiting text not null,
    n integer not null,
    primary key (wave, state, programmes, awaiting)
) without rowid;

insert into dossier_count (wave, state, programmes, awaiting, n)
select wave, state, programmes, awaiting, count(*) from dossier
group by wave, state, programmes, awaiting;

create trigger dossier_count_insert after insert on dossier begin
    insert into dossier_count (wave, state, programmes, awaiting, n)
    values (new.wave, new.state, new.programmes, new.awaiting, 1)
    on conflict (wave, state, programmes, awaiting) do update set n = n + 1;
end;

create trigger dossier_count_delete after delete on dossier begin
    update dossier_count set n = n - 1
    where wave = old.wave and state = old.state and programmes = old.programmes
      and awaiting = old.awaiting;
end;

-- Most transitions change the state or what the dossier waits on; a new
-- pièce changes neither and leaves the counts alone.
create trigger dossier_count_update after update of wave, state, programmes, awaiting on dossier
when old.wave is not new.wave or old.state is not new.state
  or old.programmes is not new.programmes or old.awaiting is not new.awaiting
begin
    update dossier_count set n = n - 1
    where wave = old.wave and state = old.state and programmes = old.programmes
      and awaiting = old.awaiting;
    insert into dossier_count (wave, state, programmes, awaiting, n)
    values (new.wave, new.state, new.programmes, new.awaiting, 1)
    on conflict (wave, state, programmes, awaiting) do update set n = n + 1;
end;
