"""The Kafka probe in the daemon against librdkafka's mock cluster and a real PostgreSQL:
the same flags and feature state as the file probe, exactly once across crashes and kill -9,
bad messages quarantined beside good ones, a broker outage logged once each way."""

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import astuple
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from detector import config as config_mod
from detector.daemon import Daemon
from detector.features.catalog import FEATURES
from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.store import checkpoint as cp
from detector.testing import Row, daemon_config, imsi
from probes.kafka_testing import MockKafka, csv_messages
from tests.conftest import ADMIN_DSN, _dsn_for
from tests.detector.test_daemon import (assert_stream_is_the_store, run_daemon, snapshot, store_view,
                                        stream_events)

ROWS_PER_MESSAGE = 100


@pytest.fixture(scope="module")
def kafka():
    mock = MockKafka()
    yield mock
    mock.close()


@pytest.fixture(scope="module")
def world_topic(kafka, small_world) -> tuple[str, int]:
    """The world's CDRs on one partition (one partition: one order, as in the file)."""
    topic = f"cdr-{uuid.uuid4().hex[:8]}"
    n = kafka.produce(topic, csv_messages(small_world / "cdr.csv", ROWS_PER_MESSAGE))
    return topic, n


@asynccontextmanager
async def database():
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield _dsn_for(name)
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def registrations(world: Path) -> str:
    return f"""[[probes]]
type = "registrations_csv"
name = "registrations"
files = [{json.dumps(str(world / "subscribers.csv"))}]
"""


def kafka_probe(bootstrap: str, topic: str, batch_messages: int = 40, extra: str = "") -> str:
    # batch_s is long enough for a batch to fill whenever the topic holds its messages, so
    # that a resumed run cuts the same micro-batches as an uninterrupted one
    return f"""[[probes]]
type = "kafka"
name = "kafka"
[probes.kafka]
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "goipwatch-test"
batch_messages = {batch_messages}
batch_s = 2.0
metadata_s = 1.0
{extra}"""


@pytest.fixture(scope="module")
def file_reference(small_world, small_model, tmp_path_factory) -> dict:
    """Registrations, then the world's CDR file through the file probe: the reference."""
    tmp = tmp_path_factory.mktemp("file-reference")

    async def go() -> dict:
        async with database() as dsn:
            await run_daemon(daemon_config(tmp, dsn, small_model, registrations(small_world)))
            await run_daemon(daemon_config(tmp, dsn, small_model, f"""[[probes]]
type = "cdr_csv"
name = "cdr"
files = [{json.dumps(str(small_world / "cdr.csv"))}]
block_bytes = 262144
"""))
            return await snapshot(dsn) | {"features": await features(dsn)}

    return asyncio.run(go())


async def features(dsn: str) -> dict[int, np.ndarray]:
    """Every SIM's feature values from the store's checkpoint. The stored bytes themselves
    differ between feeds cut into other batches (cells get their ids in another order), the
    features they give do not."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        engine = FeatureEngine()
        await cp.restore(pool, engine, Pipeline(engine, None))
    finally:
        await pool.close()
    frame = engine.features(np.arange(len(engine.sims)))
    return dict(zip(frame.imsi.tolist(), frame.values))


async def offsets(dsn: str) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        return {(r["topic"], r["partition"]): r["next_offset"]
                for r in await conn.fetch("SELECT * FROM stream_offsets")}
    finally:
        await conn.close()


DOMINANT = FEATURES.index("dominant_cell_share_24h")


@pytest.fixture(scope="module")
def kafka_reference(small_world, small_model, tmp_path_factory, kafka, world_topic) -> dict:
    """Registrations, then the world's CDRs through the Kafka probe, uninterrupted."""
    tmp = tmp_path_factory.mktemp("kafka-reference")
    topic, _ = world_topic

    async def go() -> dict:
        async with database() as dsn:
            await run_daemon(daemon_config(tmp, dsn, small_model, registrations(small_world)))
            await run_daemon(daemon_config(tmp, dsn, small_model, kafka_probe(kafka.bootstrap, topic)))
            return await snapshot(dsn) | {"features": await features(dsn),
                                          "offsets": await offsets(dsn)}

    return asyncio.run(go())


