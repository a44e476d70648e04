"""GET /v1/reports/{month}: the monthly report for regulators, audited, without subscriber data."""

import io
import json
import zipfile

import pytest

from detector.api.reports import report_routes
from detector.report import ReportConfig
from tests.detector.api.conftest import IMSI, MSISDN, OTHER_IMSI, audit_rows, auth


@pytest.fixture
async def rclient(pg_dsn, pool, api_config, make_client):
    return await make_client(pool, api_config, [report_routes(pg_dsn, ReportConfig())])


async def test_regulator_reads_the_report_as_json_with_definitions(rclient, pool):
    r = await rclient.get("/v1/reports/2026-10", headers=auth("regulator"))
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    text = await r.text()
    doc = json.loads(text)
    carriers = doc["tables"]["carriers"]
    cm = next(row for row in carriers["rows"] if row["carrier"] == "China Mobile")
    assert cm["flagged_cards"] == 2 and cm["rigs"] == 1 and cm["largest_rig"] == 2
    assert all(c["definition"] for c in carriers["columns"])
    assert doc["coverage"] and doc["definitions"]
    for secret in (IMSI, OTHER_IMSI, MSISDN):
        assert secret not in text
    row = (await audit_rows(pool))[-1]
    assert (row["action"], row["role"], row["status"], row["outcome"]) == \
        ("reports.get", "regulator", 200, "answered")
    assert json.loads(row["query"])["month"] == "2026-10"


@pytest.mark.parametrize("fmt, magic, ctype", [
    ("pdf", b"%PDF", "application/pdf"),
    ("xlsx", b"PK", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
])
async def test_documents_for_download(rclient, fmt, magic, ctype):
    r = await rclient.get(f"/v1/reports/2026-10?format={fmt}", headers=auth("admin"))
    assert r.status == 200 and r.content_type == ctype
    body = await r.read()
    assert body.startswith(magic)
    assert f'report-2026-10.{fmt}' in r.headers["Content-Disposition"]
    if fmt == "xlsx":
        names = zipfile.ZipFile(io.BytesIO(body)).namelist()
        assert "xl/workbook.xml" in names


async def test_one_table_as_csv(rclient):
    r = await rclient.get("/v1/reports/2026-10?format=csv&table=channels", headers=auth("regulator"))
    assert r.status == 200
    lines = (await r.text()).splitlines()
    assert lines[0].startswith("rank,channel,active_subscribers,fraud_involved_cards")
    r = await rclient.get("/v1/reports/2026-10?format=csv&table=nope", headers=auth("regulator"))
    assert r.status == 404 and (await r.json())["reason"] == "no_table"


@pytest.mark.parametrize("role, path, status, reason", [
    ("police", "/v1/reports/2026-10", 403, "role_forbidden"),
    ("analyst", "/v1/reports/2026-10", 403, "role_forbidden"),
    ("regulator", "/v1/reports/2026-13", 400, "invalid_value"),
    ("regulator", "/v1/reports/2026-10?format=doc", 400, "invalid_value"),
    ("regulator", "/v1/reports/2026-10?format=csv", 400, "invalid_value"),
    ("regulator", "/v1/reports/2026-10?colour=red", 400, "unknown_field"),
])
async def test_refusals_are_problems_and_audited(rclient, pool, role, path, status, reason):
    r = await rclient.get(path, headers=auth(role))
    assert r.status == status and r.content_type == "application/problem+json"
    assert (await r.json())["reason"] == reason
    row = (await audit_rows(pool))[-1]
    assert (row["action"], row["role"], row["status"], row["reason"]) == \
        ("reports.get", role, status, reason)


async def test_unauthenticated_requests_are_refused(rclient, pool):
    r = await rclient.get("/v1/reports/2026-10")
    assert r.status == 401
    assert (await audit_rows(pool))[-1]["outcome"] == "refused"


@pytest.mark.parametrize("path, field", [
    ("/v1/reports/2026-10?format=js%00n", "params"),
    ("/v1/reports/2026-1%000", "month"),
])
async def test_a_nul_in_the_request_is_refused_and_still_audited(rclient, pool, path, field):
    r = await rclient.get(path, headers=auth("regulator"))
    assert r.status == 400 and (await r.json())["reason"] == "invalid_value"
    row = (await audit_rows(pool))[-1]
    assert (row["action"], row["status"], row["outcome"], row["reason"]) == \
        ("reports.get", 400, "refused", "invalid_value")
    recorded = json.loads(row["query"])[field]
    assert "\ufffd" in (recorded["format"] if field == "params" else recorded)


async def test_a_failure_inside_the_report_is_a_problem_and_audited(rclient, pool):
    await pool.execute("ALTER TABLE rigs RENAME TO rigs_elsewhere")   # gather's query fails
    r = await rclient.get("/v1/reports/2026-10", headers=auth("regulator"))
    assert r.status == 500 and r.content_type == "application/problem+json"
    assert (await r.json())["reason"] == "internal_error"
    row = (await audit_rows(pool))[-1]
    assert (row["action"], row["role"], row["status"], row["outcome"], row["reason"]) == \
        ("reports.get", "regulator", 500, "error", "internal_error")
    assert json.loads(row["query"])["month"] == "2026-10"


async def test_a_rendering_beyond_the_bound_is_503_and_audited(pg_dsn, pool, api_config, make_client):
    import asyncio

    from detector.report.worker import RenderPool

    renderer = RenderPool(queue=1)
    try:
        client = await make_client(pool, api_config,
                                   [report_routes(pg_dsn, ReportConfig(), renderer)])
        busy = asyncio.ensure_future(renderer.make(pg_dsn, "2026-10", ReportConfig(), "pdf"))
        while renderer.in_flight == 0:
            await asyncio.sleep(0)
        r = await client.get("/v1/reports/2026-10?format=pdf", headers=auth("regulator"))
        assert r.status == 503 and r.headers["Retry-After"] == "10"
        assert (await r.json())["reason"] == "render_busy"
        row = (await audit_rows(pool))[-1]
        assert (row["action"], row["status"], row["outcome"], row["reason"]) == \
            ("reports.get", 503, "refused", "render_busy")
        await busy
        r = await client.get("/v1/reports/2026-10?format=pdf", headers=auth("regulator"))
        assert r.status == 200 and (await r.read()).startswith(b"%PDF")
    finally:
        renderer.close()


async def test_the_api_process_neither_gathers_nor_renders(rclient, monkeypatch):
    """Lookups share the API's event loop: the report is read and made in the worker."""
    def elsewhere(*_a, **_k):
        raise AssertionError("the report was made on the API process")

    import sys

    import detector.report.worker  # noqa: F401
    monkeypatch.setattr(sys.modules["detector.report.gather"], "gather", elsewhere)
    monkeypatch.setattr(sys.modules["detector.report.worker"], "document", elsewhere)
    for fmt in ("json", "pdf"):
        r = await rclient.get(f"/v1/reports/2026-10?format={fmt}", headers=auth("regulator"))
        assert r.status == 200
