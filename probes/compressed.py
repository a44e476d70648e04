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
import io
import lzma
import zlib
from pathlib import Path
from typing import BinaryIO

from probes.sniff import LOOK_BYTES, kind_of

SUPPORTED = ("gzip", "bzip2", "xz", "zstd")
# what a stream's read raises where the compressed bytes are cut short or corrupt (gzip's
# BadGzipFile and bz2's are OSErrors; a zstd stream's errors are turned into OSError below)
DECOMPRESSION_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, lzma.LZMAError,
                                                         zlib.error)


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

        return io.BufferedReader(_Zstd(open(path, "rb"), zstandard), 1 << 16)
    raise CompressionError(f"{path.name}: {kind} archives are not read (they can hold several "
                           f"files); supported compressions: {', '.join(SUPPORTED)}")


class _Zstd(io.RawIOBase):
    """A zstd file as a stream of its plain bytes, frame after frame. zstandard's own stream
    reader ends quietly where a file is cut short; here a frame that does not end, or bytes
    that do not decode, read as an OSError, as a damaged gzip or bzip2 file does."""

    def __init__(self, fh: BinaryIO, zstandard) -> None:
        self._fh, self._zstd = fh, zstandard
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._fed = False            # bytes of the current frame were given to it
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._out:
            if self._frame.eof:      # the next frame starts with what the last one left
                rest = self._frame.unused_data
                self._frame = self._zstd.ZstdDecompressor().decompressobj()
                self._fed = False
                if rest:
                    self._feed(rest)
                    continue
            chunk = self._fh.read(1 << 16)
            if not chunk:
                if self._fed and not self._frame.eof:
                    raise OSError("zstd: the file ends inside a frame (cut short)")
                return 0
            self._feed(chunk)
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _feed(self, data: bytes) -> None:
        self._fed = True
        try:
            self._out += self._frame.decompress(data)
        except self._zstd.ZstdError as e:
            raise OSError(f"zstd: {e}") from e

    def close(self) -> None:
        self._fh.close()
        super().close()
