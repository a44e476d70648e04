"""Rig grouping on hand-built cases, scored with a model trained on a simulated world."""

import numpy as np
import pytest

from detector import model as model_mod
from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.records import RegistrationBatch
from detector.rigs.book import RigBook, rig_id_for
from detector.rigs.bulk_siblings import used_like_a_rig
from detector.rigs.policy import RigPolicy
from detector.scoring import Policy, Scorer
from detector.testing import START, cdr_batch as calls, gateway_rows, imei, imsi

HOUR = 3600


def registrations(imsis, id_hash, first_iccid, channel, activated, step_s=120):
    n = len(imsis)
    iccid = [str(first_iccid + i) + "0" for i in range(n)]  # body runs; last digit stands for Luhn
    return RegistrationBatch(
        imsi=np.array(imsis, np.int64), msisdn=np.array(imsis, np.int64) % 10**11 + 8613000000000,
        iccid=np.array(iccid, object), activated_at=activated + step_s * np.arange(n),
        id_hash=np.array([id_hash] * n, object), channel=np.array([channel] * n, object),
        carrier=np.array(["China Mobile"] * n, object), line=np.arange(n))


def new_pipe(model_path):
    engine = FeatureEngine()
    scorer = Scorer(model_mod.load(model_path), Policy())
    return Pipeline(engine, scorer, 900, rigs=RigBook(engine, scorer, RigPolicy()))


@pytest.fixture
def pipe(small_model):
    return new_pipe(small_model)


def run(pipe, batch):
    flags = pipe.feed(batch).flags + pipe.score_dirty()
    return {f.imsi: f for f in flags}


def test_sims_rotating_over_shared_ports_form_one_rig(pipe):
    sims = [int(imsi(100 + i)) for i in range(8)]
    ports = [int(imei(900 + p, tac="86000001")) for p in range(4)]
    flags = run(pipe, calls(gateway_rows(sims, ports, "460-00-200-7")))
    assert set(flags) == {str(s) for s in sims}
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in sims} and rig.devices == {str(p) for p in ports}
    assert {f.rig_id for f in flags.values()} == {rig.id}
    assert "rotate over 4 shared devices" in rig.summary()
    assert rig.cells == {"460-00-200-7"}


def test_a_rig_still_at_work_is_to_be_saved_again_without_a_new_flag(pipe):
    """The store's row of a rig shows its active window: once saved, a rig is not saved
    again until it changes, and its members' later records change it."""
    sims = [int(imsi(130 + i)) for i in range(4)]
    ports = [int(imei(930 + p, tac="86000001")) for p in range(2)]
    run(pipe, calls(gateway_rows(sims, ports, "460-00-200-8", hours=3)))
    [rig] = pipe.rigs.unsaved_rigs()
    pipe.rigs.saved([rig])
    assert pipe.rigs.unsaved_rigs() == []
    later = [(t + 4 * HOUR, *rest) for t, *rest in gateway_rows(sims, ports, "460-00-200-8", hours=1)]
    assert run(pipe, calls(later)) == {}
    [again] = pipe.rigs.unsaved_rigs()
    assert again.id == rig.id and again.last > rig.last


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


def test_enterprise_account_used_by_people_is_not_flagged(pipe):
    """Twenty cards of one company account (one ID document, consecutive ICCIDs) in people's
    phones; three of them switched on together in the office. "Many cards on one ID" is the
    account's, not a second kind of behaviour beside the burst."""
    sims = [int(imsi(300 + i)) for i in range(20)]
    pipe.register(registrations(sims, "c0ffee" * 4, 898600100000000000, "CH0042", START - 30 * 86400))
    rng = np.random.default_rng(1)
    rows = _power_on(sims[:3], [int(imei(500 + i, tac="35209900")) for i in range(3)], START - 60, "460-00-400-1")
    for i, sim in enumerate(sims):
        dev = int(imei(500 + i, tac="35209900"))
        contacts = 8613700000000 + 100 * i + np.arange(6)
        for k in range(8):
            t = START + int(rng.integers(0, 8 * HOUR))
            rows.append((t, sim, dev, "460-00-400-1", int(rng.choice(contacts)), int(k % 3 == 0), 0, 0, 90))
        for k in range(6):
            rows.append((START + int(rng.integers(0, 8 * HOUR)), sim, dev, "460-00-400-1", 0, 0, 2, 5, 300))
    assert run(pipe, calls(rows)) == {}
    assert pipe.rigs.rigs() == []


