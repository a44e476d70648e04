"""Status callbacks: the platform reports what became of a request.

``POST /v1/verification/status`` (mounted by the API through :func:`status_routes`), signed
like the requests (``X-Goipwatch-Timestamp``, ``X-Goipwatch-Signature``), body::

    {"request_id": "<uuid>", "outcome": "reverified|failed|suspended|police_confirmed",
     "time": "2026-10-05T08:30:00Z", "note": "optional, at most 500 characters"}

Each outcome is stored once (``verification_outcomes``; a repeated callback is answered 200
with ``"duplicate": true``), appended to the history of the flags of the request's lines,
and recorded as a label for the detection feedback loop: ``feedback`` with actor
``platform``, verdict ``confirm`` for ``failed``, ``suspended`` and ``police_confirmed``,
``dismiss`` for ``reverified`` (the holder passed re-verification); the flags' status
follows (``confirmed`` / ``dismissed``) as for an analyst's verdict.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from detector.verify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_problem

OUTCOMES = {"reverified": "dismiss", "failed": "confirm", "suspended": "confirm",
            "police_confirmed": "confirm"}
MAX_BODY = 16384
ROUTE = "/v1/verification/status"
PROBLEM_TYPE = "urn:goipwatch:problem:"  # as detector/api


def problem(status: int, slug: str, title: str, detail: str = "") -> tuple[int, dict]:
    out = {"type": PROBLEM_TYPE + slug, "title": title, "status": status, "reason": slug}
    if detail:
        out["detail"] = detail
    return status, out


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if name in headers:
        return headers[name]
    low = name.lower()
    return next((v for k, v in headers.items() if k.lower() == low), None)


def _parse_time(value) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC) if 0 < value < 1e11 else None
    if isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo is not None else None
    return None


# (connection in the outcome's transaction, HTTP status, JSON body) -> None; raising rolls
# the outcome back
OnOutcome = Callable[[asyncpg.Connection, int, dict], Awaitable[None]]
_RequestKey = getattr(web, "RequestKey", None)   # aiohttp >= 3.12; plain strings before
# set on a request by whoever mounts the route (the API, to audit the callback)
ON_OUTCOME = _RequestKey("verification_on_outcome", object) if _RequestKey else "verification_on_outcome"


async def handle_status(pool: asyncpg.Pool, secret: bytes | str, headers: Mapping[str, str],
                        body: bytes, now: float | None = None, max_skew_s: float = 300.0,
                        on_outcome: OnOutcome | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON body) for one status callback; errors as problem details.

    ``on_outcome`` is awaited with the answer inside the transaction that stores the
    outcome, for every answer the store decides (applied, duplicate, unknown request): what
    it writes commits with the outcome, and when it raises the outcome is not stored (the
    platform, answered an error, sends it again)."""
    now = time.time() if now is None else now
    if len(body) > MAX_BODY:
        return problem(413, "body_too_large", "body too large", f"at most {MAX_BODY} bytes")
    why = signature_problem(secret, _header(headers, TIMESTAMP_HEADER), body,
                            _header(headers, SIGNATURE_HEADER), now, max_skew_s)
    if why is not None:
        return problem(401, "bad_signature", "signature refused", why)
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return problem(400, "malformed_body", "malformed body", "the body is not JSON")
    if not isinstance(doc, dict):
        return problem(400, "malformed_body", "malformed body", "the body must be a JSON object")
    try:
        request_id = uuid.UUID(str(doc.get("request_id", "")))
    except ValueError:
        return problem(400, "malformed_body", "malformed body", "request_id must be a UUID")
    outcome = doc.get("outcome")
    if outcome not in OUTCOMES:
        return problem(400, "malformed_body", "malformed body",
                       f"outcome must be one of {', '.join(OUTCOMES)}")
    at = _parse_time(doc.get("time"))
    if at is None:
        return problem(400, "malformed_body", "malformed body",
                       "time must be an ISO 8601 time with a zone, or epoch seconds")
    note = doc.get("note", "")
    if not isinstance(note, str) or len(note) > 500:
        return problem(400, "malformed_body", "malformed body", "note must be a string of at most 500 characters")

    async with pool.acquire() as conn, conn.transaction():
        answer = await _apply(conn, request_id, outcome, at, note)
        if on_outcome is not None:       # say, its audit row: committed with the outcome
            await on_outcome(conn, *answer)
    return answer


async def _apply(conn: asyncpg.Connection, request_id: uuid.UUID, outcome: str, at: datetime,
                 note: str) -> tuple[int, dict]:
    """Store one outcome on ``conn`` (inside the caller's transaction); the answer."""
    req = await conn.fetchrow("SELECT request_id, action, flag_id, body FROM verification_outbox "
                              "WHERE request_id = $1", request_id)
    if req is None:
        return problem(404, "unknown_request", "unknown request", "no such request_id")
    new = await conn.fetchval(
        "INSERT INTO verification_outcomes (request_id, outcome, outcome_at, detail) "
        "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (request_id, outcome) DO NOTHING RETURNING id",
        request_id, outcome, at, json.dumps({"note": note} if note else {}))
    if new is None:
        return 200, {"request_id": str(request_id), "outcome": outcome, "duplicate": True}
    lines = [int(x["imsi"]) for x in json.loads(req["body"]).get("lines", []) if x.get("imsi")]
    verdict = OUTCOMES[outcome]
    status = {"confirm": "confirmed", "dismiss": "dismissed"}[verdict]
    flags = await conn.fetch(
        "UPDATE flags SET status = $2 WHERE imsi = ANY($1::bigint[]) OR id = $3 RETURNING id, imsi",
        lines, status, req["flag_id"])
    detail = json.dumps({"request_id": str(request_id), "action": req["action"], "outcome": outcome})
    await conn.executemany(
        "INSERT INTO flag_history (flag_id, event, event_time, actor, detail) "
        "VALUES ($1, $2, $3, 'platform', $4::jsonb)",
        [(r["id"], f"verification_{outcome}", at, detail) for r in flags])
    imsis = sorted({r["imsi"] for r in flags})
    fb_note = f"platform: {outcome} ({req['action']} request {request_id})"
    await conn.executemany(
        "INSERT INTO feedback (imsi, verdict, actor, note) VALUES ($1, $2, 'platform', $3)",
        [(i, verdict, fb_note) for i in imsis])
    return 200, {"request_id": str(request_id), "outcome": outcome, "duplicate": False,
                 "flags": len(flags), "label": verdict}


def status_routes(pool: asyncpg.Pool, secret: bytes | str, max_skew_s: float = 300.0,
                  path: str = ROUTE) -> web.RouteTableDef:
    """The callback route, for ``app.add_routes(...)``."""
    routes = web.RouteTableDef()

    @routes.post(path)
    async def status(request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY + 1)
        code, doc = await handle_status(pool, secret, request.headers, body, max_skew_s=max_skew_s,
                                        on_outcome=request.get(ON_OUTCOME))
        ctype = "application/json" if code < 400 else "application/problem+json"
        return web.json_response(doc, status=code, content_type=ctype)

    return routes
