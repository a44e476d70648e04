"""Checkpoints: what the daemon has done, committed in one transaction, and read back at start.

A checkpoint carries the files finished since the last one (with their quarantined rows and
registrations), the Kafka offsets up to which messages were applied, the feature state of
every SIM and device they changed, the engine's clock, and the new flags. Because all of it
commits together, a crash before the commit leaves the store as it was and the files are read
again from the start; a crash after it finds them done. Either way no record is lost or
counted twice. Triggers on ``flags`` record each change of what the flag stream carries
(``flag_events``, migration 013) in that same transaction.

:func:`commit` is that unit of work for every process that checkpoints: the daemon here, and
the scale-out's worker partitions and rig stage (:mod:`detector.scale.checkpoint`,
:mod:`detector.scale.rigstage`). Each brings its own state writer (:class:`Checkpointed`);
flags, rigs, verification requests, quarantine and activity are written the one way.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import asyncpg
import numpy as np

from detector.features import layout as state_layout
from detector.features import state as st
from detector.features.engine import FeatureEngine
from detector.feedback import load_allowlist
from detector.flags import Flag, Rig
from detector.ids import imsi_text, msisdn_text
from detector.pipeline import Pipeline
from detector.records import RegistrationBatch, Rejected
from detector.store import activity
from detector.store import calibration as calibration_store
from detector.verify import outbox as verify_outbox
from detector.verify.policy import ActionPolicy

if TYPE_CHECKING:
    from detector.supervisor import ProbeHealth

log = logging.getLogger("goipwatch.checkpoint")

# Checkpointed records are read as the layout that wrote them; another build's are carried
# into this one's by field name (restore, detector.features.layout).
STATE_LAYOUT = hashlib.sha256(
    (str(st.SIM_STATE.descr) + str(st.IMEI_STATE.descr)).encode()).hexdigest()[:16]
LAYOUT_FIELDS = json.dumps(state_layout.describe())   # the field list stored beside it


class CheckpointError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class FileDone:
    probe: str
    name: str
    size: int
    sha256: str
    status: str                  # done | rejected | duplicate
    records: int = 0
    rejected: int = 0
    detail: str = ""


@dataclass(slots=True)
class Pending:
    """Work done in memory since the last checkpoint."""

    files: list[FileDone] = field(default_factory=list)
    quarantine: list[tuple[str, Rejected]] = field(default_factory=list)   # (probe, row)
    registrations: list[RegistrationBatch] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    rigs: list[Rig] = field(default_factory=list)     # rigs whose row is not what they are now
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    facts: activity.Facts = field(default_factory=activity.Facts)   # for the monthly report
    # stream inputs: (probe, topic, partition) -> next offset, covered by this checkpoint
    offsets: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def count(self, probe: str, key: str, n: int) -> None:
        c = self.counters.setdefault(probe, {})
        c[key] = c.get(key, 0) + n

    def __bool__(self) -> bool:
        return bool(self.files or self.quarantine or self.registrations or self.flags
                    or self.facts or self.offsets)


def _ts(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


class Checkpointed(Protocol):
    """A process whose checkpoint :func:`commit` writes: the daemon, a scale-out worker's
    partition, the scale-out's rig stage. Each has its own tables for its feature state and
    position; what they produce (flags, rigs, quarantine, the report's activity, verification
    requests) goes to the same tables in the same way."""

    async def write_state(self, conn: asyncpg.Connection) -> None:
        """Write its feature state, clock and input position (first, in the transaction)."""

    async def refresh(self, conn: asyncpg.Connection) -> None:
        """Read what others changed meanwhile (the allow-list analysts edit, registrations the
        publisher wrote), last, in the same transaction."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one unit of work produced besides the process's own state."""

    flags: Sequence[Flag] = ()
    rigs: Sequence[Rig] = ()                  # rigs whose row is not what they are now
    quarantine: Sequence[tuple[str, Rejected]] = ()   # (probe, row)
    facts: activity.Facts | None = None       # the monthly report's per-SIM activity
    verify_policy: ActionPolicy | None = None  # None: no verification requests


