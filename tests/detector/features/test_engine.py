import numpy as np
import pytest

from detector.features import state as st
from detector.features.catalog import FEATURES
from detector.features.engine import FeatureEngine
from detector.records import CdrBatch, RegistrationBatch
from detector.testing import T0

VOICE, SMS, DATA = 0, 1, 2
MO, MT = 0, 1
ANSWERED, UNANSWERED, DELIVERED, OK = 0, 1, 4, 5


def batch(rows, cells=("460-00-1-1", "460-00-1-2", "460-00-1-3")):
    """rows: (t, imsi, type, dir, duration, peer, cell, result, imei)"""
    a = np.array(rows, dtype=np.int64).reshape(-1, 9)
    return CdrBatch(
        ts=a[:, 0] + T0, imsi=a[:, 1], record_type=a[:, 2].astype(np.int8),
        direction=a[:, 3].astype(np.int8), duration=a[:, 4].astype(np.int32), peer=a[:, 5],
        cell=a[:, 6].astype(np.int32), result=a[:, 7].astype(np.int8), imei=a[:, 8],
        msisdn=a[:, 1] % 10**11 + 8613000000000, line=np.arange(len(a)) + 2, cells=cells)


def feats(engine, imsi):
    slot = engine.sims.lookup(np.array([imsi]))
    return dict(zip(FEATURES, engine.features(slot).values[0]))


SIM = 460000000000001
PHONE = 352099001761481


def test_counts_ratios_and_durations():
    e = FeatureEngine()
    rows = [(60 * i, SIM, VOICE, MO, 30 + i, 8613900000000 + i, 0, ANSWERED, PHONE) for i in range(10)]
    rows += [(700, SIM, VOICE, MT, 20, 8613911111111, 0, ANSWERED, PHONE),
             (800, SIM, SMS, MO, 0, 8613922222222, 1, DELIVERED, PHONE),
             (900, SIM, SMS, MT, 0, 10690001, 1, DELIVERED, PHONE),
             (1000, SIM, DATA, MO, 300, 0, 1, OK, PHONE)]
    e.apply(batch(rows))
    f = feats(e, SIM)
    assert f["voice_out_24h"] == 10 and f["voice_in_24h"] == 1
    assert f["out_in_ratio_24h"] == pytest.approx(5.0)
    assert f["sms_out_24h"] == 1 and f["sms_in_24h"] == 1 and f["data_sessions_24h"] == 1
    assert f["answered_ratio_24h"] == 1.0
    assert f["duration_mean_24h"] == pytest.approx(34.5)
    assert f["distinct_callees_24h"] == pytest.approx(11, abs=1.5)
    assert f["distinct_cells_24h"] == pytest.approx(2, abs=0.2)
    assert f["dominant_cell_share_24h"] == pytest.approx(11 / 14)
    assert f["distinct_imeis_24h"] == 1 and f["sims_per_imei_24h"] == 1
    assert f["gap_cv"] == pytest.approx(0.0, abs=1e-3)  # a call every 60 s exactly


def test_window_forgets_hours_older_than_24h_and_1h_window_slides():
    e = FeatureEngine()
    e.apply(batch([(0, SIM, VOICE, MO, 0, 1, 0, UNANSWERED, 0)] * 5))
    e.apply(batch([(3600 * 20, SIM, VOICE, MO, 0, 1, 0, UNANSWERED, 0)] * 3))
    assert feats(e, SIM)["voice_out_24h"] == 8
    e.apply(batch([(3600 * 24 + 1800, SIM, VOICE, MO, 0, 1, 0, UNANSWERED, 0)]))
    f = feats(e, SIM)
    assert f["voice_out_24h"] == 4          # the hour at t=0 left the window
    assert f["voice_out_1h"] == 1           # previous hour (20 h) is not adjacent
    e.apply(batch([(3600 * 25 + 900, SIM, VOICE, MO, 0, 1, 0, UNANSWERED, 0)]))
    assert feats(e, SIM)["voice_out_1h"] == pytest.approx(1 + 0.75)


