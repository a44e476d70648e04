"""The monthly problem-carrier report for regulators (issue 7, docs/report.md): ``gather``
reads the store into typed tables, ``csvout``/``xlsx``/``pdf`` write them with their
definitions and the period's data coverage."""

from __future__ import annotations

from pathlib import Path

from detector.report.config import ReportConfig
from detector.report.gather import ReportError, gather, parse_month
from detector.report.tables import Column, Report, Table


def write_all(report: Report, out_dir: Path, config: ReportConfig = ReportConfig()) -> list[Path]:
    """CSV files, ``report-<month>.xlsx``, ``report-<month>.pdf`` and ``report-<month>.json``
    in ``out_dir``; returns the paths written."""
    import json

    from detector.report.csvout import write_csv
    from detector.report.pdf import write_pdf
    from detector.report.xlsx import write_xlsx

    out_dir = Path(out_dir)
    paths = write_csv(report, out_dir)
    paths.append(write_xlsx(report, out_dir / f"report-{report.month}.xlsx"))
    paths.append(write_pdf(report, out_dir / f"report-{report.month}.pdf", config.top_channels))
    js = out_dir / f"report-{report.month}.json"
    js.write_text(json.dumps(report.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths.append(js)
    return paths


__all__ = ["Column", "Report", "ReportConfig", "ReportError", "Table", "gather", "parse_month",
           "write_all"]