async def commit(pool: asyncpg.Pool, process: Checkpointed, outcome: Outcome) -> list[int]:
    """One checkpoint, one transaction: ``process``'s state, then the outcome's activity,
    flags (with their history and feature snapshots), rigs, the flags' verification requests
    and quarantined rows, the new versions of the months whose activity changed, then
    ``process.refresh``. Returns the store ids of the flags, in order.
    Either all of it is in the store or none of it: a crash before the commit replays the same
    input, one after it skips it."""
    flags, rigs = list(outcome.flags), list(outcome.rigs)
    async with pool.acquire() as conn, conn.transaction():
        await process.write_state(conn)
        months = [] if outcome.facts is None else await activity.save(conn, outcome.facts)
        ids = await save_flags(conn, flags)
        await save_rigs(conn, rigs)
        await verify_outbox.enqueue(conn, flags, ids, rigs, outcome.verify_policy)
        await save_quarantine(conn, outcome.quarantine)
        await activity.new_versions(conn, months)
        await process.refresh(conn)
    return ids


@dataclass(slots=True)
class _Daemon:
    """The daemon's side of :func:`commit`: ``sim_state``, ``imei_state``, ``cells``,
    ``engine_state`` and its inputs (files, stream offsets, registrations)."""

    engine: FeatureEngine
    pipe: Pipeline
    pending: Pending
    saved_cells: int
    sims: np.ndarray
    imeis: np.ndarray
    evidence: Mapping[str, Mapping[str, str]]    # of the SIMs whose rig evidence changed
    cells: int = 0

    async def write_state(self, conn: asyncpg.Connection) -> None:
        engine, rigs = self.engine, self.pipe.rigs
        await _save_state(conn, engine, self.sims, self.imeis)
        names = engine.cell_names()[self.saved_cells:]
        if names:
            await conn.executemany("INSERT INTO cells (id, name) VALUES ($1, $2)",
                                   [(self.saved_cells + i, n) for i, n in enumerate(names)])
        self.cells = self.saved_cells + len(names)
        counters = await _merged_counters(conn, self.pending.counters)
        await conn.executemany(
            "INSERT INTO engine_state (key, value) VALUES ($1, $2::jsonb) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [("clock", json.dumps({"watermark": engine.watermark, "next_tick": self.pipe.next_tick,
                                    "observed_from": engine.observed_from})),
             ("layout", json.dumps(STATE_LAYOUT)), ("layout_fields", LAYOUT_FIELDS),
             ("counters", json.dumps(counters)),
             ("hot_cells", json.dumps(rigs.recent_machines() if rigs else {})),
             ("attaches", json.dumps(engine.attaches.tolist()))])
        await save_evidence(conn, self.evidence)
        await save_inputs(conn, replace(self.pending, quarantine=[]))   # quarantine: the outcome's
        if self.pipe.calibrator is not None:
            await calibration_store.save(conn, self.pipe.calibrator)

    async def refresh(self, conn: asyncpg.Connection) -> None:
        await load_allowlist(conn, self.pipe.allow)  # entries analysts added meanwhile


async def save(pool: asyncpg.Pool, engine: FeatureEngine, pipe: Pipeline, pending: Pending,
               saved_cells: int, verify_policy: ActionPolicy | None = None) -> tuple[int, list[int]]:
    """Commit ``pending`` and the changed state; returns how many cells the store now has
    and the store ids of the new flags."""
    sims, imeis = engine.take_unsaved()
    rigs = pipe.rigs
    evidence = rigs.unsaved_evidence() if rigs is not None else {}
    daemon = _Daemon(engine, pipe, pending, saved_cells, sims, imeis, evidence)
    try:
        flag_ids = await commit(pool, daemon, Outcome(pending.flags, pending.rigs, pending.quarantine,
                                                      pending.facts, verify_policy))
    except BaseException:
        engine.mark_unsaved(sims, imeis)
        raise
    if rigs is not None:
        rigs.saved_evidence(evidence)
        rigs.saved(pending.rigs)
    if pipe.calibrator is not None:
        pipe.calibrator.saved()
    return daemon.cells, flag_ids


async def _save_state(conn: asyncpg.Connection, engine: FeatureEngine, sims: np.ndarray,
                      imeis: np.ndarray) -> None:
    for table, key, (keys, blobs) in (("sim_state", "imsi", engine.export_sims(sims)),
                                      ("imei_state", "imei", engine.export_imeis(imeis))):
        if not keys:
            continue
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS _cp_{table} "
                           f"(k bigint, state bytea) ON COMMIT DELETE ROWS")
        await conn.copy_records_to_table(f"_cp_{table}", records=zip(keys, blobs))
        await conn.execute(
            f"INSERT INTO {table} ({key}, state) SELECT k, state FROM _cp_{table} "
            f"ON CONFLICT ({key}) DO UPDATE SET state = EXCLUDED.state"
            + (", updated_at = now()" if table == "sim_state" else ""))


