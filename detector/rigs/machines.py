"""The hot-cell memory: machine-like SIMs per cell, remembered across ticks.

The SIMs of a rig need not all be touched in the same scoring tick, only in the same hour:
:mod:`detector.rigs.hot_cells` remembers each machine-like SIM's cell and hour, the
companions rule and the rig book ask which flagged SIMs were machine-like beside a SIM.
Only the last hours can count, so older entries are dropped (bounded state); checkpoints
keep the rest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container

from detector.ids import imsi_text


class MachineMemory:
    def __init__(self) -> None:
        self._cells: dict[int, dict[str, int]] = defaultdict(dict)  # cell -> {imsi: hour}

    def remember(self, cell: int, imsi: str, hour: int) -> None:
        self._cells[cell][imsi] = hour

    def peers(self, cell: int) -> dict[str, int]:
        """The machine-like SIMs remembered in ``cell``, with their hours."""
        return self._cells[cell]

    def mates(self, imsi: str, cell: int, flagged: Container[str]) -> list[str]:
        """Those of ``flagged`` that were machine-like in ``cell`` within the hour of ``imsi``;
        none unless ``imsi`` was machine-like there itself."""
        peers = self._cells.get(cell, {})
        if imsi not in peers:
            return []
        return [x for x, h in peers.items() if x != imsi and x in flagged and abs(h - peers[imsi]) <= 1]

    def forget_before(self, hour: int) -> None:
        """Drop what is older than ``hour``: it can no longer count."""
        for c in list(self._cells):
            kept = {i: h for i, h in self._cells[c].items() if h >= hour}
            if kept:
                self._cells[c] = kept
            else:
                del self._cells[c]

    def snapshot(self) -> dict[str, dict[str, int]]:
        """cell -> {imsi: hour}, for checkpoints."""
        return {str(c): dict(m) for c, m in self._cells.items()}

    def restore(self, saved: dict[str, dict[str, int]]) -> None:
        for c, m in saved.items():   # IMSIs as written (older checkpoints wrote them unpadded)
            self._cells[int(c)].update({imsi_text(i): h for i, h in m.items()})
