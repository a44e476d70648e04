"""Co-location: machine-like SIMs together in one cell."""

from detector.testing import START, cdr_batch as calls, imei, imsi
from tests.detector.rigs.cases import HOUR, run


def test_co_moving_cohort_is_one_rig(pipe):
    pipe.engine.observed_from = START - 86400   # the daemon has watched the network for a day
    sims = [int(imsi(200 + i)) for i in range(6)]
    rows, victim = [], 8613600000000
    for i, sim in enumerate(sims):
        dev = int(imei(700 + i, tac="86000002"))
        for k in range(6 * HOUR // 80):
            t = START + k * 80 + i * 5
            cell = f"460-00-300-{1 + (t - START) // 1200}"   # the vehicle moves every 20 minutes
            rows.append((t, sim, dev, cell, victim, 0, 0, 1, 0))
            victim += 1
    flags = run(pipe, calls(rows))
    assert len(flags) >= 5
    rigs = pipe.rigs.rigs()
    assert len(rigs) == 1 and rigs[0].sims == set(flags)
    assert len(rigs[0].cells) > 3
    assert "machine-like SIMs active together" in rigs[0].summary()
