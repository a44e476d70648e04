-- Stream inputs (Kafka): the next offset to read per probe, topic and partition, committed
-- in the same transaction as the feature state that includes every message before it.
CREATE TABLE stream_offsets (
    probe        text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    next_offset  bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (probe, topic, partition)
);
