-- The definitions the service has run, in order; the last one is active.
-- A service refuses to start on another until `ami workflow migrate` has
-- recorded the change in the journal of every open dossier.
create table definition_version (
    seq bigserial primary key,
    version text not null,
    -- SHA-256 of the definition's JSON form (comments and layout aside).
    sha256 text not null,
    -- The TOML it was loaded from, to compare the next one with.
    source text not null,
    activated_at_us bigint not null
);
