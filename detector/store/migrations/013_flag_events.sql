-- The flag stream (flags.jsonl) as the store has it: one event per change of a field the
-- stream carries, with the flag as it is after the change:
--   'flag'          a flag committed (a new row of flags);
--   'rig_assigned'  its rig_id set or changed (a rig formed, grew to it, or merged into
--                   another after the flag was committed);
--   'updated'       another carried field changed (a higher score for the same SIM and kind).
-- Triggers on flags write them, whichever process changes a flag. The daemon appends them to
-- flags.jsonl in id order and finds where the stream stopped from its last line (event_id),
-- so that a crash or a restart neither loses nor repeats a line; the last line of each flag_id
-- is the flag as the store has it.
--
-- Ids follow commit order: a statement that writes a carried field takes a transaction lock
-- first (before any row lock), so a transaction draws ids only after every transaction that
-- drew lower ones has ended; a reader that has seen id N never later finds a lower id
-- committed.
CREATE TABLE flag_events (
    id           bigserial PRIMARY KEY,
    flag_id      bigint      NOT NULL,          -- flags.id (no foreign key: `demo` resets flags)
    event        text        NOT NULL CHECK (event IN ('flag', 'rig_assigned', 'updated')),
    imsi         bigint      NOT NULL,
    msisdn       bigint,
    kind         text        NOT NULL,
    score        real        NOT NULL,
    flagged_at   timestamptz NOT NULL,
    rig_id       text        NOT NULL,
    reasons      jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flag_events_flag ON flag_events (flag_id, id);

CREATE FUNCTION flag_events_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1718378855);   -- 'flag' in ASCII: the flag stream's order
    RETURN NULL;
END $$;

CREATE FUNCTION flag_events_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flag_events (flag_id, event, imsi, msisdn, kind, score, flagged_at, rig_id, reasons)
    VALUES (NEW.id,
            CASE WHEN TG_OP = 'INSERT' THEN 'flag'
                 WHEN NEW.rig_id IS DISTINCT FROM OLD.rig_id THEN 'rig_assigned'
                 ELSE 'updated' END,
            NEW.imsi, NEW.msisdn, NEW.kind, NEW.score, NEW.flagged_at, NEW.rig_id, NEW.reasons);
    RETURN NULL;
END $$;

CREATE TRIGGER flags_stream_order
    BEFORE INSERT OR UPDATE OF imsi, msisdn, kind, score, flagged_at, rig_id, reasons ON flags
    FOR EACH STATEMENT EXECUTE FUNCTION flag_events_order();
CREATE TRIGGER flags_stream_raised AFTER INSERT ON flags
    FOR EACH ROW EXECUTE FUNCTION flag_events_record();
CREATE TRIGGER flags_stream_changed AFTER UPDATE ON flags FOR EACH ROW
    WHEN ((OLD.imsi, OLD.msisdn, OLD.kind, OLD.score, OLD.flagged_at, OLD.rig_id, OLD.reasons)
          IS DISTINCT FROM (NEW.imsi, NEW.msisdn, NEW.kind, NEW.score, NEW.flagged_at, NEW.rig_id,
                            NEW.reasons))
    EXECUTE FUNCTION flag_events_record();

-- Flags committed before this migration: one 'flag' event each, in id order (a stream written
-- before it ends with a flag_id; the daemon resumes after that flag's event).
INSERT INTO flag_events (flag_id, event, imsi, msisdn, kind, score, flagged_at, rig_id, reasons)
SELECT id, 'flag', imsi, msisdn, kind, score, flagged_at, rig_id, reasons FROM flags ORDER BY id;
