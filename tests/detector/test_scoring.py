import numpy as np
import pytest

from detector import model
from detector.features.catalog import FEATURES
from detector.features.engine import FeatureFrame
from detector.scoring import Policy, Scorer

IDX = {f: i for i, f in enumerate(FEATURES)}


def population(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, len(FEATURES)))
    x[:, IDX["voice_out_24h"]] = rng.poisson(6, n)
    x[:, IDX["voice_in_24h"]] = rng.poisson(6, n)
    x[:, IDX["distinct_callees_24h"]] = np.minimum(rng.poisson(4, n), x[:, IDX["voice_out_24h"]])
    x[:, IDX["voice_out_1h"]] = rng.poisson(1, n)
    x[:, IDX["distinct_callees_1h"]] = rng.poisson(1, n)
    x[:, IDX["out_in_ratio_24h"]] = x[:, IDX["voice_out_24h"]] / (x[:, IDX["voice_in_24h"]] + 1)
    x[:, IDX["answered_ratio_24h"]] = rng.uniform(0.6, 1.0, n)
    x[:, IDX["duration_mean_24h"]] = rng.uniform(40, 200, n)
    x[:, IDX["sms_in_24h"]] = rng.poisson(3, n)
    x[:, IDX["data_sessions_24h"]] = rng.poisson(15, n)
    x[:, IDX["distinct_cells_24h"]] = rng.integers(1, 6, n)
    x[:, IDX["sim_age_days"]] = rng.uniform(200, 3000, n)
    x[:, IDX["cards_on_id"]] = 1 + rng.binomial(2, 0.02, n)
    x[:, IDX["gap_cv"]] = rng.uniform(0.8, 2.0, n)
    return x


@pytest.fixture(scope="module")
def scorer():
    m = model.fit(population(), window=("a", "b"), n_estimators=100)
    return Scorer(m, Policy(score_quantile=0.99, min_reasons=2, min_events_24h=10))


def frame(values, activity=100):
    values = np.atleast_2d(values)
    n = len(values)
    return FeatureFrame(sims=np.arange(n), imsi=np.arange(n) + 460000000000000,
                        msisdn=np.arange(n) + 8613800000000, at=np.full(n, 1791187200),
                        values=values, activity=np.full(n, activity))


def test_a_gateway_profile_is_flagged_with_plain_reasons(scorer):
    v = population(1, seed=9)[0]
    v[IDX["voice_out_24h"]] = 300
    v[IDX["distinct_callees_24h"]] = 143
    v[IDX["voice_in_24h"]] = 0
    v[IDX["out_in_ratio_24h"]] = 300
    v[IDX["answered_ratio_24h"]] = 0.2
    v[IDX["data_sessions_24h"]] = 0
    [flag] = scorer.score(frame(v))
    assert flag.imsi == "460000000000000" and flag.flagged_at == 1791187200
    assert flag.score > scorer.threshold
    p99 = scorer.model.reference("out_in_ratio_24h")["p99"]
    assert f"300.0 outgoing calls per incoming call in 24 h; 99th percentile of subscribers: " \
        f"{p99:.1f}" in flag.reasons
    # one reason per kind of evidence: volume shows once, however many volume features fire
    volume = [r for r in flag.reasons if "outgoing calls in 24 h" in r or "distinct numbers" in r]
    assert len(volume) == 1
    assert any("share of outgoing calls answered" in r for r in flag.reasons)
    assert 2 <= len(flag.reasons) <= 4


def test_correlated_features_count_as_one_kind_of_evidence(scorer):
    v = np.median(population(), axis=0)
    v[IDX["voice_out_1h"]] = 60            # volume, four ways
    v[IDX["voice_out_24h"]] = 400
    v[IDX["distinct_callees_1h"]] = 60
    v[IDX["distinct_callees_24h"]] = 390
    strict = Scorer(scorer.model, Policy(score_quantile=0.5, min_reasons=2))
    assert strict.families(strict.strengths(v[None, :]))[0] == 1
    assert strict.score(frame(v)) == []


def test_one_chance_neighbour_at_power_on_is_no_evidence(scorer):
    """The population's 99th percentile of attach_sync_24h is 0; one other SIM attaching in
    the same cell within 30 s is chance (busy cells), two make a burst."""
    assert scorer.model.reference("attach_sync_24h")["p99"] == 0
    v = np.median(population(), axis=0)
    sync = FEATURES.index("attach_sync_24h")
    rows = np.repeat(v[None, :], 3, axis=0)
    rows[:, sync] = [1, 2, 7]
    fired = scorer.strengths(rows)[:, sync] > 0
    assert fired.tolist() == [False, True, True]



