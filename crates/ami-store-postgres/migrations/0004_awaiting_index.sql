-- « À traiter »: the dossiers waiting on an agency, in reception order. The
-- `awaiting` column holds one of a few lists (`,dar,`, `,acv,ti,`…); the
-- queries ask for the exact lists that name the agency, which this index
-- serves instead of reading every dossier with LIKE. It carries the other
-- columns a queue is filtered on, so that its counts read the index alone.
create index dossier_by_awaiting on dossier (awaiting, received_at_us, dossier_id, wave, state, programmes);
