"""Synchronised power-on: SIMs that attached together, and what they did then."""

import numpy as np

from detector.testing import START, cdr_batch as calls, imei, imsi
from tests.detector.rigs.cases import HOUR, person_day, power_on, registrations, run


def test_enterprise_account_used_by_people_is_not_flagged(pipe):
    """Twenty cards of one company account (one ID document, consecutive ICCIDs) in people's
    phones; three of them switched on together in the office. "Many cards on one ID" is the
    account's, not a second kind of behaviour beside the burst."""
    sims = [int(imsi(300 + i)) for i in range(20)]
    pipe.register(registrations(sims, "c0ffee" * 4, 898600100000000000, "CH0042", START - 30 * 86400))
    rng = np.random.default_rng(1)
    rows = power_on(sims[:3], [int(imei(500 + i, tac="35209900")) for i in range(3)], START - 60, "460-00-400-1")
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


def test_sims_powering_on_together_day_after_day_are_one_rig_and_meters_are_not(pipe):
    rng = np.random.default_rng(3)
    box = [int(imsi(600 + i)) for i in range(4)]
    box_devs = [int(imei(600 + i, tac="35209900")) for i in range(4)]
    meters = [int(imsi(700 + i)) for i in range(5)]
    meter_devs = [int(imei(700 + i, tac="86104540")) for i in range(5)]
    flagged = {}
    for day in range(2):
        day0 = START - 9 * HOUR + day * 86400
        rows = power_on(box, box_devs, day0 + 7 * HOUR, "460-00-500-1")
        rows += power_on(meters, meter_devs, day0 + 3 * HOUR, "460-00-500-2")
        for s, d in zip(box, box_devs):
            rows += person_day(s, d, day0, "460-00-500-1", rng, 8613800000000 + 10 * s % 1000 + np.arange(5))
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
    rows = power_on(box, box_devs, day0 + 7 * HOUR, "460-00-510-1")
    rows += power_on(crowd, crowd_devs, day0 + 7 * HOUR, "460-00-510-2")
    for i, (s, d) in enumerate(zip(box, box_devs)):
        rows += person_day(s, d, day0, "460-00-510-1", rng, 8613810000000 + 10 * i + np.arange(5))
        for k, other in enumerate(x for x in box if x != s):   # the box talks to itself
            rows.append((day0 + 9 * HOUR + 600 * k + 60 * i, s, d, "460-00-510-1", number[other],
                         0, k % 2, 0, 90))
    for i, (s, d) in enumerate(zip(crowd, crowd_devs)):
        rows += person_day(s, d, day0, "460-00-510-2", rng, 8613820000000 + 10 * i + np.arange(5))
    couple = crowd[:2]
    rows += [(day0 + 12 * HOUR + 60 * k, couple[k % 2], crowd_devs[k % 2], "460-00-510-2",
              number[couple[1 - k % 2]], 0, 0, 0, 120) for k in range(4)]
    return rows, box


def test_a_box_whose_sims_call_each_other_is_a_rig_on_its_firstpower_on(pipe):
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
    rows = power_on(box, devs, evening, cell) + power_on(box, devs, night, cell)
    rows += power_on([person], [person_dev], night + 10, cell)
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
    rows = power_on(pool, pool_devs, t0, "460-00-520-1") + power_on(crowd, crowd_devs, t0, "460-00-520-2")
    rows += power_on(meters, meter_devs, t0, "460-00-520-3")
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
