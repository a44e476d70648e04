-- Facts for the monthly regulator report (docs/report.md), written by the daemon in the same
-- checkpoint transaction as the files they come from, so a restart neither loses nor
-- double-counts them.
--
-- sim_activity: one row per SIM and calendar month (UTC) in which it had at least one CDR or
-- signalling record: its first and last event time in the month, how many records, and the
-- cell of its last located record (the SIM's region for the month).
CREATE TABLE sim_activity (
    imsi       bigint      NOT NULL,
    month      date        NOT NULL,              -- first day of the month (UTC)
    first_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    events     bigint      NOT NULL,
    last_cell  text        NOT NULL DEFAULT '',   -- canonical cell id, '' when never located
    PRIMARY KEY (month, imsi)
);
CREATE INDEX sim_activity_imsi ON sim_activity (imsi, month);

-- feed_days: the records each file delivered per event day (UTC): which feeds covered which
-- days of a month, and which file a quarantined row belongs to.
CREATE TABLE feed_days (
    probe    text   NOT NULL,
    source   text   NOT NULL,                    -- file name, as in ingested_files.name
    day      date   NOT NULL,
    records  bigint NOT NULL,
    PRIMARY KEY (probe, source, day)
);
CREATE INDEX feed_days_day ON feed_days (day);
