"""Each probe declares what it does beyond offering work, and each piece of work goes to the
daemon's method for its kind."""

import numpy as np
import pytest

from detector.records import CdrBatch
from probes.config import ProbeConfig
from probes.csvparse import Parsed
from probes.files import FileProbe, FileWork
from probes.interface import (FiniteProbe, IdleExitProbe, Probe, ReportsHealth, ReportsLag,
                              ResumableProbe)
from probes.kafka import KafkaProbe, KafkaWork, MessageLines
from probes.kafka_config import KafkaConfig

PROTOCOLS = (Probe, FiniteProbe, IdleExitProbe, ResumableProbe, ReportsHealth, ReportsLag)


def kafka_probe() -> KafkaProbe:
    return KafkaProbe(ProbeConfig(type="kafka", name="k", kafka=KafkaConfig(
        bootstrap_servers="127.0.0.1:1", topics=("cdr",))))


@pytest.mark.parametrize("make, declared", [
    (lambda: FileProbe(ProbeConfig(type="cdr_csv", name="f")),
     {Probe, FiniteProbe, IdleExitProbe, ReportsHealth}),
    (kafka_probe, {Probe, FiniteProbe, ResumableProbe, ReportsHealth, ReportsLag}),
])
def test_each_probe_is_what_it_declares_and_nothing_else(make, declared):
    probe = make()
    assert {p for p in PROTOCOLS if isinstance(probe, p)} == declared
    assert {p for p in PROTOCOLS if p in type(probe).__mro__} == declared   # named as bases
    if isinstance(probe, ResumableProbe):
        probe.discard()


class Intake:
    def __init__(self) -> None:
        self.taken: list[tuple[str, object]] = []

    async def take_file(self, work) -> None:
        self.taken.append(("file", work))

    async def take_messages(self, work) -> None:
        self.taken.append(("messages", work))


async def test_work_hands_itself_to_the_intake_method_of_its_kind(tmp_path):
    async def no_blocks():
        return
        yield

    file = FileWork(probe="f", kind="cdr", path=tmp_path / "a.csv", size=0, sha256="0" * 64,
                    blocks=no_blocks)
    stored = []
    messages = KafkaWork("k", Parsed(CdrBatch.empty(), ()),
                         MessageLines(np.zeros(0, np.int64), (), np.zeros(0, np.int64)),
                         {("cdr", 0): 5}, 0, lambda: stored.append(True))
    intake = Intake()
    await file.hand_to(intake)
    await messages.hand_to(intake)
    assert intake.taken == [("file", file), ("messages", messages)]
    assert stored == []        # stored only once the daemon has committed its offsets


def test_a_discarded_stream_probe_takes_no_more_work_on_its_client_thread():
    probe = kafka_probe()
    probe.discard()
    with pytest.raises(RuntimeError):
        probe._pool.submit(int)
