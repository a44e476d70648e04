"""Report facts the daemon keeps beside its checkpoints (migration 006, docs/report.md).

The feature state only remembers a SIM's last 24 hours, so the monthly report needs a few
facts kept as the feeds are read: per SIM and month, its first and last event time, how many
records it had and the cell of its last located record (``sim_activity``); per file, how many
records it delivered for each event day (``feed_days``). They are summarised per batch here
(vectorised) and written by :func:`save` inside the checkpoint transaction of their files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import asyncpg
import numpy as np

from detector.records import CdrBatch, RegistrationBatch

_IMSI_BITS = 50          # IMSIs are below 10**15 < 2**50: (month, imsi) packs into one int64


@dataclass(frozen=True, slots=True, eq=False)
class Activity:
    """One row per (month, SIM): months since 1970-01, first/last event time, records, and
    the cell of the last located record ('' when none)."""

    month: np.ndarray     # int64 months since 1970-01
    imsi: np.ndarray      # int64
    first: np.ndarray     # int64 epoch seconds
    last: np.ndarray      # int64 epoch seconds
    events: np.ndarray    # int64
    cell_at: np.ndarray   # int64 time of the last located record, -1 = none
    cell: np.ndarray      # object (str)

    def __len__(self) -> int:
        return len(self.imsi)


def month_of(ts: np.ndarray) -> np.ndarray:
    """Months since 1970-01 (UTC) of epoch seconds."""
    if len(ts):
        lo, hi = ts.min(), ts.max()
        first = np.array([lo], "datetime64[s]").astype("datetime64[M]")
        if first == np.array([hi], "datetime64[s]").astype("datetime64[M]"):
            return np.full(len(ts), first.astype(np.int64)[0], np.int64)   # the usual case
    return ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)


def _reduce(month, imsi, first, last, events, cell_at, cell_code) -> tuple[np.ndarray, ...]:
    """Group rows by (month, imsi): min first, max last, summed events, and the cell code of
    the row with the newest located record (cell_at -1: not located)."""
    key = (month << _IMSI_BITS) | imsi
    order = np.argsort(key)
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    # newest located record and its cell in one maximum: (time << bits) | code
    bits = max(int(cell_code.max(initial=0)) + 1, 1).bit_length()
    packed = np.where(cell_at >= 0, (cell_at << bits) | np.maximum(cell_code, 0), -1)[order]
    best = np.maximum.reduceat(packed, starts)
    return (key[starts] >> _IMSI_BITS, key[starts] & ((1 << _IMSI_BITS) - 1),
            np.minimum.reduceat(first[order], starts), np.maximum.reduceat(last[order], starts),
            np.add.reduceat(events[order], starts), np.where(best >= 0, best >> bits, -1),
            np.where(best >= 0, best & ((1 << bits) - 1), -1))


def summarise(batch: CdrBatch, keep: np.ndarray | None = None) -> Activity:
    """The activity rows of ``batch`` (only the records where ``keep``, e.g. not late)."""
    ts, imsi, code = batch.ts, batch.imsi, batch.cell
    if keep is not None and not keep.all():
        ts, imsi, code = ts[keep], imsi[keep], code[keep]
    if not len(ts):
        return _empty()
    ts = ts.astype(np.int64, copy=False)
    code = code.astype(np.int64)
    month, imsi, first, last, events, cell_at, code = _reduce(
        month_of(ts), imsi.astype(np.int64, copy=False), ts, ts, np.ones(len(ts), np.int64),
        np.where(code >= 0, ts, -1), code)
    names = np.array(list(batch.cells) + [""], dtype=object)
    return Activity(month, imsi, first, last, events, cell_at, names[code])


def merge(parts: list[Activity]) -> Activity:
    """Several summaries as one (rows of the same SIM and month combined)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty()
    if len(parts) == 1:
        return parts[0]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    names, code = np.unique(cat("cell").astype(str), return_inverse=True)
    month, imsi, first, last, events, cell_at, code = _reduce(
        cat("month"), cat("imsi"), cat("first"), cat("last"), cat("events"), cat("cell_at"),
        code.astype(np.int64))
    return Activity(month, imsi, first, last, events, cell_at,
                    np.append(names.astype(object), "")[code])   # code -1: never located


def _empty() -> Activity:
    z = np.zeros(0, np.int64)
    return Activity(z, z, z, z, z, z, np.zeros(0, object))


