"""Soak: a long replay through the Kafka probe and the daemon keeps memory flat.

A fixed population calls for event-time days while the test watches the Python heap
(tracemalloc, numpy's arrays included) and the process RSS. After warm-up (every SIM, device
and cell seen) nothing may keep growing with the records: not the feature state, the pending
checkpoint, the consumer's buffers nor the quarantine. Tolerance: the heap's floor (its 10th
percentile) over the last quarter of the run may be at most 3 MiB above its floor over the
second quarter (keeping every micro-batch, ~80 bytes a record, fails it), the RSS at most
48 MiB (the allocator's arenas and librdkafka's buffers move in steps). The floor, not the
median: a batch in flight lifts the heap by up to 10 MiB, and on a busy machine batches take
longer, so more samples fall inside one; what memory is kept shows between batches.
Bounded by work, not by time: 240 messages, 30 h of event time (~25 s on a quiet machine); the
600 s limit only ends a run that hangs, so a busy machine makes the test slower, not failing.
"""

import asyncio
import os
import threading
import time
import tracemalloc
import uuid

import numpy as np
import psutil

from detector import config as config_mod
from detector.daemon import Daemon
from detector.records import iso
from detector.testing import T0, daemon_config, imei, imsi
from probes.kafka_testing import MockKafka

SIMS, CELLS = 3000, 150
ROWS_PER_MESSAGE = 400
TARGET = 240            # messages: 30 h of event time, 96k records
LIMIT_S = 600.0         # a guard against a hang, not a speed requirement
MiB = 1 << 20


def traffic(stop: threading.Event, kafka: MockKafka, topic: str, consumed, ahead: int = 120) -> None:
    """Produce 7.5 minutes of event time per message, at most ``ahead`` messages before the
    daemon (the mock cluster keeps ~5 MB per partition)."""
    rng = np.random.default_rng(7)
    sims = [imsi(n) for n in range(SIMS)]
    msisdns = [f"86138{n:08d}" for n in range(SIMS)]
    devices = [imei(n) for n in range(SIMS)]
    cells = [f"460-00-{4000 + n // 10}-{n}" for n in range(CELLS)]
    home = rng.integers(0, CELLS, SIMS)
    t, sent = T0, 0
    while not stop.is_set():
        if sent - consumed() > ahead:
            time.sleep(0.02)
            continue
        who = rng.integers(0, SIMS, ROWS_PER_MESSAGE)
        roam = rng.random(ROWS_PER_MESSAGE) < 0.2
        cell = np.where(roam, rng.integers(0, CELLS, ROWS_PER_MESSAGE), home[who])
        ts = t + np.sort(rng.integers(0, 450, ROWS_PER_MESSAGE))
        lines = [f"voice,MO,{iso(int(ts[i]))},{30 + int(who[i]) % 90},{sims[w]},{msisdns[w]},"
                 f"{devices[w]},86139{int(rng.integers(0, 10**8)):08d},{cells[cell[i]]},answered\n"
                 for i, w in enumerate(who)]
        kafka.produce(topic, ["".join(lines).encode()])
        sent += 1
        t += 450


async def test_memory_stays_flat_over_a_long_replay(tmp_path, pg_dsn, small_model):
    kafka = MockKafka()
    topic = f"soak-{uuid.uuid4().hex[:8]}"
    cfg = daemon_config(tmp_path, pg_dsn, small_model, f"""
[[probes]]
type = "kafka"
name = "soak"
[probes.kafka]
bootstrap_servers = "{kafka.bootstrap}"
topics = ["{topic}"]
batch_messages = 10
batch_s = 0.2
metadata_s = 1.0
""")
    daemon = Daemon(config_mod.load(cfg))
    stop = threading.Event()
    process = psutil.Process(os.getpid())
    samples: list[tuple[float, int, int]] = []   # (seconds, heap bytes, rss bytes)
    try:
        await daemon.open()
        probe = daemon.probes[0]
        producer = threading.Thread(
            target=traffic, args=(stop, kafka, topic, lambda: probe.pos.stored.get((topic, 0), 0)),
            daemon=True)
        producer.start()
        running = asyncio.create_task(daemon.run())
        tracemalloc.start()
        started = time.monotonic()
        while probe.pos.stored.get((topic, 0), 0) < TARGET and time.monotonic() - started < LIMIT_S:
            await asyncio.sleep(0.25)
            samples.append((time.monotonic() - started, tracemalloc.get_traced_memory()[0],
                            process.memory_info().rss))
        stop.set()
        daemon.stop()
        await running
        producer.join(10)
    finally:
        tracemalloc.stop()
        stop.set()
        await daemon.close()
        kafka.close()
    messages = probe.pos.stored.get((topic, 0), 0)
    assert messages >= TARGET, f"only {messages} messages replayed in {LIMIT_S} s"
    assert len(daemon.engine.sims) == SIMS       # the population is fixed: all seen, none new
    assert daemon.engine.watermark - T0 >= 25 * 3600   # past a full day: the 24 h windows rolled
    # warm-up is the first quarter; the second quarter's floor against the last quarter's
    n = len(samples)
    early, late = samples[n // 4:n // 2], samples[3 * n // 4:]
    heap = [round(s[1] / MiB, 1) for s in samples]
    assert np.percentile([s[1] for s in late], 10) <= \
        np.percentile([s[1] for s in early], 10) + 3 * MiB, heap
    assert max(s[2] for s in late) <= max(s[2] for s in early) + 48 * MiB, \
        [round(s[2] / MiB) for s in samples]
