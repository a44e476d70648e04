"""The month's lookups from counts folded out of the audit log plus the rows after the fold:
the same as counting the whole log, wherever the folds fall, and never counted twice."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from detector.api import audit
from detector.report import lookup_counts
from detector.report.gather import parse_month
from detector.store.db import connect

CARRIERS = ("China Mobile", "China Unicom", "Xiaomi Mobile")
MONTHS = ("2026-09", "2026-10", "2026-11")
OUTCOMES = (("answered", ""), ("not_found", "no_subscriber"), ("refused", "invalid_number"))


async def _registrations(pool) -> None:
    await pool.executemany(
        "INSERT INTO registrations (imsi, msisdn, iccid, activated_at, id_hash, channel, carrier, "
        "source) VALUES ($1, $2, $3, $4, 'h', 'agent', $5, 'test')",
        [(460_001_000_000_000 + i, 8_613_800_000_000 + i, f"89860{i:014d}",
          datetime(2026, 8, 1, tzinfo=UTC), CARRIERS[i % 3]) for i in range(12)])


def _entry(rng: random.Random, k: int) -> audit.AuditEntry:
    outcome, reason = rng.choice(OUTCOMES)
    kind = rng.choice(("msisdn", "imsi", "imsi", "imei"))
    i = rng.randrange(15)              # 12 registered, 3 not
    number = {"msisdn": str(8_613_800_000_000 + i), "imsi": str(460_001_000_000_000 + i),
              "imei": "35" + "0" * 13}[kind]
    query = {"number_type": kind, "number": rng.choice((number, number, "+86 138"))}
    if rng.random() < 0.8:             # dated by the store's event time, else by when made
        query["event_time"] = f"{rng.choice(MONTHS)}-{rng.randint(1, 28):02d}T10:00:00Z"
    action = "lookup" if rng.random() < 0.9 else "reports.get"
    return audit.AuditEntry(request_id=f"r{k}", action=action, client_id="psb", identity="desk",
                            role="police", auth="bearer", query=query, status=200,
                            outcome=outcome, reason=reason)


async def _scanned(conn, start, end):
    """The whole log counted, as the report once did."""
    date = lookup_counts.LOOKUP_DATE
    rows = await conn.fetch(
        "SELECT outcome, reason, count(*) AS n FROM audit_log WHERE action = 'lookup' AND "
        f"{date} >= $1 AND {date} < $2 GROUP BY 1, 2 ORDER BY 1, 2", start, end)
    carriers = await conn.fetch(
        "WITH q AS (SELECT query->>'number_type' AS t, query->>'number' AS num FROM audit_log "
        f"  WHERE action = 'lookup' AND {date} >= $1 AND {date} < $2 "
        "  AND query->>'number' ~ '^[0-9]{1,18}$') "
        "SELECT r.carrier, count(*) AS n FROM q JOIN registrations r ON "
        "  (q.t = 'msisdn' AND r.msisdn = q.num::bigint) OR (q.t = 'imsi' AND r.imsi = q.num::bigint) "
        "GROUP BY 1", start, end)
    return ([(r["outcome"], r["reason"], r["n"]) for r in rows],
            {r["carrier"]: r["n"] for r in carriers})


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_counts_and_the_tail_equal_the_whole_log_wherever_the_folds_fall(pg_dsn, seed):
    rng = random.Random(seed)
    pool = await connect(pg_dsn)
    try:
        await _registrations(pool)
        writer = audit.AuditWriter(pool)
        k = 0
        for _ in range(6):
            for _ in range(rng.randint(0, 40)):
                await writer.append(_entry(rng, k))
                k += 1
            if rng.random() < 0.6:
                async with pool.acquire() as conn:
                    await lookup_counts.fold(conn)
            async with pool.acquire() as conn:
                for month in MONTHS + ("2026-12",):
                    start, end = parse_month(month)
                    assert await lookup_counts.month_lookups(conn, start, end) == \
                        await _scanned(conn, start, end), month
    finally:
        await pool.close()


async def test_folds_at_once_count_each_row_once(pg_dsn):
    rng = random.Random(7)
    pool = await connect(pg_dsn, 4)
    try:
        await _registrations(pool)
        writer = audit.AuditWriter(pool)
        for k in range(60):
            await writer.append(_entry(rng, k))

        async def one() -> int:
            async with pool.acquire() as conn:
                return await lookup_counts.fold(conn)

        folded = await asyncio.gather(one(), one(), one())
        assert sorted(folded) == [0, 0, 60]
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT seq FROM lookup_counts_folded") == 60
            start, end = parse_month("2026-10")
            assert await lookup_counts.month_lookups(conn, start, end) == \
                await _scanned(conn, start, end)
    finally:
        await pool.close()


async def _audited(pool, writer: audit.AuditWriter, rng: random.Random, ks: range) -> None:
    """The registrations (once, with the first rows) and audit rows ``ks``."""
    if ks.start == 0:
        await _registrations(pool)
    for k in ks:
        await writer.append(_entry(rng, k))


async def test_a_bounded_fold_takes_the_oldest_rows_and_leaves_the_rest_for_the_next(pg_dsn):
    pool = await connect(pg_dsn)
    try:
        await _audited(pool, audit.AuditWriter(pool), random.Random(11), range(25))
        async with pool.acquire() as conn:
            assert [await lookup_counts.fold(conn, 10) for _ in range(4)] == [10, 10, 5, 0]
            assert await conn.fetchval("SELECT seq FROM lookup_counts_folded") == 25
            for month in MONTHS:
                start, end = parse_month(month)
                assert await lookup_counts.month_lookups(conn, start, end) == \
                    await _scanned(conn, start, end), month
    finally:
        await pool.close()


async def _folded_up_to(pool, seq: int, wait_s: float = 4.0) -> bool:
    """Whether the counts reach audit row ``seq`` within ``wait_s`` (a folder at work)."""
    for _ in range(int(wait_s / 0.02)):
        if await pool.fetchval("SELECT seq FROM lookup_counts_folded") == seq:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_the_api_folds_in_steps_until_nothing_is_left_then_on_its_schedule(pg_dsn):
    from detector.api.count_folding import CountFolder

    rng = random.Random(12)
    pool = await connect(pg_dsn)
    try:
        writer = audit.AuditWriter(pool)
        await _audited(pool, writer, rng, range(23))
        folder = CountFolder(pool, interval_s=0.05, rows=5)
        assert await folder.fold() == 23 and await folder.fold() == 0
        await _audited(pool, writer, rng, range(23, 30))
        folder.start()
        try:
            assert await _folded_up_to(pool, 30)
        finally:
            await folder.stop()
        async with pool.acquire() as conn:
            start, end = parse_month("2026-10")
            assert await lookup_counts.month_lookups(conn, start, end) == \
                await _scanned(conn, start, end)
    finally:
        await pool.close()


async def test_a_store_that_refuses_the_fold_is_said_once_and_tried_again(pg_dsn, caplog):
    from detector.api.count_folding import CountFolder

    pool = await connect(pg_dsn)
    try:
        await pool.execute("ALTER TABLE lookup_outcomes RENAME TO lookup_outcomes_away")
        writer = audit.AuditWriter(pool)
        await writer.append(_entry(random.Random(3), 0))
        folder = CountFolder(pool, interval_s=0.01)
        def said():
            return [r for r in caplog.records if "lookup counts" in r.getMessage()]

        with caplog.at_level("WARNING", logger="goipwatch.api"):
            folder.start()
            for _ in range(200):
                if said():
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)        # refused again and again meanwhile
            assert len(said()) == 1 and "lookup_outcomes" in said()[0].error
            await pool.execute("ALTER TABLE lookup_outcomes_away RENAME TO lookup_outcomes")
            assert await _folded_up_to(pool, 1)
            await folder.stop()
    finally:
        await pool.close()
