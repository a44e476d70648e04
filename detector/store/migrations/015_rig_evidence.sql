-- The rig evidence each flagged SIM brought (detector/rigs/book.py), one row per SIM and kind
-- of evidence, written when it changes: a checkpoint writes the SIMs whose evidence moved, not
-- the whole map (it grows with the flagged SIMs). The map the daemon used to keep as one JSON
-- value of engine_state moves here.
CREATE TABLE rig_evidence (
    imsi    bigint  NOT NULL,
    kind    text    NOT NULL,           -- device, cell, power, group, pool, ...
    words   text    NOT NULL,           -- what the rig's summary says of it
    PRIMARY KEY (imsi, kind)
);

INSERT INTO rig_evidence (imsi, kind, words)
SELECT sim.key::bigint, kind.key, kind.value
  FROM engine_state e, jsonb_each(e.value) sim, jsonb_each_text(sim.value) kind
 WHERE e.key = 'rig_evidence' AND sim.key ~ '^[0-9]{1,18}$';

DELETE FROM engine_state WHERE key = 'rig_evidence';
