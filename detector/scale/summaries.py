"""What a worker tells the rig stage after each tick: its SIMs with rig-like evidence.

:class:`Summaries` takes the place of the :class:`detector.rigs.book.RigBook` in a worker's
pipeline (both are a :class:`detector.rigs.interface.RigPass`). At each scoring it keeps the
rows the rig logic can use (SIMs with at least one family of rig-like evidence, and the SIMs
flagged in that tick) instead of acting on them;
after the tick the worker turns them into one ``sum`` message for the rig stage, which needs
no other SIM of the population.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from detector.features.engine import FeatureEngine, FeatureFrame
from detector.flags import Flag
from detector.rigs.common import DAY_S, VOICE_DATA
from detector.rigs.policy import RigPolicy
from detector.rigs.interface import watched
from detector.scale import codec
from detector.scoring import Scorer


class Summaries:
    def __init__(self, engine: FeatureEngine, scorer: Scorer, partition: int,
                 policy: RigPolicy = RigPolicy()) -> None:
        self.engine = engine
        self.scorer = scorer
        self.partition = partition
        self.policy = policy
        self._frames: list[tuple[FeatureFrame, np.ndarray]] = []
        self._flags: list[Flag] = []

    def watches(self, sims: np.ndarray) -> np.ndarray:
        return watched(self.engine, sims, self.policy)

    def register(self, batch) -> None:  # registrations reach the rig stage through the store
        pass

    def extend(self, frame: FeatureFrame, strengths: np.ndarray, flags: list[Flag],
               flagged: Mapping[str, Flag], skip: Callable[[Flag], bool] = lambda f: False
               ) -> list[Flag]:
        just = np.isin(frame.imsi, np.array([int(f.imsi) for f in flags], np.int64))
        keep = (self.scorer.families(strengths) >= 1) | just | silent_code_takers(self.engine, frame)
        if keep.any():
            rows = np.flatnonzero(keep)
            self._frames.append((FeatureFrame(frame.sims[rows], frame.imsi[rows], frame.msisdn[rows],
                                              frame.at[rows], frame.values[rows], frame.activity[rows]),
                                 strengths[rows]))
        self._flags += flags
        return flags

    def take(self, step: str, at: int) -> bytes:
        """The ``sum`` message of this tick (``step`` tick or flush at event time ``at``)."""
        frames, self._frames = self._frames, []
        flags, self._flags = self._flags, []
        if frames:
            sims = np.concatenate([f.sims for f, _ in frames])
            # a SIM scored twice in one step (flush after tick) keeps its last row
            _, last = np.unique(sims[::-1], return_index=True)
            pick = np.sort(len(sims) - 1 - last)
            cat = lambda name: np.concatenate([getattr(f, name) for f, _ in frames])[pick]  # noqa: E731
            sims, imsi, msisdn, at_, values, activity = (cat(n) for n in
                                                          ("sims", "imsi", "msisdn", "at", "values", "activity"))
            strengths = np.concatenate([s for _, s in frames])[pick]
        else:
            sims = imsi = msisdn = at_ = activity = np.empty(0, np.int64)
            values = strengths = np.empty((0, 0))
        records = self.engine.sim_state[sims].copy()
        # the record's cell indices (hourly top cells, the power-on burst's cell, the last
        # cells it moved through) are this partition's: they travel as indices into a table
        # of the message
        top, sync, path = records["slot"]["top_cell"], records["sync_cell"], records["path_cell"]
        synced = has_sync_cell(records)
        used = np.unique(np.r_[top[top >= 0], sync[synced], path[path >= 0]])
        records["slot"]["top_cell"] = np.where(top >= 0, np.searchsorted(used, top), -1)
        records["sync_cell"] = np.where(synced, np.searchsorted(used, sync), sync)
        records["path_cell"] = np.where(path >= 0, np.searchsorted(used, path), -1)
        names = self.engine.cell_names()
        fields = {"partition": self.partition, "step": step, "at": int(at),
                  # the rig stage's clock is the daemon's: the newest event time, and the
                  # time watching began (the oldest record of the first piece), not the tick's
                  "watermark": int(self.engine.watermark), "observed_from": int(self.engine.observed_from),
                  "cells": [names[i] for i in used],
                  "flags": [{"imsi": f.imsi, "msisdn": f.msisdn, "score": f.score,
                             "flagged_at": f.flagged_at, "reasons": list(f.reasons), "kind": f.kind,
                             "features": dict(f.features)}   # the rig book reads a card's use from them
                            for f in flags]}
        return codec.encode("sum", fields, {
            "imsi": imsi, "msisdn": msisdn, "at": at_, "activity": activity,
            "values": values.ravel(), "strengths": strengths.ravel(),
            "state": records.view(np.uint8).ravel() if len(records) else np.empty(0, np.uint8)})


def silent_code_takers(engine: FeatureEngine, frame: FeatureFrame) -> np.ndarray:
    """Which rows of ``frame`` are SIMs that received a verification code within the last
    day (the window in which the rig book watches them) and neither call, are called nor use
    data: what the code-pool rule counts in a cell, by device model. A pool's modems each
    take a few codes and nothing else, and only their number in one cell shows the pool, so
    a worker summarises every such SIM, with or without evidence of its own, and the rig
    stage counts the pool as the daemon does. People who get codes call or browse: they stay
    with their worker."""
    quiet = frame.values[:, VOICE_DATA].sum(axis=1) == 0
    return quiet & (engine.sim_state["code_ts"][frame.sims] > engine.watermark - DAY_S - engine.lateness_s)


def has_sync_cell(records: np.ndarray) -> np.ndarray:
    """Which SIM records name a power-on burst's cell (unset: no burst yet, or no cell)."""
    return (records["sync_ts"] > 0) & (records["sync_cell"] >= 0)


def flags_of(msg: codec.Message) -> list[Flag]:
    return [Flag(imsi=f["imsi"], msisdn=f["msisdn"], score=f["score"], flagged_at=f["flagged_at"],
                 reasons=tuple(f["reasons"]), kind=f["kind"], features=dict(f.get("features", {})))
            for f in msg.fields["flags"]]



