"""The wire format: round trips, and every kind of damage refused with its reason."""

import json
import struct

import numpy as np
import pytest

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
