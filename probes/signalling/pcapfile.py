"""When a capture file begins: the time of its first packet, read from the file's own
framing (classic pcap or pcapng) without dissecting it."""

from __future__ import annotations

import struct
from pathlib import Path

# classic pcap magic (as read little-endian) -> (byte order, ticks per second)
PCAP_MAGIC = {0xA1B2C3D4: ("<", 10**6), 0xA1B23C4D: ("<", 10**9),
               0xD4C3B2A1: (">", 10**6), 0x4D3CB2A1: (">", 10**9)}
PCAPNG_SHB = 0x0A0D0D0A
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_IDB, _PB, _EPB = 1, 2, 6        # interface description, (obsolete) packet, enhanced packet
_IF_TSRESOL = 9
_LOOK_BYTES = 1 << 20            # the first packet lies within the first blocks


def first_packet_time(path: Path) -> int | None:
    """Epoch seconds of the first packet of a pcap or pcapng file; None when the file has
    no packet in its first MiB or is neither format (TShark then says what is wrong)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_LOOK_BYTES)
    except OSError:
        return None
    if len(data) < 24:
        return None
    magic = struct.unpack_from("<I", data)[0]
    if magic in PCAP_MAGIC:
        order, _ = PCAP_MAGIC[magic]
        return struct.unpack_from(order + "I", data, 24)[0] if len(data) >= 40 else None
    if magic == PCAPNG_SHB:
        return _pcapng_first(data)
    return None


def _pcapng_first(data: bytes) -> int | None:
    order = "<" if struct.unpack_from("<I", data, 8)[0] == _BYTE_ORDER_MAGIC else ">"
    resolution: list[float] = []     # seconds per tick of each interface, by interface id
    pos = 0
    while pos + 12 <= len(data):
        kind, length = struct.unpack_from(order + "II", data, pos)
        if length < 12 or pos + length > len(data):
            return None
        body = data[pos + 8:pos + length - 4]
        if kind == PCAPNG_SHB:
            resolution = []          # a new section numbers its interfaces anew
        elif kind == _IDB:
            resolution.append(_tsresol(body[8:], order))
        elif kind in (_EPB, _PB) and len(body) >= 12:
            if kind == _EPB:
                iface, high, low = struct.unpack_from(order + "III", body)
            else:
                iface, _, high, low = struct.unpack_from(order + "HHII", body)
            if iface >= len(resolution):
                return None
            return int(((high << 32) | low) * resolution[iface])
        pos += length
    return None


def _tsresol(options: bytes, order: str) -> float:
    """An interface's seconds per timestamp tick (``if_tsresol``; microseconds by default)."""
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, pos)
        if code == 0:
            break
        if code == _IF_TSRESOL and length >= 1:
            v = options[pos + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        pos += 4 + (length + 3) // 4 * 4
    return 1e-6
