"""The outbox: verification requests written in the same transaction as their flags.

``enqueue`` is called by ``checkpoint.save`` inside its transaction, so a request exists if
and only if its flag was committed; the sender (``detector.verify.sender``) delivers it
later, however long the platform is away. Requests are only written once the daemon has
enabled verification with :func:`configure` (a ``[verification]`` table in the config).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from detector.flags import Flag, Rig
from detector.verify.policy import ActionPolicy, decide

MAX_LISTED = 50          # devices / cells named in one request
_policy: ActionPolicy | None = None


def configure(policy: ActionPolicy | None) -> None:
    """Enable (a policy) or disable (None) the writing of verification requests in this
    process; the daemon calls it at start with ``SenderConfig.policy``."""
    global _policy
    _policy = policy


def configured() -> ActionPolicy | None:
    return _policy


def idempotency_key(line: str, action: str, flag_id: int) -> str:
    """Stable across retries: the line (an IMSI, or ``rig:<id>`` for a police lead), the
    action and the flag that caused it."""
    return hashlib.sha256(f"{line}|{action}|{flag_id}".encode()).hexdigest()


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(s: str) -> int | None:
    return int(s) if s and s.isdigit() else None


async def _rigs_from_store(conn: asyncpg.Connection, ids: set[str]) -> dict[str, Rig]:
    """Rigs the caller did not pass, as the store has them (evidence read back from the
    plain-words summary)."""
    if not ids:
        return {}
    out = {}
    for r in await conn.fetch("SELECT id, members, devices, cells, first_at, last_at, evidence "
                              "FROM rigs WHERE id = ANY($1::text[])", sorted(ids)):
        ev = {}
        if "shared devices" in r["evidence"]:
            ev["devices"] = "shared devices"
        if "together in cell" in r["evidence"]:
            ev["cell"] = "machine-like SIMs together in a cell"
        out[r["id"]] = Rig(r["id"], set(json.loads(r["members"])), set(json.loads(r["devices"])),
                           set(json.loads(r["cells"])), int(r["first_at"].timestamp()),
                           int(r["last_at"].timestamp()), ev)
    return out


async def enqueue(conn: asyncpg.Connection, flags: Sequence[Flag], flag_ids: Sequence[int],
                  rigs: Sequence[Rig] = (), policy: ActionPolicy | None = None) -> list[str]:
    """Write the verification requests for newly committed ``flags`` (store ids
    ``flag_ids``, same order) on ``conn``, inside the caller's transaction; ``rigs``: the
    current rigs (a flag's rig is the one listing its IMSI). Returns the request ids written
    (none when verification is not configured)."""
    policy = policy or _policy
    if policy is None or not flags:
        return []
    if len(flags) != len(flag_ids):
        raise ValueError("flags and flag_ids differ in length")
    rig_by_id = {r.id: r for r in rigs}
    rig_of_imsi = {imsi: r for r in rigs for imsi in r.sims}
    missing = {f.rig_id for f in flags if f.rig_id and f.imsi not in rig_of_imsi
               and f.rig_id not in rig_by_id}
    rig_by_id.update(await _rigs_from_store(conn, missing))

    def rig_for(f: Flag) -> Rig | None:
        return rig_of_imsi.get(f.imsi) or (rig_by_id.get(f.rig_id) if f.rig_id else None)

    plans = [(f, fid, rig_for(f)) for f, fid in zip(flags, flag_ids)]
    plans = [(f, fid, rig, decide(f, rig, policy)) for f, fid, rig in plans]

    # what was already asked within the suppression window
    imsis = [int(f.imsi) for f, *_ in plans]
    msisdns = [m for f, *_ in plans if (m := _num(f.msisdn)) is not None]
    leads = {rig.id: rig for _, _, rig, d in plans if rig is not None and d.police_lead}
    rig_ids = sorted(leads)
    recent = await conn.fetch(
        "SELECT line_imsi, line_msisdn, rig_id, action FROM verification_outbox "
        "WHERE created_at > now() - make_interval(secs => $1) AND status <> 'dead' AND "
        "(line_imsi = ANY($2::bigint[]) OR line_msisdn = ANY($3::bigint[]) "
        " OR (action = 'police_lead' AND rig_id = ANY($4::text[])))",
        float(policy.suppress_s), imsis, msisdns, rig_ids)
    asked_imsi = {(r["line_imsi"], r["action"]) for r in recent if r["line_imsi"] is not None}
    asked_msisdn = {(r["line_msisdn"], r["action"]) for r in recent if r["line_msisdn"] is not None}
    led = {r["rig_id"] for r in recent if r["action"] == "police_lead"}

    # lines of the rigs that get a police lead: every member, with its MSISDN as flagged
    lines_of: dict[str, list[dict]] = {}
    if leads:
        members = sorted({int(x) for rig in leads.values() for x in rig.sims})
        known = {r["imsi"]: r["msisdn"] for r in await conn.fetch(
            "SELECT DISTINCT ON (imsi) imsi, msisdn FROM flags WHERE imsi = ANY($1::bigint[]) "
            "ORDER BY imsi, id", members)}
        for rid, rig in leads.items():
            lines_of[rid] = [{"imsi": x, "msisdn": str(known[int(x)]) if known.get(int(x)) else None}
                             for x in sorted(rig.sims, key=int)]

    rows = []
    for f, fid, rig, d in plans:
        imsi, msisdn = int(f.imsi), _num(f.msisdn)
        if (imsi, d.action) not in asked_imsi and (msisdn is None or (msisdn, d.action) not in asked_msisdn):
            asked_imsi.add((imsi, d.action))
            if msisdn is not None:
                asked_msisdn.add((msisdn, d.action))
            rows.append(_row(f, fid, rig, d.action, d.why, imsi, msisdn,
                             [{"imsi": f.imsi, "msisdn": f.msisdn or None}]))
        if d.police_lead and rig is not None and rig.id not in led:
            led.add(rig.id)
            rows.append(_row(f, fid, rig, "police_lead",
                             f"rig of {len(rig.sims)} SIMs: lead for the police", None, None,
                             lines_of.get(rig.id, [])))
    if not rows:
        return []
    cols = list(zip(*rows))
    written = await conn.fetch(
        "INSERT INTO verification_outbox (request_id, idempotency_key, flag_id, action, "
        "line_imsi, line_msisdn, rig_id, body) SELECT * FROM unnest($1::uuid[], $2::text[], "
        "$3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::jsonb[]) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING request_id", *map(list, cols))
    return [str(r["request_id"]) for r in written]


def _row(f: Flag, flag_id: int, rig: Rig | None, action: str, why: str, imsi: int | None,
         msisdn: int | None, lines: list[dict]) -> tuple:
    request_id = uuid.uuid4()
    line = f"rig:{rig.id}" if action == "police_lead" else f.imsi
    key = idempotency_key(line, action, flag_id)
    body = {
        "request_id": str(request_id),
        "action": action,
        "policy": why,
        "lines": lines,
        "rig_id": rig.id if rig is not None else None,
        "rig": None if rig is None else {
            "sims": len(rig.sims), "evidence": rig.summary()},
        "flag_id": flag_id,
        "kind": f.kind,
        "score": f.score,
        "reasons": list(f.reasons),
        "last_cells": sorted(rig.cells)[:MAX_LISTED] if rig is not None else [],
        "devices": sorted(rig.devices)[:MAX_LISTED] if rig is not None else [],
        "flagged_at": _iso(f.flagged_at),
    }
    return (request_id, key, flag_id, action, imsi, msisdn, rig.id if rig is not None else "",
            json.dumps(body, ensure_ascii=False, separators=(",", ":")))


async def outbox_summary(pool: asyncpg.Pool, dead_limit: int = 20) -> dict:
    """For operators: requests per status, the age of the oldest undelivered one, and the
    newest dead letters with their last error (no subscriber identifiers)."""
    async with pool.acquire() as conn:
        depth = {s: 0 for s in ("pending", "sending", "delivered", "dead")}
        for r in await conn.fetch("SELECT status, count(*) AS n FROM verification_outbox GROUP BY status"):
            depth[r["status"]] = r["n"]
        oldest = await conn.fetchval(
            "SELECT extract(epoch FROM now() - min(created_at)) FROM verification_outbox "
            "WHERE status IN ('pending', 'sending')")
        latency = await conn.fetchrow(
            "SELECT count(*) AS n, percentile_cont(0.99) WITHIN GROUP (ORDER BY "
            "extract(epoch FROM delivered_at - created_at)) AS p99 FROM verification_outbox "
            "WHERE status = 'delivered' AND delivered_at > now() - interval '1 day'")
        dead = await conn.fetch(
            "SELECT request_id, action, attempts, last_status, last_error, created_at "
            "FROM verification_outbox WHERE status = 'dead' ORDER BY created_at DESC, id DESC "
            "LIMIT $1", dead_limit)
        outcomes = {r["outcome"]: r["n"] for r in await conn.fetch(
            "SELECT outcome, count(*) AS n FROM verification_outcomes GROUP BY outcome")}
    return {
        "depth": depth,
        "oldest_pending_age_s": round(float(oldest), 3) if oldest is not None else None,
        "delivered_24h": latency["n"],
        "delivery_p99_s_24h": round(float(latency["p99"]), 3) if latency["p99"] is not None else None,
        "dead_letters": [{"request_id": str(r["request_id"]), "action": r["action"],
                          "attempts": r["attempts"], "last_status": r["last_status"],
                          "last_error": r["last_error"],
                          "created_at": r["created_at"].isoformat()} for r in dead],
        "outcomes": outcomes,
    }


async def requeue_dead(pool: asyncpg.Pool, request_ids: Sequence[str] | None = None) -> int:
    """Give dead letters (all, or those named) a fresh set of attempts; returns how many."""
    if request_ids is None:
        res = await pool.execute(
            "UPDATE verification_outbox SET status = 'pending', attempts = 0, "
            "next_attempt_at = now() WHERE status = 'dead'")
    else:
        res = await pool.execute(
            "UPDATE verification_outbox SET status = 'pending', attempts = 0, "
            "next_attempt_at = now() WHERE status = 'dead' AND request_id = ANY($1::uuid[])",
            [uuid.UUID(str(r)) for r in request_ids])
    return int(res.split()[-1])
