"""Companions: a flagged SIM's companions that the supervised layer held back.

A SIM that powered on with a flagged SIM, or was machine-like in a flagged machine-like
SIM's cell within the hour, and passes the anomaly policy on its own is flagged whatever the
supervised layer says (``rig_member``): the layer weighs one SIM's behaviour, and a card of
a box too small for the group rules (two or three SIMs), a gateway's busiest card or a
moving rig's can look to it like a busy person; its flagged companion is the link it does
not see. (Call-centre agents are called back and use data: a machine-like one beside a
flagged machine-like one is rare.)
"""

from __future__ import annotations

import numpy as np

from detector.features.engine import SYNC_WINDOW_S
from detector.flags import Flag
from detector.ids import imsi_text
from detector.records import iso
from detector.rigs.common import newest_cell, row_flag
from detector.rigs.tick import Tick
from detector.wording import counted


def find(tick: Tick) -> list[Flag]:
    """SIMs of the frame that pass the anomaly policy on their own, but that the supervised
    layer held back, and that powered on with a flagged SIM (:meth:`Tick.known`) or were
    machine-like in the cell of a flagged machine-like SIM within the hour."""
    if not tick.policy.associate:
        return []
    flagged_slots = tick.known()
    if not len(flagged_slots):
        return []
    engine, frame, scorer = tick.engine, tick.frame, tick.scorer
    policy = scorer.policy
    own = (frame.activity >= policy.min_events_24h) & (tick.families >= policy.min_reasons)
    if not own.any():
        return []
    flagged = np.unique(flagged_slots)
    companions = engine.burst_members(frame.sims, lambda sims: np.isin(sims, flagged))
    cell = newest_cell(engine, frame.sims)
    cell_mates = np.zeros(len(frame), np.int64)
    for r in np.flatnonzero(own & (cell >= 0)):
        cell_mates[r] = len(tick.machines.mates(imsi_text(frame.imsi[r]), int(cell[r]), tick.taken))
    rows = np.flatnonzero(own & ((companions >= 1) | (cell_mates >= 1)))
    if not len(rows):
        return []
    rows = rows[scorer.model.anomaly_score(frame.values[rows]) > scorer.threshold]
    names = engine.cell_names()
    out: list[Flag] = []
    for r in rows:
        imsi = imsi_text(frame.imsi[r])
        if imsi in tick.taken:
            continue
        if companions[r]:
            burst = engine.bursts(frame.sims[r:r + 1])
            where = names[burst.cell[0]]
            reason = (f"powered on within {SYNC_WINDOW_S} s of {counted(companions[r], 'flagged SIM')} in "
                      f"cell {where} at {iso(burst.ts[0])} (signalling), and rig-like on its own")
            key, evidence = "power", f"SIMs power on together in cell {where}"
        else:
            where = names[cell[r]]
            reason = (f"machine-like (no data, almost no incoming calls) in cell {where} within the "
                      f"hour of {counted(cell_mates[r], 'flagged machine-like SIM')}, and rig-like on its own")
            key, evidence = "cell", f"machine-like SIMs active together in cell {where}"
        flag = row_flag(scorer, frame, tick.strengths, r, "rig_member", reason, vetoable=False)
        tick.keep(flag, out, key, evidence)
    return out
