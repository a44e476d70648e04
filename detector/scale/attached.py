"""What a scale-out process that owns partitions holds while it runs: the store, with one
connection keeping the partitions' locks, and JetStream with the stream made and recorded."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterable

from detector.config import Config
from detector.scale import bus
from detector.scale.checkpoint import claim
from detector.scale.publisher import record_stream
from detector.store.db import connect, resolve_dsn


def stop_on_signals(stop: Callable[[], None], enabled: bool = True) -> None:
    """Call ``stop`` on SIGTERM/SIGINT (where the event loop can handle signals)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT) if enabled else ():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)


@contextlib.asynccontextmanager
async def attached(config: Config, partitions: Iterable[int]) -> AsyncIterator[tuple]:
    """(pool, js) for the process owning ``partitions``; everything released on exit."""
    scale, store = config.scale, config.store
    dsn, embedded = resolve_dsn(store.dsn, store.dsn_file, config.daemon.state_dir)
    pool = await connect(dsn, store.pool_size)
    nc, js = await bus.connect(scale)
    owner = await pool.acquire()   # holds the partitions' locks while the process runs
    try:
        await claim(owner, scale.stream, tuple(partitions))
        await bus.ensure_stream(js, scale)
        await record_stream(pool, scale)
        yield pool, js
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
        await pool.release(owner)
        await pool.close()
        if embedded is not None:
            embedded.stop()
