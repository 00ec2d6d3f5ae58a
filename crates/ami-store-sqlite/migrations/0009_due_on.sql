-- The earliest last day among the deadlines of the agencies a dossier
-- waits on (computed by the engine at each write, as `awaiting` is), as
-- 'YYYY-MM-DD', which compares as dates; null when it waits on none.
-- Dossiers written before this get it at their next write, or at once by
-- `ami workflow migrate` (which rewrites every open dossier).
alter table dossier add column due_on text;
create index dossier_by_due on dossier (due_on, awaiting) where due_on is not null;
