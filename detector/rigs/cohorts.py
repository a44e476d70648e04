"""Co-moving cohorts: SIMs that moved through the same cells together, at the same times.

A box in a vehicle carries its SIMs through one sequence of cells: each enters cell A, then
B, then C within minutes of the others, whether the vehicle moves every two minutes or every
few hours (VoltDB ``cell_suspicious_cohorts``: SIMs sharing their last 3 or 6 cells). The
engine keeps each SIM's last distinct cells with the time it entered each
(:meth:`FeatureEngine.recent_cells`) and an index of its newest steps by (cell, time)
(:meth:`FeatureEngine.entered`); a SIM moves with another when at least ``MIN_STEPS`` of
its last cells, distinct and in the same order, were entered by the other within
``STEP_S`` of it. Only SIMs of the tick that took a step lately are asked about, each
about its own newest steps: the cost follows who moved, never every SIM.

Shared steps, not one hash of the last three cells: a SIM is seen in a cell only when it
has a record there, so a box moving every two minutes whose SIMs call every few minutes
leaves each SIM a different subset of the route (A C D, A B D, ...), and no two SIMs
share a string of consecutive cells. Steps shared in order survive the cells a SIM skipped.

Moving together is no evidence on its own: people on a bus or on one train share the
cells, the order and the times. So, as co-location (:mod:`detector.rigs.hot_cells`), it
flags nothing alone. A SIM of a cohort is flagged (``rig``) when

- the cohort holds at least ``hot_cell_min_sims`` SIMs that are *not called like a
  person*: a phone is called back by several people and its incoming calls are a fair
  share of its traffic (at least ``MIN_CALLERS`` numbers and ``MAX_INCOMING_SHARE`` of
  its events); a gateway's victims seldom call back (~100× less than it calls, Murynets
  et al.) and a box cannot have strangers call its SIMs without paying for more SIMs;
- the SIM itself is one of them, busy (``min_events_24h``) and with another kind of
  evidence of its own, as for a hot cell. The supervised layer is not asked: it learns from
  a SIM's features and never sees the path (as for the same SIMs powering on again); asked,
  it vetoed every SIM of a simulated moving box.

Data sessions are not asked: a box imitating people opens them cheaply (goip_evasive),
and a phone without a data plan has none. The device model (phone or GSM module TAC) is
not asked either: the detector keeps no list of module TACs, and a box's IMEIs can be
written. Absence of calls back counts only once the network has been watched
``absence_after_s`` (as for hot cells). Cohort members already flagged note the
cohort, so that the rig book links them with the SIMs this rule flags.
"""

from __future__ import annotations

import numpy as np

from detector.features.catalog import FEATURES
from detector.features.engine import FeatureEngine, FeatureFrame
from detector.flags import Flag
from detector.ids import imsi_text
from detector.rigs.common import HOUR_S, row_flag
from detector.rigs.hot_cells import MAX_INCOMING_SHARE, absence_is_evidence
from detector.rigs.tick import Tick

STEP_S = 300          # two SIMs entered a cell within this many seconds of each other: together
MIN_STEPS = 3         # steps shared, in the same order, over this many distinct cells
RECENT_S = HOUR_S // 2   # a SIM took its newest step this recently: asked about (a scoring tick or
                         # two; a later SIM of the cohort finds it in the step index)
MIN_CALLERS = 3       # distinct numbers that called a SIM in its 24 h window: called like a person
_VOICE_IN = FEATURES.index("voice_in_24h")