async def test_records_from_kafka_reach_the_same_flags_as_the_file(
        kafka, world_topic, file_reference, kafka_reference):
    topic, n = world_topic
    got, ref = kafka_reference, file_reference
    assert ref["flags"], "the world's rigs should raise flags"
    # the same SIMs, kinds and times; the scores to 0.001: the model calibrated to the
    # network learns from the features below, which differ in their last digits
    assert [f[:3] for f in got["flags"]] == [f[:3] for f in ref["flags"]]
    np.testing.assert_allclose([f[3] for f in got["flags"]], [f[3] for f in ref["flags"]], atol=1e-3)
    assert got["features"].keys() == ref["features"].keys()
    for imsi_, values in got["features"].items():
        # Micro-batches cut the feed elsewhere than file blocks: cells get their ids in
        # another order (ties of the dominant cell break differently, by at most one hour's
        # share) and sums are added in another order (last digits); nothing else may differ.
        want = ref["features"][imsi_]
        assert abs(values[DOMINANT] - want[DOMINANT]) <= 1 / 24, imsi_
        rest = np.arange(len(values)) != DOMINANT
        np.testing.assert_allclose(values[rest], want[rest], rtol=1e-5, atol=1e-9, err_msg=str(imsi_))
    assert got["quarantine"] == ref["quarantine"] == 0
    assert got["counters"]["kafka"]["records"] == ref["counters"]["cdr"]["records"]
    assert got["counters"]["kafka"]["messages"] == n
    assert got["offsets"] == {(topic, 0): n}
    # Kafka's committed offsets follow the store's, for lag monitoring
    assert (await asyncio.to_thread(kafka.committed, "goipwatch-test", topic))[0] == n


async def same_outcome(dsn: str, reference: dict) -> None:
    """Exactly the uninterrupted run's store: flags, feature state bytes, counts, offsets."""
    assert await snapshot(dsn) == {k: v for k, v in reference.items()
                                   if k not in ("features", "offsets")}
    assert await offsets(dsn) == reference["offsets"]


class SimulatedCrash(Exception):
    pass


async def test_a_crash_between_consume_and_commit_loses_and_repeats_nothing(
        tmp_path, pg_dsn, small_world, small_model, kafka, world_topic, kafka_reference, monkeypatch):
    topic, n = world_topic
    await run_daemon(daemon_config(tmp_path, pg_dsn, small_model, registrations(small_world)))
    cfg = daemon_config(tmp_path, pg_dsn, small_model, kafka_probe(kafka.bootstrap, topic))
    real_save, calls = cp.save, []

    async def crashing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:   # the 5th micro-batch is applied in memory, then the process "dies"
            raise SimulatedCrash()
        return await real_save(*args, **kwargs)

    monkeypatch.setattr(cp, "save", crashing_save)
    with pytest.raises(SimulatedCrash):
        await run_daemon(cfg)
    monkeypatch.setattr(cp, "save", real_save)
    stored = (await offsets(pg_dsn))[(topic, 0)]
    assert 0 < stored < n
    assert (await snapshot(pg_dsn))["counters"]["kafka"]["messages"] == stored
    # Kafka's committed offsets are never read back: rewinding them changes nothing
    await asyncio.to_thread(_commit, kafka.bootstrap, "goipwatch-test", topic, 0)

    await run_daemon(cfg)
    await same_outcome(pg_dsn, kafka_reference)


def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def _goipwatch(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "detector.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, needle: str, times: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if needle in line:
            seen += 1
            if seen == times:
                return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"daemon logged {needle!r} {seen} times, not {times}")


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
async def test_an_interrupted_daemon_resumes_its_partitions_exactly_once(
        tmp_path, pg_dsn, small_world, small_model, kafka, world_topic, kafka_reference, how):
    topic, n = world_topic
    await run_daemon(daemon_config(tmp_path, pg_dsn, small_model, registrations(small_world)))
    cfg = daemon_config(tmp_path, pg_dsn, small_model, kafka_probe(kafka.bootstrap, topic),
                 log_level="debug")
    proc = _goipwatch("run", "--config", str(cfg))
    try:
        await asyncio.to_thread(_wait_for, proc, '"msg": "messages done"', 4)
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 60) == 0
        else:
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    partial = (await offsets(pg_dsn))[(topic, 0)]
    assert 0 < partial < n

    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "detector.cli", "run", "--config",
                                             str(cfg), "--until-done"], check=True, capture_output=True)
    await same_outcome(pg_dsn, kafka_reference)
    store = await store_view(pg_dsn)
    assert len(store) == len(kafka_reference["flags"])
    assert_stream_is_the_store(stream_events(tmp_path / "state" / "flags.jsonl"), store)


def row_text(*rows: Row) -> bytes:
    return b"".join((",".join(astuple(r)) + "\n").encode() for r in rows)