def test_late_records_are_refused_and_change_nothing():
    e = FeatureEngine(lateness_s=600)
    e.apply(batch([(7200, SIM, VOICE, MO, 0, 1, 0, UNANSWERED, 0)]))
    applied = e.apply(batch([(7200 - 300, SIM, VOICE, MO, 0, 2, 0, UNANSWERED, 0),
                             (7200 - 900, SIM, VOICE, MO, 0, 3, 0, UNANSWERED, 0)]))
    assert applied.late.tolist() == [False, True]
    assert feats(e, SIM)["voice_out_24h"] == 2


def test_imei_churn_and_sims_per_imei():
    e = FeatureEngine()
    ports = [PHONE + 10 * k for k in range(4)]
    sims = [SIM + k for k in range(8)]
    rows = [(60 * i, sims[i % 8], VOICE, MO, 0, 100 + i, 0, UNANSWERED, ports[(i // 8) % 4])
            for i in range(64)]
    e.apply(batch(rows))
    f = feats(e, SIM)
    assert f["distinct_imeis_24h"] == 4
    assert f["sims_per_imei_24h"] == pytest.approx(8, abs=1)


def test_device_memory_keeps_the_newest():
    e = FeatureEngine()
    rows = [(3600 * k, SIM, DATA, MO, 1, 0, 0, OK, PHONE + 10 * k) for k in range(st.IMEI_SLOTS + 3)]
    for r in rows:
        e.apply(batch([r]))
    slot = e.sims.lookup(np.array([SIM]))[0]
    kept = sorted(e.sim_state["imei"][slot].tolist())
    assert kept == sorted(PHONE + 10 * k for k in range(3, st.IMEI_SLOTS + 3))


def test_registrations_give_age_and_cards_per_id():
    e = FeatureEngine()
    e.apply_registrations(RegistrationBatch(
        imsi=np.array([SIM, SIM + 1, SIM + 2]), msisdn=np.array([1, 2, 3]),
        iccid=np.array(["8986000000000000001"] * 3, object),
        activated_at=np.array([T0 - 86400 * 2, T0, T0]),
        id_hash=np.array(["doc-a" * 4, "doc-a" * 4, "doc-b" * 4], object),
        channel=np.array(["CH1"] * 3, object), carrier=np.array(["China Mobile"] * 3, object),
        line=np.array([2, 3, 4])))
    e.apply(batch([(43200, SIM, DATA, MO, 1, 0, 0, OK, 0)]))
    f = feats(e, SIM)
    assert f["sim_age_days"] == pytest.approx(2.5)
    assert f["cards_on_id"] == 2


def test_pipeline_gives_the_same_state_for_one_big_batch_or_many_small_ones():
    from detector.pipeline import Pipeline

    rng = np.random.default_rng(3)
    n = 3000
    rows = np.column_stack([
        np.sort(rng.integers(0, 86400 * 2, n)), SIM + rng.integers(0, 40, n),
        rng.integers(0, 3, n), np.zeros(n), rng.integers(0, 200, n),
        8613900000000 + rng.integers(0, 500, n), rng.integers(0, 3, n), np.zeros(n),
        PHONE + 10 * rng.integers(0, 30, n)])
    rows[rows[:, 2] == SMS, 7] = DELIVERED
    rows[rows[:, 2] == DATA, 7] = OK
    one, many = FeatureEngine(), FeatureEngine()
    Pipeline(one, None).feed(batch(rows))
    pipe = Pipeline(many, None)
    for chunk in np.array_split(rows, 37):
        pipe.feed(batch(chunk))
    sims = np.arange(len(one.sims))
    a = one.features(sims).values
    b = many.features(many.sims.lookup(one.sims.keys_by_slot[sims])).values
    # the hour's top cell is merged across batches, so dominance is approximate;
    # everything else matches up to float32 rounding
    dom = FEATURES.index("dominant_cell_share_24h")
    keep = [i for i in range(len(FEATURES)) if i != dom]
    np.testing.assert_allclose(a[:, keep], b[:, keep], rtol=1e-4)
    np.testing.assert_allclose(a[:, dom], b[:, dom], atol=0.1)
    assert len(sims) == 40


def test_checkpoint_round_trip_restores_identical_features():
    e = FeatureEngine()
    rows = [(60 * i, SIM + i % 5, VOICE, MO, 10, 100 + i, i % 3, ANSWERED, PHONE + 10 * (i % 2))
            for i in range(50)]
    e.apply(batch(rows))
    sims, imeis = e.take_unsaved()
    sk, sb = e.export_sims(sims)
    ik, ib = e.export_imeis(imeis)
    f = FeatureEngine()
    f.cells = dict(e.cells)
    f.import_state(sk, sb, ik, ib)
    slots = f.sims.lookup(np.array(sk))
    np.testing.assert_array_equal(e.features(sims).values, f.features(slots).values)


def test_state_size_is_bounded():
    # a thousand SIMs: the indexes' smallest tables are a fixed cost that a hundred would not carry
    e = FeatureEngine()
    e.apply(batch([(i % 3000, SIM + i, DATA, MO, 1, 0, 0, OK, PHONE + 10 * i) for i in range(1000)]))
    size = e.state_bytes()
    assert size["sims"] == 1000 and size["imeis"] == 1000
    assert st.SIM_STATE.itemsize <= 1352
    # the record, three columns, the SIM, number, device and step indexes (hash tables at most a
    # quarter full: 16-32 bytes a key) and a device's record
    assert size["parts_per_sim"]["indexes"] < 100
    assert size["bytes_per_sim"] < 1710


def test_sort_order_is_lexsort():
    from detector.features.engine import _sort_order

    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 4, 500), rng.integers(0, 3, 500)
    np.testing.assert_array_equal(_sort_order(a, b), np.lexsort((a, b)))
    wide = rng.integers(0, 2**40, 500)  # too wide to pack: falls back to lexsort
    np.testing.assert_array_equal(_sort_order(wide, b, a), np.lexsort((wide, b, a)))


def test_dominant_totals_the_busiest_cell():
    from detector.features.engine import _dominant

    rng = np.random.default_rng(6)
    top = rng.integers(-1, 4, (200, st.SLOTS)).astype(np.int32)
    top_n = rng.integers(0, 65536, (200, st.SLOTS)).astype(np.uint16)
    expect = [max([top_n[i][top[i] == c].sum(dtype=np.int64) for c in set(top[i]) - {-1}], default=0)
              for i in range(len(top))]
    np.testing.assert_array_equal(_dominant(top, top_n), expect)


def test_activity_follows_the_window_and_checkpoints():
    rng = np.random.default_rng(7)
    e = FeatureEngine()
    for day_hour in range(0, 60, 3):   # the window slides over earlier hours
        n = 300
        e.apply(batch(np.column_stack([
            3600 * day_hour + rng.integers(0, 3600, n), SIM + rng.integers(0, 20, n),
            rng.integers(0, 3, n), np.zeros(n), rng.integers(0, 100, n),
            8613900000000 + rng.integers(0, 50, n), rng.integers(0, 3, n), np.zeros(n),
            np.full(n, PHONE)])))
        sims = np.arange(len(e.sims))
        cnt = e.sim_state["slot"]["cnt"][sims].sum(axis=1, dtype=np.int64)
        recount = cnt.sum(axis=1) - cnt[:, st.VOICE_OUT_ANSWERED]
        np.testing.assert_array_equal(e.activity(sims), recount)
        np.testing.assert_array_equal(e.features(sims).activity, recount)
    sims, imeis = e.take_unsaved()
    f = FeatureEngine()
    f.import_state(*e.export_sims(sims), *e.export_imeis(imeis))
    np.testing.assert_array_equal(f.activity(f.sims.lookup(e.sims.keys_by_slot[sims])),
                                  e.activity(sims))


# ---- synchronised attaches (signalling) -------------------------------------------------


def _attach(t, sim, cell="460-00-4097-1"):
    from detector.records import Direction, RecordType, Result
    return (T_SYNC + t, sim, 0, cell, 0, Direction.MO, RecordType.ATTACH, Result.OK, 0)


T_SYNC = 1_791_158_400 + 10 * 3600


def _sync_of(engine, imsis):
    frame = engine.features(engine.sims.lookup(np.array(imsis, np.int64)))
    return dict(zip(imsis, frame.column("attach_sync_24h").tolist()))


def test_attaches_of_a_rig_powering_on_count_the_other_sims_in_the_burst():
    from detector.testing import cdr_batch
    rig = [460001000000001 + i for i in range(4)]
    later, elsewhere = 460001000000100, 460001000000200
    rows = [_attach(3 * i, s) for i, s in enumerate(rig)]        # one box: 0, 3, 6, 9 s
    rows += [_attach(300, later), _attach(4, elsewhere, cell="460-00-4097-2")]
    engine = FeatureEngine()
    engine.apply(cdr_batch(rows))
    sync = _sync_of(engine, rig + [later, elsewhere])
    assert [sync[s] for s in rig] == [3, 3, 3, 3]
    assert sync[later] == 0 and sync[elsewhere] == 0


def test_a_box_of_several_networks_cards_powers_on_in_one_shared_cell():
    """A box holds cards of three networks; each attaches to the shared cell under its own
    network's id. One burst with ``shared_cells`` (the default), three without; a cell of
    another network with another identity stays apart."""
    from detector.testing import cdr_batch
    box = [460001000000001, 460011000000002, 460111000000003, 460001000000004]
    cells = ["460-00-4097-1", "460-01-4097-1", "460-11-4097-1", "460-00-4097-1"]
    apart = 460011000000200
    rows = [_attach(3 * i, s, cell=c) for i, (s, c) in enumerate(zip(box, cells))]
    rows.append(_attach(5, apart, cell="460-01-4097-2"))
    shared, split = FeatureEngine(), FeatureEngine(shared_cells=False)
    for engine in (shared, split):
        engine.apply(cdr_batch(rows))
    assert _sync_of(shared, box + [apart]) == dict.fromkeys(box, 3) | {apart: 0}
    assert _sync_of(split, box + [apart]) == {box[0]: 1, box[1]: 0, box[2]: 0, box[3]: 1, apart: 0}
    # the burst's cell is named by the first id seen of it
    s = shared.sim_state[shared.sims.lookup(np.array(box[1:2]))[0]]
    assert shared.cell_names()[s["sync_cell"]] == "460-00-4097-1"


def test_a_burst_cut_across_batches_counts_as_in_one_batch():
    from detector.testing import cdr_batch
    rig = [460001000000001 + i for i in range(5)]
    rows = [_attach(5 * i, s) for i, s in enumerate(rig)]        # 0..20 s, all within 30 s
    whole, cut = FeatureEngine(), FeatureEngine()
    whole.apply(cdr_batch(rows))
    cut.apply(cdr_batch(rows[:2]))
    cut.apply(cdr_batch(rows[2:]))
    assert _sync_of(whole, rig) == _sync_of(cut, rig) == {s: 4.0 for s in rig}
    # attaches 31 s apart are not one burst
    spread = FeatureEngine()
    spread.apply(cdr_batch([_attach(31 * i, s) for i, s in enumerate(rig)]))
    assert set(_sync_of(spread, rig).values()) == {0.0}


def test_a_burst_is_forgotten_24_hours_after_it_happened():
    from detector.records import Direction, RecordType, Result
    from detector.testing import cdr_batch
    rig = [460001000000001 + i for i in range(3)]
    engine = FeatureEngine()
    engine.apply(cdr_batch([_attach(i, s) for i, s in enumerate(rig)]))
    assert _sync_of(engine, rig)[rig[0]] == 2
    call = (T_SYNC + 25 * 3600, rig[0], 0, "460-00-4097-1", 8613900000001, Direction.MO,
            RecordType.VOICE, Result.ANSWERED, 30)
    engine.apply(cdr_batch([call]))
    assert _sync_of(engine, rig)[rig[0]] == 0


def test_attaches_are_observations_not_traffic():
    from detector.testing import cdr_batch
    engine = FeatureEngine()
    engine.apply(cdr_batch([_attach(i, 460001000000001 + i) for i in range(3)]))
    frame = engine.features(np.arange(3))
    assert frame.activity.tolist() == [0, 0, 0]
    assert frame.column("distinct_cells_24h").tolist() == pytest.approx([1, 1, 1], abs=0.05)


def test_the_same_sims_powering_on_together_again_is_seen():
    from detector.testing import cdr_batch
    box = [460001000000001 + i for i in range(4)]
    crowd = 460001000000050
    engine = FeatureEngine()
    engine.apply(cdr_batch([_attach(2 * i, s) for i, s in enumerate(box)] + [_attach(7, crowd)]))
    slots = engine.sims.lookup(np.array(box + [crowd], np.int64))
    assert engine.repeated_bursts(slots).tolist() == [0, 0, 0, 0, 0]      # once is chance
    # next morning: the box again, without the passer-by
    engine.apply(cdr_batch([_attach(86400 + 2 * i, s) for i, s in enumerate(box)]))
    assert engine.repeated_bursts(slots).tolist() == [3, 3, 3, 3, 0]
    assert _sync_of(engine, box) == {s: 3.0 for s in box}
    # a late module of the same burst merges into it instead of starting a new one
    engine.apply(cdr_batch([_attach(86400 + 20, 460001000000009)]))
    assert engine.repeated_bursts(slots).tolist()[:4] == [3, 3, 3, 3]
    assert _sync_of(engine, box) == {s: 4.0 for s in box}


def test_a_box_powering_on_again_in_another_cell_within_the_hour_is_a_new_burst():
    """Two SIMs of a box power on together, then, within the hour, the whole box of four in
    another cell: all four share that latest burst (the first is the previous one)."""
    from detector.testing import cdr_batch
    box = [460001000000001 + i for i in range(4)]
    engine = FeatureEngine()
    engine.apply(cdr_batch([_attach(i, s, cell="460-00-4097-1") for i, s in enumerate(box[:2])]))
    engine.apply(cdr_batch([_attach(3000 + 2 * i, s, cell="460-00-4097-2") for i, s in enumerate(box)]))
    slots = engine.sims.lookup(np.array(box, np.int64))
    s = engine.sim_state
    assert len(set(s["sync_cell"][slots].tolist())) == 1
    assert _sync_of(engine, box) == {x: 3.0 for x in box}
    everyone = np.ones(len(engine.sims), bool)
    assert engine.burst_members(slots, everyone).tolist() == [4, 4, 4, 4]
    assert (s["prev_sync_ts"][slots] > 0).tolist() == [True, True, False, False]


def _call(t, sim, peer_imsi, rtype=None):
    from detector.records import Direction, RecordType, Result
    from detector.testing import cdr_batch
    peer = cdr_batch([(0, peer_imsi, 0, "c", 0, 0, 0, 0, 0)]).msisdn[0]   # its number
    return (T_SYNC + t, sim, 0, "460-00-4097-1", int(peer), Direction.MO,
            rtype if rtype is not None else RecordType.VOICE, Result.ANSWERED, 30)


def test_calls_and_sms_between_sims_of_one_burst_are_counted_per_sim():
    from detector.records import RecordType
    from detector.testing import cdr_batch
    box = [460001000000001 + i for i in range(4)]
    stranger = 460001000000300                      # attached elsewhere: not a companion
    engine = FeatureEngine()
    engine.apply(cdr_batch([_attach(2 * i, s) for i, s in enumerate(box)] +
                           [_attach(1, stranger, cell="460-00-4097-9")]))
    engine.apply(cdr_batch([_call(600, box[0], box[1]), _call(900, box[2], box[0], RecordType.SMS),
                            _call(950, box[0], stranger), _call(1000, box[3], 460001000000777)]))
    slots = engine.sims.lookup(np.array(box + [stranger], np.int64))
    assert engine.burst_contacts(slots).tolist() == [2, 1, 1, 0, 0]
    # the same contacts again add nothing; a day later the burst no longer counts
    engine.apply(cdr_batch([_call(1200, box[1], box[0])]))
    assert engine.burst_contacts(slots).tolist() == [2, 1, 1, 0, 0]
    engine.apply(cdr_batch([_call(26 * 3600, box[3], box[1])]))
    assert engine.burst_contacts(slots)[3] == 0


def test_verification_codes_and_burst_members_are_seen():
    from detector.records import Direction, RecordType, Result
    from detector.testing import cdr_batch
    pool = [460001000000001 + i for i in range(4)]
    other_cell = 460001000000400
    engine = FeatureEngine(code_senders=("1069", "95"))
    engine.apply(cdr_batch([_attach(2 * i, s) for i, s in enumerate(pool)] +
                           [_attach(3, other_cell, cell="460-00-4097-9")]))

    def sms_in(t, sim, sender):
        return (T_SYNC + t, sim, 0, "460-00-4097-1", sender, Direction.MT, RecordType.SMS, Result.OK, 0)

    engine.apply(cdr_batch([sms_in(600, pool[0], 10690012), sms_in(700, pool[1], 106900001234),
                            sms_in(800, pool[2], 95588), sms_in(900, pool[3], 8613912345678),
                            sms_in(950, other_cell, 10690012)]))
    slots = engine.sims.lookup(np.array(pool + [other_cell], np.int64))
    assert (engine.sim_state["code_ts"][slots] > 0).tolist() == [True, True, True, False, True]
    coded = engine.sim_state["code_ts"] > 0
    # the three code takers of the burst, from each member's side; the SIM elsewhere had no burst
    assert engine.burst_members(slots, coded).tolist() == [3, 3, 3, 3, 0]


def _auth(t, sim, ms):
    from detector.records import Direction, RecordType, Result
    return (T_SYNC + t, sim, 0, "460-00-4097-1", 0, Direction.MO, RecordType.AUTH, Result.OK, ms)


def test_authentication_latency_is_a_decayed_mean_whatever_the_batches():
    from detector.testing import cdr_batch
    sim = 460001000000001
    rows = [_auth(0, sim, 2000), _auth(1800, sim, 4000)]
    w = 0.5 ** (1800 / (12 * 3600))                              # the first, 30 minutes older
    whole, cut = FeatureEngine(), FeatureEngine()
    whole.apply(cdr_batch(rows))
    cut.apply(cdr_batch(rows[:1]))
    cut.apply(cdr_batch(rows[1:]))
    for engine in (whole, cut):
        latency, answers = engine.auth_latency(engine.sims.lookup(np.array([sim])))
        assert latency[0] == pytest.approx((w * 2000 + 4000) / (w + 1), rel=1e-5)
        assert answers[0] == pytest.approx(1 + w, rel=1e-5)
    assert whole.features(np.arange(1)).activity.tolist() == [0]     # not traffic


def _mates(e, imsi):
    row, other = e.network_contacts(e.sims.lookup(np.array([imsi])))
    return sorted(int(x) for x in e.sims.keys_by_slot[other])


def test_calls_and_sms_between_sims_of_the_network_are_remembered_at_both_ends():
    e = FeatureEngine()
    a, b, c = SIM, SIM + 1, SIM + 2
    number = lambda s: s % 10**11 + 8613000000000    # noqa: E731
    e.apply(batch([(0, a, DATA, MO, 60, 0, 0, OK, PHONE), (0, b, DATA, MO, 60, 0, 0, OK, PHONE + 10),
                   (0, c, DATA, MO, 60, 0, 0, OK, PHONE + 20)]))
    e.apply(batch([(60, a, VOICE, MO, 30, number(b), 0, ANSWERED, PHONE),        # a calls b
                   (120, c, SMS, MT, 0, number(a), 1, DELIVERED, PHONE + 20),     # c hears from a
                   (180, b, VOICE, MO, 30, 8613999999999, 0, ANSWERED, PHONE + 10)]))  # off-net
    assert _mates(e, a) == [b, c] and _mates(e, b) == [a] and _mates(e, c) == [a]
    # a number that moved to another SIM no longer leads to the SIM that had it
    e.apply(batch([(240, SIM + 3, DATA, MO, 60, 0, 0, OK, PHONE + 30)]))
    e.sim_state["msisdn"][e.sims.lookup(np.array([b]))] = 8613777777777
    e.apply(batch([(300, c, VOICE, MO, 30, number(b), 1, ANSWERED, PHONE + 20)]))
    assert _mates(e, c) == [a]
    # contacts older than a day are forgotten
    e.apply(batch([(25 * 3600, a, DATA, MO, 60, 0, 0, OK, PHONE)]))
    assert _mates(e, a) == []


def test_contacted_tells_who_called_or_texted_whom():
    """Mates are remembered at both ends; which end made the contact is in the callees."""
    e = FeatureEngine()
    a, b, c = SIM, SIM + 1, SIM + 2
    number = lambda s: s % 10**11 + 8613000000000    # noqa: E731
    e.apply(batch([(0, a, VOICE, MO, 30, number(b), 0, ANSWERED, PHONE),     # a calls b
                   (0, b, VOICE, MT, 30, number(a), 0, ANSWERED, PHONE + 10),
                   (60, c, SMS, MO, 0, number(a), 1, DELIVERED, PHONE + 20)]))  # c texts a
    slots = lambda *x: e.sims.lookup(np.array(x))   # noqa: E731
    assert e.contacted(slots(a, b, c, a), slots(b, a, a, c)).tolist() == [True, False, True, False]
    # a day later the window has forgotten it
    e.apply(batch([(25 * 3600, a, DATA, MO, 60, 0, 0, OK, PHONE)]))
    assert e.contacted(slots(a), slots(b)).tolist() == [False]


def test_callees_outside_counts_the_numbers_called_beyond_a_circle():
    """A SIM that calls two mates over and over and ten numbers of the public once each has
    called about ten numbers outside the circle of it and its mates; a mate that only calls
    it back, none; a day later, none."""
    e = FeatureEngine()
    a, b, c = SIM, SIM + 1, SIM + 2
    number = lambda s: s % 10**11 + 8613000000000    # noqa: E731
    rows = [(60 * k, a, VOICE, MO, 30, number(b if k % 2 else c), 0, ANSWERED, PHONE) for k in range(40)]
    rows += [(3000 + 60 * k, a, VOICE, MO, 30, 8613950000000 + 7919 * k, 0, ANSWERED, PHONE) for k in range(10)]
    rows += [(4000 + 60 * k, b, VOICE, MO, 30, number(a), 0, ANSWERED, PHONE + 10) for k in range(5)]
    e.apply(batch(rows))
    slots = lambda *x: e.sims.lookup(np.array(x))   # noqa: E731
    circle = slots(a, b, c)
    public = e.callees_outside(slots(a, b), circle)
    assert 8 <= public[0] <= 13            # a linear count: about ten
    assert public[1] == 0
    assert e.callees_outside(slots(a), slots(a))[0] >= public[0]     # its mates are public to it alone
    e.apply(batch([(25 * 3600 + 4000, a, DATA, MO, 60, 0, 0, OK, PHONE)]))
    assert e.callees_outside(slots(a), circle)[0] == 0


def test_only_the_latest_mates_are_kept():
    e = FeatureEngine()
    others = [SIM + 1 + i for i in range(st.MATES + 2)]
    e.apply(batch([(0, s, DATA, MO, 60, 0, 0, OK, PHONE + 10 * i) for i, s in enumerate(others)]))
    for i, s in enumerate(others):     # one an hour (the memory's resolution)
        e.apply(batch([(3600 * (i + 1), SIM, SMS, MO, 0, s % 10**11 + 8613000000000, 0, DELIVERED, PHONE)]))
    assert _mates(e, SIM) == others[-st.MATES:]


def _random_rows(rng, n, t0, sims, cells, devices):
    from detector.records import Direction, RecordType, Result
    kinds = [RecordType.VOICE, RecordType.SMS, RecordType.DATA, RecordType.ATTACH]
    rows = []
    for _ in range(n):
        kind = kinds[rng.integers(len(kinds))]
        sim = int(sims[rng.integers(len(sims))])
        rows.append((t0 + int(rng.integers(0, 3 * 3600)), sim, int(devices[rng.integers(len(devices))]),
                     cells[rng.integers(len(cells))], int(rng.choice([0, 10690012, 8613900000001])),
                     Direction.MO if rng.random() < 0.6 else Direction.MT, kind, Result.OK, 30))
    return sorted(rows)


def _scans(engine, asked_imeis, asked_cells, asked_sims):
    """What the indexes answer, by reading every SIM (as the rig rules once did)."""
    s, n = engine.sim_state, len(engine.sims)
    recent = s["imei_hour"][:n] >= engine.watermark // 3600 - 23
    users = np.flatnonzero((np.isin(s["imei"][:n], asked_imeis) & recent).any(axis=1))
    in_cells = np.flatnonzero(np.isin(engine.newest_cell(np.arange(n)), asked_cells))
    alive = np.flatnonzero(s["sync_ts"][:n] > engine.watermark - 86400 - engine.lateness_s)
    keys = np.sort(engine._burst_keys(alive))
    lo, hi = engine._burst_reach(asked_sims)
    mine = s["sync_ts"][asked_sims] > engine.watermark - 86400 - engine.lateness_s
    members = np.where(mine, np.searchsorted(keys, hi, "right") - np.searchsorted(keys, lo, "left"), 0)
    calls = s["slot"]["cnt"][asked_sims, :, st.VOICE_OUT].sum(axis=1)
    return users.tolist(), in_cells.tolist(), members.tolist(), calls.tolist()


def _answers(engine, asked_imeis, asked_cells, asked_sims):
    every = np.ones(len(engine.sims), bool)
    return (engine.device_users(asked_imeis).tolist(), engine.sims_in_cells(asked_cells).tolist(),
            engine.burst_members(asked_sims, every).tolist(), engine.calls_out_24h(asked_sims).tolist())


def test_the_indexes_answer_as_a_scan_of_every_sim_through_batches_checkpoints_and_outside_writes():
    from detector.testing import cdr_batch
    rng = np.random.default_rng(7)
    sims = 460001000000000 + np.arange(80)
    devices = 352099001000000 + np.arange(30)
    cells = [f"460-00-4097-{i}" for i in range(4)]
    engine = FeatureEngine()
    for day_hour in range(0, 40, 3):      # past a day, so that devices and bursts age out
        engine.apply(cdr_batch(_random_rows(rng, 300, T_SYNC + day_hour * 3600, sims, cells, devices)))
        asked_imeis = devices[rng.integers(0, len(devices), 5)]
        asked_cells = np.arange(4)[rng.integers(0, 4, 2)]
        asked_sims = engine.sims.lookup(sims[rng.integers(0, len(sims), 20)])
        assert _answers(engine, asked_imeis, asked_cells, asked_sims) == \
            _scans(engine, asked_imeis, asked_cells, asked_sims)
    # a checkpoint's records, and records written from outside (as the scale-out's rig
    # stage does), answer alike
    keys, blobs = engine.export_sims(np.arange(len(engine.sims)))
    restored, written = FeatureEngine(), FeatureEngine()
    for e in (restored, written):
        for name in engine.cells:
            e.cells[name] = engine.cells[name]
        e.restore_clock(engine.watermark, engine.observed_from)
    restored.import_state(keys, blobs, [], [])
    slots, _ = written._sim_slots(np.array(keys, np.int64))
    written.sim_state[slots] = np.frombuffer(b"".join(blobs), st.SIM_STATE)
    for e in (restored, written):
        asked_sims = e.sims.lookup(sims[:30])
        assert _answers(e, devices, np.arange(4), asked_sims) == _scans(e, devices, np.arange(4), asked_sims)


def test_same_place_is_a_shared_busiest_cell_in_one_hour_of_both_windows():
    rng = np.random.default_rng(11)
    e = FeatureEngine()
    n = 400
    e.sim_state = st.empty_sim_state(n)
    e.sim_state["last_hour"] = rng.integers(-1, 60, n)
    e.sim_state["slot"]["top_cell"] = rng.integers(-1, 4, (n, st.SLOTS))
    e.sim_state["slot"]["top_cell"][e.sim_state["last_hour"] < 0] = -1    # no hour, no cell
    a, b = rng.integers(0, n, 3000), rng.integers(0, n, 3000)

    def hours(x):   # (hour, cell) of each slot that holds a busiest cell
        last = int(e.sim_state["last_hour"][x])
        return {(last - (last - k) % st.SLOTS, int(c)) for k, c in enumerate(e.sim_state["slot"]["top_cell"][x])
                if c >= 0 and last >= 0}

    want = [bool(hours(x) & hours(y)) for x, y in zip(a, b)]
    assert e.same_place(a, b).tolist() == want
    assert any(want) and not all(want)
