"""``goipwatch publish`` and ``goipwatch worker``: the scale-out from the command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from detector.config import Config, ConfigError
from detector.records import Rejected
from detector.store.checkpoint import save_quarantine
from detector.wording import counted

log = logging.getLogger("goipwatch.scale")


def _scale(cfg: Config):
    if cfg.scale is None:
        raise ConfigError(f"{cfg.source}: no [scale] section (NATS URL, stream, partitions)")
    return cfg.scale


async def publish(cfg: Config, cdr: list[Path], subscribers: list[Path], flush: bool,
                  watch: bool = False) -> int:
    """Publish registration files first (CDRs then meet their SIM's registration), then CDR
    files; without files, the ``files`` of the configured probes. With ``watch``, run the
    configured probes as the daemon does (their files, then their drop directories) until
    SIGTERM/SIGINT."""
    from detector.scale import bus
    from detector.scale.publisher import Publisher
    from detector.store.db import session

    scale = _scale(cfg)
    layouts = {p.type: p.layout for p in cfg.probes}
    work: list[tuple[Path, str, str]] = [(p, "registrations", "registrations") for p in subscribers] + \
        [(p, "cdr", "cdr") for p in cdr]
    if not work:
        kinds = {"registrations_csv": "registrations", "cdr_csv": "cdr"}
        probes = sorted((p for p in cfg.probes if p.type in kinds), key=lambda p: p.type != "registrations_csv")
        work = [(f, kinds[p.type], p.name) for p in probes for f in p.files]
    blocks = {p.type: p.block_bytes for p in cfg.probes}
    nc, js = await bus.connect(scale)
    try:
        async with session(cfg.store, cfg.daemon.state_dir) as pool:
            pub = Publisher(js, pool, scale, cfg.detector.scoring_interval_s, cfg.features.lateness_s)
            await pub.open()
            if watch:
                return await _watch(cfg, pub)
            for path, kind, probe in work:
                t = "registrations_csv" if kind == "registrations" else "cdr_csv"
                done = await pub.publish_file(path, kind, probe, layouts.get(t, _canonical()),
                                              blocks.get(t, 32 << 20))
                print(f"{done.name}: {done.status}, {counted(done.records, 'record')}, "
                      f"{done.rejected} rejected, {counted(done.messages, 'message')}", file=sys.stderr)
            if flush:
                await pub.flush()
    finally:
        await nc.close()
    return 0


def _canonical():
    from probes.csvparse import CANONICAL
    return CANONICAL


async def worker(cfg: Config, partitions: tuple[int, ...], idle_exit_s: float | None) -> int:
    from detector.scale.worker import Worker

    _scale(cfg)
    await Worker(cfg, partitions).run(idle_exit_s)
    return 0


def worker_partitions(cfg: Config, index: int | None, of: int | None, partitions: str | None
                      ) -> tuple[int, ...]:
    from detector.scale.partition import owned
    from detector.scale.worker import partitions_arg

    scale = _scale(cfg)
    try:
        if partitions:
            return partitions_arg(partitions, scale.partitions)
        if index is None or of is None:
            raise ValueError("give --partitions, or --index and --of")
        return owned(index, of, scale.partitions)
    except ValueError as e:
        raise ConfigError(f"worker: {e}") from e


async def rigs(cfg: Config, idle_exit_s: float | None) -> int:
    from detector.scale.rigstage import RigStage

    _scale(cfg)
    await RigStage(cfg).run(idle_exit_s)
    return 0


async def _watch(cfg: Config, pub) -> int:
    """The configured CSV probes offer files; each is published whole, one at a time (the
    publisher's clock has one writer), in the order offered. A file that fails is logged,
    counted and quarantined and the probes go on; returns non-zero if a probe's task dies,
    so that systemd restarts the publisher."""
    import asyncio
    import contextlib
    import signal

    from probes.files import FileProbe

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
    one_at_a_time = asyncio.Lock()
    probes = {p.name: p for p in cfg.probes if p.type in ("cdr_csv", "registrations_csv")}
    failures = FileFailures(pub.pool)

    async def offer(work) -> None:
        if work is None:   # the probe has nothing ready
            return
        async with one_at_a_time:
            p = probes[work.probe]
            try:
                done = await pub.publish_file(work.path, work.kind, work.probe, p.layout, p.block_bytes,
                                              digest=(work.size, work.sha256))
            except Exception as e:   # this file failed, not the probe: the next one may go through
                await failures.failed(work.probe, work.path.name, work.sha256, e)
                return
            log.info("offered file handled", extra={"file": done.name, "status": done.status})

    tasks = [asyncio.create_task(FileProbe(p).run(offer, stopping), name=f"probe:{p.name}")
             for p in probes.values()]
    return await supervise(tasks, stopping)


class FileFailures:
    """Files whose publishing failed: each logged and quarantined once per process (the
    probe offers a file again only after a restart, which retries it), all counted."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.count = 0
        self._seen: set[tuple[str, str]] = set()

    async def failed(self, probe: str, name: str, sha256: str, error: Exception) -> None:
        self.count += 1
        reason = f"publish failed: {type(error).__name__}: {error}"
        if (probe, sha256) in self._seen:
            return
        self._seen.add((probe, sha256))
        log.error("file not published", extra={"probe": probe, "file": name, "reason": reason,
                                               "failures": self.count})
        try:
            async with self.pool.acquire() as conn:
                await save_quarantine(conn, [(probe, Rejected(name, 0, reason))])
        except Exception as e:   # the store away too: the log line above says it all
            log.error("quarantine not written", extra={"file": name, "error": str(e)})


async def supervise(tasks: list, stopping) -> int:
    """Wait until ``stopping`` is set (0) or a task ends by itself (1: logged; the others
    are cancelled)."""
    import asyncio

    stop = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
    died = [t for t in tasks if t in done and not stopping.is_set()]
    for t in died:
        error = t.exception() if not t.cancelled() else None
        log.error("probe task ended", extra={"task": t.get_name(), "error": repr(error)})
    stop.cancel()
    for t in tasks:
        t.cancel()
    await asyncio.gather(stop, *tasks, return_exceptions=True)
    return 1 if died else 0
