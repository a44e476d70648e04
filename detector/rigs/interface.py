"""The rig pass: what the pipeline asks, at each tick, of what follows its per-SIM scorer."""

from __future__ import annotations

import numpy as np

from detector.features.engine import FeatureEngine
from detector.rigs.common import DAY_S, callers_min
from detector.rigs.policy import RigPolicy


def watched(engine: FeatureEngine, sims: np.ndarray, policy: RigPolicy) -> np.ndarray:
    """Whether each SIM is to be scored before its traffic reaches the minimum: it powered on
    with ``co_power_min_sims - 1`` others, or received a verification code, within the last
    day (the rules on bursts and code-taking modems need no volume), or it is a caller (see
    :func:`detector.rigs.common.callers_min`; the calling groups need no volume either). The
    rig book and a worker's summaries watch the same SIMs: the summaries carry them to the
    rig stage."""
    s = engine.sim_state
    since = engine.watermark - DAY_S - engine.lateness_s
    return (s["sync_n"][sims] >= policy.co_power_min_sims - 1) & (s["sync_ts"][sims] > since) | \
        (s["code_ts"][sims] > since) | (engine.calls_out_24h(sims) >= callers_min(engine))
