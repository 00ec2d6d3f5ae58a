-- A wave's selection committee: its session kept whole as one JSON
-- document (date, members, minutes, decisions), written once with the
-- events of its decisions, which name it.
create table committee (
    committee_id text primary key,
    wave integer not null,
    held_on text not null,
    recorded_at_us integer not null,
    body text not null
);
create index committee_by_wave on committee (wave, held_on, recorded_at_us);
