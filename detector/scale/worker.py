"""A detector worker: owns some partitions of the stream and keeps their per-SIM state.

Each partition has its own feature engine and pipeline, fed only by that partition's
messages in stream order, so what a partition computes does not depend on which worker owns
it or how many workers there are. Per partition and per fetched batch of messages the worker
applies them, commits one checkpoint (state, last sequence, flags, quarantine) and only then
acks them (see :mod:`detector.scale.checkpoint`). A bad message is quarantined with its reason
and counted; the worker goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import asyncpg

from detector import model as model_mod
from detector.config import Config
from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.records import Rejected
from detector.scale import bus, checkpoint as scp, codec
from detector.scale.attached import attached, stop_on_signals
from detector.scale.config import ScaleConfig
from detector.scale.partition import partition_of
from detector.scale.summaries import Summaries
from detector.scoring import Scorer
from detector.store import activity
from detector.store.checkpoint import Pending

log = logging.getLogger("goipwatch.worker")


@dataclass(slots=True)
class Partition:
    number: int
    partitions: int
    engine: FeatureEngine
    pipe: Pipeline
    summaries: Summaries                                # the pipeline's rig pass
    last_seq: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    pending: Pending = field(default_factory=Pending)
    outbox: list[bytes] = field(default_factory=list)   # summaries for the rig stage

    @property
    def probe(self) -> str:
        return f"partition-{self.number}"

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def apply(self, seq: int, data: bytes) -> None:
        """Apply the message at stream sequence ``seq`` (one past the checkpoint or later)."""
        self.last_seq = seq
        self.count("messages")
        try:
            msg = codec.decode(data)
            self._check_partition(msg)
        except codec.BadMessage as e:
            self.count("bad_messages")
            self.pending.quarantine.append((self.probe, Rejected(
                f"stream seq {seq}", seq, f"bad message: {e}", bytes(data[:200]).hex())))
            log.warning("bad message quarantined", extra={"partition": self.number, "seq": seq,
                                                           "reason": str(e)})
            return
        if msg.kind == "cdr":
            batch = msg.cdr_batch()
            self.engine.watermark = max(self.engine.watermark, int(msg.fields["watermark"]))
            applied = self.engine.apply(batch)
            late = int(applied.late.sum())
            # contacts with other partitions' SIMs: for the rig stage, which joins them by number;
            # and its devices' SIMs: for the rig stage, which counts a device's SIMs of all partitions
            took = batch.take(~applied.late) if late else batch
            self.summaries.note_contacts(took)
            self.summaries.note_devices(took)
            if late:  # the publisher refuses late records: only a stale publisher gets here
                self.pending.quarantine += [(self.probe, Rejected(batch.source, int(line),
                                             "late at the worker (behind the partition's watermark)"))
                                            for line in batch.line[applied.late]]
                self.count("rejected", late)
            self.count("records", len(batch) - late)
            # the report's per-SIM activity (feed coverage is the publisher's: it sees whole files)
            self.pending.facts.activity.append(activity.summarise(batch, ~applied.late))
        elif msg.kind == "reg":
            c = msg.columns
            self.engine.set_registrations(c["imsi"], c["msisdn"], c["activated_at"], c["id_key"],
                                          c["id_cards"])
            self.count("registrations", len(c["imsi"]))
        elif msg.kind == "tick":
            at = int(msg.fields["at"])
            if self.pipe.next_tick and at < self.pipe.next_tick:
                self.count("ticks_repeated")  # a tick republished after the publisher restarted
                return
            self.pending.flags += self.pipe.tick(at)
            self.outbox += self.summaries.take("tick", at)
            self.count("ticks")
        else:  # flush
            self.pending.flags += self.pipe.score_dirty()
            self.outbox += self.summaries.take("flush", int(msg.fields.get("watermark", 0)))
            self.count("flushes")

    def _check_partition(self, msg: codec.Message) -> None:
        imsi = msg.columns.get("imsi")
        if imsi is not None and len(imsi) and \
                (partition_of(imsi, self.partitions) != self.number).any():
            raise codec.BadMessage(f"{msg.kind} message holds SIMs of another partition")


def make_partition(config: Config, scorer: Scorer, number: int) -> Partition:
    f = config.features
    engine = f.engine()
    summaries = Summaries(engine, scorer, number, config.detector.rigs, config.scale.calling_groups)
    pipe = Pipeline(engine, scorer, config.detector.scoring_interval_s, rigs=summaries)
    return Partition(number, config.scale.partitions, engine, pipe, summaries)


class Worker:
    def __init__(self, config: Config, partitions: tuple[int, ...]) -> None:
        if config.scale is None:
            raise ValueError("the configuration has no [scale] section")
        self.config = config
        self.scale: ScaleConfig = config.scale
        bad = [p for p in partitions if not 0 <= p < self.scale.partitions]
        if bad or not partitions:
            raise ValueError(f"partitions {bad or '(none)'} are not in 0..{self.scale.partitions - 1}")
        self.numbers = tuple(sorted(set(partitions)))
        self.verify_policy = config.verification.policy if config.verification is not None else None
        self.scorer = Scorer(model_mod.load(config.detector.model), config.detector.policy)
        self.stopping = asyncio.Event()
        self.parts: dict[int, Partition] = {}
        self.applied = 0

    def stop(self) -> None:
        self.stopping.set()

    async def run(self, idle_exit_s: float | None = None, signals: bool = True) -> None:
        """Consume until stopped (SIGTERM/SIGINT, unless ``signals`` is false) or, with
        ``idle_exit_s``, until no partition has had a message for that long."""
        stop_on_signals(self.stop, signals)
        async with attached(self.config, self.numbers) as (pool, js):
            subs = {}
            flags = await scp.sim_flags(pool)   # once for all the partitions
            for n in self.numbers:
                part = self.parts[n] = make_partition(self.config, self.scorer, n)
                await scp.restore(pool, self.scale.stream, part, flags)
                await self._send_outbox(js, part)   # what the last run committed but may not have sent
                subs[n] = await bus.consumer_from(js, self.scale, n, part.last_seq)
            log.info("worker running", extra={"partitions": list(self.numbers)})
            last_message = time.monotonic()
            while not self.stopping.is_set():
                got = 0
                for n in self.numbers:
                    if self.stopping.is_set():
                        break
                    got += await self._step(js, pool, self.parts[n], subs[n])
                if got:
                    last_message = time.monotonic()
                elif idle_exit_s is not None and time.monotonic() - last_message >= idle_exit_s:
                    break
        log.info("worker stopped", extra={"applied": self.applied})

    async def _send_outbox(self, js, part: Partition) -> None:
        """Send the committed summaries; the rig stage drops what it has already (same
        partition and step), so sending again after a crash is harmless."""
        acks = []
        for data in part.outbox:
            head = codec.decode(data).fields
            acks.append(await js.publish_async(
                self.scale.summary_subject(part.number), data, stream=self.scale.stream,
                headers={"Nats-Msg-Id": f"sum:{part.number}:{head['step']}:{head['at']}:{head.get('chunk', 0)}"}))
        await asyncio.gather(*acks)   # an error leaves them in the outbox for the next start
        part.outbox = []

    async def _step(self, js, pool: asyncpg.Pool, part: Partition, sub) -> int:
        try:
            msgs = await sub.fetch(self.scale.fetch_batch, timeout=0.05)
        except asyncio.TimeoutError:
            return 0
        fresh = fresh_messages(msgs, part.last_seq)
        if fresh:
            await asyncio.to_thread(self._apply_all, part, fresh)
            await scp.save(pool, self.scale.stream, part, self.verify_policy)
            await self._send_outbox(js, part)
        for m in msgs:  # after the commit: a crash before here redelivers, and they are skipped
            await m.ack()
        self.applied += len(fresh)
        return len(msgs)

    @staticmethod
    def _apply_all(part: Partition, msgs) -> None:
        for m in msgs:
            part.apply(m.metadata.sequence.stream, m.data)


def fresh_messages(msgs: list, last_seq: int) -> list:
    """The messages of a fetch to apply: each stream sequence above ``last_seq`` once, in
    stream order. A fetch can hold a message twice: one delivered to an earlier fetch that
    timed out waits in the subscription's queue, and when the partition's next fetch comes
    after ``ack_wait_s`` (a worker going round many partitions on a busy machine), JetStream
    has delivered it again too."""
    out = []
    for m in sorted(msgs, key=lambda m: m.metadata.sequence.stream):
        if m.metadata.sequence.stream > last_seq:
            out.append(m)
            last_seq = m.metadata.sequence.stream
    return out


def partitions_arg(text: str, partitions: int) -> tuple[int, ...]:
    """``0,3,5-7`` → (0, 3, 5, 6, 7)."""
    out = []
    for piece in text.split(","):
        lo, _, hi = piece.strip().partition("-")
        try:
            out += range(int(lo), int(hi or lo) + 1)
        except ValueError:
            raise ValueError(f"--partitions: {piece!r} is not a number or a range a-b") from None
    bad = [p for p in out if not 0 <= p < partitions]
    if bad:
        raise ValueError(f"--partitions: {bad} not in 0..{partitions - 1}")
    return tuple(sorted(set(out)))



