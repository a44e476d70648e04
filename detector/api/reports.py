"""The monthly report over the API (issue 7): ``GET /v1/reports/{month}`` for the regulator
(and admin) role.

``?format=json`` (default) answers every table with its columns' units and definitions, the
definitions and the data coverage; ``format=xlsx`` and ``format=pdf`` the workbook and the
document; ``format=csv&table=NAME`` one table. Regulators see aggregates only: the report holds
no subscriber identifier. Every request, answered or refused, is audited like a lookup
(action ``reports.get``, the month and format as its query, the SHA-256 of the body sent); an
answer that cannot be audited is not sent.

The PDF and the workbook are rendered in a worker process (:mod:`detector.report.worker`),
never on the event loop that answers the lookups; when renderings are queued to the bound
already, one more is refused with 503 ``render_busy`` and ``Retry-After``.
"""

from __future__ import annotations

import json

import asyncpg
from aiohttp import web

from detector.api.kit import Refusal
from detector.api.audited import Answer, Caller, as_answer, audited_handler
from detector.report import ReportConfig, ReportError, gather, parse_month
from detector.report.tables import Report
from detector.report.worker import RenderBusy, RenderPool

REPORT_ROLES = frozenset({"regulator", "admin"})
FORMATS = {"json": "application/json", "csv": "text/csv",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
           "pdf": "application/pdf"}
RETRY_RENDER_S = 10               # Retry-After of a rendering refused as busy
_renderer: RenderPool | None = None   # one worker for the process, started when first needed


def default_renderer() -> RenderPool:
    """The process's render worker (shared by every application of the process)."""
    global _renderer
    if _renderer is None:
        _renderer = RenderPool()
    return _renderer


def _params(request: web.Request, query: dict) -> tuple[str, str]:
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in ("format", "table"):
            raise Refusal(400, "unknown_field", f"unknown query parameter {key[:64]!r}", field=key[:64])
        if key in params:
            raise Refusal(400, "invalid_value", f"{key} is given twice", field=key)
        params[key] = value[:64]
    query["params"] = params
    fmt = params.get("format", "json")
    if fmt not in FORMATS:
        raise Refusal(400, "invalid_value", f"format must be one of {', '.join(FORMATS)}",
                      field="format")
    table = params.get("table", "")
    if bool(table) != (fmt == "csv"):
        raise Refusal(400, "invalid_value", "table is given with format=csv, and only then",
                      field="table")
    return fmt, table


async def _render(report: Report, fmt: str, table: str, config: ReportConfig,
                  renderer: RenderPool) -> tuple[bytes, list[str]]:
    """(body, field paths for the audit)."""
    if fmt == "json":
        doc = report.to_json()
        return json.dumps(doc, ensure_ascii=False).encode(), sorted(doc)
    if fmt == "csv":
        from detector.report.csvout import table_csv
        try:
            t = report.table(table)
        except KeyError:
            raise Refusal(404, "no_table", f"no table {table!r} (tables: "
                          f"{', '.join(t.name for t in report.tables)})") from None
        return table_csv(t).encode(), [f"{table}.csv"]
    try:
        body = await renderer.render(fmt, report, config.top_channels)
    except RenderBusy:
        raise Refusal(503, "render_busy", "too many reports are being rendered; retry later",
                      {"Retry-After": str(RETRY_RENDER_S)}) from None
    return body, [f"report-{report.month}.{fmt}"]


def report_routes(config: ReportConfig = ReportConfig(),
                  renderer: RenderPool | None = None) -> web.RouteTableDef:
    """The report route, for ``make_app(..., routes=[...])``; documents are rendered by
    ``renderer`` (by default the process's worker, :func:`default_renderer`), started here."""
    routes = web.RouteTableDef()
    renderer = renderer or default_renderer()
    renderer.start()

    async def answer(request: web.Request, caller: Caller, query: dict,
                     pool: asyncpg.Pool) -> Answer:
        month = request.match_info["month"][:16]
        query["month"] = month
        fmt, table = _params(request, query)
        try:
            parse_month(month)
        except ReportError as e:
            raise Refusal(400, "invalid_value", str(e), field="month") from None
        report = await gather(pool, month, config)
        body, fields = await _render(report, fmt, table, config, renderer)
        headers = {"Cache-Control": "no-store"}
        if fmt != "json":
            name = f"{table}-{month}.csv" if fmt == "csv" else f"report-{month}.{fmt}"
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return Answer(web.Response(body=body, headers=headers,
                                   content_type=FORMATS[fmt].split(";")[0],
                                   charset="utf-8" if fmt in ("json", "csv") else None),
                      body, tuple(fields))

    # the report takes its own read-only snapshot, so it is not run in the audit's transaction
    routes.get("/v1/reports/{month}")(audited_handler(
        "reports.get", REPORT_ROLES, answer, render=as_answer,
        forbidden="may not read the monthly report", in_transaction=False))
    return routes
