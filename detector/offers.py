"""The probes' offers, taken in event-time order.

Each probe offers one piece of work at a time (a file, a micro-batch) and waits until it is
committed before it offers the next, or says it has nothing ready (``offer(None)``). The
daemon takes registrations first, so that CDRs meet their SIM's activation and ID data, then
the offer whose records begin earliest, and only once every probe has either offered or
said it has nothing: a probe that has just had its work committed is given the time to
offer its next file. So feeds read from an archive (a first start, a catch-up) go in event
order whatever the length of their files and wherever they are cut, and no feed's records
fall behind another's watermark (the engine has one) unless a single file spans more than
``[features] lateness_s``. Live, a probe with nothing ready does not hold the others up.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Wall-clock seconds to wait for a probe that owes its next offer before taking the others'
# (a probe reads and hashes its next file meanwhile; one that hangs must not stop the rest).
OWED_WAIT_S = 30.0


@dataclass(order=True, slots=True)
class _Offer:
    key: tuple[int, int, int]         # (registrations first, first event time, arrival)
    probe: str = field(compare=False)
    work: Any = field(compare=False)
    done: asyncio.Future = field(compare=False)


def offer_key(work: Any, arrival: int) -> tuple[int, int, int]:
    """Registrations first, then by the work's first event time (``first_ts``; unknown
    sorts first, so a damaged file is refused at once), then in order of arrival."""
    first = getattr(work, "first_ts", None)
    return (0 if work.kind == "registrations" else 1, -1 if first is None else int(first), arrival)


class Offers:
    """The pending offers of the probes named at start, one at most per probe."""

    def __init__(self, probes: Iterable[str], owed_wait_s: float = OWED_WAIT_S) -> None:
        self._pending: dict[str, _Offer] = {}
        # probes yet to offer or to say they have nothing, and since when (None: since the
        # first take): each is waited for at most ``owed_wait_s`` from then
        self._owed: dict[str, float | None] = dict.fromkeys(probes)
        self._changed = asyncio.Event()
        self._arrival = itertools.count()
        self.owed_wait_s = owed_wait_s

    async def offer(self, probe: str, work: Any | None) -> None:
        """A probe's next work, returning once the daemon has committed it; ``None`` says the
        probe has nothing ready now (and returns at once)."""
        self._owed.pop(probe, None)
        self._changed.set()
        if work is None:
            return
        done = asyncio.get_running_loop().create_future()
        self._pending[probe] = _Offer(offer_key(work, next(self._arrival)), probe, work, done)
        await done

    def ended(self, probe: str) -> None:
        """The probe stopped: it owes nothing more."""
        self._owed.pop(probe, None)
        self._changed.set()

    def empty(self) -> bool:
        return not self._pending

    async def take(self) -> tuple[Any, asyncio.Future]:
        """The next work in event-time order and the future to resolve once it is committed;
        the probe that offered it then owes its next offer."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            for probe, since in self._owed.items():
                if since is None:
                    self._owed[probe] = now
            waiting = {p: t + self.owed_wait_s - now for p, t in self._owed.items()
                       if t + self.owed_wait_s > now}
            if self._pending and not waiting:
                if self._owed:   # given up on until their next offer is taken: warned once
                    log.warning("took an offer without waiting longer for probes",
                                extra={"probes": sorted(self._owed), "waited_s": self.owed_wait_s})
                    self._owed.clear()
                best = min(self._pending.values())
                del self._pending[best.probe]
                self._owed[best.probe] = now
                return best.work, best.done
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(waiting.values()) if self._pending else None)
            except TimeoutError:
                pass

    def cancel_all(self) -> None:
        """At shutdown: the pending offers are not taken (their probes see a cancel)."""
        for o in self._pending.values():
            o.done.cancel()
        self._pending.clear()
