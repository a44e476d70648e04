"""Bulk siblings: the cards of a bulk registration one of whose cards is flagged for its use.

The cards of a bulk registration (:mod:`detector.rigs.registrations`) one of whose cards is
flagged for how it is used (rig evidence, or enough kinds of evidence besides its
registration) are flagged, used or not (``bulk_registration``). A card flagged only with
its registration's help does not bring its account: every card of an enterprise account
shares that family, and its cards are told apart by their use.
"""

from __future__ import annotations

import numpy as np

from detector.features.catalog import FEATURES
from detector.flags import Flag
from detector.ids import imsi_text, msisdn_text
from detector.rigs.tick import Tick
from detector.scoring import Scorer


def find(tick: Tick) -> list[Flag]:
    if not tick.policy.associate:
        return []
    engine, taken = tick.engine, tick.taken
    out = []
    for f in list(tick.found):
        members = tick.bulk.members(int(f.imsi))
        if members and not used_like_a_rig(tick.scorer, f):
            continue
        for m in members:
            imsi = imsi_text(m)
            if imsi in taken:
                continue
            slot = engine.sims.lookup(np.array([m], np.int64))[0]
            msisdn = msisdn_text(engine.msisdns(slot)) if slot >= 0 else ""
            out.append(Flag(imsi=imsi, msisdn=msisdn, score=f.score, flagged_at=f.flagged_at,
                            reasons=(f"{tick.bulk.text(m)}; a card of it is flagged",),
                            kind="bulk_registration"))
            taken.add(imsi)
    return out


def used_like_a_rig(scorer: Scorer, f: Flag) -> bool:
    """Whether a card's own use, not its registration, made it a flag: rig evidence, or
    enough kinds of rig-like behaviour without the registration family (which every
    card of an enterprise account shares: its cards are told apart by their use)."""
    if f.kind != "sim_anomaly" or not f.features:
        return f.kind in ("rig", "rig_member")
    values = np.array([[f.features[name] for name in FEATURES]])
    return scorer.families(scorer.strengths(values), without=("registration",))[0] \
        >= scorer.policy.min_reasons