async def _merged_counters(conn: asyncpg.Connection, new: dict) -> dict:
    row = await conn.fetchval("SELECT value FROM engine_state WHERE key = 'counters' FOR UPDATE")
    counters = json.loads(row) if row else {}
    for probe, c in new.items():
        mine = counters.setdefault(probe, {})
        for k, v in c.items():
            mine[k] = mine.get(k, 0) + v
    return counters


def store_text(value: str) -> str:
    """``value`` as a text column can hold it: PostgreSQL text takes no NUL and only valid
    UTF-8, and one value it refuses fails the whole checkpoint (and the daemon with it, at
    every restart). Input reaches text columns in reasons that quote a value, in file names
    (whose bytes need not be UTF-8) and in errors; a NUL is written ``\\x00``, a byte that
    is not UTF-8 ``\\xNN``."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:   # lone surrogates: undecodable bytes of a name
        value = raw_bytes(value).decode("utf-8", "backslashreplace")
    return value


def raw_bytes(raw: str) -> bytes:
    """A quarantined row's bytes (``quarantine.raw_bytes``): its text as read, bytes that
    were not UTF-8 included when they were kept as surrogates."""
    try:
        return raw.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return raw.encode("utf-8", "surrogatepass")


async def save_quarantine(conn: asyncpg.Connection, rows: Iterable[tuple[str, Rejected]]) -> None:
    """Quarantine ``(probe, row)`` pairs: any bytes the row held, text made storable. The one
    writer of quarantine rows, for the daemon and the scale-out's publisher, workers and rig
    stage alike (one row the store refuses would fail the whole transaction, at every retry)."""
    records = [(p, store_text(r.source), r.line, store_text(r.reason), raw_bytes(r.raw))
               for p, r in rows]
    if records:
        await conn.copy_records_to_table(
            "quarantine", columns=["probe", "source", "line", "reason", "raw_bytes"],
            records=records)


async def save_inputs(conn: asyncpg.Connection, pending: Pending) -> None:
    """The files finished (with their quarantined rows), stream offsets and registrations
    of ``pending``: the daemon's inputs, and the scale-out publisher's."""
    if pending.files:
        await conn.executemany(
            "INSERT INTO ingested_files (probe, name, size, sha256, status, records, rejected, detail) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [(f.probe, store_text(f.name), f.size, f.sha256, f.status, f.records, f.rejected,
              store_text(f.detail)) for f in pending.files])
    await save_quarantine(conn, pending.quarantine)
    if pending.offsets:
        await conn.executemany(
            "INSERT INTO stream_offsets (probe, topic, partition, next_offset) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (probe, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, "
            "updated_at = now()",
            [(probe, topic, partition, offset)
             for (probe, topic, partition), offset in sorted(pending.offsets.items())])
    for reg in pending.registrations:
        await conn.executemany(
            "INSERT INTO registrations (imsi, msisdn, iccid, activated_at, id_hash, channel, carrier, source) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (imsi) DO UPDATE SET "
            "msisdn = EXCLUDED.msisdn, iccid = EXCLUDED.iccid, activated_at = EXCLUDED.activated_at, "
            "id_hash = EXCLUDED.id_hash, channel = EXCLUDED.channel, carrier = EXCLUDED.carrier, "
            "source = EXCLUDED.source, updated_at = now()",
            [(int(r.imsi), int(r.msisdn), r.iccid, _ts(r.activated_at), r.id_hash, r.channel,
              r.carrier, reg.source) for r in reg.records()])
    if pending.registrations:    # the report's kept active counts by carrier and channel
        await conn.execute("UPDATE registrations_version SET version = nextval('report_versions')")


async def save_flags(conn: asyncpg.Connection, flags: Sequence[Flag]) -> list[int]:
    """Insert ``flags``, each with its history row and feature snapshot; returns their ids.
    A SIM's flag of a kind it has already is raised once: it keeps the higher score and the
    earlier time (its raise too), and no second history row or snapshot. A scale-out's rig
    stage, judging a device over every partition, can commit a SIM's flag after its worker,
    judging the partition's share, committed a later one of the same kind."""
    ids = []
    for f in flags:
        row = await conn.fetchrow(
            "INSERT INTO flags (imsi, msisdn, kind, score, flagged_at, rig_id, reasons) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) "
            "ON CONFLICT (imsi, kind) DO UPDATE SET score = GREATEST(flags.score, EXCLUDED.score), "
            "flagged_at = LEAST(flags.flagged_at, EXCLUDED.flagged_at) "
            "RETURNING id, xmax = 0 AS inserted",
            int(f.imsi), int(f.msisdn) if f.msisdn else None, f.kind, f.score, _ts(f.flagged_at),
            f.rig_id, json.dumps(list(f.reasons)))
        flag_id = row["id"]
        ids.append(flag_id)
        if not row["inserted"]:
            await conn.execute("UPDATE flag_history SET event_time = LEAST(event_time, $2) "
                               "WHERE flag_id = $1 AND event = 'raised'", flag_id, _ts(f.flagged_at))
            continue
        await conn.execute(
            "INSERT INTO flag_history (flag_id, event, score, event_time, detail) "
            "VALUES ($1, 'raised', $2, $3, $4::jsonb)",
            flag_id, f.score, _ts(f.flagged_at), json.dumps({"reasons": list(f.reasons)}))
        await conn.execute(
            "INSERT INTO feature_snapshots (imsi, event_time, purpose, features) "
            "VALUES ($1, $2, 'flag', $3::jsonb)", int(f.imsi), _ts(f.flagged_at),
            json.dumps(f.features))
    return ids


