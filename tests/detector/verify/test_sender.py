"""The sender against a loopback test platform that fails, stalls and flaps."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import numpy as np

from detector.verify import ActionPolicy, configure, outbox_summary, run_sender

from .conftest import BASE_IMSI, BASE_MSISDN, SECRET, Platform, commit, config, flag, flapping, \
    platform_at, wait_until

ALL_DELIVERED = "SELECT count(*) = $1 FROM verification_outbox WHERE status = 'delivered'"


async def start(pool, cfg):
    stopping = asyncio.Event()
    task = asyncio.create_task(run_sender(pool, cfg, stopping))
    return stopping, task


async def stop(stopping, task, within: float = 3.0) -> float:
    t = time.monotonic()
    stopping.set()
    await asyncio.wait_for(task, within)
    return time.monotonic() - t


def assert_exactly_once(platform: Platform, keys: list[str]) -> None:
    assert len(keys) == len(set(keys))
    assert set(platform.accepted) == set(keys)                 # nothing lost, nothing extra
    assert all(platform.accepts[k] == 1 for k in keys)         # each accepted exactly once
    assert platform.bad_signatures == 0


async def test_delivery_through_outages_stalls_and_restarts(pool, caplog):
    caplog.set_level(logging.DEBUG, logger="goipwatch.verify")
    configure(ActionPolicy())
    t0 = time.monotonic()

    def behaviour(n: int) -> str:       # down for 0.8 s, then stalls and lost answers, then up
        if time.monotonic() - t0 < 0.8:
            return "fail"
        return {0: "stall", 1: "stall_accept", 2: "fail"}.get(n % 7, "ok")

    async with asyncio.timeout(40), platform_at(Platform(behaviour, stall_s=0.6)) as platform:
        await commit(pool, [flag(i) for i in range(30)])
        cfg = config(platform.url)
        stopping, task = await start(pool, cfg)
        await asyncio.sleep(1.0)
        assert await stop(stopping, task) < cfg.timeout_s + 1.0   # stops by itself, promptly
        # a crashed sender left a request claimed: its lease expires and it is sent again
        await pool.execute("UPDATE verification_outbox SET status = 'sending', attempts = attempts + 1, "
                           "next_attempt_at = now() + interval '0.3 seconds' WHERE id = (SELECT min(id) "
                           "FROM verification_outbox WHERE status = 'pending')")
        await commit(pool, [flag(i) for i in range(30, 40)])   # flags keep coming meanwhile
        stopping, task = await start(pool, cfg)
        await wait_until(pool, ALL_DELIVERED, 40)
        await stop(stopping, task)
    out = await pool.fetch("SELECT idempotency_key, attempts, last_status FROM verification_outbox")
    assert_exactly_once(platform, [r["idempotency_key"] for r in out])
    assert max(r["attempts"] for r in out) > 1 and platform.requests > len(out)   # retries happened
    assert any(r["last_status"] == 409 for r in out)   # a lost answer: the platform had it already
    assert (await outbox_summary(pool))["depth"]["delivered"] == 40
    # logs: request ids and counts, never a line or the secret
    text = "\n".join(json.dumps(vars(r), default=str) for r in caplog.records)
    assert "delivered" in text and str(BASE_IMSI)[:10] not in text and str(BASE_MSISDN)[:8] not in text
    assert SECRET.decode() not in text


async def test_dead_letter_after_max_attempts_and_at_once_when_refused(pool):
    configure(ActionPolicy())
    async with asyncio.timeout(30), platform_at(Platform(lambda n: "fail")) as platform:
        await commit(pool, [flag(1), flag(2)])
        stopping, task = await start(pool, config(platform.url, max_attempts=3))
        await wait_until(pool, "SELECT count(*) = 2 FROM verification_outbox WHERE status = 'dead'")
        await stop(stopping, task)
    assert platform.requests == 6 and platform.accepted == {}
    s = await outbox_summary(pool)
    assert s["depth"]["dead"] == 2 and s["oldest_pending_age_s"] is None
    dead = {(d["attempts"], d["last_error"], d["last_status"]) for d in s["dead_letters"]}
    assert dead == {(3, "HTTP 503", 503)}

    async with asyncio.timeout(30), platform_at(Platform(lambda n: "reject")) as platform:
        await commit(pool, [flag(3)])
        stopping, task = await start(pool, config(platform.url, max_attempts=10))
        await wait_until(pool, "SELECT count(*) = 3 FROM verification_outbox WHERE status = 'dead'")
        await stop(stopping, task)
    assert platform.requests == 1                       # 400: the platform will never take it


async def test_wrong_secret_is_refused_by_the_platform_and_retried(pool, monkeypatch):
    configure(ActionPolicy())
    monkeypatch.setenv("GW_TEST_VERIFY_SECRET", "not-the-platform-secret-42")
    async with asyncio.timeout(30), platform_at(Platform()) as platform:
        await commit(pool, [flag(1)])
        stopping, task = await start(pool, config(platform.url, max_attempts=2))
        await wait_until(pool, "SELECT count(*) = 1 FROM verification_outbox WHERE status = 'dead'")
        await stop(stopping, task)
    assert platform.bad_signatures == 2 and platform.accepted == {}
    assert await pool.fetchval("SELECT last_error FROM verification_outbox") == "HTTP 401"


async def test_unreachable_platform_is_retried_until_it_answers(pool, unused_tcp_port):
    configure(ActionPolicy())
    await commit(pool, [flag(1)])
    async with asyncio.timeout(30):
        stopping, task = await start(pool, config(f"http://127.0.0.1:{unused_tcp_port}/v1/requests"))
        await wait_until(pool, "SELECT attempts >= 2 FROM verification_outbox")
        await stop(stopping, task)
        err = await pool.fetchval("SELECT last_error FROM verification_outbox")
        assert err == "ClientConnectorError"
        async with platform_at(Platform()) as platform:
            stopping, task = await start(pool, config(platform.url))
            await wait_until(pool, ALL_DELIVERED, 1)
            await stop(stopping, task)
    assert len(platform.accepted) == 1


async def test_service_level_flag_to_acceptance_p99_within_3_minutes(pool):
    """200 flags committed over ~1.5 s, two senders, while the platform flaps (down half the time, random
    failures, stalls past the timeout, lost answers): flag committed -> request accepted."""
    configure(ActionPolicy())
    behaviour = flapping(seed=7, period_s=0.3)
    async with asyncio.timeout(50), platform_at(Platform(behaviour, stall_s=0.4)) as platform:
        cfg = config(platform.url, backoff_base_s=0.05, backoff_cap_s=0.5, concurrency=4)
        senders = [await start(pool, cfg) for _ in range(2)]    # two senders on one store
        for batch in range(10):
            await commit(pool, [flag(batch * 20 + i) for i in range(20)])
            await asyncio.sleep(0.1)
        await wait_until(pool, ALL_DELIVERED, 200, timeout=40)
        for stopping, task in senders:
            await stop(stopping, task)
    out = await pool.fetch("SELECT idempotency_key, created_at, delivered_at FROM verification_outbox")
    assert len(out) == 200
    assert_exactly_once(platform, [r["idempotency_key"] for r in out])
    latency = np.array([platform.accepted[r["idempotency_key"]] - r["created_at"].timestamp() for r in out])
    known = np.array([(r["delivered_at"] - r["created_at"]).total_seconds() for r in out])
    p99, known_p99 = float(np.percentile(latency, 99)), float(np.percentile(known, 99))
    print(f"flag committed -> accepted: p50 {np.median(latency):.2f} s, p99 {p99:.2f} s, "
          f"max {latency.max():.2f} s; -> known delivered: p99 {known_p99:.2f} s; "
          f"{platform.requests} requests for 200 flags")
    assert platform.requests > 250              # the platform did fail a good share
    assert p99 <= 180.0 and known_p99 <= 180.0
