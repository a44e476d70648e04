"""Co-location: machine-like SIMs together in one cell."""

import numpy as np
import pytest

from detector.testing import START, cdr_batch as calls, imei, imsi
from tests.detector.rigs.cases import HOUR, run


@pytest.mark.parametrize("layer", ["none", "vetoes all"])
def test_co_moving_cohort_is_one_rig(pipe, monkeypatch, layer):
    """Found whatever the supervised layer says: co-location is structure it never sees.
    Watched 8 h at the start: absence counts for a hot cell, not yet for one SIM alone
    (:mod:`detector.rigs.machine_sims`), so the cell is what flags."""
    if layer == "vetoes all":
        monkeypatch.setattr(pipe.scorer, "plausible", lambda values, scores: np.zeros(len(values), bool))
    pipe.engine.observed_from = START - 8 * HOUR
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
