"""CSV output: one file per table (for bulk use), plus definitions.csv and coverage.txt.

Each table's file has one header row of column keys (a stable contract, listed with units and
definitions in ``columns.csv``); empty cells are values that could not be measured."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from detector.report.tables import Report, Table


def table_csv(table: Table) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([c.key for c in table.columns])
    for row in table.rows:
        w.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def columns_csv(report: Report) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["table", "column", "label", "unit", "definition"])
    for t in report.tables:
        for c in t.columns:
            w.writerow([t.name, c.key, c.label, c.unit, c.definition])
    return out.getvalue()


def definitions_csv(report: Report) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
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