async def save_evidence(conn: asyncpg.Connection,
                        evidence: Mapping[str, Mapping[str, str]]) -> None:
    """Write the rig evidence of the SIMs in ``evidence`` as it is now (their rows only)."""
    if not evidence:
        return
    rows = [(int(imsi), kind, words) for imsi, kinds in evidence.items()
            for kind, words in kinds.items()]
    await conn.execute("DELETE FROM rig_evidence WHERE imsi = ANY($1::bigint[])",
                       [int(imsi) for imsi in evidence])
    await conn.copy_records_to_table("rig_evidence", records=rows,
                                     columns=("imsi", "kind", "words"))


async def save_rigs(conn: asyncpg.Connection, rigs: Sequence[Rig]) -> None:
    """Write ``rigs`` as they are now and point their members' flags to them; a rig
    merged into another loses its row once no flag points to it."""
    if not rigs:
        return
    members = [int(x) for r in rigs for x in r.sims]
    before = {row["rig_id"] for row in await conn.fetch(
        "SELECT DISTINCT rig_id FROM flags WHERE imsi = ANY($1::bigint[]) AND rig_id <> ''", members)}
    for r in rigs:
        await conn.execute(
            "INSERT INTO rigs (id, sims, members, devices, cells, first_at, last_at, evidence) "
            "VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6, $7, $8) ON CONFLICT (id) DO UPDATE "
            "SET sims = EXCLUDED.sims, members = EXCLUDED.members, devices = EXCLUDED.devices, "
            "cells = EXCLUDED.cells, last_at = EXCLUDED.last_at, evidence = EXCLUDED.evidence, "
            "updated_at = now()",
            r.id, len(r.sims), json.dumps(sorted(r.sims)), json.dumps(sorted(r.devices)),
            json.dumps(sorted(r.cells)), _ts(r.first), _ts(r.last), r.summary())
        await conn.execute("UPDATE flags SET rig_id = $1 WHERE imsi = ANY($2::bigint[]) AND rig_id <> $1",
                           r.id, [int(x) for x in r.sims])
    # rigs merged into others are gone: their members' flags point to the rig they joined
    gone = sorted(before - {r.id for r in rigs})
    if gone:
        await conn.execute("DELETE FROM rigs WHERE id = ANY($1::text[]) AND NOT EXISTS "
                           "(SELECT 1 FROM flags WHERE flags.rig_id = rigs.id)", gone)


@dataclass(frozen=True, slots=True)
class Restored:
    sims: int
    imeis: int
    cells: int
    flags: int
    counters: dict


