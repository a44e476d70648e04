"""The monthly report over the API: ``GET /v1/reports/{month}`` for the regulator
(and admin) role.

``?format=json`` (default) answers every table with its columns' units and definitions, the
definitions and the data coverage; ``format=xlsx`` and ``format=pdf`` the workbook and the
document; ``format=csv&table=NAME`` one table. Regulators see aggregates only: the report holds
no subscriber identifier. Every request, answered or refused, is audited like a lookup
(action ``reports.get``, the month and format as its query, the SHA-256 of the body sent); an
answer that cannot be audited is not sent.

The report is gathered and made in a worker process (:mod:`detector.report.worker`) with a
connection of its own, never on the event loop that answers the lookups; when reports are
queued to the bound already, one more is refused with 503 ``render_busy`` and
``Retry-After``.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from detector.api.kit import Refusal
from detector.api.audited import Answer, Caller, as_answer, audited_handler
from detector.report import ReportConfig, ReportError, parse_month
from detector.report.worker import NoTable, RenderBusy, RenderPool

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


async def _made(renderer: RenderPool, dsn: str, month: str, config: ReportConfig, fmt: str,
                table: str) -> tuple[bytes, list[str]]:
    """(body, field paths for the audit), from the worker."""
    try:
        return await renderer.make(dsn, month, config, fmt, table)
    except NoTable as e:
        raise Refusal(404, "no_table", str(e)) from None
    except RenderBusy:
        raise Refusal(503, "render_busy", "too many reports are being made; retry later",
                      {"Retry-After": str(RETRY_RENDER_S)}) from None


def report_routes(dsn: str, config: ReportConfig = ReportConfig(),
                  renderer: RenderPool | None = None) -> web.RouteTableDef:
    """The report route, for ``make_app(..., routes=[...])``; reports are made from the store
    at ``dsn`` (the API's own) by ``renderer`` (by default the process's worker,
    :func:`default_renderer`), started here."""
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
        body, fields = await _made(renderer, dsn, month, config, fmt, table)
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