def test_a_flagged_card_brings_its_bulk_registration_with_it(pipe):
    cards = [int(imsi(400 + i)) for i in range(10)]
    pipe.register(registrations(cards, "bad5eed" * 3, 898600200000000000, "CH0666", START - 3 * HOUR))
    in_gateway = cards[:4]
    ports = [int(imei(800 + p, tac="86000003")) for p in range(4)]
    rows = gateway_rows(in_gateway, ports, "460-00-500-2", rotate_s=10**9)  # fixed SIM per port
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(c) for c in cards}
    unused = [flags[str(c)] for c in cards[4:]]
    assert {f.kind for f in unused} == {"bulk_registration"}
    assert "10 cards on one ID document with consecutive ICCIDs from channel CH0666" in unused[0].reasons[0]
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(c) for c in cards}
    assert "consecutive ICCIDs" in rig.summary()


def test_rig_ids_do_not_show_the_imsi():
    rid = rig_id_for("460001234567890")
    assert rid.startswith("rig-") and "460001234567890" not in rid and len(rid) == 14


def test_restored_rigs_keep_their_ids_and_lone_sims_can_still_join(pipe):
    from detector.flags import Flag
    a, b, lone = "460000000000501", "460000000000502", "460000000000503"
    rid = rig_id_for(b)   # the rig was founded by b
    book = pipe.rigs
    book.restore([Flag(a, "1", 0.7, 200, (), rig_id=rid), Flag(b, "2", 0.7, 100, (), rig_id=rid),
                  Flag(lone, "3", 0.7, 300, ())])
    assert book.rig_of(a) == book.rig_of(b) == rid
    assert book.rig_of(lone) == ""
    book._union(lone, a)   # a later link (shared device, hot cell, registration)
    assert book.rig_of(lone) == rid   # the older rig keeps its id


def _person_day(sim, dev, day0, cell, rng, contacts, called_back=True):
    """A human-looking day: calls to a few repeated contacts, calls back (a person's; a box
    imitating one calls out instead: its victims do not call back), data sessions."""
    rows = []
    for k in range(12):
        t = day0 + 8 * HOUR + int(rng.integers(0, 10 * HOUR))
        rows.append((t, sim, dev, cell, int(rng.choice(contacts)), int(called_back and k % 3 == 0),
                     k % 4 == 3 and 2 or 0, 0, 60))
    return rows


def _power_on(sims, devs, t0, cell):
    from detector.records import RecordType
    return [(t0 + 2 * i, s, d, cell, 0, 0, RecordType.ATTACH, 6, 0) for i, (s, d) in enumerate(zip(sims, devs))]


def test_sims_powering_on_together_day_after_day_are_one_rig_and_meters_are_not(pipe):
    rng = np.random.default_rng(3)
    box = [int(imsi(600 + i)) for i in range(4)]
    box_devs = [int(imei(600 + i, tac="35209900")) for i in range(4)]
    meters = [int(imsi(700 + i)) for i in range(5)]
    meter_devs = [int(imei(700 + i, tac="86104540")) for i in range(5)]
    flagged = {}
    for day in range(2):
        day0 = START - 9 * HOUR + day * 86400
        rows = _power_on(box, box_devs, day0 + 7 * HOUR, "460-00-500-1")
        rows += _power_on(meters, meter_devs, day0 + 3 * HOUR, "460-00-500-2")
        for s, d in zip(box, box_devs):
            rows += _person_day(s, d, day0, "460-00-500-1", rng, 8613800000000 + 10 * s % 1000 + np.arange(5))
        for s, d in zip(meters, meter_devs):   # a data session every 30 minutes
            rows += [(day0 + k * 1800 + 60, s, d, "460-00-500-2", 0, 0, 2, 6, 10) for k in range(48)]
        flags = run(pipe, calls(rows))
        if day == 0:
            assert not flags                    # one burst is a coincidence
        flagged.update(flags)
    assert set(flagged) == {str(s) for s in box}
    assert {f.kind for f in flagged.values()} == {"rig"}
    assert "synchronised attach" in next(iter(flagged.values())).reasons[0]
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in box}
    assert "power on together" in rig.summary()


