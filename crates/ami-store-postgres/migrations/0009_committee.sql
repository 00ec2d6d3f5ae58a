-- A wave's selection committee: its session kept whole as one document
-- (date, members, minutes, decisions), written once with the events of
-- its decisions, which name it.
create table committee (
    committee_id uuid primary key,
    wave integer not null,
    held_on date not null,
    recorded_at timestamptz not null,
    body jsonb not null
);
create index committee_by_wave on committee (wave, held_on, recorded_at);
