"""Lookup API benchmark: the real ``goipwatch api`` process over a store of N subscribers,
loaded open-loop from processes of its own.

    python benchmarks/lookups.py --subscribers 1000000 --rate 1000 --seconds 30
    python benchmarks/lookups.py --subscribers 1000000 --saturate
    python benchmarks/lookups.py --subscribers 1000000 --rate 1000 --pdf
    python benchmarks/lookups.py --subscribers 1000000 --rate 1000 --pdf-anew

Creates a database of its own on the PostgreSQL server of GOIPWATCH_TEST_PG, named
``goipwatch_benchmark_lookups_<random>`` (a prefix nothing else uses, a suffix new at each run),
and drops it at the end only because it created it (``--keep`` keeps it and prints its name;
``--reuse NAME`` runs against a database kept earlier and never drops it): N registrations,
1 % of the SIMs flagged in rigs of 10 (with feature state, snapshots, devices, cells), every
SIM active in the report's month and the one before (what a report reads).

The server is ``goipwatch api --config ...`` started as a subprocess (uvloop, the configured
pool, every lookup authenticated, checked for its grounds and audited before it is answered,
as in production); its credentials give the benchmark's police client a rate limit of its own
above the offered load, and its regulator the API's default. The load comes from
``--clients`` other processes (:mod:`benchmarks.loadgen`): Poisson arrivals at the offered
rate, each latency from the request's due time, so a server that falls behind shows its queue. Requests are a police platform's: a case reference, one of
the configured legal bases, one of the officers registered with the token; 70 % MSISDN (some
written with +86 and spaces), 25 % IMSI, 5 % IMEI; 10 % unknown numbers (answered 404), and
of the known ones 30 % flagged SIMs (the richest answers).

Modes: ``--rate R`` one run at R lookups/s; ``--saturate`` a ladder of rates up to the first
whose p99 exceeds ``--p99-ms`` (or that has errors or falls behind), then a bisection between
the last rate that held and the first that did not; ``--pdf`` one run without and one with a
regulator fetching the monthly report as a PDF over and over, as fast as its rate limit lets
it (made off the API's event loop, and again only once ``[report] reuse_s`` has passed, as
deployed), to show what reports cost the lookups; ``--pdf-anew`` the same with every PDF
gathered and drawn anew (``reuse_s = 0``), the worst case. Prints p50/p95/p99/max, the
achieved rate, errors, the CPU time of the API process per lookup, the load average and the
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from detector import ids  # noqa: E402
from detector.api import verify_audit  # noqa: E402
from detector.api.auth import sha256_hex  # noqa: E402
from detector.api.grounds import DEFAULT_LEGAL_BASES  # noqa: E402
from detector.features import state as st  # noqa: E402
from detector.report import parse_month  # noqa: E402
from detector.store import activity, db  # noqa: E402
from detector.store.checkpoint import STATE_LAYOUT  # noqa: E402

ADMIN_DSN = os.environ.get("GOIPWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "bench-police-token-0123456789"
REGULATOR_TOKEN = "bench-regulator-token-0123456789"
OFFICERS = tuple(f"GZ04{k:04d}" for k in range(8))     # registered with the police token
DB_PREFIX = "goipwatch_benchmark_lookups_"   # only this benchmark's databases are named so
IMSI0, MSISDN0 = 460_001_000_000_000, 8_613_000_000_000
RIG_SIZE, FLAG_EVERY = 10, 100
REPORT_MONTH = "2026-10"


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
        # every subscriber active in the report's month and the one before, as a carrier's
        # are: what a report reads of the store (docs/report.md); versioned as the daemon's
        # checkpoints leave them
        month = parse_month(REPORT_MONTH)[0].date()
        await conn.execute(
            "INSERT INTO sim_activity (imsi, month, first_at, last_at, events, last_cell) "
            "SELECT imsi, m, m + (imsi % 600000) * interval '1 second', m + interval '20 days', "
            "       50 + imsi % 100, '460-00-' || (4000 + imsi % 1000 / 100) || '-' || imsi % 1000 "
            "FROM registrations, (VALUES (($1::date - interval '1 month')::date), ($1::date)) AS v(m)",
            month)
        await activity.new_versions(conn, [month, (month - timedelta(days=1)).replace(day=1)])
        # only the tables filled here: statistics of an empty audit log would tell the
        # planner of the chain's triggers that a scan of the log is cheap, for good
        await conn.execute("ANALYZE registrations, cells, engine_state, flags, feature_snapshots, "
                           "sim_state, rigs, sim_activity")
    await pool.close()
    print(f"populated {n:,} subscribers ({len(flagged):,} flagged) in {time.perf_counter() - t0:.1f} s",
          flush=True)




# ---- requests --------------------------------------------------------------------------------

def lookup_body(rng: random.Random, n: int) -> dict:
    """One police lookup over a store of ``n`` subscribers (see the module's mix)."""
    flagged = n // FLAG_EVERY
    known = rng.random() >= 0.10
    if known:
        i = rng.randrange(flagged) * FLAG_EVERY if rng.random() < 0.30 else rng.randrange(n)
    else:
        i = n + rng.randrange(n)
    r = rng.random()
    if r < 0.70:
        digits = str(MSISDN0 + i)
        number = digits if rng.random() < 0.8 else f"+{digits[:2]} {digits[2:5]} {digits[5:9]} {digits[9:]}"
        kind = "msisdn"
    elif r < 0.95:
        kind, number = "imsi", str(IMSI0 + i)
    else:
        rig_k = rng.randrange(flagged) if known else flagged + 10 + rng.randrange(n)
        kind, number = "imei", str(imei_of(rig_k))
    return {"number": number, "number_type": kind,
            "case_ref": f"GZ-2026-{rng.randrange(1, 10**6):06d}",
            "legal_basis": rng.choice(DEFAULT_LEGAL_BASES), "officer": rng.choice(OFFICERS)}


def lookup_requests(host: str, port: int, n: int, rate: float, seconds: float, seed: int
                    ) -> list[tuple[float, bytes]]:
    rng = random.Random(seed ^ 0x5EED)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return [(t, loadgen.http_post(host, port, "/v1/lookups",
                                  json.dumps(lookup_body(rng, n)).encode(), headers))
            for t in loadgen.arrivals(rate, seconds, seed)]


# ---- processes -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_pids(dsn: str) -> list[int]:
    """The server processes of the connections to the benchmark's database (the API's pool),
    when the server runs on this machine: their CPU is the store's share of a lookup."""
    async def pids() -> list[int]:
        conn = await asyncpg.connect(dsn)
        try:
            return [r["pid"] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")]
        finally:
            await conn.close()

    return asyncio.run(pids())


class ApiProcess:
    """``goipwatch api`` on a configuration written for the benchmark (a subprocess)."""

    def __init__(self, dsn: str, tmp: Path, pool_size: int, reuse_s: int | None = None) -> None:
        self.dsn = dsn
        self.port = free_port()
        creds = tmp / "credentials.toml"
        officers = ", ".join(f'"{o}"' for o in OFFICERS)
        # the police platform's own bucket is above the offered load; the regulator has the
        # API's default, as a deployment would give it
        creds.write_text(
            f'[[tokens]]\nsha256 = "{sha256_hex(TOKEN)}"\nclient_id = "bench-police"\n'
            f'identity = "benchmark police platform"\nrole = "police"\nofficers = [{officers}]\n'
            f'rate_per_s = 100000.0\nburst = 100000\n\n'
            f'[[tokens]]\nsha256 = "{sha256_hex(REGULATOR_TOKEN)}"\nclient_id = "bench-regulator"\n'
            f'identity = "benchmark regulator"\nrole = "regulator"\n')
        self.config = tmp / "goipwatch.toml"
        self.config.write_text(
            f'[daemon]\nstate_dir = "{tmp / "state"}"\nlog_level = "info"\n\n'
            f'[store]\ndsn = "{dsn}"\npool_size = {pool_size}\n\n'
            f'[api]\nenabled = true\nhost = "127.0.0.1"\nport = {self.port}\n'
            f'tokens_file = "{creds}"\n'
            + ("" if reuse_s is None else f'\n[report]\nreuse_s = {reuse_s}\n'))
        self.log = tmp / "api.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import sys; from detector.cli import main; sys.exit(main())",
                 "api", "--config", str(self.config)], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/health", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("goipwatch api did not start:\n"
                                     + self.log.read_text()[-3000:]) from None
                time.sleep(0.2)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the API process so far."""
        return process_cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _load_worker(port: int, n: int, rate: float, seconds: float, seed: int, connections: int,
                 ready, go, results) -> None:
    """One load process: builds its requests, opens its connections, waits for the start."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    requests = lookup_requests("127.0.0.1", port, n, rate, seconds, seed)

    async def run() -> loadgen.Outcome:
        ready.put(len(requests))
        start = await asyncio.get_running_loop().run_in_executor(None, go.get)
        cpu0 = time.process_time()
        out = await loadgen.run_open_loop("127.0.0.1", port, requests, start, connections)
        out.cpu_s = time.process_time() - cpu0
        return out

    results.put(asyncio.run(run()))


