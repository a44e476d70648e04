"""Publisher and workers on the real NATS JetStream server and PostgreSQL: 1 worker and 3
workers give the same flags; a worker killed with SIGKILL mid-stream and restarted gives the
same flags and counts as an uninterrupted run; a bad message is quarantined, not fatal."""

import asyncio
import json
import signal
import time

import asyncpg
import nats
import numpy as np
import pytest

from detector import config as config_mod
from detector.scale.codec import CDR_COLUMNS, encode
from detector.scale.partition import owned, partition_of
from detector.scale.rigstage import RigStage
from detector.scale.worker import Worker
from detector.testing import cdr_batch, imei
from tests.detector.scale.conftest import NATS_URL, cli, run_cli, write_scale_config


def publish(cfg, world, *extra):
    return run_cli("publish", "--config", str(cfg), "--subscribers", str(world / "subscribers.csv"),
                   "--cdr", str(world / "cdr.csv"), "--flush", *extra)


async def replay(cfg, n: int) -> None:
    """``n`` workers (in this process: each its own store and NATS connections, partitions and
    engines, as in its own process, without n interpreter start-ups), then the rig stage."""
    c = config_mod.load(cfg)
    parts = c.scale.partitions
    await asyncio.gather(*(Worker(c, owned(i, n, parts)).run(1.0, signals=False) for i in range(n)))
    await RigStage(c).run(1.0, signals=False)


async def outcome(dsn: str) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        flags = [tuple(r) for r in await conn.fetch(
            "SELECT imsi, kind, flagged_at, score, reasons, rig_id FROM flags ORDER BY imsi, kind")]
        rigs = [tuple(r) for r in await conn.fetch("SELECT id, members, evidence FROM rigs ORDER BY id")]
        history = await conn.fetchval("SELECT count(*) FROM flag_history")
        parts = await conn.fetch("SELECT partition, last_seq, counters FROM scale_partitions "
                                 "WHERE partition >= 0 ORDER BY partition")   # -1: the rig stage
        counters: dict[str, int] = {}
        for r in parts:
            for k, v in json.loads(r["counters"]).items():
                counters[k] = counters.get(k, 0) + v
        states = await conn.fetchval("SELECT md5(string_agg(md5(state), '' ORDER BY partition, kind, key)) "
                                     "FROM scale_state WHERE partition >= 0")
        return {"flags": flags, "rigs": rigs, "history": history, "counters": counters, "states": states,
                "last_seq": {r["partition"]: r["last_seq"] for r in parts}}
    finally:
        await conn.close()


async def test_one_and_three_workers_give_the_same_flags(scale_world, pg_dsn, make_db, scale_names,
                                                          tmp_path):
    small_world, small_model = scale_world
    # two deployments, each with its own stream and store (the rig stage reads every
    # partition's summaries of its stream: sharing one would share those too)
    one = write_scale_config(tmp_path, pg_dsn, small_model, *scale_names())
    three_dsn = await make_db()
    three = write_scale_config(tmp_path, three_dsn, small_model, *scale_names())
    publish(one, small_world)
    publish(three, small_world)
    await replay(one, 1)
    await replay(three, 3)
    a, b = await outcome(pg_dsn), await outcome(three_dsn)
    assert {f[1] for f in a["flags"]} >= {"sim_anomaly", "rig_member"}, "the world's gateway is found"
    assert a["rigs"] and all(any(f[5] == r[0] for f in a["flags"]) for r in a["rigs"])
    assert a["flags"] == b["flags"]
    assert a["rigs"] == b["rigs"]
    assert a["history"] == b["history"] == len(a["flags"])
    assert a["counters"] == b["counters"]
    assert a["counters"]["records"] > 25_000 and a["counters"].get("bad_messages", 0) == 0
    assert a["states"] == b["states"]      # the checkpointed per-SIM records, byte for byte


