"""Analyst feedback: confirm or dismiss a flag, and allow-list subscribers.

Every action is stored with who did it and when (``feedback``, ``allowlist``, and the flag's
history). An allow-listed SIM, account (ID-document hash: a known call centre's company
account) or cell (an IoT customer's site, a call-centre building) is not flagged again: the
daemon reloads the allow-list at each checkpoint and the pipeline drops such flags.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import asyncpg
import numpy as np

from detector import ids
from detector.features.engine import FeatureEngine
from detector.flags import Flag

ALLOW_KINDS = ("imsi", "id_hash", "cell")


class FeedbackError(ValueError):
    pass


def id_key(id_hash: str) -> int:
    """The engine's key for an ID-document hash (see FeatureEngine._id_keys_update)."""
    return int.from_bytes(hashlib.blake2b(id_hash.encode(), digest_size=8).digest(), "little",
                          signed=True)


@dataclass(slots=True)
class AllowList:
    imsis: set[str] = field(default_factory=set)
    id_keys: set[int] = field(default_factory=set)
    cells: set[str] = field(default_factory=set)
    version: int = 0          # newest allowlist id loaded

    def add(self, kind: str, value: str) -> None:
        if kind == "imsi":
            self.imsis.add(value)
        elif kind == "id_hash":
            self.id_keys.add(id_key(value))
        else:
            self.cells.add(value)

    def allows(self, flag: Flag, engine: FeatureEngine) -> bool:
        if flag.imsi in self.imsis:
            return True
        if not (self.id_keys or self.cells):
            return False
        slot = engine.sims.lookup(np.array([int(flag.imsi)], np.int64))[0]
        if slot < 0:
            return False
        if int(engine.id_keys(slot)) in self.id_keys:
            return True
        top = engine.newest_cell(slot)
        # the state holds radio cells: an allow-listed cell is matched on any network's id
        allowed = {engine.radio_key(c) for c in self.cells}
        return top >= 0 and engine.radio_key(engine.cell_names()[top]) in allowed


def normalise(kind: str, value: str) -> str:
    """The stored form of an allow-list value; refuses malformed ones."""
    if kind not in ALLOW_KINDS:
        raise FeedbackError(f"allow-list kind must be one of {', '.join(ALLOW_KINDS)}")
    try:
        if kind == "imsi":
            return ids.parse_imsi(value).digits
        if kind == "cell":
            return ids.canonical_cell(value)
    except ids.InvalidIdentifier as e:
        raise FeedbackError(str(e)) from e
    if not 16 <= len(value.strip()) <= 128:
        raise FeedbackError("id_hash must be the account's ID-document hash (16-128 characters)")
    return value.strip()


async def load_allowlist(conn: asyncpg.Connection, allow: AllowList) -> None:
    rows = await conn.fetch("SELECT id, kind, value FROM allowlist WHERE id > $1 ORDER BY id",
                            allow.version)
    for r in rows:
        allow.add(r["kind"], r["value"])
        allow.version = r["id"]


async def allow(pool: asyncpg.Pool, kind: str, value: str, reason: str, actor: str) -> None:
    if not actor or not reason:
        raise FeedbackError("an allow-list entry needs --by (who) and --reason")
    value = normalise(kind, value)
    await pool.execute(
        "INSERT INTO allowlist (kind, value, reason, actor) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (kind, value) DO UPDATE SET reason = EXCLUDED.reason, actor = EXCLUDED.actor, "
        "recorded_at = now()", kind, value, reason, actor)


async def judge(pool: asyncpg.Pool, imsi: str, verdict: str, actor: str, note: str = "") -> int:
    """Confirm or dismiss the flags of a SIM; returns how many flags it touched."""
    if verdict not in ("confirm", "dismiss"):
        raise FeedbackError("verdict must be confirm or dismiss")
    if not actor:
        raise FeedbackError("feedback needs --by (who)")
    imsi = normalise("imsi", imsi)
    status = {"confirm": "confirmed", "dismiss": "dismissed"}[verdict]
    async with pool.acquire() as conn, conn.transaction():
        ids_ = await conn.fetch("UPDATE flags SET status = $2 WHERE imsi = $1 RETURNING id",
                                int(imsi), status)
        if not ids_:
            raise FeedbackError(f"no flag for IMSI {imsi}")
        await conn.execute("INSERT INTO feedback (imsi, verdict, actor, note) VALUES ($1, $2, $3, $4)",
                           int(imsi), verdict, actor, note)
        await conn.executemany(
            "INSERT INTO flag_history (flag_id, event, event_time, actor, detail) "
            "VALUES ($1, $2, now(), $3, $4::jsonb)",
            [(r["id"], status, actor, json.dumps({"note": note})) for r in ids_])
    return len(ids_)


async def verdicts(pool: asyncpg.Pool) -> dict[str, int]:
    """Each SIM's latest verdict (1 confirmed, 0 dismissed), from analysts and from the
    platform's outcomes: the labels of the supervised layer (``goipwatch train --confirmed-from-store``)."""
    rows = await pool.fetch("SELECT DISTINCT ON (imsi) imsi, verdict FROM feedback "
                            "ORDER BY imsi, recorded_at DESC, id DESC")
    return {ids.imsi_text(r["imsi"]): int(r["verdict"] == "confirm") for r in rows}
