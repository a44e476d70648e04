"""Subscriber lookups: what the store knows about a number, and what each role may see.

Sources: ``registrations`` (who registered the SIM, when, through which channel), ``flags``
(kinds, scores, reasons, status), ``rigs`` (membership and evidence), ``feature_snapshots``
(the feature values behind the newest flag) and ``sim_state``, the checkpointed feature state,
whose devices and hourly cells :mod:`detector.features.history` reads (the SIM's last few
devices with the hour each was last seen, the most used cell of each of its last 24 active
hours). Device and cell history is therefore hourly and as of the daemon's last checkpoint;
there is no per-event history. An IMEI finds the SIMs of the rigs that contain the device (the store has
no device → SIM index for unflagged SIMs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from detector import ids
from detector.features import history

NUMBER_TYPES = ("msisdn", "imsi", "imei")
ROLES = ("police", "analyst", "regulator", "admin")

# Sections of a subscriber each role receives (regulators get no subscriber data at all).
ROLE_SECTIONS: dict[str, frozenset[str]] = {
    "police": frozenset({"imsi", "msisdn", "registration", "devices", "cells", "flags", "rig",
                         "evidence"}),
    "admin": frozenset({"imsi", "msisdn", "registration", "devices", "cells", "flags", "rig",
                        "evidence"}),
    "analyst": frozenset({"imsi", "msisdn", "registration", "flags", "rig", "evidence"}),
    "regulator": frozenset(),
}
# Registration fields each role receives.
ROLE_REGISTRATION: dict[str, tuple[str, ...]] = {
    "police": ("activated_at", "channel", "carrier", "id_hash"),
    "admin": ("activated_at", "channel", "carrier", "id_hash"),
    "analyst": ("activated_at", "channel", "carrier"),
    "regulator": (),
}


def iso(t: datetime | int | float | None) -> str | None:
    """``t`` (a datetime, or epoch seconds) as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    if t is None:
        return None
    if not isinstance(t, datetime):
        t = datetime.fromtimestamp(int(t), UTC)
    t = t.astimezone(UTC)
    if t.year < 1000:       # strftime's %Y does not pad such years
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    # what strftime gives, formatted directly: a lookup answer holds a dozen of these
    return "%d-%02d-%02dT%02d:%02d:%02dZ" % (t.year, t.month, t.day, t.hour, t.minute, t.second)


def normalise_number(number_type: str, number: str) -> str:
    """The stored digits of ``number``; raises :class:`ids.InvalidIdentifier`."""
    if number_type == "msisdn":
        return ids.normalise_msisdn(number)
    if number_type == "imsi":
        return ids.parse_imsi(number).digits
    return ids.parse_imei(number).imei


@dataclass(slots=True)
class Found:
    subscribers: list[dict[str, Any]]
    truncated: bool = False


async def _state_layout_ok(conn: asyncpg.Connection) -> bool:
    from detector.store.checkpoint import STATE_LAYOUT

    value = await conn.fetchval("SELECT value FROM engine_state WHERE key = 'layout'")
    return value is not None and json.loads(value) == STATE_LAYOUT


def _history(state: bytes) -> tuple[list[dict], list[tuple[int, int]]]:
    """(devices with last seen, [(hour, global cell id)] newest first) from a SIM record."""
    h = history.read(state)
    if h is None:
        return [], []
    return ([{"imei": ids.imei_text(imei), "last_seen": iso(hour * 3600)} for imei, hour in h.devices],
            list(h.cells))


async def sim_histories(conn: asyncpg.Connection, imsis: list[int]
                        ) -> tuple[dict[int, Any], dict[int, tuple[list[dict], list[tuple[int, str]]]]]:
    """The checkpointed state rows of ``imsis`` and, per SIM, (devices with last seen,
    [(hour, cell id)] newest first); nothing when the stored layout is not this version's."""
    if not await _state_layout_ok(conn):
        return {}, {}
    states = {r["imsi"]: r for r in await conn.fetch(
        "SELECT imsi, state, updated_at FROM sim_state WHERE imsi = ANY($1::bigint[])", imsis)}
    raw = {imsi: _history(r["state"]) for imsi, r in states.items()}
    cell_ids = sorted({c for _, cells in raw.values() for _, c in cells})
    names = {r["id"]: r["name"] for r in await conn.fetch(
        "SELECT id, name FROM cells WHERE id = ANY($1::int[])", cell_ids)} if cell_ids else {}
    return states, {imsi: (devices, [(h, names.get(c, str(c))) for h, c in cells])
                    for imsi, (devices, cells) in raw.items()}


