"""Report facts kept at checkpoints: per SIM and month first/last event, records and last
located cell; per file the records of each event day."""

from datetime import UTC, date, datetime

import numpy as np

from detector.store import activity
from detector.store.db import connect
from detector.records import CdrBatch

OCT31 = int(datetime(2026, 10, 31, 23, 0, tzinfo=UTC).timestamp())
NOV1 = int(datetime(2026, 11, 1, 1, 0, tzinfo=UTC).timestamp())


def batch(ts, imsi, cell, cells=("460-00-1-1", "460-00-2-2")) -> CdrBatch:
    n = len(ts)
    z = np.zeros(n, np.int64)
    return CdrBatch(ts=np.array(ts, np.int64), record_type=z.astype(np.int8),
                    direction=z.astype(np.int8), duration=z.astype(np.int32),
                    imsi=np.array(imsi, np.int64), msisdn=z, imei=z, peer=z,
                    cell=np.array(cell, np.int32), result=z.astype(np.int8),
                    line=np.arange(1, n + 1), cells=cells)


def rows(a: activity.Activity) -> list[tuple]:
    return sorted(zip(a.month.tolist(), a.imsi.tolist(), a.first.tolist(), a.last.tolist(),
                      a.events.tolist(), a.cell.tolist()))


def test_rows_per_sim_and_month_with_the_last_located_cell():
    b = batch([OCT31, OCT31 + 60, OCT31 + 120, NOV1, OCT31], [7, 7, 7, 7, 8], [0, 1, -1, 0, -1])
    keep = np.array([True, True, True, True, True])
    oct_, nov = activity.month_of(np.array([OCT31, NOV1]))
    assert rows(activity.summarise(b, keep)) == [
        (oct_, 7, OCT31, OCT31 + 120, 3, "460-00-2-2"),   # the newest record had no cell
        (oct_, 8, OCT31, OCT31, 1, ""),
        (nov, 7, NOV1, NOV1, 1, "460-00-1-1")]


def test_late_records_are_left_out_and_parts_merge():
    b = batch([OCT31, OCT31 + 60], [7, 7], [0, 1])
    first = activity.summarise(b, np.array([True, False]))
    second = activity.summarise(batch([OCT31 - 60], [7], [1], cells=("460-00-9-9",)),
                                np.array([True]))
    oct_ = int(activity.month_of(np.array([OCT31]))[0])
    assert rows(first) == [(oct_, 7, OCT31, OCT31, 1, "460-00-1-1")]
    assert rows(activity.merge([first, second])) == [(oct_, 7, OCT31 - 60, OCT31, 2, "460-00-1-1")]


async def test_saved_facts_add_up_across_checkpoints(pg_dsn):
    pool = await connect(pg_dsn)
    try:
        for ts, cell, source in (([OCT31], [0], "a.csv"), ([OCT31 - 3600, NOV1], [1, 1], "b.csv")):
            facts = activity.Facts()
            facts.add_records("cdr", source, batch(ts, [7] * len(ts), cell), np.ones(len(ts), bool))
            async with pool.acquire() as conn, conn.transaction():
                await activity.save(conn, facts)
        got = [tuple(r) for r in await pool.fetch(
            "SELECT month, events, first_at, last_at, last_cell FROM sim_activity ORDER BY month")]
        days = [tuple(r) for r in await pool.fetch(
            "SELECT source, day, records FROM feed_days ORDER BY source, day")]
    finally:
        await pool.close()
    at = lambda t: datetime.fromtimestamp(t, UTC)   # noqa: E731
    assert got == [
        # b.csv's October record is older than a.csv's: a.csv's cell stays the newest
        (date(2026, 10, 1), 2, at(OCT31 - 3600), at(OCT31), "460-00-1-1"),
        (date(2026, 11, 1), 1, at(NOV1), at(NOV1), "460-00-2-2")]
    assert days == [("a.csv", date(2026, 10, 31), 1), ("b.csv", date(2026, 10, 31), 1),
                    ("b.csv", date(2026, 11, 1), 1)]


def test_a_sim_never_located_stays_without_a_cell_when_parts_merge():
    a = activity.summarise(batch([OCT31], [7], [-1]), np.array([True]))
    b = activity.summarise(batch([OCT31 + 5], [8], [1]), np.array([True]))
    merged = {i: c for i, c in zip(activity.merge([a, b]).imsi.tolist(),
                                   activity.merge([a, b]).cell.tolist())}
    assert merged == {7: "", 8: "460-00-2-2"}


async def test_a_newer_unlocated_record_does_not_bring_back_an_older_cell(pg_dsn):
    # stored: cell A at 10:00; then a batch with cell B at 09:00 and an unlocated record at
    # 11:00: the newest located record is still A's, so the cell stays A
    ten = OCT31 - 13 * 3600          # 2026-10-31 10:00 UTC
    pool = await connect(pg_dsn)
    try:
        for ts, cell in (([ten], [0]), ([ten - 3600, ten + 3600], [1, -1])):
            facts = activity.Facts()
            facts.add_records("cdr", "f.csv", batch(ts, [7] * len(ts), cell), np.ones(len(ts), bool))
            async with pool.acquire() as conn, conn.transaction():
                await activity.save(conn, facts)
        got = tuple(await pool.fetchrow(
            "SELECT first_at, last_at, events, last_cell, cell_at FROM sim_activity"))
        # a later batch with a newer located record moves the cell
        facts = activity.Facts()
        facts.add_records("cdr", "g.csv", batch([ten + 1800], [7], [1]), np.ones(1, bool))
        async with pool.acquire() as conn, conn.transaction():
            await activity.save(conn, facts)
        moved = tuple(await pool.fetchrow("SELECT last_at, last_cell, cell_at FROM sim_activity"))
    finally:
        await pool.close()
    at = lambda t: datetime.fromtimestamp(t, UTC)   # noqa: E731
    assert got == (at(ten - 3600), at(ten + 3600), 3, "460-00-1-1", at(ten))
    assert moved == (at(ten + 3600), "460-00-2-2", at(ten + 1800))
