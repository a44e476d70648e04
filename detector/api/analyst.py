"""The analysts' endpoints (issue 6 part 3): open flags, rigs, a SIM's timeline, verdicts on
flags, allow-list entries and the verification outbox.

Analysts and admins only (police and regulators: 403; requeueing dead letters: admin only).
Every request, answered or refused, is appended to the audit log like a lookup: who (client,
identity, role), when, the action and its parameters, the status and outcome, the field paths
answered and the SHA-256 of the body sent. A request runs in one transaction with its audit
row: an action (a verdict, an allow-list entry, a requeue) is only committed together with
the row that records it, and when the row cannot be appended nothing is changed or answered
(``503 audit_unavailable``).

What the endpoints read comes from :mod:`detector.api.queries` (shared with the console);
this module is their HTTP side: parameters, refusals, the audit.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from detector import feedback, ids
from detector.api import queries
from detector.api.audited import Caller, OnConnection, audited_handler
from detector.api.auth import Identity
from detector.api.kit import MAX_NOTE, NOTE_TEXT, PRINTABLE_TEXT, Refusal, actor_of, json_body
from detector.verify import outbox

ANALYSTS = frozenset({"analyst", "admin"})
ADMINS = frozenset({"admin"})
FLAG_STATUSES = ("open", "confirmed", "dismissed", "any")
MAX_LIMIT = 1000

Handler = Callable[[web.Request, Identity, dict, asyncpg.Connection], Awaitable[Any]]


def audited(action: str, roles: frozenset[str], handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``handler`` behind authentication, the role check and the audit
    (:func:`detector.api.audited.audited_handler`).

    ``handler(request, who, query, conn)`` records the request's parameters in ``query`` (as
    soon as they are known, so refusals keep them) and returns the answer's JSON document; it
    runs inside a transaction on ``conn`` that also holds the audit row."""

    async def with_identity(request: web.Request, caller: Caller, query: dict,
                            conn: asyncpg.Connection) -> Any:
        return await handler(request, caller.who, query, conn)

    return audited_handler(action, roles, with_identity)


# ---- input --------------------------------------------------------------------------------

