"""The rig book: runs the rules at each tick and groups flagged SIMs into rigs.

It groups flagged SIMs into rigs (union-find over shared devices, hot cells, co-moving
cohorts, power-on bursts, calling groups, code pools and bulk registrations) with a stable id (from the founding SIM:
the older rig keeps its id when two merge) and an evidence summary. It keeps the evidence
each rule noted per SIM, the hot-cell memory and the bulk registrations; checkpoints save and
restore them, and :meth:`RigBook.unsaved_rigs` says which rigs the store does not hold as
they are now.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from detector.features.engine import SYNC_WINDOW_S, FeatureEngine, FeatureFrame
from detector.flags import Flag, Rig
from detector.ids import imei_texts, imsi_text, imsi_texts
from detector.records import RegistrationBatch
from detector.rigs import RULES, cohorts
from detector.rigs.common import cell_and_model
from detector.rigs.interface import watched
from detector.rigs.shared_devices import in_devices
from detector.rigs.machines import MachineMemory
from detector.rigs.policy import RigPolicy
from detector.rigs.registrations import BulkRegistrations
from detector.rigs.tick import Tick
from detector.scoring import Scorer


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
        self._evidence_unsaved: set[str] = set()     # SIMs whose evidence the store lacks
        self._saved_rigs: dict[str, str] = {}    # rig id -> its summary as the store has it
        # what may differ from the store since the last checkpoint, so that a checkpoint
        # builds those rigs only: SIMs whose rig was founded, grown, merged or given new
        # evidence, and each flagged SIM's newest record as the last checkpoint saw it
        self._members: dict[str, list[str]] = {}     # root -> the flagged SIMs of its rig
        self._order: dict[str, int] = {}             # flagged SIM -> when it was linked
        self._touched: set[str] = set()
        self._flagged = np.empty(0, np.int64)        # flagged IMSIs, in the order linked
        self._seen = np.empty(0, np.int64)           # their last_seen at the last checkpoint
        self._newly: list[int] = []                  # flagged since, joining those two
        self._bulk = BulkRegistrations(policy)
        self._machines = MachineMemory()
        self._in_rigs: np.ndarray | None = None       # IMSIs of SIMs in rigs; None: to build
        self._relink: set[str] = set()   # flagged SIMs with a new kind of evidence: link again

    def register(self, batch: RegistrationBatch) -> None:
        self._bulk.register(batch)
        # a bulk run's words are in its flagged cards' rig summaries, and a run that grows
        # changes its older cards' words too (registrations come seldom: all are looked at)
        self._touched.update(self._parent)

    # ---- evidence at a tick ----------------------------------------------------------------

    def watches(self, sims: np.ndarray) -> np.ndarray:
        """SIMs to look at with little traffic (see :func:`detector.rigs.interface.watched`),
        and SIMs in a port of a rig (:meth:`rig_devices`): they join it from their first
        record (:mod:`detector.rigs.shared_devices`)."""
        out = watched(self.engine, sims, self.policy)
        if self.policy.associate:
            out |= in_devices(self.engine, sims, self.rig_devices())
        return out

    def rig_devices(self) -> np.ndarray:
        """The ports of rigs (IMEIs, sorted, distinct): devices that two or more SIMs of rigs
        used in the last day, a gateway's ports or a SIM bank's slots. A device only one of
        a rig's SIMs used may be a real phone whose IMEI a box copied: its owner is no
        rig's."""
        if self._in_rigs is None:
            self._in_rigs = np.array([int(x) for m in self._members.values() if len(m) > 1
                                      for x in m], np.int64)
        slots = self.engine.sims.lookup(self._in_rigs)
        dev = self.engine.devices(slots[slots >= 0])
        r, c = np.nonzero(dev)
        pairs = np.unique(np.c_[r, dev[r, c]], axis=0)          # (SIM, device), each once
        used, sims = np.unique(pairs[:, 1], return_counts=True)
        return used[sims >= 2]

    def extend(self, frame: FeatureFrame, strengths: np.ndarray, flags: list[Flag],
               flagged: Mapping[str, Flag], skip: Callable[[Flag], bool] = lambda f: False
               ) -> list[Flag]:
        """Rig flags for this tick, beyond the per-SIM ``flags`` (already in ``flagged``
        or not), less those ``skip`` refuses (the allow-list); links every new flag into its
        rig, and a flagged SIM into the rig of those a rule found it with."""
        found = list(flags)
        tick = Tick(self.engine, self.scorer, self.policy, frame, strengths,
                    families=self.scorer.families(strengths),
                    use=self.scorer.families(strengths, without=("registration",)),
                    flagged=flagged, found=found, taken=set(flagged) | {f.imsi for f in flags},
                    book=self, machines=self._machines, bulk=self._bulk)
        for rule in RULES:
            found.extend(f for f in rule.find(tick) if not skip(f))
        for f in found:
            self._link(f)
        # a SIM flagged at an earlier tick (alone, or by its own behaviour) that a rule now
        # finds in a cohort with others joins their rig
        relink, self._relink = self._relink, set()
        for imsi in relink:
            for other in self._partners(imsi):
                if other in self._parent:
                    self._union(imsi, other)
        self._relink.clear()
        return [replace(f, rig_id=self.rig_of(f.imsi)) for f in found]

    # ---- evidence notes (the rules' side: detector.rigs.tick.Notes) --------------------------

    def note(self, imsi: str, key: str, evidence: str) -> None:
        """Record a SIM's rig evidence (the one place that changes it: checkpoints write the
        SIMs it changed, :meth:`unsaved_evidence`)."""
        if self._evidence[imsi].get(key) == evidence:
            return
        if imsi in self._parent and key not in self._evidence[imsi]:
            self._relink.add(imsi)
        self._evidence[imsi][key] = evidence
        self._evidence_unsaved.add(imsi)
        self._touched.add(imsi)

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
        self._members[ra] += self._members.pop(rb)
        self._in_rigs = None

    def _link(self, f: Flag) -> None:
        if f.imsi in self._parent:
            return
        self._parent[f.imsi] = f.imsi
        self._founded[f.imsi] = f.flagged_at
        self._size[f.imsi] = 1
        self._members[f.imsi] = [f.imsi]
        self._order[f.imsi] = len(self._order)
        self._follow([f.imsi])
        for other in self._partners(f.imsi):
            if other in self._parent:
                self._union(f.imsi, other)

    def _follow(self, imsis: list[str]) -> None:
        """Watch newly flagged SIMs' records for the rig rows they change."""
        self._touched.update(imsis)
        self._newly.extend(int(x) for x in imsis)

    def _partners(self, imsi: str) -> list[str]:
        """Flagged SIMs that share a device, a hot cell, a cohort, a power-on burst, a calling
        group or a bulk registration with ``imsi``."""
        out = [m for m in imsi_texts(self._bulk.members(int(imsi))) if m != imsi]
        slot = self.engine.sims.lookup(np.array([int(imsi)], np.int64))[0]
        if slot < 0:
            return out
        engine = self.engine
        mine = engine.devices(slot)
        devices = mine[mine != 0]
        flagged = np.array([int(x) for x in self._parent if x != imsi], np.int64)
        if not len(flagged):
            return out
        fslots = self.engine.sims.lookup(flagged)
        ok = fslots >= 0
        fs, fimsi = fslots[ok], flagged[ok]
        if len(devices):
            out += imsi_texts(fimsi[np.isin(engine.devices(fs), devices).any(axis=1)])
        own = engine.bursts(np.array([slot]))
        if own.ts[0] > 0:  # one power-on burst: one box
            theirs = engine.bursts(fs)
            burst = (theirs.cell == own.cell[0]) & (np.abs(theirs.ts - own.ts[0]) <= 4 * SYNC_WINDOW_S)
            if burst.any():   # the link is the rig's evidence, whatever flagged its SIMs
                self.note(imsi, "power", f"SIMs power on together in cell "
                                         f"{engine.cell_names()[own.cell[0]]}")
            out += imsi_texts(fimsi[burst])
        cell = int(engine.newest_cell(slot))
        together = self._machines.mates(imsi, cell, self._parent)  # flagged, same cell, same hour
        if together:
            self.note(imsi, "cell", f"machine-like SIMs active together in cell "
                                    f"{self.engine.cell_names()[cell]}")
        out += together
        if "cohort" in self._evidence.get(imsi, {}):   # SIMs that moved through cells together
            moving = np.array(["cohort" in self._evidence.get(x, {}) for x in imsi_texts(fimsi)], bool)
            out += imsi_texts(fimsi[moving][cohorts.moved_together(engine, slot, fs[moving])])
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

    def unsaved_evidence(self) -> dict[str, dict[str, str]]:
        """The evidence of the SIMs whose evidence changed since :meth:`saved_evidence`."""
        return {imsi: dict(self._evidence[imsi]) for imsi in self._evidence_unsaved}

    def saved_evidence(self, taken: Mapping[str, Mapping[str, str]]) -> None:
        """``taken`` (from :meth:`unsaved_evidence`) was committed; a SIM whose evidence
        changed again meanwhile stays unsaved."""
        self._evidence_unsaved.difference_update(
            imsi for imsi, kinds in taken.items() if self._evidence.get(imsi) == kinds)

    def restore_evidence(self, saved: dict[str, dict[str, str]]) -> None:
        for imsi, kinds in saved.items():
            self._evidence[imsi_text(imsi)].update(kinds)

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
                self._order.setdefault(f.imsi, len(self._order))
            self._founded[root] = min(f.flagged_at for f in group)
            self._size[root] = len(group)
            self._members[root] = [f.imsi for f in group]
            self._follow(self._members[root])   # written again at the first checkpoint
        self._in_rigs = None

    # ---- rigs ------------------------------------------------------------------------------

    def rig_of(self, imsi: str) -> str:
        """The rig id of a flagged SIM that has partners; empty for a lone SIM."""
        if imsi not in self._parent:
            return ""
        root = self.root(imsi)
        return rig_id_for(root) if self._size[root] > 1 else ""

    def unsaved_rigs(self) -> list[Rig]:
        """The rigs whose row in the store is not what they are now: new, grown, merged, or
        still at work (their window, cells and devices move without a new flag). Only the
        rigs of SIMs touched since the last checkpoint are built: the cost follows what
        changed, not how many rigs there are."""
        if self._newly:
            self._flagged = np.concatenate([self._flagged, np.array(self._newly, np.int64)])
            self._seen = np.concatenate([self._seen, np.full(len(self._newly), -1, np.int64)])
            self._newly = []
        if len(self._flagged):
            slots = self.engine.sims.lookup(self._flagged)
            seen = np.full(len(slots), -1, np.int64)
            known = slots >= 0
            seen[known] = self.engine.last_seen(slots[known])
            moved = seen != self._seen
            self._touched.update(imsi_texts(self._flagged[moved]))
            self._seen = seen
        roots = {self.root(imsi) for imsi in self._touched if imsi in self._parent}
        out = [r for r in self._built(roots) if self._saved_rigs.get(r.id) != r.summary()]
        # what is unsaved is looked at again next time: found as the store has it once a
        # checkpoint committed it (:meth:`saved`), whatever changed while it was committed
        self._touched = {x for r in out for x in r.sims}
        return out

    def saved(self, rigs: list[Rig]) -> None:
        """``rigs`` were committed as they are now."""
        self._saved_rigs.update((r.id, r.summary()) for r in rigs)

    def rigs(self) -> list[Rig]:
        """Every rig (two or more flagged SIMs) with its devices, cells, window and evidence."""
        return self._built(self._members)

    def _built(self, roots) -> list[Rig]:
        """The rigs of ``roots`` (roots of lone SIMs give none), oldest first."""
        out = []
        engine = self.engine
        names = engine.cell_names()
        for root in roots:
            if len(self._members[root]) < 2:
                continue
            # in the order linked: a later SIM's words of one kind are the rig's
            sims = sorted(self._members[root], key=self._order.__getitem__)
            slots = self.engine.sims.lookup(np.array([int(x) for x in sims], np.int64))
            slots = slots[slots >= 0]
            devices = engine.devices(slots)
            used = set(imei_texts(devices[devices != 0]))
            cells = engine.hourly_cells(slots).ravel()
            first = self._founded[root]
            evidence: dict[str, str] = {}
            for imsi in sims:
                evidence.update(self._evidence.get(imsi, {}))
                if self._bulk.text(int(imsi)):
                    evidence["registration"] = self._bulk.text(int(imsi))
            shared = len(used) < devices.size and \
                np.unique(devices[devices != 0]).size < (devices != 0).sum()
            if shared:
                evidence["devices"] = f"{len(slots)} SIMs rotate over {len(used)} shared devices"
            out.append(Rig(rig_id_for(root), set(sims), used, {names[c] for c in cells[cells >= 0]}, first,
                           int(engine.last_seen(slots).max()) if len(slots) else first, evidence))
        return sorted(out, key=lambda r: (r.first, r.id))
