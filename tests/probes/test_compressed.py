"""Compressed feed files read as the stream of their plain bytes, told by content."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.compressed import CompressionError, compression_of, open_stream

CODECS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


def read_all(path, size: int = 7) -> bytes:
    """Read in small pieces, as a parser reading blocks does."""
    out = bytearray()
    with open_stream(path) as fh:
        while chunk := fh.read(size):
            out += chunk
    return bytes(out)


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=3000), codec=st.sampled_from(sorted(CODECS)))
def test_any_bytes_compressed_read_back_the_same(tmp_path_factory, data, codec):
    path = tmp_path_factory.mktemp("c") / "feed.csv"       # the name says nothing
    path.write_bytes(CODECS[codec](data))
    assert compression_of(path) == codec
    assert read_all(path) == data


def test_a_plain_file_is_read_as_it_is(tmp_path):
    path = tmp_path / "feed.csv.gz"                        # nor does a misleading one
    path.write_bytes(b"record_type,direction\nvoice,MO\n")
    assert compression_of(path) is None
    assert read_all(path) == b"record_type,direction\nvoice,MO\n"


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_concatenated_members_read_as_one_stream(tmp_path, codec):
    path = tmp_path / "feed"
    path.write_bytes(CODECS[codec](b"a,b\n1,2\n") + CODECS[codec](b"3,4\n"))
    assert read_all(path) == b"a,b\n1,2\n3,4\n"


def test_an_archive_of_several_files_is_refused_by_name(tmp_path):
    path = tmp_path / "hour.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("cdr.csv", "a,b\n")
    with pytest.raises(CompressionError, match=r"hour.zip: zip archives are not read.*gzip, bzip2, xz, zstd"):
        open_stream(path)