def _talking_box_and_crowd():
    """An evasive gateway: human-like days, but its SIMs powered on together and then call
    and text each other; beside it, strangers who switched on together (one couple among
    them, calling each other). Returns (rows, box IMSIs)."""
    rng = np.random.default_rng(4)
    box = [int(imsi(620 + i)) for i in range(4)]
    box_devs = [int(imei(620 + i, tac="35209900")) for i in range(4)]
    crowd = [int(imsi(640 + i)) for i in range(4)]
    crowd_devs = [int(imei(640 + i, tac="35332211")) for i in range(4)]
    number = {s: 8613000000000 + s % 10**11 for s in box + crowd}
    day0 = START - 9 * HOUR
    rows = _power_on(box, box_devs, day0 + 7 * HOUR, "460-00-510-1")
    rows += _power_on(crowd, crowd_devs, day0 + 7 * HOUR, "460-00-510-2")
    for i, (s, d) in enumerate(zip(box, box_devs)):
        rows += _person_day(s, d, day0, "460-00-510-1", rng, 8613810000000 + 10 * i + np.arange(5))
        for k, other in enumerate(x for x in box if x != s):   # the box talks to itself
            rows.append((day0 + 9 * HOUR + 600 * k + 60 * i, s, d, "460-00-510-1", number[other],
                         0, k % 2, 0, 90))
    for i, (s, d) in enumerate(zip(crowd, crowd_devs)):
        rows += _person_day(s, d, day0, "460-00-510-2", rng, 8613820000000 + 10 * i + np.arange(5))
    couple = crowd[:2]
    rows += [(day0 + 12 * HOUR + 60 * k, couple[k % 2], crowd_devs[k % 2], "460-00-510-2",
              number[couple[1 - k % 2]], 0, 0, 0, 120) for k in range(4)]
    return rows, box


def test_a_box_whose_sims_call_each_other_is_a_rig_on_its_first_power_on(pipe):
    rows, box = _talking_box_and_crowd()
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in box}
    assert {f.kind for f in flags.values()} == {"rig"}
    assert all("called or texted" in f.reasons[0] for f in flags.values())
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in box}


def test_a_quiet_sim_powering_on_twice_with_a_box_that_talks_to_itself_is_flagged(pipe):
    """A box starts in the evening and powers on again after midnight, a new day. Three of its
    SIMs call and text each other; its fourth has made two calls to strangers, too few to be
    busy, and no contact with a mate yet: it powered on with them twice, and their burst talks
    to itself. A person who switched on in the second burst only, and calls, is not flagged."""
    box = [int(imsi(660 + i)) for i in range(4)]
    devs = [int(imei(660 + i, tac="35209900")) for i in range(4)]
    person, person_dev = int(imsi(670)), int(imei(670, tac="35332211"))
    number = {s: 8613000000000 + s % 10**11 for s in box}
    evening, night = START + 11 * HOUR, START + 15 * HOUR
    cell = "460-00-520-1"
    rows = _power_on(box, devs, evening, cell) + _power_on(box, devs, night, cell)
    rows += _power_on([person], [person_dev], night + 10, cell)
    talkers = box[:3]
    for i, s in enumerate(talkers):
        for k, other in enumerate(x for x in talkers if x != s):
            rows.append((night + 600 + 600 * k + 60 * i, s, devs[i], cell, number[other], 0, k % 2, 0, 90))
    rows += [(night + 900 * (k + 1), box[3], devs[3], cell, 8613830000100 + k, 0, 0, 1, 0) for k in range(2)]
    rows += [(night + 900 * (k + 1) + 30, person, person_dev, cell, 8613830000200 + k, 0, 0, 0, 60)
             for k in range(2)]
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in box}
    quiet = flags[str(box[3])].reasons[0]
    assert "3 of them also at" in quiet and "3 SIMs of the burst talk among themselves" in quiet
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in box}


def test_sims_flagged_for_their_traffic_that_powered_on_together_are_a_rig_that_says_so(pipe):
    """Two SIMs, each in a device of its own, flagged for their traffic; they powered on
    together in one cell, which is what makes them one rig, and its summary says so."""
    sims = [int(imsi(680 + i)) for i in range(2)]
    devs = [int(imei(680 + i, tac="86000001")) for i in range(2)]
    rows = _power_on(sims, devs, START - 120, "460-00-530-7")
    for k, (s, d) in enumerate(zip(sims, devs)):
        rows += gateway_rows([s], [d], "460-00-530-7", victim0=8613500000000 + 100000 * k)
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in sims}
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in sims}
    assert "SIMs power on together in cell 460-00-530-7" in rig.summary()


def test_the_supervised_layer_does_not_veto_a_burst_that_talks_to_itself(pipe, monkeypatch):
    """The layer judges a SIM's own features; the box's SIMs look like people by design."""
    monkeypatch.setattr(pipe.scorer, "plausible", lambda values, scores: np.zeros(len(values), bool))
    rows, box = _talking_box_and_crowd()
    assert set(run(pipe, calls(rows))) == {str(s) for s in box}


