"""XLSX output: a workbook with an "About" sheet (period, definitions, data coverage) and one
sheet per table whose first rows are the column labels, units and definitions."""

from __future__ import annotations

import io
from pathlib import Path

from detector.report.tables import Report

HEADER_ROWS = 3     # label, unit, definition; data from row 4


def xlsx_bytes(report: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    about = wb.active
    about.title = "About"
    bold = Font(bold=True)
    about.append([f"goipwatch monthly problem-carrier report {report.month}"])
    about["A1"].font = Font(bold=True, size=14)
    about.append(["Period (UTC)", f"{report.start:%Y-%m-%d} to {report.end:%Y-%m-%d} (end excluded)"])
    about.append(["Generated (UTC)", f"{report.generated_at:%Y-%m-%d %H:%M:%S}"])
    about.append([])
    about.append(["Definitions"])
    about.cell(about.max_row, 1).font = bold
    for term, meaning in report.definitions:
        about.append([term, meaning])
    about.append([])
    about.append(["Data coverage"])
    about.cell(about.max_row, 1).font = bold
    for note in report.coverage_notes:
        about.append(["", note])
    about.append([])
    about.append(["Sheets"])
    about.cell(about.max_row, 1).font = bold
    for t in report.tables:
        about.append([t.name, f"{t.title}: {t.description}"])
    about.column_dimensions["A"].width = 30
    about.column_dimensions["B"].width = 140
    for row in about.iter_rows(min_col=2, max_col=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")

    shade = PatternFill("solid", fgColor="DDE6F0")
    for t in report.tables:
        ws = wb.create_sheet(t.name[:31])
        ws.append([c.label for c in t.columns])
        ws.append([c.unit for c in t.columns])
        ws.append([c.definition for c in t.columns])
        for r in range(1, HEADER_ROWS + 1):
            for cell in ws[r]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
                cell.fill = shade
                if r == 1:
                    cell.font = bold
                elif r == 2:
                    cell.font = Font(italic=True)
                else:
                    cell.font = Font(size=8)
        for row in t.rows:
            ws.append(list(row))
            for cell in ws[ws.max_row]:
                if isinstance(cell.value, str):
                    cell.data_type = "s"   # a name from a feed ("=HYPERLINK(...)") stays text
        ws.freeze_panes = ws.cell(HEADER_ROWS + 1, 2)
        ws.row_dimensions[3].height = 90
        for i, c in enumerate(t.columns, start=1):
            width = max([len(c.label)] + [len(str(v)) for v in t.column(c.key)]) + 2
            ws.column_dimensions[get_column_letter(i)].width = min(max(width, 12), 40)
            fmt = "0.00%" if c.unit.startswith("share") else None
            if fmt:
                for r in range(HEADER_ROWS + 1, ws.max_row + 1):
                    ws.cell(r, i).number_format = fmt
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write_xlsx(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(xlsx_bytes(report))
    return path
