"""Reports made in a worker process, so that a report never holds the API's event loop (and
with it every lookup) for the time its assembly takes or the seconds matplotlib or openpyxl
take to render it.

The worker does the whole job for the API (:meth:`RenderPool.make`): it opens a connection of
its own to the store, reads the month in one read-only snapshot (:func:`gather`), and returns
the document in the asked format with the field paths the audit records. The API process
only checks the request and sends the bytes.

A thread would not do: assembly and rendering are Python code that holds the GIL the event
loop needs. The
worker is a separate process (spawned, not forked from a process with a running loop and a
connection pool), started with the API (:meth:`RenderPool.start`) or at the first rendering, one at a time (matplotlib's pyplot state is
per process and a 2-core machine has no core to spare for a second), under the ``SCHED_IDLE``
policy where the process may change it (:func:`lower_priority`; not under the systemd unit's
system call filter), so that it runs only on a core the lookups leave idle. At most ``queue``
renderings wait or run; one more is refused (:class:`RenderBusy`) rather than queued without
bound behind the others.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from detector.report.config import ReportConfig
from detector.report.tables import Report

if TYPE_CHECKING:
    import asyncpg

FORMATS = ("pdf", "xlsx")                    # rendered documents
DOCUMENTS = ("json", "csv") + FORMATS        # what :func:`document` makes
WORKER_NICE = 10       # added to the worker's niceness where SCHED_IDLE is refused (0: neither)


class RenderBusy(Exception):
    """Too many renderings are waiting already."""


class NoTable(LookupError):
    """A CSV of a table the report does not have."""

    def __init__(self, table: str, tables: list[str]) -> None:
        super().__init__(table, tables)
        self.table, self.tables = table, tables

    def __str__(self) -> str:
        return f"no table {self.table!r} (tables: {', '.join(self.tables)})"


class ReportFailed(RuntimeError):
    """The worker could not make the report (the store's error, as text: a database
    driver's exception need not survive the trip between processes)."""


def render(fmt: str, report: Report, top_channels: int = 20) -> bytes:
    """The ``fmt`` document of ``report`` (what the worker runs; also callable in-process)."""
    if fmt == "pdf":
        from detector.report.pdf import pdf_bytes
        return pdf_bytes(report, top_channels)
    if fmt == "xlsx":
        from detector.report.xlsx import xlsx_bytes
        return xlsx_bytes(report)
    raise ValueError(f"render: format must be one of {', '.join(FORMATS)} (got {fmt!r})")


def document(report: Report, fmt: str, table: str = "",
             top_channels: int = 20) -> tuple[bytes, list[str]]:
    """(body, field paths for the audit) of ``report`` as ``fmt``: the whole report as JSON,
    one ``table`` as CSV, or a rendered document."""
    if fmt == "json":
        doc = report.to_json()
        return json.dumps(doc, ensure_ascii=False).encode(), sorted(doc)
    if fmt == "csv":
        from detector.report.csvout import table_csv
        try:
            t = report.table(table)
        except KeyError:
            raise NoTable(table, [t.name for t in report.tables]) from None
        return table_csv(t).encode(), [f"{table}.csv"]
    if fmt in FORMATS:
        return render(fmt, report, top_channels), [f"report-{report.month}.{fmt}"]
    raise ValueError(f"document: format must be one of {', '.join(DOCUMENTS)} (got {fmt!r})")


# The report's reads on one backend: over a month of a million active subscribers the store
# plans them with parallel workers (two, by default), which on a host shared with the lookups
# takes every core for the best part of a second. Serial, they take longer and one core.
REPORT_SESSION = {"max_parallel_workers_per_gather": "0"}


async def report_pool(dsn: str) -> asyncpg.Pool:
    """The worker's connection to the store, with the report's session settings."""
    import asyncpg

    return await asyncpg.create_pool(dsn, min_size=1, max_size=1, command_timeout=600,
                                     server_settings=REPORT_SESSION)


async def _gathered(dsn: str, month: str, config: ReportConfig) -> Report:
    from detector.report.gather import gather

    pool = await report_pool(dsn)
    try:
        return await gather(pool, month, config)
    finally:
        await pool.close()


@dataclass(frozen=True, slots=True)
class _Gathered:
    dsn: str
    month: str
    config: ReportConfig
    at: float           # time.monotonic() when gathered
    report: Report


_recent: list[_Gathered] = []     # in the worker: the reports gathered last, newest first
_RECENT_MAX = 8


def _gathered_lately(dsn: str, month: str, config: ReportConfig,
                     clock: Callable[[], float] = time.monotonic) -> _Gathered:
    """The report of ``month``: one gathered less than ``config.reuse_s`` ago with the same
    store and settings (its ``generated`` time says when), or a new one."""
    now = clock()
    for g in _recent:
        if (g.dsn, g.month, g.config) == (dsn, month, config) and now - g.at < config.reuse_s:
            return g
    fresh = _Gathered(dsn, month, config, now, asyncio.run(_gathered(dsn, month, config)))
    _recent[:] = [fresh] + [
        g for g in _recent if (g.dsn, g.month, g.config) != (dsn, month, config)
        and now - g.at < g.config.reuse_s][:_RECENT_MAX - 1]
    return fresh


def make(dsn: str, month: str, config: ReportConfig, fmt: str,
         table: str = "") -> tuple[bytes, list[str]]:
    """What the worker runs for :meth:`RenderPool.make` (also callable in-process): the
    report of ``month`` read from the store at ``dsn`` (or gathered there less than
    ``config.reuse_s`` ago), as :func:`document`."""
    try:
        report = _gathered_lately(dsn, month, config).report
    except Exception as e:   # noqa: BLE001  (any driver error, as picklable text)
        raise ReportFailed(f"{type(e).__name__}: {e}") from None
    return document(report, fmt, table, config.top_channels)


def seccomp_filtered(proc_status: str) -> bool:
    """Whether ``/proc/self/status`` text says the process runs under a seccomp filter."""
    for line in proc_status.splitlines():
        if line.startswith("Seccomp:"):
            return line.split(":", 1)[1].strip() == "2"
    return False


def lower_priority(nice: int, proc_status: str | None = None) -> str:
    """Put the calling process below the API: the ``SCHED_IDLE`` policy (it runs only on a
    core nothing else wants), else ``nice`` added to its niceness; returns which it got
    ("idle", "nice" or "none").

    Under ``nice`` alone the kernel still shares a busy core with the worker (about a tenth at
    +10) and lets it finish its slice when a lookup wakes: measured at 1,000 lookups/s with
    PDFs drawn back to back, the lookups' median went from 5 to 48 ms at +10 and to 11 ms
    under ``SCHED_IDLE``. Not tried under a seccomp filter: the daemon's systemd unit forbids
    ``@resources``, where both calls are, and a forbidden call kills the process rather than
    failing; there the worker keeps the API's priority."""
    if proc_status is None:
        try:
            proc_status = Path("/proc/self/status").read_text()
        except OSError:
            return "none"
    if not nice or seccomp_filtered(proc_status):
        return "none"
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (OSError, AttributeError):       # not permitted, or not Linux
        pass
    try:
        os.nice(nice)
        return "nice"
    except OSError:
        return "none"


def _start_worker(nice: int) -> None:
    """In the worker: lower its priority, and load matplotlib before the first request needs it."""
    lower_priority(nice)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


class RenderPool:
    """Renders reports in one worker process, with at most ``queue`` renderings in flight."""

    def __init__(self, queue: int = 4, nice: int = WORKER_NICE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if queue < 1:
            raise ValueError(f"RenderPool: queue must be at least 1 (got {queue})")
        self.queue, self.nice, self.clock = queue, nice, clock
        self._executor: ProcessPoolExecutor | None = None
        self._in_flight = 0
        # documents made lately, by (store, month, format, table): (settings, when, document)
        self._made: dict[tuple[str, str, str, str],
                         tuple[ReportConfig, float, tuple[bytes, list[str]]]] = {}

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(self.nice,))
        return self._executor

    def start(self) -> None:
        """Start the worker now (it loads matplotlib), so that the first request does not
        wait for it; called when the routes are made, before the API serves."""
        self._pool().submit(os.getpid)

    async def make(self, dsn: str, month: str, config: ReportConfig, fmt: str,
                   table: str = "") -> tuple[bytes, list[str]]:
        """(body, field paths for the audit) of the report of ``month``, gathered and made by
        the worker (:func:`make`); :class:`RenderBusy` when ``queue`` reports are in flight
        already. A document made less than ``config.reuse_s`` ago (same store, month, format,
        table and settings) is answered again from here, without a trip to the worker and
        back (at most ``_RECENT_MAX`` of them kept)."""
        if fmt not in DOCUMENTS:
            raise ValueError(f"make: format must be one of {', '.join(DOCUMENTS)} (got {fmt!r})")
        key, now = (dsn, month, fmt, table), self.clock()
        kept = self._made.get(key)
        if kept is not None and kept[0] == config and now - kept[1] < config.reuse_s:
            body, fields = kept[2]
            return body, list(fields)
        made = await self._run(make, dsn, month, config, fmt, table)
        kept_now = [(k, v) for k, v in self._made.items()
                    if k != key and now - v[1] < v[0].reuse_s]
        self._made = dict(kept_now[-(_RECENT_MAX - 1):])      # the newest, in insertion order
        if config.reuse_s > 0:
            self._made[key] = (config, now, made)
        return made

    async def render(self, fmt: str, report: Report, top_channels: int = 20) -> bytes:
        """The document of a report gathered already, rendered by the worker; as
        :meth:`make` for the bound."""
        if fmt not in FORMATS:
            raise ValueError(f"render: format must be one of {', '.join(FORMATS)} (got {fmt!r})")
        return await self._run(render, fmt, report, top_channels)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the worker, within the bound. A worker that died is replaced at
        the next call."""
        if self._in_flight >= self.queue:
            raise RenderBusy(f"{self._in_flight} reports in flight")
        self._in_flight += 1
        try:
            pool = self._pool()
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                if self._executor is pool:
                    self._executor = None
                    pool.shutdown(wait=False, cancel_futures=True)
                raise
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        """Stop the worker (renderings in flight are cancelled)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