def test_modems_powered_on_together_taking_verification_codes_are_flagged_at_once(pipe):
    """A modem pool (猫池) is flagged on its first codes, long before its SMS volume stands out;
    IoT meters that power on together and people who switched on together and then get a
    code while they call and browse are not."""
    from detector.records import RecordType
    pool = [int(imsi(660 + i)) for i in range(5)]
    pool_devs = [int(imei(660 + i, tac="86104540")) for i in range(5)]
    crowd = [int(imsi(680 + i)) for i in range(4)]
    crowd_devs = [int(imei(680 + i, tac="35332211")) for i in range(4)]
    meters = [int(imsi(690 + i)) for i in range(4)]
    meter_devs = [int(imei(690 + i, tac="86104541")) for i in range(4)]
    t0 = START - 6 * HOUR
    rows = _power_on(pool, pool_devs, t0, "460-00-520-1") + _power_on(crowd, crowd_devs, t0, "460-00-520-2")
    rows += _power_on(meters, meter_devs, t0, "460-00-520-3")
    for i, (s, d) in enumerate(zip(pool, pool_devs)):     # one code each within the hour
        rows.append((t0 + 600 + 300 * i, s, d, "460-00-520-1", 10690000 + i, 1, 1, 4, 0))
    for i, (s, d) in enumerate(zip(crowd, crowd_devs)):   # a code, a call and some browsing
        rows += [(t0 + 600 + 300 * i, s, d, "460-00-520-2", 10690000 + i, 1, 1, 4, 0),
                 (t0 + 900 + 300 * i, s, d, "460-00-520-2", 8613830000000 + i, 0, 0, 0, 60),
                 (t0 + 950 + 300 * i, s, d, "460-00-520-2", 0, 0, RecordType.DATA, 6, 120)]
    for s, d in zip(meters, meter_devs):
        rows += [(t0 + k * 900, s, d, "460-00-520-3", 0, 0, RecordType.DATA, 6, 10) for k in range(1, 5)]
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in pool}
    assert all("verification codes" in f.reasons[0] for f in flags.values())
    # by the scoring tick (900 s) after the third code (t0 + 1200): long before their volume shows
    assert all(f.flagged_at <= t0 + 1200 + 900 for f in flags.values())


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


def test_a_card_flagged_for_its_registration_does_not_bring_its_account(pipe):
    from detector.features.catalog import FEATURES
    from detector.flags import Flag
    ref = pipe.scorer.model.manifest["reference"]
    typical = {f: ref[f]["p50"] for f in FEATURES}

    def flag(**extreme):
        values = dict(typical, **{k: ref[k]["p99"] * 10 + 10 for k in extreme})
        return Flag("460000000000601", "1", 0.7, START, (), features=values)

    scorer = pipe.scorer
    # a busy sales person on a 12-card company account: fan-out and the account itself
    assert not used_like_a_rig(scorer, flag(distinct_callees_1h=1, cards_on_id=1))
    # a card in a gateway: its own use is rig-like twice over
    assert used_like_a_rig(scorer, flag(voice_out_24h=1, out_in_ratio_24h=1, cards_on_id=1))
    assert used_like_a_rig(scorer, Flag("460000000000602", "2", 0.7, START, (), kind="rig"))


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


def test_a_sim_in_a_device_of_a_sim_flagged_earlier_joins_its_rig(pipe):
    """A gateway's ports take new SIMs a day after its first were flagged: a new SIM with one
    kind of evidence (SMS in) in one of those devices is a rig member; the same SIM behaviour
    in a phone of its own is not flagged."""
    gateway = [int(imsi(400 + i)) for i in range(4)]
    ports = [int(imei(400 + p, tac="86000003")) for p in range(4)]
    first = run(pipe, calls(gateway_rows(gateway, ports, "460-00-400-1")))
    assert set(first) == {str(s) for s in gateway}
    newcomer, control = int(imsi(410)), int(imsi(411))
    rows = []
    for sim, dev in ((newcomer, ports[0]), (control, int(imei(411, tac="35209900")))):
        for k in range(40):      # SMS from a bank's number through the next day
            rows.append((START + 30 * HOUR + k * 600, sim, dev, "460-00-400-1", 95588, 1, 1, 4, 0))
    later = run(pipe, calls(rows))
    assert set(later) == {str(newcomer)}
    assert later[str(newcomer)].kind == "rig_member"
    assert later[str(newcomer)].reasons[0] == "shares a device (IMEI) with a flagged SIM"
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in gateway + [newcomer]}


