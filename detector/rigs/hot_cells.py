"""Co-location: machine-like SIMs together in one cell.

A cell where at least ``hot_cell_min_sims`` active SIMs show rig-like behaviour in the same
hour *and behave like machines*: no data session in 24 h and almost no incoming calls (one
service, one way: a gateway port or a modem neither browses nor gets called back ~100× less
than it calls (Murynets et al.); a call-centre agent's or courier's phone does both; absence
counts once the daemon has watched the network ``absence_after_s``). Each such SIM with
another kind of evidence of its own is flagged (``rig``): co-location alone flags nothing.
The flag is not put to the supervised layer: the co-location is structure it never sees, and
the layer, fitted on one simulator's gateways (regular gaps, fixed talk times), vetoed all 15
hot-cell flags of the second generator's boxes in its seed-1 worlds and 5 of 50 in the first
simulator's tuning worlds; with the layer off, not one of the 65 was benign (docs/evaluation.md).
"""

from __future__ import annotations

import numpy as np

from detector.features.catalog import FEATURES
from detector.features.engine import FeatureEngine
from detector.flags import Flag
from detector.ids import imsi_text
from detector.rigs.common import row_flag, watched_s
from detector.rigs.policy import RigPolicy
from detector.rigs.tick import Tick

_DATA = FEATURES.index("data_sessions_24h")
_VOICE_IN = FEATURES.index("voice_in_24h")
MAX_INCOMING_SHARE = 0.03   # incoming calls per event of a machine-like SIM


def absence_is_evidence(engine: FeatureEngine, policy: RigPolicy) -> bool:
    """Whether the network has been watched ``absence_after_s`` already (a person often
    has no data session in two hours, nearly always one in six)."""
    return watched_s(engine) >= policy.absence_after_s


def find(tick: Tick) -> list[Flag]:
    if not absence_is_evidence(tick.engine, tick.policy):
        return []
    frame, use, scoring = tick.frame, tick.use, tick.scorer.policy
    last = tick.engine.newest_hour(frame.sims)
    cell = tick.engine.newest_cell(frame.sims)
    machine = (use >= 1) & (frame.values[:, _DATA] == 0) & (cell >= 0) & \
        (frame.values[:, _VOICE_IN] <= MAX_INCOMING_SHARE * frame.activity) & \
        (frame.activity >= scoring.min_events_24h)
    # machine-like SIMs per cell, remembered across ticks: the SIMs of a rig need not
    # all be touched in the same 15 minutes, only in the same hour
    rows = np.flatnonzero(machine)
    for r in rows:
        tick.machines.remember(int(cell[r]), imsi_text(frame.imsi[r]), int(last[r]))
    tick.machines.forget_before(int(last.max()) - 2)
    names = tick.engine.cell_names()
    out: list[Flag] = []
    for r in rows:
        imsi = imsi_text(frame.imsi[r])
        if imsi in tick.taken or use[r] < scoring.min_reasons - 1:
            continue
        peers = tick.machines.peers(int(cell[r]))
        n = sum(1 for h in peers.values() if h >= last[r] - 1)
        if n < tick.policy.hot_cell_min_sims:
            continue
        where = names[cell[r]]
        reason = (f"one of {n} SIMs in cell {where} with rig-like traffic, no data and "
                  f"almost no incoming calls within the hour")
        tick.keep(row_flag(tick.scorer, frame, tick.strengths, r, "rig", reason, vetoable=False), out,
                  "cell", f"{n} machine-like SIMs active together in cell {where}")
    return out
