"""Co-moving cohorts: SIMs that moved through the same cells together."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st_

from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.rigs import cohorts
from detector.testing import START, cdr_batch as calls, imei, imsi
from tests.detector.rigs.cases import HOUR, run

VOICE, SMS, DATA = 0, 1, 2
MO, MT = 0, 1
ANSWERED, UNANSWERED, OK = 0, 1, 5


def _box(sims, tac, t0, hours, move_s, gap_s, route, rng, data_every_s=0):
    """A box in a vehicle: each SIM (a module of model ``tac``) calls fresh numbers every
    ``gap_s`` (±30 %), unanswered, never called back; the vehicle enters the next cell of
    ``route`` every ``move_s``. With ``data_every_s``, each SIM also opens a data session
    that often (a box imitating people)."""
    rows, victim = [], 8613600000000 + 10**6 * (sims[0] % 100)
    for i, sim in enumerate(sims):
        dev = int(imei(sim % 10**6, tac=tac))
        t = t0 + int(rng.integers(0, gap_s))
        while t < t0 + hours * HOUR:
            cell = route[(t - t0) // move_s]
            rows.append((t, sim, dev, cell, victim, MO, VOICE, UNANSWERED, 0))
            victim += 1
            t += int(gap_s * rng.uniform(0.7, 1.3))
        for t in range(t0 + 97 * i % max(data_every_s, 1), t0 + hours * HOUR, data_every_s or 10**9):
            rows.append((t, sim, dev, route[(t - t0) // move_s], 0, MO, DATA, OK, 0))
    return rows


def _route(first, n):
    return [f"460-00-61{first % 10}-{k}" for k in range(n)]


def _watched(pipe):
    pipe.engine.observed_from = START - 86400   # the daemon has watched the network for a day


def test_a_box_moving_every_two_minutes_is_one_rig(pipe):
    """15 SIMs that step to the next cell every 2 minutes and each call every ~3 minutes:
    each SIM is seen in a different subset of the route's cells, yet they share their steps."""
    _watched(pipe)
    rng = np.random.default_rng(1)
    sims = [int(imsi(300 + i)) for i in range(15)]
    rows = _box(sims, "86000002", START, 4, 120, 170, _route(1, 200), rng)
    flags = run(pipe, calls(rows))
    assert set(flags) == {imsi(300 + i) for i in range(15)}
    rigs = pipe.rigs.rigs()
    assert len(rigs) == 1 and rigs[0].sims == set(flags)
    assert "SIMs moved through cells" in rigs[0].summary()
    moved = [f for f in flags.values() if "SIMs that moved through cells" in f.reasons[0]]
    assert moved and all("together within" in f.reasons[0] and " → " in f.reasons[0] for f in moved)


def test_a_box_moving_every_few_hours_with_data_sessions_is_one_rig(pipe):
    """A box that opens data sessions (so co-location, which asks for none, passes it by)
    and moves to another cell every 3 hours is a rig by the cells it moved through together."""
    _watched(pipe)
    rng = np.random.default_rng(2)
    sims = [int(imsi(400 + i)) for i in range(6)]
    t0 = START - 10 * HOUR
    rows = _box(sims, "86000003", t0, 13, 3 * HOUR, 90, _route(2, 8), rng, data_every_s=1800)
    flags = run(pipe, calls(rows))
    assert set(flags) == {imsi(400 + i) for i in range(6)}
    rigs = pipe.rigs.rigs()
    assert len(rigs) == 1 and rigs[0].sims == set(flags)
    assert "SIMs moved through cells" in rigs[0].summary()


def test_commuters_moving_together_twice_a_day_are_not_flagged(pipe):
    """Eight colleagues on one bus, morning and evening, for two days: phones (phone TAC)
    with data sessions, calls to a few contacts, and calls from many people. They move as a
    cohort, and the rule does not flag them."""
    _watched(pipe)
    rng = np.random.default_rng(3)
    people = [int(imsi(500 + i)) for i in range(8)]
    route = _route(3, 6)
    rows = []
    for day in (-1, 0):
        base = START - 9 * HOUR + day * 86400
        for i, p in enumerate(people):
            dev = int(imei(500 + i, tac="35209900"))
            contacts = 8613700000000 + 100 * i + np.arange(4)
            for leg, (hour, cells) in enumerate(((7, route), (18, route[::-1]))):
                for k, cell in enumerate(cells):      # a bus stop every 6 minutes
                    t = base + hour * HOUR + 360 * k + int(rng.integers(0, 40))
                    rows.append((t, p, dev, cell, 0, MO, DATA, OK, 0))
            for k in range(10):                       # the day between: home and office
                t = base + 8 * HOUR + int(rng.integers(0, 10 * HOUR))
                where = f"460-00-620-{i % 2}"
                rows.append((t, p, dev, where, int(rng.choice(contacts)), MO, VOICE, ANSWERED, 90))
                rows.append((t + 600, p, dev, where, 8613800000000 + 1000 * i + 10 * day + k, MT, VOICE,
                             ANSWERED, 60))
                rows.append((t + 900, p, dev, where, 0, MO, DATA, OK, 0))
    flags = run(pipe, calls(rows))
    slots = pipe.engine.sims.lookup(np.array(people))
    evening = pipe.engine.recent_cells(slots)[0]
    assert (evening[:, -3:] >= 0).all()      # they did move as one
    assert not flags
    assert not pipe.rigs.rigs()


