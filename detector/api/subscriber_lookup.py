"""``POST /v1/lookups``: a subscriber lookup by the police (or an analyst, a regulator, an
admin, each seeing their role's sections), checked in the documented order and audited
whether answered or refused; an answer that cannot be audited is not sent. Its latency goes
to ``/metrics`` by HTTP status (nothing of the query).

The subscriber record itself comes from :mod:`detector.api.lookup`; this module is the HTTP
side. Evidence features are answered with their units (:mod:`detector.features.catalog`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from detector import ids
from detector.api import audit, lookup
from detector.api.auth import Identity
from detector.api.grounds import GroundsError, GroundsPolicy
from detector.api.kit import (
    AUDIT,
    CONFIG,
    EVENT_CLOCK,
    GROUNDS,
    LOCKED_OUT,
    POOL,
    PRINTABLE_TEXT,
    PROBLEM,
    REQUEST_ID,
    Refusal,
    append_quietly,
    authenticate_into,
    json_body,
    log,
    problem_body,
    remote_of,
)
from detector.api.units import with_units
from detector.metrics import LOOKUP_SECONDS

LOOKUP_FIELDS = {"number": str, "number_type": str, "case_ref": str, "legal_basis": str,
                 "officer": str}
# the order in which a lookup's fields are checked, so that a missing one is named as documented
LOOKUP_CHECK_ORDER = ("case_ref", "legal_basis", "officer", "number", "number_type")


def _validate_lookup(body: Any, who: Identity, grounds: GroundsPolicy) -> dict[str, str]:
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - set(LOOKUP_FIELDS))
    if unknown:
        raise Refusal(400, "unknown_field", f"unknown field {unknown[0][:64]!r}", field=unknown[0][:64])
    required = list(LOOKUP_CHECK_ORDER)
    if not grounds.officer_required(who):
        required.remove("officer")          # a personal certificate names its officer
    for name in LOOKUP_CHECK_ORDER:
        value = body.get(name)
        if name in required and (value is None or (isinstance(value, str) and not value.strip())):
            raise Refusal(400, f"missing_{name}", f"{name} is required", field=name)
        if value is not None and not isinstance(value, str):
            raise Refusal(400, "invalid_type", f"{name} must be a string", field=name)
    for name in ("case_ref", "legal_basis", "officer"):
        value = body.get(name) or ""
        if value and not PRINTABLE_TEXT.fullmatch(value.strip()):
            raise Refusal(400, "invalid_value",
                          f"{name} must be 1-200 printable characters", field=name)
    if body["number_type"] not in lookup.NUMBER_TYPES:
        raise Refusal(400, "invalid_number_type",
                      f"number_type must be one of {', '.join(lookup.NUMBER_TYPES)}",
                      field="number_type")
    try:
        number = lookup.normalise_number(body["number_type"], body["number"][:64])
    except ids.InvalidIdentifier as e:
        raise Refusal(400, "invalid_number", f"number: {e.why}", field="number") from None
    try:
        g = grounds.check(who, body["case_ref"], body["legal_basis"], body.get("officer") or "")
    except GroundsError as e:
        raise Refusal(e.status, e.reason, e.detail, field=e.field) from None
    return {"number_type": body["number_type"], "number": number, "case_ref": g.case_ref,
            "legal_basis": g.legal_basis, "officer": g.officer}


def _text_of(body: Any, key: str) -> str:
    """A request field as recorded in the audit even when the request is refused."""
    if isinstance(body, dict) and isinstance(body.get(key), str):
        return body[key][:200].replace("\x00", "\ufffd")     # the store refuses NUL
    return ""



def _record_asked(entry: dict[str, Any], body: Any) -> None:
    """What a lookup asked, in its audit ``entry`` (refused or not)."""
    entry.update(case_ref=_text_of(body, "case_ref"), legal_basis=_text_of(body, "legal_basis"),
                 officer=_text_of(body, "officer"),
                 query={"number_type": _text_of(body, "number_type"),
                        "number": _text_of(body, "number")[:64]})


async def _body_quietly(request: web.Request) -> Any:
    """The JSON body of a request refused before it was read, for its audit row; None."""
    try:
        if request.content_type == "application/json" and request.can_read_body:
            return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError, web.HTTPException):
        pass
    return None


async def _date_by_event_time(app: web.Application, entry: dict[str, Any]) -> None:
    """Add the store's event time to the audit row's query (``event_time``): the report
    dates a lookup by it (:mod:`detector.api.event_clock`)."""
    at = await app[EVENT_CLOCK].now()
    if at is not None:
        entry["query"] = {**entry.get("query", {}), "event_time": lookup.iso(at)}


async def _answer(request: web.Request, who: Identity, q: dict[str, str], found: lookup.Found,
                  entry: dict[str, Any], ticket: audit.Coming) -> web.Response:
    """The answer to a lookup that found subscribers, sent once its audit row is committed."""
    app = request.app
    answer = {
        "request_id": request[REQUEST_ID], "case_ref": q["case_ref"],
        "number_type": q["number_type"], "number": q["number"], "role": who.role,
        "answered_at": lookup.iso(datetime.now(UTC)),
        "subscribers": [with_units(lookup.project(s, who.role)) for s in found.subscribers],
        "truncated": found.truncated,
    }
    raw = json.dumps(answer, ensure_ascii=False).encode()
    await _date_by_event_time(app, entry)
    entry.update(status=200, outcome="answered", reason="",
                 fields=tuple(lookup.field_paths(answer)), answer_sha256=audit.digest(raw))
    try:
        await app[AUDIT].append(audit.AuditEntry(**entry), ticket=ticket)
    except (OSError, asyncpg.PostgresError):
        log.exception("audit append failed; answer withheld",
                      extra={"request_id": request[REQUEST_ID]})
        raise Refusal(503, "audit_unavailable",
                      "the lookup could not be audited, so it is not answered") from None
    return web.Response(body=raw, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def post_lookup(request: web.Request) -> web.Response:
    """Checks in the documented order: credential (401), rate limit (429), role (403), body
    (415, 413, 400), the grounds (400, 403), the lookup (404, 200)."""
    app = request.app
    entry: dict[str, Any] = {"request_id": request[REQUEST_ID], "action": "lookup",
                             "remote": remote_of(request)}
    body: Any = None
    try:
        who = await authenticate_into(request, entry)
        if not lookup.ROLE_SECTIONS[who.role]:
            _record_asked(entry, await _body_quietly(request))
            raise Refusal(403, "role_forbidden",
                          f"the role {who.role!r} may not look up subscribers")
        try:
            body = await json_body(request)
        finally:
            _record_asked(entry, body)
        q = _validate_lookup(body, who, app[GROUNDS])
        entry.update(query={"number_type": q["number_type"], "number": q["number"]},
                     case_ref=q["case_ref"], legal_basis=q["legal_basis"], officer=q["officer"])
        with app[AUDIT].coming() as ticket:     # concurrent lookups share an audit commit
            async with app[POOL].acquire() as conn:
                found = await lookup.find(conn, q["number_type"], q["number"],
                                          app[CONFIG].max_subscribers)
            if not found.subscribers:
                raise Refusal(404, "no_subscriber", "the store holds nothing on this number")
            return await _answer(request, who, q, found, entry, ticket)
    except Refusal as r:
        if r.reason == "audit_unavailable":
            raise
        raw = problem_body(r.status, r.reason, r.detail, request[REQUEST_ID], **r.extra)
        if r.reason != LOCKED_OUT:     # a lockout is audited once, not each refusal
            await _date_by_event_time(app, entry)
            entry.update(status=r.status, outcome="not_found" if r.status == 404 else "refused",
                         reason=r.reason, fields=(), answer_sha256=audit.digest(raw))
            await append_quietly(app, entry)
        return web.Response(status=r.status, body=raw, content_type=PROBLEM, headers=r.headers)


async def timed_lookup(request: web.Request) -> web.Response:
    """A lookup, its latency observed for /metrics by HTTP status (nothing of the query)."""
    started = time.perf_counter()
    status = "error"
    try:
        response = await post_lookup(request)
        status = str(response.status)
        return response
    except web.HTTPException as e:
        status = str(e.status)
        raise
    finally:
        LOOKUP_SECONDS.observe(time.perf_counter() - started, status=status)


