"""The analysts' endpoints (issue 6 part 3): open flags, rigs, a SIM's timeline, verdicts on
flags, allow-list entries and the verification outbox.

Analysts and admins only (police and regulators: 403; requeueing dead letters: admin only).
Every request, answered or refused, is appended to the audit log like a lookup: who (client,
identity, role), when, the action and its parameters, the status and outcome, the field paths
answered and the SHA-256 of the body sent. A request runs in one transaction with its audit
row: an action (a verdict, an allow-list entry, a requeue) is only committed together with
the row that records it, and when the row cannot be appended nothing is changed or answered
(``503 audit_unavailable``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from detector import feedback, ids
from detector.api import lookup
from detector.api.app import PRINTABLE_TEXT, Refusal, _json_body
from detector.api.audited import Caller, OnConnection, audited_handler
from detector.api.auth import Identity
from detector.verify import outbox

ANALYSTS = frozenset({"analyst", "admin"})
ADMINS = frozenset({"admin"})
FLAG_STATUSES = ("open", "confirmed", "dismissed", "any")
MAX_LIMIT = 1000
MAX_NOTE = 1000
NOTE_TEXT = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f]*")   # printable, newlines and tabs allowed

Handler = Callable[[web.Request, Identity, dict, asyncpg.Connection], Awaitable[Any]]


def actor_of(who: Identity) -> str:
    """How an API user is named in ``feedback``, ``allowlist`` and ``flag_history``."""
    return f"{who.identity} ({who.client_id})"


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
    body = await _json_body(request)
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
    limit = _int_param(params, "limit", 100)
    rows = await conn.fetch(
        "SELECT imsi, msisdn, kind, score, flagged_at, rig_id, reasons, status FROM flags "
        "WHERE $1 = 'any' OR status = $1 ORDER BY flagged_at DESC, id DESC LIMIT $2",
        status, limit + 1)
    return {"status": status, "truncated": len(rows) > limit,
            "flags": [{"imsi": ids.imsi_text(r["imsi"]),
                       "msisdn": ids.msisdn_text(r["msisdn"]) if r["msisdn"] else None,
                       **lookup.flag_doc(r)} for r in rows[:limit]]}


async def list_rigs(request: web.Request, who: Identity, query: dict,
                    conn: asyncpg.Connection) -> dict:
    limit = _int_param(_params(request, ("limit",), query), "limit", 100)
    return await rigs_newest(conn, limit)


async def rigs_newest(conn: asyncpg.Connection, limit: int) -> dict:
    """The ``limit`` rigs with the newest activity (the API's and the console's list)."""
    rows = await conn.fetch(
        "SELECT id, sims, members, devices, cells, first_at, last_at, evidence FROM rigs "
        "ORDER BY last_at DESC, id LIMIT $1", limit + 1)
    return {"truncated": len(rows) > limit, "rigs": [lookup.rig_doc(r) for r in rows[:limit]]}


async def rig_flags(conn: asyncpg.Connection, rig_ids: list[str]) -> dict[str, list[dict]]:
    """The flags of each rig (as answered), by rig id."""
    out: dict[str, list[dict]] = {i: [] for i in rig_ids}
    for f in await conn.fetch(
            "SELECT imsi, msisdn, kind, score, flagged_at, rig_id, reasons, status FROM flags "
            "WHERE rig_id = ANY($1::text[]) ORDER BY imsi, flagged_at, kind", rig_ids):
        out[f["rig_id"]].append({"imsi": ids.imsi_text(f["imsi"]),
                                 "msisdn": ids.msisdn_text(f["msisdn"]) if f["msisdn"] else None,
                                 **lookup.flag_doc(f)})
    return out


async def get_rig(request: web.Request, who: Identity, query: dict,
                  conn: asyncpg.Connection) -> dict:
    _params(request, (), query)
    rig_id = request.match_info["id"][:128]
    query["rig_id"] = rig_id
    if not PRINTABLE_TEXT.fullmatch(rig_id):
        raise Refusal(404, "no_rig", "the store holds no rig with this id")
    found = await rig_with_flags(conn, rig_id)
    if found is None:
        raise Refusal(404, "no_rig", "the store holds no rig with this id")
    return found


async def rig_summaries(conn: asyncpg.Connection, rig_ids: list[str],
                        top: int = 3) -> dict[str, dict[str, Any]]:
    """Per rig, from its flags: the highest score, the set of statuses and the reasons of its
    ``top`` highest-scored flags (aggregated in the store: a list of many big rigs stays cheap)."""
    rows = await conn.fetch(
        "SELECT rig_id, max(score) AS score, array_agg(DISTINCT status) AS statuses, "
        "(array_agg(reasons ORDER BY score DESC, id))[1:$2] AS reasons FROM flags "
        "WHERE rig_id = ANY($1::text[]) GROUP BY rig_id", rig_ids, top)
    return {r["rig_id"]: {"score": round(float(r["score"]), 4), "statuses": sorted(r["statuses"]),
                          "reasons": [json.loads(x) for x in r["reasons"]]} for r in rows}


async def rig_with_flags(conn: asyncpg.Connection, rig_id: str) -> dict | None:
    """A rig and its members' flags (as answered), or None."""
    r = await conn.fetchrow(
        "SELECT id, sims, members, devices, cells, first_at, last_at, evidence FROM rigs "
        "WHERE id = $1", rig_id)
    if r is None:
        return None
    return {"rig": lookup.rig_doc(r), "flags": (await rig_flags(conn, [rig_id]))[rig_id]}


