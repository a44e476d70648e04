"""Monthly report benchmark: the report of a carrier-sized store, and the daemon's added cost.

    python benchmarks/report.py --subscribers 1000000

Builds (or reuses, ``--reuse``) a database ``gw_bench_report_<N>`` on the PostgreSQL server of
GOIPWATCH_TEST_PG, filled server-side: N registrations (six carriers by market share, 800
channels), every SIM active in the report's month and the one before (``sim_activity``: 2 N
rows, 5,000 cells), 0.5 % of the SIMs flagged in the month in rigs of 10, a verdict on a third
of them, a delivered re-verification request per flagged card with an outcome on half, feed
days for 30 files. Then times ``gather`` (best of three) on the API's report worker's
connection (``report_pool``: one backend, no parallel workers), counting the months' active
SIMs and then reading them kept, and on a plain pool as ``goipwatch report`` has (parallel
workers allowed, counting), the store's queries of one gather on the worker's connection
(counting, and with the counts kept: the slowest, with their times), the CSV/XLSX/PDF writers, and the
daemon's added work per block: ``activity.summarise`` of a 1,000,000-record CDR batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import asyncpg
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine  # noqa: E402
from detector.records import CdrBatch  # noqa: E402
from detector.report import ReportConfig, gather, write_all  # noqa: E402
from detector.report.worker import report_pool  # noqa: E402
from detector.store import activity  # noqa: E402
from detector.store.db import connect  # noqa: E402

ADMIN = os.environ.get("GOIPWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CARRIERS = "ARRAY['China Mobile','China Mobile','China Mobile','China Mobile','China Mobile'," \
           "'China Mobile','China Unicom','China Unicom','China Telecom','Xiaomi Mobile']"

FILL = f"""
INSERT INTO registrations (imsi, msisdn, iccid, activated_at, id_hash, channel, carrier, source)
SELECT 460000000000000 + i, 8613000000000 + i, (89860000000000000000 + i)::text,
       '2026-01-01'::timestamptz + (i % 86400) * interval '1 minute', md5(i::text),
       'CH' || lpad((i % 800)::text, 4, '0'), ({CARRIERS})[1 + i % 10], 'bench'
FROM generate_series(1, $1) i;
INSERT INTO sim_activity (imsi, month, first_at, last_at, events, last_cell)
SELECT 460000000000000 + i, m, m + (i % 600000) * interval '1 second',
       m + interval '20 days', 50 + i % 100, '460-00-' || (4096 + i % 50) || '-' || (i % 5000)
FROM generate_series(1, $1) i, (VALUES ('2026-09-01'::date), ('2026-10-01'::date)) AS v(m);
INSERT INTO flags (imsi, msisdn, kind, score, flagged_at, rig_id, reasons)
SELECT 460000000000000 + i, 8613000000000 + i,
       CASE WHEN i % 7 = 0 THEN 'bulk_registration' ELSE 'sim_anomaly' END, 0.9,
       '2026-10-01'::timestamptz + (i % 600000) * interval '1 second' + interval '2 hours',
       'rig-' || (i / 1990), '[]'
FROM generate_series(199, $1, 199) i;
INSERT INTO rigs (id, sims, members, devices, cells, first_at, last_at, evidence)
SELECT rig_id, count(*), jsonb_agg(imsi::text), '[]', '[]', min(flagged_at), max(flagged_at), 'bench'
FROM flags GROUP BY rig_id;
INSERT INTO feedback (imsi, verdict, actor)
SELECT imsi, CASE WHEN imsi % 2 = 0 THEN 'confirm' ELSE 'dismiss' END, 'bench'
FROM flags WHERE imsi % 3 = 0;
INSERT INTO verification_outbox (request_id, idempotency_key, flag_id, action, line_imsi, body,
                                 status, created_at, delivered_at)
SELECT gen_random_uuid(), 'k' || id, id, CASE WHEN id % 4 = 0 THEN 'suspend' ELSE 'reverify' END,
       imsi, '{{}}', 'delivered', flagged_at, flagged_at + (id % 300) * interval '1 second'
