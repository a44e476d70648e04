"""Files and captures of BER CDRs in, canonical records and rejects out."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from detector.records import CdrBatch, Rejected
from probes.compressed import DECOMPRESSION_ERRORS, CompressionError, open_stream
from probes.csvparse import FeedError, Parsed

from . import framing, gtp_prime, schema
from .framing import Chunk, FileHeader
from .mapping import BerCdr, Unusable, canonical

BATCH_RECORDS = 50_000
_EXCERPT = 32               # octets of a rejected record kept (as hex) in ``raw``


class Decoded(NamedTuple):
    records: list[BerCdr]
    rejected: list[Rejected]
    header: FileHeader | None = None    # the TS 32.297 file header, when the file has one


def excerpt(data: bytes) -> str:
    """A short hex excerpt of rejected bytes, with their full length when cut."""
    if len(data) <= _EXCERPT:
        return data.hex()
    return f"{data[:_EXCERPT].hex()}… ({len(data)} octets)"


def decode_chunk(chunk: Chunk, source: str, position: int | None = None) -> BerCdr | Rejected:
    """The canonical CDR of one framed chunk, or why it is rejected. ``position`` (default:
    the chunk's byte offset) is what the result carries as its place in the source."""
    at = chunk.offset if position is None else position
    if chunk.problem is not None:
        return Rejected(source, at, chunk.problem, excerpt(chunk.data))
    name = schema.MAPPED.get(chunk.tag)
    if name is None:
        known = schema.record_name(chunk.tag)
        why = (f"record type {known} [{chunk.tag}] is not one this reader maps "
               f"({', '.join(schema.MAPPED.values())})" if known else
               f"unknown record type [{chunk.tag}]: no TS 32.298 CS or packet record has this tag")
        return Rejected(source, at, why, excerpt(chunk.data))
    try:
        alt, value = schema.decode(chunk.tag, chunk.data)
        return canonical(alt, value, at)
    except schema.DecodeError as exc:
        return Rejected(source, at, f"does not decode as a TS 32.298 {name}: {exc}",
                        excerpt(chunk.data))
    except Unusable as exc:
        return Rejected(source, at, f"{name}: {exc}", excerpt(chunk.data))


def iter_decoded(data: bytes, source: str) -> Iterator[BerCdr | Rejected]:
    """Every record of ``data`` (a CDR file's bytes) in order: a :class:`BerCdr` or a
    :class:`Rejected` whose ``line`` is the byte offset."""
    for chunk in framing.chunks(data, schema.decodes):
        yield decode_chunk(chunk, source)


def decode_records(data: bytes, source: str) -> Decoded:
    """Pure: the canonical CDRs of a CDR file's bytes and the rejected records."""
    records, rejected = [], []
    for item in iter_decoded(data, source):
        (records if isinstance(item, BerCdr) else rejected).append(item)
    return Decoded(records, rejected, framing.file_header(data))


def to_batch(records: Sequence[BerCdr], source: str) -> CdrBatch:
    """Records as a :class:`CdrBatch`, typed as :func:`probes.csvparse.parse_cdr_block`
    makes them (int64 identifiers, 0 when absent; a batch-local cell table). ``line`` is
    each record's byte offset (its frame number for a capture)."""
    if not records:
        return CdrBatch.empty()
    names: dict[str, int] = {}
    cell = [names.setdefault(r.cell_id, len(names)) if r.cell_id else -1 for r in records]

    def ints(field: str) -> np.ndarray:
        return np.array([int(getattr(r, field) or 0) for r in records], np.int64)

    return CdrBatch(
        ts=np.array([r.start_time for r in records], np.int64),
        record_type=np.array([r.record_type for r in records], np.int8),
        direction=np.array([r.direction for r in records], np.int8),
        duration=np.array([r.duration_s for r in records], np.int32),
        imsi=ints("imsi"), msisdn=ints("msisdn"), imei=ints("imei"), peer=ints("peer"),
        cell=np.array(cell, np.int32), result=np.array([r.result for r in records], np.int8),
        line=np.array([r.offset for r in records], np.int64), cells=tuple(names), source=source,
    )


def _batches(items: Iterable[BerCdr | Rejected], source: str, batch_records: int
             ) -> Iterator[Parsed[CdrBatch]]:
    records: list[BerCdr] = []
    rejected: list[Rejected] = []
    for item in items:
        if isinstance(item, BerCdr):
            records.append(item)
            if len(records) >= batch_records:
                yield Parsed(to_batch(records, source), tuple(rejected))
                records, rejected = [], []
        else:
            rejected.append(item)
    if records or rejected:
        yield Parsed(to_batch(records, source), tuple(rejected))


def read_plain(path: Path) -> tuple[bytes, str | None]:
    """A file's bytes, decompressed when its content is compressed (:mod:`probes.compressed`),
    and why a compressed stream broke off (None when it did not): the bytes before the damage
    are still read."""
    out = bytearray()
    try:
        with open_stream(path) as fh:
            while chunk := fh.read(1 << 20):
                out += chunk
    except CompressionError as e:
        raise FeedError(str(e)) from e
    except DECOMPRESSION_ERRORS as e:
        return bytes(out), f"compressed stream damaged: {e or type(e).__name__}"
    return bytes(out), None


def read_ber_file(path: Path, batch_records: int = BATCH_RECORDS) -> Iterator[Parsed[CdrBatch]]:
    """A BER CDR file (TS 32.297 header or none; compressed or not) as :class:`Parsed` batches
    of at most ``batch_records`` records, each with the records rejected since the previous
    batch. A compressed file that breaks off gives the records before the damage and the
    damage as a rejection at the offset where it begins.

    Shaped like :func:`probes.csvparse.read_feed_file`; raises :class:`FeedError` for an
    empty file. (No background prefetch: decoding is pure Python and holds the GIL.)"""
    path = Path(path)
    data, damage = read_plain(path)
    if not data and damage is None:
        raise FeedError(f"{path.name}: empty file")
    items: Iterable[BerCdr | Rejected] = iter_decoded(data, path.name)
    if damage is not None:
        items = itertools.chain(items, [Rejected(path.name, len(data), damage)])
    produced = False
    for parsed in _batches(items, path.name, batch_records):
        produced = True
        yield parsed
    if not produced:   # a file header and no records, or filler only
        yield Parsed(CdrBatch.empty(), ())


def iter_capture(path: Path, port: int = gtp_prime.DEFAULT_PORT,
                 tshark_exe: str = "tshark") -> Iterator[BerCdr | Rejected]:
    """The CDRs of the GTP' Data Record Transfer Requests in a capture, in frame order.
    A record's ``offset`` and a rejection's ``line`` are its frame number; a rejection's
    reason also gives the record's offset in the UDP payload."""
    source = Path(path).name
    for frame, payload in gtp_prime.capture_payloads(Path(path), port, tshark_exe):
        for chunk in gtp_prime.transfer_records(payload):
            item = decode_chunk(chunk, source, frame)
            if isinstance(item, Rejected):
                item = Rejected(source, frame, f"GTP' payload offset {chunk.offset}: {item.reason}",
                                item.raw)
            yield item


def read_gtp_prime_capture(path: Path, port: int = gtp_prime.DEFAULT_PORT,
                           batch_records: int = BATCH_RECORDS) -> Iterator[Parsed[CdrBatch]]:
    """The CDRs carried by GTP' in a capture, as :func:`read_ber_file` gives a file's."""
    yield from _batches(iter_capture(path, port), Path(path).name, batch_records)


def canonical_rows(path: Path, include_rejected: bool = False) -> Iterator[dict]:
    """A BER CDR file's records as dicts of the canonical CSV fields, in file order (for
    ``goipwatch inspect``). With ``include_rejected``, each rejected record appears in its
    place as ``{"rejected": reason, "source", "offset", "raw"}``."""
    path = Path(path)
    for item in iter_decoded(read_plain(path)[0], path.name):
        if isinstance(item, BerCdr):
            yield item.canonical()
        elif include_rejected:
            yield {"rejected": item.reason, "source": item.source, "offset": item.line,
                   "raw": item.raw}


def looks_like_ber_cdr(head: bytes) -> bool:
    """Whether a file that starts with ``head`` (its first few hundred octets) is a BER CDR
    file: a TS 32.297 file header, or a record of a known type (a context-specific
    constructed tag whose first field is recordType [0]). Cheap: loads no ASN.1 module."""
    if framing.file_header(head) is not None:
        return True
    if len(head) < 4 or head[0] & 0xE0 != 0xA0:
        return False
    try:
        framing.tlv_extent(head, 0, len(head))
    except framing.NotARecord as exc:
        if not str(exc).startswith("record cut short"):
            return False
    return _first_field_is_record_type(head)


def _first_field_is_record_type(head: bytes) -> bool:
    """After the outer tag and length, a primitive [0] INTEGER (recordType) comes first."""
    try:
        _, _, _, outer, _ = framing.tag_and_length(head[:12])
        cl, pc, tag, _, length = framing.tag_and_length(head[outer:outer + 12])
    except framing.NotARecord:
        return False
    return (cl, pc, tag) == (2, 0, 0) and 1 <= length <= 2