async def sim_timeline(request: web.Request, who: Identity, query: dict,
                       conn: asyncpg.Connection) -> dict:
    _params(request, (), query)
    query["imsi"] = request.match_info["imsi"][:64]
    imsi = _imsi(request.match_info["imsi"])
    query["imsi"] = imsi
    found = await sim_events(conn, imsi)
    if found is None:
        raise Refusal(404, "no_flag", "the store holds no flag, feedback or verification for this SIM")
    return found


async def sim_events(conn: asyncpg.Connection, imsi: str) -> dict | None:
    """A SIM's flags and its events (flag history, verdicts, verification requests and
    outcomes) in time order; None when the store holds none of them."""
    n = int(imsi)
    events: list[tuple[Any, int, int, dict]] = []   # (time, source order, id, event)
    for r in await conn.fetch(
            "SELECT h.id, h.event, h.score, h.event_time, h.actor, h.detail, f.kind "
            "FROM flag_history h JOIN flags f ON f.id = h.flag_id WHERE f.imsi = $1", n):
        events.append((r["event_time"], 0, r["id"], {
            "at": lookup.iso(r["event_time"]), "source": "flag_history", "event": r["event"],
            "flag_kind": r["kind"],
            "score": round(float(r["score"]), 4) if r["score"] is not None else None,
            "actor": r["actor"], "detail": json.loads(r["detail"])}))
    for r in await conn.fetch(
            "SELECT id, verdict, actor, note, recorded_at FROM feedback WHERE imsi = $1", n):
        events.append((r["recorded_at"], 1, r["id"], {
            "at": lookup.iso(r["recorded_at"]), "source": "feedback", "event": r["verdict"],
            "actor": r["actor"], "note": r["note"]}))
    requests = await conn.fetch(
        "SELECT o.id, o.request_id, o.action, o.status, o.created_at, o.delivered_at "
        "FROM verification_outbox o WHERE o.line_imsi = $1 "
        "OR o.flag_id IN (SELECT id FROM flags WHERE imsi = $1) "
        "OR o.body->'lines' @> jsonb_build_array(jsonb_build_object('imsi', $2::text))",
        n, ids.imsi_text(n))
    for r in requests:
        events.append((r["created_at"], 2, r["id"], {
            "at": lookup.iso(r["created_at"]), "source": "verification",
            "event": "verification_requested", "request_id": str(r["request_id"]),
            "action": r["action"], "status": r["status"],
            "delivered_at": lookup.iso(r["delivered_at"])}))
    if requests:
        for r in await conn.fetch(
                "SELECT v.id, v.request_id, v.outcome, v.outcome_at, v.detail, o.action "
                "FROM verification_outcomes v JOIN verification_outbox o USING (request_id) "
                "WHERE v.request_id = ANY($1::uuid[])", [r["request_id"] for r in requests]):
            events.append((r["outcome_at"], 3, r["id"], {
                "at": lookup.iso(r["outcome_at"]), "source": "verification",
                "event": f"verification_{r['outcome']}", "request_id": str(r["request_id"]),
                "action": r["action"], "outcome": r["outcome"], "detail": json.loads(r["detail"])}))
    if not events:
        return None
    events.sort(key=lambda e: e[:3])
    flags = await conn.fetch(
        "SELECT imsi, msisdn, kind, score, flagged_at, rig_id, reasons, status FROM flags "
        "WHERE imsi = $1 ORDER BY flagged_at, kind", n)
    return {"imsi": imsi, "flags": [lookup.flag_doc(f) for f in flags],
            "events": [e[3] for e in events]}


