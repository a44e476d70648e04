"""Code pools: modems of one model in one cell that take verification codes and nothing else."""

import pytest

from detector.testing import START, cdr_batch as calls, imei, imsi
from tests.detector.rigs.cases import HOUR, run


@pytest.mark.parametrize("tac, plmn", [("86104542", "46000"), ("01104542", "00101")])
def test_a_modem_pool_at_work_before_the_capture_is_found_by_its_modems_and_codes(pipe, tac, plmn):
    """No power-on is seen: four modems of one model in one cell take verification codes and
    nothing else. Three people in that cell who keep a second SIM for codes, each in a phone
    of another model, are not flagged. (A TAC beginning with 0 and SIMs of the test PLMN
    001-01 are named by all their digits.)"""
    texts = [imsi(700 + i, plmn=plmn) for i in range(4)]
    pool = [int(x) for x in texts]
    pool_devs = [int(imei(700 + i, tac=tac)) for i in range(4)]
    people = [int(imsi(720 + i)) for i in range(3)]
    people_devs = [int(imei(720 + i, tac=f"3533{i:04d}")) for i in range(3)]

    def codes(t0):
        rows = []
        for i, (s, d) in enumerate(zip(pool + people, pool_devs + people_devs)):
            rows += [(t0 + 600 * k + 60 * i, s, d, "460-00-530-1", 10690000 + k, 1, 1, 4, 0) for k in range(3)]
        return rows

    # the daemon has just started: "no calls, no data" of four SIMs covers half an hour each,
    # no evidence yet; four silent together for a quarter of absence_after_s are
    assert run(pipe, calls(codes(START - 6 * HOUR))) == {}
    flags = run(pipe, calls(codes(START - 6 * HOUR + pipe.rigs.policy.absence_after_s // len(pool))))
    assert set(flags) == set(texts)
    assert all(f"devices of one model (TAC {tac})" in f.reasons[0] for f in flags.values())
    [rig] = pipe.rigs.rigs()
    assert rig.sims == set(texts)
    assert "code-taking modems of one model" in rig.summary()


def test_a_modem_pool_holding_cards_of_three_networks_is_one_pool(pipe):
    """A pool at work before the capture holds two China Mobile, one Unicom and one Telecom
    card: each network's cards are in the shared cell under their own network's id, fewer
    than ``hot_cell_min_sims`` per id. One radio cell, one pool of four."""
    pool = [int(s) for s in ("460001000000730", "460021000000731", "460011000000732", "460111000000733")]
    cells = ["460-00-540-1", "460-00-540-1", "460-01-540-1", "460-11-540-1"]
    devs = [int(imei(730 + i, tac="86104543")) for i in range(4)]
    t0 = START - 6 * HOUR + pipe.rigs.policy.absence_after_s // len(pool)
    rows = [(t0 + 600 * k + 60 * i, s, d, c, 10690000 + k, 1, 1, 4, 0)
            for i, (s, d, c) in enumerate(zip(pool, devs, cells)) for k in range(3)]
    # the daemon starts watching here: the pool's silence counts from this first record
    run(pipe, calls([(START - 6 * HOUR, pool[0], devs[0], cells[0], 10690009, 1, 1, 4, 0)]))
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in pool}
    assert all("one of 4 SIMs in cell 460-00-540-1 in devices of one model" in f.reasons[0]
               for f in flags.values())