def test_many_sms_received_are_evidence_only_for_a_sim_that_does_not_call(scorer):
    """A modem taking codes receives SMS and does not call; a courier calling 80 numbers a
    day also receives many SMS (delivery notices), which says nothing more about a rig."""
    v = np.median(population(), axis=0)
    sms_in = FEATURES.index("sms_in_24h")
    rows = np.repeat(v[None, :], 2, axis=0)
    rows[:, sms_in] = 60
    rows[:, IDX["voice_out_24h"]] = [0, 80]
    assert (scorer.strengths(rows)[:, sms_in] > 0).tolist() == [True, False]

def test_a_few_more_sms_sent_than_most_is_no_evidence(scorer):
    """Couriers and enterprise cards send 9 or 10 SMS a day, past the population's 99th
    percentile; a spam box sends hundreds."""
    v = np.median(population(), axis=0)
    sms_out = FEATURES.index("sms_out_24h")
    rows = np.repeat(v[None, :], 2, axis=0)
    rows[:, sms_out] = [9, 60]
    assert scorer.model.reference("sms_out_24h")["p99"] < 9
    assert (scorer.strengths(rows)[:, sms_out] > 0).tolist() == [False, True]


def test_one_odd_behaviour_alone_does_not_flag(scorer):
    v = np.median(population(), axis=0)
    v[IDX["cards_on_id"]] = 40            # the one rig-like value...
    v[IDX["distinct_cells_24h"]] = 60     # ...beside odd but innocent context (a traveller)
    loose = Scorer(scorer.model, Policy(score_quantile=0.5, min_reasons=1))
    strict = Scorer(scorer.model, Policy(score_quantile=0.5, min_reasons=2))
    [flag] = loose.score(frame(v))
    assert flag.reasons == ("40 cards registered on the same ID document; "
                            "99th percentile of subscribers: 2",)
    assert strict.score(frame(v)) == []


def test_too_little_activity_is_not_scored(scorer):
    v = population(1, seed=9)[0]
    v[IDX["voice_out_24h"]] = 300
    v[IDX["distinct_callees_24h"]] = 143
    v[IDX["answered_ratio_24h"]] = 0.1
    assert scorer.score(frame(v, activity=5)) == []


def test_a_heavy_caller_who_calls_the_same_people_again_is_not_flagged(scorer):
    """The gateway's volume and call quality, but more than half of the day's contacts were
    repeats: a person's phone. Up to half repeats, the same row is flagged; a SIM that does
    not call (an SMS modem) is not judged by its contacts."""
    v = population(1, seed=9)[0]
    v[[IDX["voice_out_24h"], IDX["out_in_ratio_24h"]]] = 300
    v[[IDX["voice_in_24h"], IDX["data_sessions_24h"]]] = 0
    v[IDX["distinct_callees_24h"]] = 143
    v[IDX["answered_ratio_24h"]] = 0.2
    rows = np.tile(v, (3, 1))
    rows[:, IDX["callee_repeat_ratio_24h"]] = [0.0, 0.5, 0.8]
    flagged = {int(f.imsi) - 460000000000000 for f in scorer.score(frame(rows))}
    assert flagged == {0, 1}
    assert list(scorer.person_like(rows)) == [False, False, True]
    modem = rows[2].copy()
    modem[IDX["voice_out_24h"]] = 0
    assert not scorer.person_like(modem[None, :])[0]
    strict = Scorer(scorer.model, Policy(score_quantile=0.99, person_repeat_share=0.4))
    assert list(strict.person_like(rows)) == [False, True, True]


def test_ordinary_subscribers_are_rarely_flagged(scorer):
    flags = scorer.score(frame(population(2000, seed=5)))
    assert len(flags) <= 10


@pytest.mark.parametrize("kwargs", [dict(score_quantile=1.0), dict(min_reasons=0),
                                    dict(min_reasons=5, max_reasons=4), dict(min_events_24h=0),
                                    dict(person_repeat_share=0.0), dict(person_repeat_share=1.5)])
def test_policy_validates(kwargs):
    with pytest.raises(ValueError):
        Policy(**kwargs)
