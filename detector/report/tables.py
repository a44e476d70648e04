"""The report as data: typed, frozen tables whose every column carries its unit and definition,
so that every output (CSV, XLSX, PDF, the API's JSON) prints numbers with their meaning."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Column:
    key: str            # CSV header and JSON key
    label: str          # for people (XLSX header, PDF)
    unit: str           # "SIMs", "s", "share", ... ('' for labels)
    definition: str     # what exactly is counted


@dataclass(frozen=True, slots=True)
class Table:
    name: str                      # file stem and sheet name
    title: str
    description: str               # what one row is
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]

    def column(self, key: str) -> list[Any]:
        i = [c.key for c in self.columns].index(key)
        return [r[i] for r in self.rows]

    def row(self, **match: Any) -> dict[str, Any]:
        """The one row whose columns have the given values, as a dict."""
        keys = [c.key for c in self.columns]
        found = [dict(zip(keys, r)) for r in self.rows
                 if all(r[keys.index(k)] == v for k, v in match.items())]
        if len(found) != 1:
            raise KeyError(f"{self.name}: {len(found)} rows match {match}")
        return found[0]

    def to_json(self) -> dict[str, Any]:
        keys = [c.key for c in self.columns]
        return {"name": self.name, "title": self.title, "description": self.description,
                "columns": [{"key": c.key, "label": c.label, "unit": c.unit,
                             "definition": c.definition} for c in self.columns],
                "rows": [dict(zip(keys, r)) for r in self.rows]}


@dataclass(frozen=True, slots=True)
class Report:
    month: str                       # YYYY-MM
    start: datetime                  # period [start, end), UTC
    end: datetime
    generated_at: datetime
    tables: tuple[Table, ...]
    definitions: tuple[tuple[str, str], ...]   # (term, meaning) for the whole report
    coverage_notes: tuple[str, ...]            # the period's data coverage in words
    first_activity_to_flag_s: tuple[float, ...]   # the distributions behind the charts
    flag_to_request_s: tuple[float, ...]
    rigs_found: int = 0                       # distinct rigs first flagged in the month

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {"month": self.month, "period": {"start": _iso(self.start), "end": _iso(self.end)},
                "generated_at": _iso(self.generated_at), "rigs_found": self.rigs_found,
                "definitions": [{"term": t, "meaning": m} for t, m in self.definitions],
                "coverage": list(self.coverage_notes),
                "tables": {t.name: t.to_json() for t in self.tables}}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
