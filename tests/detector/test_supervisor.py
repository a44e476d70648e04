"""Probe supervision: a failing probe is reported, started again with doubling back-off,
well again after running a while; an ended probe is not started again; a finite run gives up."""

import asyncio

import pytest

from detector.offers import Offers
from detector.supervisor import ProbeHealth, Supervisor


class Scripted:
    """A probe whose runs follow a script: 'fail' raises at once, 'ok' ends normally,
    'hold' runs until stopped."""

    def __init__(self, name: str, script: list[str]) -> None:
        self.name = name
        self.script = list(script)
        self.starts: list[float] = []

    async def run(self, offer, stopping: asyncio.Event) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        step = self.script.pop(0)
        if step == "fail":
            raise RuntimeError(f"run {len(self.starts)} broke")
        if step == "hold":
            await stopping.wait()


def supervised(probes, **timing) -> tuple[Supervisor, list[ProbeHealth], asyncio.Event]:
    recorded: list[ProbeHealth] = []

    async def record(h: ProbeHealth) -> None:
        recorded.append(h)

    async def same(p):
        return p

    stopping = asyncio.Event()
    sup = Supervisor(probes, Offers(p.name for p in probes), stopping, same, record, **timing)
    return sup, recorded, stopping


async def test_a_failing_probe_restarts_with_doubling_back_off_and_is_reported():
    probe = Scripted("cdr", ["fail", "fail", "fail", "ok"])
    sup, recorded, _ = supervised([probe], backoff_s=0.05, backoff_cap_s=0.1, stable_s=10)
    task, = sup.start()
    await asyncio.sleep(0.02)
    assert [h.probe for h in sup.failing()] == ["cdr"]
    assert sup.failing()[0].error == "RuntimeError: run 1 broke"
    await asyncio.wait_for(task, 5)
    gaps = [b - a for a, b in zip(probe.starts, probe.starts[1:])]
    assert gaps[0] == pytest.approx(0.05, abs=0.04)
    assert gaps[1] == pytest.approx(0.1, abs=0.04) and gaps[2] == pytest.approx(0.1, abs=0.04)
    states = [(h.state, h.failing, h.failures) for h in recorded]
    assert states[0] == ("running", False, 0)
    assert ("failed", True, 3) in states
    assert states[-1] == ("ended", True, 3)      # ended before it ran long enough to be well


async def test_a_probe_that_runs_well_again_is_no_longer_failing_and_its_back_off_resets():
    probe = Scripted("cdr", ["fail", "hold"])
    sup, recorded, stopping = supervised([probe], backoff_s=0.05, stable_s=0.2)
    task, = sup.start()
    await asyncio.sleep(0.1)
    assert sup.failing()
    await asyncio.sleep(0.3)
    assert sup.failing() == [] and sup.health["cdr"].failures == 1
    assert recorded[-1].state == "running" and not recorded[-1].failing
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert sup.health["cdr"].state == "ended"


async def test_a_probe_that_ends_is_not_started_again():
    probe = Scripted("files", ["ok"])
    sup, recorded, _ = supervised([probe])
    await asyncio.wait_for(asyncio.gather(*sup.start()), 5)
    assert len(probe.starts) == 1 and recorded[-1].state == "ended" and not sup.failing()


async def test_a_finite_run_gives_up_after_failures_in_a_row_and_a_stop_ends_the_back_off():
    probe = Scripted("cdr", ["fail"] * 3)
    sup, _, _ = supervised([probe], backoff_s=0.01, max_failures=3)
    with pytest.raises(RuntimeError, match="run 3 broke"):
        await asyncio.wait_for(asyncio.gather(*sup.start()), 5)

    probe = Scripted("cdr", ["fail"])
    sup, _, stopping = supervised([probe], backoff_s=30)
    task, = sup.start()
    await asyncio.sleep(0.02)
    stopping.set()
    await asyncio.wait_for(task, 1)      # not the 30 s of back-off
    assert len(probe.starts) == 1
