"""What a file holds, told from its first bytes: capture, compressed stream, text or other.

Feeds are named by whoever writes them (mediation, capture hosts, an operator's copy), so a
file's name says little; its first bytes say what it is. A pure function on those bytes, used
wherever a file is taken in to give a clear error before a parser meets the wrong format.
"""

from __future__ import annotations

from pathlib import Path

from probes.signalling.pcapfile import PCAP_MAGIC, PCAPNG_SHB

LOOK_BYTES = 512     # enough for every magic and for telling text from binary

# magic bytes of the compressions carriers' mediation uses
COMPRESSIONS = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2",
                b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip"}


def kind_of(head: bytes) -> str:
    """``empty``, ``pcap``, ``pcapng``, a compression's name (``gzip``, ``zstd``, ``bzip2``,
    ``xz``, ``zip``), ``text`` (UTF-8 without NUL, e.g. CSV) or ``binary``."""
    if not head:
        return "empty"
    if len(head) >= 4:
        magic = int.from_bytes(head[:4], "little")
        if magic in PCAP_MAGIC:
            return "pcap"
        if magic == PCAPNG_SHB:
            return "pcapng"
    for prefix, name in COMPRESSIONS.items():
        if head.startswith(prefix):
            return name
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text"
        except UnicodeDecodeError as e:
            if e.start >= len(head) - 3:   # a character cut by the end of the look
                return "text"
    return "binary"


def kind_of_file(path: Path) -> str:
    """:func:`kind_of` on the first bytes of ``path`` (raises OSError as ``open`` does)."""
    with open(path, "rb") as fh:
        return kind_of(fh.read(LOOK_BYTES))
