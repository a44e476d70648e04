"""Lookup API benchmark: a store of N subscribers, lookups at a fixed rate on loopback.

    python benchmarks/lookups.py --subscribers 1000000 --rate 200 --seconds 30

Creates a database of its own on the PostgreSQL server of GOIPWATCH_TEST_PG, named
``goipwatch_benchmark_lookups_<random>`` (a prefix nothing else uses, a suffix new at each run),
and drops it at the end only because it created it (``--keep`` keeps it and prints its name;
``--reuse NAME`` runs against a database kept earlier and never drops it): N registrations, 1 % of the SIMs flagged in rigs of 10 (with feature state,
snapshots, devices, cells). The API runs in its own process (uvloop when installed); this
process sends lookups open-loop (each at its scheduled time, so a slow answer does not hide the
queue behind it) as police over bearer tokens, with valid grounds (a case reference, a
configured legal basis and an officer registered with the token): 70 % MSISDN, 25 % IMSI, 5 % IMEI, 10 % of them
unknown numbers. Every lookup is audited, as in production. Prints p50/p90/p99/max latency
(from the scheduled send time), errors, the achieved rate, and the audit verification time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector import ids  # noqa: E402
from detector.api import ApiConfig, start_api, verify_audit  # noqa: E402
from detector.api.auth import sha256_hex  # noqa: E402
from detector.features import state as st  # noqa: E402
from detector.store import db  # noqa: E402
from detector.store.checkpoint import STATE_LAYOUT  # noqa: E402

ADMIN_DSN = os.environ.get("GOIPWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "bench-police-token-0123456789"
OFFICER = "BENCH0001"
DB_PREFIX = "goipwatch_benchmark_lookups_"   # only this benchmark's databases are named so
IMSI0, MSISDN0 = 460_001_000_000_000, 8_613_000_000_000
RIG_SIZE, FLAG_EVERY = 10, 100


def imei_of(i: int) -> int:
    body = str(35_000_000_000_000 + i)
    return int(body + str(ids.luhn_check_digit(body)))


async def populate(dsn: str, n: int) -> None:
    pool = await db.connect(dsn)
    t0 = time.perf_counter()
    async with pool.acquire() as conn:
        act = datetime(2026, 9, 1, tzinfo=UTC)
        await conn.copy_records_to_table(
            "registrations",
            columns=["imsi", "msisdn", "iccid", "activated_at", "id_hash", "channel", "carrier", "source"],
            records=((IMSI0 + i, MSISDN0 + i, f"89860{i:014d}", act, f"{i // 3:032x}", "store",
                      "China Mobile", "bench") for i in range(n)))
        flagged = list(range(0, n, FLAG_EVERY))
        now = datetime(2026, 10, 5, 8, tzinfo=UTC)
        hour = int(now.timestamp()) // 3600
        await conn.copy_records_to_table(
            "cells", columns=["id", "name"], records=[(c, f"460-00-{4000 + c // 100}-{c}") for c in range(1000)])
        await conn.execute("INSERT INTO engine_state (key, value) VALUES ('layout', $1::jsonb)",
                           json.dumps(STATE_LAYOUT))
        flags, snaps, states, rigs = [], [], [], []
        for k, i in enumerate(flagged):
            rig = f"rig-{k // RIG_SIZE:08x}"
            flags.append((IMSI0 + i, MSISDN0 + i, "sim_anomaly", 0.9, now, rig,
                          json.dumps(["143 distinct numbers contacted in 24 h; 99th percentile of subscribers: 19"])))
            snaps.append((IMSI0 + i, now, "flag", json.dumps({"distinct_callees_24h": 143.0})))
            s = st.empty_sim_state(1)
            s["last_hour"], s["last_ts"], s["msisdn"] = hour, hour * 3600, MSISDN0 + i
            s["imei"][0, :2] = [imei_of(k), imei_of(k + 1)]
            s["imei_hour"][0, :2] = [hour, hour - 2]
            s["slot"]["top_cell"][0, hour % st.SLOTS] = k % 1000
            states.append((IMSI0 + i, s.tobytes()))
            if k % RIG_SIZE == 0:
                members = [str(IMSI0 + j) for j in flagged[k:k + RIG_SIZE]]
                rigs.append((rig, len(members), json.dumps(members),
                             json.dumps([str(imei_of(k + j)) for j in range(RIG_SIZE)]),
                             json.dumps([f"460-00-{4000 + (k % 1000) // 100}-{k % 1000}"]), now, now,
                             f"{len(members)} SIMs"))
        await conn.copy_records_to_table(
            "flags", columns=["imsi", "msisdn", "kind", "score", "flagged_at", "rig_id", "reasons"],
            records=flags)
        await conn.copy_records_to_table("feature_snapshots",
                                         columns=["imsi", "event_time", "purpose", "features"], records=snaps)
        await conn.copy_records_to_table("sim_state", columns=["imsi", "state"], records=states)
        await conn.copy_records_to_table(
            "rigs", columns=["id", "sims", "members", "devices", "cells", "first_at", "last_at", "evidence"],
            records=rigs)
        await conn.execute("ANALYZE")
    await pool.close()
    print(f"populated {n:,} subscribers ({len(flagged):,} flagged) in {time.perf_counter() - t0:.1f} s",
          flush=True)


def serve(dsn: str, tokens_file: str, pool_size: int, port_q) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def main():
        pool = await db.connect(dsn, pool_size)
        cfg = ApiConfig.from_toml({"host": "127.0.0.1", "port": 0, "tokens_file": tokens_file,
                                   "rate_per_s": 100000.0, "burst": 100000}, "api")
        runner = await start_api(pool, cfg)
        port_q.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def load(url: str, n: int, rate: float, seconds: float, seed: int) -> dict:
    rng = random.Random(seed)
    flagged = n // FLAG_EVERY

    def body() -> dict:
        r, known = rng.random(), rng.random() >= 0.1
        i = rng.randrange(n) if known else n + rng.randrange(n)
        if r < 0.70:
            kind, number = "msisdn", str(MSISDN0 + i)
        elif r < 0.95:
            kind, number = "imsi", str(IMSI0 + i)
        else:
            kind, number = "imei", str(imei_of(rng.randrange(flagged) if known else flagged + 10 + rng.randrange(n)))
        return {"number": number, "number_type": kind, "case_ref": f"BENCH-{rng.randrange(10**6)}",
                "legal_basis": "Anti-Telecom and Online Fraud Law Art. 14", "officer": OFFICER}

    total = int(rate * seconds)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    conn = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as s:
        async def one(at: float, b: dict) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            try:
                async with s.post(url + "/v1/lookups", json=b, headers=headers) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
            except aiohttp.ClientError:
                statuses[-1] = statuses.get(-1, 0) + 1
            lat.append(time.perf_counter() - at)

        # warm-up (connections, plans)
        await asyncio.gather(*[one(time.perf_counter(), body()) for _ in range(50)])
        lat.clear()
        statuses.clear()
        start = time.perf_counter() + 0.2
        t0 = time.perf_counter()
        await asyncio.gather(*[one(start + k / rate, body()) for k in range(total)])
        wall = time.perf_counter() - t0
    lat.sort()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"requests": total, "rate_target": rate, "rate_achieved": round(total / wall, 1),
            "p50_ms": round(q[49] * 1e3, 1), "p90_ms": round(q[89] * 1e3, 1),
            "p99_ms": round(q[98] * 1e3, 1), "max_ms": round(lat[-1] * 1e3, 1), "statuses": statuses}


async def create_database() -> str:
    """A new database of this benchmark (random suffix; fails rather than reuse a name)."""
    name = DB_PREFIX + secrets.token_hex(6)
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_database(name: str) -> None:
    """Drop ``name``, a database this run created (never any other)."""
    assert name.startswith(DB_PREFIX)
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def amain(args) -> None:
    if args.reuse and not args.reuse.startswith(DB_PREFIX):
        raise SystemExit(f"--reuse takes a database this benchmark kept ({DB_PREFIX}...)")
    created = args.reuse is None
    name = await create_database() if created else args.reuse
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    try:
        if created:
            await populate(dsn, args.subscribers)
        result = await measure(dsn, args)
        result["database"] = name
        print(json.dumps(result, indent=2))
    finally:
        if created and not args.keep:
            await drop_database(name)
        elif created:
            print(f"kept database {name} (--reuse {name} to run against it again)", file=sys.stderr)


async def measure(dsn: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "credentials.toml"
        tokens.write_text(f'[[tokens]]\nsha256 = "{sha256_hex(TOKEN)}"\nclient_id = "bench"\n'
                          f'identity = "benchmark"\nrole = "police"\nofficers = ["{OFFICER}"]\n')
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        proc = ctx.Process(target=serve, args=(dsn, str(tokens), args.pool_size, q), daemon=True)
        proc.start()
        try:
            port = q.get(timeout=60)
            result = await load(f"http://127.0.0.1:{port}", args.subscribers, args.rate, args.seconds, args.seed)
        finally:
            proc.terminate()
            proc.join(10)
    pool = await db.connect(dsn)
    try:
        t0 = time.perf_counter()
        report = await verify_audit(pool)
    finally:
        await pool.close()
    result["audit_rows"] = report.rows
    result["audit_ok"] = report.ok
    result["audit_verify_s"] = round(time.perf_counter() - t0, 2)
    result["subscribers"] = args.subscribers
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=200.0, help="lookups per second")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--pool-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reuse", metavar="NAME",
                   help=f"run against a database kept by --keep ({DB_PREFIX}...); never dropped")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    asyncio.run(amain(p.parse_args()))


if __name__ == "__main__":
    main()
