"""The daemon takes the probes' offers in event-time order, once every probe has said what
it has (detector/offers.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from detector.offers import Offers


@dataclass(frozen=True)
class Work:
    name: str
    first_ts: int | None
    kind: str = "cdr"


async def feed(offers: Offers, probe: str, works: list[Work | None]) -> None:
    """A probe: each work offered once the previous one was committed, then it ends."""
    for w in works:
        await offers.offer(probe, w)
    offers.ended(probe)


async def taken(offers: Offers, n: int) -> list[str]:
    names = []
    for _ in range(n):
        work, done = await asyncio.wait_for(offers.take(), 5)
        names.append(work.name)
        done.set_result(None)
    return names


async def test_feeds_are_merged_by_event_time_whatever_their_file_lengths():
    offers = Offers(["regs", "cdr", "capture"])
    cdr = [Work(f"cdr{h}", h * 3600) for h in range(6)]                          # hour files
    capture = [Work(f"cap{h}", h * 3600 + 60) for h in (0, 2, 4)]                 # two-hour files, a minute in
    probes = [asyncio.create_task(feed(offers, "cdr", cdr)),
              asyncio.create_task(feed(offers, "capture", capture)),
              asyncio.create_task(feed(offers, "regs", [Work("subscribers", None, "registrations")]))]
    assert await taken(offers, 10) == ["subscribers", "cdr0", "cap0", "cdr1", "cdr2", "cap2",
                                       "cdr3", "cdr4", "cap4", "cdr5"]
    await asyncio.gather(*probes)
    assert offers.empty()


async def test_a_probe_that_owes_its_next_offer_is_waited_for():
    offers = Offers(["a", "b"], owed_wait_s=30)
    a = asyncio.create_task(offers.offer("a", Work("a0", 0)))
    b = asyncio.create_task(offers.offer("b", Work("b1", 3600)))
    work, done = await offers.take()
    assert work.name == "a0"
    done.set_result(None)
    await a                                     # "a" reads its next file meanwhile
    later = asyncio.create_task(offers.take())
    await asyncio.sleep(0.1)
    assert not later.done()                     # b1 waits: a's next file may begin earlier
    a = asyncio.create_task(offers.offer("a", Work("a0b", 1800)))
    work, done = await asyncio.wait_for(later, 5)
    assert work.name == "a0b"
    done.set_result(None)
    await offers.offer("a", None)               # then "a" has nothing ready: b1 goes
    work, done = await asyncio.wait_for(offers.take(), 5)
    assert work.name == "b1"
    done.set_result(None)
    await asyncio.gather(a, b)


async def test_an_ended_probe_holds_nothing_up_and_a_silent_one_only_for_a_while(caplog):
    offers = Offers(["a", "b", "c"], owed_wait_s=0.3)
    b = asyncio.create_task(offers.offer("b", Work("b0", 100)))
    offers.ended("a")
    loop = asyncio.get_running_loop()
    began = loop.time()
    work, done = await asyncio.wait_for(offers.take(), 5)    # "c" never speaks
    assert work.name == "b0" and loop.time() - began >= 0.25
    assert "took an offer without waiting longer" in caplog.text
    done.set_result(None)
    await b
    b = asyncio.create_task(offers.offer("b", Work("b1", 200)))
    began = loop.time()
    work, done = await asyncio.wait_for(offers.take(), 5)    # "c" is not waited for again
    assert work.name == "b1" and loop.time() - began < 0.25
    done.set_result(None)
    await b


async def test_pending_offers_are_cancelled_at_shutdown():
    offers = Offers(["a"])
    a = asyncio.create_task(offers.offer("a", Work("a0", 0)))
    await asyncio.sleep(0)
    offers.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        await a
    assert offers.empty()