async def test_bad_messages_are_quarantined_and_never_block_the_partition(
        tmp_path, pg_dsn, small_model, kafka):
    topic = f"mixed-{uuid.uuid4().hex[:8]}"
    kafka.produce(topic, [row_text(Row(), Row(imsi=imsi(2))), None, b"\xff\xfe\xfd\n",
                          row_text(Row(imsi="123"), Row(imsi=imsi(3))), b"voice,MO,yesterday\n"],
                  partition=0)
    kafka.produce(topic, [row_text(Row(imsi=imsi(4)))], partition=2)
    await run_daemon(daemon_config(tmp_path, pg_dsn, small_model, kafka_probe(kafka.bootstrap, topic)))
    conn = await asyncpg.connect(pg_dsn)
    try:
        bad = [tuple(r) for r in await conn.fetch(
            "SELECT probe, source, line, split_part(reason, ':', 1) FROM quarantine ORDER BY source")]
        sims = await conn.fetchval("SELECT count(*) FROM sim_state")
    finally:
        await conn.close()
    assert bad == [("kafka", f"{topic}/0@1", 0, "empty message (no value)"),
                   ("kafka", f"{topic}/0@2", 1, "not UTF-8"),
                   ("kafka", f"{topic}/0@3", 1, "imsi"),
                   ("kafka", f"{topic}/0@4", 1, "expected 10 fields, found 3")]
    counters = (await snapshot(pg_dsn))["counters"]["kafka"]
    assert counters == {"records": 4, "rejected": 4, "messages": 6}
    assert sims == 4
    assert await offsets(pg_dsn) == {(topic, 0): 5, (topic, 2): 1}


class _Proxy:
    """A TCP relay on a fixed port to the mock broker, closed or open at will: the bootstrap
    address of a broker that is down, then back."""

    def __init__(self, target: str) -> None:
        self.host, port = target.rsplit(":", 1)
        self.port = int(port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.listen_port = s.getsockname()[1]
        self.server = None

    async def open(self) -> None:
        async def relay(reader, writer):
            up_r, up_w = await asyncio.open_connection(self.host, self.port)

            async def pipe(r, w):
                try:
                    while data := await r.read(65536):
                        w.write(data)
                        await w.drain()
                except (ConnectionError, asyncio.CancelledError):
                    pass
                finally:
                    w.close()

            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

        self.server = await asyncio.start_server(relay, "127.0.0.1", self.listen_port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_broker_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
        tmp_path, pg_dsn, small_model, kafka, caplog):
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    kafka.produce(topic, [row_text(Row(), Row(imsi=imsi(2)))])
    proxy = _Proxy(kafka.bootstrap)
    cfg = daemon_config(tmp_path, pg_dsn, small_model,
                 kafka_probe(f"127.0.0.1:{proxy.listen_port}", topic))
    caplog.set_level(logging.INFO, logger="probes.kafka")
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        running = asyncio.create_task(daemon.run())
        probe = daemon.probes[0]
        for _ in range(200):   # the broker is unreachable: librdkafka retries, we log once
            if not probe.health.up:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)
        assert not probe.health.up
        await proxy.open()
        for _ in range(300):
            if await daemon.pool.fetchval("SELECT count(*) FROM stream_offsets"):
                break
            await asyncio.sleep(0.05)
        daemon.stop()
        await running
    finally:
        await daemon.close()
        await proxy.close()
    states = [r.getMessage() for r in caplog.records
              if r.name == "probes.kafka" and getattr(r, "probe", "") == "kafka"
              and r.getMessage().startswith("input ")]
    assert states == ["input failing", "input recovered"]
    assert probe.health.up
    assert await offsets(pg_dsn) == {(topic, 0): 1}


async def test_a_failed_stream_probe_is_built_anew_at_the_checkpoint_and_a_file_probe_goes_on(
        tmp_path, pg_dsn, small_world, small_model, kafka):
    topic = f"fresh-{uuid.uuid4().hex[:8]}"
    cfg = config_mod.load(daemon_config(tmp_path, pg_dsn, small_model, registrations(small_world)
                                        + kafka_probe(kafka.bootstrap, topic)))
    daemon = Daemon(cfg)
    await daemon.open()
    try:
        files, stream = daemon.probes
        daemon.pending.offsets[("kafka", topic, 0)] = 7     # as a committed micro-batch leaves it
        await daemon.checkpoint()
        daemon.until_done = True
        assert await daemon.fresh_probe(files) is files     # keeps the files it has offered
        new = await daemon.fresh_probe(stream)
        try:
            assert new is not stream and new.config == stream.config
            assert new.pos.stored == {(topic, 0): 7} and new.finite
            with pytest.raises(RuntimeError):               # the failed one's thread is shut
                stream._pool.submit(int)
        finally:
            new.discard()
    finally:
        await daemon.close()