async def sim_events_many(conn: asyncpg.Connection, imsis: list[str]) -> dict[str, dict]:
    """:func:`sim_events` of several SIMs (IMSI digits) in five queries instead of five per
    SIM, by IMSI; a SIM of which the store holds no event is left out."""
    names = {int(i): i for i in imsis}
    wanted = sorted(names)
    # per SIM: (time, source order, id, event)
    events: dict[int, list[tuple[Any, int, int, dict]]] = {n: [] for n in wanted}
    for r in await conn.fetch(
            "SELECT f.imsi, h.id, h.event, h.score, h.event_time, h.actor, h.detail, f.kind "
            "FROM flag_history h JOIN flags f ON f.id = h.flag_id "
            "WHERE f.imsi = ANY($1::bigint[])", wanted):
        events[r["imsi"]].append((r["event_time"], 0, r["id"], {
            "at": lookup.iso(r["event_time"]), "source": "flag_history", "event": r["event"],
            "flag_kind": r["kind"],
            "score": round(float(r["score"]), 4) if r["score"] is not None else None,
            "actor": r["actor"], "detail": json.loads(r["detail"])}))
    for r in await conn.fetch(
            "SELECT imsi, id, verdict, actor, note, recorded_at FROM feedback "
            "WHERE imsi = ANY($1::bigint[])", wanted):
        events[r["imsi"]].append((r["recorded_at"], 1, r["id"], {
            "at": lookup.iso(r["recorded_at"]), "source": "feedback", "event": r["verdict"],
            "actor": r["actor"], "note": r["note"]}))
    # a request concerns a SIM as its line, through its flag, or as one of its body's lines
    # (a rig's police lead names several): one row per (SIM, request). Bodies name IMSIs by
    # their 15 digits (ids.imsi_text), bigint::text drops leading zeros: padded back here.
    requests = await conn.fetch(
        "SELECT q.imsi AS for_imsi, o.id, o.request_id, o.action, o.status, o.created_at, "
        "o.delivered_at FROM unnest($1::bigint[]) AS q(imsi) JOIN verification_outbox o "
        "ON o.line_imsi = q.imsi OR o.flag_id IN (SELECT id FROM flags WHERE imsi = q.imsi) "
        "OR o.body->'lines' @> jsonb_build_array("
        "  jsonb_build_object('imsi', lpad(q.imsi::text, 15, '0')))",
        wanted)
    sims_of: dict[Any, list[int]] = {}
    for r in requests:
        sims_of.setdefault(r["request_id"], []).append(r["for_imsi"])
        events[r["for_imsi"]].append((r["created_at"], 2, r["id"], {
            "at": lookup.iso(r["created_at"]), "source": "verification",
            "event": "verification_requested", "request_id": str(r["request_id"]),
            "action": r["action"], "status": r["status"],
            "delivered_at": lookup.iso(r["delivered_at"])}))
    if sims_of:
        for r in await conn.fetch(
                "SELECT v.id, v.request_id, v.outcome, v.outcome_at, v.detail, o.action "
                "FROM verification_outcomes v JOIN verification_outbox o USING (request_id) "
                "WHERE v.request_id = ANY($1::uuid[])", list(sims_of)):
            for n in sims_of[r["request_id"]]:
                events[n].append((r["outcome_at"], 3, r["id"], {
                    "at": lookup.iso(r["outcome_at"]), "source": "verification",
                    "event": f"verification_{r['outcome']}", "request_id": str(r["request_id"]),
                    "action": r["action"], "outcome": r["outcome"],
                    "detail": json.loads(r["detail"])}))
    found = [n for n in wanted if events[n]]
    if not found:
        return {}
    flags: dict[int, list[dict]] = {n: [] for n in found}
    for f in await conn.fetch(
            "SELECT imsi, msisdn, kind, score, flagged_at, rig_id, reasons, status FROM flags "
            "WHERE imsi = ANY($1::bigint[]) ORDER BY imsi, flagged_at, kind", found):
        flags[f["imsi"]].append(lookup.flag_doc(f))
    out = {}
    for n in found:
        events[n].sort(key=lambda e: e[:3])
        out[names[n]] = {"imsi": names[n], "flags": flags[n], "events": [e[3] for e in events[n]]}
    return out


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
