"""The store's event-time clock as the API reads it: once per TTL, however many lookups ask
at the same moment."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from detector.api.event_clock import EventClock

WATERMARK = datetime(2026, 10, 5, 8, tzinfo=UTC)


class Counted:
    """The store's pool, counting the reads made through it."""

    def __init__(self, pool) -> None:
        self.pool, self.reads = pool, 0

    async def fetchval(self, *args):
        self.reads += 1
        await asyncio.sleep(0.05)          # a read that takes a while, as under load
        return await self.pool.fetchval(*args)


async def test_lookups_asking_together_share_one_read_until_the_ttl_passes(pool):
    await pool.execute("INSERT INTO engine_state (key, value) VALUES ('clock', $1::jsonb) "
                       "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                       json.dumps({"watermark": WATERMARK.timestamp()}))
    now = [100.0]
    counted = Counted(pool)
    clock = EventClock(counted, ttl_s=1.0, clock=lambda: now[0])
    assert await asyncio.gather(*[clock.now() for _ in range(20)]) == [WATERMARK] * 20
    assert counted.reads == 1
    now[0] += 0.5
    assert await clock.now() == WATERMARK and counted.reads == 1     # within the TTL
    now[0] += 0.6
    assert await asyncio.gather(*[clock.now() for _ in range(5)]) == [WATERMARK] * 5
    assert counted.reads == 2


async def test_a_store_without_a_clock_dates_by_the_wall_clock(pool):
    await pool.execute("DELETE FROM engine_state WHERE key = 'clock'")
    assert await EventClock(pool).now() is None