def co_moving(engine: FeatureEngine, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair (``a[i]``, ``b[i]``): whether they moved together (``MIN_STEPS`` distinct
    cells of ``a``'s path entered by ``b`` within ``STEP_S``, in the same order), the
    widest gap between their entries of a shared step (s), and which steps of ``a``'s path
    ``b`` shared, (n, PATH) bool."""
    ca, ta = engine.recent_cells(a)
    cb, tb = engine.recent_cells(b)
    n, width = ca.shape
    match = (ca[:, :, None] == cb[:, None, :]) & (ca[:, :, None] >= 0) & \
        (np.abs(ta[:, :, None] - tb[:, None, :]) <= STEP_S)
    # greedy, oldest step first: each step of a's matched by the earliest step of b's after
    # the one matched before (as many steps as any matching in order can share)
    last = np.full(n, -1)
    shared = np.zeros((n, width), bool)
    spread = np.zeros(n, np.int64)
    later = np.arange(width)[None, :]
    rows = np.arange(n)
    for i in range(width):
        m = match[:, i, :] & (later > last[:, None])
        has = m.any(axis=1)
        j = m.argmax(axis=1)
        last = np.where(has, j, last)
        shared[:, i] = has
        spread = np.maximum(spread, np.where(has, np.abs(ta[:, i] - tb[rows, j]), 0))
    cells = np.sort(np.where(shared, ca, -1), axis=1)
    distinct = ((cells[:, 1:] != cells[:, :-1]) & (cells[:, 1:] >= 0)).sum(axis=1) + (cells[:, 0] >= 0)
    return distinct >= MIN_STEPS, spread, shared


def movers_with(engine: FeatureEngine, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The SIMs that moved with each of ``sims``: (index into ``sims``, the other SIM, the
    widest gap of their shared steps, the steps of the SIM's path they shared), found from
    the step index by each SIM's newest steps."""
    cells, at = engine.recent_cells(sims)
    newest = slice(cells.shape[1] - MIN_STEPS, None)
    r, c = np.nonzero(cells[:, newest] >= 0)
    c += cells.shape[1] - MIN_STEPS
    q, other = engine.entered(cells[r, c], at[r, c] - STEP_S, at[r, c] + STEP_S)
    pairs = np.unique(r[q] << 32 | other)         # SIM slots fit 32 bits
    row, other = pairs >> 32, pairs & 0xFFFFFFFF
    keep = other != sims[row]
    row, other = row[keep], other[keep]
    together, spread, shared = co_moving(engine, sims[row], other)
    return row[together], other[together], spread[together], shared[together]


def called_like_a_person(frame: FeatureFrame, callers: np.ndarray) -> np.ndarray:
    """Rows called back by several numbers, for a fair share of their traffic."""
    return (callers >= MIN_CALLERS) & (frame.values[:, _VOICE_IN] >= MAX_INCOMING_SHARE * frame.activity)


def find(tick: Tick) -> list[Flag]:
    engine, frame = tick.engine, tick.frame
    if not absence_is_evidence(engine, tick.policy):
        return []
    cells, at = engine.recent_cells(frame.sims)
    moved = (cells[:, -MIN_STEPS] >= 0) & (at[:, -1] >= engine.watermark - RECENT_S)
    asked, asked_cells = frame.sims[moved], cells[moved]
    if not len(asked):
        return []
    row, other, spread, shared = movers_with(engine, asked)
    need = tick.policy.hot_cell_min_sims
    # each asked SIM's movers are a run of ``row``: with the SIM, its cohort
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]]) if len(row) else np.empty(0, np.int64)
    sizes = np.diff(np.r_[starts, len(row)])
    big = np.flatnonzero(sizes >= need - 1)
    if not len(big):
        return []
    # the members' features (a SIM that moved with one of the tick need not be of the tick)
    members = np.unique(np.r_[asked[row[starts[big]]], other[np.isin(row, row[starts[big]])]])
    mframe = frame if np.array_equal(members, frame.sims) else engine.features(members)
    strengths = tick.scorer.strengths(mframe.values)
    use = tick.scorer.families(strengths, without=("registration",))
    callers = engine.callers_outside(members, members[:0])
    boxlike = ~called_like_a_person(mframe, callers)
    scoring = tick.scorer.policy
    names = engine.cell_names()
    in_tick = np.isin(members, frame.sims)
    out: list[Flag] = []
    for k in big[np.argsort(-sizes[big], kind="stable")]:     # the largest cohorts first
        pairs = slice(starts[k], starts[k] + sizes[k])
        x = row[starts[k]]
        group = np.r_[asked[x], other[pairs]]
        at_group = np.searchsorted(members, group)
        n_box = int(boxlike[at_group].sum())
        if n_box < need:
            continue
        steps = shared[pairs].any(axis=0)
        route = " → ".join(names[c] for c in asked_cells[x][steps])
        within = max(1, -(-int(spread[pairs].max()) // 60))
        n = len(group)
        reason = f"one of {n} SIMs that moved through cells {route} together within {within} min"
        evidence = f"{n} SIMs moved through cells {route} together"
        for m in at_group[boxlike[at_group]]:
            imsi = imsi_text(mframe.imsi[m])
            if imsi in tick.taken:     # flagged already: the cohort links it into the rig
                if tick.book.evidence_of(imsi).get("cohort") is None:
                    tick.book.note(imsi, "cohort", evidence)
                continue
            if use[m] < scoring.min_reasons - 1 or mframe.activity[m] < scoring.min_events_24h:
                continue
            # moving together through cells is structure the supervised layer never sees
            # (as the same SIMs powering on again): it is not asked
            flag = row_flag(tick.scorer, mframe, strengths, m, "rig",
                            reason + ", rarely called back",
                            None if in_tick[m] else engine.watermark, vetoable=False)
            tick.keep(flag, out, "cohort", evidence)
    return out


def moved_together(engine: FeatureEngine, slot: int, others: np.ndarray) -> np.ndarray:
    """Which of ``others`` (SIM slots) moved with SIM ``slot`` (for the rig book's links)."""
    if not len(others):
        return np.zeros(0, bool)
    together, _, _ = co_moving(engine, np.full(len(others), slot), others)
    return together
