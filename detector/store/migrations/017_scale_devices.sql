-- Devices' SIMs across partitions (docs/scaling.md, "sims_per_imei across partitions").

-- A partition's device uses since its last summary (IMEI, IMSI, epoch hour; int64
-- little-endian triples): they go into the next summary, which a restart must not lose.
-- The rig stage keeps its devices' SIM bitmaps as rows of kind 'i' of scale_state, as a
-- worker keeps its own.
ALTER TABLE scale_partitions ADD COLUMN devices bytea NOT NULL DEFAULT '';
