-- Scale-out fixes.

-- A file the publisher rejected whole (no usable header) is recorded by its content, in the
-- transaction of its quarantine row, so that a restart does not quarantine it again.
ALTER TABLE scale_published
    ADD COLUMN status text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'rejected'));

-- A partition's recent attaches (event time, cell of the partition's table, IMSI; int64
-- little-endian triples): the synchronised power-on buffer, as the daemon keeps it in
-- engine_state 'attaches'.
ALTER TABLE scale_partitions ADD COLUMN attaches bytea NOT NULL DEFAULT '';
