"""Where each record of a CDR file starts and ends; what lies between records and why.

A file is either BER records back to back, or a TS 32.297 CDR file: a file header, then
each record behind its own CDR header. The headers are fixed binary layouts (read with
``struct``); a BER record's extent is its outer tag and length, read with pycrate's BER
codec. Nothing here decodes a record's content: that is :mod:`probes.cdr_ber.schema`.

When the bytes at a position are not a record (garbage, a damaged header, a record cut
short), framing looks for the next position where a whole record starts that the caller's
``is_record`` accepts (the reader: one that decodes as a 32.298 record), and reports the
bytes in between as one problem chunk with its reason.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pycrate_asn1rt.codecs import ASN1CodecBER
from pycrate_core.charpy import Charpy

FILE_HEADER_MIN = 52        # TS 32.297 6.1.1 with an empty routeing filter and extension
_FILE_HEADER = struct.Struct(">IIBBIIIIB20sB")   # up to and including the lost CDR indicator
FILLER = frozenset((0x00, 0xFF))
FORMATS = {1: "BER", 2: "unaligned PER", 3: "aligned PER", 4: "XER"}
_TAG_LEN_MAX = 12           # a tag and a length of any record we can meet fit in this
# TS 32.297 and GTP' carry a record's length in two octets: no CDR is longer. Bounding it
# also bounds the work spent on a garbage octet that happens to look like a tag.
MAX_RECORD = 0xFFFF


@dataclass(frozen=True, slots=True)
class FileHeader:
    """The parts of a TS 32.297 CDR file header this reader uses or reports."""

    file_length: int
    header_length: int      # octets before the first CDR header
    cdr_count: int
    sequence: int
    closure_reason: int
    lost_cdrs: int          # the raw lost-CDR indicator (0: none lost)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A record's bytes at ``offset``, or (``problem`` set) bytes that are not a record."""

    offset: int             # of the BER record's first octet (of the problem bytes' first)
    data: bytes
    problem: str | None = None
    tag: int = -1           # the record's outer context tag


@dataclass(frozen=True, slots=True)
class _Frame:
    start: int              # the BER record's first octet
    end: int                # one past its last octet
    tag: int
    problem: str | None = None   # a record that is framed but cannot be used (e.g. PER)


class NotARecord(Exception):
    """The bytes at a position are not a record; the message says why."""


def tag_and_length(head: bytes) -> tuple[int, int, int, int, int]:
    """(tag class, constructed, tag number, octets of tag and length, length) of the BER
    TLV that ``head`` starts with; length -1 is the indefinite form."""
    char = Charpy(head)
    try:
        cl, pc, tag = ASN1CodecBER.decode_tag(char)
        length = ASN1CodecBER.decode_len(char)
    except Exception:
        raise NotARecord(f"octets {head[:4].hex()} are no BER tag and length") from None
    return cl, pc, tag, len(head) - char.len_byte(), length


def tlv_extent(data: bytes, pos: int, end: int) -> tuple[int, int, int, int]:
    """(tag class, constructed, tag number, total octets) of the BER TLV at ``pos``.

    Raises :class:`NotARecord` when the octets are no TLV header, or one whose value runs
    past ``end``."""
    cl, pc, tag, header, length = tag_and_length(data[pos:min(end, pos + _TAG_LEN_MAX)])
    if length < 0:      # indefinite length: the end is the matching end-of-contents
        if not pc:
            raise NotARecord("a primitive BER value with an indefinite length")
        char = Charpy(data[pos:min(end, pos + MAX_RECORD)])
        try:
            ASN1CodecBER.decode_single(char)
        except Exception:
            raise NotARecord(f"record cut short: an indefinite-length record at {pos} "
                              f"has no end-of-contents in the octets left") from None
        return cl, pc, tag, min(end - pos, MAX_RECORD) - char.len_byte()
    if header + length > MAX_RECORD:
        raise NotARecord(f"its BER header declares {header + length} octets, more than a "
                          f"CDR can have ({MAX_RECORD})")
    if pos + header + length > end:
        raise NotARecord(f"record cut short: its BER header declares {header + length} "
                          f"octets, {end - pos} remain")
    return cl, pc, tag, header + length


def _well_formed(data: bytes, start: int, total: int) -> bool:
    """Whether the record's content is a sequence of TLVs that fills it exactly."""
    char = Charpy(data[start:start + total])
    try:
        ASN1CodecBER.decode_single(char)
    except Exception:
        return False
    return char.len_byte() == 0


IsRecord = Callable[[int, bytes], bool]   # (outer tag, the record's octets) -> a record?


