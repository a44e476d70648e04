"""The publisher: probe files → per-partition messages on the stream.

It replays a file in event-time order the way :meth:`detector.pipeline.Pipeline.feed` does
(sorted, cut at every scoring-tick boundary), refuses late records against the *global*
watermark (a partition alone would see only its own SIMs' newest time), splits each piece
by the partition of its IMSIs and, after a piece that closes a tick, sends that tick to every
partition. So each partition receives the same cut of event time whatever the number of
workers, and a partition's result depends on its messages alone.

Exactly once onto the stream: every message carries a ``Nats-Msg-Id`` made of the file's
sha256, the block, the piece and the partition; a file is recorded as published (with its
quarantined rows and the clock after it) in one store transaction only once JetStream has
acknowledged all its messages. A publisher that dies part-way publishes the file again from
the clock of the last complete file and JetStream drops what it already holds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import numpy as np

from detector.features.engine import FeatureEngine
from detector.pipeline import SCORING_INTERVAL_S, tick_cuts
from detector.records import CdrBatch, RegistrationBatch, Rejected, iso
from detector.scale import codec
from detector.scale.config import ScaleConfig
from detector.scale.partition import partition_of
from detector.store import activity, checkpoint as cp
from probes.csvparse import CANONICAL, FeedError, Layout, read_feed_file
from probes.files import sha256_of

log = logging.getLogger("goipwatch.publish")


class PublishError(RuntimeError):
    pass


@dataclass(slots=True)
class Clock:
    watermark: int = 0      # newest event time accepted, over all partitions
    next_tick: int = 0      # event time of the next scoring tick; 0 before the first record


@dataclass(frozen=True, slots=True)
class Published:
    name: str
    status: str             # published | already
    records: int = 0
    rejected: int = 0
    messages: int = 0


def cut(batch: CdrBatch, clock: Clock, interval_s: int, lateness_s: int
        ) -> Iterator[tuple[str, object]]:
    """Steps of one block in event-time order: ``("piece", (accepted, late))`` and
    ``("tick", at)``; advances ``clock`` as the single-process engine and pipeline would."""
    if not len(batch):
        return
    order = np.argsort(batch.ts, kind="stable")
    clock.next_tick, ticks, bounds = tick_cuts(batch.ts[order], clock.next_tick, interval_s)
    for k in range(len(bounds) - 1):
        part = order[bounds[k]:bounds[k + 1]]
        if len(part):
            piece = batch.take(part)
            newest = int(piece.ts.max())
            late = piece.ts < max(clock.watermark, newest) - lateness_s
            if not late.all():
                clock.watermark = max(clock.watermark, newest)
            yield "piece", (piece.take(~late), piece.take(late))
        if k < len(ticks):
            clock.next_tick = int(ticks[k]) + interval_s
            yield "tick", int(ticks[k])


def split(batch: CdrBatch, partitions: int) -> dict[int, dict]:
    """Per partition: the columns of its records and a cell table of the cells they use."""
    part = partition_of(batch.imsi, partitions)
    out = {}
    for p in np.unique(part):
        sub = batch.take(part == p)
        used = sub.cell >= 0
        table, local = np.unique(sub.cell[used], return_inverse=True)
        cell = np.full(len(sub), -1, np.int32)
        cell[used] = local
        out[int(p)] = {
            "cells": [batch.cells[i] for i in table],
            "columns": {name: (cell if name == "cell" else getattr(sub, name))
                        for name in codec.CDR_COLUMNS},
        }
    return out


class Publisher:
    def __init__(self, js, pool: asyncpg.Pool, cfg: ScaleConfig, interval_s: int = SCORING_INTERVAL_S,
                 lateness_s: int = 3600) -> None:
        self.js = js
        self.pool = pool
        self.cfg = cfg
        self.interval_s = interval_s
        self.lateness_s = lateness_s
        self.clock = Clock()
        self._acks: list = []     # JetStream's answers to the messages of the file in hand

    async def open(self) -> None:
        """Make the stream if needed and read the clock; refuses a partition count other
        than the one the stream was made with."""
        from detector.scale.bus import ensure_stream

        await ensure_stream(self.js, self.cfg)
        row = await record_stream(self.pool, self.cfg)
        self.clock = Clock(row["watermark"], row["next_tick"])

    async def _send(self, subject: str, data: bytes, msg_id: str) -> None:
        self._acks.append(await self.js.publish_async(subject, data, stream=self.cfg.stream,
                                                      headers={"Nats-Msg-Id": msg_id}))

    async def _confirmed(self) -> None:
        """Wait until JetStream has stored (or de-duplicated) every message sent; raises
        when it refused one, so that the file is not recorded as published."""
        acks, self._acks = self._acks, []
        try:
            await asyncio.gather(*acks)
        except Exception as e:
            raise PublishError(f"JetStream refused a message of stream {self.cfg.stream}: {e}") from e

    async def _all_partitions(self, kind: str, fields: dict, msg_id: str) -> int:
        data = codec.encode(kind, fields)
        for p in range(self.cfg.partitions):
            await self._send(self.cfg.subject(p), data, f"{msg_id}:{p}")
        return self.cfg.partitions

    async def publish_file(self, path: Path, kind: str, probe: str, layout: Layout = CANONICAL,
                           block_bytes: int = 32 << 20, digest: tuple[int, str] | None = None
                           ) -> Published:
        """Publish one CDR (``cdr``) or registration (``registrations``) file, once;
        ``digest``: its (size, sha256) if known (a probe's FileWork carries them)."""
        path = Path(path)
        size, sha = digest or await asyncio.to_thread(sha256_of, path)   # not on the event loop
        if await self.pool.fetchval("SELECT status FROM scale_published WHERE stream = $1 AND sha256 = $2",
                                    self.cfg.stream, sha):   # published, or rejected whole before
            return Published(path.name, "already")
        clock = Clock(self.clock.watermark, self.clock.next_tick)
        rejected: list[Rejected] = []
        records = messages = 0
        facts = activity.Facts()   # the report's feed coverage (the workers add per-SIM activity)
        blocks = enumerate(read_feed_file(path, kind, layout, block_bytes))
        try:   # the header is read with the first block: a bad one fails before anything is sent
            first = next(blocks, None)
        except FeedError as e:   # no usable header: nothing of it was sent
            log.error("file rejected", extra={"file": path.name, "reason": str(e)})
            async with self.pool.acquire() as conn, conn.transaction():   # once, not at every restart
                await cp.save_quarantine(conn, [(probe, Rejected(path.name, 0, str(e)))])
                await conn.execute(
                    "INSERT INTO scale_published (stream, sha256, probe, name, kind, records, rejected, "
                    "messages, status) VALUES ($1, $2, $3, $4, $5, 0, 1, 0, 'rejected')",
                    self.cfg.stream, sha, probe, path.name, kind)
                await _ingested(conn, cp.FileDone(probe, path.name, size, sha, "rejected", detail=str(e)))
            return Published(path.name, "rejected", rejected=1)
        for b, parsed in itertools.chain([first] if first else [], blocks):
            rejected += parsed.rejected
            if kind == "registrations":
                records += len(parsed.batch)
                facts.add_registrations(probe, path.name, parsed.batch)
                messages += await self._registrations(parsed.batch, f"{sha}:r{b}")
                continue
            for k, (step, value) in enumerate(cut(parsed.batch, clock, self.interval_s,
                                                  self.lateness_s)):
                if step == "tick":
                    messages += await self._all_partitions(
                        "tick", {"at": value}, f"{self.cfg.stream}:tick:{value}")
                    continue
                accepted, late = value
                horizon = iso(clock.watermark - self.lateness_s)
                rejected += [Rejected(late.source, int(line), f"late: event time {iso(ts)} is before "
                                      f"{horizon} (watermark minus allowed lateness)")
                             for line, ts in zip(late.line, late.ts)]
                records += len(accepted)
                facts.add_days(probe, path.name, accepted.ts)
                for p, part in split(accepted, self.cfg.partitions).items():
                    data = codec.encode("cdr", {"source": accepted.source, "cells": part["cells"],
                                                "watermark": clock.watermark}, part["columns"])
                    await self._send(self.cfg.subject(p), data, f"{sha}:{b}:{k}:{p}")
                    messages += 1
        await self._confirmed()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO scale_published (stream, sha256, probe, name, kind, records, rejected, messages) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                self.cfg.stream, sha, probe, path.name, kind, records, len(rejected), messages)
            await conn.execute("UPDATE scale_streams SET watermark = $2, next_tick = $3, updated_at = now() "
                               "WHERE stream = $1", self.cfg.stream, clock.watermark, clock.next_tick)
            await cp.save_quarantine(conn, [(probe, r) for r in rejected])
            await _ingested(conn, cp.FileDone(probe, path.name, size, sha, "done", records, len(rejected)))
            await activity.new_versions(conn, await activity.save(conn, facts))
        self.clock = clock
        log.info("file published", extra={"file": path.name, "records": records,
                                          "rejected": len(rejected), "messages": messages})
        return Published(path.name, "published", records, len(rejected), messages)

    async def _registrations(self, batch: RegistrationBatch, msg_id: str) -> int:
        """Store the registrations, then send each affected SIM (these and the others on
        the same ID documents) its partition's message with the population-wide card count."""
        if not len(batch):
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            await cp.save_inputs(conn, cp.Pending(registrations=[batch]))
            rows = await conn.fetch(
                "SELECT imsi, msisdn, activated_at, id_hash, "
                "count(*) OVER (PARTITION BY id_hash) AS cards FROM registrations "
                "WHERE id_hash = ANY($1::text[]) ORDER BY imsi", sorted(set(batch.id_hash.tolist())))
        imsi = np.array([r["imsi"] for r in rows], np.int64)
        cols = {"imsi": imsi, "msisdn": np.array([r["msisdn"] for r in rows], np.int64),
                "activated_at": np.array([int(r["activated_at"].timestamp()) for r in rows], np.int64),
                "id_cards": np.minimum([r["cards"] for r in rows], 65535).astype(np.int32),
                "id_key": np.array([FeatureEngine.id_key(r["id_hash"]) for r in rows], np.int64)}
        part = partition_of(imsi, self.cfg.partitions)
        n = 0
        for p in np.unique(part):
            sel = part == p
            data = codec.encode("reg", {"source": batch.source}, {k: v[sel] for k, v in cols.items()})
            await self._send(self.cfg.subject(int(p)), data, f"{msg_id}:{p}")
            n += 1
        return n

    async def flush(self) -> int:
        """Ask every partition to score what is pending (the end of a finite feed)."""
        n = await self._all_partitions("flush", {"watermark": self.clock.watermark},
                                       f"{self.cfg.stream}:flush:{self.clock.watermark}")
        await self._confirmed()
        return n


async def _ingested(conn: asyncpg.Connection, f: cp.FileDone) -> None:
    """The file in ``ingested_files``, as the daemon records it (status, report, console);
    a content already there (another stream into the same store) keeps its first row."""
    await conn.execute(
        "INSERT INTO ingested_files (probe, name, size, sha256, status, records, rejected, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        f.probe, f.name, f.size, f.sha256, f.status, f.records, f.rejected, f.detail)


async def record_stream(pool: asyncpg.Pool, cfg: ScaleConfig) -> asyncpg.Record:
    """The stream's row in the store, made on first use; its partition count is fixed."""
    await pool.execute("INSERT INTO scale_streams (stream, partitions) VALUES ($1, $2) "
                       "ON CONFLICT (stream) DO NOTHING", cfg.stream, cfg.partitions)
    row = await pool.fetchrow("SELECT * FROM scale_streams WHERE stream = $1", cfg.stream)
    if row["partitions"] != cfg.partitions:
        raise PublishError(f"stream {cfg.stream} was made with {row['partitions']} partitions; "
                           f"scale.partitions says {cfg.partitions} (a stream's partitioning is fixed)")
    return row