FROM flags;
INSERT INTO verification_outcomes (request_id, outcome, outcome_at)
SELECT request_id, CASE WHEN action = 'suspend' THEN 'suspended' ELSE 'failed' END, delivered_at
FROM verification_outbox WHERE flag_id % 2 = 0;
INSERT INTO ingested_files (probe, name, size, sha256, status, records)
SELECT 'cdr', 'cdr-' || d || '.csv', 1, md5(d::text), 'done', 1000 FROM generate_series(1, 30) d;
INSERT INTO feed_days (probe, source, day, records)
SELECT 'cdr', 'cdr-' || d || '.csv', '2026-09-30'::date + d, 1000 FROM generate_series(1, 30) d;
ANALYZE;
"""


async def build(dsn: str, n: int, reuse: bool) -> float:
    admin = await asyncpg.connect(ADMIN)
    name = dsn.rsplit("/", 1)[1]
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and reuse:
            return 0.0
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    pool = await connect(dsn)
    t = time.perf_counter()
    async with pool.acquire() as conn:
        for stmt in [s for s in FILL.split(";\n") if s.strip()]:
            await conn.execute(stmt.replace("$1", str(n)))
        # the months' activity versioned, as the daemon's checkpoints leave it
        await activity.new_versions(conn, [date(2026, 9, 1), date(2026, 10, 1)])
    await pool.close()
    return time.perf_counter() - t


def summarise_cost(records: int = 1_000_000, sims: int = 200_000) -> float:
    rng = np.random.default_rng(1)
    z = np.zeros(records, np.int64)
    b = CdrBatch(ts=np.sort(rng.integers(1_790_000_000, 1_790_010_800, records)),
                 record_type=z.astype(np.int8), direction=z.astype(np.int8),
                 duration=z.astype(np.int32), imsi=460_000_000_000_000 + rng.integers(0, sims, records),
                 msisdn=z, imei=z, peer=z, cell=rng.integers(-1, 5000, records).astype(np.int32),
                 result=z.astype(np.int8), line=np.arange(records),
                 cells=tuple(f"460-00-4096-{i}" for i in range(5000)))
    keep = np.ones(records, bool)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        activity.summarise(b, keep)
        best = min(best, time.perf_counter() - t)
    return best


async def forget_counts(dsn: str) -> None:
    """The months' active counts not kept: the next gather counts them (detector/report/active.py)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM report_active")
    finally:
        await conn.close()


async def timed_gather(dsn: str, open_pool, cfg: ReportConfig, kept: bool):
    """(seconds, report) of one ``gather`` on a pool from ``open_pool``, with the months'
    active counts kept by an earlier gather or counted anew."""
    if not kept:
        await forget_counts(dsn)
    pool = await open_pool(dsn)
    try:
        t = time.perf_counter()
        report = await gather(pool, "2026-10", cfg)
        return time.perf_counter() - t, report
    finally:
        await pool.close()


async def store_queries(dsn: str, cfg: ReportConfig, kept: bool) -> list[tuple[float, str]]:
    """(seconds, the statement's first 100 characters) of each query of one ``gather`` on the
    worker's connection, slowest first."""
    if not kept:
        await forget_counts(dsn)
    logged: list[tuple[float, str]] = []
    pool = await report_pool(dsn)
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: logged.append((q.elapsed, " ".join(q.query.split())[:100])))
        await gather(pool, "2026-10", cfg)
    finally:
        await pool.close()
    return sorted(logged, reverse=True)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--reuse", action="store_true")
    args = p.parse_args()
    dsn = f"{ADMIN.rsplit('/', 1)[0]}/gw_bench_report_{args.subscribers}"
    fill_s = await build(dsn, args.subscribers, args.reuse)
    cfg = ReportConfig.from_toml({"regions": {f"460-00-{4096 + k}-": f"district {k}" for k in range(50)}})
    # alternated: the API's worker counting the months' active SIMs, then reading them kept;
    # `goipwatch report` (parallel workers allowed) counting them
    runs = (("worker", report_pool, False), ("worker_kept", report_pool, True),
            ("parallel", connect, False))
    times: dict[str, list[float]] = {kind: [] for kind, _, _ in runs}
    for _ in range(3):
        for kind, open_pool, kept in runs:
            took, report = await timed_gather(dsn, open_pool, cfg, kept)
            times[kind].append(took)
    queries = await store_queries(dsn, cfg, kept=False)
    queries_kept = await store_queries(dsn, cfg, kept=True)
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        write_all(report, Path(out), cfg)
        write_s = time.perf_counter() - t
    carriers = report.table("carriers")
    print(json.dumps({
        "machine": machine(numpy=np.__version__),
        "subscribers": args.subscribers, "fill_s": round(fill_s, 1),
        "flagged_cards": sum(carriers.column("flagged_cards")),
        "channels_ranked": len(report.table("channels").rows),
        "gather_s_best_of_3": round(min(times["worker"]), 2),
        "gather_s_all": [round(x, 2) for x in times["worker"]],
        "gather_kept_s_best_of_3": round(min(times["worker_kept"]), 2),
        "gather_kept_s_all": [round(x, 2) for x in times["worker_kept"]],
        "gather_parallel_s_best_of_3": round(min(times["parallel"]), 2),
        "gather_parallel_s_all": [round(x, 2) for x in times["parallel"]],
        "store_queries_s": round(sum(t for t, _ in queries), 2),
        "slowest_store_queries": [{"s": round(t, 3), "sql": q} for t, q in queries[:8]],
        "store_queries_kept_s": round(sum(t for t, _ in queries_kept), 3),
        "slowest_store_queries_kept": [{"s": round(t, 3), "sql": q} for t, q in queries_kept[:5]],
        "write_csv_xlsx_pdf_json_s": round(write_s, 2),
        "summarise_1M_records_s": round(summarise_cost(), 3),
    }, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
