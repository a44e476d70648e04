"""Turning feature rows into flags: the threshold policy and plain-words reasons.

A SIM is flagged when all of these hold (knobs in ``[detector]`` of the config):
- it had at least ``min_events_24h`` events in its 24 h window (too little activity says
  nothing about a rig);
- its anomaly score is above the ``score_quantile`` of the training rows' scores (so the
  threshold is a share of ordinary SIM-days, not a guess at the fraud rate);
- features of at least ``min_reasons`` independent families (volume, SMS, device, call
  quality, rhythm, registration) lie on the rig-like side of the population's 1st/99th
  percentile by at least ``reason_margin`` of its spread: one odd behaviour alone (say, many callees, however many features show it)
  does not flag.
- it is not a person's phone (:meth:`Scorer.person_like`: a caller most of whose contacts of
  the day were repeats), and the supervised layer, when the model has one, does not veto it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.features.catalog import CATALOG, FAMILIES, FEATURES
from detector.features.engine import FeatureFrame
from detector.flags import Flag
from detector.ids import imsi_text, msisdn_text
from detector.model import CALLERS_MIN_VOICE_OUT, TrainedModel

_VOICE_OUT = FEATURES.index("voice_out_24h")
_REPEAT = FEATURES.index("callee_repeat_ratio_24h")


@dataclass(frozen=True, slots=True)
class Policy:
    score_quantile: float = 0.995
    min_reasons: int = 2
    min_events_24h: int = 10
    max_reasons: int = 4
    reason_margin: float = 0.5
    rerank_min_probability: float = 0.5
    # A caller more than this share of whose contacts of the day were repeats is a person's
    # phone: a box's bypass calls go to the public, each number once
    person_repeat_share: float = 0.5

    def __post_init__(self) -> None:
        if not 0.5 <= self.score_quantile < 1.0:
            raise ValueError("score_quantile must be in [0.5, 1)")
        if self.min_reasons < 1 or self.max_reasons < self.min_reasons:
            raise ValueError("need 1 <= min_reasons <= max_reasons")
        if self.reason_margin < 0:
            raise ValueError("reason_margin must not be negative")
        if self.min_events_24h < 1:
            raise ValueError("min_events_24h must be at least 1")
        if not 0.0 < self.person_repeat_share <= 1.0:
            raise ValueError("person_repeat_share must be in (0, 1]")


class Scorer:
    def __init__(self, model: TrainedModel, policy: Policy = Policy()) -> None:
        self.model = model
        self.policy = policy
        self.threshold = model.threshold(policy.score_quantile)
        ref = model.manifest["reference"]
        self._lo = np.array([ref[f]["p01"] for f in FEATURES])
        self._p50 = np.array([ref[f]["p50"] for f in FEATURES])
        self._hi = np.array([ref[f]["p99"] for f in FEATURES])
        self._high = np.array([f.suspicious == "high" for f in CATALOG])
        self._low = np.array([f.suspicious == "low" for f in CATALOG])
        self._needs_calls = np.array([f.needs_calls for f in CATALOG])
        self._without_calls = np.array([f.without_calls for f in CATALOG])
        self._floor = np.array([f.floor for f in CATALOG])
        # feature -> family one-hot, to count independent kinds of evidence per row
        self._family = np.array([[f.family == fam for fam in FAMILIES] for f in CATALOG])

    def use(self, model: TrainedModel) -> None:
        """Score with ``model`` from now on (a recalibrated one): its threshold and reference."""
        self.__init__(model, self.policy)

    def strengths(self, values: np.ndarray) -> np.ndarray:
        """How far each value lies beyond the rig-like percentile (99th, or 1st where low is
        rig-like), in units of the population's spread (p99 − p50, or p50 − p01); 0 unless it
        lies beyond by at least ``reason_margin`` spreads. A value just past the 99th
        percentile is what 1 % of ordinary SIMs show: across several families, chance alone
        would pair two of them."""
        above = (values - self._hi) / np.maximum(self._hi - self._p50, 1e-9)
        below = (self._lo - values) / np.maximum(self._p50 - self._lo, 1e-9)
        m = self.policy.reason_margin
        out = np.where(self._high & (values > self._hi) & (above >= m), above + 1, 0.0) + \
            np.where(self._low & (values < self._lo) & (below >= m), below + 1, 0.0)
        callers = values[:, FEATURES.index("voice_out_24h")] >= CALLERS_MIN_VOICE_OUT
        out[~callers[:, None] & self._needs_calls[None, :]] = 0
        out[callers[:, None] & self._without_calls[None, :]] = 0
        out[values < self._floor[None, :]] = 0
        return out

    def person_like(self, values: np.ndarray) -> np.ndarray:
        """Callers (``CALLERS_MIN_VOICE_OUT`` calls in 24 h) more than ``person_repeat_share``
        of whose contacts of the day were repeats: a person calls the same people again (the
        r-th contact with weight r^-1.3, Jiang et al. 2013), a box's bypass calls reach each
        number of the public once. A heavy caller, however many calls, is one of these."""
        callers = values[:, _VOICE_OUT] >= CALLERS_MIN_VOICE_OUT
        return callers & (values[:, _REPEAT] > self.policy.person_repeat_share)

    def plausible(self, values: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Rows that are not a person's phone (:meth:`person_like`) and that the supervised
        layer (when the model has one) does not veto: analysts' confirmed and dismissed flags
        taught it what the anomaly policy gets wrong."""
        ok = ~self.person_like(values)
        p = self.model.fraud_probability(values, scores)
        return ok if p is None else ok & (p >= self.policy.rerank_min_probability)

    def families(self, strengths: np.ndarray, without: tuple[str, ...] = ()) -> np.ndarray:
        """Number of distinct families with a rig-like feature, per row (leaving out the
        families ``without``)."""
        counted = np.array([fam not in without for fam in FAMILIES])
        per_family = (strengths > 0).astype(np.int32) @ self._family.astype(np.int32) > 0
        return (per_family & counted).sum(axis=1)

    def reasons(self, values: np.ndarray, strengths: np.ndarray) -> tuple[str, ...]:
        """The strongest rig-like feature of each family, strongest first."""
        order = np.argsort(-strengths, kind="stable")
        out, seen = [], set()
        for i in order:
            if strengths[i] <= 0 or len(out) == self.policy.max_reasons:
                break
            feat = CATALOG[i]
            if feat.family in seen:
                continue
            seen.add(feat.family)
            if feat.suspicious == "high":
                ref = f"99th percentile of subscribers: {feat.show(self._hi[i])}"
            else:
                ref = f"1st percentile of subscribers: {feat.show(self._lo[i])}"
            out.append(f"{feat.show(values[i])} {feat.phrase}; {ref}")
        return tuple(out)

    def score(self, frame: FeatureFrame) -> list[Flag]:
        """Flags for the rows of ``frame`` that pass the policy."""
        return self.assess(frame)[0]

    def assess(self, frame: FeatureFrame) -> tuple[list[Flag], np.ndarray]:
        """(flags, strengths of every row). The cheap conditions (activity, enough kinds of
        rig-like evidence) are checked first, so the forest only scores the few rows that
        could still be flagged; the result is the same."""
        strengths = self.strengths(frame.values)
        candidate = (frame.activity >= self.policy.min_events_24h) & \
            (self.families(strengths) >= self.policy.min_reasons)
        rows = np.flatnonzero(candidate)
        if not len(rows):
            return [], strengths
        scores = self.model.anomaly_score(frame.values[rows])
        keep = scores > self.threshold
        rows, scores = rows[keep], scores[keep]
        keep = self.plausible(frame.values[rows], scores)
        flags = []
        for r, score in zip(rows[keep], scores[keep]):
            values = frame.values[r]
            flags.append(Flag(
                imsi=imsi_text(frame.imsi[r]), msisdn=msisdn_text(frame.msisdn[r]),
                score=round(float(score), 4), flagged_at=int(frame.at[r]),
                reasons=self.reasons(values, strengths[r]),
                features={f: round(float(v), 3) for f, v in zip(FEATURES, values)},
            ))
        return flags, strengths
