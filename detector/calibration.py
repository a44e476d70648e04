"""Calibration to the watched population: the model learns the carrier it runs in.

The shipped model (``models/goipwatch.skops``) describes ordinary subscribers of the worlds
it was trained on. A carrier's own population can be far from that: subscribers who call 40
times as often, a network with no call centres, another mix of devices. So the detector keeps
a **baseline** of the live network and, on a schedule of event time, fits a model on it; the
shipped model is the prior, used alone until the baseline holds enough SIM-days.

How the live model and the prior are combined (and why):

- **Reference percentiles** (the reasons' yardstick). Per feature, the more tolerant of the
  two on the feature's rig-like side: the higher 99th percentile where high is rig-like, the
  lower 1st where low is. A population busier than the prior raises the bar, so busy people
  are not flagged; a quieter one does not lower it below the prior's, because any class
  rarer than 1 % of the live network (the call-centre agents of a big consumer network) would
  otherwise lie beyond its 99th percentile. Context features take the live values.
- **Anomaly score**. A row must be anomalous to both forests, each against its own
  ``score_quantile`` threshold: a live forest alone learns a dense rig as normal, the prior
  alone finds everyone anomalous in a network unlike its training worlds.

Robust to fraud in the window (up to about a tenth of the SIMs): SIMs the detector flagged or
put in a rig are left out, and then SIM-days that are rig-like by the population's own
yardstick (evidence of ``min_reasons`` families) are trimmed before the fit.

The baseline samples SIMs by a hash of the IMSI (the same SIMs whatever the order the records
arrive in, across restarts), at most ``sample_sims`` of them, and keeps per SIM-day the
extremes of each feature and a few random snapshots, as training does
(:func:`detector.pipeline.training_rows`).

**Drift**: how far the live population's medians and 99th percentiles lie from the prior's,
per feature, in log units; features beyond ``drift_alert`` are reported by ``status``,
``/metrics`` and the console.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from detector import model as model_mod
from detector.features.catalog import CATALOG, FEATURES
from detector.features.engine import FeatureEngine
from detector.model import CALLERS_MIN_VOICE_OUT, ModelError, TrainedModel
from detector.records import iso
from detector.wording import counted

if TYPE_CHECKING:
    from detector.scoring import Policy

DAY = 86_400
_F = len(FEATURES)
_VOICE_OUT = FEATURES.index("voice_out_24h")
_NEEDS_CALLS = np.array([f.needs_calls for f in CATALOG])
_HIGH = np.array([f.suspicious == "high" for f in CATALOG])
_LOW = np.array([f.suspicious == "low" for f in CATALOG])
_U64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, slots=True)
class CalibrationPolicy:
    enabled: bool = True
    every_s: int = 6 * 3600        # event time between refits
    warmup_every_s: int = 2 * 3600  # ... during the first day of the live model
    # at a cold start the first model is fitted after this long of event time watched (the
    # prior alone until then): the 24 h features of every SIM, and so the population's
    # percentiles, mean little before
    warmup_s: int = 2 * 3600
    window_days: int = 7           # SIM-days the live model learns from
    sample_sims: int = 20_000      # SIMs the baseline follows (by IMSI hash)
    min_sim_days: int = 1_000      # below this, the prior alone
    snapshots_per_sim_day: int = 4   # one per k-th of the day
    n_estimators: int = 50         # the live forest: refitted often, so smaller than the prior
    max_rows: int = 50_000         # snapshots the live forest is fitted on (a random subset)
    drift_alert: float = math.log(3)   # |log ratio| of a percentile beyond which a feature drifts

    def __post_init__(self) -> None:
        if min(self.every_s, self.warmup_every_s) < 300:
            raise ValueError("calibration every_s and warmup_every_s must be at least 300 s of event time")
        if not 1 <= self.window_days <= 60:
            raise ValueError("calibration window_days must be 1 to 60")
        if self.sample_sims < 100:
            raise ValueError("calibration sample_sims must be at least 100")
        if self.min_sim_days < 100:
            raise ValueError("calibration min_sim_days must be at least 100")
        if self.snapshots_per_sim_day < 1:
            raise ValueError("calibration snapshots_per_sim_day must be at least 1")
        if self.drift_alert <= 0:
            raise ValueError("calibration drift_alert must be positive")


def _mix(keys: np.ndarray) -> np.ndarray:
    """splitmix64 of int64 keys: an even spread for the hash sample."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@dataclass(slots=True)
