-- Scale-out over NATS JetStream: per-partition feature state of the detector workers, the
-- stream position each partition has applied, and what the publisher has put on the stream.

-- One row per stream: its partition count is fixed when the stream is made, and the
-- publisher's event-time clock (global watermark, next scoring tick) after its last file.
CREATE TABLE scale_streams (
    stream      text PRIMARY KEY,
    partitions  integer     NOT NULL CHECK (partitions > 0),
    watermark   bigint      NOT NULL DEFAULT 0,
    next_tick   bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Files the publisher has put on a stream in full (a file cut short is published again;
-- JetStream's de-duplication drops the messages that made it the first time).
CREATE TABLE scale_published (
    stream      text        NOT NULL REFERENCES scale_streams (stream) ON DELETE CASCADE,
    sha256      text        NOT NULL,
    probe       text        NOT NULL,
    name        text        NOT NULL,
    kind        text        NOT NULL,
    records     bigint      NOT NULL,
    rejected    bigint      NOT NULL,
    messages    bigint      NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, sha256)
);

-- A partition's checkpoint: the last stream sequence applied, the clock, the cell table,
-- the SIMs awaiting the next tick and the counters, committed with the state rows below.
CREATE TABLE scale_partitions (
    stream      text        NOT NULL REFERENCES scale_streams (stream) ON DELETE CASCADE,
    partition   integer     NOT NULL,
    last_seq    bigint      NOT NULL DEFAULT 0,
    watermark   bigint      NOT NULL DEFAULT 0,
    next_tick   bigint      NOT NULL DEFAULT 0,
    cells       jsonb       NOT NULL DEFAULT '[]',
    dirty       bytea       NOT NULL DEFAULT '',     -- int64 IMSIs touched since the last tick
    counters    jsonb       NOT NULL DEFAULT '{}',
    outbox      bytea[]     NOT NULL DEFAULT '{}',   -- summaries for the rig stage, sent after the commit
    layout      jsonb       NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, partition)
);

-- The rig stage keeps its own row at partition -1: last_seq is the summary sequence it has
-- fully handled, watermark/next_tick the last (event time, step) it processed, counters its
-- hot-cell memory.

-- Fixed-size records (detector.features.state) of one partition: 's' = SIM, 'i' = device.
-- A device seen by SIMs of several partitions has one record in each.
CREATE TABLE scale_state (
    stream      text        NOT NULL,
    partition   integer     NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('s', 'i')),
    key         bigint      NOT NULL,
    state       bytea       NOT NULL,
    PRIMARY KEY (stream, partition, kind, key),
    FOREIGN KEY (stream, partition) REFERENCES scale_partitions (stream, partition) ON DELETE CASCADE
);
