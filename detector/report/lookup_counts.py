"""The police lookups of a month, for the report: counts folded out of the audit log
(migration 024) plus the audit rows not folded yet.

:func:`fold` adds the lookups audited since the last fold to ``lookup_outcomes`` (month,
outcome, reason) and ``lookup_carriers`` (month, carrier of the registration the number
names) and moves ``lookup_counts_folded.seq`` in the same transaction, under that row's lock
(two folds never count a row twice). The chain appends rows strictly in ``seq`` order, each
after the one before it committed, so once a row is visible every row before it is too: the
counts and the tail after ``seq`` never overlap nor leave a gap. :func:`month_lookups` reads
the counts and that tail in the caller's snapshot, so a report is exact as of its snapshot
while a fold scans only what was audited since the last one.

:class:`~detector.api.count_folding.CountFolder` folds in the API process every few seconds
and in bounded steps, so that a report's own fold is small and the store's share of the work
comes evenly rather than as one scan of everything audited since the last report.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

# A lookup's date: the store's event time when it was made (the audit row's
# query.event_time, see detector.api.event_clock), else when it was made. A month replayed
# later counts the lookups made on its data; live, the two differ by the feeds' lag.
LOOKUP_DATE = ("CASE WHEN query->>'event_time' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' "
               "THEN (query->>'event_time')::timestamptz ELSE at END")
_MONTH_OF = f"date_trunc('month', ({LOOKUP_DATE}) AT TIME ZONE 'UTC')::date"


def _by_carrier(month: str, where: str) -> str:
    """(month, carrier, count) of the lookups of the audit rows ``where`` selects, by the
    carrier of the registration their number names (by MSISDN or by IMSI: two joins, each
    on its own key, rather than one join on either, which the store can only probe row by
    row)."""
    return (f"WITH q AS (SELECT {month} AS month, query->>'number_type' AS t, "
            f"  (query->>'number')::bigint AS num FROM audit_log WHERE {where} "
            f"  AND action = 'lookup' AND query->>'number' ~ '^[0-9]{{1,18}}$') "
            "SELECT month, carrier, count(*) AS n FROM ("
            "  SELECT q.month, r.carrier FROM q JOIN registrations r ON r.msisdn = q.num "
            "  WHERE q.t = 'msisdn' UNION ALL "
            "  SELECT q.month, r.carrier FROM q JOIN registrations r ON r.imsi = q.num "
            "  WHERE q.t = 'imsi') j GROUP BY 1, 2")


async def fold(conn: asyncpg.Connection, limit: int | None = None) -> int:
    """Add the lookups audited since the last fold to the counts, at most the ``limit`` oldest
    of those rows (the rest at the next fold); returns the audit rows folded (lookups or
    not)."""
    async with conn.transaction():
        done = await conn.fetchval("SELECT seq FROM lookup_counts_folded WHERE one FOR UPDATE")
        upto = await conn.fetchval(
            "SELECT max(seq) FROM audit_log "
            "WHERE seq > $1 AND ($2::bigint IS NULL OR seq <= $1 + $2)", done, limit)
        if upto is None:
            return 0
        tail = "seq > $1 AND seq <= $2"
        await conn.execute(
            f"INSERT INTO lookup_outcomes (month, outcome, reason, n) "
            f"SELECT {_MONTH_OF}, outcome, reason, count(*) FROM audit_log "
            f"WHERE {tail} AND action = 'lookup' GROUP BY 1, 2, 3 "
            f"ON CONFLICT (month, outcome, reason) DO UPDATE SET n = lookup_outcomes.n + EXCLUDED.n",
            done, upto)
        await conn.execute(
            f"INSERT INTO lookup_carriers (month, carrier, n) {_by_carrier(_MONTH_OF, tail)} "
            f"ON CONFLICT (month, carrier) DO UPDATE SET n = lookup_carriers.n + EXCLUDED.n",
            done, upto)
        await conn.execute("UPDATE lookup_counts_folded SET seq = $1 WHERE one", upto)
        return upto - done


async def month_lookups(conn: asyncpg.Connection, start: datetime, end: datetime
                        ) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
    """((outcome, reason, count) ascending, {carrier: count}) of the lookups dated in
    [``start``, ``end``), a calendar month: the folded counts plus the audit rows after the
    fold, as the caller's snapshot sees them."""
    month = start.date()
    tail = ("seq > (SELECT seq FROM lookup_counts_folded WHERE one) "
            f"AND {LOOKUP_DATE} >= $2 AND {LOOKUP_DATE} < $3")
    rows = await conn.fetch(
        "SELECT outcome, reason, sum(n)::bigint AS n FROM ("
        "  SELECT outcome, reason, n FROM lookup_outcomes WHERE month = $1"
        "  UNION ALL"
        f" SELECT outcome, reason, count(*) FROM audit_log WHERE {tail} AND action = 'lookup' "
        "  GROUP BY 1, 2) c GROUP BY 1, 2 ORDER BY 1, 2", month, start, end)
    carriers = await conn.fetch(
        "SELECT carrier, sum(n)::bigint AS n FROM ("
        "  SELECT carrier, n FROM lookup_carriers WHERE month = $1"
        "  UNION ALL"
        f" SELECT carrier, n FROM ({_by_carrier('NULL::date', tail)}) t) c GROUP BY 1",
        month, start, end)
    return ([(r["outcome"], r["reason"], r["n"]) for r in rows],
            {r["carrier"]: r["n"] for r in carriers})
