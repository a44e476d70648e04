"""A CDR file in whichever form mediation wrote it, told by its content: CSV in the probe's
layout (:mod:`probes.csvparse`), BER charging records of TS 32.298 with or without the TS 32.297
file header (:mod:`probes.cdr_ber`), or a capture of the GTP' traffic that carries them; each
plain or compressed (:mod:`probes.compressed`). One entry point for the daemon's CDR probes and
for ``goipwatch score`` and ``train``, so that a feed reads the same wherever it is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from detector.records import CdrBatch
import contextlib
import itertools

from probes.cdr_ber import BerCdr, iter_decoded, looks_like_ber_cdr, read_ber_file, read_gtp_prime_capture
from probes.compressed import DECOMPRESSION_ERRORS, CompressionError, open_stream
from probes.csvparse import CANONICAL, FeedError, Layout, Parsed, read_feed_file
from probes.signalling.pcapfile import first_packet_time
from probes.sniff import LOOK_BYTES, kind_of

FORMATS = ("csv", "ber", "gtp_prime")


def cdr_format(path: Path) -> str:
    """``csv``, ``ber`` or ``gtp_prime`` (a pcap/pcapng capture), from the file's first bytes
    once decompressed."""
    try:
        with open_stream(path) as fh:
            head = fh.read(LOOK_BYTES)
    except CompressionError as e:
        raise FeedError(str(e)) from e
    except DECOMPRESSION_ERRORS:
        head = b""          # read as CSV, whose reader says where the stream breaks off
    if kind_of(head) in ("pcap", "pcapng"):
        return "gtp_prime"
    if looks_like_ber_cdr(head):
        return "ber"
    return "csv"


def read_cdr_file(path: Path, layout: Layout = CANONICAL, block_bytes: int = 32 << 20
                  ) -> Iterator[Parsed[CdrBatch]]:
    """The CDRs of ``path`` as :class:`Parsed` batches, whatever its format (a CSV's layout
    applies to CSV only: the BER mapping is the standard's)."""
    fmt = cdr_format(path)
    if fmt == "ber":
        return read_ber_file(path)
    if fmt == "gtp_prime":
        return read_gtp_prime_capture(path)
    return read_feed_file(path, "cdr", layout, block_bytes)


def first_event_time(path: Path, layout: Layout = CANONICAL, peek_bytes: int = 64 << 10) -> int | None:
    """When the file's records begin, from its first ``peek_bytes`` (whole CSV lines, or the
    first BER records, decoded), or its first packet for a capture; None when unknown (no
    good record there: the file is then read first, and refused if it must be)."""
    try:
        fmt = cdr_format(path)
        if fmt == "gtp_prime":
            return first_packet_time(path)
        if fmt == "ber":
            with open_stream(path) as fh:
                head = fh.read(peek_bytes)
            first = [r.start_time for r in itertools.islice(iter_decoded(head, path.name), 64)
                     if isinstance(r, BerCdr)]
            return min(first) if first else None
        with contextlib.closing(read_feed_file(path, "cdr", layout, peek_bytes)) as blocks:
            parsed = next(blocks, None)
    except Exception:   # noqa: BLE001 - whatever the file holds, the daemon's read reports it
        return None
    return int(parsed.batch.ts.min()) if parsed is not None and len(parsed.batch) else None


def canonical_rows(path: Path, layout: Layout = CANONICAL) -> Iterator[dict]:
    """Each record of a CDR file as the canonical CSV fields, and each refused record as
    ``{"rejected": reason, "source", "line", "raw"}``, in file order (``line`` is a byte offset
    in a BER file, a frame number in a capture): what ``goipwatch inspect`` prints."""
    for parsed in read_cdr_file(path, layout):
        rows = [(int(line), rec.canonical()) for line, rec in
                zip(parsed.batch.line, parsed.batch.records())]
        rows += [(r.line, {"rejected": r.reason, "source": r.source, "line": r.line, "raw": r.raw})
                 for r in parsed.rejected]
        for _, row in sorted(rows, key=lambda x: x[0]):
            yield row
