"""The rig pass: what the pipeline asks, at each tick, of what follows its per-SIM scorer.

Two implement it: :class:`detector.rigs.book.RigBook`, which finds rigs (in the daemon, in
batch scoring and in the scale-out's rig stage), and :class:`detector.scale.summaries.Summaries`,
which in a scale-out worker keeps the rows the rig stage will need and hands back the
per-SIM flags unchanged. The book also keeps what the daemon's checkpoint saves and
restores (:class:`DurableRigPass`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from detector.features.engine import FeatureEngine, FeatureFrame
from detector.flags import Flag, Rig
from detector.records import RegistrationBatch
from detector.rigs.common import DAY_S, callers_min
from detector.rigs.policy import RigPolicy


@runtime_checkable
class RigPass(Protocol):
    """What :class:`detector.pipeline.Pipeline` calls."""

    def register(self, batch: RegistrationBatch) -> None:
        """Take in registrations (bulk registrations are rig evidence)."""

    def watches(self, sims: np.ndarray) -> np.ndarray:
        """Which of ``sims`` to score although their traffic is below the minimum."""

    def extend(self, frame: FeatureFrame, strengths: np.ndarray, flags: list[Flag],
               flagged: Mapping[str, Flag], skip: Callable[[Flag], bool] = ...) -> list[Flag]:
        """This tick's flags: the per-SIM ``flags`` and its own, less those ``skip``
        refuses."""


@runtime_checkable
class DurableRigPass(RigPass, Protocol):
    """A rig pass whose rigs and evidence the daemon's checkpoint saves and restores."""

    def unsaved_rigs(self) -> list[Rig]: ...

    def saved(self, rigs: list[Rig]) -> None: ...

    def recent_machines(self) -> dict[str, dict[str, int]]: ...

    def evidence_by_sim(self) -> dict[str, dict[str, str]]: ...

    def unsaved_evidence(self) -> dict[str, dict[str, str]]: ...

    def saved_evidence(self, taken: Mapping[str, Mapping[str, str]]) -> None: ...

    def restore(self, flags: list[Flag]) -> None: ...

    def restore_machines(self, saved: dict[str, dict[str, int]]) -> None: ...

    def restore_evidence(self, saved: dict[str, dict[str, str]]) -> None: ...


def watched(engine: FeatureEngine, sims: np.ndarray, policy: RigPolicy) -> np.ndarray:
    """Whether each SIM is to be scored before its traffic reaches the minimum: it powered on
    with ``co_power_min_sims - 1`` others, or received a verification code, within the last
    day (the rules on bursts and code-taking modems need no volume), or it is a caller (see
    :func:`detector.rigs.common.callers_min`; the calling groups need no volume either). The
    rig book and a worker's summaries watch the same SIMs: the summaries carry them to the
    rig stage."""
    bursts = engine.bursts(sims)
    since = engine.watermark - DAY_S - engine.lateness_s
    return (bursts.others >= policy.co_power_min_sims - 1) & (bursts.ts > since) | \
        (engine.last_code(sims) > since) | (engine.calls_out_24h(sims) >= callers_min(engine))
