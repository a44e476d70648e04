-- Quarantined rows keep their bytes. A row may hold any byte, NUL included, which a text
-- column cannot store (PostgreSQL refuses it, and the whole checkpoint with it). raw_bytes
-- keeps the row exactly as it was read, so that it can be compared with its file or fed
-- again; an escaped text would need every reader to know and undo the escaping, and could
-- not tell an escape from the same characters in the row. Rows written before keep their
-- text in raw (raw_bytes NULL); read a row's bytes as coalesce(raw_bytes, convert_to(raw, 'UTF8')).
ALTER TABLE quarantine ADD COLUMN raw_bytes bytea;

-- Each probe's health as the daemon last saw it, written when it changes, for
-- 'goipwatch status' (the daemon also serves it at /readyz). A probe whose task failed is
-- restarted with back-off; it stays failing until it has run a while without failing again.
CREATE TABLE probe_health (
    probe       text        PRIMARY KEY,
    state       text        NOT NULL CHECK (state IN ('running', 'failed', 'ended')),
    failing     boolean     NOT NULL DEFAULT false,   -- failed, and not yet running well again
    error       text        NOT NULL DEFAULT '',      -- the last failure
    failures    integer     NOT NULL DEFAULT 0,       -- since the daemon started
    since       timestamptz NOT NULL,                 -- when it entered this state
    updated_at  timestamptz NOT NULL DEFAULT now()
);
