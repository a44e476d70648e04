"""Feature records across builds: a layout stored as its field list reads back as itself, and
records of an earlier layout are carried into this one by field name (kept, widened, reset
to a new record's value, dropped)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st_

from detector.features import layout
from detector.features import state as st


def _older_sim_layout() -> np.dtype:
    """SIM_STATE as an earlier build might have had it: no ``talk_bits``, a field since
    dropped, ``id_cards`` narrower, and hourly slots without ``top_n``."""
    fields = []
    for name, kind, *shape in st.SIM_STATE.descr:
        if name == "talk_bits":
            continue
        if name == "id_cards":
            kind = "|u1"
        if name == "slot":
            kind = [f for f in kind if f[0] != "top_n"]
        fields.append((name, kind, *shape))
    return np.dtype(fields + [("retired", "<u4")])


def test_a_stored_layout_reads_back_as_the_records_type():
    stored = json.loads(json.dumps(layout.describe()))       # as the store holds it
    assert layout.dtype_of(stored["sim"]) == st.SIM_STATE
    assert layout.dtype_of(stored["imei"]) == st.IMEI_STATE
    with pytest.raises(ValueError, match="not a record layout"):
        layout.dtype_of([["a", "<q7"]])


@settings(max_examples=50, deadline=None)
@given(seed=st_.integers(0, 2**32), n=st_.integers(0, 20))
def test_records_carried_into_their_own_layout_are_unchanged(seed, n):
    raw = np.random.default_rng(seed).integers(0, 256, (n, st.SIM_STATE.itemsize), np.uint8)
    blobs = [r.tobytes() for r in raw]
    out, how = layout.carry(blobs, st.SIM_STATE, st.SIM_STATE, st.empty_sim_state)
    assert out == blobs
    assert how.lossless and set(how.kept) == set(st.SIM_STATE.names)


def test_an_older_layouts_records_keep_what_both_have_and_start_the_rest_empty():
    old = _older_sim_layout()
    rng = np.random.default_rng(7)
    src = np.zeros(5, old)
    src.view(np.uint8)[:] = rng.integers(0, 256, src.nbytes, np.uint8).reshape(src.view(np.uint8).shape)
    out, how = layout.carry([r.tobytes() for r in src], old, st.SIM_STATE, st.empty_sim_state)
    new = np.frombuffer(b"".join(out), st.SIM_STATE)
    empty = st.empty_sim_state(1)[0]
    for name in ("last_hour", "last_ts", "msisdn", "imei", "imei_hour", "gap", "sync_bits"):
        assert np.array_equal(new[name], src[name]), name
    assert np.array_equal(new["id_cards"], src["id_cards"].astype("<u2"))       # widened
    assert np.array_equal(new["slot"]["top_cell"], src["slot"]["top_cell"])     # slot by slot
    assert (new["slot"]["top_n"] == empty["slot"]["top_n"]).all()               # new in a slot
    assert (new["talk_bits"] == empty["talk_bits"]).all()                       # new
    assert "id_cards" in how.kept and "slot.top_cell" in how.kept
    assert set(how.reset) == {"talk_bits", "slot.top_n"}
    assert how.dropped == ("retired",)
    assert not how.lossless


def test_a_field_that_narrowed_or_changed_shape_is_reset_not_truncated():
    old = np.dtype([("a", "<u4"), ("b", "<i8", (3,))])
    new = np.dtype([("a", "<u2"), ("b", "<i8", (4,))])
    src = np.array([(70_000, [1, 2, 3])], old)
    def empty(n: int) -> np.ndarray:
        out = np.zeros(n, new)
        out["a"], out["b"] = 9, 5
        return out

    out, how = layout.carry([src.tobytes()], old, new, empty)
    got = np.frombuffer(out[0], new)[0]
    assert got["a"] == 9 and list(got["b"]) == [5] * 4
    assert set(how.reset) == {"a", "b"} and how.kept == ()


def test_a_record_of_the_wrong_length_is_named():
    with pytest.raises(ValueError, match="record 1 has 3 bytes"):
        layout.carry([b"\0" * st.SIM_STATE.itemsize, b"abc"], st.SIM_STATE, st.SIM_STATE,
                     st.empty_sim_state)
