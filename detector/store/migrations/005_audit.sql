-- Subscriber-lookup API: the append-only, hash-chained audit log, its head, and the bearer
-- tokens issued by POST /oauth/token (only their SHA-256 is stored).
--
-- Each audit row stores the previous row's hash and its own hash, a SHA-256 over the canonical
-- JSON of the row (detector/api/audit.py); seq runs 1, 2, 3, ... without gaps. audit_head holds
-- the newest (seq, hash): an insert locks it and moves it (triggers), so rows are chained one
-- at a time whatever the process, and a deleted tail shows as a head without its row. Triggers refuse UPDATE, DELETE and TRUNCATE of the log,
-- an insert that does not continue the chain, and a head that does not move forward by one
-- row that exists. (A superuser can still disable triggers: verify_audit detects what they did.)

CREATE TABLE audit_log (
    seq            bigint PRIMARY KEY,
    at             timestamptz NOT NULL,
    request_id     text        NOT NULL,
    action         text        NOT NULL,             -- lookup
    client_id      text        NOT NULL,             -- '' when not authenticated
    identity       text        NOT NULL,             -- officer or service identity of the credential
    role           text        NOT NULL,             -- police, analyst, regulator, admin, ''
    auth           text        NOT NULL,             -- bearer, mtls, none
    remote         text        NOT NULL,             -- peer address
    case_ref       text        NOT NULL,
    legal_basis    text        NOT NULL,
    officer        text        NOT NULL,             -- as stated in the request
    query          jsonb       NOT NULL,             -- {"number_type": ..., "number": ...}
    status         integer     NOT NULL,             -- HTTP status answered
    outcome        text        NOT NULL,             -- answered, not_found, refused, error
    reason         text        NOT NULL,             -- reason code of a refusal, '' when answered
    fields         jsonb       NOT NULL,             -- field paths present in the answer
    answer_sha256  text        NOT NULL,             -- digest of the response body sent
    prev_hash      text        NOT NULL,
    hash           text        NOT NULL UNIQUE
);
CREATE INDEX audit_log_case ON audit_log (case_ref);
CREATE INDEX audit_log_client ON audit_log (client_id, at);

CREATE TABLE audit_head (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq   bigint  NOT NULL,
    hash  text    NOT NULL
);
INSERT INTO audit_head (one, seq, hash) VALUES (true, 0, repeat('0', 64));

CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE FUNCTION audit_log_continue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head audit_head%ROWTYPE;
BEGIN
    -- the head's row lock serialises appenders (of every process) until commit
    SELECT * INTO head FROM audit_head WHERE one FOR UPDATE;
    IF NEW.seq <> head.seq + 1 OR NEW.prev_hash <> head.hash THEN
        RAISE EXCEPTION 'audit_log insert does not continue the chain (head %)', head.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION audit_log_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE one;
    RETURN NULL;
END $$;

CREATE FUNCTION audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.seq <> OLD.seq + 1 OR NOT EXISTS (
            SELECT 1 FROM audit_log WHERE seq = NEW.seq AND hash = NEW.hash AND prev_hash = OLD.hash) THEN
        RAISE EXCEPTION 'audit_head only moves forward onto the row appended'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_continue();
CREATE TRIGGER audit_log_head AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_advance();
CREATE TRIGGER audit_head_only_forward BEFORE INSERT OR UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();

-- Bearer tokens issued by the client-credentials grant (short-lived).
CREATE TABLE api_tokens (
    sha256      text PRIMARY KEY,
    client_id   text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_expiry ON api_tokens (expires_at);

-- Lookups by MSISDN reach flagged SIMs without a registration; lookups by IMEI go through rigs.
CREATE INDEX flags_msisdn ON flags (msisdn) WHERE msisdn IS NOT NULL;
CREATE INDEX rigs_devices ON rigs USING gin (devices);
