-- Sessions of the analysts' web console: only the SHA-256 of the cookie's token is stored.
CREATE TABLE console_sessions (
    token_sha256  text PRIMARY KEY,
    client_id     text        NOT NULL,
    csrf          text        NOT NULL,             -- the token every POST form must carry
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
