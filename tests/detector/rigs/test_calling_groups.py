"""Calling groups: callers that call and text each other from one place, and those who join them."""

import numpy as np

from detector.testing import START, cdr_batch as calls, imei, imsi
from tests.detector.rigs.cases import HOUR, box_day, new_pipe, person_day, registrations, run


def _people_days(sims, box, devs, home, day0, rng, first_contact):
    """A human-looking day for each of ``sims`` at its ``home`` cell, each calling contacts of
    its own from ``first_contact`` on; the ``box``'s SIMs call victims instead, a number each
    (:func:`box_day`)."""
    rows = []
    for s in sims:
        first = first_contact + 100 * (s % 1000)
        rows += box_day(s, devs[s], day0, home[s], rng, first) if s in box else \
            person_day(s, devs[s], day0, home[s], rng, first + np.arange(5))
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
    rows = _people_days(everyone, box, devs, home, day0, rng, 8613860000000)
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
        rows += box_day(s, devs[s], day0, "460-00-580-1", rng, 8613870000000 + 100 * (s % 100))
    rows += _calling_circle(box[:3], [devs[s] for s in box[:3]], ["460-00-580-1"] * 3, day0 + 9 * HOUR, number)
    # the network has been watched a day (callers make five calls a day, not so far)
    rows.append((day0 - 16 * HOUR, int(imsi(882)), int(imei(882)), "460-00-599-1", 8613880100000, 0, 0, 0, 60))
    first = run(pipe, calls(rows))
    assert set(first) == {str(s) for s in box[:3]}

    later = day0 + 20 * HOUR   # after the first batch's day
    rows = []
    for s, cell in ((box[3], "460-11-585-1"), (friend, "460-00-590-1"), (victim, "460-00-595-1")) * 2:
        rows += [(later + t - day0 - 8 * HOUR, *rest) for t, *rest in   # busy days
                 person_day(s, devs[s], day0, cell, rng, 8613880000000 + 10 * (s % 100) + np.arange(5),
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
    watched, each of its four SIMs calls two victims, then the next of its mates from one
    cell (a chain), three calls at most. Three calls in the first hours are a caller's rate
    (five a day), and its SIMs are a calling group. Four friends who do the same in another cell,
    each called by two others in those hours (a dozen a day), are not. The same hours after
    the network has been watched for a day are three calls in a SIM's day: no callers, no
    group."""
    box = [int(imsi(1000 + i)) for i in range(4)]
    friends = [int(imsi(1005 + i)) for i in range(4)]
    devs = {s: int(imei(s % 10000, tac="35209900")) for s in box + friends}
    number = {s: 8613000000000 + s % 10**11 for s in box + friends}
    home = dict.fromkeys(box, "460-00-770-1") | dict.fromkeys(friends, "460-00-772-1")

    def hours(t0):
        rows = []
        for group in (box, friends):
            rows += [(t0 + 300 * k + 60 * v, s, devs[s], home[s], 8613870100000 + 10 * (s % 100) + v,
                      0, 0, 1, 0) for k, s in enumerate(group) for v in range(2)]
            rows += [row for a, b in zip(group, group[1:]) for row in   # a chain, in minutes
                     ((t0 + 1800 + 60 * (a % 10), a, devs[a], home[a], number[b], 0, 0, 0, 90),
                      (t0 + 1800 + 60 * (a % 10), b, devs[b], home[b], number[a], 1, 0, 0, 90))]
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
        rows += box_day(s, d, day0, "460-00-560-1", rng, 8613860000000 + 100 * (s % 100))
    rows += _calling_circle(box, devs, ["460-00-560-1"] * 3, day0 + 9 * HOUR, number)
    assert set(run(pipe, calls(rows))) == {str(s) for s in box}


def _test_calls(probes, devs, cell, t0, hours, number, test_numbers, every_s=900):
    """Carrier test equipment: each probe calls another probe every ``every_s`` round the
    clock, one call in eight to one of the carrier's ``test_numbers`` instead (both ends of a
    probe-to-probe call written), and reports over data each hour."""
    rows = []
    for i, (s, d) in enumerate(zip(probes, devs)):
        for k in range(hours * HOUR // every_s):
            t = t0 + k * every_s + 37 * i
            if k % 8 == 7:
                rows.append((t, s, d, cell, test_numbers[k % len(test_numbers)], 0, 0, 0, 30))
                continue
            mate = probes[(i + 1 + k % (len(probes) - 1)) % len(probes)]
            rows.append((t, s, d, cell, number[mate], 0, 0, 0, 30))
            rows.append((t, mate, devs[probes.index(mate)], cell, number[s], 1, 0, 0, 30))
        rows += [(t0 + h * HOUR + 60 * i, s, d, cell, 0, 0, 2, 0, 20) for h in range(hours)]
    return rows


def test_test_equipment_calling_each_other_and_test_numbers_is_not_a_calling_group(pipe):
    """A carrier's network probes: five GSM modules in one cell that call each other every
    quarter of an hour round the clock and now and then one of three test numbers, called by
    nobody else. They are callers that call each other from one place, as a box imitating
    people is, but they terminate nothing on the public: not a group. A box imitating people
    in another cell, whose SIMs call and text each other and call a victim each time
    otherwise, is one."""
    rng = np.random.default_rng(9)
    day0 = START - 9 * HOUR
    probes = [int(imsi(1100 + i)) for i in range(5)]
    box = [int(imsi(1110 + i)) for i in range(4)]
    devs = {s: int(imei(s % 10000, tac="86000100")) for s in probes + box}
    number = {s: 8613000000000 + s % 10**11 for s in probes + box}
    rows = _test_calls(probes, [devs[s] for s in probes], "460-00-780-1", day0, 18, number,
                       [8610010000000 + k for k in range(3)])
    rows += _people_days(box, box, devs, dict.fromkeys(box, "460-00-781-1"), day0, rng, 8613880000000)
    rows += _calling_circle(box, [devs[s] for s in box], ["460-00-781-1"] * 4, day0 + 9 * HOUR, number)
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in box}
    assert all("call and text each other from the same cells" in f.reasons[0] for f in flags.values())
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in box}


def test_a_box_whose_sims_call_each_other_as_often_as_probes_is_a_group_by_its_victims(pipe):
    """A box imitating people whose four SIMs call each other every quarter of an hour, as
    much as test equipment does, and call many more numbers of the public besides: most of
    its contacts reach a victim each, and it is a calling group."""
    day0 = START - 9 * HOUR
    box = [int(imsi(1120 + i)) for i in range(4)]
    devs = {s: int(imei(s % 10000, tac="86000100")) for s in box}
    number = {s: 8613000000000 + s % 10**11 for s in box}
    rows = _test_calls(box, [devs[s] for s in box], "460-00-782-1", day0, 6, number, [8610010000000])
    rows += [(day0 + 5 * i + 120 * k, s, devs[s], "460-00-782-1", 8613890000000 + 1000 * i + k, 0, 0, 0, 60)
             for i, s in enumerate(box) for k in range(6 * HOUR // 120)]
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in box}
    assert all("call and text each other from the same cells" in f.reasons[0] for f in flags.values())
