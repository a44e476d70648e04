"""The API's steady folding of its audit rows into the report's monthly lookup counts
(:mod:`detector.report.lookup_counts`).

A report folds the rows audited since the last fold before it reads the month. Left to the
report alone, that fold is everything audited since the report before (at 1,000 lookups/s,
60,000 rows a minute), scanned and joined to the registrations at the store's priority in one
transaction, all at once beside the lookups. Folding a few seconds' rows at a time spreads
the same work evenly, and the report's own fold finds little left.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from detector.api.background import Background
from detector.report import lookup_counts

log = logging.getLogger("goipwatch.api")

FOLD_ROWS = 10_000      # audit rows a fold transaction takes at most (the rest in the next)


class CountFolder(Background):
    """Folds the audit rows appended since the last fold every ``interval_s``, at most
    ``rows`` a transaction."""

    task_name = "lookup-count-fold"

    def __init__(self, pool: asyncpg.Pool, interval_s: float, rows: int = FOLD_ROWS) -> None:
        if rows < 1:
            raise ValueError(f"CountFolder: rows must be at least 1 (got {rows})")
        self.pool, self.interval_s, self.rows = pool, interval_s, rows

    async def fold(self) -> int:
        """Fold everything audited so far, ``rows`` at a time; returns the rows folded."""
        total = 0
        while True:
            async with self.pool.acquire() as conn:
                n = await lookup_counts.fold(conn, self.rows)
            total += n
            if n < self.rows:
                return total

    async def _run(self) -> None:
        said = ""         # the failure said last: a store that refuses (read-only, no grant)
        while True:       # refuses every time, and is said once until a fold succeeds
            await asyncio.sleep(self.interval_s)     # not at start: the API opens first
            try:
                await self.fold()
                said = ""
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                why = f"{type(e).__name__}: {e}"
                if why != said:
                    log.warning("folding the lookup counts failed; the report folds what is "
                                "left, and this is tried again", extra={"error": why})
                said = why
