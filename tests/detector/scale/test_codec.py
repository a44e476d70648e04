"""The wire format: round trips, and every kind of damage refused with its reason."""

import json
import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st_

from detector.scale.codec import CDR_COLUMNS, BadMessage, decode, encode
from detector.testing import cdr_batch, imei


def _cdr():
    b = cdr_batch([(1_791_158_400 + i, 460000000000001 + i % 3, int(imei(i % 2)), f"c{i % 2}",
                    8613900000000 + i, 0, 0, 0, 30) for i in range(5)])
    cols = {k: getattr(b, k) for k in CDR_COLUMNS}
    return encode("cdr", {"source": "f.csv", "cells": list(b.cells), "watermark": int(b.ts.max())}, cols), b


def test_cdr_round_trip():
    data, b = _cdr()
    msg = decode(data)
    back = msg.cdr_batch()
    assert msg.kind == "cdr" and back.cells == b.cells and back.source == "f.csv"
    for k in CDR_COLUMNS:
        assert np.array_equal(getattr(back, k), getattr(b, k)), k
    assert len(data) < 60 * len(b) + 400   # compact: raw columns, a small header


def test_tick_round_trip():
    assert decode(encode("tick", {"at": 900})).fields == {"at": 900}


def _with_header(data: bytes, change) -> bytes:
    (n,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8:8 + n])
    change(header)
    h = json.dumps(header).encode()
    return data[:4] + struct.pack("<I", len(h)) + h + data[8 + n:]


def _set_column(data: bytes, name: str, value: int) -> bytes:
    msg = decode(data)
    cols = {k: v.copy() for k, v in msg.columns.items()}
    cols[name][0] = value
    return encode("cdr", msg.fields, cols)


@pytest.mark.parametrize("damage, reason", [
    (lambda d: b"junk" + d[4:], "not a goipwatch scale message"),
    (lambda d: d[:-3], "runs past the end|different lengths|bytes after"),
    (lambda d: d + b"\0", "bytes after the last column"),
    (lambda d: d[:8] + b"x" + d[9:], "header is not JSON"),
    (lambda d: _with_header(d, lambda h: h.update(kind="nope")), "unknown message kind"),
    (lambda d: _with_header(d, lambda h: h["fields"].update(cells=["one"])), "cell index outside"),
    (lambda d: _with_header(d, lambda h: h["fields"].update(watermark=0)), "newer than the message's watermark"),
    (lambda d: _with_header(d, lambda h: h["columns"].pop()), "missing"),
    (lambda d: _with_header(d, lambda h: h["columns"][0].__setitem__(1, "<f8")), "bad column entry"),
    (lambda d: _set_column(d, "record_type", 99), "record_type outside"),
    (lambda d: _set_column(d, "direction", 7), "direction outside"),
    (lambda d: _set_column(d, "duration", -5), "negative duration"),
])
def test_damage_is_refused_with_a_reason(damage, reason):
    data, _ = _cdr()
    with pytest.raises(BadMessage, match=reason):
        decode(damage(data))


def _sum(cells=("c0", "c1"), top=1, sync=(0, 0), flags=None):
    """A sum message of two SIMs: ``top`` the first SIM's hourly top cell, ``sync`` its
    power-on burst (time, cell)."""
    from detector.features import state as st
    from detector.features.catalog import FEATURES

    records = st.empty_sim_state(2)
    records["slot"]["top_cell"][0, 0] = top
    records["sync_ts"][0], records["sync_cell"][0] = sync
    n = len(FEATURES)
    flag = {"imsi": "460000000000001", "msisdn": "8613900000001", "score": 0.9, "flagged_at": 900,
            "reasons": ["why"], "kind": "sim_anomaly", "features": {f: 1.0 for f in FEATURES}}
    return encode("sum", {"partition": 0, "step": "tick", "at": 900, "cells": list(cells),
                          "flags": [flag] if flags is None else flags},
                  {"imsi": np.array([460000000000001, 460000000000002]), "msisdn": np.zeros(2, np.int64),
                   "at": np.full(2, 900), "activity": np.ones(2, np.int64),
                   "values": np.zeros(2 * n), "strengths": np.zeros(2 * n),
                   "state": records.view(np.uint8).ravel()}), flag


def test_sum_round_trip_with_cells_and_flags():
    data, flag = _sum(sync=(850, 0))
    msg = decode(data)
    assert msg.fields["flags"] == [flag] and msg.fields["cells"] == ["c0", "c1"]


@pytest.mark.parametrize("change, reason", [
    (dict(top=2), "top_cell index outside its table of 2 cells"),
    (dict(top=-5), "top_cell index outside"),
    (dict(sync=(850, 7)), "sync_cell index outside its table of 2 cells"),
    (dict(cells=("c0", 3)), "cells must be a list of cell names"),
    (dict(flags=["x"]), "flag 0: not an object"),
    (dict(flags=[{"imsi": "1"}]), "flag 0: keys ['features', 'imsi'], expected"),
])
def test_sum_damage_is_refused(change, reason):
    with pytest.raises(BadMessage, match=reason.replace("[", r"\[").replace("]", r"\]")):
        decode(_sum(**change)[0])


@pytest.mark.parametrize("key, value, reason", [
    ("score", "high", "score is not a number"),
    ("flagged_at", 1.5, "flagged_at is not int"),
    ("imsi", "46000x", "imsi or msisdn is not digits"),
    ("kind", "gateway", "kind 'gateway' not one of"),
    ("reasons", [1], "reasons must be strings"),
    ("features", {"calls": "many"}, "features must be every feature's number"),
])
def test_sum_flag_damage_is_refused(key, value, reason):
    flag = _sum()[1] | {key: value}
    with pytest.raises(BadMessage, match=f"flag 0: {reason}"):
        decode(_sum(flags=[flag])[0])


