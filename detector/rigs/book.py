"""The rig book: finds rig evidence at each tick and groups flagged SIMs into rigs.

It groups flagged SIMs into rigs (union-find over shared devices, hot cells, power-on bursts,
calling groups, code pools and bulk registrations) with a stable id (from the founding SIM:
the older rig keeps its id when two merge) and an evidence summary. It keeps the evidence
each rule noted per SIM, the hot-cell memory and the bulk registrations; checkpoints save and
restore them, and :meth:`RigBook.unsaved_rigs` says which rigs the store does not hold as
they are now.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from detector.features import state as st
from detector.features.catalog import FEATURES
from detector.features.engine import SYNC_WINDOW_S, FeatureEngine, FeatureFrame
from detector.flags import Flag, Rig
from detector.ids import imei_texts, imsi_text, imsi_texts, msisdn_text, tac_text
from detector.model import CALLERS_MIN_VOICE_OUT
from detector.records import RegistrationBatch, iso
from detector.rigs.common import (DAY_S, HOUR_S, SMS_IN, VOICE_DATA, caller_contacts, callers_min, cell_and_model,
                                  newest_cell, quiet, row_flag, slots_of, watched_s)
from detector.rigs.graph import linked_groups
from detector.rigs.interface import watched
from detector.rigs.machines import MachineMemory
from detector.rigs.policy import RigPolicy
from detector.rigs.registrations import BulkRegistrations
from detector.scoring import Scorer


_DATA = FEATURES.index("data_sessions_24h")
_VOICE_IN = FEATURES.index("voice_in_24h")
_CALLS_SMS = [FEATURES.index(f) for f in ("voice_out_24h", "voice_in_24h", "sms_out_24h", "sms_in_24h")]
MAX_INCOMING_SHARE = 0.03   # incoming calls per event of a machine-like SIM


def rig_id_for(imsi: str) -> str:
    """A rig's id: derived from its founding SIM, without showing the IMSI."""
    return "rig-" + hashlib.blake2b(imsi.encode(), digest_size=5).hexdigest()


