"""Machine-like SIMs: flagged whatever the supervised layer says, once absence counts."""

import numpy as np

from detector.rigs.machine_sims import REASON
from detector.testing import START, cdr_batch as calls, gateway_rows, imei, imsi
from tests.detector.rigs.cases import HOUR, new_pipe, run


def veto_all(pipe, monkeypatch):
    """A supervised layer that holds back every flag put to it."""
    monkeypatch.setattr(pipe.scorer, "plausible", lambda values, scores: np.zeros(len(values), bool))


def lone_gateway(n=950):
    """One gateway port calling fresh numbers every 30 s for three hours from one cell: no data, no
    incoming call, and no co-located mate for the hot-cell rule."""
    return gateway_rows([int(imsi(n))], [int(imei(n, tac="86000008"))], "460-00-610-1", hours=3, gap_s=30)


def test_a_lone_machine_like_sim_is_flagged_whatever_the_layer_says(small_model, monkeypatch):
    pipe = new_pipe(small_model)
    pipe.engine.observed_from = START - 86400   # the daemon has watched the network for a day
    veto_all(pipe, monkeypatch)
    flags = run(pipe, calls(lone_gateway()))
    [flag] = flags.values()
    assert flag.imsi == imsi(950) and flag.kind == "sim_anomaly"
    assert flag.reasons[0] == REASON
    assert len(flag.reasons) >= 3   # the anomaly policy's own two kinds of evidence follow


def test_absence_counts_for_one_sim_only_after_three_times_the_absence_window(small_model, monkeypatch):
    """Watched at most 13 h, past ``absence_after_s``: silence of one SIM is not yet evidence
    (a hot cell's three silent SIMs are); watched 18 h two hours into its work, it is."""
    for watched_h, expected in ((10, set()), (18, {imsi(950)})):
        pipe = new_pipe(small_model)
        pipe.engine.observed_from = START - (watched_h - 2) * HOUR
        veto_all(pipe, monkeypatch)
        assert set(run(pipe, calls(lone_gateway()))) == expected, watched_h


def test_a_busy_phone_calling_the_same_people_again_is_not_a_machine(small_model, monkeypatch):
    """The same calls, no data and no call back, but to five numbers over and over: a
    person's phone, flagged by neither the rule nor the anomaly policy."""
    pipe = new_pipe(small_model)
    pipe.engine.observed_from = START - 86400
    contacts = [8613700000000 + k for k in range(5)]
    rows = [(t, *rest[:3], contacts[k % 5], *rest[4:]) for k, (t, *rest) in enumerate(lone_gateway(960))]
    assert run(pipe, calls(rows)) == {}
    vetoing = new_pipe(small_model)
    vetoing.engine.observed_from = START - 86400
    veto_all(vetoing, monkeypatch)
    assert run(vetoing, calls(rows)) == {}