def flag_doc(f: Any) -> dict[str, Any]:
    """A ``flags`` row as answered (kind, score, time, status, rig, reasons; no ID hash)."""
    return {"kind": f["kind"], "score": round(float(f["score"]), 4),
            "flagged_at": iso(f["flagged_at"]), "status": f["status"],
            "rig_id": f["rig_id"] or None, "reasons": json.loads(f["reasons"])}


def rig_doc(r: Any) -> dict[str, Any]:
    """A ``rigs`` row as answered: members (IMSIs), devices (IMEIs), cells, window, evidence."""
    return {"id": r["id"], "sims": r["sims"], "members": ids.imsi_texts(json.loads(r["members"])),
            "devices": ids.imei_texts(json.loads(r["devices"])),
            "cells": json.loads(r["cells"]), "first_at": iso(r["first_at"]),
            "last_at": iso(r["last_at"]), "evidence": r["evidence"]}


# The SIMs behind a number, by its type (the parameter is the normalised number).
_RESOLVE = {
    "imsi": "SELECT $1::bigint AS imsi",
    "msisdn": "SELECT imsi FROM registrations WHERE msisdn = $1::bigint "
              "UNION SELECT imsi FROM flags WHERE msisdn = $1::bigint",
    "imei": "SELECT DISTINCT m.value::bigint AS imsi FROM rigs, "
            "jsonb_array_elements_text(rigs.members) AS m(value) WHERE rigs.devices ? $1::text",
}
# Everything on those SIMs in one statement (one round trip for a lookup): the first $2 SIMs
# by IMSI with how many there are, each with its registration, flags (oldest first), the rigs
# of its flags, its newest feature snapshot, its checkpointed state, the stored layout of
# that state, and the names of the cells the state names: the top cell of each hourly slot,
# a little-endian int32 at the byte offsets $3 of a record of $4 bytes (this version's
# layout; when the stored layout is another, the state and these names are not used). SQL's
# | and << share one precedence, hence the parentheses; int4's << wraps, so -1 (no cell)
# reads as -1. (= ANY(ARRAY(...)) looks the names up by the key, never a scan of the cells.)
_FIND = """
WITH asked AS (SELECT imsi, count(*) OVER () AS total FROM ({resolve}) q ORDER BY imsi LIMIT $2)
SELECT a.imsi, a.total, r.imsi IS NOT NULL AS registered, r.msisdn, r.activated_at, r.id_hash,
       r.channel, r.carrier,
       (SELECT array_agg(ROW(f.msisdn, f.kind, f.score, f.flagged_at, f.rig_id, f.reasons::text,
                             f.status) ORDER BY f.flagged_at, f.kind)
          FROM flags f WHERE f.imsi = a.imsi) AS flags,
       (SELECT array_agg(ROW(g.id, g.sims, g.members::text, g.devices::text, g.cells::text,
                             g.first_at, g.last_at, g.evidence))
          FROM rigs g WHERE g.id IN (SELECT f.rig_id FROM flags f WHERE f.imsi = a.imsi)) AS rigs,
       (SELECT ROW(s.event_time, s.purpose, s.features::text) FROM feature_snapshots s
         WHERE s.imsi = a.imsi ORDER BY s.event_time DESC, s.id DESC LIMIT 1) AS snap,
       st.state, st.updated_at AS state_at,
       (SELECT e.value::text FROM engine_state e WHERE e.key = 'layout') AS layout,
       (SELECT array_agg(ROW(c.id, c.name)) FROM cells c
         WHERE length(st.state) = $4 AND c.id = ANY(ARRAY(
           SELECT get_byte(st.state, o) | (get_byte(st.state, o + 1) << 8)
                  | (get_byte(st.state, o + 2) << 16) | (get_byte(st.state, o + 3) << 24)
             FROM unnest($3::int[]) AS o))) AS cell_names
  FROM asked a
  LEFT JOIN registrations r ON r.imsi = a.imsi
  LEFT JOIN sim_state st ON st.imsi = a.imsi
 ORDER BY a.imsi"""
_FIND_BY = {kind: _FIND.format(resolve=sql) for kind, sql in _RESOLVE.items()}


_FLAG = ("msisdn", "kind", "score", "flagged_at", "rig_id", "reasons", "status")
_RIG = ("id", "sims", "members", "devices", "cells", "first_at", "last_at", "evidence")
_layout_seen: tuple[str, bool] = ("", False)     # the last stored layout read, and whether it is ours


