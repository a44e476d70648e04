"""Fixtures of the verification tests: a store, a loopback test platform, flags to commit."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable

import pytest
from aiohttp import web

from detector.features.engine import FeatureEngine
from detector.flags import Flag
from detector.pipeline import Pipeline
from detector.store import checkpoint as cp
from detector.testing import store_pool
from detector.verify import outbox
from detector.verify.config import SenderConfig
from detector.verify.signing import verify_signature

SECRET = b"test-secret-0123456789abcdef"
BASE_IMSI = 460_001_000_000_000
BASE_MSISDN = 8613_900_000_000


@pytest.fixture(autouse=True)
def _verification_off_afterwards():
    yield
    outbox.configure(None)


@pytest.fixture
async def pool(pg_dsn):
    async with store_pool(pg_dsn) as p:
        yield p


def flag(i: int, kind: str = "sim_anomaly", rig_id: str = "", score: float = 0.7,
         msisdn: str | None = None) -> Flag:
    return Flag(imsi=str(BASE_IMSI + i), msisdn=str(BASE_MSISDN + i) if msisdn is None else msisdn,
                score=score, flagged_at=1_791_000_000 + i, kind=kind, rig_id=rig_id,
                reasons=("143 distinct numbers contacted in 24 h; 99th percentile of subscribers: 19",
                         "2 devices (IMEI) in 24 h; 99th percentile of subscribers: 1"))


async def commit(pool, flags: list[Flag], rigs=()) -> list[int]:
    """Commit ``flags`` through the daemon's checkpoint (one transaction)."""
    engine = FeatureEngine()
    pipe = Pipeline(engine, None)
    _, ids = await cp.save(pool, engine, pipe, cp.Pending(flags=list(flags), rigs=list(rigs)), 0)
    return ids


def config(url: str, **kw) -> SenderConfig:
    base = dict(url=url, secret_env="GW_TEST_VERIFY_SECRET", timeout_s=0.3, max_attempts=50,
                backoff_base_s=0.02, backoff_cap_s=0.5, poll_s=0.05, concurrency=8)
    base.update(kw)
    return SenderConfig(**base)


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch):
    monkeypatch.setenv("GW_TEST_VERIFY_SECRET", SECRET.decode())


class Platform:
    """A carrier–police platform on loopback: verifies signatures, accepts each idempotency
    key once (409 afterwards) and misbehaves as ``behaviour(n)`` says for the n-th request:
    ``ok``, ``fail`` (503), ``stall`` (sleeps past the sender's timeout, without accepting),
    ``stall_accept`` (accepts, then sleeps: the answer is lost), ``reject`` (400)."""

    def __init__(self, behaviour: Callable[[int], str] = lambda n: "ok", stall_s: float = 1.0,
                 secret: bytes = SECRET) -> None:
        self.behaviour = behaviour
        self.stall_s = stall_s
        self.secret = secret
        self.requests = 0
        self.bad_signatures = 0
        self.seen: Counter[str] = Counter()           # idempotency key -> requests
        self.accepted: dict[str, float] = {}          # key -> wall time of its acceptance
        self.accepts: Counter[str] = Counter()        # key -> acceptances (must stay 1)
        self.bodies: dict[str, bytes] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        n = self.requests
        if request.headers.get("Content-Type") != "application/json" or not verify_signature(
                self.secret, request.headers.get("X-Goipwatch-Timestamp"), body,
                request.headers.get("X-Goipwatch-Signature"), time.time(), 60):
            self.bad_signatures += 1
            return web.json_response({"title": "bad signature"}, status=401)
        key = request.headers["Idempotency-Key"]
        self.seen[key] += 1
        if key in self.bodies:
            assert self.bodies[key] == body, "one idempotency key, two bodies"
        self.bodies[key] = body
        what = self.behaviour(n)
        if what == "fail":
            return web.json_response({"title": "unavailable"}, status=503)
        if what == "reject":
            return web.json_response({"title": "bad request"}, status=400)
        if what == "stall":
            await asyncio.sleep(self.stall_s)
            return web.json_response({"title": "too late"}, status=503)
        if key in self.accepted:
            return web.json_response({"title": "already have it"}, status=409)
        self.accepted[key] = time.time()
        self.accepts[key] += 1
        if what == "stall_accept":
            await asyncio.sleep(self.stall_s)
        return web.json_response({"accepted": True}, status=202)


@contextlib.asynccontextmanager
async def serve(routes_or_handler, path: str = "/v1/requests"):
    """An aiohttp server on 127.0.0.1 (a free port); yields its base URL."""
    app = web.Application()
    if isinstance(routes_or_handler, web.RouteTableDef):
        app.add_routes(routes_or_handler)
    else:
        app.router.add_post(path, routes_or_handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def platform_at(platform: Platform):
    async with serve(platform.handle) as base:
        platform.url = base + "/v1/requests"
        yield platform


def flapping(seed: int = 5, period_s: float = 0.4, t0: float | None = None) -> Callable[[int], str]:
    """Down (503) every other ``period_s``; while up, random 503s, stalls and lost answers."""
    rng = random.Random(seed)
    start = time.monotonic() if t0 is None else t0

    def behaviour(n: int) -> str:
        if int((time.monotonic() - start) / period_s) % 2 == 1:
            return "fail"
        r = rng.random()
        return "fail" if r < 0.2 else "stall" if r < 0.25 else "stall_accept" if r < 0.3 else "ok"
    return behaviour


async def wait_until(pool, sql: str, *args, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await pool.fetchval(sql, *args):
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {sql}")
        await asyncio.sleep(0.05)
