"""What a lookup reads from a SIM record (devices, hourly cells) and how it writes times: the
struct reader and the direct formatting give what numpy's view of the record and strftime
give, on any record and any time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings, strategies as st_

from detector import ids
from detector.api import lookup
from detector.features import state as st

INT32 = st_.integers(-2**31, 2**31 - 1)


def _history_by_numpy(state: bytes) -> tuple[list[dict], list[tuple[int, int]]]:
    """The record read through numpy's structured view (the reference)."""
    s = np.frombuffer(state, st.SIM_STATE)[0]
    devices = [{"imei": ids.imei_text(imei), "last_seen": datetime.fromtimestamp(
                   hour * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
               for imei, hour in zip(s["imei"].tolist(), s["imei_hour"].tolist())
               if imei and hour >= 0]
    devices.sort(key=lambda d: d["last_seen"], reverse=True)
    last, cells = int(s["last_hour"]), []
    top = s["slot"]["top_cell"]
    for back in range(st.SLOTS if last >= 0 else 0):
        if last - back < 0:
            break
        if int(top[(last - back) % st.SLOTS]) >= 0:
            cells.append((last - back, int(top[(last - back) % st.SLOTS])))
    return devices, cells


@settings(max_examples=300, deadline=None)
@given(last_hour=st_.one_of(st_.just(-1), st_.integers(0, 600_000), INT32),
       imeis=st_.lists(st_.one_of(st_.just(0), st_.integers(1, 10**15 - 1)),
                       min_size=st.IMEI_SLOTS, max_size=st.IMEI_SLOTS),
       hours=st_.lists(st_.one_of(st_.just(-1), st_.integers(0, 600_000)),
                       min_size=st.IMEI_SLOTS, max_size=st.IMEI_SLOTS),
       cells=st_.lists(st_.one_of(st_.just(-1), INT32), min_size=st.SLOTS, max_size=st.SLOTS),
       noise=st_.integers(0, 2**32))
def test_the_history_read_by_struct_is_numpys(last_hour, imeis, hours, cells, noise):
    s = st.empty_sim_state(1)
    raw = np.random.default_rng(noise).integers(0, 256, st.SIM_STATE.itemsize, np.uint8)
    s.view(np.uint8)[:] = raw                  # every other field: arbitrary bytes
    s["last_hour"] = last_hour
    s["imei"][0] = imeis
    s["imei_hour"][0] = hours
    s["slot"]["top_cell"][0] = cells
    state = s.tobytes()
    assert lookup._history(state) == _history_by_numpy(state)


def test_a_record_of_another_size_has_no_history():
    assert lookup._history(b"\0" * (st.SIM_STATE.itemsize - 1)) == ([], [])


@settings(max_examples=500, deadline=None)
@given(t=st_.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                       timezones=st_.sampled_from([UTC, timezone(timedelta(hours=8)),
                                                   timezone(timedelta(hours=-5, minutes=-30))])))
def test_iso_is_strftimes(t):
    assert lookup.iso(t) == t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@given(seconds=st_.one_of(st_.integers(0, 253_402_300_799), st_.floats(0, 4e9)))
def test_iso_of_epoch_seconds(seconds):
    expected = datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert lookup.iso(seconds) == expected
    assert lookup.iso(None) is None


def _paths_by_recursion(obj, prefix: str = "") -> list[str]:
    """field_paths as a recursive walk (the reference)."""
    paths: set[str] = set()

    def walk(o, p: str) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                q = f"{p}.{k}" if p else k
                paths.add(q)
                if isinstance(v, (dict, list)):
                    walk(v, q)
        elif isinstance(o, list):
            for v in o:
                if isinstance(v, (dict, list)):
                    walk(v, p + "[]")

    walk(obj, prefix)
    return sorted(paths)


KEYS = st_.sampled_from(["imsi", "flags", "rig", "cells", "a.b", "", "kind", "x[]"])
DOCS = st_.recursive(
    st_.one_of(st_.none(), st_.booleans(), st_.integers(), st_.text(max_size=3)),
    lambda inner: st_.one_of(st_.lists(inner, max_size=4),
                             st_.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(doc=DOCS, prefix=st_.sampled_from(["", "subscribers", "a[]"]))
def test_field_paths_are_the_recursive_walks(doc, prefix):
    assert lookup.field_paths(doc, prefix) == _paths_by_recursion(doc, prefix)
