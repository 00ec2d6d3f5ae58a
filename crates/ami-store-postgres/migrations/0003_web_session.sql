-- Sessions of the web pages: a person signs in with their token and the
-- browser keeps an opaque id in a cookie. Only the id's SHA-256 is stored
-- (a copy of the table does not give a session away); a session ends when
-- it has been idle too long, at « Se déconnecter », or when its token is
-- revoked (checked on every request, by any instance).
create table web_session (
    session_sha256 text primary key,
    token_id text not null,
    csrf text not null,
    created_at_us bigint not null,
    last_seen_at_us bigint not null
);
create index web_session_by_token on web_session (token_id);