async def restore(pool: asyncpg.Pool, engine: FeatureEngine, pipe: Pipeline) -> Restored:
    """Load the last checkpoint into a fresh engine and pipeline."""
    async with pool.acquire() as conn:
        rows = {r["key"]: json.loads(r["value"]) for r in
                await conn.fetch("SELECT key, value FROM engine_state")}
        cells = await conn.fetch("SELECT id, name FROM cells ORDER BY id")
        for i, r in enumerate(cells):
            if r["id"] != i:
                raise CheckpointError(f"cell table has a gap at id {i}")
            engine.cells[r["name"]] = i
        sims = await conn.fetch("SELECT imsi, state FROM sim_state")
        imeis = await conn.fetch("SELECT imei, state FROM imei_state")
        sim_blobs, imei_blobs, carried = in_this_layout(
            "the store", rows.get("layout", STATE_LAYOUT), rows.get("layout_fields"),
            [r[1] for r in sims], [r[1] for r in imeis])
        engine.import_state([r[0] for r in sims], sim_blobs, [r[0] for r in imeis], imei_blobs)
        if carried:     # the next checkpoint rewrites every record in this build's layout
            engine.mark_unsaved(np.arange(len(sims)), np.arange(len(imeis)))
        clock = rows.get("clock", {})
        engine.restore_clock(clock.get("watermark", 0), clock.get("observed_from"))
        engine.attaches = np.array(rows.get("attaches", []), np.int64).reshape(-1, 3)
        pipe.next_tick = int(clock.get("next_tick", 0))
        if pipe.next_tick:  # SIMs touched since the last tick still await their scoring
            n = len(engine.sims)
            engine.dirty[:n] = engine.sim_state["last_ts"][:n] >= pipe.next_tick - pipe.interval_s
        flags = await conn.fetch(
            "SELECT imsi, msisdn, score, flagged_at, rig_id, reasons, kind FROM flags")
        for r in flags:
            pipe.flagged[imsi_text(r["imsi"])] = flag_from_row(r)
        if pipe.rigs is not None:
            await _restore_rigs(conn, pipe)
        await load_allowlist(conn, pipe.allow)
        if pipe.calibrator is not None:
            await calibration_store.restore(conn, pipe.calibrator)
            if pipe.scorer is not None:
                pipe.scorer.use(pipe.calibrator.current.model)
    return Restored(len(sims), len(imeis), len(cells), len(flags), rows.get("counters", {}))


def in_this_layout(where: str, layout: str, fields: dict | None, sim_blobs: list[bytes],
                   imei_blobs: list[bytes]) -> tuple[list[bytes], list[bytes], bool]:
    """(SIM records, device records, carried) of a checkpoint written in ``layout`` with the
    field list ``fields``: as they are when ``layout`` is this build's, else carried into it
    by field name (:mod:`detector.features.layout`; the caller then rewrites every record at
    its next checkpoint). :class:`CheckpointError`, naming ``where``, when they cannot be."""
    if layout == STATE_LAYOUT:
        return sim_blobs, imei_blobs, False
    if fields is None:
        raise CheckpointError(
            f"{where} holds feature state of layout {layout} without its field list, this "
            f"build uses {STATE_LAYOUT}; start on an empty store or replay the feeds")
    out = []
    for kind, blobs, new, empty in (("sim", sim_blobs, st.SIM_STATE, st.empty_sim_state),
                                    ("imei", imei_blobs, st.IMEI_STATE, st.empty_imei_state)):
        try:
            records, how = state_layout.carry(blobs, state_layout.dtype_of(fields[kind]), new, empty)
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{where}: its {kind} records of layout {layout} cannot be "
                                  f"carried into this build's {STATE_LAYOUT}: {e}; start on an "
                                  f"empty store or replay the feeds") from None
        log.warning("feature state carried into this build's layout", extra={
            "where": where, "records": kind, "count": len(records), "from_layout": layout, "to_layout": STATE_LAYOUT,
            "fields_kept": len(how.kept), "fields_reset": list(how.reset),
            "fields_dropped": list(how.dropped)})
        out.append(records)
    return out[0], out[1], True


async def stream_offsets(pool: asyncpg.Pool, probe: str) -> dict[tuple[str, int], int]:
    """The next offset to read of each (topic, partition) a stream probe has checkpointed."""
    rows = await pool.fetch("SELECT topic, partition, next_offset FROM stream_offsets "
                            "WHERE probe = $1", probe)
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def known_file(pool: asyncpg.Pool, probe: str, sha256: str) -> str | None:
    """The name under which this content was already taken in, if it was."""
    return await pool.fetchval(
        "SELECT name FROM ingested_files WHERE probe = $1 AND sha256 = $2 AND status <> 'duplicate' "
        "LIMIT 1", probe, sha256)