class RigBook:
    def __init__(self, engine: FeatureEngine, scorer: Scorer, policy: RigPolicy = RigPolicy()) -> None:
        self.engine = engine
        self.scorer = scorer
        self.policy = policy
        self._parent: dict[str, str] = {}
        self._founded: dict[str, int] = {}           # root -> time of its first flag
        self._size: dict[str, int] = {}              # root -> flagged SIMs in its rig
        self._evidence: dict[str, dict[str, str]] = defaultdict(dict)
        self.evidence_version = 0        # bumped at every change: checkpoints write it only then
        self.saved_evidence_version = 0
        self._saved_rigs: dict[str, str] = {}    # rig id -> its summary as the store has it
        self._bulk = BulkRegistrations(policy)
        self._machines = MachineMemory()

    def register(self, batch: RegistrationBatch) -> None:
        self._bulk.register(batch)

    # ---- evidence at a tick ----------------------------------------------------------------

    def watches(self, sims: np.ndarray) -> np.ndarray:
        """SIMs to look at with little traffic (see :func:`detector.rigs.interface.watched`)."""
        return watched(self.engine, sims, self.policy)

    def extend(self, frame: FeatureFrame, strengths: np.ndarray, flags: list[Flag],
               flagged: dict[str, Flag], skip: Callable[[Flag], bool] = lambda f: False
               ) -> list[Flag]:
        """Rig flags for this tick, beyond the per-SIM ``flags`` (already in ``flagged``
        or not), less those ``skip`` refuses (the allow-list); links every new flag into its
        rig."""
        new = list(flags)
        taken = set(flagged) | {f.imsi for f in flags}
        families = self.scorer.families(strengths)
        # co-location's second kind of evidence is the SIM's own use: the registration family
        # is its account's (every card of a company account has "many cards on one ID")
        use = self.scorer.families(strengths, without=("registration",))
        new += [f for f in self._hot_cells(frame, strengths, use, taken) if not skip(f)]
        new += [f for f in self._co_powered(frame, strengths, taken) if not skip(f)]
        new += [f for f in self._code_pools(frame, strengths, taken) if not skip(f)]
        new += [f for f in self._calling_groups(frame, taken) if not skip(f)]
        new += [f for f in self._remote_sims(frame, strengths, families, taken) if not skip(f)]
        if self.policy.associate:
            known = self._slots_of(list(flagged) + [f.imsi for f in new])
            # this tick's flags in devices that carried other SIMs too (ports, not phones)
            ported = self._slots_of([f.imsi for f in new if f.features.get("sims_per_imei_24h", 0) >= 2])
            new += [f for f in self._shared_devices(frame, strengths, families, taken, known, ported)
                    if not skip(f)]
            new += [f for f in self._companions(frame, strengths, families, taken, known)
                    if not skip(f)]
            new += [f for f in self._bulk_siblings(taken, new) if not skip(f)]
        for f in new:
            self._link(f)
        return [replace(f, rig_id=self.rig_of(f.imsi)) for f in new]

    def _absence_is_evidence(self) -> bool:
        """Whether the network has been watched ``absence_after_s`` already (a person often
        has no data session in two hours, nearly always one in six)."""
        return watched_s(self.engine) >= self.policy.absence_after_s

    def _hot_cells(self, frame, strengths, use, taken) -> list[Flag]:
        if not self._absence_is_evidence():
            return []
        s = self.engine.sim_state   # fields gathered one by one: a whole record is 1.3 kB
        last = s["last_hour"][frame.sims].astype(np.int64)
        cell = s["slot"]["top_cell"][frame.sims, last % st.SLOTS]
        machine = (use >= 1) & (frame.values[:, _DATA] == 0) & (cell >= 0) & \
            (frame.values[:, _VOICE_IN] <= MAX_INCOMING_SHARE * frame.activity) & \
            (frame.activity >= self.scorer.policy.min_events_24h)
        # machine-like SIMs per cell, remembered across ticks: the SIMs of a rig need not
        # all be touched in the same 15 minutes, only in the same hour
        rows = np.flatnonzero(machine)
        for r in rows:
            self._machines.remember(int(cell[r]), imsi_text(frame.imsi[r]), int(last[r]))
        self._machines.forget_before(int(last.max()) - 2)
        names = self.engine.cell_names()
        out = []
        for r in rows:
            imsi = imsi_text(frame.imsi[r])
            if imsi in taken or use[r] < self.scorer.policy.min_reasons - 1:
                continue
            peers = self._machines.peers(int(cell[r]))
            n = sum(1 for h in peers.values() if h >= last[r] - 1)
            if n < self.policy.hot_cell_min_sims:
                continue
            where = names[cell[r]]
            reason = (f"one of {n} SIMs in cell {where} with rig-like traffic, no data and "
                      f"almost no incoming calls within the hour")
            self._keep(self._row_flag(frame, strengths, r, "rig", reason), out, taken,
                       "cell", f"{n} machine-like SIMs active together in cell {where}")
        return out

    def _co_powered(self, frame, strengths, taken) -> list[Flag]:
        need = self.policy.co_power_min_sims
        engine, s, n = self.engine, self.engine.sim_state, len(self.engine.sims)
        busy = frame.activity >= self.scorer.policy.min_events_24h
        again = engine.repeated_bursts(frame.sims)
        together = frame.column("attach_sync_24h") >= need - 1
        talks = frame.values[:, _CALLS_SMS].sum(axis=1) > 0
        if not ((together | (again >= need - 1)) & talks).any():
            return []
        # one burst is co-location, like a hot cell: one more kind of evidence
        once = together & busy & \
            (self.scorer.families(strengths, without=("sync", "registration")) >= self.scorer.policy.min_reasons - 1)
        # SIMs of one burst that then call or text each other: a box imitating people. The
        # structure is the evidence, so it needs no volume of traffic; a couple among
        # strangers who switched on together is two talking SIMs, not ``need``
        contacts = engine.burst_contacts(frame.sims)
        talkers = engine.burst_members(frame.sims, (s["talk_bits"][:n] & s["sync_bits"][:n]) != 0)
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
            got = np.flatnonzero((s["code_ts"][:n] >= s["sync_ts"][:n]) & (s["sync_ts"][:n] > 0))
            coded = np.zeros(n, bool)
            coded[quiet(self.engine, got)] = True
            code_takers = engine.burst_members(frame.sims, coded)
            codes = together & modem & coded[frame.sims] & (code_takers >= need)
        else:
            codes = np.zeros(len(frame), bool)
        rows = np.flatnonzero((twice | once | talking | codes) & talks)
        names = self.engine.cell_names()
        out = []
        for r in rows:
            imsi = imsi_text(frame.imsi[r])
            if imsi in taken:
                continue
            rec = s[frame.sims[r]]
            where = names[rec["sync_cell"]]
            reason = (f"powered on with {rec['sync_n']} other SIMs within {SYNC_WINDOW_S} s in "
                      f"cell {where} at {iso(rec['sync_ts'])}")
            if twice[r]:
                reason += f", {again[r]} of them also at {iso(rec['prev_sync_ts'])}"
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
            flag = self._row_flag(frame, strengths, r, "rig", reason + " (synchronised attach, signalling)",
                              at, vetoable=not (twice[r] or talking[r] or codes[r]))
            self._keep(flag, out, taken, "power", f"SIMs power on together in cell {where}")
        return out

    def _code_pools(self, frame, strengths, taken) -> list[Flag]:
        """Modems of one model in one cell that take verification codes and neither call, are
        called nor use data: ``hot_cell_min_sims`` of them are a modem pool, power-on seen or
        not (a pool at work before the capture started, or whose power-on it missed). A person
        keeping a second SIM for codes has it in a phone of their own; meters get no codes.
        Their silence is evidence once the network has been watched ``absence_after_s``
        divided by their number: k people all without data or calls for w hours are as
        unlikely as one for k·w hours, so a pool at work before a first start is not held
        back the whole wait."""
        watched_for = watched_s(self.engine)
        if watched_for <= 0:
            return []
        s, n = self.engine.sim_state, len(self.engine.sims)
        since = self.engine.watermark - DAY_S
        modem = (frame.values[:, VOICE_DATA].sum(axis=1) == 0) & (frame.values[:, SMS_IN] > 0) & \
            (s["code_ts"][frame.sims] > since)
        if not modem.any():
            return []
        cell, tac = cell_and_model(self.engine, frame.sims)
        modem &= (cell >= 0) & (tac > 0)
        got = np.flatnonzero(s["code_ts"][:n] > since)   # people get codes too: many SIMs
        got = got[np.isin(newest_cell(self.engine, got), cell[modem])]    # the frame's cells only
        near = got[cell_and_model(self.engine, got)[1] > 0]
        pool = quiet(self.engine, near)
        pool_cell, pool_tac = cell_and_model(self.engine, pool)
        keys, counts = np.unique(np.stack([pool_cell, pool_tac], axis=1), axis=0, return_counts=True)
        size = {(int(c), int(m)): int(k) for (c, m), k in zip(keys, counts)}
        names = self.engine.cell_names()
        out = []
        for r in np.flatnonzero(modem):
            imsi = imsi_text(frame.imsi[r])
            k = size.get((int(cell[r]), int(tac[r])), 0)
            if imsi in taken or k < self.policy.hot_cell_min_sims or watched_for * k < self.policy.absence_after_s:
                continue
            where = names[cell[r]]
            reason = (f"one of {k} SIMs in cell {where} in devices of one model (TAC {tac_text(tac[r])}) that "
                      f"receive verification codes without calls or data (a modem pool)")
            flag = self._row_flag(frame, strengths, r, "rig", reason, self.engine.watermark, vetoable=False)
            self._keep(flag, out, taken, "pool", f"{k} code-taking modems of one model in cell {where}")
        return out

    def _calling_groups(self, frame, taken) -> list[Flag]:
        """Callers of the frame in a calling group: a new one, or one found before."""
        callers = frame.sims[frame.column("voice_out_24h") >= callers_min(self.engine)]
        found = self._new_calling_groups(callers, taken)
        return found + self._group_joiners(callers, taken)

    def _new_calling_groups(self, callers: np.ndarray, taken: set[str]) -> list[Flag]:
        """SIMs that call and text each other from one place, each of them a caller: a box
        imitating people (its SIMs keep each other company to look social) already at work
        when we first see it, its power-on missed. At least ``co_power_min_sims`` such SIMs,
        each in contact with two others of the group that had the same busiest cell in the
        same hour and are not on its ID document (a 2-core of that contact graph), or one SIM
        more each in contact with one (a connected chain: the links of a triangle spread over
        four SIMs; at a cold start a box's SIMs have a contact or two each), and called by
        no more numbers outside the group than it has links in it: a family or a company
        account calls among cards of one ID, friends are rarely all callers in one cell at one
        hour and are called by others, and one chance contact is not a group."""
        engine, need = self.engine, self.policy.co_power_min_sims
        edges = caller_contacts(self.engine, callers)
        # every group has SIMs with two such contacts (all of a 2-core, a chain's inner ones):
        # keep the SIMs of the frame that have them, and their partners, then look at the
        # contacts among all of those
        seeds = callers[np.bincount(edges[:, 0], minlength=len(callers)) >= 2]
        if not len(seeds):
            return []
        nodes = np.unique(np.r_[seeds, edges[np.isin(callers[edges[:, 0]], seeds), 1]])
        pairs = caller_contacts(self.engine, nodes, among=nodes)
        if not len(pairs):
            return []
        ia, ib = pairs[:, 0], np.searchsorted(nodes, pairs[:, 1])
        heard = lambda g: self._heard_outside(nodes[g], self._company(nodes[g]))  # noqa: E731
        # each member linked to two others; or, among the callers outside those groups, one
        # SIM more each linked to one (the three links of a triangle spread over a chain: a
        # box's SIMs at a cold start have a contact or two)
        groups = linked_groups(ia, ib, len(nodes), 2, need, heard)
        grouped = np.zeros(len(nodes), bool)
        for g in groups:
            grouped[g] = True
        apart = ~grouped[ia] & ~grouped[ib]
        groups += linked_groups(ia[apart], ib[apart], len(nodes), 1, need + 1, heard)
        groups = self._with_hangers(groups, nodes, ia, ib, heard)
        out = []
        names = engine.cell_names()
        for members in groups:
            # and the callers in contact with two of them wherever they are (a box's SIMs of
            # another carrier in cells no other network shares), having reached one itself
            core = nodes[members]
            row, other = caller_contacts(self.engine, core, place=False).T
            away = ~np.isin(other, core)
            row, other = row[away], other[away]
            joiners, pair_of, links = np.unique(other, return_inverse=True, return_counts=True)
            made = np.bincount(pair_of, engine.contacted(other, core[row]), len(joiners))
            sims = np.r_[core, joiners[self._joins(joiners, links, made, self._company(core))]]
            imsis = imsi_texts(engine.sims.keys_by_slot[sims])
            if all(i in taken for i in imsis):
                continue
            grp = engine.features(sims)
            strengths = self.scorer.strengths(grp.values)
            s = engine.sim_state
            cells = s["slot"]["top_cell"][sims].ravel()
            cells = cells[cells >= 0]
            where = names[int(np.bincount(cells).argmax())]
            mates = np.bincount(caller_contacts(self.engine, sims, place=False, among=sims)[:, 0], minlength=len(sims))
            for r, imsi in enumerate(imsis):
                if imsi in taken:
                    continue
                reason = (f"one of {len(sims)} SIMs that call and text each other from the same cells "
                          f"at the same hours (cell {where}), each of them a caller; in contact with "
                          f"{mates[r]} of them (a box imitating people)")
                # structure, like a burst that talks to itself: not put to the supervised layer
                flag = self._row_flag(grp, strengths, r, "rig", reason, engine.watermark, vetoable=False)
                self._keep(flag, out, taken, "group", f"{len(sims)} SIMs call each other from cell {where}")
        return out

    def _with_hangers(self, groups: list[np.ndarray], nodes: np.ndarray, ia: np.ndarray, ib: np.ndarray,
                      heard: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
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
        ends = ends[self.engine.contacted(nodes[ends[:, 0]], nodes[ends[:, 1]])]
        out = list(groups)
        for hanger, mate in ends:
            k = group_of[mate]
            if heard(np.r_[out[k], hanger])[-1] <= 1:
                out[k] = np.r_[out[k], hanger]
        return out

    def _group_joiners(self, callers: np.ndarray, taken: set[str]) -> list[Flag]:
        """Callers in contact with two flagged SIMs of one calling group, one of them by their
        own call or text, wherever they are: the group's joining rule for SIMs that reach it
        after it was found, at ticks when none of its SIMs is active (a box's cards of
        another carrier, its late starters)."""
        engine = self.engine
        grouped = self.noted("group")
        slots = engine.sims.lookup(np.array(grouped, np.int64))
        group_of = {int(slot): imsi for slot, imsi in zip(slots, grouped) if slot >= 0}
        if not group_of:
            return []
        by_rig: dict[str, list[int]] = defaultdict(list)
        for slot, imsi in group_of.items():
            by_rig[self.root(imsi)].append(slot)
        rig_of = {slot: rig for rig, members in by_rig.items() for slot in members}
        fresh = callers[[k not in taken for k in imsi_texts(engine.sims.keys_by_slot[callers])]]
        row, other = caller_contacts(self.engine, fresh, place=False, among=np.fromiter(rig_of, np.int64)).T
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
                companies[rig] = self._company(np.array(by_rig[rig]))
            if self._joins(fresh[[r]], np.array([len(m)]), np.array([reached[r, rig]]), companies[rig])[0]:
                joined[r] = m
        if not joined:
            return []
        rows = sorted(joined)
        grp = engine.features(fresh[rows])
        strengths = self.scorer.strengths(grp.values)
        out: list[Flag] = []
        for i, r in enumerate(rows):
            group = self.evidence_of(group_of[joined[r][0]])["group"]
            reason = (f"a caller in contact with {len(joined[r])} flagged SIMs of a calling group, "
                      f"calling or texting at least one ({group}: a box imitating people)")
            flag = self._row_flag(grp, strengths, i, "rig", reason, engine.watermark, vetoable=False)
            self._keep(flag, out, taken, "group", group)
        return out

    def _joins(self, sims: np.ndarray, links: np.ndarray, made: np.ndarray, company: np.ndarray) -> np.ndarray:
        """Which callers join a calling group, given their ``links`` to its SIMs and how many
        of those contacts they ``made``: in contact with two, having called or texted one
        itself (a box's victims are called by several of its SIMs and do not call them), and
        called by no more numbers outside the group's ``company`` than it has links."""
        return (links >= 2) & (made >= 1) & (self._heard_outside(sims, company) <= links)

    def _heard_outside(self, sims: np.ndarray, company: np.ndarray) -> np.ndarray:
        """Per SIM, the numbers outside ``company`` that called it in its 24 h window; for a
        caller by its calls so far (see :func:`callers_min`), as many a day: friends who made
        their calls early in the first day have been called by few others yet."""
        heard = self.engine.callers_outside(sims, company)
        watched_for = watched_s(self.engine)
        if watched_for >= DAY_S:
            return heard
        so_far = self.engine.calls_out_24h(sims) < CALLERS_MIN_VOICE_OUT
        return np.where(so_far, np.ceil(heard * DAY_S / max(watched_for, HOUR_S)), heard)

    def _company(self, members: np.ndarray) -> np.ndarray:
        """``members`` and the SIMs of the network in contact with two of them (a box's SIMs
        that are not callers yet): the numbers whose calls are a calling group's own."""
        _, other = self.engine.network_contacts(members)
        near, links = np.unique(other, return_counts=True)
        return np.union1d(members, near[links >= 2])

    def _remote_sims(self, frame, strengths, families, taken) -> list[Flag]:
        latency, answers = self.engine.auth_latency(frame.sims)
        rows = np.flatnonzero((latency >= self.policy.remote_sim_auth_ms) & (answers >= 2) &
                              (families >= self.scorer.policy.min_reasons - 1) &
                              (frame.activity >= self.scorer.policy.min_events_24h))
        out = []
        for r in rows:
            imsi = imsi_text(frame.imsi[r])
            if imsi in taken:
                continue
            reason = (f"answers authentication in {latency[r] / 1000:.1f} s on average (phones: "
                      f"0.1-0.3 s): a SIM far from its radio, as in a remote SIM bank (signalling)")
            self._keep(self._row_flag(frame, strengths, r, "rig", reason), out, taken,
                       "remote", "SIMs answer authentication slowly (remote SIM bank)")
        return out

    def _shared_devices(self, frame, strengths, families, taken, flagged_slots: np.ndarray,
                        ported_slots: np.ndarray) -> list[Flag]:
        """SIMs of the frame in a device of any flagged SIM, this tick's or an earlier one's
        (a gateway's ports take new SIMs long after its first were flagged), and SIMs that
        used a device of ``ported_slots`` (flagged this tick) earlier in the day and have been
        quiet since (a SIM bank rotates SIMs through a port: the one before may be gone when
        the port's next SIM is flagged). The second looks through every SIM's devices, so it
        is asked only for devices that carried other SIMs."""
        s = self.engine.sim_state
        out = self._device_users(frame, strengths, families, taken, self._devices(flagged_slots))
        dev = self._devices(ported_slots)
        if not len(dev):
            return out
        n = len(self.engine.sims)
        recent = s["imei_hour"][:n] >= self.engine.watermark // 3600 - 23
        earlier = np.flatnonzero((np.isin(s["imei"][:n], dev) & recent).any(axis=1))
        earlier = earlier[~np.isin(earlier, frame.sims)]
        if len(earlier):
            quiet = self.engine.features(earlier)
            strengths = self.scorer.strengths(quiet.values)
            out += self._device_users(quiet, strengths, self.scorer.families(strengths), taken, dev,
                                      self.engine.watermark)
        return out

    def _devices(self, slots: np.ndarray) -> np.ndarray:
        dev = self.engine.sim_state["imei"][slots]
        return np.unique(dev[dev != 0])

    def _device_users(self, frame, strengths, families, taken, dev: np.ndarray,
                      at: int | None = None) -> list[Flag]:
        """Rows of ``frame`` with one kind of rig-like evidence whose SIM used one of ``dev``."""
        if not len(dev):
            return []
        shares = np.isin(self.engine.sim_state["imei"][frame.sims], dev).any(axis=1) & (families >= 1)
        out = []
        for r in np.flatnonzero(shares):
            imsi = imsi_text(frame.imsi[r])
            if imsi in taken:
                continue
            # the device link is structure the supervised layer does not see (as for bursts)
            flag = self._row_flag(frame, strengths, r, "rig_member",
                              "shares a device (IMEI) with a flagged SIM", at, vetoable=False)
            if flag is not None:
                out.append(flag)
                taken.add(imsi)
        return out

    def _companions(self, frame, strengths, families, taken, flagged_slots: np.ndarray) -> list[Flag]:
        """SIMs of the frame that pass the anomaly policy on their own, but that the supervised
        layer held back, and that powered on with a flagged SIM or were machine-like in the
        cell of a flagged machine-like SIM within the hour: the layer weighs one SIM's
        behaviour, and a card of a small box (two or three SIMs, below every group rule), a
        gateway's busiest card or a moving rig's can look to it like a busy person; its flagged
        companion is the link it does not see. (Call-centre agents are called back and use
        data: a machine-like one beside a flagged machine-like one is rare.)"""
        if not len(flagged_slots):
            return []
        policy = self.scorer.policy
        own = (frame.activity >= policy.min_events_24h) & (families >= policy.min_reasons)
        if not own.any():
            return []
        flagged = np.zeros(len(self.engine.sims), bool)
        flagged[flagged_slots] = True
        companions = self.engine.burst_members(frame.sims, flagged)
        cell = newest_cell(self.engine, frame.sims)
        cell_mates = np.zeros(len(frame), np.int64)
        for r in np.flatnonzero(own & (cell >= 0)):
            cell_mates[r] = len(self._machines.mates(imsi_text(frame.imsi[r]), int(cell[r]), taken))
        rows = np.flatnonzero(own & ((companions >= 1) | (cell_mates >= 1)))
        if not len(rows):
            return []
        rows = rows[self.scorer.model.anomaly_score(frame.values[rows]) > self.scorer.threshold]
        s, names = self.engine.sim_state, self.engine.cell_names()
        out = []
        for r in rows:
            imsi = imsi_text(frame.imsi[r])
            if imsi in taken:
                continue
            if companions[r]:
                rec = s[frame.sims[r]]
                where = names[rec["sync_cell"]]
                reason = (f"powered on within {SYNC_WINDOW_S} s of {companions[r]} flagged SIM(s) in "
                          f"cell {where} at {iso(rec['sync_ts'])} (signalling), and rig-like on its own")
                key, evidence = "power", f"SIMs power on together in cell {where}"
            else:
                where = names[cell[r]]
                reason = (f"machine-like (no data, almost no incoming calls) in cell {where} within the "
                          f"hour of {cell_mates[r]} flagged machine-like SIM(s), and rig-like on its own")
                key, evidence = "cell", f"machine-like SIMs active together in cell {where}"
            flag = self._row_flag(frame, strengths, r, "rig_member", reason, vetoable=False)
            self._keep(flag, out, taken, key, evidence)
        return out

    def _bulk_siblings(self, taken, flags) -> list[Flag]:
        out = []
        for f in list(flags):
            members = self._bulk.members(int(f.imsi))
            if members and not self._used_like_a_rig(f):
                continue
            for m in members:
                imsi = imsi_text(m)
                if imsi in taken:
                    continue
                slot = self.engine.sims.lookup(np.array([m], np.int64))[0]
                msisdn = msisdn_text(self.engine.sim_state["msisdn"][slot]) if slot >= 0 else ""
                out.append(Flag(imsi=imsi, msisdn=msisdn, score=f.score, flagged_at=f.flagged_at,
                                reasons=(f"{self._bulk.text(m)}; a card of it is flagged",),
                                kind="bulk_registration"))
                taken.add(imsi)
        return out

    def _used_like_a_rig(self, f: Flag) -> bool:
        """Whether a card's own use, not its registration, made it a flag: rig evidence, or
        enough kinds of rig-like behaviour without the registration family (which every
        card of an enterprise account shares: its cards are told apart by their use)."""
        if f.kind != "sim_anomaly" or not f.features:
            return f.kind in ("rig", "rig_member")
        values = np.array([[f.features[name] for name in FEATURES]])
        return self.scorer.families(self.scorer.strengths(values), without=("registration",))[0] \
            >= self.scorer.policy.min_reasons

    def _row_flag(self, frame: FeatureFrame, strengths: np.ndarray, r: int, kind: str,
                  reason: str, at: int | None = None, vetoable: bool = True) -> Flag | None:
        return row_flag(self.scorer, frame, strengths, r, kind, reason, at, vetoable)

    def _slots_of(self, imsis: list[str]) -> np.ndarray:
        return slots_of(self.engine, imsis)

    def _keep(self, flag: Flag | None, out: list[Flag], taken: set[str], key: str, evidence: str) -> None:
        """Add a rule's flag (if not vetoed) with the rig evidence it brings."""
        if flag is None:
            return
        out.append(flag)
        self.note(flag.imsi, key, evidence)
        taken.add(flag.imsi)

    # ---- evidence notes (the rules' side: detector.rigs.tick.Notes) --------------------------

    def note(self, imsi: str, key: str, evidence: str) -> None:
        """Record a SIM's rig evidence (the one place that changes it: checkpoints write it
        when ``evidence_version`` moved)."""
        self._evidence[imsi][key] = evidence
        self.evidence_version += 1

    def evidence_of(self, imsi: str) -> Mapping[str, str]:
        return self._evidence.get(imsi, {})

    def noted(self, key: str) -> list[str]:
        """The SIMs with evidence of kind ``key``, in the order it was first noted."""
        return [imsi for imsi, kinds in self._evidence.items() if key in kinds]

    def root(self, imsi: str) -> str:
        """The SIM whose rig ``imsi`` is in (itself when not linked)."""
        root = imsi
        while self._parent.get(root, root) != root:
            root = self._parent[root]
        while self._parent.get(imsi, imsi) != root:  # path compression
            self._parent[imsi], imsi = root, self._parent[imsi]
        return root

    # ---- grouping --------------------------------------------------------------------------

    def _union(self, a: str, b: str) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return
        if (self._founded[rb], rb) < (self._founded[ra], ra):  # the older rig keeps its id
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size.pop(rb)

    def _link(self, f: Flag) -> None:
        if f.imsi in self._parent:
            return
        self._parent[f.imsi] = f.imsi
        self._founded[f.imsi] = f.flagged_at
        self._size[f.imsi] = 1
        for other in self._partners(f.imsi):
            if other in self._parent:
                self._union(f.imsi, other)

    def _partners(self, imsi: str) -> list[str]:
        """Flagged SIMs that share a device, a hot cell, a power-on burst, a calling group or a
        bulk registration with ``imsi``."""
        out = [m for m in imsi_texts(self._bulk.members(int(imsi))) if m != imsi]
        slot = self.engine.sims.lookup(np.array([int(imsi)], np.int64))[0]
        if slot < 0:
            return out
        s = self.engine.sim_state
        devices = s["imei"][slot][s["imei"][slot] != 0]
        flagged = np.array([int(x) for x in self._parent if x != imsi], np.int64)
        if not len(flagged):
            return out
        fslots = self.engine.sims.lookup(flagged)
        ok = fslots >= 0
        fs, fimsi = fslots[ok], flagged[ok]
        if len(devices):
            out += imsi_texts(fimsi[np.isin(s["imei"][fs], devices).any(axis=1)])
        if s["sync_ts"][slot] > 0:  # one power-on burst: one box
            burst = (s["sync_cell"][fs] == s["sync_cell"][slot]) & \
                (np.abs(s["sync_ts"][fs] - s["sync_ts"][slot]) <= 4 * SYNC_WINDOW_S)
            if burst.any():   # the link is the rig's evidence, whatever flagged its SIMs
                self.note(imsi, "power", f"SIMs power on together in cell "
                                         f"{self.engine.cell_names()[s['sync_cell'][slot]]}")
            out += imsi_texts(fimsi[burst])
        last = int(s["last_hour"][slot])
        cell = int(s["slot"]["top_cell"][slot, last % st.SLOTS])
        together = self._machines.mates(imsi, cell, self._parent)  # flagged, same cell, same hour
        if together:
            self.note(imsi, "cell", f"machine-like SIMs active together in cell "
                                    f"{self.engine.cell_names()[cell]}")
        out += together
        if "group" in self._evidence.get(imsi, {}):  # a calling group
            out += self._group_partners(slot, fs, fimsi)
        if "pool" in self._evidence.get(imsi, {}):   # code-taking modems of one model, one cell
            pooled = np.array([x in self._evidence and "pool" in self._evidence[x] for x in imsi_texts(fimsi)],
                              bool)
            if pooled.any():
                mine = cell_and_model(self.engine, np.array([slot]))
                theirs = cell_and_model(self.engine, fs[pooled])
                same = (theirs[0] == mine[0][0]) & (theirs[1] == mine[1][0])
                out += imsi_texts(fimsi[pooled][same])
        return out

    def _group_partners(self, slot: int, fs: np.ndarray, fimsi: np.ndarray) -> list[str]:
        """Flagged SIMs of a calling group that ``slot`` is in contact with."""
        _, other = self.engine.network_contacts(np.array([slot]))
        mine = np.isin(fs, other)
        return [x for x in imsi_texts(fimsi[mine]) if "group" in self._evidence.get(x, {})]

    # ---- persistence -----------------------------------------------------------------------

    def recent_machines(self) -> dict[str, dict[str, int]]:
        """The hot-cell memory (cell -> {imsi: hour}) of the last hours, for checkpoints."""
        self._machines.forget_before(self.engine.watermark // 3600 - 2)
        return self._machines.snapshot()

    def restore_machines(self, saved: dict[str, dict[str, int]]) -> None:
        self._machines.restore(saved)

    def evidence_by_sim(self) -> dict[str, dict[str, str]]:
        """The rig evidence each flagged SIM brought (kind -> words), for checkpoints: rig
        summaries and the links of calling groups, pools and hot cells need it after a
        restart."""
        return {imsi: dict(kinds) for imsi, kinds in self._evidence.items() if kinds}

    def restore_evidence(self, saved: dict[str, dict[str, str]]) -> None:
        for imsi, kinds in saved.items():
            self._evidence[imsi_text(imsi)].update(kinds)
        self.saved_evidence_version = self.evidence_version

    def restore(self, flags: list[Flag]) -> None:
        """Rebuild the grouping from stored flags: each rig under the SIM its id came from
        (else its first flag), lone flagged SIMs as rigs of one, so that later flags still
        link to them."""
        members: dict[str, list[Flag]] = defaultdict(list)
        for f in flags:
            members[f.rig_id or f"lone:{f.imsi}"].append(f)
        for rig_id, group in members.items():
            roots = [f.imsi for f in group if rig_id_for(f.imsi) == rig_id]
            root = roots[0] if roots else min(group, key=lambda f: (f.flagged_at, f.imsi)).imsi
            for f in group:
                self._parent[f.imsi] = root
            self._founded[root] = min(f.flagged_at for f in group)
            self._size[root] = len(group)

    # ---- rigs ------------------------------------------------------------------------------

    def rig_of(self, imsi: str) -> str:
        """The rig id of a flagged SIM that has partners; empty for a lone SIM."""
        if imsi not in self._parent:
            return ""
        root = self.root(imsi)
        return rig_id_for(root) if self._size[root] > 1 else ""

    def unsaved_rigs(self) -> list[Rig]:
        """The rigs whose row in the store is not what they are now: new, grown, merged, or
        still at work (their window, cells and devices move without a new flag)."""
        return [r for r in self.rigs() if self._saved_rigs.get(r.id) != r.summary()]

    def saved(self, rigs: list[Rig]) -> None:
        """``rigs`` were committed as they are now."""
        self._saved_rigs.update((r.id, r.summary()) for r in rigs)

    def rigs(self) -> list[Rig]:
        """Every rig (two or more flagged SIMs) with its devices, cells, window and evidence."""
        members: dict[str, list[str]] = defaultdict(list)
        for imsi in self._parent:
            members[self.root(imsi)].append(imsi)
        out = []
        s = self.engine.sim_state
        names = self.engine.cell_names()
        for root, sims in members.items():
            if len(sims) < 2:
                continue
            slots = self.engine.sims.lookup(np.array([int(x) for x in sims], np.int64))
            slots = slots[slots >= 0]
            devices = s["imei"][slots]
            used = set(imei_texts(devices[devices != 0]))
            cells = s["slot"]["top_cell"][slots].ravel()
            first = self._founded[root]
            evidence: dict[str, str] = {}
            for imsi in sims:
                evidence.update(self._evidence.get(imsi, {}))
                if self._bulk.text(int(imsi)):
                    evidence["registration"] = self._bulk.text(int(imsi))
            shared = len(used) < len(slots) * st.IMEI_SLOTS and \
                np.unique(devices[devices != 0]).size < (devices != 0).sum()
            if shared:
                evidence["devices"] = f"{len(slots)} SIMs rotate over {len(used)} shared devices"
            out.append(Rig(rig_id_for(root), set(sims), used, {names[c] for c in cells[cells >= 0]}, first,
                           int(s["last_ts"][slots].max()) if len(slots) else first, evidence))
        return sorted(out, key=lambda r: (r.first, r.id))