def _params(request: web.Request, known: tuple[str, ...], query: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in known:
            raise Refusal(400, "unknown_field", f"unknown query parameter {key[:64]!r}",
                          field=key[:64])
        if key in out:
            raise Refusal(400, "invalid_value", f"{key} is given twice", field=key)
        out[key] = value
    query["params"] = {k: v[:64] for k, v in out.items()}
    return out


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise Refusal(400, "invalid_value", f"{name} must be an integer 1..{MAX_LIMIT}", field=name)
    return int(text)


def _imsi(text: str) -> str:
    try:
        return ids.parse_imsi(text[:64]).digits
    except ids.InvalidIdentifier as e:
        raise Refusal(400, "invalid_number", f"imsi: {e.why}", field="imsi") from None


async def _object(request: web.Request, fields: dict[str, type], required: tuple[str, ...],
                  empty_ok: bool = False) -> dict[str, Any]:
    """The JSON object of the body: known fields of the right types, required ones present."""
    if empty_ok and not request.can_read_body:
        return {}
    body = await json_body(request)
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise Refusal(400, "unknown_field", f"unknown field {unknown[0][:64]!r}", field=unknown[0][:64])
    for name in required:
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise Refusal(400, f"missing_{name}", f"{name} is required", field=name)
    for name, kind in fields.items():
        if name in body and not isinstance(body[name], kind):
            raise Refusal(400, "invalid_type", f"{name} must be {_KIND_NAMES[kind]}", field=name)
    return body


_KIND_NAMES = {str: "a string", list: "an array"}


# ---- flags, rigs, timeline -----------------------------------------------------------------

async def list_flags(request: web.Request, who: Identity, query: dict,
                     conn: asyncpg.Connection) -> dict:
    params = _params(request, ("status", "limit"), query)
    status = params.get("status", "open")
    if status not in FLAG_STATUSES:
        raise Refusal(400, "invalid_value", f"status must be one of {', '.join(FLAG_STATUSES)}",
                      field="status")
    return await queries.flags_by_status(conn, status, _int_param(params, "limit", 100))


async def list_rigs(request: web.Request, who: Identity, query: dict,
                    conn: asyncpg.Connection) -> dict:
    limit = _int_param(_params(request, ("limit",), query), "limit", 100)
    return await queries.rigs_newest(conn, limit)


async def get_rig(request: web.Request, who: Identity, query: dict,
                  conn: asyncpg.Connection) -> dict:
    _params(request, (), query)
    rig_id = request.match_info["id"][:128]
    query["rig_id"] = rig_id
    if not PRINTABLE_TEXT.fullmatch(rig_id):
        raise Refusal(404, "no_rig", "the store holds no rig with this id")
    found = await queries.rig_with_flags(conn, rig_id)
    if found is None:
        raise Refusal(404, "no_rig", "the store holds no rig with this id")
    return found


async def sim_timeline(request: web.Request, who: Identity, query: dict,
                       conn: asyncpg.Connection) -> dict:
    _params(request, (), query)
    query["imsi"] = request.match_info["imsi"][:64]
    imsi = _imsi(request.match_info["imsi"])
    query["imsi"] = imsi
    found = await queries.sim_events(conn, imsi)
    if found is None:
        raise Refusal(404, "no_flag", "the store holds no flag, feedback or verification for this SIM")
    return found


# ---- actions ------------------------------------------------------------------------------

async def post_verdict(request: web.Request, who: Identity, query: dict,
                       conn: asyncpg.Connection) -> dict:
    query["imsi"] = request.match_info["imsi"][:64]
    imsi = _imsi(request.match_info["imsi"])
    query["imsi"] = imsi
    body = await _object(request, {"verdict": str, "note": str}, ("verdict",))
    query.update(verdict=body["verdict"][:32], note=body.get("note", "")[:200])
    if body["verdict"] not in ("confirm", "dismiss"):
        raise Refusal(400, "invalid_value", "verdict must be confirm or dismiss", field="verdict")
    note = body.get("note", "")
    if len(note) > MAX_NOTE or not NOTE_TEXT.fullmatch(note):
        raise Refusal(400, "invalid_value",
                      f"note must be at most {MAX_NOTE} printable characters", field="note")
    try:
        n = await feedback.judge(OnConnection(conn), imsi, body["verdict"], actor_of(who), note)
    except feedback.FeedbackError:
        raise Refusal(404, "no_flag", "the store holds no flag for this SIM") from None
    status = {"confirm": "confirmed", "dismiss": "dismissed"}[body["verdict"]]
    return {"imsi": imsi, "verdict": body["verdict"], "status": status, "flags": n,
            "actor": actor_of(who)}


async def post_allowlist(request: web.Request, who: Identity, query: dict,
                         conn: asyncpg.Connection) -> dict:
    body = await _object(request, {"kind": str, "value": str, "reason": str},
                         ("kind", "value", "reason"))
    query.update(kind=body["kind"][:32], value=body["value"][:128], reason=body["reason"][:200])
    if body["kind"] not in feedback.ALLOW_KINDS:
        raise Refusal(400, "invalid_value",
                      f"kind must be one of {', '.join(feedback.ALLOW_KINDS)}", field="kind")
    reason = body["reason"].strip()
    if not PRINTABLE_TEXT.fullmatch(reason):
        raise Refusal(400, "invalid_value", "reason must be 1-200 printable characters",
                      field="reason")
    try:
        value = feedback.normalise(body["kind"], body["value"][:200])
    except feedback.FeedbackError as e:
        raise Refusal(400, "invalid_value", f"value: {e}", field="value") from None
    query["value"] = value
    await feedback.allow(OnConnection(conn), body["kind"], value, reason, actor_of(who))
    return {"kind": body["kind"], "value": value, "reason": reason, "actor": actor_of(who)}


# ---- the verification outbox ---------------------------------------------------------------

async def get_outbox(request: web.Request, who: Identity, query: dict,
                     conn: asyncpg.Connection) -> dict:
    dead_limit = _int_param(_params(request, ("dead_limit",), query), "dead_limit", 20)
    return await outbox.outbox_summary(OnConnection(conn), dead_limit)


async def post_requeue(request: web.Request, who: Identity, query: dict,
                       conn: asyncpg.Connection) -> dict:
    body = await _object(request, {"request_ids": list}, (), empty_ok=True)
    given = body.get("request_ids")
    request_ids = None
    if given is not None:
        if len(given) > MAX_LIMIT:
            raise Refusal(400, "invalid_value", f"at most {MAX_LIMIT} request_ids",
                          field="request_ids")
        try:
            request_ids = [str(uuid.UUID(x)) for x in given if isinstance(x, str)]
        except ValueError:
            request_ids = None
        if request_ids is None or len(request_ids) != len(given):
            raise Refusal(400, "invalid_value", "request_ids must be UUID strings",
                          field="request_ids")
    query["request_ids"] = request_ids if request_ids is not None else "all"
    n = await outbox.requeue_dead(OnConnection(conn), request_ids)
    return {"requeued": n}


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/flags", audited("flags.list", ANALYSTS, list_flags))
    r.add_post("/v1/flags/{imsi}/verdict", audited("flags.verdict", ANALYSTS, post_verdict))
    r.add_get("/v1/rigs", audited("rigs.list", ANALYSTS, list_rigs))
    r.add_get("/v1/rigs/{id}", audited("rigs.get", ANALYSTS, get_rig))
    r.add_get("/v1/sims/{imsi}/timeline", audited("sims.timeline", ANALYSTS, sim_timeline))
    r.add_post("/v1/allowlist", audited("allowlist.add", ANALYSTS, post_allowlist))
    r.add_get("/v1/outbox", audited("outbox.summary", ANALYSTS, get_outbox))
    r.add_post("/v1/outbox/requeue", audited("outbox.requeue", ADMINS, post_requeue))
