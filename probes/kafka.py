"""Kafka probe: CDR rows from Kafka topics, consumed in micro-batches, exactly once.

Message format: the value is UTF-8 CSV text, one or more rows separated by newlines, columns
in the order of ``[probes.kafka].columns`` (the canonical CDR order by default), spelt as the
probe's ``[probes.layout]`` says. A message may start with exactly that header line, which
is skipped. Keys and headers of messages are not read.

Exactly once: the probe assigns each partition itself (no group rebalancing) at the offset
stored in the store's last checkpoint, and each micro-batch is offered to the daemon as one
:class:`KafkaWork` whose next offsets the daemon commits in the same transaction as the
feature state the batch changed. A crash before that commit leaves the old offsets, so the
batch is read again into a state that never saw it; a crash after it finds them advanced.
Kafka's own committed offsets (group ``group_id``) are written after the store commit, for
lag monitoring only; they are never read back.

A bad row (undecodable, wrong field count, bad value) is quarantined with its source
``topic/partition@offset`` and its line within the message; an empty message is quarantined
whole (line 0). Neither stops the partition.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from detector.records import CdrBatch, Rejected
from probes.config import ProbeConfig
from probes.csvparse import Parsed, parse_cdr_block, Layout
from probes.health import InputHealth
from probes.interface import (FiniteProbe, Intake, Offer, Offsets, ReportsHealth, ReportsLag,
                              ResumableProbe)

log = logging.getLogger(__name__)

# Client errors that mean the input is down (transient disconnects are not reported).
_DOWN = {"_ALL_BROKERS_DOWN", "_RESOLVE", "_AUTHENTICATION", "_SSL", "_FATAL",
         "SASL_AUTHENTICATION_FAILED", "TOPIC_AUTHORIZATION_FAILED",
         "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"}
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Received:
    """One consumed message (only what parsing needs)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True, slots=True, eq=False)
class MessageLines:
    """Which message each line of a micro-batch's joined text came from."""

    first_line: np.ndarray        # line number (in the joined text) of each message's first row
    sources: tuple[str, ...]      # "topic/partition@offset" of each message
    skipped: np.ndarray           # 1 where the message's header line was skipped

    def locate(self, line: int) -> tuple[str, int]:
        """(source, line within the message value) of a line of the joined text."""
        i = int(np.searchsorted(self.first_line, line, side="right")) - 1
        return self.sources[i], int(line - self.first_line[i] + 1 + self.skipped[i])


def source_of(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}@{offset}"


def parse_messages(messages: list[Received], header: list[str], layout: Layout
                   ) -> tuple[Parsed[CdrBatch], MessageLines]:
    """Parse the rows of many messages at once; rejects name their message and line."""
    header_line = ",".join(header).encode()
    parts: list[bytes] = []
    firsts: list[int] = []
    sources: list[str] = []
    skipped: list[int] = []
    rejected: list[Rejected] = []
    line = 1
    for m in messages:
        src = source_of(m.topic, m.partition, m.offset)
        value = m.value or b""
        skip = 0
        nl = value.find(b"\n")
        first = value[:nl if nl >= 0 else len(value)].rstrip(b"\r")
        if first.removeprefix(BOM).strip() == header_line:
            value, skip = (value[nl + 1:] if nl >= 0 else b""), 1
        if not value.strip():
            rejected.append(Rejected(src, 0, "message holds no rows" if skip else
                                     "empty message (no value)"))
            continue
        if not value.endswith(b"\n"):
            value += b"\n"
        parts.append(value)
        firsts.append(line)
        sources.append(src)
        skipped.append(skip)
        line += value.count(b"\n")
    lines = MessageLines(np.array(firsts, np.int64), tuple(sources), np.array(skipped, np.int64))
    if not parts:
        return Parsed(CdrBatch.empty(), tuple(rejected)), lines
    parsed = parse_cdr_block(b"".join(parts), header, 1, "kafka", layout)
    rejected += [Rejected(*lines.locate(r.line), r.reason, r.raw) for r in parsed.rejected]
    return Parsed(parsed.batch, tuple(rejected), parsed.blank_lines), lines


