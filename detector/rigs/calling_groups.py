"""Calling groups: callers that call and text each other from one place.

At least ``co_power_min_sims`` callers that call and text each other from one place
(busiest cells the same in the same hour), not on one ID document, each linked to two others
of the group, or one more SIM each linked to one (a chain), with the callers hanging off it
by a contact they made — a box imitating people already at work, its power-on missed
(``rig``), when most of its contacts reach the public (:func:`reaches_public`): a box
terminates its bypass calls on many members of the public, one number each, while a circle
that keeps calling itself and a fixed few numbers (a carrier's test equipment calling its
other probes and its test lines, colleagues, friends) terminates nothing. Callers in contact
with two of its flagged SIMs, one of them by their own call or text, join it, then or at any
later tick, wherever they are. Before a day has been watched, calls are counted as a day's
rate (:func:`detector.rigs.common.callers_min`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np

from detector.features.engine import FeatureEngine
from detector.flags import Flag
from detector.ids import imsi_texts
from detector.model import CALLERS_MIN_VOICE_OUT
from detector.rigs.common import DAY_S, HOUR_S, caller_contacts, callers_min, row_flag, slots_of, watched_s
from detector.rigs.graph import linked_groups
from detector.rigs.tick import Tick

# Share of a calling group's contacts (calls and SMS out, 24 h) that must go to distinct
# numbers outside its circle. A box imitating people spends most of its day on bypass calls,
# one victim each, and a few on its mates (the second generator's human-like boxes, seed 1:
# 0.61-0.88 of their contacts at every tick they were a group; the first simulator's evasive
# gateways, default and hard seed 11: 0.59-0.91); a carrier's network probes
# call one another and a few test numbers round the clock (0.00-0.39 there, the highest in
# their first hour).
PUBLIC_SHARE_MIN = 0.5


def find(tick: Tick) -> list[Flag]:
    """Callers of the frame in a calling group: a new one, or one found before."""
    frame = tick.frame
    callers = frame.sims[frame.column("voice_out_24h") >= callers_min(tick.engine)]
    found = new_groups(tick, callers)
    return found + joiners(tick, callers)


def new_groups(tick: Tick, callers: np.ndarray) -> list[Flag]:
    """SIMs that call and text each other from one place, each of them a caller: a box
    imitating people (its SIMs keep each other company to look social) already at work
    when we first see it, its power-on missed. At least ``co_power_min_sims`` such SIMs,
    each in contact with two others of the group that had the same busiest cell in the
    same hour and are not on its ID document (a 2-core of that contact graph), or one SIM
    more each in contact with one (a connected chain: the links of a triangle spread over
    four SIMs; at a cold start a box's SIMs have a contact or two each), and called by
    no more numbers outside the group than it has links in it: a family or a company
    account calls among cards of one ID, friends are rarely all callers in one cell at one
    hour and are called by others, and one chance contact is not a group. Of those groups,
    only the ones whose contacts mostly reach the public (:func:`reaches_public`)."""
    engine, need, taken = tick.engine, tick.policy.co_power_min_sims, tick.taken
    edges = caller_contacts(engine, callers)
    # every group has SIMs with two such contacts (all of a 2-core, a chain's inner ones):
    # keep the SIMs of the frame that have them, and their partners, then look at the
    # contacts among all of those
    seeds = callers[np.bincount(edges[:, 0], minlength=len(callers)) >= 2]
    if not len(seeds):
        return []
    nodes = np.unique(np.r_[seeds, edges[np.isin(callers[edges[:, 0]], seeds), 1]])
    pairs = caller_contacts(engine, nodes, among=nodes)
    if not len(pairs):
        return []
    ia, ib = pairs[:, 0], np.searchsorted(nodes, pairs[:, 1])
    heard = lambda g: heard_outside(engine, nodes[g], company(engine, nodes[g]))  # noqa: E731
    # each member linked to two others; or, among the callers outside those groups, one
    # SIM more each linked to one (the three links of a triangle spread over a chain: a
    # box's SIMs at a cold start have a contact or two)
    groups = linked_groups(ia, ib, len(nodes), 2, need, heard)
    grouped = np.zeros(len(nodes), bool)
    for g in groups:
        grouped[g] = True
    apart = ~grouped[ia] & ~grouped[ib]
    groups += linked_groups(ia[apart], ib[apart], len(nodes), 1, need + 1, heard)
    groups = with_hangers(engine, groups, nodes, ia, ib, heard)
    groups = [g for g in groups if reaches_public(engine, nodes[g], nodes)]
    out: list[Flag] = []
    names = engine.cell_names()
    for members in groups:
        # and the callers in contact with two of them wherever they are (a box's SIMs of
        # another carrier in cells no other network shares), having reached one itself
        core = nodes[members]
        row, other = caller_contacts(engine, core, place=False).T
        away = ~np.isin(other, core)
        row, other = row[away], other[away]
        reaching, pair_of, links = np.unique(other, return_inverse=True, return_counts=True)
        made = np.bincount(pair_of, engine.contacted(other, core[row]), len(reaching))
        sims = np.r_[core, reaching[joins(engine, reaching, links, made, company(engine, core))]]
        imsis = imsi_texts(engine.sims.keys_by_slot[sims])
        if all(i in taken for i in imsis):
            continue
        grp = engine.features(sims)
        strengths = tick.scorer.strengths(grp.values)
        cells = engine.hourly_cells(sims).ravel()
        cells = cells[cells >= 0]
        where = names[int(np.bincount(cells).argmax())]
        mates = np.bincount(caller_contacts(engine, sims, place=False, among=sims)[:, 0], minlength=len(sims))
        for r, imsi in enumerate(imsis):
            if imsi in taken:
                continue
            reason = (f"one of {len(sims)} SIMs that call and text each other from the same cells "
                      f"at the same hours (cell {where}), each of them a caller; in contact with "
                      f"{mates[r]} of them (a box imitating people)")
            # structure, like a burst that talks to itself: not put to the supervised layer
            flag = row_flag(tick.scorer, grp, strengths, r, "rig", reason, engine.watermark, vetoable=False)
            tick.keep(flag, out, "group", f"{len(sims)} SIMs call each other from cell {where}")
    return out


def with_hangers(engine: FeatureEngine, groups: list[np.ndarray], nodes: np.ndarray, ia: np.ndarray,
                 ib: np.ndarray, heard: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """``groups`` (indices into ``nodes``, linked by (``ia``, ``ib``)) with the callers
    hanging off one by their only link, when they made that contact themselves and are
    called by at most one number outside it: a box's SIM calls or texts its mates, while
    a neighbour whom the box called once (its victim, in its cell) did not."""
    pair = np.unique(np.stack([np.minimum(ia, ib), np.maximum(ia, ib)], axis=1), axis=0)
    pair = pair[pair[:, 0] != pair[:, 1]]
    degree = np.bincount(pair.ravel(), minlength=len(nodes))
    group_of = np.full(len(nodes), -1)
    for k, g in enumerate(groups):
        group_of[g] = k
    ends = np.r_[pair, pair[:, ::-1]]        # (hanger, its one mate) either way round
    ends = ends[(group_of[ends[:, 0]] < 0) & (degree[ends[:, 0]] == 1) & (group_of[ends[:, 1]] >= 0)]
    ends = ends[engine.contacted(nodes[ends[:, 0]], nodes[ends[:, 1]])]
    out = list(groups)
    for hanger, mate in ends:
        k = group_of[mate]
        if heard(np.r_[out[k], hanger])[-1] <= 1:
            out[k] = np.r_[out[k], hanger]
    return out


def reaches_public(engine: FeatureEngine, members: np.ndarray, circles: np.ndarray) -> bool:
    """Whether at least ``PUBLIC_SHARE_MIN`` of the contacts ``members`` made in their 24 h
    windows went to distinct numbers outside their circle: the group's :func:`company`, the
    SIMs that called or texted one of them back, and those of ``circles`` they were in
    contact with (callers in contact with callers at one place this tick: another site's
    probes, another circle of friends). Interconnect bypass terminates calls on the public,
    each on a number of its own; test equipment that calls its other probes and a fixed set
    of test numbers, however often, reaches a handful, and so does a circle that calls
    itself again and again."""
    row, other = engine.network_contacts(members)
    back = other[engine.contacted(other, members[row])]
    # only the numbers they were in contact with: each number masks a bit of the bitmap
    circle = np.union1d(np.union1d(company(engine, members), back), np.intersect1d(other, circles))
    frame = engine.features(members)
    contacts = frame.column("voice_out_24h") + frame.column("sms_out_24h")
    public = np.minimum(engine.callees_outside(members, circle), contacts)
    return bool(public.sum() >= PUBLIC_SHARE_MIN * contacts.sum())


def joiners(tick: Tick, callers: np.ndarray) -> list[Flag]:
    """Callers in contact with two flagged SIMs of one calling group, one of them by their
    own call or text, wherever they are: the group's joining rule for SIMs that reach it
    after it was found, at ticks when none of its SIMs is active (a box's cards of
    another carrier, its late starters)."""
    engine, taken = tick.engine, tick.taken
    grouped = tick.book.noted("group")
    slots = engine.sims.lookup(np.array(grouped, np.int64))
    group_of = {int(slot): imsi for slot, imsi in zip(slots, grouped) if slot >= 0}
    if not group_of:
        return []
    by_rig: dict[str, list[int]] = defaultdict(list)
    for slot, imsi in group_of.items():
        by_rig[tick.book.root(imsi)].append(slot)
    rig_of = {slot: rig for rig, members in by_rig.items() for slot in members}
    # the callers not taken: every caller of the frame, against the few SIMs taken
    taken_slots = slots_of(engine, list(taken)) if taken else np.empty(0, np.int64)
    fresh = callers[~np.isin(callers, taken_slots)]
    row, other = caller_contacts(engine, fresh, place=False, among=np.fromiter(rig_of, np.int64)).T
    made = engine.contacted(fresh[row], other)
    mates: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))  # slots, by rig
    reached: Counter[tuple[int, str]] = Counter()    # (row, rig): contacts it made
    for r, o, m in zip(row.tolist(), other.tolist(), made.tolist()):
        mates[r][rig_of[o]].append(o)
        reached[r, rig_of[o]] += m
    joined: dict[int, list[int]] = {}
    companies: dict[str, np.ndarray] = {}
    for r, in_rigs in mates.items():
        rig, m = max(in_rigs.items(), key=lambda kv: len(kv[1]))
        if len(m) < 2:
            continue
        if rig not in companies:
            companies[rig] = company(engine, np.array(by_rig[rig]))
        if joins(engine, fresh[[r]], np.array([len(m)]), np.array([reached[r, rig]]), companies[rig])[0]:
            joined[r] = m
    if not joined:
        return []
    rows = sorted(joined)
    grp = engine.features(fresh[rows])
    strengths = tick.scorer.strengths(grp.values)
    out: list[Flag] = []
    for i, r in enumerate(rows):
        group = tick.book.evidence_of(group_of[joined[r][0]])["group"]
        reason = (f"a caller in contact with {len(joined[r])} flagged SIMs of a calling group, "
                  f"calling or texting at least one ({group}: a box imitating people)")
        flag = row_flag(tick.scorer, grp, strengths, i, "rig", reason, engine.watermark, vetoable=False)
        tick.keep(flag, out, "group", group)
    return out


def joins(engine: FeatureEngine, sims: np.ndarray, links: np.ndarray, made: np.ndarray,
          company: np.ndarray) -> np.ndarray:
    """Which callers join a calling group, given their ``links`` to its SIMs and how many
    of those contacts they ``made``: in contact with two, having called or texted one
    itself (a box's victims are called by several of its SIMs and do not call them), and
    called by no more numbers outside the group's ``company`` than it has links."""
    return (links >= 2) & (made >= 1) & (heard_outside(engine, sims, company) <= links)


def heard_outside(engine: FeatureEngine, sims: np.ndarray, company: np.ndarray) -> np.ndarray:
    """Per SIM, the numbers outside ``company`` that called it in its 24 h window; for a
    caller by its calls so far (see :func:`callers_min`), as many a day: friends who made
    their calls early in the first day have been called by few others yet."""
    heard = engine.callers_outside(sims, company)
    watched_for = watched_s(engine)
    if watched_for >= DAY_S:
        return heard
    so_far = engine.calls_out_24h(sims) < CALLERS_MIN_VOICE_OUT
    return np.where(so_far, np.ceil(heard * DAY_S / max(watched_for, HOUR_S)), heard)


def company(engine: FeatureEngine, members: np.ndarray) -> np.ndarray:
    """``members`` and the SIMs of the network in contact with two of them (a box's SIMs
    that are not callers yet): the numbers whose calls are a calling group's own."""
    _, other = engine.network_contacts(members)
    near, links = np.unique(other, return_counts=True)
    return np.union1d(members, near[links >= 2])
