"""Settings of the monthly report (the ``[report]`` table of the configuration).

``regions`` maps cell-id prefixes to region names: a SIM's region for a month is that of the
cell of its last located record in the month, by the longest prefix of the canonical cell id
(``MCC-MNC-LAC-CI``) found in the table; a cell no prefix matches is in region "unmapped".
Prefixes compare as text, so end one with "-" to match whole components
(``"460-00-4096-"`` is LAC 4096 only, ``"460-00-40"`` is every LAC starting with 40).

``min_population`` is the number of active subscribers a carrier, region or sales channel
needs for its rate (fraud-involved cards per 10,000) to be given and ranked; every rate also
carries its 95 % Wilson interval, smaller groups included.

``virtual_operators`` maps each virtual operator's brand (as in the registrations' carrier
column) to its host network; every other carrier is reported as a network operator (MNO).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Mapping

UNMAPPED = "unmapped"
NO_ACTIVITY = "no activity"     # a card without any recorded activity up to the month
UNLOCATED = "unlocated"         # active, but no record of it carried a cell
NO_REGISTRATION = "(no registration)"   # the carrier and channel of a SIM without a registration
_PREFIX = re.compile(r"\d{3}(-\d{0,6}){0,3}")   # a prefix of MCC-MNC-LAC-CI

# Virtual operators of the Chinese market as the simulator spells them (config may override).
DEFAULT_VIRTUAL = {"Xiaomi Mobile": "China Unicom", "Snail Mobile": "China Telecom",
                   "JD Communication": "China Mobile"}


@dataclass(frozen=True, slots=True)
class ReportConfig:
    regions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    virtual_operators: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType(dict(DEFAULT_VIRTUAL)))
    within_s: int = 180          # the service level "within 3 minutes"
    top_channels: int = 20       # channels drawn and listed in the PDF (the CSV/XLSX list all)
    trend_months: int = 6        # months in the trend chart and table, ending with the report's
    # active subscribers a carrier, region or channel needs for its rate to be given and
    # ranked: 2 cards of 64 would read "312.5 per 10,000" and head the ranking on chance
    min_population: int = 1000
    # a report gathered less than this long ago is answered again, with the time it was
    # gathered (0: gather each time): a month over a million subscribers costs the store
    # about a second of a core, taken from the lookups when a report is asked again and again
    reuse_s: int = 60

    @classmethod
    def from_toml(cls, table: dict[str, Any], where: str = "report") -> "ReportConfig":
        """Validated settings from a parsed TOML table; ``ValueError`` names ``where.key``."""
        if not isinstance(table, dict):
            raise ValueError(f"{where}: must be a table")
        known = ("regions", "virtual_operators", "within_s", "top_channels", "trend_months",
                 "min_population", "reuse_s")
        values: dict[str, Any] = {}
        for key, value in table.items():
            name = f"{where}.{key}"
            if key not in known:
                raise ValueError(f"{name}: unknown key (known: {', '.join(sorted(known))})")
            if key in ("regions", "virtual_operators"):
                if not isinstance(value, dict) or not all(
                        isinstance(k, str) and isinstance(v, str) and k and v.strip()
                        for k, v in value.items()):
                    raise ValueError(f"{name}: must be a table of non-empty strings")
                if key == "regions":
                    for prefix in value:
                        if not _PREFIX.fullmatch(prefix):
                            raise ValueError(f"{name}.{prefix!r}: not a prefix of a cell id "
                                             "MCC-MNC-LAC-CI (digits and '-', e.g. '460-00-4096-')")
                values[key] = MappingProxyType({k: v.strip() for k, v in value.items()})
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{name}: must be an integer")
                values[key] = value
        cfg = cls(**values)
        if not 1 <= cfg.within_s <= 86400:
            raise ValueError(f"{where}.within_s: must be 1..86400 seconds")
        if not 1 <= cfg.top_channels <= 200:
            raise ValueError(f"{where}.top_channels: must be 1..200")
        if not 1 <= cfg.trend_months <= 36:
            raise ValueError(f"{where}.trend_months: must be 1..36")
        if not 1 <= cfg.min_population <= 1_000_000_000:
            raise ValueError(f"{where}.min_population: must be 1..1000000000 active subscribers")
        if not 0 <= cfg.reuse_s <= 3600:
            raise ValueError(f"{where}.reuse_s: must be 0..3600 seconds")
        return cfg

    def __reduce__(self):
        """Pickled with plain dicts (a mapping proxy does not pickle): the API hands its
        configuration to the report worker's process."""
        return (_unpickled, ({f.name: getattr(self, f.name) for f in fields(self)
                              if f.name not in _MAPPINGS},
                             {name: dict(getattr(self, name)) for name in _MAPPINGS}))

    def region_of(self, cell: str) -> str:
        """The region of a canonical cell id ('' = the SIM was never located)."""
        if not cell:
            return UNLOCATED
        best = ""
        for prefix in self.regions:
            if cell.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.regions[best] if best else UNMAPPED

    def operator_type(self, carrier: str) -> str:
        if carrier.startswith("("):        # "(no registration)"
            return "unknown"
        host = self.virtual_operators.get(carrier)
        return f"virtual operator on {host}" if host else "network operator"


_MAPPINGS = ("regions", "virtual_operators")


def _unpickled(values: dict[str, Any], mappings: dict[str, dict[str, str]]) -> ReportConfig:
    return replace(ReportConfig(**values),
                   **{name: MappingProxyType(m) for name, m in mappings.items()})
