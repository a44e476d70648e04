"""What detection hands on: a flagged SIM (:class:`Flag`) and a rig of them (:class:`Rig`).

Plain typed records, with no numpy or scikit-learn behind them: the store, verification,
the APIs and the console name them without loading the detector's numerical code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from detector.wording import counted


@dataclass(frozen=True, slots=True)
class Flag:
    """A SIM judged rig-like, with the evidence an analyst reads."""

    imsi: str
    msisdn: str
    score: float
    flagged_at: int                     # event time (epoch s) of the record that tipped it
    reasons: tuple[str, ...]
    kind: str = "sim_anomaly"
    rig_id: str = ""
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rig:
    """SIMs that work together (two or more flagged SIMs), with what links them."""

    id: str
    sims: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    cells: set[str] = field(default_factory=set)
    first: int = 0
    last: int = 0
    evidence: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for analysts; the store keeps it, and a rig whose summary changed is
        saved again."""
        parts = [counted(len(self.sims), "SIM")]
        if self.devices:
            parts.append(counted(len(self.devices), "device"))
        if self.cells:
            parts.append(counted(len(self.cells), "cell"))
        parts.append(f"active {_iso(self.first)} .. {_iso(self.last)}")
        return "; ".join(parts + sorted(self.evidence.values()))


def _iso(ts: int) -> str:
    """Event time as :func:`detector.records.iso` writes it (that module needs numpy)."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