def _pdf_worker(port: int, seconds: float, ready, go, results) -> None:
    """A regulator fetching the month's report as a PDF, one after the other, from the start
    for ``seconds`` (the last one in flight is waited for), waiting as told when refused
    (429 and 503 carry ``Retry-After``)."""
    times, statuses = [], {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/reports/{REPORT_MONTH}?format=pdf",
                                 headers={"Authorization": f"Bearer {REGULATOR_TOKEN}"})
    ready.put(0)
    start = go.get()
    time.sleep(max(0.0, start - time.monotonic()))
    while time.monotonic() < start + seconds:
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1
                times.append(time.monotonic() - t0)
        except urllib.error.HTTPError as e:
            statuses[e.code] = statuses.get(e.code, 0) + 1
            time.sleep(float(e.headers.get("Retry-After") or 1))
    times.sort()
    results.put({"pdfs": len(times), "statuses": statuses,
                 "pdf_s_median": round(times[len(times) // 2], 3) if times else None,
                 "pdf_s_max": round(times[-1], 3) if times else None})


def run_rate(api: ApiProcess, n: int, rate: float, seconds: float, seed: int, clients: int,
             connections: int, pdf: bool = False) -> dict:
    """One open-loop run at ``rate`` lookups/s from ``clients`` processes (each a Poisson
    stream of rate/clients: together a Poisson stream of ``rate``)."""
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    gos = [ctx.Queue() for _ in range(clients)]
    procs = [ctx.Process(target=_load_worker, daemon=True,
                         args=(api.port, n, rate / clients, seconds, seed * 1000 + k,
                               connections, ready, gos[k], results)) for k in range(clients)]
    if pdf:
        gos.append(ctx.Queue())
        procs.append(ctx.Process(target=_pdf_worker, daemon=True,
                                 args=(api.port, seconds, ready, gos[-1], results)))
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    start = time.monotonic() + 0.5
    load0, cpu0 = os.getloadavg()[0], api.cpu_s()
    pids = backend_pids(api.dsn)
    store0 = {pid: process_cpu_s(pid) for pid in pids}
    for q in gos:
        q.put(start)
    got = [results.get(timeout=seconds + 600) for _ in procs]
    cpu = api.cpu_s() - cpu0
    store = sum(process_cpu_s(pid) - store0.get(pid, 0.0) for pid in backend_pids(api.dsn))
    for p in procs:
        p.join(30)
    outcomes = [g for g in got if isinstance(g, loadgen.Outcome)]
    out = loadgen.summarise(outcomes, rate, seconds)
    answered = max(out["answered"], 1)
    out["cpu_ms_per_lookup"] = {
        "api": round(cpu * 1e3 / answered, 3), "store": round(store * 1e3 / answered, 3),
        "load_generator": round(sum(o.cpu_s for o in outcomes) * 1e3 / answered, 3)}
    out["api_cpu_share"] = round(cpu / seconds, 2)
    out["load_average_1m"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    for g in got:
        if isinstance(g, dict):
            out["pdf"] = g
    return out


def held(result: dict, p99_ms: float) -> bool:
    """Whether a run met the level: p99 within bound, no errors, the rate sent kept up with."""
    return (result["errors"] == 0 and result.get("p99_ms", float("inf")) <= p99_ms
            and result["rate_achieved"] >= 0.97 * result["rate_sent"])


def saturate(api: ApiProcess, args) -> dict:
    """The highest rate (of a ladder, then bisected) whose run held the p99 bound."""
    runs, best, rate, worst = [], None, args.rate, None
    while rate <= args.max_rate:
        r = run_rate(api, args.subscribers, rate, args.seconds, args.seed, args.clients,
                     args.connections)
        runs.append(r)
        print(json.dumps(r), flush=True)
        if not held(r, args.p99_ms):
            worst = rate
            break
        best, rate = rate, rate * 1.25
    for _ in range(args.bisect if best and worst else 0):
        mid = round((best + worst) / 2)
        r = run_rate(api, args.subscribers, mid, args.seconds, args.seed, args.clients,
                     args.connections)
        runs.append(r)
        print(json.dumps(r), flush=True)
        if held(r, args.p99_ms):
            best = mid
        else:
            worst = mid
    return {"saturation_rate": best, "first_rate_not_held": worst, "p99_bound_ms": args.p99_ms,
            "runs": runs}


def measure(dsn: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="goipwatch-bench-") as tmp:
        api = ApiProcess(dsn, Path(tmp), args.pool_size, 0 if args.pdf_anew else None)
        try:
            # warm-up: connections, statement caches, plans (not counted)
            run_rate(api, args.subscribers, min(args.rate, 200.0), 3.0, args.seed + 99, 1, 8)
            if args.saturate:
                result = saturate(api, args)
            elif args.pdf or args.pdf_anew:
                result = {"without_pdf": run_rate(api, args.subscribers, args.rate, args.seconds,
                                                  args.seed, args.clients, args.connections),
                          "with_pdf": run_rate(api, args.subscribers, args.rate, args.seconds,
                                               args.seed + 1, args.clients, args.connections,
                                               pdf=True)}
            else:
                result = run_rate(api, args.subscribers, args.rate, args.seconds, args.seed,
                                  args.clients, args.connections)
        finally:
            api.stop()
    result.update(asyncio.run(audit_figures(dsn)))
    result["subscribers"] = args.subscribers
    result["pool_size"] = args.pool_size
    return result


async def audit_figures(dsn: str) -> dict:
    """The audit chain after the runs: verified, its rows, the lookups among them."""
    pool = await db.connect(dsn)
    try:
        t0 = time.perf_counter()
        report = await verify_audit(pool)
        lookups = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'lookup'")
    finally:
        await pool.close()
    return {"audit_rows": report.rows, "audit_lookup_rows": lookups, "audit_ok": report.ok,
            "audit_verify_s": round(time.perf_counter() - t0, 2)}


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




def bench(args) -> None:
    if args.reuse and not args.reuse.startswith(DB_PREFIX):
        raise SystemExit(f"--reuse takes a database this benchmark kept ({DB_PREFIX}...)")
    created = args.reuse is None
    name = asyncio.run(create_database()) if created else args.reuse
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    try:
        if created:
            asyncio.run(populate(dsn, args.subscribers))
        result = measure(dsn, args)
        result["database"] = name
        import aiohttp
        import numpy
        result["machine"] = machine(asyncpg=asyncpg.__version__, aiohttp=aiohttp.__version__,
                                    numpy=numpy.__version__)
        print(json.dumps(result, indent=2))
    finally:
        if created and not args.keep:
            asyncio.run(drop_database(name))
        elif created:
            print(f"kept database {name} (--reuse {name} to run against it again)", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=1000.0,
                   help="lookups per second (with --saturate: the first rate tried)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    p.add_argument("--saturate", action="store_true",
                   help="find the highest rate whose p99 stays within --p99-ms")
    p.add_argument("--p99-ms", type=float, default=20.0)
    p.add_argument("--max-rate", type=float, default=5000.0)
    p.add_argument("--bisect", type=int, default=3, help="bisection steps after the ladder")
    p.add_argument("--pdf", action="store_true",
                   help="a run without, then one with a regulator fetching report PDFs")
    p.add_argument("--pdf-anew", action="store_true",
                   help="as --pdf, every PDF gathered and drawn anew ([report] reuse_s = 0)")
    p.add_argument("--clients", type=int, default=1, help="load processes")
    p.add_argument("--connections", type=int, default=64, help="connections per load process")
    p.add_argument("--pool-size", type=int, default=8, help="[store] pool_size of the API")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reuse", metavar="NAME",
                   help=f"run against a database kept by --keep ({DB_PREFIX}...); never dropped")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    bench(p.parse_args())


if __name__ == "__main__":
    main()
