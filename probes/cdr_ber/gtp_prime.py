"""CDRs carried by GTP' (TS 32.295) from a charging node to a charging gateway.

A Data Record Transfer Request with the command "send" (or "send possibly duplicated")
carries a Data Record Packet IE: a count, the data record format (1 = BER) and its version,
then each record behind a 2-octet length. :func:`transfer_records` reads that layout (fixed
binary, with ``struct``) out of a UDP payload; the records are decoded like those of a file.
:func:`capture_payloads` gets the payloads of a capture from TShark, whose ``gtpprime``
dissector recognises GTP' on its port (3386 unless told otherwise).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from probes.signalling import tshark

from .framing import FORMATS, Chunk, NotARecord, tlv_extent

DATA_RECORD_TRANSFER_REQUEST = 240
SEND_COMMANDS = {1: "send", 2: "send possibly duplicated"}
IE_PACKET_TRANSFER_COMMAND = 126
IE_DATA_RECORD_PACKET = 252
_TV_LENGTHS = {1: 1, 14: 1, IE_PACKET_TRANSFER_COMMAND: 1}  # Cause, Recovery, command
DEFAULT_PORT = 3386


def _header_length(payload: bytes) -> int | None:
    """6 octets (GTP' v1/v2, and v0 with the short-header bit) or 20 (v0's long header);
    the message length field says which fits."""
    if len(payload) < 6:
        return None
    length = struct.unpack_from(">H", payload, 2)[0]
    for size in (6, 20):
        if size + length == len(payload):
            return size
    return None


def transfer_records(payload: bytes) -> list[Chunk]:
    """The records of one GTP' message: :class:`Chunk` s whose offset is the record's
    position in ``payload``; a problem chunk for what cannot be read. A message that is not
    a sending Data Record Transfer Request has no records: ``[]``."""
    size = _header_length(payload)
    if size is None:
        return [Chunk(0, payload[:32], "not a GTP' message (its length field does not fit)")]
    if payload[1] != DATA_RECORD_TRANSFER_REQUEST:
        return []
    pos, command = size, None
    while pos < len(payload):
        ie = payload[pos]
        if ie < 128:
            n = _TV_LENGTHS.get(ie)
            if n is None or pos + 1 + n > len(payload):
                return [Chunk(pos, payload[pos:pos + 32], f"unknown GTP' TV information element {ie}")]
            if ie == IE_PACKET_TRANSFER_COMMAND:
                command = payload[pos + 1]
            pos += 1 + n
            continue
        if pos + 3 > len(payload):
            return [Chunk(pos, payload[pos:], "GTP' information element cut short")]
        length = struct.unpack_from(">H", payload, pos + 1)[0]
        if pos + 3 + length > len(payload):
            return [Chunk(pos, payload[pos:], f"GTP' information element {ie} declares "
                                              f"{length} octets, {len(payload) - pos - 3} remain")]
        if ie == IE_DATA_RECORD_PACKET:
            if command not in SEND_COMMANDS:
                return []
            return _packet_records(payload, pos + 3, pos + 3 + length)
        pos += 3 + length
    return []


def _packet_records(payload: bytes, pos: int, end: int) -> list[Chunk]:
    if end - pos < 4:
        return [Chunk(pos, payload[pos:end], "Data Record Packet cut short")]
    count, fmt = payload[pos], payload[pos + 1]
    if fmt != 1:
        name = FORMATS.get(fmt, f"unknown ({fmt})")
        return [Chunk(pos, payload[pos:end], f"data record format is {name}, not BER")]
    out, pos = [], pos + 4
    for i in range(count):
        if pos + 2 > end:
            out.append(Chunk(pos, payload[pos:end],
                             f"record {i + 1} of {count}: Data Record Packet cut short"))
            break
        length = struct.unpack_from(">H", payload, pos)[0]
        start, stop = pos + 2, pos + 2 + length
        if stop > end:
            out.append(Chunk(pos, payload[pos:end], f"record {i + 1} of {count}: declares "
                                                   f"{length} octets, {end - start} remain"))
            break
        out.append(_record(payload, start, stop, i, count))
        pos = stop
    return out


def _record(payload: bytes, start: int, stop: int, i: int, count: int) -> Chunk:
    data = payload[start:stop]
    try:
        cl, pc, tag, total = tlv_extent(payload, start, stop)
    except NotARecord as exc:
        return Chunk(start, data, f"record {i + 1} of {count}: {exc}")
    if cl != 2 or not pc or total != len(data):
        return Chunk(start, data, f"record {i + 1} of {count}: not one BER record "
                                  f"of {len(data)} octets")
    return Chunk(start, data, None, tag)


def capture_payloads(path: Path, port: int = DEFAULT_PORT,
                     tshark_exe: str = "tshark") -> Iterator[tuple[int, bytes]]:
    """(frame number, UDP payload) of each GTP' Data Record Transfer Request in a capture.
    Raises :class:`probes.signalling.tshark.CaptureError` for a capture TShark cannot read."""
    prefs = () if port == DEFAULT_PORT else (f"gtp.v0_port:{port}",)
    rows = tshark.dissect(path, ("frame.number", "udp.payload"),
                          f"gtpprime && gtp.message == {DATA_RECORD_TRANSFER_REQUEST}",
                          prefs, tshark_exe)
    for row in rows:
        frame, payload = row.first("frame.number"), row.first("udp.payload")
        if frame and payload:
            yield int(frame), bytes.fromhex(payload.replace(":", ""))
