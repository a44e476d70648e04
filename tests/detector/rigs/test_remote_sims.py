"""Remote SIMs: slow answers to authentication and one more kind of evidence."""

import numpy as np

from detector.testing import START, cdr_batch as calls, imei, imsi
from tests.detector.rigs.cases import HOUR, run


def test_a_sim_answering_authentication_slowly_with_one_more_kind_of_evidence_is_flagged(pipe):
    """A modem receiving verification codes (SMS in: one family) whose SIM sits in a remote
    bank (authentication answered in 2-3 s) against the same modem with its SIM inside."""
    from detector.records import RecordType
    rng = np.random.default_rng(5)
    banked, local = int(imsi(900)), int(imsi(901))
    rows = []
    for sim, ms in ((banked, 2500), (local, 150)):
        dev = int(imei(900 + sim % 10, tac="86104540"))
        for k in range(60):                  # verification codes through the day
            t = START - 8 * HOUR + int(rng.integers(0, 16 * HOUR))
            rows.append((t, sim, dev, "460-00-600-1", 1069000000 + k, 1, 1, 4, 0))
        for k in range(4):                   # authentications, answered in `ms`
            rows.append((START - 8 * HOUR + k * 3 * HOUR, sim, dev, "460-00-600-1", 0, 0,
                         RecordType.AUTH, 6, ms + k))
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(banked)}
    assert flags[str(banked)].kind == "rig"
    assert "answers authentication in 2.5 s" in flags[str(banked)].reasons[0]
