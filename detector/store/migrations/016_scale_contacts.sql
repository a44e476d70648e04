-- Contacts between SIMs of different partitions (detector/scale/contacts.py).

-- A partition's contacts with numbers of no SIM of the partition since its last summary
-- (IMSI, the SIM's number, the peer's number, epoch hour; int64 little-endian quadruples):
-- they go into the next summary, which a restart must not lose.
ALTER TABLE scale_partitions ADD COLUMN contacts bytea NOT NULL DEFAULT '';

-- The rig stage keeps the contacts of the last day that the workers reported, one row per
-- step (key: event time * 2 + step), as kind 'c'.
ALTER TABLE scale_state DROP CONSTRAINT scale_state_kind_check;
ALTER TABLE scale_state ADD CONSTRAINT scale_state_kind_check CHECK (kind IN ('s', 'i', 'c'));
