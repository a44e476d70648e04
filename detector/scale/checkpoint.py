"""A partition's checkpoint: its feature state and the last stream sequence it applied,
committed in one transaction with the flags and quarantined messages that came of it.

The worker acks its messages only after this commit, and on restart skips any message whose
sequence is not above the committed one: a message is applied exactly once whether the
worker dies before the commit (the messages come again), between commit and acks (they come
again and are skipped) or after.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import numpy as np

from detector.feedback import load_allowlist
from detector.flags import Flag
from detector.scale.partition import partition_of
from detector.scale.summaries import contacts_bytes, contacts_from, devices_bytes, devices_from
from detector.store.checkpoint import (LAYOUT_FIELDS, STATE_LAYOUT, Outcome, Pending, commit,
                                       flag_from_row, in_this_layout)
from detector.verify.policy import ActionPolicy

if TYPE_CHECKING:
    from detector.scale.worker import Partition


@dataclass(slots=True)
class _PartitionState:
    """A partition's side of :func:`detector.store.checkpoint.commit`: its row of
    ``scale_partitions`` (position, clock, cells, counters, outbox, recent attaches, the
    contacts with other partitions' SIMs and the device uses awaiting the next summary) and its
    changed SIM and device records in ``scale_state``."""

    stream: str
    part: Partition
    sims: np.ndarray
    imeis: np.ndarray

    async def write_state(self, conn: asyncpg.Connection) -> None:
        part, stream = self.part, self.stream
        engine, pipe = part.engine, part.pipe
        n = len(engine.sims)
        dirty = engine.sims.keys_by_slot[np.flatnonzero(engine.dirty[:n])].astype("<i8").tobytes()
        await conn.execute(
            "UPDATE scale_partitions SET last_seq = $3, watermark = $4, next_tick = $5, "
            "cells = $6::jsonb, dirty = $7, counters = $8::jsonb, layout = $9::jsonb, "
            "outbox = $10, attaches = $11, contacts = $12, devices = $13, "
            "layout_fields = $14::jsonb, updated_at = now() "
            "WHERE stream = $1 AND partition = $2",
            stream, part.number, part.last_seq, engine.watermark, pipe.next_tick,
            json.dumps(list(engine.cells)), dirty, json.dumps(part.counters),
            json.dumps(STATE_LAYOUT), part.outbox, engine.attaches.astype("<i8").tobytes(),
            contacts_bytes(part.summaries.contacts), devices_bytes(part.summaries.devices),
            LAYOUT_FIELDS)
        for kind, (keys, blobs) in (("s", engine.export_sims(self.sims)), ("i", engine.export_imeis(self.imeis))):
            if not keys:
                continue
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS _scale_cp (k bigint, state bytea) "
                               "ON COMMIT DELETE ROWS")
            await conn.copy_records_to_table("_scale_cp", records=zip(keys, blobs))
            await conn.execute(
                "INSERT INTO scale_state (stream, partition, kind, key, state) "
                "SELECT $1, $2, $3, k, state FROM _scale_cp ON CONFLICT (stream, partition, kind, key) "
                "DO UPDATE SET state = EXCLUDED.state", stream, part.number, kind)
            await conn.execute("TRUNCATE _scale_cp")

    async def refresh(self, conn: asyncpg.Connection) -> None:
        await load_allowlist(conn, self.part.pipe.allow)


async def save(pool: asyncpg.Pool, stream: str, part: Partition, verify_policy: ActionPolicy | None = None
               ) -> list[int]:
    """Commit ``part`` (a :class:`detector.scale.worker.Partition`); returns the flag ids.
    Like the daemon's checkpoint (the same :func:`detector.store.checkpoint.commit`), the new
    flags' verification requests (with ``verify_policy``) and the report's per-SIM activity
    commit in the same transaction. A worker's flags are per-SIM: their rigs (if any) come
    from the rig stage."""
    engine = part.engine
    pending, part.pending = part.pending, Pending()
    sims, imeis = engine.take_unsaved()
    try:
        return await commit(pool, _PartitionState(stream, part, sims, imeis),
                             Outcome(flags=pending.flags, quarantine=pending.quarantine,
                                     facts=pending.facts, verify_policy=verify_policy))
    except BaseException:
        engine.mark_unsaved(sims, imeis)
        part.pending = pending
        raise


def import_records(engine, row: asyncpg.Record, where: str, sims: list[asyncpg.Record],
                   devices: list[asyncpg.Record]) -> None:
    """Load a partition's SIM and device records (``scale_state`` rows) into ``engine``,
    carried into this build's layout when its ``scale_partitions`` ``row`` says another
    build wrote them; then every record is marked for the next checkpoint, which rewrites
    them all in this layout."""
    fields = row["layout_fields"]
    sim_blobs, dev_blobs, carried = in_this_layout(
        where, json.loads(row["layout"]), json.loads(fields) if fields is not None else None,
        [r["state"] for r in sims], [r["state"] for r in devices])
    engine.import_state([r["key"] for r in sims], sim_blobs, [r["key"] for r in devices], dev_blobs)
    if carried:
        engine.mark_unsaved(np.arange(len(sims)), np.arange(len(devices)))


async def sim_flags(pool: asyncpg.Pool) -> list[Flag]:
    """The store's per-SIM flags, read once for all the partitions a worker restores."""
    return [flag_from_row(r) for r in await pool.fetch(
        "SELECT imsi, msisdn, score, flagged_at, rig_id, reasons, kind FROM flags WHERE kind = 'sim_anomaly'")]


async def restore(pool: asyncpg.Pool, stream: str, part, flags: list[Flag] | None = None) -> None:
    """Load partition ``part.number``'s checkpoint into its fresh engine and pipeline (an
    empty checkpoint row is made for a partition never seen); ``flags``: :func:`sim_flags`
    (read here if not given), of which the partition keeps its own."""
    engine, pipe = part.engine, part.pipe
    if flags is None:
        flags = await sim_flags(pool)
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO scale_partitions (stream, partition, layout) VALUES ($1, $2, $3::jsonb) "
                           "ON CONFLICT DO NOTHING", stream, part.number, json.dumps(STATE_LAYOUT))
        row = await conn.fetchrow("SELECT * FROM scale_partitions WHERE stream = $1 AND partition = $2",
                                  stream, part.number)
        for i, name in enumerate(json.loads(row["cells"])):
            engine.cells[name] = i
        rows = await conn.fetch("SELECT kind, key, state FROM scale_state WHERE stream = $1 AND partition = $2",
                                stream, part.number)
        sims = [r for r in rows if r["kind"] == "s"]
        imeis = [r for r in rows if r["kind"] == "i"]
        import_records(engine, row, f"partition {part.number} of {stream}", sims, imeis)
        engine.restore_clock(row["watermark"])   # its first hours are not kept: watched
        # recent attaches: a power-on burst cut by the restart is still seen whole
        engine.attaches = np.frombuffer(row["attaches"], "<i8").astype(np.int64).reshape(-1, 3)
        pipe.next_tick = int(row["next_tick"])
        dirty = engine.sims.lookup(np.frombuffer(row["dirty"], "<i8").astype(np.int64))
        engine.dirty[dirty[dirty >= 0]] = True
        part.last_seq = int(row["last_seq"])
        part.counters = json.loads(row["counters"])
        part.outbox = list(row["outbox"])
        part.summaries.contacts = contacts_from(row["contacts"])
        part.summaries.devices = devices_from(row["devices"])
        # the partition's own flags: a SIM it flagged is not flagged again
        mine = partition_of(np.array([int(f.imsi) for f in flags], np.int64), part.partitions) == part.number
        for f, ok in zip(flags, mine):
            if ok:
                pipe.flagged[f.imsi] = f
        await load_allowlist(conn, pipe.allow)


class OwnedElsewhere(RuntimeError):
    """Another running process holds the partition."""


async def claim(conn: asyncpg.Connection, stream: str, partitions: tuple[int, ...],
                wait_s: float = 15.0) -> None:
    """Hold a session advisory lock per partition on ``conn`` for as long as it is open, so
    that two workers (or two rig stages, partition -1) never apply the same partition. Waits
    up to ``wait_s`` for a lock: the server may not yet have noticed that the previous holder
    was killed."""
    deadline = asyncio.get_running_loop().time() + wait_s
    for p in partitions:
        while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1), $2)", stream, p):
            if asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.2)
                continue
            raise OwnedElsewhere(f"partition {p} of stream {stream} is held by another running "
                                 f"process (two workers with overlapping partitions?)")
