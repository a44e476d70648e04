"""The store's reads that the analysts' API and the console share: flags, rigs with their
flags, a SIM's timeline of events, allow-list entries. Each takes a connection (or a pool)
and answers JSON-ready documents, identifiers as text (IMSIs with their 15 digits); neither
HTTP nor HTML is known here, so :mod:`detector.api.analyst` and :mod:`detector.console.pages`
both read through this module and neither through the other.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import asyncpg

from detector import ids
from detector.api import lookup

FLAG_COLUMNS = "imsi, msisdn, kind, score, flagged_at, rig_id, reasons, status"
RIG_COLUMNS = "id, sims, members, devices, cells, first_at, last_at, evidence"


def _flag_with_sim(r: asyncpg.Record) -> dict[str, Any]:
    return {"imsi": ids.imsi_text(r["imsi"]),
            "msisdn": ids.msisdn_text(r["msisdn"]) if r["msisdn"] else None,
            **lookup.flag_doc(r)}


async def flags_by_status(conn: asyncpg.Connection, status: str, limit: int) -> dict:
    """The newest ``limit`` flags of ``status`` ('any': all), newest first."""
    rows = await conn.fetch(
        f"SELECT {FLAG_COLUMNS} FROM flags "
        "WHERE $1 = 'any' OR status = $1 ORDER BY flagged_at DESC, id DESC LIMIT $2",
        status, limit + 1)
    return {"status": status, "truncated": len(rows) > limit,
            "flags": [_flag_with_sim(r) for r in rows[:limit]]}


async def rigs_newest(conn: asyncpg.Connection, limit: int) -> dict:
    """The ``limit`` rigs with the newest activity (the API's and the console's list)."""
    rows = await conn.fetch(
        f"SELECT {RIG_COLUMNS} FROM rigs ORDER BY last_at DESC, id LIMIT $1", limit + 1)
    return {"truncated": len(rows) > limit, "rigs": [lookup.rig_doc(r) for r in rows[:limit]]}


async def rig_flags(conn: asyncpg.Connection, rig_ids: list[str]) -> dict[str, list[dict]]:
    """The flags of each rig (as answered), by rig id."""
    out: dict[str, list[dict]] = {i: [] for i in rig_ids}
    for f in await conn.fetch(
            f"SELECT {FLAG_COLUMNS} FROM flags "
            "WHERE rig_id = ANY($1::text[]) ORDER BY imsi, flagged_at, kind", rig_ids):
        out[f["rig_id"]].append(_flag_with_sim(f))
    return out


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
    r = await conn.fetchrow(f"SELECT {RIG_COLUMNS} FROM rigs WHERE id = $1", rig_id)
    if r is None:
        return None
    return {"rig": lookup.rig_doc(r), "flags": (await rig_flags(conn, [rig_id]))[rig_id]}


def _basis(actor: str | None) -> str:
    """The clock of a flag-history row: the detector's own rows (raised, rescored: actor
    ``detector``) are dated by the **event time** of the records behind them, so a replayed or backlogged
    month keeps its dates; a verdict's or the platform's row (another actor) by the **wall clock**
    (when it was recorded or reported), like feedback and verification rows."""
    return "event" if actor in (None, "", "detector") else "wall"


async def sim_events(conn: asyncpg.Connection, imsi: str) -> dict | None:
    """A SIM's flags and its events (flag history, verdicts, verification requests and
    outcomes) in time order; None when the store holds none of them. The same reads as
    :func:`sim_events_many`, for one SIM."""
    return (await sim_events_many(conn, [imsi])).get(imsi)


async def sim_events_many(conn: asyncpg.Connection, imsis: list[str]) -> dict[str, dict]:
    """The timelines of several SIMs (IMSI digits) in five queries, by IMSI; a SIM of which
    the store holds no event is left out.

    An event is ``at`` (ISO time), ``source`` (flag_history, feedback, verification),
    ``event`` and what its source adds; ``time_basis`` says which clock ``at`` is on
    (:func:`_basis`)."""
    names = {int(i): i for i in imsis}
    wanted = sorted(names)
    if not wanted:
        return {}
    # per SIM: (time, source order, id, event)
    events: dict[int, list[tuple[Any, int, int, dict]]] = {n: [] for n in wanted}
    for r in await conn.fetch(
            "SELECT f.imsi, h.id, h.event, h.score, h.event_time, h.actor, h.detail, f.kind "
            "FROM flag_history h JOIN flags f ON f.id = h.flag_id "
            "WHERE f.imsi = ANY($1::bigint[])", wanted):
        events[r["imsi"]].append((r["event_time"], 0, r["id"], {
            "at": lookup.iso(r["event_time"]), "time_basis": _basis(r["actor"]),
            "source": "flag_history",
            "event": r["event"], "flag_kind": r["kind"],
            "score": round(float(r["score"]), 4) if r["score"] is not None else None,
            "actor": r["actor"], "detail": json.loads(r["detail"])}))
    for r in await conn.fetch(
            "SELECT imsi, id, verdict, actor, note, recorded_at FROM feedback "
            "WHERE imsi = ANY($1::bigint[])", wanted):
        events[r["imsi"]].append((r["recorded_at"], 1, r["id"], {
            "at": lookup.iso(r["recorded_at"]), "time_basis": "wall", "source": "feedback",
            "event": r["verdict"], "actor": r["actor"], "note": r["note"]}))
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
            "at": lookup.iso(r["created_at"]), "time_basis": "wall", "source": "verification",
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
                    "at": lookup.iso(r["outcome_at"]), "time_basis": "wall",
                    "source": "verification", "event": f"verification_{r['outcome']}",
                    "request_id": str(r["request_id"]), "action": r["action"],
                    "outcome": r["outcome"], "detail": json.loads(r["detail"])}))
    found = [n for n in wanted if events[n]]
    if not found:
        return {}
    flags: dict[int, list[dict]] = {n: [] for n in found}
    for f in await conn.fetch(
            f"SELECT {FLAG_COLUMNS} FROM flags "
            "WHERE imsi = ANY($1::bigint[]) ORDER BY imsi, flagged_at, kind", found):
        flags[f["imsi"]].append(lookup.flag_doc(f))
    out = {}
    for n in found:
        events[n].sort(key=lambda e: e[:3])
        out[names[n]] = {"imsi": names[n], "flags": flags[n], "events": [e[3] for e in events[n]]}
    return out


async def allowlist_entries(conn: asyncpg.Connection, limit: int) -> list[dict]:
    """The newest ``limit`` allow-list entries."""
    rows = await conn.fetch("SELECT kind, value, reason, actor, recorded_at FROM allowlist "
                            "ORDER BY recorded_at DESC, id DESC LIMIT $1", limit)
    return [{"kind": r["kind"], "value": r["value"], "reason": r["reason"],
             "actor": r["actor"], "recorded_at": lookup.iso(r["recorded_at"])} for r in rows]


async def calibration(conn: asyncpg.Connection) -> dict[str, Any] | None:
    """The model in use (calibrated or the prior) and the features whose live population
    departs from the prior's beyond the drift alert, largest first (docs/calibration.md)."""
    row = await conn.fetchrow("SELECT fitted_at, sim_days, drift, drift_alert "
                              "FROM calibration_model WHERE id = 1")
    if row is None:
        return None
    drift = json.loads(row["drift"]) if row["drift"] else {}
    moved = sorted(((f, v) for f, v in drift.items() if v >= row["drift_alert"]), key=lambda fv: -fv[1])
    return {"calibrated": bool(row["sim_days"]),
            "fitted_at": datetime.fromtimestamp(row["fitted_at"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if row["sim_days"] else None,
            "sim_days": row["sim_days"],
            "drifting": [{"feature": f, "factor": round(math.exp(v), 1)} for f, v in moved]}
