"""File probes: CSV feeds and signalling captures, given as files or dropped into a directory.

A probe finds files and offers each to the daemon as a :class:`FileWork` (a
:class:`probes.interface.FileInput`); the daemon reads its blocks (parsed in a worker
thread), applies them and commits the file as done. A dropped file is offered only once it
is *settled*: its name matches no ``ignore`` pattern (mediation's ``*.tmp``/``*.part`` while
writing) and its size and mtime have not changed for ``settle_s`` seconds, so a file still
being written is not read early (a file last written longer ago than that, as in an archive,
is settled at the first look). A probe with nothing ready says so (``offer(None)``), so that
the daemon, which takes offers in event-time order (:mod:`detector.offers`), does not wait
for it.

A file counts as taken once the daemon has committed it (the offer returns): a probe started
again after a failure offers the others again and none of those. In a finite run
(``goipwatch run --until-done``) a watch directory is done when it has been idle for
``idle_exit_s`` (default: the probe's ``settle_s``): nothing offered and no file waiting to
settle in that time, so every file that was there is processed.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from detector.records import Rejected
from probes.cdrfile import first_event_time, read_cdr_file
from probes.config import ProbeConfig
from probes.csvparse import Parsed, read_feed_file, source_name
from probes.health import InputHealth
from probes.interface import IdleExitProbe, Intake, Offer, ReportsHealth
from probes.signalling.pcapfile import first_packet_time

log = logging.getLogger(__name__)

# A CSV's first block of this size (whole lines) tells when its records begin.
PEEK_BYTES = 64 << 10
KIND_BY_TYPE = {"cdr_csv": "cdr", "registrations_csv": "registrations", "pcap": "signalling"}


@dataclass(frozen=True, slots=True)
class FileWork:
    probe: str
    kind: str                 # cdr | registrations
    path: Path
    size: int
    sha256: str
    blocks: Callable[[], AsyncIterator[Parsed]]
    first_ts: int | None = None   # event time of its first records (None: unknown), for order

    @property
    def name(self) -> str:
        """The input's name in reports and coverage: the file's (as text)."""
        return source_name(self.path)

    def locate(self, source: str, line: int) -> tuple[str, int]:
        """Where a record of a block came from (for quarantine): its file and line."""
        return source, line

    def hand_to(self, intake: Intake) -> Awaitable[None]:
        return intake.take_file(self)


def sha256_of(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


async def _thread_iter(make) -> AsyncIterator:
    """Iterate a blocking iterator in a worker thread, one item at a time."""
    it = await asyncio.to_thread(make)
    sentinel = object()
    while (item := await asyncio.to_thread(next, it, sentinel)) is not sentinel:
        yield item


def read_capture_file(path: Path) -> Iterator[Parsed]:
    """A capture as one block of signalling observations; a damaged capture keeps the
    events before the damage and records why."""
    from probes.signalling import read_capture
    from probes.signalling.observations import observations

    capture = read_capture(path)
    name = source_name(path)
    obs = observations(capture.events, name)
    rejected = (Rejected(name, 0, f"capture damaged: {capture.error}"),) if capture.error else ()
    yield Parsed(obs.batch, rejected)


class FileProbe(IdleExitProbe, ReportsHealth):
    """Offers the files of one feed: ``cdr_csv`` (CSV, BER or GTP′ captures),
    ``registrations_csv`` or ``pcap`` (signalling)."""

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config
        self.name = config.name
        self.kind = KIND_BY_TYPE[config.type]
        self._seen: dict[Path, tuple[int, int]] = {}     # path -> (size, mtime_ns) at last look
        self._offered: set[tuple[Path, int, int]] = set()   # committed by the daemon
        self._waiting = 0          # files at the last look not yet settled
        self.health = InputHealth(self.name, log)
        self.finite = False        # --until-done: end once the files are taken, the directory idle
        self.idle_exit_s: float | None = None   # idle time that ends a finite run (None: settle_s)

    def _ignored(self, path: Path) -> bool:
        return any(fnmatch.fnmatch(path.name, pat) for pat in self.config.ignore)

    def settled(self) -> list[Path]:
        """Files in the watch directory whose size and mtime held since the last look, or
        were last written more than ``settle_s`` ago."""
        ready: list[Path] = []
        watch = self.config.watch
        if watch is None:
            return ready
        try:
            entries = sorted(p for p in watch.iterdir() if p.is_file() and not self._ignored(p))
        except OSError as e:
            self.health.failing(f"watch directory unreadable: {e}")
            return ready
        self.health.ok()
        old = time.time_ns() - int(self.config.settle_s * 1e9)
        self._waiting = 0
        for p in entries:
            try:
                stat = p.stat()
            except FileNotFoundError:
                continue
            sig = (stat.st_size, stat.st_mtime_ns)
            if (p, *sig) not in self._offered:
                if self._seen.get(p) == sig or stat.st_mtime_ns < old:
                    ready.append(p)
                else:
                    self._waiting += 1
            self._seen[p] = sig
        return ready

    def work(self, path: Path, size: int, sha256: str, first_ts: int | None = None) -> FileWork:
        layout, block = self.config.layout, self.config.block_bytes
        if self.kind == "signalling":
            read = functools.partial(read_capture_file, path)
        elif self.kind == "cdr":    # CSV, BER or a GTP' capture, plain or compressed
            read = functools.partial(read_cdr_file, path, layout, block)
        else:
            read = functools.partial(read_feed_file, path, self.kind, layout, block)
        return FileWork(probe=self.name, kind=self.kind, path=path, size=size, sha256=sha256,
                        blocks=lambda: _thread_iter(read), first_ts=first_ts)

    def first_event_time(self, path: Path) -> int | None:
        """When the file's records begin, to take it in event order beside other feeds: the
        first packet of a capture, the earliest time of a CDR file's first records
        (:func:`probes.cdrfile.first_event_time`; a registration file's order does not
        matter); None when unknown (the file is then read, and refused if it must be, first)."""
        if self.kind == "registrations":
            return None
        if self.kind == "signalling":
            return first_packet_time(path)
        return first_event_time(path, self.config.layout, PEEK_BYTES)

    async def run(self, offer: Offer, stopping: asyncio.Event) -> None:
        """Offer the configured files, then keep watching the drop directory (if any): each
        look offers what has settled, and a look that offers nothing says so. Finite, end
        when the directory has been idle for ``idle_exit_s``."""
        for path in self.config.files:
            if stopping.is_set():
                return
            await self._offer(path, offer)
        if self.config.watch is None:
            return
        loop = asyncio.get_running_loop()
        idle_exit_s = self.config.settle_s if self.idle_exit_s is None else self.idle_exit_s
        active = loop.time()   # when a file was last offered or seen still being written
        while not stopping.is_set():
            offered = False
            for path in self.settled():
                if stopping.is_set():
                    return
                offered |= await self._offer(path, offer)
            if offered:
                active = loop.time()
                continue   # look again at once: more may have settled meanwhile
            if self._waiting:
                active = loop.time()
            elif self.finite and loop.time() - active >= idle_exit_s:
                log.info("watch directory idle: done", extra={"probe": self.name,
                                                              "idle_s": idle_exit_s})
                return
            await offer(None)
            wait = self.config.settle_s
            if self.finite and not self._waiting:
                wait = min(wait, max(active + idle_exit_s - loop.time(), 0.0))
            try:
                await asyncio.wait_for(stopping.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def _offer(self, path: Path, offer: Offer) -> bool:
        """Offer one file; True once the daemon has committed it. A file committed before (by
        this probe, before it was started again) is not offered again."""
        try:
            stat = path.stat()
            taken = (path, stat.st_size, stat.st_mtime_ns)
            if taken in self._offered:
                return False
            size, digest = await asyncio.to_thread(sha256_of, path)
        except OSError as e:
            log.error("input file unreadable", extra={"probe": self.name, "file": source_name(path),
                                                      "error": str(e)})
            return False
        first = await asyncio.to_thread(self.first_event_time, path)
        await offer(self.work(path, size, digest, first))
        self._offered.add(taken)   # only now: a file offered and not committed is offered again
        return True