def test_a_sim_that_left_a_port_before_the_port_was_flagged_joins_its_rig(pipe):
    """A SIM bank rotates SIMs through a gateway's port: the port's first SIM worked an hour,
    too briefly to be flagged, and went quiet; when the port's next SIM is flagged, the first
    is found through the device. A SIM as busy in another device stays unflagged."""
    port, other_dev = int(imei(920, tac="86000005")), int(imei(921, tac="86000005"))
    first, nxt, control = int(imsi(920)), int(imsi(921)), int(imsi(922))
    early = gateway_rows([first], [port], "460-00-580-1", hours=1) + \
        gateway_rows([control], [other_dev], "460-00-580-2", hours=1, victim0=8613700000000)
    assert not run(pipe, calls(early))
    later = 2 * HOUR
    flags = run(pipe, calls([(t + later, *rest) for t, *rest in
                             gateway_rows([nxt], [port], "460-00-580-1", hours=3, victim0=8613710000000)]))
    assert set(flags) == {str(nxt), str(first)}
    assert flags[str(first)].kind == "rig_member"
    assert flags[str(first)].reasons[0] == "shares a device (IMEI) with a flagged SIM"
    assert flags[str(first)].flagged_at >= flags[str(nxt)].flagged_at   # when the link was seen
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(first), str(nxt)}


def test_a_card_powered_on_with_a_flagged_card_is_not_held_back_by_the_layer(pipe, monkeypatch):
    """A box of two cards, below every group rule: its first card is flagged; the layer holds
    the second back, yet it powered on with the first and is rig-like on its own. The same
    behaviour in a SIM that powered on alone, or with no flagged SIM, stays vetoed."""
    pair = [int(imsi(900 + i)) for i in range(2)]
    pair_devs = [int(imei(900 + i, tac="86000004")) for i in range(2)]
    loner, loner_dev = int(imsi(910)), int(imei(910, tac="86000004"))
    first = run(pipe, calls(_power_on(pair, pair_devs, START - 60, "460-00-570-1") +
                            gateway_rows(pair[:1], pair_devs[:1], "460-00-570-1", hours=3, gap_s=40)))
    assert set(first) == {str(pair[0])}
    monkeypatch.setattr(pipe.scorer, "plausible", lambda values, scores: np.zeros(len(values), bool))
    later = 3 * HOUR
    work = gateway_rows(pair[1:], pair_devs[1:], "460-00-570-1", hours=3, gap_s=40) + \
        gateway_rows([loner], [loner_dev], "460-00-570-2", hours=3, gap_s=40,
                     victim0=8613600000000)
    rows = _power_on([loner], [loner_dev], START + later - 60, "460-00-570-2") + \
        [(t + later, *rest) for t, *rest in work]
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(pair[1])}
    assert flags[str(pair[1])].kind == "rig_member"
    assert flags[str(pair[1])].reasons[0].startswith("powered on within 30 s of 1 flagged SIM(s) in cell 460-00-570-1")
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in pair}


def test_a_gateways_card_working_beside_its_flagged_cards_is_not_held_back_by_the_layer(pipe, monkeypatch):
    """A fixed gateway's cards, each in its own port, call from one cell with no data and no
    incoming calls; two are flagged. The layer holds the third back, yet it is machine-like
    in their cell in the same hour and rig-like on its own. The same behaviour alone in
    another cell stays vetoed."""
    cards = [int(imsi(930 + i)) for i in range(3)]
    ports = [int(imei(930 + i, tac="86000006")) for i in range(3)]
    loner, loner_dev = int(imsi(940)), int(imei(940, tac="86000006"))

    def work(sims, devs, cell, t0, hours, victim0):
        rows = []
        for k, (s, d) in enumerate(zip(sims, devs)):
            rows += [(t + t0, *rest) for t, *rest in
                     gateway_rows([s], [d], cell, hours=hours, gap_s=40, victim0=victim0 + k * 10**6)]
        return rows

    first = run(pipe, calls(work(cards[:2], ports[:2], "460-00-590-1", 0, 7, 8613400000000)))
    assert set(first) == {str(s) for s in cards[:2]}
    monkeypatch.setattr(pipe.scorer, "plausible", lambda values, scores: np.zeros(len(values), bool))
    later = 7 * HOUR
    rows = work(cards, ports, "460-00-590-1", later, 2, 8613500000000) + \
        work([loner], [loner_dev], "460-00-590-2", later, 2, 8613600000000)
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(cards[2])}
    assert flags[str(cards[2])].kind == "rig_member"
    assert flags[str(cards[2])].reasons[0] == ("machine-like (no data, almost no incoming calls) in cell "
                                               "460-00-590-1 within the hour of 2 flagged machine-like "
                                               "SIM(s), and rig-like on its own")
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in cards}


def _people_days(sims, box, devs, home, day0, rng, first_contact):
    """A human-looking day for each of ``sims`` at its ``home`` cell, each calling contacts of
    its own from ``first_contact`` on; the ``box``'s SIMs are not called back."""
    rows = []
    for s in sims:
        rows += _person_day(s, devs[s], day0, home[s], rng, first_contact + 10 * (s % 100) + np.arange(5),
                            called_back=s not in box)
    return rows


