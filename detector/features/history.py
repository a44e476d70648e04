"""The read side of a stored SIM record: its recent devices and hourly top cells, from the
record's bytes.

The lookup API and the console hold a SIM's checkpointed record (``sim_state.state``), not
the engine that wrote it, and answer a lookup with what the record remembers: the last
:data:`~detector.features.state.IMEI_SLOTS` devices with the hour each was last seen, and
the most used cell of each of the last :data:`~detector.features.state.SLOTS` active hours.
This module is the one place outside the engine that knows where those fields sit in a
record, so a change of :data:`~detector.features.state.SIM_STATE` is answered here.

A lookup reads one record per SIM, so :func:`read` uses one precomputed :class:`struct.Struct`
rather than numpy views of the record (building those cost more than the lookup's own
work). The store can also read the top cells itself: :data:`TOP_CELL_OFFSETS` are their byte
offsets, little-endian int32, in a record of :data:`RECORD_BYTES` bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from detector.features import state as st

RECORD_BYTES = st.SIM_STATE.itemsize


@dataclass(frozen=True, slots=True)
class History:
    """What a SIM record remembers of where and on what the SIM was, newest first."""
    devices: tuple[tuple[int, int], ...]    # (IMEI, epoch hour last seen)
    cells: tuple[tuple[int, int], ...]      # (epoch hour, global cell id of its top cell)


def _top_cell_offsets() -> tuple[int, ...]:
    """Byte offsets of ``slot[k].top_cell`` (k = 0 .. SLOTS-1) in a SIM record."""
    slot_type, slot_at = st.SIM_STATE.fields["slot"][:2]
    one = slot_type.base
    cell_type, cell_at = one.fields["top_cell"][:2]
    if cell_type != np.dtype("<i4"):
        raise TypeError(f"slot.top_cell is {cell_type}; the record's readers take little-endian int32")
    return tuple(slot_at + k * one.itemsize + cell_at for k in range(slot_type.shape[0]))


TOP_CELL_OFFSETS = _top_cell_offsets()


def _reader() -> tuple[struct.Struct, tuple[int, ...]]:
    """A struct that reads ``last_hour``, the ``IMEI_SLOTS`` devices, the hour each was last
    seen and the ``SLOTS`` top cells from a record (in record order), and the order that puts
    its values in that order."""
    fields = st.SIM_STATE.fields
    parts = [(fields["last_hour"][1], fields["last_hour"][0])]
    for name in ("imei", "imei_hour"):
        dtype, at = fields[name][:2]
        parts += [(at + k * dtype.base.itemsize, dtype.base) for k in range(dtype.shape[0])]
    parts += [(at, np.dtype("<i4")) for at in TOP_CELL_OFFSETS]
    in_record = sorted(range(len(parts)), key=lambda k: parts[k][0])
    fmt, pos = "<", 0
    for k in in_record:
        at, dtype = parts[k]
        if at < pos or dtype.str[0] not in "<|" or dtype.kind != "i" or dtype.itemsize not in (4, 8):
            raise TypeError(f"the SIM record's layout does not suit the history reader at byte {at}")
        fmt += (f"{at - pos}x" if at > pos else "") + {4: "i", 8: "q"}[dtype.itemsize]
        pos = at + dtype.itemsize
    position = {k: i for i, k in enumerate(in_record)}
    return struct.Struct(fmt), tuple(position[k] for k in range(len(parts)))


_READER, _ORDER = _reader()


def read(record: bytes) -> History | None:
    """The history in a stored SIM record; None when ``record`` is not one of this layout's
    (another length)."""
    if len(record) != RECORD_BYTES:
        return None
    raw = _READER.unpack_from(record)
    values = [raw[i] for i in _ORDER]
    n = st.IMEI_SLOTS
    last, imeis, hours, top = values[0], values[1:1 + n], values[1 + n:1 + 2 * n], values[1 + 2 * n:]
    devices = sorted(((imei, hour) for imei, hour in zip(imeis, hours) if imei and hour >= 0),
                     key=lambda d: d[1], reverse=True)
    cells = []
    for hour in range(last, max(last - st.SLOTS, -1), -1):
        cell = top[hour % st.SLOTS]
        if cell >= 0:
            cells.append((hour, cell))
    return History(tuple(devices), tuple(cells))