def _layout_is_ours(text: str | None) -> bool:
    global _layout_seen
    if text is None:
        return False
    if text != _layout_seen[0]:
        from detector.store.checkpoint import STATE_LAYOUT

        _layout_seen = (text, json.loads(text) == STATE_LAYOUT)
    return _layout_seen[1]


# a number of each type that no SIM has: IMSIs and MSISDNs are positive, IMEIs 15 digits
_NOBODY = {"imsi": 0, "msisdn": 0, "imei": ""}


async def prepare(conn: asyncpg.Connection) -> None:
    """Plan the lookup's statements on ``conn`` (each run once on a number that finds
    nobody), so that no lookup waits for a connection's first planning of them."""
    for number_type, sql in _FIND_BY.items():
        await conn.fetch(sql, _NOBODY[number_type], 1, history.TOP_CELL_OFFSETS,
                         history.RECORD_BYTES)


async def find(conn: asyncpg.Connection, number_type: str, number: str, limit: int) -> Found:
    """Everything the store holds on the SIMs behind ``number`` (normalised digits), read in
    one statement."""
    key = ids.imei_text(number) if number_type == "imei" else int(number)
    rows = await conn.fetch(_FIND_BY[number_type], key, limit, history.TOP_CELL_OFFSETS,
                            history.RECORD_BYTES)
    if not rows:
        return Found([])
    truncated = rows[0]["total"] > limit
    layout_ok = _layout_is_ours(rows[0]["layout"])
    raw = {r["imsi"]: _history(r["state"]) for r in rows
           if layout_ok and r["state"] is not None}
    names = {c: name for r in rows for c, name in r["cell_names"] or ()}

    out = []
    for r in rows:
        imsi = r["imsi"]
        fl = [dict(zip(_FLAG, f)) for f in r["flags"] or ()]
        has_state = layout_ok and r["state"] is not None
        if not r["registered"] and not fl and not has_state:
            continue
        rigs = {g[0]: dict(zip(_RIG, g)) for g in r["rigs"] or ()}
        msisdn = r["msisdn"] if r["registered"] else next(
            (f["msisdn"] for f in fl if f["msisdn"]), None)
        sub: dict[str, Any] = {"imsi": ids.imsi_text(imsi),
                               "msisdn": ids.msisdn_text(msisdn) if msisdn else None}
        sub["registration"] = None if not r["registered"] else {
            "activated_at": iso(r["activated_at"]), "channel": r["channel"],
            "carrier": r["carrier"], "id_hash": r["id_hash"]}
        devices, cells = raw.get(imsi, ([], []))
        sub["devices"] = devices
        sub["cells"] = [{"cell_id": names.get(c, str(c)), "hour": iso(h * 3600)} for h, c in cells]
        sub["flags"] = [flag_doc(f) for f in fl]
        rig_id = next((f["rig_id"] for f in fl if f["rig_id"] in rigs), None)
        sub["rig"] = rig_doc(rigs[rig_id]) if rig_id else None
        snap = r["snap"]
        sub["evidence"] = None if snap is None else {
            "event_time": iso(snap[0]), "purpose": snap[1], "features": json.loads(snap[2])}
        sub["state_as_of"] = iso(r["state_at"]) if has_state else None
        out.append(sub)
    return Found(out, truncated)


def project(sub: dict[str, Any], role: str) -> dict[str, Any]:
    """The part of a subscriber record ``role`` may see."""
    sections = ROLE_SECTIONS[role]
    out: dict[str, Any] = {}
    for key, value in sub.items():
        if key == "state_as_of":
            if sections & {"devices", "cells"}:
                out[key] = value
        elif key == "registration":
            if key in sections:
                out[key] = None if value is None else {
                    k: value[k] for k in ROLE_REGISTRATION[role]}
        elif key in sections:
            out[key] = value
    return out


def field_paths(obj: Any, prefix: str = "") -> list[str]:
    """The field paths present in an answer (``subscribers[].registration.id_hash``), for the
    audit: what was disclosed, without the values."""
    paths: set[str] = set()
    # (value, its path); a dict's keys are named under "path." (no dot at the top), a list's
    # items under "path[]", and a list of scalars adds no path
    todo: list[tuple[Any, str]] = [(obj, prefix)]
    while todo:
        o, p = todo.pop()
        if isinstance(o, dict):
            under = p + "." if p else ""
            for k, v in o.items():
                q = (under + k if type(k) is str else f"{under}{k}") if under else k
                paths.add(q)
                if isinstance(v, (dict, list)):
                    todo.append((v, q))
        elif isinstance(o, list):
            q = p + "[]"
            todo.extend((v, q) for v in o if isinstance(v, (dict, list)))
    return sorted(paths)