async def test_kill_9_mid_stream_then_restart_matches_an_uninterrupted_run(
        scale_world, pg_dsn, make_db, scale_names, tmp_path):
    small_world, small_model = scale_world
    calm = write_scale_config(tmp_path, pg_dsn, small_model, *scale_names(), fetch_batch=8)
    crash_dsn = await make_db()
    crash = write_scale_config(tmp_path, crash_dsn, small_model, *scale_names(), fetch_batch=8)
    publish(calm, small_world)    # both streams hold the feed at the same sequences
    publish(crash, small_world)
    await replay(calm, 1)
    expected = await outcome(pg_dsn)
    total = sum(expected["last_seq"].values())

    victim = cli("worker", "--config", str(crash), "--index", "0", "--of", "1")
    conn = await asyncpg.connect(crash_dsn)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:   # kill once a part (not all) is checkpointed
            done = await conn.fetchval("SELECT coalesce(sum(last_seq), 0) FROM scale_partitions") \
                if await conn.fetchval("SELECT to_regclass('scale_partitions')") else 0
            if done > total * 0.3:
                break
            await asyncio.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.wait)
        at_kill = await conn.fetchval("SELECT sum(last_seq) FROM scale_partitions")
    finally:
        await conn.close()
    assert victim.returncode == -signal.SIGKILL
    assert 0 < at_kill < total, "killed mid-stream"
    await replay(crash, 1)   # a worker in place of the killed one, from its checkpoint
    got = await outcome(crash_dsn)
    assert got["flags"] == expected["flags"]
    assert got["rigs"] == expected["rigs"]
    assert got["history"] == expected["history"]
    assert got["counters"] == expected["counters"]   # nothing lost, nothing applied twice
    assert got["states"] == expected["states"]


async def test_bad_message_is_quarantined_and_the_worker_goes_on(scale_world, pg_dsn, scale_names,
                                                                  tmp_path):
    small_model = scale_world[1]
    stream, prefix = scale_names()
    cfg = write_scale_config(tmp_path, pg_dsn, small_model, stream, prefix, partitions=2)
    t0 = 1_791_158_400
    rows = [(t0 + 60 * i, 460000000000001 + i % 4, int(imei(1)), "460-00-1-1", 8613900000000 + i, 0, 0, 0, 30)
            for i in range(40)]
    b = cdr_batch(rows)
    p0 = partition_of(b.imsi, 2) == 0
    good = b.take(p0)
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
    subject = f"{prefix}.cdr.0"

    def cdr(batch):
        return encode("cdr", {"source": "t.csv", "cells": list(batch.cells), "watermark": int(b.ts.max())},
                      {k: getattr(batch, k) for k in CDR_COLUMNS})

    await js.publish(subject, cdr(good.take(np.arange(len(good)) < 5)))
    await js.publish(subject, b"\x00garbage")
    await js.publish(subject, cdr(b.take(~p0)))                       # SIMs of partition 1
    await js.publish(subject, cdr(good.take(np.arange(len(good)) >= 5)))
    await nc.close()
    run_cli("worker", "--config", str(cfg), "--partitions", "0", "--until-idle", "1")
    conn = await asyncpg.connect(pg_dsn)
    try:
        q = await conn.fetch("SELECT probe, source, reason FROM quarantine ORDER BY line")
        counters = json.loads(await conn.fetchval(
            "SELECT counters FROM scale_partitions WHERE partition = 0"))
    finally:
        await conn.close()
    assert [r["probe"] for r in q] == ["partition-0", "partition-0"]
    assert "not a goipwatch scale message" in q[0]["reason"] and q[0]["source"] == "stream seq 2"
    assert "SIMs of another partition" in q[1]["reason"]
    assert counters["bad_messages"] == 2 and counters["messages"] == 4
    assert counters["records"] == len(good)     # the good data on both sides of the bad is kept


async def test_a_partition_is_applied_by_one_process_at_a_time(pg_dsn):
    from detector.scale.checkpoint import OwnedElsewhere, claim

    first, second = await asyncpg.connect(pg_dsn), await asyncpg.connect(pg_dsn)
    try:
        await claim(first, "S", (0, 1))
        await claim(second, "S", (2,), wait_s=0)          # other partitions are free
        await claim(second, "OTHER", (0,), wait_s=0)      # and the same partition of another stream
        with pytest.raises(OwnedElsewhere, match="partition 1 of stream S is held by another running"):
            await claim(second, "S", (1,), wait_s=0.3)
        await first.close()                               # the holder dies: the partition is free
        await claim(second, "S", (1,), wait_s=5)
    finally:
        for c in (first, second):
            if not c.is_closed():
                await c.close()


async def test_a_worker_and_rig_stage_refuse_another_partition_count_with_a_clear_error(
        scale_world, pg_dsn, scale_names, tmp_path):
    stream, prefix = scale_names()
    made = write_scale_config(tmp_path, pg_dsn, scale_world[1], stream, prefix, partitions=3)
    run_cli("publish", "--config", str(made))          # makes the stream's row: 3 partitions
    other = tmp_path / "other.toml"
    other.write_text(made.read_text().replace("partitions = 3", "partitions = 2"))
    for args in (("worker", "--partitions", "0"), ("rigs",)):
        p = cli(*args[:1], "--config", str(other), *args[1:], "--until-idle", "1")
        _, err = p.communicate(timeout=60)
        assert p.returncode == 2, err
        assert f"goipwatch {args[0]}: error: stream {stream} was made with 3 partitions" in err
