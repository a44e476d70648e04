"""Console page benchmark: how long the analysts' pages take to render, by rig size.

    python benchmarks/console.py --rigs 200 --sizes 10,60,200 --requests 50

Builds a fresh database ``gw_bench_console`` on the PostgreSQL server of GOIPWATCH_TEST_PG:
``--rigs`` rigs of 10 flagged SIMs, plus one rig of each of ``--sizes`` (written by the
checkpoint's own functions, with hourly cell state for every member). The API runs in this
process on loopback; an analyst logs in through the form and requests each page ``--requests``
times in a row (closed loop: one at a time, as a person clicks). Every view is audited, as in
production. Prints p50/p99/max per page and the page's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine  # noqa: E402
from detector import ids  # noqa: E402
from detector.api import ApiConfig, make_app  # noqa: E402
from detector.api.auth import sha256_hex  # noqa: E402
from detector.features import state as st  # noqa: E402
from detector.flags import Flag, Rig  # noqa: E402
from detector.store import checkpoint, db  # noqa: E402

ADMIN_DSN = os.environ.get("GOIPWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-analyst-secret-0123456789"
IMSI0 = 460_001_000_000_000
T0 = 1_790_000_000 // 3600 * 3600


def imei_of(i: int) -> str:
    body = str(35_000_000_000_000 + i)
    return body + str(ids.luhn_check_digit(body))


async def populate(pool: asyncpg.Pool, sizes: list[int]) -> list[str]:
    """Rigs of the given sizes; returns their ids."""
    next_imsi, rig_ids = IMSI0, []
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany("INSERT INTO cells (id, name) VALUES ($1, $2)",
                               [(c, f"460-00-4100-{c}") for c in range(100)])
        await conn.execute("INSERT INTO engine_state (key, value) VALUES ('layout', $1::jsonb)",
                           json.dumps(checkpoint.STATE_LAYOUT))
        for k, size in enumerate(sizes):
            sims = [str(next_imsi + j) for j in range(size)]
            next_imsi += size
            rig = Rig(id=f"rig-{k:08x}", sims=set(sims), devices={imei_of(k * 4 + d) for d in range(4)},
                      cells={f"460-00-4100-{(k + c) % 100}" for c in range(2)}, first=T0, last=T0 + 20 * 3600,
                      evidence={"shared": "4 shared devices"})
            flags = [Flag(imsi=s, msisdn="", score=0.9, flagged_at=T0 + 60 * j, kind="sim_anomaly",
                          rig_id=rig.id, reasons=("143 distinct numbers contacted in 24 h",),
                          features={"distinct_callees_24h": 143.0}) for j, s in enumerate(sims)]
            await checkpoint.save_flags(conn, flags)
            await checkpoint.save_rigs(conn, [rig])
            states = []
            for j, s in enumerate(sims):
                state = st.empty_sim_state(1)
                hour = rig.last // 3600
                state["last_hour"], state["last_ts"] = hour, rig.last
                state["imei"][0, :2] = [int(imei_of(k * 4 + j % 4)), int(imei_of(k * 4 + (j + 1) % 4))]
                state["imei_hour"][0, :2] = [hour, hour - 1]
                for back in range(st.SLOTS):
                    state["slot"]["top_cell"][0, (hour - back) % st.SLOTS] = (k + back % 2) % 100
                states.append((int(s), state.tobytes()))
            await conn.copy_records_to_table("sim_state", columns=["imsi", "state"], records=states)
            rig_ids.append(rig.id)
    await pool.execute("ANALYZE")
    return rig_ids


async def timed(session: aiohttp.ClientSession, url: str, n: int) -> dict:
    lat, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        async with session.get(url) as r:
            body = await r.read()
            assert r.status == 200, (url, r.status)
        lat.append(time.perf_counter() - t)
        size = len(body)
    lat.sort()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"p50_ms": round(q[49] * 1e3, 1), "p99_ms": round(q[98] * 1e3, 1),
            "max_ms": round(lat[-1] * 1e3, 1), "bytes": size}


async def amain(args) -> None:
    name = "gw_bench_console"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    pool = await db.connect(dsn)
    sizes = [int(s) for s in args.sizes.split(",")]
    t = time.perf_counter()
    rig_ids = await populate(pool, [10] * args.rigs + sizes)
    print(f"populated {args.rigs + len(sizes)} rigs in {time.perf_counter() - t:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        creds = Path(tmp) / "credentials.toml"
        creds.write_text(f'[[clients]]\nclient_id = "bench"\nsecret_sha256 = "{sha256_hex(SECRET)}"\n'
                         'identity = "benchmark"\nrole = "analyst"\n')
        cfg = ApiConfig.from_toml({"tokens_file": str(creds), "rate_per_s": 100000.0,
                                   "burst": 100000})
        runner = web.AppRunner(make_app(pool, cfg), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = "http://127.0.0.1:%d" % runner.addresses[0][1]
        try:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as s:
                form = await (await s.get(base + "/console/login")).text()
                csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
                r = await s.post(base + "/console/login",
                                 data={"csrf": csrf, "client_id": "bench", "secret": SECRET})
                assert r.url.path == "/console/rigs", r.status
                print(f"rigs list ({args.rigs + len(sizes)} rigs, 200 shown): "
                      f"{await timed(s, base + '/console/rigs', args.requests)}")
                for size, rig_id in zip(sizes, rig_ids[args.rigs:]):
                    print(f"rig page, {size} SIMs: {await timed(s, f'{base}/console/rigs/{rig_id}', args.requests)}")
                print(f"SIM page: {await timed(s, f'{base}/console/sims/{IMSI0}', args.requests)}")
                print(f"outbox page: {await timed(s, base + '/console/outbox', args.requests)}")
        finally:
            await runner.cleanup()
            await pool.close()
    import jinja2
    print(machine(aiohttp=aiohttp.__version__, jinja2=jinja2.__version__))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rigs", type=int, default=200)
    p.add_argument("--sizes", default="10,60,200")
    p.add_argument("--requests", type=int, default=50)
    asyncio.run(amain(p.parse_args()))


if __name__ == "__main__":
    main()
