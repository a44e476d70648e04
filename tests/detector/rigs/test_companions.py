"""Companions: a flagged SIM's companions that the supervised layer held back."""

import numpy as np

from detector.testing import START, cdr_batch as calls, gateway_rows, imei, imsi
from tests.detector.rigs.cases import HOUR, power_on, run


def test_a_card_powered_on_with_a_flagged_card_is_not_held_back_by_the_layer(pipe, monkeypatch):
    """A box of two cards, below every group rule: its first card is flagged; the layer holds
    the second back, yet it powered on with the first and is rig-like on its own. The same
    behaviour in a SIM that powered on alone, or with no flagged SIM, stays vetoed."""
    pair = [int(imsi(900 + i)) for i in range(2)]
    pair_devs = [int(imei(900 + i, tac="86000004")) for i in range(2)]
    loner, loner_dev = int(imsi(910)), int(imei(910, tac="86000004"))
    first = run(pipe, calls(power_on(pair, pair_devs, START - 60, "460-00-570-1") +
                            gateway_rows(pair[:1], pair_devs[:1], "460-00-570-1", hours=3, gap_s=40)))
    assert set(first) == {str(pair[0])}
    monkeypatch.setattr(pipe.scorer, "plausible", lambda values, scores: np.zeros(len(values), bool))
    later = 3 * HOUR
    work = gateway_rows(pair[1:], pair_devs[1:], "460-00-570-1", hours=3, gap_s=40) + \
        gateway_rows([loner], [loner_dev], "460-00-570-2", hours=3, gap_s=40,
                     victim0=8613600000000)
    rows = power_on([loner], [loner_dev], START + later - 60, "460-00-570-2") + \
        [(t + later, *rest) for t, *rest in work]
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(pair[1])}
    assert flags[str(pair[1])].kind == "rig_member"
    assert flags[str(pair[1])].reasons[0].startswith("powered on within 30 s of 1 flagged SIM in cell 460-00-570-1")
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in pair}


def test_a_gateways_card_working_beside_its_flagged_cards_is_not_held_back_by_the_layer(pipe, monkeypatch):
    """A fixed gateway's two cards, each in its own port, call from one cell with no data and
    no incoming calls; the first is flagged. The layer holds the second back, yet it is
    machine-like in their cell in the same hour and rig-like on its own (two SIMs: below the
    hot-cell rule, whose flags the layer does not judge). The same behaviour alone in another
    cell stays vetoed (9 h watched: too soon for one SIM's absence, machine_sims)."""
    cards = [int(imsi(930 + i)) for i in range(2)]
    ports = [int(imei(930 + i, tac="86000006")) for i in range(2)]
    loner, loner_dev = int(imsi(940)), int(imei(940, tac="86000006"))

    def work(sims, devs, cell, t0, hours, victim0):
        rows = []
        for k, (s, d) in enumerate(zip(sims, devs)):
            rows += [(t + t0, *rest) for t, *rest in
                     gateway_rows([s], [d], cell, hours=hours, gap_s=40, victim0=victim0 + k * 10**6)]
        return rows

    first = run(pipe, calls(work(cards[:1], ports[:1], "460-00-590-1", 0, 7, 8613400000000)))
    assert set(first) == {str(cards[0])}
    monkeypatch.setattr(pipe.scorer, "plausible", lambda values, scores: np.zeros(len(values), bool))
    later = 7 * HOUR
    rows = work(cards, ports, "460-00-590-1", later, 2, 8613500000000) + \
        work([loner], [loner_dev], "460-00-590-2", later, 2, 8613600000000)
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(cards[1])}
    assert flags[str(cards[1])].kind == "rig_member"
    assert flags[str(cards[1])].reasons[0] == ("machine-like (no data, almost no incoming calls) in cell "
                                               "460-00-590-1 within the hour of 1 flagged machine-like "
                                               "SIM, and rig-like on its own")
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in cards}
