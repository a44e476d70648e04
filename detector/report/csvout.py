"""CSV output: one file per table (for bulk use), plus definitions.csv and coverage.txt.

Each table's file has one header row of column keys (a stable contract, listed with units and
definitions in ``columns.csv``); empty cells are values that could not be measured.

Text cells may hold names from the feeds (carriers, channels, files): one starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return would run as a formula in a spreadsheet
(``=HYPERLINK(...)``), so it is written with a leading single quote, as OWASP advises (CSV
injection). Numbers are written as they are. Lines end in CRLF (RFC 4180)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from detector.report.tables import Report, Table


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """A value as written to a CSV cell: None empty, text that a spreadsheet would read as a
    formula behind a single quote, anything else (numbers) as it is."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Writer:
    """``csv.writer`` whose every cell goes through :func:`cell`."""

    def __init__(self, out: io.StringIO) -> None:
        # RFC 4180 line ends: a CR inside a name is then quoted too (with "\n" it would not be,
        # and would split the row for every reader)
        self._w = csv.writer(out, lineterminator="\r\n")

    def writerow(self, row) -> None:
        self._w.writerow([cell(v) for v in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def table_csv(table: Table) -> str:
    out = io.StringIO()
    w = _Writer(out)
    w.writerow([c.key for c in table.columns])
    w.writerows(table.rows)
    return out.getvalue()


def columns_csv(report: Report) -> str:
    out = io.StringIO()
    w = _Writer(out)
    w.writerow(["table", "column", "label", "unit", "definition"])
    for t in report.tables:
        for c in t.columns:
            w.writerow([t.name, c.key, c.label, c.unit, c.definition])
    return out.getvalue()


def definitions_csv(report: Report) -> str:
    out = io.StringIO()
    w = _Writer(out)
    w.writerow(["term", "meaning"])
    w.writerows(report.definitions)
    w.writerow(["Coverage", " / ".join(report.coverage_notes)])
    return out.getvalue()


def write_csv(report: Report, out_dir: Path) -> list[Path]:
    """``out_dir/<table>.csv`` for every table, ``columns.csv`` and ``definitions.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for t in report.tables:
        path = out_dir / f"{t.name}.csv"
        path.write_text(table_csv(t), encoding="utf-8")
        written.append(path)
    for name, text in (("columns.csv", columns_csv(report)), ("definitions.csv", definitions_csv(report))):
        (out_dir / name).write_text(text, encoding="utf-8")
        written.append(out_dir / name)
    return written