def test_steps_shared_in_order_despite_skipped_cells_and_not_in_reverse():
    engine = FeatureEngine(lateness_s=2 * HOUR)
    a, b, c, d = (int(imsi(600 + i)) for i in range(4))
    route = _route(4, 5)
    rows = [(START + 120 * k, a, 0, route[k], 0, MO, DATA, OK, 0) for k in range(5)]
    # b is seen in only three of the cells, a minute later
    rows += [(START + 120 * k + 60, b, 0, route[k], 0, MO, DATA, OK, 0) for k in (0, 2, 4)]
    # c drove the other way at the same time
    rows += [(START + 120 * k, c, 0, route[4 - k], 0, MO, DATA, OK, 0) for k in range(5)]
    # d took the same road an hour later
    rows += [(START + HOUR + 120 * k, d, 0, route[k], 0, MO, DATA, OK, 0) for k in range(5)]
    engine.apply(calls(rows))
    sa, sb, sc, sd = engine.sims.lookup(np.array([a, b, c, d]))
    row, other, spread, _ = cohorts.movers_with(engine, np.array([sa, sb]))
    assert sorted(zip(row.tolist(), other.tolist())) == [(0, sb), (1, sa)]
    assert spread.tolist() == [60, 60]
    together, _, _ = cohorts.co_moving(engine, np.array([sa, sa, sa]), np.array([sb, sc, sd]))
    assert together.tolist() == [True, False, False]


def _moves(draw_rows):
    """Records (t, sim, cell) in event-time order."""
    return sorted(draw_rows)


records = st_.lists(st_.tuples(st_.integers(0, 6 * HOUR), st_.integers(0, 5), st_.integers(0, 4)),
                    min_size=1, max_size=120)


def _feed(rows, cuts):
    engine = FeatureEngine()
    pipe = Pipeline(engine, None)
    batch_rows = [(START + t, int(imsi(700 + s)), 0, f"460-00-630-{c}", 0, MO, DATA, OK, 0)
                  for t, s, c in rows]
    edges = [0] + sorted(set(cuts)) + [len(batch_rows)]
    for lo, hi in zip(edges, edges[1:]):
        if hi > lo:
            pipe.feed(_same_cells(batch_rows[lo:hi]))
    return engine


def _same_cells(rows):
    """A batch whose cell table is every cell of the test (so cell ids match across batches)."""
    b = calls(rows + [(START, 0, 0, f"460-00-630-{c}", 0, MO, DATA, OK, 0) for c in range(5)])
    return b.take(b.imsi != 0)


def _paths(engine):
    keys = np.array([int(imsi(700 + s)) for s in range(6)])
    slots = engine.sims.lookup(keys)
    seen = slots >= 0
    cells, at = engine.recent_cells(slots[seen])
    names = engine.cell_names()
    return {int(k): [(names[c], int(t)) for c, t in zip(cr, tr) if c >= 0]
            for k, cr, tr in zip(keys[seen], cells, at)}


def _asked(engine):
    """Who entered each cell in each 10-minute span, from the step index."""
    cells = np.repeat(np.arange(5), 36)
    lo = START + 600 * np.tile(np.arange(36), 5)
    i, sims = engine.entered(cells, lo, lo + 599)
    return sorted(zip(cells[i].tolist(), lo[i].tolist(), engine.sims.keys_by_slot[sims].tolist()))


@settings(max_examples=60, deadline=None)
@given(records, st_.lists(st_.integers(0, 120), max_size=8))
def test_last_cells_after_one_batch_equal_those_after_many(rows, cuts):
    rows = _moves(rows)
    one, many = _feed(rows, []), _feed(rows, cuts)
    assert _paths(one) == _paths(many)
    assert _asked(one) == _asked(many)
    # and after a checkpoint
    keys, blobs = many.export_sims(np.arange(len(many.sims)))
    restored = FeatureEngine()
    restored.cells = dict(many.cells)
    restored.restore_clock(many.watermark, many.observed_from)
    restored.import_state(keys, blobs, [], [])
    assert _paths(restored) == _paths(one)
    assert _asked(restored) == _asked(one)


def test_a_path_is_the_last_distinct_cells_in_time_order():
    engine = FeatureEngine()
    s = int(imsi(800))
    cells = ["a", "a", "b", "a", "c", "c", "d", "e", "f", "g"]
    rows = [(START + 60 * k, s, 0, f"460-00-640-{ord(c)}", 0, MO, DATA, OK, 0) for k, c in enumerate(cells)]
    engine.apply(calls(rows[::-1]))     # the batch's order does not matter, event time does
    got, at = engine.recent_cells(engine.sims.lookup(np.array([s])))
    names = engine.cell_names()
    assert [names[c].rsplit("-", 1)[1] for c in got[0]] == [str(ord(c)) for c in "acdefg"]
    assert (at[0] - START).tolist() == [180, 240, 360, 420, 480, 540]
