"""Synchronised power-on (signalling): SIMs that attached in one cell within seconds.

At least ``co_power_min_sims`` SIMs that attached in one cell within seconds of each other,
that have calls or SMS (meters have neither) and have one other kind of evidence of their
own (like a hot cell) — or none but did so again later with the same companions (one box
powering on, day after day; a crowd or a site's power cut coincides once) — are flagged
(``rig``); so are, from the first burst on, SIMs of a burst whose SIMs then call or text
each other (``co_power_min_sims`` of them take part: a box imitating people) and modems of
a burst that receive verification codes with ``co_power_min_sims`` of its SIMs and neither
call, are called nor use data (a modem pool).
"""

from __future__ import annotations

import numpy as np

from detector.features.catalog import FEATURES
from detector.features.engine import SYNC_WINDOW_S
from detector.flags import Flag
from detector.ids import imsi_text
from detector.records import iso
from detector.rigs.common import SMS_IN, VOICE_DATA, quiet, row_flag
from detector.rigs.tick import Tick

_CALLS_SMS = [FEATURES.index(f) for f in ("voice_out_24h", "voice_in_24h", "sms_out_24h", "sms_in_24h")]


def find(tick: Tick) -> list[Flag]:
    frame, strengths, scorer = tick.frame, tick.strengths, tick.scorer
    need = tick.policy.co_power_min_sims
    engine = tick.engine
    busy = frame.activity >= scorer.policy.min_events_24h
    again = engine.repeated_bursts(frame.sims)
    together = frame.column("attach_sync_24h") >= need - 1
    talks = frame.values[:, _CALLS_SMS].sum(axis=1) > 0
    if not ((together | (again >= need - 1)) & talks).any():
        return []
    # one burst is co-location, like a hot cell: one more kind of evidence
    once = together & busy & \
        (scorer.families(strengths, without=("sync", "registration")) >= scorer.policy.min_reasons - 1)
    # SIMs of one burst that then call or text each other: a box imitating people. The
    # structure is the evidence, so it needs no volume of traffic; a couple among
    # strangers who switched on together is two talking SIMs, not ``need``
    contacts = engine.burst_contacts(frame.sims)
    talkers = engine.burst_members(frame.sims, engine.burst_talkers)
    box_talks = together & (talkers >= need)
    talking = box_talks & (contacts >= 1)
    # the same SIMs powering on together again: one box, day after day; a SIM that is
    # not busy yet (a box's quiet hours) counts once its burst talks among itself
    twice = (again >= need - 1) & (busy | box_talks)
    # SIMs of one burst that receive verification codes, and the SIM neither calls,
    # is called nor uses data: modems of a pool (猫池) taking codes for account farming
    modem = (frame.values[:, VOICE_DATA].sum(axis=1) == 0) & (frame.values[:, SMS_IN] > 0)
    code_takers = np.zeros(len(frame), np.int64)
    if (together & modem).any():
        def coded(sims: np.ndarray) -> np.ndarray:   # quiet SIMs with a code since their burst
            got = sims[engine.code_since_burst(sims)]
            return np.isin(sims, quiet(engine, got))
        code_takers = engine.burst_members(frame.sims, coded)
        codes = together & modem & coded(frame.sims) & (code_takers >= need)
    else:
        codes = np.zeros(len(frame), bool)
    rows = np.flatnonzero((twice | once | talking | codes) & talks)
    names = engine.cell_names()
    out: list[Flag] = []
    for r in rows:
        imsi = imsi_text(frame.imsi[r])
        if imsi in tick.taken:
            continue
        burst = engine.bursts(frame.sims[r:r + 1])
        where = names[burst.cell[0]]
        reason = (f"powered on with {burst.others[0]} other SIMs within {SYNC_WINDOW_S} s in "
                  f"cell {where} at {iso(burst.ts[0])}")
        if twice[r]:
            reason += f", {again[r]} of them also at {iso(burst.prev_ts[0])}"
        if talking[r]:
            reason += (f", then called or texted {contacts[r]} of them ({talkers[r]} SIMs of the "
                       f"burst talk among themselves)")
        elif twice[r] and box_talks[r]:
            reason += f" ({talkers[r]} SIMs of the burst talk among themselves)"
        if codes[r]:
            reason += (f", then received verification codes, as did {code_takers[r] - 1} of them, "
                       f"without calls or data (a modem pool)")
        # a companion's call or code may have tipped it: flagged when that was seen
        at = engine.watermark if talking[r] or codes[r] or (twice[r] and not busy[r]) else None
        # the supervised layer weighs a SIM's own behaviour; it cannot judge a burst's
        # structure, which it never sees: only the rule that leans on own evidence asks it
        flag = row_flag(scorer, frame, strengths, r, "rig", reason + " (synchronised attach, signalling)",
                        at, vetoable=not (twice[r] or talking[r] or codes[r]))
        tick.keep(flag, out, "power", f"SIMs power on together in cell {where}")
    return out
