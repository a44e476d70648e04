-- Line-verification requests to the carrier-police platform (docs/verification.md).
-- Rows are written in the same transaction as the flags they come from (the outbox), and a
-- sender delivers them; the platform reports outcomes back (verification_outcomes).
CREATE TABLE verification_outbox (
    id               bigserial PRIMARY KEY,
    request_id       uuid        NOT NULL UNIQUE,
    idempotency_key  text        NOT NULL UNIQUE,   -- sha256(line | action | flag id), hex
    flag_id          bigint      NOT NULL,          -- flags.id (no foreign key: flags may be reset by `demo`)
    action           text        NOT NULL CHECK (action IN ('reverify', 'suspend', 'police_lead')),
    line_imsi        bigint,                        -- the line of a per-line request; NULL for a rig's police lead
    line_msisdn      bigint,
    rig_id           text        NOT NULL DEFAULT '',
    body             jsonb       NOT NULL,           -- what is posted (signed at each attempt)
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),  -- due time; for 'sending', the lease expiry
    last_error       text,
    last_status      integer,                       -- HTTP status of the last attempt
    created_at       timestamptz NOT NULL DEFAULT now(),  -- the flag's commit
    delivered_at     timestamptz
);
CREATE INDEX verification_outbox_due ON verification_outbox (next_attempt_at, id)
    WHERE status IN ('pending', 'sending');
CREATE INDEX verification_outbox_imsi ON verification_outbox (line_imsi, action, created_at)
    WHERE line_imsi IS NOT NULL;
CREATE INDEX verification_outbox_msisdn ON verification_outbox (line_msisdn, action, created_at)
    WHERE line_msisdn IS NOT NULL;
CREATE INDEX verification_outbox_rig ON verification_outbox (rig_id, action, created_at)
    WHERE rig_id <> '';
CREATE INDEX verification_outbox_status ON verification_outbox (status, created_at);

-- Outcomes the platform reported through the status callback.
CREATE TABLE verification_outcomes (
    id           bigserial PRIMARY KEY,
    request_id   uuid        NOT NULL REFERENCES verification_outbox (request_id),
    outcome      text        NOT NULL
                             CHECK (outcome IN ('reverified', 'failed', 'suspended', 'police_confirmed')),
    outcome_at   timestamptz NOT NULL,               -- when the platform says it happened
    detail       jsonb       NOT NULL DEFAULT '{}',
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (request_id, outcome)
);
