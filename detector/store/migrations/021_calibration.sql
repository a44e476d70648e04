-- Calibration to the watched population (detector/calibration.py). The baseline's sampled
-- SIM-days, one row each, written when they change (a SIM-day's feature extremes and its
-- reservoir of snapshots, packed); and the model in use: the live forest fitted on the
-- baseline (skops bytes), its manifest (the blended reference), drift and the schedule. Both
-- are written in the checkpoint's transaction, so a restart resumes the same baseline and
-- model as the state it restores.
CREATE TABLE calibration_sample (
    day     bigint  NOT NULL,           -- event day start, epoch seconds
    imsi    bigint  NOT NULL,
    data    bytea   NOT NULL,
    PRIMARY KEY (day, imsi)
);

CREATE TABLE calibration_model (
    id          smallint PRIMARY KEY CHECK (id = 1),
    sample_threshold numeric NOT NULL,  -- SIMs whose IMSI hash is at most this are followed
    first_at    bigint  NOT NULL,       -- event time of the first tick watched
    first_fit   bigint  NOT NULL,       -- ... of the first calibrated model (0: none yet)
    next_fit    bigint  NOT NULL,
    fitted_at   bigint  NOT NULL,
    sim_days    integer NOT NULL,       -- 0: the prior alone
    trimmed     integer NOT NULL,
    excluded    integer NOT NULL,
    live        bytea,                  -- the live forest (skops), NULL with the prior alone
    manifest    jsonb,
    drift       jsonb   NOT NULL DEFAULT '{}',  -- per feature (detector.calibration.drift)
    drift_alert double precision NOT NULL DEFAULT 1.0986   -- beyond it a feature drifts
);