class _Day:
    """One event day of the sampled SIMs: per SIM, extremes and one snapshot per k-th of the
    day."""
    imsi: list[int] = field(default_factory=list)
    index: dict[int, int] = field(default_factory=dict)
    highs: np.ndarray = field(default_factory=lambda: np.empty((0, _F), np.float32))
    lows: np.ndarray = field(default_factory=lambda: np.empty((0, _F), np.float32))
    snaps: np.ndarray = field(default_factory=lambda: np.empty((0, 0, _F), np.float32))
    seen: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    unsaved: set[int] = field(default_factory=set)     # rows changed since the last save

    def rows_of(self, imsi: np.ndarray, k: int) -> np.ndarray:
        new = [int(i) for i in imsi if int(i) not in self.index]
        if new:
            for i in new:
                self.index[i] = len(self.imsi)
                self.imsi.append(i)
            n = len(new)
            self.highs = np.vstack([self.highs, np.full((n, _F), -np.inf, np.float32)])
            self.lows = np.vstack([self.lows, np.full((n, _F), np.inf, np.float32)])
            snaps = np.full((n, k, _F), np.nan, np.float32)
            self.snaps = snaps if not len(self.seen) else np.concatenate([self.snaps, snaps])
            self.seen = np.r_[self.seen, np.zeros(n, np.int64)]
        return np.array([self.index[int(i)] for i in imsi], np.int64)

    def drop(self, keep: np.ndarray) -> None:
        rank = np.cumsum(keep) - 1
        self.unsaved = {int(rank[r]) for r in self.unsaved if keep[r]}
        self.imsi = [i for i, k in zip(self.imsi, keep) if k]
        self.index = {i: n for n, i in enumerate(self.imsi)}
        self.highs, self.lows = self.highs[keep], self.lows[keep]
        self.snaps, self.seen = self.snaps[keep], self.seen[keep]


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """The baseline's SIM-days: snapshots, and each SIM-day's extremes."""
    rows: np.ndarray          # (n_snapshots, F)
    row_day: np.ndarray       # SIM-day index of each snapshot
    highs: np.ndarray         # (n_sim_days, F)
    lows: np.ndarray
    imsi: np.ndarray          # per SIM-day
    start: int
    end: int

    @property
    def sim_days(self) -> int:
        return len(self.imsi)


