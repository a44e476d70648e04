"""The report's files: one CSV per table with stable headers, a workbook whose sheets carry
labels, units and definitions above the numbers, and a PDF of nine pages."""

import csv
import io
import re

import openpyxl
import pytest

from detector.report import gather, write_all
from detector.report.pdf import human_s, interval_cell
from detector.report.tables import Column, Table
from detector.report.xlsx import HEADER_ROWS
from detector.store.db import connect
from tests.detector.report import small_store
from tests.detector.report.test_gather import CONFIG, NOW


@pytest.fixture
async def written(pg_dsn, tmp_path):
    pool = await connect(pg_dsn)
    try:
        async with pool.acquire() as conn:
            await small_store.build(conn)
        report = await gather(pool, "2026-10", CONFIG, now=NOW)
    finally:
        await pool.close()
    return report, write_all(report, tmp_path / "out", CONFIG)


async def test_csv_per_table_and_their_columns(written):
    report, paths = written
    names = sorted(p.name for p in paths)
    assert names == sorted([f"{t.name}.csv" for t in report.tables] + [
        "columns.csv", "definitions.csv", "report-2026-10.xlsx", "report-2026-10.pdf",
        "report-2026-10.json"])
    out = paths[0].parent
    with (out / "carriers.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[2]["carrier"] == "China Mobile" and rows[2]["fraud_per_10k"] == "5000.0"
    assert rows[1]["flag_to_request_median_s"] == ""            # not measurable: empty
    assert (rows[2]["fraud_per_10k_low"], rows[2]["fraud_per_10k_high"]) == ("1500.39", "8499.61")
    with (out / "columns.csv").open() as fh:
        cols = list(csv.DictReader(fh))
    assert {(c["table"], c["column"]) for c in cols} >= {("channels", "change_per_10k"),
                                                         ("carriers", "fraud_per_10k")}
    assert all(c["definition"] for c in cols)


async def test_workbook_sheets_hold_units_and_definitions(written):
    report, paths = written
    wb = openpyxl.load_workbook(next(p for p in paths if p.suffix == ".xlsx"))
    assert wb.sheetnames == ["About"] + [t.name for t in report.tables]
    ws = wb["carriers"]
    header = [c.value for c in ws[1]]
    i = header.index("Fraud-involved per 10,000 subscribers")
    assert ws.cell(2, i + 1).value == "per 10,000 active SIMs"
    assert "active_subscribers x 10,000" in ws.cell(3, i + 1).value
    assert [ws.cell(HEADER_ROWS + r, 1).value for r in (1, 2, 3)] == \
        ["(no registration)", "Xiaomi Mobile", "China Mobile"]
    assert ws.cell(HEADER_ROWS + 3, i + 1).value == 5000.0
    low, high = header.index("95% interval, low"), header.index("95% interval, high")
    assert (ws.cell(HEADER_ROWS + 3, low + 1).value, ws.cell(HEADER_ROWS + 3, high + 1).value) == \
        (1500.39, 8499.61)
    assert "Wilson score interval" in ws.cell(3, low + 1).value
    about = " ".join(str(c.value) for row in wb["About"].iter_rows() for c in row if c.value)
    assert "95% interval" in about and "min_population" in about
    assert "Fraud-involved card" in about and "feed cdr: records dated on 4 days of 31" in about


async def test_pdf_has_its_pages(written):
    _, paths = written
    pdf = next(p for p in paths if p.suffix == ".pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 9


@pytest.mark.parametrize("seconds, text", [(None, "–"), (42, "42 s"), (2700, "45.0 min"),
                                           (86400, "24.0 h"), (3 * 86400, "3.0 d")])
def test_durations_read_in_their_unit(seconds, text):
    assert human_s(seconds) == text


def test_names_from_feeds_never_become_formulas():
    import io
    import zipfile
    from datetime import UTC, datetime

    from detector.report.tables import Column, Report, Table
    from detector.report.xlsx import xlsx_bytes

    t = Table("channels", "Channels", "one per channel", (Column("channel", "Channel", "", "dealer code"),),
              (('=HYPERLINK("http://evil.example","x")',),))
    now = datetime(2026, 11, 1, tzinfo=UTC)
    body = xlsx_bytes(Report("2026-10", now, now, now, (t,), (), (), (), ()))
    sheet = zipfile.ZipFile(io.BytesIO(body)).read("xl/worksheets/sheet2.xml")
    assert b"<f>" not in sheet
    assert openpyxl.load_workbook(io.BytesIO(body))["channels"].cell(4, 1).value.startswith("=HYPERLINK")


async def test_feed_names_that_look_like_formulas_are_quoted_in_the_csv(pg_dsn, tmp_path):
    evil = '=HYPERLINK("http://evil.example","x")'
    pool = await connect(pg_dsn)
    try:
        async with pool.acquire() as conn:
            await small_store.build(conn)
            await conn.execute("UPDATE registrations SET channel = $1 WHERE channel = 'CH1'", evil)
        report = await gather(pool, "2026-10", CONFIG, now=NOW)
    finally:
        await pool.close()
    write_all(report, tmp_path / "out", CONFIG)
    with (tmp_path / "out" / "channels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert "'" + evil in [r["channel"] for r in rows] and evil not in [r["channel"] for r in rows]
    row = next(r for r in rows if r["channel"] == "'" + evil)
    assert row["fraud_involved_cards"] == str(report.table("channels").row(channel=evil)["fraud_involved_cards"])


def test_only_text_cells_are_quoted_numbers_stay_numbers():
    from detector.report.csvout import table_csv

    t = Table("t", "T", "one per name", (Column("name", "Name", "", "a name"),
                                        Column("change", "Change", "SIMs", "a signed number")),
              tuple((text, n) for text, n in (("=1+1", -3), ("+31", 2.5), ("-x", -0.25),
                                              ("@SUM(A1)", 0), ("\tx", None), ("\rx", 1),
                                              ("plain - text", -1))))
    rows = list(csv.reader(io.StringIO(table_csv(t), newline="")))
    assert rows == [["name", "change"], ["'=1+1", "-3"], ["'+31", "2.5"], ["'-x", "-0.25"],
                    ["'@SUM(A1)", "0"], ["'\tx", ""], ["'\rx", "1"], ["plain - text", "-1"]]


async def test_pdf_rates_carry_their_interval(written):
    report, _ = written
    carriers = report.table("carriers")
    k = {c.key: i for i, c in enumerate(carriers.columns)}
    cm = next(r for r in carriers.rows if r[0] == "China Mobile")
    assert interval_cell(cm, k) == "1,500–8,500"
    small = list(cm)
    small[k["fraud_per_10k_low"]], small[k["fraud_per_10k_high"]] = 0.31, 57.26
    assert interval_cell(small, k) == "0.3–57.3"
    none_active = list(cm)
    for key in ("active_subscribers", "fraud_per_10k", "fraud_per_10k_low", "fraud_per_10k_high"):
        none_active[k[key]] = 0 if key == "active_subscribers" else None
    assert interval_cell(none_active, k) == "–"        # no subscribers: no rate, no interval
