"""Probe supervision: each probe runs as a task that is started again when it fails.

A probe whose task raises (a bug, an input it cannot handle, a client that will not start)
is logged with its error (``"msg": "probe failed"``), reported as failing (``/readyz``, and
``goipwatch status`` through the store's ``probe_health`` row, written at every change) and
started again after a back-off: ``backoff_s``, doubling up to ``backoff_cap_s``. A probe
that then runs ``stable_s`` without failing is reported well again (``"probe recovered"``)
and its back-off starts afresh. A probe that ends (its list of files offered, a finite
stream read to its end) is not started again.

What a started-again probe offers is the job of ``fresh`` (see
:meth:`detector.daemon.Daemon.fresh_probe`): a file probe goes on as it was, keeping the
files the daemon committed, so it offers none of those again and no file offered but not
committed is skipped; a stream probe is built anew at the offsets of the last checkpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from detector.offers import Offers
from probes.interface import Probe

log = logging.getLogger("goipwatch.probes")


@dataclass(frozen=True, slots=True)
class ProbeHealth:
    probe: str
    state: str = "running"   # running | failed (waiting to start again) | ended
    failing: bool = False    # failed, and not yet running well since
    error: str = ""          # the last failure
    failures: int = 0        # since the daemon started
    since: float = 0.0       # wall-clock time of the last change


class Supervisor:
    """Runs ``probes`` (a list shared with the daemon: a probe built anew replaces its
    predecessor in it) and keeps their :class:`ProbeHealth`."""

    def __init__(self, probes: list[Probe], offers: Offers, stopping: asyncio.Event,
                 fresh: Callable[[Probe], Awaitable[Probe]],
                 record: Callable[[ProbeHealth], Awaitable[None]],
                 backoff_s: float = 1.0, backoff_cap_s: float = 60.0, stable_s: float = 60.0,
                 max_failures: int | None = None) -> None:
        self.probes = probes
        self.offers = offers
        self.stopping = stopping
        self._fresh = fresh
        self._record = record
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.stable_s = stable_s
        # failures in a row after which the task fails for good (a finite run must end)
        self.max_failures = max_failures
        self.health = {p.name: ProbeHealth(p.name, since=time.time()) for p in probes}

    def start(self) -> list[asyncio.Task]:
        """One task per probe; a task ends when its probe ends, or raises once
        ``max_failures`` failures came in a row."""
        return [asyncio.create_task(self._supervise(i), name=f"probe:{p.name}")
                for i, p in enumerate(self.probes)]

    def failing(self) -> list[ProbeHealth]:
        return [h for h in self.health.values() if h.failing]

    async def _set(self, name: str, **changes) -> None:
        health = dataclasses.replace(self.health[name], since=time.time(), **changes)
        self.health[name] = health
        try:
            await self._record(health)
        except Exception as e:   # the store down: the state is still served at /readyz
            log.warning("probe health not stored", extra={"probe": name, "error": str(e)})

    async def _supervise(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        name = self.probes[i].name
        delay, in_a_row, restart = self.backoff_s, 0, False
        await self._set(name, state="running")
        while True:
            started = loop.time()
            steady = None
            try:
                if restart:
                    self.probes[i] = await self._fresh(self.probes[i])
                    log.info("probe restarting", extra={"probe": name,
                                                        "failures": self.health[name].failures})
                    await self._set(name, state="running")
                if self.health[name].failing:
                    steady = asyncio.create_task(self._steady(name), name=f"steady:{name}")
                await self.probes[i].run(functools.partial(self.offers.offer, name), self.stopping)
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
                if loop.time() - started >= self.stable_s:   # it ran well for a while
                    delay, in_a_row = self.backoff_s, 0
                in_a_row += 1
                failures = self.health[name].failures + 1
                self.offers.ended(name)   # it owes no offer while it is down
                log.error("probe failed", exc_info=True, extra={
                    "probe": name, "failures": failures, "restart_in_s": delay})
                await self._set(name, state="failed", failing=True, error=error, failures=failures)
                if self.max_failures is not None and in_a_row >= self.max_failures:
                    raise
                if await _stopped_within(self.stopping, delay):
                    return
                delay, restart = min(delay * 2, self.backoff_cap_s), True
                continue
            finally:
                if steady is not None:
                    steady.cancel()
            self.offers.ended(name)
            await self._set(name, state="ended")
            return

    async def _steady(self, name: str) -> None:
        """Running ``stable_s`` after a failure: well again."""
        await asyncio.sleep(self.stable_s)
        log.info("probe recovered", extra={"probe": name})
        await self._set(name, failing=False)


async def _stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False