class Baseline:
    """The live population, sampled: what calibration and drift read."""

    def __init__(self, policy: CalibrationPolicy = CalibrationPolicy()) -> None:
        self.policy = policy
        self.threshold = _U64          # SIMs whose hash is at most this are followed
        self.followed: set[int] = set()
        self.days: dict[int, _Day] = {}

    def observe(self, engine: FeatureEngine, sims: np.ndarray) -> None:
        """Take the features of the followed SIMs among ``sims`` (slots touched at a tick)."""
        if not len(sims):
            return
        imsi = engine.imsis(sims)
        h = _mix(imsi)
        pick = h <= self.threshold
        if not pick.any():
            return
        self.followed.update(imsi[pick].tolist())
        if len(self.followed) > self.policy.sample_sims:
            self._shrink()
            pick = h <= self.threshold
            if not pick.any():
                return
        frame = engine.features(sims[pick])
        # to 4 decimals: the engine's float32 sums round differently in their last bit when a
        # replay is cut into other batches, and the live model must not move with that
        values = np.round(frame.values, 4).astype(np.float32)
        day_of = frame.at // DAY
        for d in np.unique(day_of):
            at = day_of == d
            self._take(int(d), frame.imsi[at], values[at], frame.at[at])
        horizon = int(day_of.max()) - self.policy.window_days
        for d in [d for d in self.days if d <= horizon]:
            del self.days[d]

    def _shrink(self) -> None:
        """Halve the sample until it fits: drop the SIMs above the new hash threshold."""
        while len(self.followed) > self.policy.sample_sims:
            self.threshold = self.threshold >> np.uint64(1)
            keys = np.fromiter(self.followed, np.int64, len(self.followed))
            self.followed = set(keys[_mix(keys) <= self.threshold].tolist())
        for day in self.days.values():
            keep = _mix(np.array(day.imsi, np.int64)) <= self.threshold
            day.drop(keep)

    def _take(self, d: int, imsi: np.ndarray, values: np.ndarray, at: np.ndarray) -> None:
        day = self.days.setdefault(d, _Day())
        k = self.policy.snapshots_per_sim_day
        rows = day.rows_of(imsi, k)
        counts = (values[:, _VOICE_OUT] >= CALLERS_MIN_VOICE_OUT)[:, None] | ~_NEEDS_CALLS[None, :]
        np.maximum.at(day.highs, rows, np.where(counts, values, -np.inf))
        np.minimum.at(day.lows, rows, np.where(counts, values, np.inf))
        # one snapshot per k-th of the day, the latest in it: spread over the day like
        # training's random snapshots, but the same whatever the SIMs' identifiers and
        # whatever order the replay took
        part = (at % DAY) * k // DAY
        day.snaps[rows, part] = values
        day.seen[rows] += 1
        day.unsaved.update(rows.tolist())

    def sim_days(self) -> int:
        return sum(len(d.imsi) for d in self.days.values())

    def window(self, exclude: set[int] = frozenset()) -> Window:
        rows, row_day, highs, lows, imsi = [], [], [], [], []
        base = 0
        for d in sorted(self.days):
            day = self.days[d]
            if not day.imsi:
                continue
            ids = np.array(day.imsi, np.int64)
            keep = ~np.isin(ids, np.fromiter(exclude, np.int64, len(exclude))) if exclude else \
                np.ones(len(ids), bool)
            ids = ids[keep]
            snaps = day.snaps[keep]
            have = ~np.isnan(snaps[:, :, 0])
            sd, _ = np.nonzero(have)
            rows.append(snaps[have])
            row_day.append(sd + base)
            highs.append(day.highs[keep])
            lows.append(day.lows[keep])
            imsi.append(ids)
            base += len(ids)
        if not imsi:
            empty = np.empty((0, _F))
            return Window(empty, np.empty(0, np.int64), empty, empty, np.empty(0, np.int64), 0, 0)
        return Window(np.concatenate(rows).astype(np.float64), np.concatenate(row_day),
                      np.concatenate(highs).astype(np.float64),
                      np.concatenate(lows).astype(np.float64), np.concatenate(imsi),
                      min(self.days) * DAY, (max(self.days) + 1) * DAY)

    # ---- persistence: the sample survives a restart, one row per SIM-day ----------------

    def unsaved(self) -> list[tuple[int, int, bytes]]:
        """(day, IMSI, packed SIM-day) of what changed since :meth:`saved`."""
        return [(d * DAY, day.imsi[r], _pack(day, r))
                for d, day in self.days.items() for r in sorted(day.unsaved)]

    def saved(self) -> None:
        for day in self.days.values():
            day.unsaved.clear()

    def dropped_before(self) -> int:
        """Event time before which saved SIM-days are out of the window (or shed)."""
        return min(self.days) * DAY if self.days else 0

    def restore(self, rows: list[tuple[int, int, bytes]], threshold: int | None) -> None:
        """Load SIM-days saved by :meth:`take_unsaved` (rows of SIMs no longer followed are
        skipped)."""
        if threshold is not None:
            self.threshold = np.uint64(threshold)
        k = self.policy.snapshots_per_sim_day
        for day_ts, imsi, packed in rows:
            if _mix(np.array([imsi], np.int64))[0] > self.threshold:
                continue
            day = self.days.setdefault(int(day_ts) // DAY, _Day())
            r = int(day.rows_of(np.array([imsi], np.int64), k)[0])
            _unpack(day, r, packed, k)
            self.followed.add(int(imsi))


_PACK = np.dtype([("seen", "<i8"), ("highs", "<f4", (_F,)), ("lows", "<f4", (_F,))])


def _pack(day: _Day, r: int) -> bytes:
    head = np.zeros((), _PACK)
    head["seen"], head["highs"], head["lows"] = day.seen[r], day.highs[r], day.lows[r]
    return head.tobytes() + day.snaps[r].astype("<f4").tobytes()


def _unpack(day: _Day, r: int, packed: bytes, k: int) -> None:
    head = np.frombuffer(packed[:_PACK.itemsize], _PACK)[0]
    snaps = np.frombuffer(packed[_PACK.itemsize:], "<f4")
    if snaps.size != k * _F:       # saved with another snapshots_per_sim_day: extremes only
        snaps = np.full(k * _F, np.nan, np.float32)
    day.seen[r], day.highs[r], day.lows[r] = head["seen"], head["highs"], head["lows"]
    day.snaps[r] = snaps.reshape(k, _F)


class CalibratedModel(TrainedModel):
    """The prior and a live model as one: what :class:`detector.scoring.Scorer` is given.

    ``anomaly_score`` is the prior's score where the live forest agrees the row is anomalous
    at the same quantile, else at most the prior's threshold (see the module docstring)."""

    __slots__ = ("prior", "live", "quantile", "_shift")

    def __init__(self, prior: TrainedModel, live: TrainedModel, quantile: float,
                 manifest: dict) -> None:
        TrainedModel.__init__(self, prior.pipeline, manifest, prior.reranker)
        object.__setattr__(self, "prior", prior)
        object.__setattr__(self, "live", live)
        object.__setattr__(self, "quantile", quantile)
        object.__setattr__(self, "_shift", prior.threshold(quantile) - live.threshold(quantile))

    def anomaly_score(self, values: np.ndarray) -> np.ndarray:
        return np.minimum(self.prior.anomaly_score(values),
                          self.live.anomaly_score(values) + self._shift)

    def threshold(self, quantile: float) -> float:
        return self.prior.threshold(quantile)


# Families whose scale is the population's habit (how much, how one-way, how fast people call
# and text): these follow the live network. A device's SIM count and a card's registration
# are the rig's own structure, and what a sales channel does is no habit to learn from: there
# a network with many fraud cards would teach the detector that they are normal.
CALIBRATED_FAMILIES = frozenset({"volume", "one_way", "sms", "call_quality", "rhythm"})


def blend_reference(prior: dict, live: dict) -> dict:
    """Per feature, the more tolerant reference on its rig-like side (module docstring);
    the prior's outside :data:`CALIBRATED_FAMILIES`. For a count the live percentile as it
    is; for a ratio, share or spread only as far as the population's median moved
    (:func:`tolerated`)."""
    out = {}
    for f in CATALOG:
        p, q = prior[f.name], live[f.name]
        if f.family not in CALIBRATED_FAMILIES:
            out[f.name] = dict(p, source="prior")
        elif f.suspicious == "high":
            bar = q["p99"] if f.count else tolerated(p, q, "p99")
            out[f.name] = dict(q, p99=bar, source="live") if bar > p["p99"] else dict(p, source="prior")
        elif f.suspicious == "low":
            bar = q["p01"] if f.count else tolerated(p, q, "p01")
            out[f.name] = dict(q, p01=bar, source="live") if bar < p["p01"] else dict(p, source="prior")
        else:
            out[f.name] = dict(q, source="live")
    return out


def tolerated(prior: dict, live: dict, tail: str) -> float:
    """The live ``tail`` percentile of a ratio feature (outgoing per incoming call, the share
    of repeat contacts, answered calls, the spread of call gaps), taken only as far as the
    prior's would move with the population's median. A busier network calls more; it does not
    call more one-way: a tail its body does not explain is the window's own fraud or a class
    of a few percent (call centres), and following it would teach the detector the rigs'
    ratios. (Scaled by the medians' ratio; where either median is 0, the live tail if the
    median moved toward it, else the prior's.)"""
    if prior["p50"] <= 0 or live["p50"] <= 0:
        toward = live["p50"] > prior["p50"] if tail == "p99" else live["p50"] < prior["p50"]
        return live[tail] if toward else prior[tail]
    scaled = prior[tail] * live["p50"] / prior["p50"]
    return min(live[tail], scaled) if tail == "p99" else max(live[tail], scaled)


def _rig_like(window: Window, reference: dict, min_reasons: int, margin: float) -> np.ndarray:
    """SIM-days with rig-like evidence of ``min_reasons`` families or more by ``reference``
    (the same test as the scorer's, on each SIM-day's extremes)."""
    from detector.scoring import Policy, Scorer

    scorer = Scorer(_ReferenceOnly(reference), Policy(min_reasons=min_reasons, reason_margin=margin))
    values = np.where(_HIGH[None, :], window.highs, np.where(_LOW[None, :], window.lows, window.highs))
    values = np.where(np.isfinite(values), values, 0.0)
    return scorer.families(scorer.strengths(values)) >= min_reasons


@dataclass(frozen=True, slots=True)
class _ReferenceOnly:
    """A model that is only a reference: enough for :meth:`Scorer.strengths`."""
    reference: dict

    @property
    def manifest(self) -> dict:
        return {"reference": self.reference}

    def threshold(self, quantile: float) -> float:
        return 1.0


@dataclass(frozen=True, slots=True)
class Calibration:
    model: TrainedModel          # what the scorer uses: the prior, or prior + live
    sim_days: int                # SIM-days the live model learnt from (0: the prior alone)
    trimmed: int                 # SIM-days left out as rig-like
    excluded: int                # SIMs left out as flagged
    at: int                      # event time of the fit
    drift: dict[str, float]      # per feature, |log ratio| of live to prior percentiles


def drift(prior: dict, live: dict) -> dict[str, float]:
    """Per feature, how far the live population lies from the prior's: the larger of the
    |log ratio| of the medians and of the 99th percentiles (1 added against zeros)."""
    out = {}
    for f in FEATURES:
        p, q = prior[f], live[f]
        out[f] = round(max(abs(math.log1p(max(q[k], 0.0)) - math.log1p(max(p[k], 0.0)))
                           for k in ("p50", "p99")), 4)
    return out


def recalibrate(prior: TrainedModel, baseline: Baseline, *, at: int, quantile: float,
                min_reasons: int, margin: float, exclude: set[int] = frozenset(),
                seed: int = 0) -> Calibration:
    """A model for the population the baseline holds, with ``prior`` as the fallback."""
    policy = baseline.policy
    window = baseline.window(exclude)
    if window.sim_days < policy.min_sim_days:
        return Calibration(prior, 0, 0, len(exclude), at, {})
    first = model_mod.reference_percentiles(window.rows, window.highs, window.lows)
    rig_like = _rig_like(window, first, min_reasons, margin)
    keep_day = ~rig_like
    rows = window.rows[keep_day[window.row_day]]
    # in an order of their own values: the forest's random draws then pick the same rows for
    # the same traffic, whatever the SIMs' identifiers or the order they were first seen in
    rows = rows[np.lexsort(rows.T[::-1])]
    if keep_day.sum() < policy.min_sim_days or len(rows) < 50:
        return Calibration(prior, 0, int(rig_like.sum()), len(exclude), at, {})
    try:
        live = model_mod.fit(rows, window=(iso(window.start), iso(window.end)), seed=seed,
                             n_estimators=policy.n_estimators, max_rows=policy.max_rows,
                             highs=window.highs[keep_day], lows=window.lows[keep_day])
    except ModelError:
        return Calibration(prior, 0, int(rig_like.sum()), len(exclude), at, {})
    moved = drift(prior.manifest["reference"], live.manifest["reference"])
    manifest = dict(prior.manifest, reference=blend_reference(prior.manifest["reference"],
                                                              live.manifest["reference"]),
                    calibration={"at": iso(at), "sim_days": int(keep_day.sum()),
                                 "trimmed": int(rig_like.sum()), "excluded_sims": len(exclude),
                                 "prior_sha256": prior.manifest.get("sha256"),
                                 "live_training_window": live.manifest["training_window"],
                                 "live_score_quantiles": live.manifest["score_quantiles"]})
    return Calibration(CalibratedModel(prior, live, quantile, manifest), int(keep_day.sum()),
                       int(rig_like.sum()), len(exclude), at, moved)


class Calibrator:
    """The pipeline's side of calibration: the baseline, the schedule, the current model.

    At each scoring tick the pipeline hands it the SIMs touched (:meth:`observe`); when the
    schedule says so it refits (:meth:`due`, :meth:`refit`) and the pipeline's scorer takes
    the new model. Everything here moves with event time only, so a replay gives the same
    models at the same ticks."""

    def __init__(self, prior: TrainedModel, policy: CalibrationPolicy, *, quantile: float,
                 min_reasons: int, margin: float) -> None:
        self.prior = prior
        self.policy = policy
        self.quantile, self.min_reasons, self.margin = quantile, min_reasons, margin
        self.baseline = Baseline(policy)
        self.current = Calibration(prior, 0, 0, 0, 0, {})
        self.next_fit = 0              # event time of the next refit (0: when the baseline fills)
        self.first_at = 0              # event time of the first tick watched
        self.first_fit = 0             # event time of the first calibrated model
        self.version = 0               # moves at every refit that changed the model
        self.saved_version = 0

    @property
    def calibrated(self) -> bool:
        return self.current.sim_days > 0

    def observe(self, engine: FeatureEngine, sims: np.ndarray) -> None:
        if self.policy.enabled:
            self.first_at = self.first_at or engine.watermark
            self.baseline.observe(engine, sims)

    def due(self, at: int) -> bool:
        if not self.policy.enabled:
            return False
        if not self.next_fit:
            return at - self.first_at >= self.policy.warmup_s
        return at >= self.next_fit

    def refit(self, at: int, exclude: set[int]) -> Calibration:
        cal = recalibrate(self.prior, self.baseline, at=at, quantile=self.quantile,
                          min_reasons=self.min_reasons, margin=self.margin, exclude=exclude)
        if cal.sim_days and not self.first_fit:
            self.first_fit = at
        young = not self.first_fit or at - self.first_fit < DAY
        every = self.policy.warmup_every_s if young else self.policy.every_s
        self.next_fit = (at // every + 1) * every
        if cal.sim_days or self.calibrated:
            self.version += 1
        self.current = cal
        return cal

    def status(self) -> dict:
        """What ``status``, ``/metrics`` and the console show: the model in use and drift."""
        cal = self.current
        alert = {f: v for f, v in sorted(cal.drift.items(), key=lambda kv: -kv[1])
                 if v >= self.policy.drift_alert}
        return {
            "enabled": self.policy.enabled,
            "model": "calibrated" if cal.sim_days else "prior",
            "fitted_at": iso(cal.at) if cal.sim_days else None,
            "sim_days": cal.sim_days, "trimmed_sim_days": cal.trimmed,
            "excluded_sims": cal.excluded,
            "followed_sims": len(self.baseline.followed),
            "baseline_sim_days": self.baseline.sim_days(),
            "next_fit": iso(self.next_fit) if self.next_fit else None,
            "drift": cal.drift,
            "drifting": alert,
            "action": (f"{counted(len(alert), 'feature')} of the live population "
                       f"{'lies' if len(alert) == 1 else 'lie'} beyond "
                       f"{math.exp(self.policy.drift_alert):.0f}x the prior's percentiles; "
                       "the calibrated model's reference follows the live population on the "
                       "rig-like side where it is more tolerant, and the prior's otherwise")
                      if alert else "none needed",
        }

    def restore(self, cal: Calibration, next_fit: int) -> None:
        self.current, self.next_fit = cal, next_fit
        self.saved_version = self.version

    def saved(self) -> None:
        """What :meth:`Baseline.unsaved` and the model gave the store is committed."""
        self.baseline.saved()
        self.saved_version = self.version


def calibrator_for(model: TrainedModel, policy: "Policy",
                   calibration: CalibrationPolicy | None) -> Calibrator | None:
    """The calibrator the daemon and ``score`` put beside ``model`` (None when off)."""
    if calibration is None or not calibration.enabled:
        return None
    return Calibrator(model, calibration, quantile=policy.score_quantile,
                      min_reasons=policy.min_reasons, margin=policy.reason_margin)
