"""Feed files as mediation writes them, compressed or not: one binary stream of their bytes.

The compression is told by the file's first bytes (:mod:`probes.sniff`), never by its name:
mediation systems name files by their own conventions (``.Z``, ``.gz.tmp`` renamed, none).
gzip, bzip2 and xz come with Python; zstd through the ``zstandard`` package. Each is read as
a stream, so a file of any size is parsed block by block without being unpacked to disk or
memory first. A concatenation of gzip members (what ``cat a.gz b.gz`` and some mediation
systems write) reads as one stream, as ``zcat`` reads it.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path
from typing import BinaryIO

from probes.sniff import LOOK_BYTES, kind_of

SUPPORTED = ("gzip", "bzip2", "xz", "zstd")


class CompressionError(ValueError):
    """A file whose compression cannot be read; names the file and the compression."""


def compression_of(path: Path) -> str | None:
    """The compression of ``path`` told by its content, or None for a plain file."""
    with open(path, "rb") as fh:
        kind = kind_of(fh.read(LOOK_BYTES))
    return kind if kind in SUPPORTED or kind == "zip" else None


def open_stream(path: Path) -> BinaryIO:
    """``path``'s bytes, decompressed when the content is compressed. Raises
    :class:`CompressionError` for an archive format that holds several files (zip)."""
    kind = compression_of(path)
    if kind is None:
        return open(path, "rb")
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    if kind == "zstd":
        import zstandard   # loaded only where a zstd file is met

        fh = open(path, "rb")
        return zstandard.ZstdDecompressor().stream_reader(fh, closefd=True, read_across_frames=True)
    raise CompressionError(f"{path.name}: {kind} archives are not read (they can hold several "
                           f"files); supported compressions: {', '.join(SUPPORTED)}")
