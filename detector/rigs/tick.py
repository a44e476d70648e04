"""What a rig rule may read at a scoring tick, and the one way it adds what it finds.

Every rule of :data:`detector.rigs.RULES` is ``find(tick: Tick) -> list[Flag]``. A rule
reads the engine (features, contacts, power-on bursts, SIM state), the tick's feature frame
and what the scorer made of it, and asks the rig book for the evidence it noted; it never
changes the engine. What it flags goes through :meth:`Tick.keep`: the SIM is taken (no
later rule flags it again) and its rig evidence is noted in the book.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from detector.features.engine import FeatureEngine, FeatureFrame
from detector.flags import Flag
from detector.rigs.common import slots_of
from detector.rigs.machines import MachineMemory
from detector.rigs.policy import RigPolicy
from detector.rigs.registrations import BulkRegistrations
from detector.scoring import Scorer


class Notes(Protocol):
    """The rig book's side a rule uses: the rig evidence noted per SIM, and rig roots."""

    def note(self, imsi: str, key: str, evidence: str) -> None: ...

    def evidence_of(self, imsi: str) -> Mapping[str, str]: ...

    def noted(self, key: str) -> list[str]: ...

    def root(self, imsi: str) -> str: ...

    def rig_devices(self) -> np.ndarray: ...


@dataclass(frozen=True, slots=True, eq=False)
class Tick:
    engine: FeatureEngine
    scorer: Scorer
    policy: RigPolicy
    frame: FeatureFrame              # the SIMs scored at this tick
    strengths: np.ndarray            # per row and feature, how rig-like (Scorer.strengths)
    families: np.ndarray             # per row, kinds of rig-like evidence
    use: np.ndarray                  # ... of its own use: without the registration family,
                                     # which is its account's (every card of a company account
                                     # has "many cards on one ID")
    flagged: Mapping[str, Flag]      # flags of earlier ticks
    found: list[Flag]                # this tick's flags so far: the scorer's, then each rule's
                                     # (the book adds them, less those the allow-list refuses)
    taken: set[str]                  # SIMs flagged or found: not to be flagged again
    book: Notes
    machines: MachineMemory
    bulk: BulkRegistrations
    _asked: dict[str, np.ndarray] = field(default_factory=dict)

    def keep(self, flag: Flag | None, out: list[Flag], key: str, evidence: str) -> None:
        """Add a rule's flag (if not vetoed) with the rig evidence it brings."""
        if flag is None:
            return
        out.append(flag)
        self.book.note(flag.imsi, key, evidence)
        self.taken.add(flag.imsi)

    def known(self) -> np.ndarray:
        """Slots of the flagged SIMs, earlier ticks' and this tick's, for the rules on their
        associates. Fixed when first asked, by the first associate rule: the associates of a
        SIM that one of them flags are for a later tick."""
        if "known" not in self._asked:
            self._asked["known"] = slots_of(self.engine, list(self.flagged) + [f.imsi for f in self.found])
        return self._asked["known"]

    def rig_devices(self) -> np.ndarray:
        """The devices of the SIMs in rigs, as the tick began (sorted, distinct)."""
        if "rig_devices" not in self._asked:
            self._asked["rig_devices"] = self.book.rig_devices()
        return self._asked["rig_devices"]

    def ported(self) -> np.ndarray:
        """Slots of this tick's flags (fixed as :meth:`known` is) in devices that carried other
        SIMs too: ports, not phones."""
        if "ported" not in self._asked:
            self._asked["ported"] = slots_of(
                self.engine, [f.imsi for f in self.found if f.features.get("sims_per_imei_24h", 0) >= 2])
        return self._asked["ported"]
