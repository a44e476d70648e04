"""The naive baseline: a plain IsolationForest on whole-world per-SIM aggregates.

What a first attempt would look like, kept as the yardstick the detector must beat: one row
per SIM over the whole CDR file (no time windows, no registration data, no streaming), the
nine aggregates below, an sklearn ``IsolationForest`` fitted on the same SIMs it scores, and
the threshold idea of :class:`detector.scoring.Policy`: flag the SIMs whose anomaly score is
above the ``score_quantile`` of all SIMs' scores. There is no ``min_reasons`` or activity
rule. ``flagged_at`` is the SIM's last record (the baseline sees the world only at its end).

Everything is vectorised (``np.unique`` / ``np.bincount``) and deterministic (fixed seed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

from detector import ids
from detector.flags import Flag
from detector.records import CdrBatch
from detector.scoring import Policy

FEATURES = (
    "voice_mo", "voice_mt", "sms_out", "sms_in", "data",
    "distinct_peers", "distinct_cells", "distinct_imeis", "mean_voice_duration_s",
)
REASON = "naive baseline"
VOICE, SMS, DATA = 0, 1, 2
MO, MT = 0, 1


def _distinct(sim: np.ndarray, value: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """Per SIM, the number of distinct ``value`` among the records where ``keep``."""
    pairs = np.unique(np.stack([sim[keep], value[keep].astype(np.int64)], axis=1), axis=0)
    return np.bincount(pairs[:, 0], minlength=n).astype(float)


def aggregates(cdr: CdrBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(imsi, msisdn, last_ts, X)``: one row per IMSI in the batch (sorted by IMSI) and the
    columns of :data:`FEATURES`."""
    imsi, sim = np.unique(cdr.imsi, return_inverse=True)
    n = len(imsi)
    rt, d = cdr.record_type, cdr.direction

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(sim[mask], minlength=n).astype(float)

    voice = rt == VOICE
    n_voice = count(voice)
    dur = np.bincount(sim[voice], weights=cdr.duration[voice].astype(float), minlength=n)
    X = np.column_stack([
        count(voice & (d == MO)),
        count(voice & (d == MT)),
        count((rt == SMS) & (d == MO)),
        count((rt == SMS) & (d == MT)),
        count(rt == DATA),
        _distinct(sim, cdr.peer, cdr.peer != 0, n),
        _distinct(sim, cdr.cell, cdr.cell >= 0, n),
        _distinct(sim, cdr.imei, cdr.imei != 0, n),
        np.divide(dur, n_voice, out=np.zeros(n), where=n_voice > 0),
    ])
    # last record per SIM, and its MSISDN
    order = np.lexsort((cdr.ts, sim))
    last = order[np.r_[np.flatnonzero(np.diff(sim[order])), len(order) - 1]]
    return imsi, cdr.msisdn[last], cdr.ts[last].astype(np.int64), X


def naive_baseline(cdr: CdrBatch, *, score_quantile: float = Policy().score_quantile,
                   seed: int = 0, n_estimators: int = 200) -> list[Flag]:
    """Flags of the naive baseline, sorted by (flagged_at, imsi)."""
    Policy(score_quantile=score_quantile)  # same bounds check as the detector's policy
    if not len(cdr):
        return []
    imsi, msisdn, last, X = aggregates(cdr)
    forest = IsolationForest(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    forest.fit(X)
    scores = -forest.score_samples(X)  # higher = more anomalous, in (0, 1]
    threshold = np.quantile(scores, score_quantile)
    flags = [
        Flag(imsi=ids.imsi_text(imsi[i]), msisdn=ids.msisdn_text(msisdn[i]), score=round(float(scores[i]), 4),
             flagged_at=int(last[i]), reasons=(REASON,), kind="naive_baseline")
        for i in np.flatnonzero(scores > threshold)
    ]
    return sorted(flags, key=lambda f: (f.flagged_at, f.imsi))


def run_baseline(cdr_csv: Path, out: Path, *, score_quantile: float = Policy().score_quantile,
                 seed: int = 0, cdr: CdrBatch | None = None) -> list[Flag]:
    """Read ``cdr_csv`` (unless the parsed ``cdr`` is given), write the baseline's flags.csv."""
    from detector import batch

    if cdr is None:
        cdr = batch.load_files([Path(cdr_csv)]).cdr
    flags = naive_baseline(cdr, score_quantile=score_quantile, seed=seed)
    batch.write_flags(flags, Path(out))
    return flags