async def _restore_rigs(conn: asyncpg.Connection, pipe: Pipeline) -> None:
    regs = await conn.fetch("SELECT imsi, msisdn, iccid, activated_at, id_hash, channel, carrier "
                            "FROM registrations")
    if regs:
        col = list(zip(*regs))
        pipe.rigs.register(RegistrationBatch(
            imsi=np.array(col[0], np.int64), msisdn=np.array(col[1], np.int64),
            iccid=np.array(col[2], object),
            activated_at=np.array([int(t.timestamp()) for t in col[3]], np.int64),
            id_hash=np.array(col[4], object), channel=np.array(col[5], object),
            carrier=np.array(col[6], object), line=np.zeros(len(regs), np.int64)))
    pipe.rigs.restore(list(pipe.flagged.values()))
    saved = await conn.fetchval("SELECT value FROM engine_state WHERE key = 'hot_cells'")
    pipe.rigs.restore_machines(json.loads(saved) if saved else {})
    evidence: dict[str, dict[str, str]] = {}
    for row in await conn.fetch("SELECT imsi, kind, words FROM rig_evidence ORDER BY imsi, kind"):
        evidence.setdefault(imsi_text(row["imsi"]), {})[row["kind"]] = row["words"]
    pipe.rigs.restore_evidence(evidence)


@dataclass(frozen=True, slots=True)
class FlagEvent:
    """A change of a flag as the stream carries it (table ``flag_events``): ``event`` is
    ``flag`` (committed), ``rig_assigned`` (its rig set or changed) or ``updated``; ``flag``
    is the flag as it is after the change."""

    event_id: int
    event: str
    flag_id: int
    flag: Flag


async def flag_events_after(pool: asyncpg.Pool, event_id: int) -> list[FlagEvent]:
    """Committed flag events with an id above ``event_id``, in id (= commit) order."""
    rows = await pool.fetch(
        "SELECT id, event, flag_id, imsi, msisdn, score, flagged_at, rig_id, reasons, kind "
        "FROM flag_events WHERE id > $1 ORDER BY id", event_id)
    return [FlagEvent(r["id"], r["event"], r["flag_id"], flag_from_row(r)) for r in rows]


async def flag_event_of(pool: asyncpg.Pool, flag_id: int) -> int:
    """The id of the event that committed flag ``flag_id`` (or of the newest flag before it):
    where a stream written before events had ids, which ends with that flag, resumes."""
    return await pool.fetchval(
        "SELECT coalesce(max(id), 0) FROM flag_events WHERE event = 'flag' AND flag_id <= $1",
        flag_id)


async def first_flags(conn: asyncpg.Connection, until: int | None = None) -> dict[str, Flag]:
    """Each SIM's first flag (the earliest in event time, then the first stored), of those
    flagged at or before ``until`` when given. In the scale-out a SIM can have a rig flag and
    a later ``sim_anomaly`` one, stored in either order: a restarted rig stage must know the
    one it saw first, as a rig's first activity is its founding flag's time."""
    rows = await conn.fetch(
        "SELECT imsi, msisdn, score, flagged_at, rig_id, reasons, kind FROM flags "
        "WHERE $1::bigint IS NULL OR flagged_at <= to_timestamp($1) ORDER BY flagged_at, id", until)
    out: dict[str, Flag] = {}
    for r in rows:
        out.setdefault(imsi_text(r["imsi"]), flag_from_row(r))
    return out


def flag_from_row(r) -> Flag:
    """A ``flags`` row (imsi, msisdn, score, flagged_at, rig_id, reasons, kind) as a Flag."""
    return Flag(imsi=imsi_text(r["imsi"]), msisdn=msisdn_text(r["msisdn"]) if r["msisdn"] else "",
                score=float(r["score"]),
                flagged_at=int(r["flagged_at"].timestamp()), reasons=tuple(json.loads(r["reasons"])),
                kind=r["kind"], rig_id=r["rig_id"])


# ---- probe health (goipwatch status reads it) ----------------------------------------------

async def reset_probe_health(pool: asyncpg.Pool, probes: list[str]) -> None:
    """At start: forget probes no longer configured (the others are written as they start)."""
    await pool.execute("DELETE FROM probe_health WHERE probe <> ALL($1::text[])", probes)


async def save_probe_health(pool: asyncpg.Pool, health: ProbeHealth) -> None:
    """A probe's health, written when it changes."""
    await pool.execute(
        "INSERT INTO probe_health (probe, state, failing, error, failures, since) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (probe) DO UPDATE SET state = EXCLUDED.state, "
        "failing = EXCLUDED.failing, error = EXCLUDED.error, failures = EXCLUDED.failures, "
        "since = EXCLUDED.since, updated_at = now()",
        health.probe, health.state, health.failing, store_text(health.error), health.failures,
        datetime.fromtimestamp(health.since, UTC))
