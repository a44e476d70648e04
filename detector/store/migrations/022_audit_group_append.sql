-- The audit chain (005) checked and moved once per INSERT statement instead of once per row,
-- so that a group of audit rows is one statement: the rows are checked together (seq runs on
-- from the head without a gap, each prev_hash is the hash of the row before it, the first
-- one's the head's) and the head moves once, onto the group's last row. What is refused is
-- unchanged: an insert that does not continue the chain, an update or deletion of the log,
-- a head that does not move forward onto rows that continue it.
--
-- Per row, the chain had cost a locked read of the head, an update of the head and a check
-- of the log: for a group of n rows, n versions of the head's row in one transaction, each
-- read walking the ones before it.
--
-- The checks read audit_log by its primary key only. With statistics that call the log
-- empty (an ANALYZE before its first row), a plan cached by a long-lived connection would
-- otherwise scan the whole log at each append, a cost that grows with the log; the
-- functions run with enable_seqscan off so that no statistics can choose that plan.

DROP TRIGGER audit_log_chain ON audit_log;
DROP TRIGGER audit_log_head ON audit_log;
DROP FUNCTION audit_log_continue();
DROP FUNCTION audit_log_advance();

CREATE FUNCTION audit_log_append() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    head audit_head%ROWTYPE;
    n bigint;
    lo bigint;
    hi bigint;
BEGIN
    SELECT count(*), min(seq), max(seq) INTO n, lo, hi FROM appended;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    -- the head's row lock serialises appenders (of every process) until commit; the rows'
    -- primary key already made a concurrent insert of the same seq wait for this one
    SELECT * INTO head FROM audit_head WHERE one FOR UPDATE;
    IF lo <> head.seq + 1 OR hi <> head.seq + n OR EXISTS (
            SELECT 1 FROM (SELECT prev_hash, lag(hash, 1, head.hash) OVER (ORDER BY seq) AS before
                             FROM appended) q
             WHERE q.prev_hash IS DISTINCT FROM q.before) THEN
        RAISE EXCEPTION 'audit_log insert does not continue the chain (head %)', head.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    UPDATE audit_head SET seq = hi, hash = (SELECT hash FROM appended WHERE seq = hi) WHERE one;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION audit_head_forward() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
BEGIN
    -- forward onto rows that are all there (seq is the key: as many rows as steps), the
    -- first linked to the old head and the last the new head
    IF TG_OP <> 'UPDATE' OR NEW.seq <= OLD.seq
       OR (SELECT count(*) FROM audit_log WHERE seq > OLD.seq AND seq <= NEW.seq) <> NEW.seq - OLD.seq
       OR NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = OLD.seq + 1 AND prev_hash = OLD.hash)
       OR NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq AND hash = NEW.hash) THEN
        RAISE EXCEPTION 'audit_head only moves forward onto the rows appended'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_chain AFTER INSERT ON audit_log
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append();