def _ber_at(data: bytes, pos: int, end: int, is_record: IsRecord | None) -> _Frame:
    """The record at ``pos`` of a headerless stream. With ``is_record``, only a well-formed
    record that it accepts counts (used to find the next record after garbage)."""
    cl, pc, tag, total = tlv_extent(data, pos, end)
    if cl != 2 or not pc:
        raise NotARecord(f"octet 0x{data[pos]:02x} is not a record tag "
                          "(a context-specific constructed tag)")
    if is_record is not None and not (_well_formed(data, pos, total)
                                      and is_record(tag, data[pos:pos + total])):
        raise NotARecord(f"no known record at {pos}")
    return _Frame(pos, pos + total, tag)


def cdr_header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(header octets, record octets, data record format) of the TS 32.297 CDR header at
    ``pos``: the record length (2 octets), release/version and format/TS number octets, and
    a release extension octet when the release identifier is 7 (Rel-10 on)."""
    if end - pos < 4:
        raise NotARecord(f"CDR header cut short: {end - pos} octets remain")
    length, relver, fmt_ts = struct.unpack_from(">HBB", data, pos)
    header = 5 if relver >> 5 == 7 else 4
    if length == 0:
        raise NotARecord("CDR header declares an empty record")
    if pos + header + length > end:
        raise NotARecord(f"record cut short: its CDR header declares {length} octets, "
                          f"{max(end - pos - header, 0)} remain")
    return header, length, fmt_ts >> 5


def _headed_at(data: bytes, pos: int, end: int, is_record: IsRecord | None) -> _Frame:
    header, length, fmt = cdr_header(data, pos, end)
    start, stop = pos + header, pos + header + length
    if fmt != 1:
        if is_record is not None:
            raise NotARecord(f"no known record at {pos}")
        name = FORMATS.get(fmt, f"unknown ({fmt})")
        return _Frame(start, stop, -1, f"data record format is {name}, not BER")
    frame = _ber_at(data, start, stop, is_record)
    if frame.end != stop:
        raise NotARecord(f"CDR header declares {length} octets, the BER record in it has "
                          f"{frame.end - start}")
    return frame


def file_header(data: bytes) -> FileHeader | None:
    """The TS 32.297 file header at the start of ``data``, or None when there is none.

    A headerless file starts with a record's context-specific constructed tag (0xA0-0xBF);
    a header starts with the file length, whose first octet is 0 below 16 MiB. A header is
    taken when its lengths are consistent and a CDR header follows it (or the file ends).
    Some writers count the header length without the two length fields: both are tried."""
    if len(data) < FILE_HEADER_MIN or data[0] & 0xE0 == 0xA0:
        return None
    (file_length, header_length, _high, _low, _opened, _appended, count, sequence, reason,
     _node, lost) = _FILE_HEADER.unpack_from(data)
    for first in (header_length, header_length + 8):
        if not FILE_HEADER_MIN <= first <= len(data) or file_length < first:
            continue
        if first < len(data):
            try:
                _headed_at(data, first, len(data), None)
            except NotARecord as exc:
                if not str(exc).startswith("record cut short"):
                    continue
        return FileHeader(file_length, first, count, sequence, reason, lost)
    return None


def chunks(data: bytes, is_record: IsRecord) -> Iterator[Chunk]:
    """The records of ``data`` in order, and the bytes between them that are not records.

    After bytes that are not a record, the next record is the first well-formed one that
    ``is_record`` accepts: a stricter test than framing alone, so that a field inside a
    damaged record is not taken for a record. Filler octets (0x00, 0xFF) between records
    are block padding and are skipped."""
    header = file_header(data)
    at = _headed_at if header else _ber_at
    pos, end = (header.header_length if header else 0), len(data)
    while pos < end:
        if data[pos] in FILLER and (header is None or _filler_run(data, pos) == end):
            pos = _filler_run(data, pos)
            continue
        try:
            frame = at(data, pos, end, None)
        except NotARecord as exc:
            nxt = _next_record(data, pos + 1, end, at, is_record)
            stop = end if nxt is None else nxt
            why = str(exc)
            if not why.startswith("record cut short") or nxt is not None:
                why = f"{stop - pos} octets that are not a record ({why})"
            yield Chunk(pos, data[pos:stop], why)
            pos = stop
            continue
        yield Chunk(frame.start, data[frame.start:frame.end], frame.problem, frame.tag)
        pos = frame.end


def _filler_run(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in FILLER:
        pos += 1
    return pos


def _next_record(data: bytes, pos: int, end: int, at, is_record: IsRecord) -> int | None:
    for q in range(pos, end):
        if at is _ber_at and data[q] & 0xE0 != 0xA0:
            continue            # cheap test first: most garbage octets are no record tag
        try:
            at(data, q, end, is_record)
        except NotARecord:
            continue
        return q
    return None
