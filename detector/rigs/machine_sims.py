"""Machine-like SIMs: what the supervised layer may not veto.

A SIM that passes the anomaly policy on its own (activity, ``min_reasons`` families, the
anomaly score) and is not a person's phone (:meth:`Scorer.person_like`: it does not call
the same numbers again) is flagged whatever the supervised layer says (``sim_anomaly``) when
it behaves like a machine: no data session in 24 h and incoming calls at most
``MAX_INCOMING_SHARE`` of its events (the hot-cell rule's test, :mod:`detector.rigs.hot_cells`).
A gateway's port neither browses nor is called back (about 100 times fewer calls in than out,
Murynets et al. 2014); what the layer was fitted to dismiss, call-centre agents and couriers,
carry phones that do both. The layer's own weights are the regularity of gaps and durations
of one simulator's gateways; a box whose calls are answered and timed like people's
(log-logistic talk times, Poisson gaps) is one it has no ground to dismiss, and the absence
of data and call-backs is what any box shows.

Absence counts for one SIM after ``absence_after_s`` × ``hot_cell_min_sims`` of watching
(18 h by default): a hot cell has that many SIMs silent for ``absence_after_s`` each, and one
SIM silent k times as long is as unlikely as k SIMs silent together (a person's data sessions
as a Poisson process, the assumption behind ``absence_after_s``). With 6 h, a call-centre
agent at a cold start, 66 calls from the office cell since the morning and neither a data
session nor a call back yet, was flagged (the second generator's default world, seed 1).
"""

from __future__ import annotations

import numpy as np

from detector.features.catalog import FEATURES
from detector.features.engine import FeatureEngine
from detector.flags import Flag
from detector.ids import imsi_text
from detector.rigs.common import row_flag, watched_s
from detector.rigs.hot_cells import MAX_INCOMING_SHARE
from detector.rigs.policy import RigPolicy
from detector.rigs.tick import Tick

_DATA = FEATURES.index("data_sessions_24h")
_VOICE_IN = FEATURES.index("voice_in_24h")
REASON = "no data session and almost no incoming calls in 24 h (a machine, not a phone)"


def absence_counts(engine: FeatureEngine, policy: RigPolicy) -> bool:
    """Whether one SIM's absence of data and call-backs is evidence yet (module docstring)."""
    return watched_s(engine) >= policy.absence_after_s * policy.hot_cell_min_sims


def machine_like(tick: Tick) -> np.ndarray:
    """Per row of the tick's frame: no data session and incoming calls at most
    ``MAX_INCOMING_SHARE`` of its events in 24 h (all False before absence counts)."""
    frame = tick.frame
    if not absence_counts(tick.engine, tick.policy):
        return np.zeros(len(frame), bool)
    return (frame.values[:, _DATA] == 0) & \
        (frame.values[:, _VOICE_IN] <= MAX_INCOMING_SHARE * frame.activity)


def find(tick: Tick) -> list[Flag]:
    frame, scorer = tick.frame, tick.scorer
    policy = scorer.policy
    own = (frame.activity >= policy.min_events_24h) & (tick.families >= policy.min_reasons)
    rows = np.flatnonzero(own & machine_like(tick) & ~scorer.person_like(frame.values))
    rows = np.array([r for r in rows if imsi_text(frame.imsi[r]) not in tick.taken], np.int64)
    if not len(rows):
        return []
    rows = rows[scorer.model.anomaly_score(frame.values[rows]) > scorer.threshold]
    out: list[Flag] = []
    for r in rows:
        tick.keep(row_flag(scorer, frame, tick.strengths, r, "sim_anomaly", REASON, vetoable=False),
                  out, "machine", REASON)
    return out
