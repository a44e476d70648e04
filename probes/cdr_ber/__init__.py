"""3GPP charging records (ASN.1 BER, TS 32.298) as carriers' mediation writes them.

Reads files of concatenated BER records, with or without the TS 32.297 CDR file header,
and the records inside GTP' Data Record Transfer Requests in a capture; decodes them with
pycrate's compiled 32.298 modules and maps MO/MT call, MO/MT SMS and SGW/PGW/ePDG records
onto the canonical CDR (docs/feeds-ber.md has the table, field by field).

Entry points (the rest of the package is their machinery):

- :func:`read_ber_file` ``(path) -> Iterator[Parsed[CdrBatch]]``: shaped like
  :func:`probes.csvparse.read_feed_file` for the file probe and ``goipwatch score``.
  Raises :class:`probes.csvparse.FeedError` for an empty file.
- :func:`decode_records` ``(data, source) -> Decoded(records, rejected, header)``: pure,
  bytes in; :func:`to_batch` turns its records into a :class:`CdrBatch`.
- :func:`canonical_rows` ``(path, include_rejected=False) -> Iterator[dict]``: the
  canonical CSV fields of each record in file order, for ``goipwatch inspect FILE``.
- :func:`looks_like_ber_cdr` ``(head) -> bool``: sniffs a file's first octets (1 KiB is
  plenty) without loading the ASN.1 modules.
- :func:`read_gtp_prime_capture` ``(path, port=3386) -> Iterator[Parsed[CdrBatch]]`` and
  :func:`iter_capture`: the CDRs in a capture's GTP' traffic (needs TShark).

Where a record was found: for files, :class:`Rejected` ``line`` and :class:`CdrBatch`
``line`` hold the **byte offset** (0-based) of the record's first octet (of the bad bytes'
first octet for what is not a record), not a line number; for captures, the frame number.
A record that does not decode or map is rejected with that offset, its reason and a hex
excerpt, and the rest of the file is used.

Importing this package is cheap; the first decode loads pycrate's CDR module (seconds).
"""

from .framing import FileHeader
from .mapping import BerCdr
from .reader import (
    Decoded, canonical_rows, decode_records, iter_capture, iter_decoded, looks_like_ber_cdr,
    read_ber_file, read_gtp_prime_capture, to_batch,
)

__all__ = [
    "BerCdr", "Decoded", "FileHeader", "canonical_rows", "decode_records", "iter_capture",
    "iter_decoded", "looks_like_ber_cdr", "read_ber_file", "read_gtp_prime_capture", "to_batch",
]
