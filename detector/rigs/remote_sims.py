"""Remote SIMs (signalling): SIMs that answer authentication slowly.

A SIM whose answers to authentication take ``remote_sim_auth_ms`` or longer on average (at
least two of them; a phone answers in 0.1-0.3 s, a SIM in a remote SIM bank waits for the
network between bank and gateway) and that shows one other kind of evidence of its own is
flagged (``rig``).
"""

from __future__ import annotations

import numpy as np

from detector.flags import Flag
from detector.ids import imsi_text
from detector.rigs.common import row_flag
from detector.rigs.tick import Tick


def find(tick: Tick) -> list[Flag]:
    frame, scoring = tick.frame, tick.scorer.policy
    latency, answers = tick.engine.auth_latency(frame.sims)
    rows = np.flatnonzero((latency >= tick.policy.remote_sim_auth_ms) & (answers >= 2) &
                          (tick.families >= scoring.min_reasons - 1) &
                          (frame.activity >= scoring.min_events_24h))
    out: list[Flag] = []
    for r in rows:
        imsi = imsi_text(frame.imsi[r])
        if imsi in tick.taken:
            continue
        reason = (f"answers authentication in {latency[r] / 1000:.1f} s on average (phones: "
                  f"0.1-0.3 s): a SIM far from its radio, as in a remote SIM bank (signalling)")
        tick.keep(row_flag(tick.scorer, frame, tick.strengths, r, "rig", reason), out,
                  "remote", "SIMs answer authentication slowly (remote SIM bank)")
    return out
