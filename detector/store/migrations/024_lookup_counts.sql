-- The police lookups the monthly report counts, folded out of the audit log as it grows
-- (detector/report/lookup_counts.py): by the month of the lookup's date (the store's event
-- time it was made on, else when it was made; UTC), by outcome and reason, and by the
-- carrier of the registration its number named when it was folded. The report reads these
-- and scans only the audit rows after lookup_counts_folded.seq, where it scanned the whole
-- log twice at each report (3.75 s of a 4.1 s report with 1.6 million audit rows), a cost
-- that grew with every lookup ever made. Derived data: the audit log stays the record.

CREATE TABLE lookup_outcomes (
    month date NOT NULL,
    outcome text NOT NULL,
    reason text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (month, outcome, reason)
);

CREATE TABLE lookup_carriers (
    month date NOT NULL,
    carrier text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (month, carrier)
);

-- the audit rows up to seq are in the counts (one row)
CREATE TABLE lookup_counts_folded (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL
);
INSERT INTO lookup_counts_folded (one, seq) VALUES (true, 0);