@dataclass(frozen=True, slots=True, eq=False)
class KafkaWork:
    """A micro-batch offered to the daemon; committed with the next offset of each partition."""

    probe: str
    parsed: Parsed[CdrBatch]
    lines: MessageLines
    offsets: dict[tuple[str, int], int]     # (topic, partition) -> next offset to read
    messages: int
    on_stored: Callable[[], None]           # the daemon calls it once the checkpoint committed
    kind: str = "cdr"

    async def blocks(self) -> AsyncIterator[Parsed]:
        yield self.parsed

    @property
    def first_ts(self) -> int | None:
        """Event time of its earliest record, for the daemon's event-time order."""
        ts = self.parsed.batch.ts
        return int(ts.min()) if len(ts) else None

    @property
    def name(self) -> str:
        """The input's name in reports and coverage: its topics."""
        return ",".join(sorted({topic for topic, _ in self.offsets}))

    def locate(self, source: str, line: int) -> tuple[str, int]:
        return self.lines.locate(line)

    def hand_to(self, intake: Intake) -> Awaitable[None]:
        return intake.take_messages(self)


@dataclass(slots=True)
class _Positions:
    stored: dict[tuple[str, int], int] = field(default_factory=dict)    # committed to the store
    read: dict[tuple[str, int], int] = field(default_factory=dict)      # next offset to consume
    high: dict[tuple[str, int], int] = field(default_factory=dict)      # newest high watermarks
    end: dict[tuple[str, int], int] = field(default_factory=dict)       # high watermarks at start


