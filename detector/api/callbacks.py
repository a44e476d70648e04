"""The platform's status callbacks (``POST /v1/verification/status``, mounted from
:mod:`detector.verify.status`) as seen by the API: each one audited (action
``verification.status``), and its errors in the API's problem format (``type``, ``title``,
``status``, ``reason``, ``detail``, and the request id as ``instance`` and in
``X-Request-Id``).

The callback is authenticated by its HMAC signature, not by a credential of the API, so its
row has ``auth = "signature"`` (``"none"`` when the signature was refused) and the client
``platform``. An outcome and its audit row are written in one transaction: the row is
appended inside the transaction that stores the outcome, so neither commits without the
other, and when the row cannot be appended nothing is stored and the platform is answered
``503 audit_unavailable`` (it sends the callback again). A callback refused before the store
is touched (bad signature, malformed body) has its row appended on its own; its failure is
only logged (the refusal changed nothing). A refused signature counts as a failed
authentication of the source address (:mod:`detector.api.lockout`); a locked-out address
gets ``429 too_many_failures`` before its callback is looked at.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiohttp import web

from detector.api import audit
from detector.api.kit import (
    AUDIT,
    GUARD,
    PROBLEM,
    REQUEST_ID,
    Refusal,
    append_quietly,
    audit_lockout,
    check_not_locked,
    log,
    problem_body,
    remote_of,
    scrub_text,
)
from detector.verify.status import ON_OUTCOME, ROUTE


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def _answer(request: web.Request, status: int, doc: dict) -> tuple[bytes, str]:
    """(body, content type) of a callback's answer: the document itself, or an error in
    the API's problem format."""
    if status < 400:
        return json.dumps(doc).encode(), "application/json"
    reason = str(doc.get("reason", f"http_{status}"))
    return (problem_body(status, reason, str(doc.get("detail") or doc.get("title") or reason),
                         request[REQUEST_ID]), PROBLEM)


def _entry(request: web.Request, status: int, doc: dict, raw: bytes) -> dict[str, Any]:
    """The audit row's fields of a callback answered ``status`` with ``raw``."""
    query: dict[str, Any] = {"method": "POST", "path": request.path[:200]}
    for key in ("request_id", "outcome", "duplicate", "flags", "label"):
        if key in doc:
            query[key] = doc[key] if isinstance(doc[key], (bool, int)) else str(doc[key])[:64]
    return {"request_id": request[REQUEST_ID], "action": "verification.status",
            "client_id": "platform" if status != 401 else "", "identity": "", "role": "",
            "auth": "signature" if status != 401 else "none", "remote": remote_of(request),
            "query": scrub_text(query), "status": status,
            "outcome": "applied" if status < 400 else ("not_found" if status == 404 else "refused"),
            "reason": "" if status < 400 else str(doc.get("reason", "")), "fields": (),
            "answer_sha256": audit.digest(raw)}


class _AuditFailed(Exception):
    pass


@web.middleware
async def audited_callbacks(request: web.Request, handler):
    if request.method != "POST" or _route_of(request) != ROUTE:
        return await handler(request)
    check_not_locked(request)         # raises 429, answered by the envelope
    app = request.app
    sent: dict[str, Any] = {}         # the answer audited in the outcome's transaction

    async def in_transaction(conn: asyncpg.Connection, status: int, doc: dict) -> None:
        raw, ctype = _answer(request, status, doc)
        sent.update(status=status, raw=raw, ctype=ctype)
        try:
            await app[AUDIT].append(audit.AuditEntry(**_entry(request, status, doc, raw)), conn=conn)
        except (OSError, asyncpg.PostgresError) as e:
            raise _AuditFailed() from e

    request[ON_OUTCOME] = in_transaction
    try:
        response = await handler(request)
    except _AuditFailed:
        app[AUDIT].forget()
        log.exception("audit append failed; callback not applied",
                      extra={"request_id": request[REQUEST_ID]})
        raise Refusal(503, "audit_unavailable", "the callback could not be audited, so its "
                      "outcome is not stored; send it again") from None
    except BaseException:
        if sent:
            app[AUDIT].forget()       # an append of a rolled-back transaction is gone
        raise
    if sent:                          # answered exactly as audited
        return web.Response(status=sent["status"], body=sent["raw"], content_type=sent["ctype"])
    raw = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
    try:
        doc: Any = json.loads(raw) if raw else {}
    except ValueError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    status = response.status
    raw, ctype = _answer(request, status, doc)
    if status == 401:
        for lockout in app[GUARD].failed(remote_of(request)):
            await audit_lockout(request, lockout)
    await append_quietly(app, _entry(request, status, doc, raw))
    return web.Response(status=status, body=raw, content_type=ctype)