@dataclass(slots=True)
class Facts:
    """Report facts gathered since the last checkpoint."""

    activity: list[Activity] = field(default_factory=list)
    days: dict[tuple[str, str, int], int] = field(default_factory=dict)   # (probe, file, day) -> records

    def add_records(self, probe: str, source: str, batch: CdrBatch, keep: np.ndarray) -> None:
        """CDR or signalling records applied from ``source`` (``keep``: the ones not late)."""
        self.activity.append(summarise(batch, keep))
        self._count_days(probe, source, batch.ts[keep])

    def add_registrations(self, probe: str, source: str, batch: RegistrationBatch) -> None:
        self._count_days(probe, source, batch.activated_at)

    def add_days(self, probe: str, source: str, ts: np.ndarray) -> None:
        """Feed coverage alone (records of ``source`` at event times ``ts``): the scale-out
        publisher's share, its workers add the activity."""
        self._count_days(probe, source, ts)

    def _count_days(self, probe: str, source: str, ts: np.ndarray) -> None:
        days, n = np.unique(np.asarray(ts, np.int64) // 86400, return_counts=True)
        for d, k in zip(days.tolist(), n.tolist()):
            key = (probe, source, d)
            self.days[key] = self.days.get(key, 0) + k

    def __bool__(self) -> bool:
        return bool(self.activity or self.days)


def _month_date(m: int) -> date:
    return date(1970 + m // 12, m % 12 + 1, 1)


def _ts(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


async def save(conn: asyncpg.Connection, facts: Facts) -> list[date]:
    """Write ``facts`` on ``conn`` (inside the caller's checkpoint transaction); returns the
    months whose activity it wrote, for :func:`new_versions` at the end of the transaction."""
    a = merge(facts.activity)
    months: list[date] = []
    if len(a):
        months = [_month_date(m) for m in np.unique(a.month).tolist()]
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS _cp_activity (month date, imsi bigint, "
                           "first_at timestamptz, last_at timestamptz, events bigint, "
                           "cell_at timestamptz, last_cell text) ON COMMIT DELETE ROWS")
        await conn.copy_records_to_table("_cp_activity", records=[
            (_month_date(m), i, _ts(f), _ts(la), e, _ts(ca) if ca >= 0 else None, c)
            for m, i, f, la, e, ca, c in zip(a.month.tolist(), a.imsi.tolist(), a.first.tolist(),
                                             a.last.tolist(), a.events.tolist(),
                                             a.cell_at.tolist(), a.cell.tolist())])
        # the stored cell is that of the newest located record seen so far
        await conn.execute(
            "INSERT INTO sim_activity (month, imsi, first_at, last_at, events, last_cell, cell_at) "
            "SELECT month, imsi, first_at, last_at, events, last_cell, cell_at FROM _cp_activity "
            "ON CONFLICT (month, imsi) DO UPDATE SET "
            "first_at = LEAST(sim_activity.first_at, EXCLUDED.first_at), "
            "last_at = GREATEST(sim_activity.last_at, EXCLUDED.last_at), "
            "events = sim_activity.events + EXCLUDED.events, "
            "last_cell = CASE WHEN EXCLUDED.last_cell <> '' AND (sim_activity.cell_at IS NULL "
            "OR EXCLUDED.cell_at >= sim_activity.cell_at) THEN EXCLUDED.last_cell "
            "ELSE sim_activity.last_cell END, "
            "cell_at = CASE WHEN EXCLUDED.last_cell <> '' AND (sim_activity.cell_at IS NULL "
            "OR EXCLUDED.cell_at >= sim_activity.cell_at) THEN EXCLUDED.cell_at "
            "ELSE sim_activity.cell_at END")
    if facts.days:
        await conn.executemany(
            "INSERT INTO feed_days (probe, source, day, records) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (probe, source, day) DO UPDATE SET records = feed_days.records + EXCLUDED.records",
            [(p, s, date.fromordinal(date(1970, 1, 1).toordinal() + d), n)
             for (p, s, d), n in sorted(facts.days.items())])
    return months


async def new_versions(conn: asyncpg.Connection, months: list[date]) -> None:
    """Give each of ``months`` a new activity version (migration 025): the report's kept
    active counts of those months are stale from this transaction's commit on. Called last
    in a checkpoint's transaction: scale-out workers that wrote the same month queue on its
    version row from this statement to their commit, not from their activity write."""
    if months:
        await conn.execute(
            "INSERT INTO activity_versions (month, version) "
            "SELECT m, nextval('report_versions') FROM unnest($1::date[]) AS m ORDER BY m "
            "ON CONFLICT (month) DO UPDATE SET version = EXCLUDED.version", sorted(months))
