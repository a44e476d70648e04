"""Contacts between SIMs of different partitions: what a worker reports and how the rig stage
joins them by number into the records it holds."""

import numpy as np

from detector.features import state as st
from detector.features.engine import Contacts, FeatureEngine
from detector.records import Direction, RecordType
from detector.scale.contacts import CrossContacts
from detector.scale.summaries import contacts_bytes, contacts_from, merged_contacts
from detector.testing import START, cdr_batch, imei

HOUR = 3600
A, B, C = 460001000000001, 460002000000002, 460003000000003
NUM = {s: s % 10**11 + 8613000000000 for s in (A, B, C)}   # as detector.testing.cdr_batch numbers them


def _worker(sims, rows):
    """A worker's engine holding ``sims`` (registered with their numbers) after ``rows``."""
    engine = FeatureEngine()
    engine.set_registrations(np.array(sims, np.int64), np.array([NUM[s] for s in sims], np.int64),
                             np.zeros(len(sims), np.int64), np.zeros(len(sims), np.int64),
                             np.ones(len(sims), np.int64))
    batch = cdr_batch(rows)
    engine.apply(batch)
    return engine, engine.contacts_elsewhere(batch)


def _call(t, sim, peer, direction=Direction.MO, kind=RecordType.VOICE):
    return (t, sim, int(imei(sim % 1000)), "460-00-1-1", peer, int(direction), int(kind), 0, 60)


def test_a_worker_reports_the_contacts_with_numbers_it_does_not_hold():
    """A calls B (held by the same worker: a mate, not reported) and C twice (another
    partition's: reported once, at the newest hour); a data session is no contact."""
    rows = [_call(START, A, NUM[B]), _call(START, B, NUM[A], Direction.MT),
            _call(START, A, NUM[C]), _call(START + HOUR, A, NUM[C], kind=RecordType.SMS),
            _call(START, A, 0, kind=RecordType.DATA)]
    engine, far = _worker([A, B], rows)
    assert list(zip(far.imsi, far.number, far.peer, far.hour)) == [(A, NUM[A], NUM[C], START // HOUR + 1)]
    a = engine.sims.lookup(np.array([A]))
    _, other = engine.network_contacts(a)
    assert engine.imsis(other).tolist() == [B]


def test_the_stage_joins_both_ends_by_number():
    """A (one partition) called C (another); each worker reports its end. The stage, taking
    in C's record, gives C its contact with A and holds A by its number; a peer no SIM
    reported (another network's number) is not a SIM of the network."""
    _, far_a = _worker([A], [_call(START, A, NUM[C]), _call(START, A, 8613999999999)])
    worker_c, far_c = _worker([C], [_call(START, C, NUM[A], Direction.MT)])
    stage = FeatureEngine()
    stage.watermark = START
    records, cells = worker_c.portable_records(worker_c.sims.lookup(np.array([C])))
    taken = stage.take_records(np.array([C]), records, cells)
    cross = CrossContacts()
    cross.add(far_a)
    cross.add(far_c)
    changed = cross.join(stage, taken)
    a, c = stage.sims.lookup(np.array([A, C]))
    assert set(changed.tolist()) == {a, c}
    assert stage.msisdns(np.array([a])).tolist() == [NUM[A]]
    row, other = stage.network_contacts(np.array([a, c]))
    assert sorted(zip(row.tolist(), stage.imsis(other).tolist())) == [(1, A)]
    assert len(stage.sims) == 2        # the other network's number is nobody's here


def test_a_record_keeps_its_newest_mates_of_both_kinds():
    """A record taken in knows its partition's mates; the stage adds those of other
    partitions, and the record keeps the newest MATES of all, as the daemon's would."""
    engine = FeatureEngine()
    engine.watermark = START + 30 * HOUR
    sims = np.arange(1, 2 + st.MATES + 3, dtype=np.int64) + 460000000000000
    engine.hold_numbers(sims, sims - 460000000000000 + 8613000000000)
    slots = engine.sims.lookup(sims)
    hours = START // HOUR + np.arange(len(sims) - 1)
    engine.note_contacts(np.full(4, slots[0]), slots[1:5], hours[:4])      # its partition's, older
    engine.note_contacts(np.full(len(sims) - 5, slots[0]), slots[5:], hours[4:])
    s = engine.sim_state
    kept = dict(zip(s["mates"][slots[0]].tolist(), s["mate_hour"][slots[0]].tolist()))
    newest = dict(zip(sims[1:].tolist(), hours.tolist()))
    assert kept == dict(sorted(newest.items(), key=lambda kv: -kv[1])[: st.MATES])
    assert not s["mates"][slots[1:]].any()      # the other ends are noted when passed as ``a``


def test_contacts_survive_a_checkpoint_and_merge_at_their_newest_hour():
    a = Contacts(*(np.array(x, np.int64) for x in ([A, A, B], [1, 1, 2], [7, 8, 9], [10, 11, 12])))
    b = Contacts(*(np.array(x, np.int64) for x in ([A, B], [1, 2], [7, 9], [15, 3])))
    back = contacts_from(contacts_bytes(a))
    assert [x.tolist() for x in (back.imsi, back.number, back.peer, back.hour)] == \
        [x.tolist() for x in (a.imsi, a.number, a.peer, a.hour)]
    m = merged_contacts(a, b)
    assert sorted(zip(m.imsi.tolist(), m.peer.tolist(), m.hour.tolist())) == [(A, 7, 15), (A, 8, 11), (B, 9, 12)]
