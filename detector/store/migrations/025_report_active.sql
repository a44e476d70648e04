-- A month's active subscribers, counted once (detector/report/active.py): by carrier and
-- sales channel (sim_activity joined with registrations) and by last cell. Counting them
-- reads every sim_activity row of the month (and of the month before, which the report
-- compares): over a million active SIMs, seconds of a store core for each report, on the
-- store the police lookups share. A closed month does not change, so the
-- counts are kept with the versions of what they were read from and read again only when
-- one of them has moved.
--
-- The versions move in the transaction that changes what they describe: the daemon's
-- checkpoint gives every month whose activity it wrote a new version, a registrations
-- write the registrations a new one. Versions are drawn from one sequence, so that a
-- version table emptied and refilled never gives back a number some kept counts carry. Rows removed by other hands (a retention job, a
-- reset) move every month's version through the triggers below. Counts read in one
-- snapshot are stored with the versions of that snapshot, so a report that raced a write
-- stores counts that the next report sees as stale, never stale counts marked fresh.

CREATE SEQUENCE report_versions;

CREATE TABLE activity_versions (
    month date PRIMARY KEY,
    version bigint NOT NULL
);
-- the months written before the versions existed
INSERT INTO activity_versions (month, version) SELECT month, nextval('report_versions')
    FROM (SELECT DISTINCT month FROM sim_activity) m;

-- one row
CREATE TABLE registrations_version (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO registrations_version (one, version) VALUES (true, nextval('report_versions'));

CREATE TABLE report_active (
    month date PRIMARY KEY,
    activity_version bigint NOT NULL,
    registrations_version bigint NOT NULL,
    by_carrier_channel jsonb NOT NULL,     -- [[carrier, channel, active SIMs], ...]
    by_cell jsonb NOT NULL,                -- [[last cell, active SIMs], ...]
    counted_at timestamptz NOT NULL DEFAULT now()
);

-- A month without a versions row (its activity written by other hands than the daemon's)
-- has its counts read at every report, never kept.
--
-- Statement-level: a deletion is rare and moves every month at once (its rows' months are
-- not worth a transition table). Inserts and updates are versioned by their writers, once
-- per checkpoint, not per statement: the daemon writes registrations row by row.
CREATE FUNCTION report_versions_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'sim_activity' THEN
        UPDATE activity_versions SET version = nextval('report_versions');
    ELSE
        UPDATE registrations_version SET version = nextval('report_versions');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER sim_activity_removed AFTER DELETE OR TRUNCATE ON sim_activity
    FOR EACH STATEMENT EXECUTE FUNCTION report_versions_moved();

CREATE TRIGGER registrations_removed AFTER DELETE OR TRUNCATE ON registrations
    FOR EACH STATEMENT EXECUTE FUNCTION report_versions_moved();