def _called_by_others(sims, devs, home, t0, first_number, calls=4):
    """Each SIM is called ``calls`` times by numbers of its own, from ``first_number`` on:
    people are called by others than each other."""
    return [(t0 + 600 * j, s, devs[s], home[s], first_number + 10 * k + j, 1, 0, 0, 120)
            for k, s in enumerate(sims) for j in range(calls)]


def _calling_circle(sims, devs, cells, t0, number):
    """Each SIM calls or texts every other once, both records written (MO in the caller's
    cell, MT in the callee's), an hour apart per caller."""
    rows = []
    for i, (s, d) in enumerate(zip(sims, devs)):
        for k, j in enumerate(j for j in range(len(sims)) if j != i):
            t = t0 + i * HOUR + 300 * k
            kind = k % 2      # a call, then an SMS
            rows.append((t, s, d, cells[i], number[sims[j]], 0, kind, 0, 0 if kind else 90))
            rows.append((t, sims[j], devs[j], cells[j], number[s], 1, kind, 0, 0 if kind else 90))
    return rows


def test_sims_already_at_work_that_call_each_other_from_one_place_are_a_rig(pipe):
    """A box imitating people whose power-on was never seen: human-like days in one cell, and
    its SIMs call and text each other; a fourth SIM of it, on another carrier's cell, calls two
    of them. Beside it, three people who call each other as much but from cells of their own,
    a family on one ID document calling each other at home, and three friends who call each
    other from one cell but are called by others too, are not flagged."""
    rng = np.random.default_rng(5)
    day0 = START - 9 * HOUR
    box = [int(imsi(800 + i)) for i in range(4)]
    apart = [int(imsi(820 + i)) for i in range(3)]
    family = [int(imsi(840 + i)) for i in range(3)]
    friends = [int(imsi(850 + i)) for i in range(3)]
    everyone = box + apart + family + friends
    devs = {s: int(imei(s % 1000, tac="35209900")) for s in everyone}
    number = {s: 8613000000000 + s % 10**11 for s in everyone}
    pipe.register(registrations(family, "family-id", 898600000000840, "CH0001", START - 400 * 86400))
    home = {s: "460-00-530-1" for s in box[:3]} | {box[3]: "460-11-535-1"} | \
        {s: f"460-00-540-{i}" for i, s in enumerate(apart)} | {s: "460-00-550-1" for s in family} | \
        {s: "460-00-545-1" for s in friends}
    rows = _people_days(everyone, box, devs, home, day0, rng, 8613830000000)
    rows += _called_by_others(friends, devs, home, day0 + 10 * HOUR, 8613890000000)
    for group in (box[:3], apart, family, friends):
        rows += _calling_circle(group, [devs[s] for s in group], [home[s] for s in group],
                                day0 + 9 * HOUR, number)
    rows += _calling_circle([box[3], box[0], box[1]], [devs[box[3]], devs[box[0]], devs[box[1]]],
                            [home[box[3]], home[box[0]], home[box[1]]], day0 + 13 * HOUR, number)
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in box}
    assert {f.kind for f in flags.values()} == {"rig"}
    assert all("call and text each other from the same cells" in f.reasons[0] for f in flags.values())
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in box}
    assert "call each other from cell 460-00-530-1" in rig.summary()


def test_friends_called_by_others_are_not_a_group_while_many_circles_call_at_once(pipe):
    """Thirty circles of three friends, each in a cell of its own, call each other in the same
    hours as a box imitating people; every friend has been called by others too. Each circle
    is judged against its own numbers: with one mask of every circle's numbers, the friends'
    callers would all look like members of some circle."""
    rng = np.random.default_rng(11)
    day0 = START - 9 * HOUR
    box = [int(imsi(900 + i)) for i in range(3)]
    circles = [[int(imsi(910 + 3 * c + i)) for i in range(3)] for c in range(30)]
    everyone = box + [s for c in circles for s in c]
    devs = {s: int(imei(s % 1000, tac="35209900")) for s in everyone}
    number = {s: 8613000000000 + s % 10**11 for s in everyone}
    home = {s: "460-00-700-1" for s in box} | \
        {s: f"460-00-6{c:02d}-1" for c, circle in enumerate(circles) for s in circle}
    rows = _people_days(everyone, box, devs, home, day0, rng, 8613840000000)
    rows += _called_by_others(everyone[3:], devs, home, day0 + 8 * HOUR, 8613891000000, calls=3)
    for group in [box] + circles:
        rows += _calling_circle(group, [devs[s] for s in group], [home[s] for s in group],
                                day0 + 9 * HOUR, number)
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in box}
    assert all("call and text each other from the same cells" in f.reasons[0] for f in flags.values())


