-- Rigs: groups of flagged SIMs that share devices, a hot cell or a bulk registration.
CREATE TABLE rigs (
    id          text PRIMARY KEY,
    sims        integer     NOT NULL,
    members     jsonb       NOT NULL,             -- IMSIs
    devices     jsonb       NOT NULL,             -- IMEIs
    cells       jsonb       NOT NULL,             -- canonical cell ids
    first_at    timestamptz NOT NULL,             -- first flag of the rig (event time)
    last_at     timestamptz NOT NULL,             -- newest activity of a member
    evidence    text        NOT NULL,             -- plain-words summary
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flags_rig ON flags (rig_id) WHERE rig_id <> '';
