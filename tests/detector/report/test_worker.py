"""Reports rendered in the worker process: the same documents as rendered in-process, and a
bound on renderings in flight."""

from __future__ import annotations

import asyncio
import io

import openpyxl
import pytest

from detector.report.pdf import pdf_bytes
from detector.report.worker import RenderBusy, RenderPool, render, seccomp_filtered
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
