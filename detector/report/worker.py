"""Reports rendered in a worker process, so that a PDF or a workbook never holds the API's
event loop (and with it every lookup) for the seconds matplotlib or openpyxl take.

A thread would not do: rendering is Python code that holds the GIL the event loop needs. The
worker is a separate process (spawned, not forked from a process with a running loop and a
connection pool), started with the API (:meth:`RenderPool.start`) or at the first rendering, one at a time (matplotlib's pyplot state is
per process and a 2-core machine has no core to spare for a second), at a lower scheduling
priority than the API where the process may change it (not under the systemd unit's system
call filter), so that the kernel gives the lookups the CPU first. At most ``queue``
renderings wait or run; one more is refused (:class:`RenderBusy`) rather than queued without
bound behind the others.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from detector.report.tables import Report

FORMATS = ("pdf", "xlsx")
WORKER_NICE = 10       # added to the worker's niceness: the API (and its lookups) go first


class RenderBusy(Exception):
    """Too many renderings are waiting already."""


def render(fmt: str, report: Report, top_channels: int = 20) -> bytes:
    """The ``fmt`` document of ``report`` (what the worker runs; also callable in-process)."""
    if fmt == "pdf":
        from detector.report.pdf import pdf_bytes
        return pdf_bytes(report, top_channels)
    if fmt == "xlsx":
        from detector.report.xlsx import xlsx_bytes
        return xlsx_bytes(report)
    raise ValueError(f"render: format must be one of {', '.join(FORMATS)} (got {fmt!r})")


def seccomp_filtered(proc_status: str) -> bool:
    """Whether ``/proc/self/status`` text says the process runs under a seccomp filter."""
    for line in proc_status.splitlines():
        if line.startswith("Seccomp:"):
            return line.split(":", 1)[1].strip() == "2"
    return False


def _start_worker(nice: int) -> None:
    """In the worker: lower its priority, and load matplotlib before the first request needs it.

    Not under a seccomp filter: the daemon's systemd unit forbids ``@resources``, where
    ``setpriority`` is, and a forbidden call kills the process rather than failing; there the
    worker keeps the API's priority."""
    try:
        filtered = seccomp_filtered(Path("/proc/self/status").read_text())
    except OSError:
        filtered = True
    if nice and not filtered:
        try:
            os.nice(nice)
        except OSError:
            pass
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


class RenderPool:
    """Renders reports in one worker process, with at most ``queue`` renderings in flight."""

    def __init__(self, queue: int = 4, nice: int = WORKER_NICE) -> None:
        if queue < 1:
            raise ValueError(f"RenderPool: queue must be at least 1 (got {queue})")
        self.queue, self.nice = queue, nice
        self._executor: ProcessPoolExecutor | None = None
        self._in_flight = 0

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

    async def render(self, fmt: str, report: Report, top_channels: int = 20) -> bytes:
        """The document, rendered by the worker; :class:`RenderBusy` when ``queue`` renderings
        are in flight already. A worker that died is replaced at the next rendering."""
        if fmt not in FORMATS:
            raise ValueError(f"render: format must be one of {', '.join(FORMATS)} (got {fmt!r})")
        if self._in_flight >= self.queue:
            raise RenderBusy(f"{self._in_flight} renderings in flight")
        self._in_flight += 1
        try:
            pool = self._pool()
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    pool, render, fmt, report, top_channels)
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
