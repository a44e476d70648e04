"""A month's active subscribers, counted once and kept: read again while nothing they were
counted from has changed, counted again after any write of the month's activity or of the
registrations (by the daemon's checkpoint, or rows removed by hand), and never kept as
fresh when a write raced the count."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
import numpy as np
import pytest

from detector.records import CdrBatch, RegistrationBatch
from detector.report import active
from detector.report.gather import gather
from detector.store import activity, checkpoint as cp
from detector.store.db import connect

from tests.detector.report import small_store
from tests.detector.report.small_store import CM, S, XM

OCT, SEP = date(2026, 10, 1), date(2026, 9, 1)
OCT5 = int(datetime(2026, 10, 5, 12, tzinfo=UTC).timestamp())


def _records(imsis: list[int], cell: int = 0) -> activity.Facts:
    n = len(imsis)
    z = np.zeros(n, np.int64)
    batch = CdrBatch(ts=np.full(n, OCT5, np.int64), record_type=z.astype(np.int8),
                     direction=z.astype(np.int8), duration=z.astype(np.int32),
                     imsi=np.array(imsis, np.int64), msisdn=z, imei=z, peer=z,
                     cell=np.full(n, cell, np.int32), result=z.astype(np.int8),
                     line=np.arange(1, n + 1), cells=("460-00-100-7",))
    facts = activity.Facts()
    facts.add_records("cdr", "more.csv", batch, np.ones(n, bool))
    return facts


class _Nothing:
    """A checkpointed process with no state of its own: the checkpoint's outcome alone."""

    async def write_state(self, conn) -> None:
        pass

    async def refresh(self, conn) -> None:
        pass


async def _read(pool, month=OCT) -> active.Active:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await active.read(conn, month)


@pytest.fixture
async def pool(pg_dsn):
    pool = await connect(pg_dsn)
    async with pool.acquire() as conn:
        await small_store.build(conn)
    yield pool
    await pool.close()


async def test_counts_are_kept_and_read_back_while_nothing_changed(pool):
    first = await _read(pool)
    assert first.counted
    assert first.by_carrier_channel == {(CM, "CH1"): 2, (CM, "CH2"): 2, (XM, "CH2"): 1,
                                        (XM, "CH3"): 1, ("(no registration)", "(no registration)"): 1}
    assert first.by_cell["460-00-100-1"] == 1 and first.by_cell[""] == 1
    await active.keep(pool, [first])
    again = await _read(pool)
    assert not again.counted
    assert (again.by_carrier_channel, again.by_cell) == (first.by_carrier_channel, first.by_cell)
    assert (await _read(pool, SEP)).counted                  # September was not kept


async def test_a_month_whose_activity_has_no_version_is_counted_at_every_report(pool):
    await pool.execute("DELETE FROM activity_versions WHERE month = $1", OCT)  # rows by hand
    await active.keep(pool, [await _read(pool)])
    assert (await _read(pool)).counted
    assert await pool.fetchval("SELECT count(*) FROM report_active") == 0


async def test_a_checkpoint_that_writes_the_months_activity_makes_it_counted_again(pool):
    await active.keep(pool, [await _read(pool), await _read(pool, SEP)])
    await cp.commit(pool, _Nothing(), cp.Outcome(facts=_records([S[7], 460_00_2000000001])))
    october = await _read(pool)
    assert october.counted
    assert october.by_carrier_channel[(XM, "CH3")] == 2      # s7 is active now
    assert october.by_carrier_channel[("(no registration)", "(no registration)")] == 2
    assert october.by_cell["460-00-100-7"] == 2
    assert not (await _read(pool, SEP)).counted             # September's activity is untouched


async def test_registrations_written_make_every_month_counted_again(pool):
    await active.keep(pool, [await _read(pool), await _read(pool, SEP)])
    moved = RegistrationBatch(
        imsi=np.array([S[1]]), msisdn=np.array([8613800000001]),
        iccid=np.array(["8986000000000000001"], object), activated_at=np.array([OCT5]),
        id_hash=np.array(["idhash-1"], object), channel=np.array(["CH9"], object),
        carrier=np.array([XM], object), line=np.array([1]), source="subs2.csv")
    async with pool.acquire() as conn, conn.transaction():
        await cp.save_inputs(conn, cp.Pending(registrations=[moved]))
    october, september = await _read(pool), await _read(pool, SEP)
    assert october.counted and september.counted
    assert october.by_carrier_channel[(XM, "CH9")] == 1 and october.by_carrier_channel[(CM, "CH1")] == 1


@pytest.mark.parametrize("removal", ["DELETE FROM sim_activity WHERE imsi = {s1}",
                                     "TRUNCATE sim_activity", "DELETE FROM registrations WHERE imsi = {s1}",
                                     "TRUNCATE registrations"])
async def test_rows_removed_by_hand_make_the_kept_counts_stale(pool, removal):
    await active.keep(pool, [await _read(pool)])
    await pool.execute(removal.format(s1=S[1]))
    october = await _read(pool)
    assert october.counted
    fresh = await pool.fetchval("SELECT count(*) FROM sim_activity WHERE month = $1", OCT)
    assert sum(october.by_cell.values()) == fresh


async def test_counts_that_raced_a_write_are_kept_as_stale_not_as_fresh(pool):
    raced = await _read(pool)                          # counted before the write committed
    await cp.commit(pool, _Nothing(), cp.Outcome(facts=_records([S[7]])))
    await active.keep(pool, [raced])
    october = await _read(pool)
    assert october.counted and october.by_carrier_channel[(XM, "CH3")] == 2


async def test_older_counts_never_replace_newer_ones(pool):
    old = await _read(pool)
    await cp.commit(pool, _Nothing(), cp.Outcome(facts=_records([S[7]])))
    new = await _read(pool)
    await active.keep(pool, [new])
    await active.keep(pool, [old])                     # a slower report, from an older snapshot
    kept = await _read(pool)
    assert not kept.counted and kept.by_carrier_channel == new.by_carrier_channel


async def test_a_store_that_refuses_the_write_leaves_the_next_report_to_count(pool, pg_dsn, caplog):
    counted = await _read(pool)
    replica = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1,
                                        server_settings={"default_transaction_read_only": "on"})
    try:
        await active.keep(replica, [counted])
    finally:
        await replica.close()
    assert "active subscriber counts not kept" in caplog.text
    assert (await _read(pool)).counted


async def test_a_report_reads_the_kept_counts_and_sees_a_checkpoints_activity(pool):
    first = await gather(pool, "2026-10")
    kept = await pool.fetch("SELECT month FROM report_active ORDER BY month")
    assert [r["month"] for r in kept] == [SEP, OCT]   # the trend's earlier months: no activity
    assert await gather(pool, "2026-10", now=first.generated_at) == first
    await cp.commit(pool, _Nothing(), cp.Outcome(facts=_records([S[7]])))
    later = (await gather(pool, "2026-10")).table("carriers")
    active_col = [c.key for c in later.columns].index("active_subscribers")
    xiaomi = next(r for r in later.rows if r[0] == XM)
    assert xiaomi[active_col] == 3                     # s5, s6 and now s7
