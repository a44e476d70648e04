"""The wire format of the scale-out stream: compact, self-describing binary messages.

A message is ``GWS1`` + a 4-byte little-endian header length + a JSON header + the raw
little-endian bytes of its columns, one after the other. The header names the message kind,
its scalar fields and each column's name, dtype and length, so a worker checks a message
completely before it touches its state; anything wrong raises :class:`BadMessage` saying what.

Kinds (each on one partition's subject):
- ``cdr``: the records of one partition cut from one event-time piece of a file, the piece's
  cell table, and the publisher's watermark after the piece;
- ``reg``: registrations of the partition's SIMs with the number of cards on the same ID
  document across the whole population (counted by the publisher, which sees it all);
- ``tick``: score the SIMs touched since the last tick (sent to every partition, so every
  partition scores at the same event times whatever the number of workers);
- ``flush``: score what is pending now (the end of a finite feed);
- ``sum`` (on ``<prefix>.sum.<partition>``, from a worker to the rig stage): after each tick
  or flush, in one or more chunks (``chunk`` of ``chunks``), the partition's SIMs with
  rig-like evidence and its callers: their feature rows, the evidence strengths, their
  fixed-size records (cells renamed to a table of the message) and the per-SIM flags of
  that tick, with the partition's clock (its watermark, and the time its
  watching began); and the contacts (calls, SMS) its SIMs had since the last summary with
  numbers that are no SIM of the partition (IMSI, the SIM's number, the peer's number, the
  newest hour), which the rig stage joins across partitions by number; and the devices its
  records named since the last summary (IMEI, IMSI, hour), which the rig stage adds to its
  devices' SIM bitmaps (a device's SIMs of every partition).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from detector.records import CdrBatch, Direction, RecordType, Result

MAGIC = b"GWS1"
_LEN = struct.Struct("<I")
KINDS = ("cdr", "reg", "tick", "flush", "sum")

CDR_COLUMNS = {"ts": "<i8", "imsi": "<i8", "imei": "<i8", "cell": "<i4", "peer": "<i8",
               "direction": "i1", "record_type": "i1", "result": "i1", "duration": "<i4",
               "msisdn": "<i8", "line": "<i8"}
REG_COLUMNS = {"imsi": "<i8", "msisdn": "<i8", "activated_at": "<i8", "id_cards": "<i4",
               "id_key": "<i8"}
SUM_COLUMNS = {"imsi": "<i8", "msisdn": "<i8", "at": "<i8", "activity": "<i8", "values": "<f8",
               "strengths": "<f8", "state": "u1", "contact_imsi": "<i8", "contact_number": "<i8",
               "contact_peer": "<i8", "contact_hour": "<i8", "device_imei": "<i8", "device_imsi": "<i8",
               "device_hour": "<i8"}
# columns a message may lack (a summary of a build before contacts or devices travelled): empty
_OPTIONAL = {"sum": ("contact_imsi", "contact_number", "contact_peer", "contact_hour",
                     "device_imei", "device_imsi", "device_hour")}
_CONTACT = ("contact_imsi", "contact_number", "contact_peer", "contact_hour")
_DEVICE = ("device_imei", "device_imsi", "device_hour")
_COLUMNS = {"cdr": CDR_COLUMNS, "reg": REG_COLUMNS, "tick": {}, "flush": {}, "sum": SUM_COLUMNS}


class BadMessage(ValueError):
    """A message that cannot be applied; the text says why."""


@dataclass(frozen=True, slots=True)
class Message:
    kind: str
    fields: dict                                  # scalar header fields
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def cdr_batch(self) -> CdrBatch:
        c = self.columns
        return CdrBatch(ts=c["ts"], imsi=c["imsi"], imei=c["imei"], cell=c["cell"], peer=c["peer"],
                        direction=c["direction"], record_type=c["record_type"], result=c["result"],
                        duration=c["duration"], msisdn=c["msisdn"], line=c["line"],
                        source=self.fields.get("source", ""), cells=tuple(self.fields["cells"]))


def encode(kind: str, fields: dict, columns: dict[str, np.ndarray] | None = None) -> bytes:
    spec = _COLUMNS[kind]
    columns = {name: np.empty(0, spec[name]) for name in _OPTIONAL.get(kind, ())} | (columns or {})
    if set(columns) != set(spec):
        raise ValueError(f"{kind} message needs the columns {sorted(spec)}")
    parts, layout = [], []
    for name, dtype in spec.items():
        a = np.ascontiguousarray(columns[name], dtype=dtype)
        layout.append([name, dtype, len(a)])
        parts.append(a.tobytes())
    header = json.dumps({"kind": kind, "fields": fields, "columns": layout},
                        separators=(",", ":")).encode()
    return b"".join([MAGIC, _LEN.pack(len(header)), header, *parts])


def decode(data: bytes) -> Message:
    if len(data) < 8 or data[:4] != MAGIC:
        raise BadMessage(f"not a goipwatch scale message (starts {bytes(data[:8])!r})")
    (n,) = _LEN.unpack_from(data, 4)
    if 8 + n > len(data):
        raise BadMessage(f"header of {n} bytes runs past the {len(data)}-byte message")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadMessage(f"header is not JSON: {e}") from None
    if not isinstance(header, dict) or header.get("kind") not in KINDS:
        raise BadMessage(f"unknown message kind {header.get('kind') if isinstance(header, dict) else header!r}")
    kind, spec = header["kind"], _COLUMNS[header["kind"]]
    fields_ = header.get("fields")
    layout = header.get("columns")
    if not isinstance(fields_, dict) or not isinstance(layout, list):
        raise BadMessage(f"{kind} message: header lacks fields or columns")
    columns, at = {}, 8 + n
    for entry in layout:
        if not (isinstance(entry, list) and len(entry) == 3 and entry[0] in spec
                and entry[1] == spec[entry[0]] and isinstance(entry[2], int) and entry[2] >= 0):
            raise BadMessage(f"{kind} message: bad column entry {entry!r}")
        name, dtype, length = entry
        size = np.dtype(dtype).itemsize * length
        if at + size > len(data):
            raise BadMessage(f"{kind} message: column {name} runs past the end of the message")
        columns[name] = np.frombuffer(data, dtype, length, at)
        at += size
    for name in _OPTIONAL.get(kind, ()):
        columns.setdefault(name, np.empty(0, spec[name]))
    if set(columns) != set(spec):
        raise BadMessage(f"{kind} message: columns {sorted(set(spec) - set(columns))} missing")
    if at != len(data):
        raise BadMessage(f"{kind} message: {len(data) - at} bytes after the last column")
    if kind != "sum" and len({len(c) for c in columns.values()}) > 1:
        raise BadMessage(f"{kind} message: columns of different lengths")
    _check_fields(kind, fields_, columns)
    return Message(kind, fields_, columns)


FLAG_KINDS = ("sim_anomaly", "rig", "rig_member", "bulk_registration")
_FLAG_FIELDS = {"imsi": str, "msisdn": str, "score": (int, float), "flagged_at": int, "reasons": list,
                "kind": str, "features": dict}


def _bad_flag(flag, features: tuple[str, ...]) -> str | None:
    """Why a summary's flag cannot be taken in, or None."""
    if not isinstance(flag, dict):
        return "not an object"
    flag = {"features": {}} | flag   # a summary of a build before features travelled has none
    if set(flag) != set(_FLAG_FIELDS):
        return f"keys {sorted(flag)}, expected {sorted(_FLAG_FIELDS)}"
    for name, typ in _FLAG_FIELDS.items():
        if not isinstance(flag[name], typ) or isinstance(flag[name], bool):
            return f"{name} is not {getattr(typ, '__name__', 'a number')}"
    if not flag["imsi"].isdigit() or not (flag["msisdn"] == "" or flag["msisdn"].isdigit()):
        return "imsi or msisdn is not digits"
    if flag["kind"] not in FLAG_KINDS:
        return f"kind {flag['kind']!r} not one of {FLAG_KINDS}"
    if not all(isinstance(r, str) for r in flag["reasons"]):
        return "reasons must be strings"
    f = flag["features"]
    if f and (set(f) != set(features) or
              not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in f.values())):
        return "features must be every feature's number, or none"
    return None


