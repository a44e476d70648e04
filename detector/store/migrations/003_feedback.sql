-- Analyst feedback on flags, and the allow-list of subscribers that must not be flagged again.
CREATE TABLE feedback (
    id           bigserial PRIMARY KEY,
    imsi         bigint      NOT NULL,
    verdict      text        NOT NULL CHECK (verdict IN ('confirm', 'dismiss')),
    actor        text        NOT NULL,
    note         text        NOT NULL DEFAULT '',
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_imsi ON feedback (imsi);

CREATE TABLE allowlist (
    id           bigserial PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('imsi', 'id_hash', 'cell')),
    value        text        NOT NULL,            -- an IMSI, an account's ID hash, a cell id
    reason       text        NOT NULL,            -- e.g. "known call centre of Acme Ltd"
    actor        text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, value)
);