def _chain(sims, devs, cell, t0, number):
    """Each SIM calls the next one once (both records written): a chain, every SIM in contact
    with one or two of the others, none with two of its ends."""
    rows = []
    for i, (a, b) in enumerate(zip(sims, sims[1:])):
        t = t0 + i * 1200
        rows.append((t, a, devs[a], cell, number[b], 0, 0, 0, 90))
        rows.append((t, b, devs[b], cell, number[a], 1, 0, 0, 90))
    return rows


def test_a_chain_of_four_callers_at_one_place_is_a_group_and_of_three_is_not(pipe):
    """A box at a cold start: four of its SIMs have called one another once each, a chain
    from one cell (no SIM in contact with two that know each other yet); one contact more
    than three SIMs need to be a group. Three people calling each other along a chain, and
    four friends along one who are called by others too, are not a group."""
    rng = np.random.default_rng(7)
    day0 = START - 9 * HOUR
    box = [int(imsi(960 + i)) for i in range(4)]
    three = [int(imsi(970 + i)) for i in range(3)]
    friends = [int(imsi(980 + i)) for i in range(4)]
    everyone = box + three + friends
    devs = {s: int(imei(s % 1000, tac="35209900")) for s in everyone}
    number = {s: 8613000000000 + s % 10**11 for s in everyone}
    home = {s: "460-00-750-1" for s in box} | {s: "460-00-751-1" for s in three} | \
        {s: "460-00-752-1" for s in friends}
    rows = _people_days(everyone, box, devs, home, day0, rng, 8613850000000)
    rows += _called_by_others(friends, devs, home, day0 + 10 * HOUR, 8613892000000)
    for group in (box, three, friends):
        rows += _chain(group, devs, home[group[0]], day0 + 9 * HOUR, number)
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in box}
    assert all("one of 4 SIMs that call and text each other" in f.reasons[0] for f in flags.values())
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in box}


def test_a_sim_hanging_off_a_calling_group_by_one_link_is_of_it_only_if_it_made_the_contact(pipe):
    """A box imitating people calls and texts among four of its SIMs from one cell; its fifth
    SIM has called one of them once. One of the four calls a neighbour in that cell once, a
    caller whom nobody else called that day (a victim next door). Each hangs off the group by
    one link: the fifth SIM made its contact and is of the group, the neighbour did not."""
    rng = np.random.default_rng(11)
    day0 = START - 9 * HOUR
    box = [int(imsi(990 + i)) for i in range(5)]
    neighbour = int(imsi(996))
    everyone = box + [neighbour]
    devs = {s: int(imei(s % 1000, tac="35209900")) for s in everyone}
    number = {s: 8613000000000 + s % 10**11 for s in everyone}
    home = dict.fromkeys(everyone, "460-00-760-1")
    rows = _people_days(everyone, everyone, devs, home, day0, rng, 8613860000000)
    rows += _calling_circle(box[:4], [devs[s] for s in box[:4]], [home[s] for s in box[:4]], day0 + 9 * HOUR,
                            number)
    rows += _chain([box[4], box[1]], devs, home[box[4]], day0 + 14 * HOUR, number)
    rows += _chain([box[0], neighbour], devs, home[neighbour], day0 + 14 * HOUR, number)
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in box}
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in box}


