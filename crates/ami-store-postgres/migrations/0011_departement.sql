-- Issue 12: the département of a dossier's commune, read off its code
-- INSEE as the official geographic code writes it (two characters, 2A and
-- 2B for Corsica; three for the départements d'outre-mer, 971 to 976), so
-- that lists filter by département or région through an index and the
-- counts group by them. Generated: it cannot drift from the code.
alter table dossier add column departement text generated always as (
    case when code_insee like '97%' then substr(code_insee, 1, 3)
         else substr(code_insee, 1, 2) end
) stored;
create index dossier_by_departement on dossier (departement, received_at, dossier_id);
