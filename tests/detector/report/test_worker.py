"""Reports made in the worker process: gathered there from the store on a connection of its
own, the same documents as made in-process, and a bound on reports in flight."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import openpyxl
import pytest

from detector.report.pdf import pdf_bytes
from detector.report.worker import (NoTable, RenderBusy, RenderPool, ReportFailed, document,
                                    lower_priority, render, seccomp_filtered)
from tests.detector.report.test_gather import CONFIG, report  # noqa: F401  (the fixture)


@pytest.fixture
def renderer():
    r = RenderPool()
    yield r
    r.close()


def _cells(body: bytes) -> dict[str, list[tuple]]:
    wb = openpyxl.load_workbook(io.BytesIO(body))
    return {ws.title: [tuple(row) for row in ws.iter_rows(values_only=True)] for ws in wb}


async def test_the_worker_renders_the_same_pdf_bytes_as_in_process(report, renderer):
    body = await renderer.render("pdf", report, CONFIG.top_channels)
    assert body.startswith(b"%PDF")
    assert body == pdf_bytes(report, CONFIG.top_channels)


async def test_the_worker_renders_the_same_workbook(report, renderer):
    body = await renderer.render("xlsx", report)
    assert _cells(body) == _cells(render("xlsx", report))


async def test_renderings_beyond_the_bound_are_refused_not_queued(report):
    renderer = RenderPool(queue=1)
    try:
        first = asyncio.ensure_future(renderer.render("pdf", report))
        while renderer.in_flight == 0:
            await asyncio.sleep(0)
        with pytest.raises(RenderBusy):
            await renderer.render("pdf", report)
        assert (await first).startswith(b"%PDF")
        assert renderer.in_flight == 0
        assert (await renderer.render("xlsx", report)).startswith(b"PK")   # room again
    finally:
        renderer.close()


async def test_an_unknown_format_is_refused_naming_it(report, renderer):
    with pytest.raises(ValueError, match="'docx'"):
        await renderer.render("docx", report)
    with pytest.raises(ValueError, match="'docx'"):
        render("docx", report)


@pytest.mark.parametrize("status, filtered", [
    ("Name:\tpython\nSeccomp:\t2\nSeccomp_filters:\t1\n", True),
    ("Name:\tpython\nSeccomp:\t0\n", False),
    ("Name:\tpython\n", False),             # a kernel without seccomp
])
def test_a_seccomp_filter_is_told_from_the_process_status(status, filtered):
    assert seccomp_filtered(status) is filtered


async def test_the_worker_runs_only_on_a_core_the_api_leaves_idle(renderer):
    if seccomp_filtered(Path("/proc/self/status").read_text()):
        pytest.skip("under a seccomp filter the worker keeps the API's priority")
    assert await renderer._run(os.sched_getscheduler, 0) == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE        # the API's process is untouched


@pytest.mark.parametrize("status, nice", [("Name:\tpython\nSeccomp:\t2\n", 10),
                                          ("Name:\tpython\nSeccomp:\t0\n", 0)])
def test_a_filtered_worker_or_no_lowering_asked_changes_nothing(status, nice):
    before = os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)
    assert lower_priority(nice, status) == "none"
    assert (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)) == before


async def test_the_reports_reads_run_on_one_backend_without_parallel_workers(pg_dsn):
    from detector.report.worker import report_pool

    pool = await report_pool(pg_dsn)
    try:
        assert await pool.fetchval("SHOW max_parallel_workers_per_gather") == "0"
    finally:
        await pool.close()


async def test_the_worker_gathers_from_the_store_what_the_api_process_would(pg_dsn, report, renderer):
    body, fields = await renderer.make(pg_dsn, "2026-10", CONFIG, "json")
    made, here = json.loads(body), json.loads(document(report, "json")[0])
    assert fields == sorted(made)
    assert made.pop("generated_at") and here.pop("generated_at")    # made at different times
    assert made == here
    body, fields = await renderer.make(pg_dsn, "2026-10", CONFIG, "csv", "channels")
    assert body == document(report, "csv", "channels")[0] and fields == ["channels.csv"]


async def test_a_table_the_report_lacks_is_named_with_those_it_has(pg_dsn, report, renderer):
    with pytest.raises(NoTable, match="'nope'.*carriers"):
        await renderer.make(pg_dsn, "2026-10", CONFIG, "csv", "nope")


async def test_a_store_the_worker_cannot_read_fails_the_report_not_the_worker(pg_dsn, report,
                                                                               renderer):
    gone = pg_dsn.rsplit("/", 1)[0] + "/gw_test_no_such_database"
    with pytest.raises(ReportFailed, match="gw_test_no_such_database"):
        await renderer.make(gone, "2026-10", CONFIG, "json")
    body, _ = await renderer.make(pg_dsn, "2026-10", CONFIG, "pdf")    # the worker still serves
    assert body.startswith(b"%PDF")


def test_a_report_gathered_lately_is_answered_again_until_reuse_s_has_passed(monkeypatch, report):
    from dataclasses import replace

    from detector.report import worker

    gathered = []

    async def fake_gathered(dsn, month, config):
        gathered.append((dsn, month))
        return report

    monkeypatch.setattr(worker, "_gathered", fake_gathered)
    monkeypatch.setattr(worker, "_recent", [])
    now = [1000.0]
    clock = lambda: now[0]          # noqa: E731
    config = replace(CONFIG, reuse_s=60)
    assert worker._gathered_lately("db-a", "2026-10", config, clock).report is report
    now[0] += 59
    worker._gathered_lately("db-a", "2026-10", config, clock)
    assert gathered == [("db-a", "2026-10")]                # within reuse_s: the same one
    worker._gathered_lately("db-a", "2026-09", config, clock)        # another month,
    worker._gathered_lately("db-b", "2026-10", config, clock)        # another store,
    worker._gathered_lately("db-a", "2026-10", replace(config, trend_months=3), clock)   # other settings
    assert len(gathered) == 4
    now[0] += 1
    worker._gathered_lately("db-a", "2026-10", config, clock)        # reuse_s passed: gathered anew
    assert len(gathered) == 5
    never = replace(CONFIG, reuse_s=0)
    worker._gathered_lately("db-a", "2026-10", never, clock)
    worker._gathered_lately("db-a", "2026-10", never, clock)
    assert len(gathered) == 7
    assert len(worker._recent) <= worker._RECENT_MAX


async def test_a_document_made_lately_is_answered_again_without_the_worker():
    from dataclasses import replace

    now = [0.0]
    pool = RenderPool(clock=lambda: now[0])
    asked = []

    async def worker_run(fn, *args):
        asked.append(args)
        return f"{args[3]}:{args[4]} #{len(asked)}".encode(), [args[3]]

    pool._run = worker_run
    config = replace(CONFIG, reuse_s=60)
    first = await pool.make("db", "2026-10", config, "pdf")
    now[0] = 59
    assert await pool.make("db", "2026-10", config, "pdf") == first == (b"pdf: #1", ["pdf"])
    await pool.make("db", "2026-10", config, "csv", "channels")       # another document,
    await pool.make("db", "2026-09", config, "pdf")                   # another month,
    await pool.make("db", "2026-10", replace(config, top_channels=5), "pdf")  # other settings
    assert len(asked) == 4
    now[0] = 60.5
    assert await pool.make("db", "2026-10", config, "pdf") == (b"pdf: #5", ["pdf"])
    never = replace(CONFIG, reuse_s=0)
    await pool.make("db", "2026-10", never, "xlsx")
    await pool.make("db", "2026-10", never, "xlsx")
    assert len(asked) == 7
    for m in range(1, 13):                      # a bounded number kept, the newest
        await pool.make("db", f"2025-{m:02d}", config, "pdf")
    assert len(pool._made) <= 8 and ("db", "2025-12", "pdf", "") in pool._made
