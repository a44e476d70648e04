"""What several rig rules share: the watching clock, a SIM's newest cell and device model,
its contacts among callers, and the flag a rule raises for a row."""

from __future__ import annotations

import numpy as np

from detector.features.catalog import FEATURES
from detector.features.engine import FeatureEngine, FeatureFrame
from detector.flags import Flag
from detector.ids import imsi_text, msisdn_text
from detector.model import CALLERS_MIN_VOICE_OUT
from detector.scoring import Scorer

SMS_IN = FEATURES.index("sms_in_24h")
VOICE_DATA = [FEATURES.index(f) for f in ("voice_out_24h", "voice_in_24h", "data_sessions_24h")]
HOUR_S, DAY_S = 3600, 24 * 3600


def watched_s(engine: FeatureEngine) -> int:
    """How long the network has been watched (since the daemon's first start): a SIM's 24 h
    window covers only that much before a day has passed."""
    return engine.watermark - engine.observed_from


def callers_min(engine: FeatureEngine) -> int:
    """Outgoing calls in its 24 h window that make a SIM a caller for the calling groups:
    ``CALLERS_MIN_VOICE_OUT``, or, before the network has been watched for a day, that rate
    over the time watched, and at least 2 (one call is no rate). At a first start without
    an archive, a box already at work has made a few calls per SIM in the first hours:
    its SIMs would otherwise wait hours to be callers while they call each other."""
    watched_for = watched_s(engine)
    if watched_for >= DAY_S:
        return CALLERS_MIN_VOICE_OUT
    return max(2, int(np.ceil(CALLERS_MIN_VOICE_OUT * watched_for / DAY_S)))


def slots_of(engine: FeatureEngine, imsis: list[str]) -> np.ndarray:
    """SIM slots of ``imsis`` that the engine holds."""
    slots = engine.sims.lookup(np.array(imsis, np.int64))
    return slots[slots >= 0]


def quiet(engine: FeatureEngine, slots: np.ndarray) -> np.ndarray:
    """Those of ``slots`` that neither call, are called nor use data (24 h window)."""
    if not len(slots):
        return slots
    return slots[engine.features(slots).values[:, VOICE_DATA].sum(axis=1) == 0]


def cell_and_model(engine: FeatureEngine, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per SIM, the busiest cell of its newest hour and the model (TAC: the first 8 of 15
    IMEI digits) of its newest device; -1 and 0 when unknown."""
    return engine.newest_cell(slots), engine.newest_device(slots) // 10**7


def newest_cell(engine: FeatureEngine, slots: np.ndarray) -> np.ndarray:
    """Per SIM, the busiest cell of its newest hour; -1 when unknown."""
    return engine.newest_cell(slots)


def caller_contacts(engine: FeatureEngine, sims: np.ndarray, place: bool = True,
                    among: np.ndarray | None = None) -> np.ndarray:
    """(index into ``sims``, slot) pairs of each SIM's contacts of the last day that are
    callers too, are not registered on the same ID document (a family plan's or a company
    account's cards call each other) and, with ``place``, shared its busiest cell in some
    hour; with ``among``, only its contacts among those SIMs (asked first: the other
    tests cost per pair)."""
    row, other = engine.network_contacts(sims)
    if among is not None:
        keep = np.isin(other, among)
        row, other = row[keep], other[keep]
    theirs = engine.id_keys(other)
    keep = (engine.calls_out_24h(other) >= callers_min(engine)) & \
        ((engine.id_keys(sims[row]) != theirs) | (theirs == 0))
    if place:   # the costliest test, asked of the pairs left
        kept = np.flatnonzero(keep)
        keep[kept] = engine.same_place(sims[row[kept]], other[kept])
    return np.stack([row[keep], other[keep]], axis=1)


def row_flag(scorer: Scorer, frame: FeatureFrame, strengths: np.ndarray, r: int, kind: str,
             reason: str, at: int | None = None, vetoable: bool = True) -> Flag | None:
    """The flag of row ``r`` (at event time ``at``, else of its SIM's newest record),
    unless the supervised layer vetoes it (when ``vetoable``)."""
    values = frame.values[r]
    score = scorer.model.anomaly_score(values[None, :])
    if vetoable and not scorer.plausible(values[None, :], score)[0]:
        return None
    own = scorer.reasons(values, strengths[r])
    return Flag(imsi=imsi_text(frame.imsi[r]), msisdn=msisdn_text(frame.msisdn[r]),
                score=round(float(score[0]), 4),
                flagged_at=int(max(frame.at[r], at or 0)), reasons=(reason,) + own[: scorer.policy.max_reasons - 1],
                kind=kind, features={f: round(float(v), 3) for f, v in zip(FEATURES, values)})
