"""The calibration's part of a checkpoint: the baseline's changed SIM-days and the model in use.

Written inside the checkpoint's transaction (:func:`detector.store.checkpoint.save`), so what
a restart restores is the baseline and the calibrated model of the state it restores, and the
replay after it refits at the same event times to the same models.
"""

from __future__ import annotations

import json

import asyncpg

from detector import model as model_mod
from detector.calibration import Calibration, CalibratedModel, Calibrator


async def save(conn: asyncpg.Connection, cal: Calibrator) -> None:
    """Write what changed; the caller calls ``cal.saved()`` once the transaction commits."""
    rows = cal.baseline.unsaved()
    if rows:
        await conn.executemany(
            "INSERT INTO calibration_sample (day, imsi, data) VALUES ($1, $2, $3) "
            "ON CONFLICT (day, imsi) DO UPDATE SET data = EXCLUDED.data", rows)
    # SIM-days out of the window, or of SIMs the sample has shed, are not needed again
    await conn.execute("DELETE FROM calibration_sample WHERE day < $1", cal.baseline.dropped_before())
    cur = cal.current
    model_changed = cal.version != cal.saved_version
    live = model_mod.pipeline_bytes(cur.model.live) \
        if model_changed and isinstance(cur.model, CalibratedModel) else None
    await conn.execute(
        "INSERT INTO calibration_model (id, sample_threshold, first_at, first_fit, next_fit, "
        "fitted_at, sim_days, trimmed, excluded, live, manifest, drift, drift_alert) "
        "VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $13) "
        "ON CONFLICT (id) DO UPDATE SET sample_threshold = EXCLUDED.sample_threshold, "
        "first_at = EXCLUDED.first_at, first_fit = EXCLUDED.first_fit, "
        "next_fit = EXCLUDED.next_fit, fitted_at = EXCLUDED.fitted_at, "
        "sim_days = EXCLUDED.sim_days, trimmed = EXCLUDED.trimmed, excluded = EXCLUDED.excluded, "
        # the model's bytes only when it changed (a refit): they are the large part
        "live = CASE WHEN $12 THEN EXCLUDED.live ELSE calibration_model.live END, "
        "manifest = CASE WHEN $12 THEN EXCLUDED.manifest ELSE calibration_model.manifest END, "
        "drift = EXCLUDED.drift, drift_alert = EXCLUDED.drift_alert",
        int(cal.baseline.threshold), cal.first_at, cal.first_fit, cal.next_fit, cur.at,
        cur.sim_days, cur.trimmed, cur.excluded, live,
        json.dumps(cur.model.manifest) if live is not None else None, json.dumps(cur.drift),
        model_changed, cal.policy.drift_alert)


async def restore(conn: asyncpg.Connection, cal: Calibrator) -> None:
    row = await conn.fetchrow("SELECT * FROM calibration_model WHERE id = 1")
    samples = await conn.fetch("SELECT day, imsi, data FROM calibration_sample ORDER BY day, imsi")
    cal.baseline.restore([(r["day"], r["imsi"], bytes(r["data"])) for r in samples],
                         int(row["sample_threshold"]) if row else None)
    cal.baseline.saved()               # what was just read is in the store
    if row is None:
        return
    model = cal.prior
    if row["sim_days"] and row["live"] is not None:
        manifest = json.loads(row["manifest"])
        live = model_mod.from_pipeline_bytes(bytes(row["live"]), manifest, "the stored calibrated model")
        # the live forest's own threshold: from its training scores, kept in the manifest
        live_manifest = dict(manifest, score_quantiles=manifest["calibration"]["live_score_quantiles"])
        live = model_mod.TrainedModel(live.pipeline, live_manifest)
        model = CalibratedModel(cal.prior, live, cal.quantile, manifest)
    cal.first_at, cal.first_fit = row["first_at"], row["first_fit"]
    drift = json.loads(row["drift"]) if row["drift"] else {}
    cal.restore(Calibration(model, row["sim_days"] if model is not cal.prior else 0,
                            row["trimmed"], row["excluded"], row["fitted_at"],
                            {k: float(v) for k, v in drift.items()}), row["next_fit"])
