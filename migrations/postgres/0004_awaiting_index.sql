-- « À traiter »: the dossiers waiting on an agency, in reception order. The
-- `awaiting` column holds one of a few lists (`,dar,`, `,acv,ti,`…); the
-- queries ask for the exact lists that name the agency, which this index
-- serves, instead of reading every dossier with LIKE.
create index dossier_by_awaiting on dossier (awaiting, received_at_us, dossier_id);
