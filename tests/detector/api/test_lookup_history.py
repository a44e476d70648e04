"""What a lookup answers from a SIM record (devices, hourly cells) and how it writes times:
the direct formatting gives what strftime gives, on any time; field paths are the
recursive walk's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st_

from detector import ids
from detector.api import lookup
from detector.features import state as st


def test_the_lookup_writes_a_records_history_as_answered():
    """Devices as IMEI texts with the hour last seen, cells as (hour, cell id), newest first:
    what :mod:`detector.features.history` reads (its property test compares it with numpy),
    in the answer's form."""
    s = st.empty_sim_state(1)
    s["last_hour"] = 490_000
    s["imei"][0][:2] = [35_000_000_000_0012, 86_000_009_000_0014]
    s["imei_hour"][0][:2] = [489_990, 489_999]
    s["slot"]["top_cell"][0][490_000 % st.SLOTS] = 7
    s["slot"]["top_cell"][0][489_998 % st.SLOTS] = 3
    devices, cells = lookup._history(s.tobytes())
    assert devices == [
        {"imei": ids.imei_text(86_000_009_000_0014), "last_seen": lookup.iso(489_999 * 3600)},
        {"imei": ids.imei_text(35_000_000_000_0012), "last_seen": lookup.iso(489_990 * 3600)}]
    assert cells == [(490_000, 7), (489_998, 3)]


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
