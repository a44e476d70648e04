"""A month's active subscribers, counted from ``sim_activity`` once and kept (migration 025).

Counting reads every activity row of the month (joined with the registrations for carrier
and channel): over a million active SIMs, seconds of a store core for each report, on the
store that answers the police lookups, where the rest of the report reads a few thousand
rows. A closed month does not change, so the counts are kept in ``report_active`` with the
versions of the month's activity and of the registrations they were read from, and counted
again only when one of those has moved (the daemon gives a month a new version in every
checkpoint that writes its activity, so the month being watched is counted at every report;
a month replayed later, or a registrations file, makes the next report count again).

:func:`read` runs inside the report's read-only snapshot and says which months it counted;
:func:`keep` stores those afterwards, in a transaction of its own. Counts and versions come
from one snapshot, so counts that raced a write are stored with the versions they were read
at, which the next report sees as stale.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date

import asyncpg

from detector.report.config import NO_REGISTRATION

log = logging.getLogger("goipwatch.report")


@dataclass(frozen=True, slots=True)
class Active:
    """A month's active SIMs by (carrier, channel) and by last cell, with the versions they
    were counted at; ``counted`` when they were read from ``sim_activity`` by this report."""

    month: date
    by_carrier_channel: dict[tuple[str, str], int]
    by_cell: dict[str, int]
    activity_version: int | None       # None: a month whose activity has no version (rows
    registrations_version: int | None  # written by other hands than the daemon's): not kept
    counted: bool


async def read(conn: asyncpg.Connection, month: date) -> Active:
    """The active counts of ``month``: kept ones where their versions are current, else
    counted now (inside the caller's snapshot)."""
    row = await conn.fetchrow(
        "SELECT (SELECT version FROM activity_versions WHERE month = $1) AS activity, "
        "  (SELECT version FROM registrations_version) AS registrations, k.activity_version, "
        "  k.registrations_version, k.by_carrier_channel, k.by_cell "
        "FROM (SELECT 1) one LEFT JOIN report_active k ON k.month = $1", month)
    versions = row["activity"], row["registrations"]
    if None not in versions and (row["activity_version"], row["registrations_version"]) == versions:
        return Active(month, {(c, ch): n for c, ch, n in json.loads(row["by_carrier_channel"])},
                      {c: n for c, n in json.loads(row["by_cell"])}, *versions, counted=False)
    by_cc = {(r["carrier"], r["channel"]): r["n"] for r in await conn.fetch(
        "SELECT coalesce(r.carrier, $2) AS carrier, coalesce(r.channel, $2) AS channel, "
        "count(*) AS n FROM sim_activity a LEFT JOIN registrations r USING (imsi) "
        "WHERE a.month = $1 GROUP BY 1, 2", month, NO_REGISTRATION)}
    by_cell = {r["last_cell"]: r["n"] for r in await conn.fetch(
        "SELECT last_cell, count(*) AS n FROM sim_activity WHERE month = $1 GROUP BY 1", month)}
    return Active(month, by_cc, by_cell, *versions, counted=True)


async def keep(pool: asyncpg.Pool, counted: list[Active]) -> None:
    """Store the counts a report ``counted``, each replacing the month's kept counts unless
    those were counted at later versions (a report that read a newer snapshot). Counts of
    a month without a version are not kept: no writer would tell when they go stale. A store
    that refuses the write (a read-only role or replica) leaves the next report to count."""
    rows = [(a.month, a.activity_version, a.registrations_version,
             json.dumps([[c, ch, n] for (c, ch), n in sorted(a.by_carrier_channel.items())]),
             json.dumps([[c, n] for c, n in sorted(a.by_cell.items())]))
            for a in {a.month: a for a in counted if a.counted}.values()
            if a.activity_version is not None and a.registrations_version is not None]
    if not rows:
        return
    try:
        async with pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO report_active (month, activity_version, registrations_version, "
                "  by_carrier_channel, by_cell) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) "
                "ON CONFLICT (month) DO UPDATE SET activity_version = EXCLUDED.activity_version, "
                "  registrations_version = EXCLUDED.registrations_version, "
                "  by_carrier_channel = EXCLUDED.by_carrier_channel, by_cell = EXCLUDED.by_cell, "
                "  counted_at = now() "
                "WHERE report_active.activity_version <= EXCLUDED.activity_version "
                "  AND report_active.registrations_version <= EXCLUDED.registrations_version", rows)
    except asyncpg.PostgresError as e:
        log.warning("active subscriber counts not kept: %s", e)