def test_a_flag_without_features_is_taken():   # summaries of the build before they travelled
    flag = _sum()[1]
    del flag["features"]
    assert decode(_sum(flags=[flag])[0]).fields["flags"] == [flag]


def test_unset_power_on_cell_is_not_checked():
    assert decode(_sum(cells=(), top=-1, sync=(0, 0))[0]).kind == "sum"


@pytest.mark.parametrize("clock, ok", [
    ({"watermark": 870, "observed_from": 12}, True),
    ({}, True),                                   # summaries of the build before they carried it
    ({"watermark": -1}, False),
    ({"observed_from": "12"}, False),
    ({"watermark": 870.5}, False),
    ({"watermark": True}, False),
])
def test_a_summarys_clock_is_checked(clock, ok):
    data = _with_header(_sum()[0], lambda h: h["fields"].update(clock))
    if ok:
        assert {k: decode(data).fields[k] for k in clock} == clock
    else:
        with pytest.raises(BadMessage, match="sum message: field (watermark|observed_from) must be a non-negative"):
            decode(data)


def _with_contacts(imsi, number, peer, hour) -> bytes:
    """A sum message of no SIM carrying the given contacts."""
    return encode("sum", {"partition": 0, "step": "tick", "at": 900, "cells": [], "flags": []},
                  {"imsi": np.empty(0, np.int64), "msisdn": np.empty(0, np.int64), "at": np.empty(0, np.int64),
                   "activity": np.empty(0, np.int64), "values": np.empty(0), "strengths": np.empty(0),
                   "state": np.empty(0, np.uint8), "contact_imsi": np.array(imsi, np.int64),
                   "contact_number": np.array(number, np.int64), "contact_peer": np.array(peer, np.int64),
                   "contact_hour": np.array(hour, np.int64)})


_POSITIVE = st_.integers(1, 2**63 - 1)


@given(st_.lists(st_.tuples(_POSITIVE, st_.integers(0, 2**63 - 1), _POSITIVE, st_.integers(0, 2**40)),
                 max_size=30))
def test_a_summarys_contacts_round_trip(contacts):
    from detector.scale.contacts import contacts_of

    cols = list(zip(*contacts)) or [(), (), (), ()]
    got = contacts_of(decode(_with_contacts(*cols)).columns)
    assert [tuple(int(x) for x in row) for row in zip(got.imsi, got.number, got.peer, got.hour)] == contacts


def test_a_summary_without_contacts_has_none():   # summaries of the build before they travelled
    from detector.scale.contacts import contacts_of

    data = _with_header(_sum()[0], lambda h: h.update(
        columns=[c for c in h["columns"] if not c[0].startswith("contact_")]))
    assert len(contacts_of(decode(data).columns)) == 0


@pytest.mark.parametrize("contacts, reason", [
    (([1, 2], [3], [4], [5]), "contact columns of different lengths"),
    (([0], [3], [4], [5]), "a contact without IMSI or peer"),
    (([1], [3], [0], [5]), "a contact without IMSI or peer"),
    (([1], [-3], [4], [5]), "negative number or hour"),
    (([1], [3], [4], [-5]), "negative number or hour"),
])
def test_damaged_contacts_are_refused(contacts, reason):
    with pytest.raises(BadMessage, match=reason):
        decode(_with_contacts(*contacts))


@pytest.mark.parametrize("chunk, ok", [
    ({"chunk": 0, "chunks": 1}, True),
    ({"chunk": 2, "chunks": 3}, True),
    ({"chunk": 3, "chunks": 3}, False),
    ({"chunk": -1, "chunks": 3}, False),
    ({"chunk": "0", "chunks": 1}, False),
    ({"chunks": 0}, False),
])
def test_a_summarys_chunk_is_checked(chunk, ok):
    data = _with_header(_sum()[0], lambda h: h["fields"].update(chunk))
    if ok:
        assert {k: decode(data).fields[k] for k in chunk} == chunk
    else:
        with pytest.raises(BadMessage, match="sum message: chunk .* is not one of 0..chunks-1"):
            decode(data)


def _with_devices(imei, imsi, hour) -> bytes:
    """A sum message of no SIM carrying the given device uses."""
    return encode("sum", {"partition": 0, "step": "tick", "at": 900, "cells": [], "flags": []},
                  {"imsi": np.empty(0, np.int64), "msisdn": np.empty(0, np.int64), "at": np.empty(0, np.int64),
                   "activity": np.empty(0, np.int64), "values": np.empty(0), "strengths": np.empty(0),
                   "state": np.empty(0, np.uint8), "device_imei": np.array(imei, np.int64),
                   "device_imsi": np.array(imsi, np.int64), "device_hour": np.array(hour, np.int64)})


def test_a_summarys_device_uses_round_trip_and_an_older_summary_has_none():
    got = decode(_with_devices([860000030000001, 860000030000001], [460001, 460002], [490000, 490001])).columns
    assert [got[k].tolist() for k in ("device_imei", "device_imsi", "device_hour")] == \
        [[860000030000001] * 2, [460001, 460002], [490000, 490001]]
    old = decode(_sum()[0]).columns      # a summary of the build before device uses travelled
    assert all(len(old[k]) == 0 for k in ("device_imei", "device_imsi", "device_hour"))


@pytest.mark.parametrize("devices, reason", [
    (([1, 2], [3], [4]), "device columns of different lengths"),
    (([0], [3], [4]), "a device use without IMEI or IMSI"),
    (([1], [0], [4]), "a device use without IMEI or IMSI"),
    (([1], [3], [-4]), "negative hour"),
])
def test_damaged_device_uses_are_refused(devices, reason):
    with pytest.raises(BadMessage, match=reason):
        decode(_with_devices(*devices))
