"""The read side of a stored SIM record: what the struct reader finds is what numpy's view of
the record holds, on any record; a record of another layout has no history."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st_

from detector.features import history
from detector.features import state as st

INT32 = st_.integers(-2**31, 2**31 - 1)


def _by_numpy(record: bytes) -> history.History:
    """The record read through numpy's structured view (the reference)."""
    s = np.frombuffer(record, st.SIM_STATE)[0]
    devices = [(imei, hour) for imei, hour in zip(s["imei"].tolist(), s["imei_hour"].tolist())
               if imei and hour >= 0]
    devices.sort(key=lambda d: d[1], reverse=True)
    last, cells = int(s["last_hour"]), []
    top = s["slot"]["top_cell"]
    for back in range(st.SLOTS):
        hour = last - back
        if hour < 0:
            break
        if int(top[hour % st.SLOTS]) >= 0:
            cells.append((hour, int(top[hour % st.SLOTS])))
    return history.History(tuple(devices), tuple(cells))


@settings(max_examples=300, deadline=None)
@given(last_hour=st_.one_of(st_.just(-1), st_.integers(0, 600_000), INT32),
       imeis=st_.lists(st_.one_of(st_.just(0), st_.integers(1, 10**15 - 1)),
                       min_size=st.IMEI_SLOTS, max_size=st.IMEI_SLOTS),
       hours=st_.lists(st_.one_of(st_.just(-1), st_.integers(0, 600_000)),
                       min_size=st.IMEI_SLOTS, max_size=st.IMEI_SLOTS),
       cells=st_.lists(st_.one_of(st_.just(-1), INT32), min_size=st.SLOTS, max_size=st.SLOTS),
       noise=st_.integers(0, 2**32))
def test_the_struct_reader_reads_what_numpy_sees(last_hour, imeis, hours, cells, noise):
    s = st.empty_sim_state(1)
    s.view(np.uint8)[:] = np.random.default_rng(noise).integers(0, 256, st.SIM_STATE.itemsize,
                                                                 np.uint8)   # the rest: noise
    s["last_hour"] = last_hour
    s["imei"][0] = imeis
    s["imei_hour"][0] = hours
    s["slot"]["top_cell"][0] = cells
    assert history.read(s.tobytes()) == _by_numpy(s.tobytes())


def test_a_sims_devices_and_cells_newest_first():
    s = st.empty_sim_state(1)
    s["last_hour"] = 1000
    s["imei"][0][:3] = [111, 222, 333]
    s["imei_hour"][0][:3] = [990, 999, 995]
    s["slot"]["top_cell"][0][1000 % st.SLOTS] = 7
    s["slot"]["top_cell"][0][998 % st.SLOTS] = 9
    h = history.read(s.tobytes())
    assert h.devices == ((222, 999), (333, 995), (111, 990))
    assert h.cells == ((1000, 7), (998, 9))


def test_a_record_of_another_layout_has_no_history():
    assert history.read(b"\0" * (history.RECORD_BYTES - 1)) is None
    assert history.read(b"") is None


def test_the_top_cell_offsets_are_where_numpy_writes_them():
    s = st.empty_sim_state(1)
    s["slot"]["top_cell"][0] = np.arange(st.SLOTS) + 1000
    record = s.tobytes()
    assert [int.from_bytes(record[o:o + 4], "little", signed=True)
            for o in history.TOP_CELL_OFFSETS] == list(range(1000, 1000 + st.SLOTS))
