"""Records → features → flags in event time: the one path shared by the daemon, batch
scoring and training.

A batch is sorted by event time and cut at every ``interval_s`` boundary (the scoring
tick); after each cut the SIMs touched since the previous tick are scored. So a flag's
``flagged_at`` is the event time at which its evidence was complete, whether the records
came from a file replayed in one go or from a drop directory over a day.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from detector.calibration import Calibrator
from detector.features.catalog import CATALOG, FEATURES
from detector.feedback import AllowList
from detector.features.engine import FeatureEngine
from detector.flags import Flag
from detector.model import CALLERS_MIN_VOICE_OUT
from detector.metrics import Histogram
from detector.records import CdrBatch, RegistrationBatch
from detector.rigs.interface import RigPass
from detector.scoring import Scorer

DAY = 86_400
# Event time between scoring ticks: a flag waits at most this long for its tick. Five minutes
# keeps that wait small beside the 30 minutes carriers aim for (domain.md), at the cost of
# scoring a busy SIM up to three times as often as a 15-minute tick would.
SCORING_INTERVAL_S = 300


def tick_cuts(ts: np.ndarray, next_tick: int, interval_s: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Where records at event times ``ts`` (sorted, not empty) are cut by the scoring ticks
    they cross: the first tick to come (``next_tick``, or when 0 the first boundary after the
    first record), the ticks crossed, and the bounds of the pieces between them (a piece
    before each tick, then one after the last: ``len(ticks) + 2`` values from 0 to
    ``len(ts)``). Shared by the pipeline and the scale-out publisher, so both cut alike."""
    if not next_tick:
        next_tick = (int(ts[0]) // interval_s + 1) * interval_s
    last_tick = (int(ts[-1]) // interval_s) * interval_s
    ticks = np.arange(next_tick, last_tick + 1, interval_s)
    return next_tick, ticks, np.r_[0, np.searchsorted(ts, ticks, side="left"), len(ts)]


@dataclass(slots=True)
class Fed:
    late: np.ndarray                       # mask over the batch as given
    flags: list[Flag] = field(default_factory=list)


class Pipeline:
    def __init__(self, engine: FeatureEngine, scorer: Scorer | None, interval_s: int = SCORING_INTERVAL_S,
                 on_tick: Callable[[int], None] | None = None, rigs: RigPass | None = None,
                 allow: AllowList | None = None, calibrator: Calibrator | None = None) -> None:
        if interval_s < 60:
            raise ValueError("scoring interval must be at least 60 s of event time")
        self.engine = engine
        self.scorer = scorer
        self.interval_s = interval_s
        self.on_tick = on_tick
        self.rigs = rigs
        self.allow = allow if allow is not None else AllowList()
        self.calibrator = calibrator           # learns the watched population (None: the model as given)
        self.flagged: dict[str, Flag] = {}     # first flag of each SIM
        self.stats = {"ticks": 0, "seconds": 0.0}   # scoring work, for /metrics
        self.tick_seconds = Histogram()             # ... and how long each tick took
        self.next_tick = 0                     # event time of the next scoring tick

    def register(self, batch: RegistrationBatch) -> None:
        self.engine.apply_registrations(batch)
        if self.rigs is not None:
            self.rigs.register(batch)

    def feed(self, batch: CdrBatch) -> Fed:
        """Apply a batch; returns the records refused as late and the new flags."""
        late = np.zeros(len(batch), bool)
        fed = Fed(late)
        if not len(batch):
            return fed
        order = np.argsort(batch.ts, kind="stable")
        # cut before every tick boundary the batch crosses
        self.next_tick, ticks, bounds = tick_cuts(batch.ts[order], self.next_tick, self.interval_s)
        for k in range(len(bounds) - 1):
            part = order[bounds[k]:bounds[k + 1]]
            if len(part):
                applied = self.engine.apply(batch.take(part))
                late[part] = applied.late
            if k < len(ticks):
                fed.flags += self.tick(int(ticks[k]))
        return fed

    def tick(self, at: int) -> list[Flag]:
        """Score the SIMs touched since the last tick; ``at`` is the tick's event time."""
        self.next_tick = at + self.interval_s
        if self.on_tick:
            self.on_tick(at)
        if self.scorer is None:
            return []
        return self.score_dirty()

    def score_dirty(self) -> list[Flag]:
        started = time.perf_counter()
        try:
            return self._score_dirty()
        finally:
            took = time.perf_counter() - started
            self.stats["ticks"] += 1
            self.stats["seconds"] += took
            self.tick_seconds.observe(took)

    def _score_dirty(self) -> list[Flag]:
        sims = self.engine.take_dirty()
        if self.calibrator is not None and self.scorer is not None:
            self._calibrate(sims)
        if not len(sims) or self.scorer is None:
            return []
        active = self.engine.activity(sims)
        keep = active >= self.scorer.policy.min_events_24h
        if self.rigs is not None:   # a power-on burst is evidence before traffic builds up
            quiet = np.flatnonzero(~keep & (active > 0))
            keep[quiet] = self.rigs.watches(sims[quiet])
        sims = sims[keep]
        if not len(sims):
            return []
        frame = self.engine.features(sims)
        flags, strengths = self.scorer.assess(frame)
        allowed = lambda f: self.allow.allows(f, self.engine)  # noqa: E731
        flags = [f for f in flags if not allowed(f)]
        if self.rigs is not None:
            flags = self.rigs.extend(frame, strengths, flags, self.flagged, skip=allowed)
        new = []
        for flag in flags:
            if flag.imsi not in self.flagged:
                self.flagged[flag.imsi] = flag
                new.append(flag)
        return new


    def _calibrate(self, sims: np.ndarray) -> None:
        """The baseline takes this tick's SIMs; on schedule, the scorer a refitted model. SIMs
        already flagged stay out of what the population is learnt from."""
        cal = self.calibrator
        cal.observe(self.engine, sims)
        at = self.engine.watermark
        if cal.due(at):
            self.scorer.use(cal.refit(at, {int(i) for i in self.flagged}).model)


@dataclass(frozen=True, slots=True, eq=False)
class TrainingData:
    rows: np.ndarray    # snapshots, at most per_sim_day per SIM and day: what the model learns
    highs: np.ndarray   # per SIM and day, each feature's highest value over the day's snapshots
    lows: np.ndarray    # ... and lowest; ratios over calls only among snapshots with enough
                        # calls (-inf / +inf when there were none)


def training_rows(engine: FeatureEngine, batches: Iterable[CdrBatch], interval_s: int = SCORING_INTERVAL_S,
                  per_sim_day: int = 4, seed: int = 0) -> TrainingData:
    """Feature rows for training, as the scorer will see them: snapshots of the SIMs touched
    at each tick, thinned to at most ``per_sim_day`` random snapshots per SIM and day so that
    a busy SIM (a gateway is touched every tick) weighs no more than a quiet one. Also each
    SIM-day's extremes: a SIM is compared with how far ordinary SIMs go in a day, not with a
    random moment of theirs (most of which are idle hours)."""
    rng = np.random.default_rng(seed)
    needs_calls = np.array([f.needs_calls for f in CATALOG])
    voice_out = FEATURES.index("voice_out_24h")
    kept: list[np.ndarray] = []
    highs: list[np.ndarray] = []
    lows: list[np.ndarray] = []
    day_rows: list[np.ndarray] = []
    day_sims: list[np.ndarray] = []

    def thin() -> None:
        if not day_rows:
            return
        sims, rows = np.concatenate(day_sims), np.concatenate(day_rows)
        order = np.lexsort((rng.random(len(sims)), sims))
        sims, rows = sims[order], rows[order]
        first = np.r_[True, sims[1:] != sims[:-1]]
        start = np.flatnonzero(first)
        rank = np.arange(len(sims)) - np.maximum.accumulate(np.where(first, np.arange(len(sims)), 0))
        kept.append(rows[rank < per_sim_day])
        counts = (rows[:, voice_out] >= CALLERS_MIN_VOICE_OUT)[:, None] | ~needs_calls[None, :]
        highs.append(np.maximum.reduceat(np.where(counts, rows, -np.inf), start, axis=0))
        lows.append(np.minimum.reduceat(np.where(counts, rows, np.inf), start, axis=0))
        day_rows.clear()
        day_sims.clear()

    def snapshot(at: int) -> None:
        sims = engine.take_dirty()
        if len(sims):
            day_sims.append(sims)
            day_rows.append(engine.features(sims).values.astype(np.float32))
        if at % DAY == 0:
            thin()

    pipe = Pipeline(engine, None, interval_s, on_tick=snapshot)
    for b in batches:
        pipe.feed(b)
    snapshot(pipe.next_tick)  # the SIMs touched after the last tick
    thin()
    if not kept:
        empty = np.empty((0, len(FEATURES)))
        return TrainingData(empty, empty, empty)
    return TrainingData(*(np.concatenate(x).astype(np.float64) for x in (kept, highs, lows)))
