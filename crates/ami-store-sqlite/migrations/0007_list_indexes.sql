-- Lists of one wave among dossiers waiting on an agency, or in a state:
-- waves come in reception order, so walking the third wave's dossiers in
-- an index of all of them read the first two waves' first (12 ms at
-- 200,000 dossiers, growing with them). With the wave beside the agency
-- or the state, each wave is a range of its own.
create index dossier_by_awaiting_wave on dossier
    (awaiting, wave, received_at_us, dossier_id, state, programmes);
create index dossier_by_state_wave on dossier (state, wave, received_at_us, dossier_id);
