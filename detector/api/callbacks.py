"""The platform's status callbacks (``POST /v1/verification/status``, mounted from
:mod:`detector.verify.status`) as seen by the API: each one audited (action
``verification.status``), and its errors in the API's problem format (with the request id as
``instance``).

The callback is authenticated by its HMAC signature, not by a credential of the API, so its
row has ``auth = "signature"`` (``"none"`` when the signature was refused) and the client
``platform``. Its outcome is committed by the callback's own transaction before the row is
appended: a row that cannot be appended is logged, the outcome stays recorded. A refused
signature counts as a failed authentication of the source address
(:mod:`detector.api.lockout`); a locked-out address gets ``429 too_many_failures`` before its
callback is looked at.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from detector.api import audit
from detector.api.kit import (
    GUARD,
    PROBLEM,
    REQUEST_ID,
    append_quietly,
    audit_lockout,
    check_not_locked,
    problem_body,
    remote_of,
    scrub_text,
)
from detector.verify.status import ROUTE


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


@web.middleware
async def audited_callbacks(request: web.Request, handler):
    if request.method != "POST" or _route_of(request) != ROUTE:
        return await handler(request)
    check_not_locked(request)         # raises 429, answered by the envelope
    response = await handler(request)
    raw = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
    try:
        doc: Any = json.loads(raw) if raw else {}
    except ValueError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    status = response.status
    if status >= 400:
        reason = str(doc.get("reason", f"http_{status}"))
        raw = problem_body(status, reason, str(doc.get("detail") or doc.get("title") or reason),
                           request[REQUEST_ID])
        response = web.Response(status=status, body=raw, content_type=PROBLEM)
    if status == 401:
        for lockout in request.app[GUARD].failed(remote_of(request)):
            await audit_lockout(request, lockout)
    query = {"method": "POST", "path": request.path[:200]}
    for key in ("request_id", "outcome", "duplicate", "flags", "label"):
        if key in doc:
            query[key] = doc[key] if isinstance(doc[key], (bool, int)) else str(doc[key])[:64]
    await append_quietly(request.app, {
        "request_id": request[REQUEST_ID], "action": "verification.status",
        "client_id": "platform" if status != 401 else "", "identity": "",
        "role": "", "auth": "signature" if status != 401 else "none",
        "remote": remote_of(request), "query": scrub_text(query), "status": status,
        "outcome": "applied" if status < 400 else ("not_found" if status == 404 else "refused"),
        "reason": "" if status < 400 else str(doc.get("reason", "")),
        "fields": (), "answer_sha256": audit.digest(raw)})
    return response