class KafkaProbe(ResumableProbe, FiniteProbe, ReportsHealth, ReportsLag):
    """Offers micro-batches of CDR rows from the configured topics."""

    def __init__(self, config: ProbeConfig) -> None:
        if config.kafka is None:
            raise ValueError(f"probe {config.name}: no [probes.kafka] settings")
        self.config = config
        self.kafka = config.kafka
        self.name = config.name
        self.kind = "cdr"
        self.health = InputHealth(self.name, log)
        self.finite = False       # with the daemon's --until-done: stop at the offsets of start
        self.pos = _Positions()
        self._consumer = None
        self._suspect = ""        # an error the client reported, to be checked
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{self.name}")

    def resume(self, offsets: Offsets) -> None:
        """Start each partition at the offset of the store's last checkpoint."""
        self.pos.stored = dict(offsets)

    def discard(self) -> None:
        """Shut the client's thread of a failed run: one that failed before its consumer
        opened never shut it down, and one a minute would pile up in a crash loop."""
        self._pool.shutdown(wait=False)

    def lag(self) -> dict[str, int]:
        """Messages per topic not yet committed to the store (from the newest watermarks)."""
        out = {t: 0 for t in self.kafka.topics}
        for (topic, partition), high in self.pos.high.items():
            start = self.pos.stored.get((topic, partition), self.pos.read.get((topic, partition), high))
            out[topic] = out.get(topic, 0) + max(high - start, 0)
        return out

    # ---- the consumer, always from the probe's one thread --------------------------------

    async def _call(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(fn, *args, **kwargs))

    def _open(self):
        from confluent_kafka import Consumer

        settings = self.kafka.client_settings()
        settings.update({"client.id": f"goipwatch-{self.name}", "auto.offset.reset": "earliest",
                         "error_cb": self._on_error, "log.connection.close": False,
                         "logger": _ClientLog()})
        return Consumer(settings)

    def _on_error(self, err) -> None:
        """librdkafka reports errors when a poll serves them, possibly after the broker is
        back: an error only makes the probe look at the cluster now (see :meth:`_assign`)."""
        if err.fatal() or err.name() in _DOWN:
            self._suspect = f"{err.name()}: {err.str()}"
        else:
            log.debug("kafka client error", extra={"probe": self.name, "error": err.str()})

    def _assign(self, consumer, timeout_s: float = 5.0) -> None:
        """Assign the partitions not yet assigned, at the store's offset or per ``start``.
        Its metadata request is also the health check: failing, or answered."""
        from confluent_kafka import KafkaException, TopicPartition

        suspect, self._suspect = self._suspect, ""
        try:
            meta = consumer.list_topics(timeout=timeout_s)
        except KafkaException as e:
            why = f"metadata: {e.args[0].str() if e.args else e}"
            self.health.failing(f"{suspect} ({why})" if suspect else why)
            return
        new, missing = [], []
        for topic in self.kafka.topics:
            tm = meta.topics.get(topic)
            if tm is None or tm.error is not None or not tm.partitions:
                missing.append(f"{topic}: {tm.error.str() if tm is not None and tm.error else 'not found'}")
                continue
            for partition in sorted(tm.partitions):
                key = (topic, partition)
                if key in self.pos.read:
                    continue
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                           timeout=timeout_s)
                offset = self.pos.stored.get(key)
                if offset is None:
                    offset = low if self.kafka.start == "earliest" else high
                elif offset < low:
                    log.warning("stored offset is gone from the topic (retention); resuming at "
                                "the oldest message kept", extra={"probe": self.name, "topic": topic,
                                                                 "partition": partition,
                                                                 "stored": offset, "oldest": low})
                    offset = low
                self.pos.read[key] = offset
                self.pos.high[key] = high
                self.pos.end[key] = high
                new.append(TopicPartition(topic, partition, offset))
        if new:
            consumer.incremental_assign(new)
            log.info("partitions assigned", extra={
                "probe": self.name, "partitions": [f"{tp.topic}/{tp.partition}@{tp.offset}"
                                                   for tp in new]})
        if missing:
            self.health.failing("topic(s) without partitions: " + "; ".join(missing))
        else:
            self.health.ok()

    def _collect(self, consumer) -> list[Received]:
        """One micro-batch: up to batch_messages / batch_bytes, or what came within batch_s
        of its first message; an empty list after a quiet poll (so that a stop is seen)."""
        from confluent_kafka import TopicPartition

        k = self.kafka
        out: list[Received] = []
        size = 0
        deadline: float | None = None
        upto = dict(self.pos.read)
        while len(out) < k.batch_messages and size < k.batch_bytes:
            timeout = min(k.batch_s, 0.5) if deadline is None else deadline - time.monotonic()
            if timeout <= 0 or (self.finite and out and all(
                    upto.get(key, 0) >= end for key, end in self.pos.end.items())):
                break   # a finite run need not wait out batch_s at the end of the topic
            got = consumer.consume(num_messages=min(k.batch_messages - len(out), 10_000),
                                   timeout=timeout)
            if not got and deadline is None:
                break
            for m in got:
                err = m.error()
                if err is not None:
                    self._on_error(err)
                    continue
                value = m.value()
                out.append(Received(m.topic(), m.partition(), m.offset(), value))
                upto[(m.topic(), m.partition())] = m.offset() + 1
                size += len(value or b"")
            if out and deadline is None:
                deadline = time.monotonic() + k.batch_s
        for key in self.pos.read:
            _, high = consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            if high >= 0:
                self.pos.high[key] = high
        if out:
            self.health.ok()
        return out

    def _work(self, messages: list[Received]) -> KafkaWork:
        header = list(self.kafka.columns)
        parsed, lines = parse_messages(messages, header, self.config.layout)
        offsets: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic, m.partition)
            offsets[key] = max(offsets.get(key, 0), m.offset + 1)
        self.pos.read.update(offsets)
        return KafkaWork(self.name, parsed, lines, offsets, len(messages),
                         functools.partial(self._stored, offsets))

    def _stored(self, offsets: dict[tuple[str, int], int]) -> None:
        """The store committed these offsets: tell Kafka too (monitoring only)."""
        from confluent_kafka import KafkaException, TopicPartition

        self.pos.stored.update(offsets)
        if self._consumer is None:
            return
        try:
            self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                  asynchronous=True)
        except KafkaException as e:  # the store has them; Kafka's copy is only for lag tools
            log.warning("kafka offset commit failed", extra={"probe": self.name, "error": str(e)})

    def caught_up(self) -> bool:
        """Every partition read up to where it ended when the probe started."""
        return bool(self.pos.end) and all(self.pos.read.get(k, 0) >= end
                                          for k, end in self.pos.end.items())

    # ---- the probe's task ----------------------------------------------------------------

    async def run(self, offer: Offer, stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        consumer = await self._call(self._open)
        self._consumer = consumer
        try:
            while not self.pos.read and not stopping.is_set():   # until the topics are there
                await self._call(self._assign, consumer)
                if not self.pos.read:
                    await offer(None)   # nothing to offer: the daemon need not wait for us
                    await _sleep_unless(stopping, min(self.kafka.metadata_s, 5.0))
            next_look = loop.time() + self.kafka.metadata_s
            while not stopping.is_set():
                if self.finite and self.caught_up():
                    return
                messages = await self._call(self._collect, consumer)
                if loop.time() >= next_look or self._suspect:
                    await self._call(self._assign, consumer)   # partitions added meanwhile
                    next_look = loop.time() + self.kafka.metadata_s
                if not messages:
                    await offer(None)
                    continue
                work = await asyncio.to_thread(self._work, messages)
                await offer(work)
        finally:
            self._consumer = None
            await asyncio.shield(self._call(consumer.close))
            self._pool.shutdown(wait=False)


class _ClientLog:
    """librdkafka's own log lines, at debug level: it logs every failed reconnect, while the
    probe's :class:`InputHealth` reports an outage once each way."""

    _log = logging.getLogger(f"{__name__}.client")

    def log(self, level: int, msg: str, *args) -> None:
        self._log.debug(msg, *args)


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        pass
