-- Foundation schema: feeds, quarantine, registrations, feature state checkpoints, flags.
-- Identifiers are stored as bigint digit strings read as numbers (IMSI, MSISDN, IMEI).

CREATE TABLE ingested_files (
    id           bigserial PRIMARY KEY,
    probe        text        NOT NULL,
    name         text        NOT NULL,
    size         bigint      NOT NULL,
    sha256       text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('done', 'rejected', 'duplicate')),
    records      bigint      NOT NULL DEFAULT 0,   -- rows applied
    rejected     bigint      NOT NULL DEFAULT 0,   -- rows quarantined (malformed or late)
    detail       text,
    ingested_at  timestamptz NOT NULL DEFAULT now()
);
-- one content is processed once per probe, whatever its name
CREATE UNIQUE INDEX ingested_files_content ON ingested_files (probe, sha256) WHERE status <> 'duplicate';
CREATE INDEX ingested_files_name ON ingested_files (probe, name);

CREATE TABLE quarantine (
    id           bigserial PRIMARY KEY,
    probe        text        NOT NULL,
    source       text        NOT NULL,             -- file name or stream
    line         bigint      NOT NULL,             -- 0: the whole source
    reason       text        NOT NULL,
    raw          text        NOT NULL DEFAULT '',
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_source ON quarantine (probe, source);

CREATE TABLE registrations (
    imsi          bigint PRIMARY KEY,
    msisdn        bigint      NOT NULL,
    iccid         text        NOT NULL,
    activated_at  timestamptz NOT NULL,
    id_hash       text        NOT NULL,
    channel       text        NOT NULL,
    carrier       text        NOT NULL,
    source        text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX registrations_id_hash ON registrations (id_hash);
CREATE INDEX registrations_msisdn ON registrations (msisdn);

-- Feature state: one fixed-size record per SIM / device (layout version in engine_state).
CREATE TABLE sim_state (
    imsi        bigint PRIMARY KEY,
    state       bytea       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE imei_state (
    imei        bigint PRIMARY KEY,
    state       bytea       NOT NULL
);
CREATE TABLE cells (
    id    integer PRIMARY KEY,
    name  text    NOT NULL UNIQUE                 -- canonical MCC-MNC-LAC-CI
);
CREATE TABLE engine_state (
    key    text PRIMARY KEY,
    value  jsonb NOT NULL
);

CREATE TABLE flags (
    id           bigserial PRIMARY KEY,
    imsi         bigint      NOT NULL,
    msisdn       bigint,
    kind         text        NOT NULL,             -- sim_anomaly, ...
    score        real        NOT NULL,
    flagged_at   timestamptz NOT NULL,             -- event time of first flag
    rig_id       text        NOT NULL DEFAULT '',
    reasons      jsonb       NOT NULL,
    status       text        NOT NULL DEFAULT 'open',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (imsi, kind)
);
CREATE TABLE flag_history (
    id           bigserial PRIMARY KEY,
    flag_id      bigint      NOT NULL REFERENCES flags (id),
    event        text        NOT NULL,             -- raised, ...
    score        real,
    event_time   timestamptz NOT NULL,
    actor        text        NOT NULL DEFAULT 'detector',
    detail       jsonb       NOT NULL DEFAULT '{}',
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flag_history_flag ON flag_history (flag_id);

-- The feature values behind each flag (evidence), and any other snapshot taken.
CREATE TABLE feature_snapshots (
    id           bigserial PRIMARY KEY,
    imsi         bigint      NOT NULL,
    event_time   timestamptz NOT NULL,
    purpose      text        NOT NULL,             -- flag, ...
    features     jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feature_snapshots_imsi ON feature_snapshots (imsi, event_time);
