"""The rig stage: rigs from the per-SIM summaries of all partitions.

Rig evidence spans partitions (the SIMs of one gateway hash to different partitions), so no
worker can see it. Each worker sends, after every tick, one ``sum`` message with its SIMs
that show rig-like evidence or are callers, and the contacts its SIMs had with numbers of no
SIM of the partition; the rig stage waits until it has that step from every partition,
rebuilds the step's feature frame from them (records included, their cells renamed into its
own table), gives the records it takes in their contacts of the day with the SIMs of other
partitions (:mod:`detector.scale.contacts`), counts ``sims_per_imei`` over the devices'
SIMs of every partition (each worker sends the devices its records named) and scores again
the rows whose count its worker could not see, and runs the same
:class:`detector.rigs.book.RigBook` as the single-process daemon: co-located machine-like
SIMs in a cell, shared devices, calling groups, bulk registrations (read from the store,
where the publisher put them), union-find into rigs.

It handles steps in event-time order, exactly once: each step's new flags, rigs, records and
the summary position commit in one transaction; summaries of steps already handled are
dropped, a partition's repeated summary of a pending step replaces the first. Its own
checkpoint is the row of partition -1 in ``scale_partitions``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from datetime import datetime

import asyncpg
import numpy as np

from detector import model as model_mod
from detector.config import Config
from detector.features.catalog import FEATURES
from detector.features.engine import Contacts, DeviceUses, FeatureFrame
from detector.feedback import AllowList, load_allowlist
from detector.flags import Flag
from detector.ids import imsi_text
from detector.records import RegistrationBatch, Rejected
from detector.rigs.book import RigBook
from detector.scale import bus, codec
from detector.scale.attached import attached, stop_on_signals
from detector.scale.checkpoint import import_records
from detector.scale.config import ScaleConfig
from detector.scale.contacts import CrossContacts, contacts_of
from detector.scale.summaries import contacts_bytes, contacts_from, flags_of
from detector.scoring import Scorer
from detector.store.checkpoint import LAYOUT_FIELDS, STATE_LAYOUT, Outcome, commit, first_flags

log = logging.getLogger("goipwatch.rigs")
RIG_PARTITION = -1
_STEP = {"tick": 0, "flush": 1}
_SIMS_PER_IMEI = FEATURES.index("sims_per_imei_24h")


class RigStage:
    def __init__(self, config: Config) -> None:
        if config.scale is None:
            raise ValueError("the configuration has no [scale] section")
        self.config = config
        self.scale: ScaleConfig = config.scale
        self.scorer = Scorer(model_mod.load(config.detector.model), config.detector.policy)
        f = config.features
        self.engine = f.engine()
        self.book = RigBook(self.engine, self.scorer, config.detector.rigs)
        self.verify_policy = config.verification.policy if config.verification is not None else None
        self.allow = AllowList()
        self.flagged: dict[str, Flag] = {}
        self.contacts = CrossContacts()
        self.new_contacts: dict[int, bytes] = {}     # per step key, the contacts it brought (unsaved)
        self.done: tuple[int, int] = (0, 0)           # last (event time, step) handled
        # per step, per (partition, chunk): (stream sequence, summary)
        self.pending: dict[tuple[int, int], dict[tuple[int, int], tuple[int, codec.Message]]] = defaultdict(dict)
        self.handled_seq = 0                          # summaries before this one are handled
        self.seen_seq = 0
        self.counters: dict[str, int] = {}
        self.quarantine: list[Rejected] = []
        self._regs_seen: datetime | None = None
        self.stopping = asyncio.Event()

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    # ---- checkpoint ------------------------------------------------------------------------

    async def restore(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO scale_partitions (stream, partition, layout) VALUES ($1, $2, $3::jsonb) "
                               "ON CONFLICT DO NOTHING", self.scale.stream, RIG_PARTITION, json.dumps(STATE_LAYOUT))
            row = await conn.fetchrow("SELECT * FROM scale_partitions WHERE stream = $1 AND partition = $2",
                                      self.scale.stream, RIG_PARTITION)
            for i, name in enumerate(json.loads(row["cells"])):
                self.engine.cells[name] = i
            rows = await conn.fetch("SELECT key, state FROM scale_state WHERE stream = $1 AND partition = $2 "
                                    "AND kind = 's'", self.scale.stream, RIG_PARTITION)
            devs = await conn.fetch("SELECT key, state FROM scale_state WHERE stream = $1 AND partition = $2 "
                                    "AND kind = 'i'", self.scale.stream, RIG_PARTITION)
            import_records(self.engine, row, f"the rig stage of {self.scale.stream}", rows, devs)
            for r in await conn.fetch("SELECT state FROM scale_state WHERE stream = $1 AND partition = $2 "
                                      "AND kind = 'c' ORDER BY key", self.scale.stream, RIG_PARTITION):
                self.contacts.add(contacts_from(r["state"]))
            meta = json.loads(row["counters"])
            self.engine.restore_clock(meta.get("watermark", row["watermark"]), meta.get("observed_from"))
            self.done = (int(row["watermark"]), int(row["next_tick"]))
            self.handled_seq = self.seen_seq = int(row["last_seq"])
            self.counters = meta.get("counters", {})
            # each SIM's first flag of the steps handled (workers may have committed later ones
            # already, and a SIM's later sim_anomaly flag may be stored before its rig flag)
            self.flagged.update(await first_flags(conn, self.done[0]))
            await self.read_registrations(conn)
            self.book.restore(list(self.flagged.values()))
            self.book.restore_machines(meta.get("hot_cells", {}))
            self.book.restore_evidence(meta.get("rig_evidence", {}))
            await load_allowlist(conn, self.allow)

    async def read_registrations(self, conn: asyncpg.Connection) -> None:
        """Bulk registrations: the store's registrations when they changed since last read."""
        newest = await conn.fetchval("SELECT max(updated_at) FROM registrations")
        if newest is None or newest == self._regs_seen:
            return
        self._regs_seen = newest
        regs = await conn.fetch("SELECT imsi, msisdn, iccid, activated_at, id_hash, channel, carrier "
                                "FROM registrations ORDER BY imsi")
        col = list(zip(*regs))
        self.book.register(RegistrationBatch(
            imsi=np.array(col[0], np.int64), msisdn=np.array(col[1], np.int64),
            iccid=np.array(col[2], object), activated_at=np.array([int(t.timestamp()) for t in col[3]], np.int64),
            id_hash=np.array(col[4], object), channel=np.array(col[5], object),
            carrier=np.array(col[6], object), line=np.zeros(len(regs), np.int64)))

    # ---- steps -------------------------------------------------------------------------------

    def offer(self, seq: int, data: bytes) -> None:
        """Take one summary; bad ones are kept with their reason."""
        self.seen_seq = max(self.seen_seq, seq)
        try:
            msg = codec.decode(data)
            if msg.kind != "sum" or not 0 <= msg.fields["partition"] < self.scale.partitions:
                raise codec.BadMessage(f"{msg.kind} message on a summary subject, or a partition "
                                       f"outside 0..{self.scale.partitions - 1}")
        except codec.BadMessage as e:
            self.count("bad_messages")
            self.quarantine.append(Rejected(f"summary seq {seq}", seq, f"bad message: {e}",
                                            bytes(data[:200]).hex()))
            return
        key = (int(msg.fields["at"]), _STEP[msg.fields["step"]])
        if key <= self.done:
            self.count("summaries_repeated")
            return
        self.pending[key][int(msg.fields["partition"]), int(msg.fields.get("chunk", 0))] = (seq, msg)

    def ready(self) -> tuple[int, int] | None:
        """The oldest step every partition has summarised (every chunk of it), if it is the
        oldest pending."""
        if not self.pending:
            return None
        key = min(self.pending)
        have: dict[int, int] = defaultdict(int)
        need: dict[int, int] = {}
        for (p, _), (_, msg) in self.pending[key].items():
            have[p] += 1
            need[p] = msg.fields.get("chunks", 1)
        complete = len(need) == self.scale.partitions and all(have[p] == n for p, n in need.items())
        return key if complete else None

    def step(self, key: tuple[int, int]) -> tuple[list[Flag], np.ndarray]:
        """Run the rig book on one complete step; returns the new rig flags and the slots of
        the SIM records it took in."""
        msgs = [m for _, (_, m) in sorted(self.pending.pop(key).items())]
        self.done = key
        self.count("steps")
        # the daemon's clock at this tick: the newest event time of all partitions (each
        # partition's watermark is the publisher's as of its last piece), and watching began
        # with the oldest record of the first piece; summaries without a clock: the step's time
        clocks = [m.fields for m in msgs if "watermark" in m.fields]
        self.engine.watermark = max(self.engine.watermark,
                                    max((c["watermark"] for c in clocks), default=key[0]))
        if not self.engine.observed_from:
            began = [c["observed_from"] for c in clocks if c.get("observed_from")]
            self.engine.observed_from = min(began) if began else key[0]
        flags = sorted((f for m in msgs for f in flags_of(m)), key=lambda f: (f.flagged_at, f.imsi))
        n_feat = len(FEATURES)
        mine = [contacts_of(m.columns) for m in msgs]
        step_contacts = Contacts(*(np.concatenate([getattr(c, k) for c in mine])
                                   for k in ("imsi", "number", "peer", "hour")))
        self.contacts.add(step_contacts)
        self.contacts.forget_before(self.engine.watermark // 3600 - 24)
        if len(step_contacts):
            self.new_contacts[key[0] * 2 + key[1]] = contacts_bytes(step_contacts)
        # every partition's SIMs in each device, before any record is read: a gateway's ports
        # carry SIMs of many partitions, and sims_per_imei counts them all as in the daemon
        self.engine.note_device_uses(DeviceUses(*(np.concatenate([m.columns[f"device_{k}"] for m in msgs])
                                                  for k in ("imei", "imsi", "hour"))))
        imsi = np.concatenate([m.columns["imsi"] for m in msgs])
        if not len(imsi):
            return [], np.empty(0, np.int64)
        taken = np.concatenate([self.engine.take_records(m.columns["imsi"], m.columns["state"], m.fields["cells"])
                                for m in msgs])
        joined = self.contacts.join(self.engine, taken)
        order = np.argsort(imsi, kind="stable")
        slots = taken[order]
        cat = lambda name: np.concatenate([m.columns[name] for m in msgs])[order]  # noqa: E731
        frame = FeatureFrame(sims=slots, imsi=imsi[order], msisdn=cat("msisdn"), at=cat("at"),
                             values=cat_2d(msgs, "values", n_feat)[order], activity=cat("activity"))
        strengths = cat_2d(msgs, "strengths", n_feat)[order]
        allowed = lambda f: self.allow.allows(f, self.engine)  # noqa: E731
        flags, own = self.network_devices(frame, strengths, flags, allowed)
        known = dict(self.flagged)
        out = self.book.extend(frame, strengths, flags, known, skip=allowed)
        new = []
        for f in out:
            if f.imsi not in self.flagged:
                self.flagged[f.imsi] = f
                if f.kind != "sim_anomaly" or f.imsi in own:
                    new.append(f)
        self.count("rig_flags", len(new))
        return new, np.union1d(slots, joined)

    def network_devices(self, frame: FeatureFrame, strengths: np.ndarray, flags: list[Flag], allowed
                        ) -> tuple[list[Flag], set[str]]:
        """Score again, as the daemon does, the rows whose ``sims_per_imei`` over the devices'
        SIMs of every partition is not what their worker counted over its own (``frame`` and
        ``strengths`` are changed in place). Returns the step's flags with those the
        workers made of such rows replaced, and the SIMs this stage flags itself (no worker
        flagged them: their partition's share of the device did not show enough)."""
        values = frame.values
        network = self.engine.sims_per_imei(frame.sims)
        wider = np.flatnonzero(network != values[:, _SIMS_PER_IMEI])
        if not len(wider):
            return flags, set()
        self.count("sims_per_imei_widened", len(wider))
        values[wider, _SIMS_PER_IMEI] = network[wider]
        strengths[wider] = self.scorer.strengths(values[wider])
        rescored, _ = self.scorer.assess(FeatureFrame(frame.sims[wider], frame.imsi[wider], frame.msisdn[wider],
                                                      frame.at[wider], values[wider], frame.activity[wider]))
        rescored = [f for f in rescored if not allowed(f)]
        by_workers = {f.imsi for f in flags}
        replaced = {imsi_text(i) for i in frame.imsi[wider]}
        # a worker's flag of a widened row was judged on its partition's share: the daemon's
        # is judged on the whole device (its words and the feature values the rig rules read)
        out = [f for f in flags if f.imsi not in replaced] + rescored
        out.sort(key=lambda f: (f.flagged_at, f.imsi))
        return out, {f.imsi for f in rescored if f.imsi not in by_workers and f.imsi not in self.flagged}

    async def save(self, pool: asyncpg.Pool, new: list[Flag], slots: np.ndarray) -> None:
        """Commit one step (or quarantined summaries): position, clock, hot-cell memory and
        evidence, the records taken in, the new rig flags and the rigs as they are now, their
        verification requests (police leads included) and the quarantine, in one transaction
        (:func:`detector.store.checkpoint.commit`)."""
        first_pending = min((seq for by_p in self.pending.values() for seq, _ in by_p.values()), default=None)
        handled = (first_pending - 1) if first_pending is not None else self.seen_seq
        rigs = self.book.unsaved_rigs()   # grown, merged, or still at work
        quarantine, self.quarantine = self.quarantine, []
        contacts, self.new_contacts = self.new_contacts, {}
        # the SIM records saved are the step's ``slots``, and any marked unsaved (all of them
        # once carried from another build's layout at a restart)
        sims, devices = self.engine.take_unsaved()
        try:
            await commit(pool, _StageState(self, handled, np.union1d(slots, sims), contacts, devices),
                         Outcome(flags=new, rigs=rigs, quarantine=[("rig-stage", r) for r in quarantine],
                                 verify_policy=self.verify_policy))
        except BaseException:
            self.quarantine = quarantine + self.quarantine
            self.new_contacts = contacts | self.new_contacts
            self.engine.mark_unsaved(sims, devices)
            raise
        self.book.saved(rigs)
        self.handled_seq = handled

    # ---- running -----------------------------------------------------------------------------

    async def run(self, idle_exit_s: float | None = None, signals: bool = True) -> None:
        """Handle summaries until stopped (SIGTERM/SIGINT, unless ``signals`` is false) or,
        with ``idle_exit_s``, until none has come for that long."""
        stop_on_signals(self.stopping.set, signals)
        async with attached(self.config, (RIG_PARTITION,)) as (pool, js):   # one per stream
            await self.restore(pool)
            sub = await bus.summary_consumer(js, self.scale, self.handled_seq)
            last = time.monotonic()
            while not self.stopping.is_set():
                try:
                    msgs = await sub.fetch(self.scale.fetch_batch, timeout=0.2)
                except asyncio.TimeoutError:
                    msgs = []
                for m in msgs:
                    if m.metadata.sequence.stream > self.handled_seq:
                        self.offer(m.metadata.sequence.stream, m.data)
                while (key := self.ready()) is not None:
                    new, slots = await asyncio.to_thread(self.step, key)
                    await self.save(pool, new, slots)
                if self.quarantine:
                    await self.save(pool, [], np.empty(0, np.int64))
                for m in msgs:
                    await m.ack()
                if msgs:
                    last = time.monotonic()
                elif idle_exit_s is not None and time.monotonic() - last >= idle_exit_s:
                    break


class _StageState:
    """The rig stage's side of :func:`detector.store.checkpoint.commit`: row ``partition = -1``
    of ``scale_partitions`` (position, step, cells, counters, hot-cell memory, rig evidence,
    watching clock), the SIM records it took in or changed, the devices whose SIM bitmaps
    changed (every partition's SIMs in them), and the contacts between partitions of the
    steps since the last commit (one row per step, kept for a day)."""

    def __init__(self, stage: RigStage, handled: int, slots: np.ndarray, contacts: dict[int, bytes],
                 devices: np.ndarray) -> None:
        self.stage, self.handled, self.slots, self.contacts = stage, handled, slots, contacts
        self.devices = devices

    async def write_state(self, conn: asyncpg.Connection) -> None:
        stage = self.stage
        engine, book = stage.engine, stage.book
        await conn.execute(
            "UPDATE scale_partitions SET last_seq = $3, watermark = $4, next_tick = $5, cells = $6::jsonb, "
            "counters = $7::jsonb, layout = $8::jsonb, layout_fields = $9::jsonb, updated_at = now() "
            "WHERE stream = $1 AND partition = $2",
            stage.scale.stream, RIG_PARTITION, self.handled, stage.done[0], stage.done[1],
            json.dumps(list(engine.cells)),
            json.dumps({"counters": stage.counters, "hot_cells": book.recent_machines(),
                        "rig_evidence": book.evidence_by_sim(), "observed_from": engine.observed_from,
                        "watermark": engine.watermark}),
            json.dumps(STATE_LAYOUT), LAYOUT_FIELDS)
        keys, blobs = engine.export_sims(self.slots) if len(self.slots) else ([], [])
        dev_keys, dev_blobs = engine.export_imeis(self.devices) if len(self.devices) else ([], [])
        for kind, rows in (("s", zip(keys, blobs)), ("c", self.contacts.items()), ("i", zip(dev_keys, dev_blobs))):
            rows = list(rows)
            if not rows:
                continue
            # thousands of records a step (every active caller): copied in, not inserted one by one
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS _stage_cp (k bigint, state bytea) "
                               "ON COMMIT DELETE ROWS")
            await conn.copy_records_to_table("_stage_cp", records=rows)
            await conn.execute(
                "INSERT INTO scale_state (stream, partition, kind, key, state) "
                "SELECT $1, $2, $3, k, state FROM _stage_cp ON CONFLICT (stream, partition, kind, key) "
                "DO UPDATE SET state = EXCLUDED.state", stage.scale.stream, RIG_PARTITION, kind)
            await conn.execute("TRUNCATE _stage_cp")
        if self.contacts:
            # a step's contacts are of its last hours: the rows of steps more than a day (and
            # the lateness) before the watermark hold none the stage keeps
            oldest = engine.watermark - 24 * 3600 - engine.lateness_s - 3600
            await conn.execute("DELETE FROM scale_state WHERE stream = $1 AND partition = $2 AND kind = 'c' "
                               "AND key < $3", stage.scale.stream, RIG_PARTITION, oldest * 2)

    async def refresh(self, conn: asyncpg.Connection) -> None:
        await self.stage.read_registrations(conn)
        await load_allowlist(conn, self.stage.allow)


def cat_2d(msgs: list[codec.Message], name: str, width: int) -> np.ndarray:
    return np.concatenate([m.columns[name].reshape(-1, width) for m in msgs])
