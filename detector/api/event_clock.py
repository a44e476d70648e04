"""The store's event-time clock, as the API sees it: the newest event time the daemon has
taken in (``engine_state`` key ``clock``, written with each checkpoint).

A lookup is audited with it (``query.event_time``) beside its wall-clock ``at``, so the
monthly report dates a lookup by the event time of the data it was made on: a month replayed
today counts the lookups made while it was replayed, not today's month. Read at most once
per ``ttl_s`` (a lookup must not wait on it); a store that cannot say gives None and the
lookup is dated by its wall clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

import asyncpg

log = logging.getLogger("goipwatch.api")


class EventClock:
    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 1.0, clock=time.monotonic) -> None:
        self._pool, self._ttl_s, self._clock = pool, ttl_s, clock
        self._read_at: float | None = None
        self._value: datetime | None = None
        self._reading: asyncio.Future | None = None    # the read in flight, shared

    async def now(self) -> datetime | None:
        """The newest event time taken in, or None (no checkpoint yet, or unreadable)."""
        t = self._clock()
        if self._read_at is not None and t - self._read_at < self._ttl_s:
            return self._value
        # the lookups that find the value stale while it is being read wait for that one
        # read: under load, each of them had sent its own
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._refresh(t))
        return await asyncio.shield(self._reading)

    async def _refresh(self, t: float) -> datetime | None:
        try:
            self._value = await self._read()
            self._read_at = t
            return self._value
        finally:
            self._reading = None

    async def _read(self) -> datetime | None:
        try:
            raw = await self._pool.fetchval("SELECT value FROM engine_state WHERE key = 'clock'")
        except (OSError, asyncpg.PostgresError):
            log.warning("the store's event-time clock could not be read")
            return None
        try:
            watermark = float(json.loads(raw)["watermark"]) if raw else 0.0
        except (ValueError, TypeError, KeyError):
            return None
        return datetime.fromtimestamp(int(watermark), UTC) if watermark > 0 else None