def _check_fields(kind: str, f: dict, columns: dict[str, np.ndarray]) -> None:
    def need(name: str, typ: type) -> None:
        if not isinstance(f.get(name), typ) or isinstance(f.get(name), bool):
            raise BadMessage(f"{kind} message: field {name} missing or not {typ.__name__}")

    if kind == "tick":
        need("at", int)
    if kind == "cdr":
        need("watermark", int)
        need("source", str)
        cells = f.get("cells")
        if not isinstance(cells, list) or not all(isinstance(c, str) for c in cells):
            raise BadMessage("cdr message: field cells must be a list of cell names")
        cell = columns["cell"]
        if len(cell) and (cell.min() < -1 or cell.max() >= len(cells)):
            raise BadMessage(f"cdr message: cell index outside its table of {len(cells)} cells")
        if len(columns["ts"]) and columns["ts"].max() > f["watermark"]:
            raise BadMessage("cdr message: a record is newer than the message's watermark")
        if (columns["imsi"] <= 0).any():
            raise BadMessage("cdr message: a record has no IMSI")
        # the engine indexes tables by these codes: a value out of range must not reach it
        for name, allowed in (("record_type", [int(t) for t in RecordType]),
                              ("direction", [int(d) for d in Direction]),
                              ("result", [int(r) for r in Result])):
            if not np.isin(columns[name], allowed).all():
                raise BadMessage(f"cdr message: {name} outside {allowed}")
        if len(columns["ts"]) and (columns["ts"].min() <= 0 or columns["duration"].min() < 0):
            raise BadMessage("cdr message: a record has no event time or a negative duration")
    if kind == "sum":
        from detector.features.catalog import FEATURES
        from detector.features.engine import FeatureEngine

        need("partition", int)
        need("at", int)
        chunk, chunks = f.get("chunk", 0), f.get("chunks", 1)   # absent: one message per step
        if type(chunk) is not int or type(chunks) is not int or not 0 <= chunk < chunks:
            raise BadMessage(f"sum message: chunk {chunk!r} of {chunks!r} is not one of 0..chunks-1")
        for key in ("watermark", "observed_from"):   # the partition's clock (absent: from before it)
            if key in f and (type(f[key]) is not int or f[key] < 0):
                raise BadMessage(f"sum message: field {key} must be a non-negative integer")
        cells, flags = f.get("cells"), f.get("flags")
        if not isinstance(cells, list) or not isinstance(flags, list) or f.get("step") not in ("tick", "flush"):
            raise BadMessage("sum message: needs step (tick|flush), cells and flags")
        n = len(columns["imsi"])
        if any(len(columns[k]) != n for k in ("msisdn", "at", "activity")) or \
                len(columns["values"]) != n * len(FEATURES) or len(columns["strengths"]) != n * len(FEATURES):
            raise BadMessage("sum message: column lengths do not match its number of SIMs")
        if not all(isinstance(c, str) for c in cells):
            raise BadMessage("sum message: field cells must be a list of cell names")
        if (columns["imsi"] <= 0).any():
            raise BadMessage("sum message: a SIM has no IMSI")
        # the rig stage indexes its cell table through the records' cells: each must be in
        # the message's
        if (why := FeatureEngine.portable_problem(columns["state"], n, len(cells))) is not None:
            raise BadMessage(f"sum message: {why}")
        contact = [columns[k] for k in _CONTACT]
        if len({len(c) for c in contact}) > 1:
            raise BadMessage("sum message: contact columns of different lengths")
        if (contact[0] <= 0).any() or (contact[2] <= 0).any() or (contact[1] < 0).any() or (contact[3] < 0).any():
            raise BadMessage("sum message: a contact without IMSI or peer, or with a negative number or hour")
        device = [columns[k] for k in _DEVICE]
        if len({len(c) for c in device}) > 1:
            raise BadMessage("sum message: device columns of different lengths")
        if (device[0] <= 0).any() or (device[1] <= 0).any() or (device[2] < 0).any():
            raise BadMessage("sum message: a device use without IMEI or IMSI, or with a negative hour")
        for i, flag in enumerate(flags):
            if (why := _bad_flag(flag, FEATURES)) is not None:
                raise BadMessage(f"sum message: flag {i}: {why}")
    if kind == "reg":
        need("source", str)
        if (columns["imsi"] <= 0).any():
            raise BadMessage("reg message: a registration has no IMSI")
        if (columns["id_cards"] < 1).any():
            raise BadMessage("reg message: a card count below 1")