def test_a_caller_reaching_two_sims_of_a_flagged_calling_group_later_joins_its_rig(pipe):
    """A box imitating people is found; hours later a card of it on another carrier's cell
    calls two of its SIMs, at a tick when none of the group is active (their side of those
    calls is in a feed that has not arrived yet). It joins the rig; a person of another cell
    who calls one of them does not, nor does one whom two of them call (a victim: it is
    reached by the box, it does not reach it)."""
    rng = np.random.default_rng(7)
    day0 = START - 9 * HOUR
    box = [int(imsi(870 + i)) for i in range(4)]
    friend, victim = int(imsi(880)), int(imsi(881))
    devs = {s: int(imei(s % 1000, tac="35209900")) for s in box + [friend, victim]}
    number = {s: 8613000000000 + s % 10**11 for s in box + [friend, victim]}
    rows = []
    for s in box[:3]:
        rows += _person_day(s, devs[s], day0, "460-00-580-1", rng, 8613870000000 + 10 * (s % 100) + np.arange(5),
                            called_back=False)
    rows += _calling_circle(box[:3], [devs[s] for s in box[:3]], ["460-00-580-1"] * 3, day0 + 9 * HOUR, number)
    # the network has been watched a day (callers make five calls a day, not so far)
    rows.append((day0 - 16 * HOUR, int(imsi(882)), int(imei(882)), "460-00-599-1", 8613880100000, 0, 0, 0, 60))
    first = run(pipe, calls(rows))
    assert set(first) == {str(s) for s in box[:3]}

    later = day0 + 20 * HOUR   # after the first batch's day
    rows = []
    for s, cell in ((box[3], "460-11-585-1"), (friend, "460-00-590-1"), (victim, "460-00-595-1")) * 2:
        rows += [(later + t - day0 - 8 * HOUR, *rest) for t, *rest in   # busy days
                 _person_day(s, devs[s], day0, cell, rng, 8613880000000 + 10 * (s % 100) + np.arange(5),
                             called_back=s == friend)]
    rows += [(later + HOUR + 60 * k, box[3], devs[box[3]], "460-11-585-1", number[box[k]], 0, 0, 0, 90)
             for k in range(2)]
    rows.append((later + HOUR, friend, devs[friend], "460-00-590-1", number[box[0]], 0, 0, 0, 90))
    for k in range(2):   # two of the box's SIMs call the victim: records of both ends
        rows.append((later + HOUR + 300 * k, box[k], devs[box[k]], "460-00-580-1", number[victim], 0, 0, 0, 40))
        rows.append((later + HOUR + 300 * k, victim, devs[victim], "460-00-595-1", number[box[k]], 1, 0, 0, 40))
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(box[3])}
    assert flags[str(box[3])].kind == "rig"
    assert flags[str(box[3])].reasons[0].startswith(
        "a caller in contact with 2 flagged SIMs of a calling group, calling or texting at least one")
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in box}


def test_at_a_first_start_calls_are_counted_over_the_time_watched(pipe, small_model):
    """A box imitating people at work when the daemon first starts: in the first hours
    watched, each of its four SIMs calls a victim and calls and texts its mates from one cell,
    three calls each. Three calls in four hours are a caller's rate (five a day), and its SIMs
    are a calling group. Three friends who do the same in another cell, each called by two
    others in those hours (a dozen a day), are not. The same hours after the network has been
    watched for a day are three calls in a SIM's day: no callers, no group."""
    box = [int(imsi(1000 + i)) for i in range(4)]
    friends = [int(imsi(1005 + i)) for i in range(3)]
    devs = {s: int(imei(s % 10000, tac="35209900")) for s in box + friends}
    number = {s: 8613000000000 + s % 10**11 for s in box + friends}
    home = dict.fromkeys(box, "460-00-770-1") | dict.fromkeys(friends, "460-00-772-1")

    def hours(t0):
        rows = []
        for group in (box, friends):
            rows += _calling_circle(group, [devs[s] for s in group], [home[s] for s in group], t0, number)
            rows += [(t0 + 1800 + 600 * k, s, devs[s], home[s], 8613870100000 + s % 100, 0, 0, 1, 0)
                     for k, s in enumerate(group)]
        return rows + _called_by_others(friends, devs, home, t0 + 600, 8613870300000, calls=2)

    flags = run(pipe, calls(hours(START)))
    assert set(flags) == {str(s) for s in box}
    assert all("SIMs that call and text each other" in f.reasons[0] for f in flags.values())
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in box}

    watched_a_day = new_pipe(small_model)
    run(watched_a_day, calls([(START - 30 * HOUR, int(imsi(1010)), int(imei(1010)), "460-00-771-1",
                               8613870200000, 0, 0, 0, 60)]))
    assert run(watched_a_day, calls(hours(START))) == {}


def test_a_calling_group_is_not_put_to_the_supervised_layer(pipe, monkeypatch):
    """Its SIMs look like people by design; the group is the evidence."""
    monkeypatch.setattr(pipe.scorer, "plausible", lambda values, scores: np.zeros(len(values), bool))
    rng = np.random.default_rng(6)
    day0 = START - 9 * HOUR
    box = [int(imsi(860 + i)) for i in range(3)]
    devs = [int(imei(860 + i, tac="35209900")) for i in range(3)]
    number = {s: 8613000000000 + s % 10**11 for s in box}
    rows = []
    for s, d in zip(box, devs):
        rows += _person_day(s, d, day0, "460-00-560-1", rng, 8613860000000 + 10 * (s % 100) + np.arange(5),
                            called_back=False)
    rows += _calling_circle(box, devs, ["460-00-560-1"] * 3, day0 + 9 * HOUR, number)
    assert set(run(pipe, calls(rows))) == {str(s) for s in box}
