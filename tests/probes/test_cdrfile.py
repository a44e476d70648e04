"""A CDR file in any of the forms mediation writes, told by content and read alike."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest
import zstandard

from detector import batch
from detector.cli import main
from detector.records import CdrBatch
from detector.testing import Row, write_cdr
from probes.cdr_ber import samples, schema
from probes.cdrfile import canonical_rows, cdr_format, first_event_time, read_cdr_file
from tests.inputs import CAPTURES

COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
            ".zst": zstandard.ZstdCompressor().compress}
COLUMNS = ("ts", "record_type", "direction", "duration", "imsi", "msisdn", "imei", "peer",
           "cell", "result", "line")


def assert_same(a: CdrBatch, b: CdrBatch) -> None:
    for name in COLUMNS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.cells == b.cells


def rows() -> list[Row]:
    return [Row(start_time=f"2026-10-05T08:{m:02d}:00Z", imsi=f"00101000000000{m % 10}")
            for m in range(40)] + [Row(imsi="4600")]


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_a_compressed_csv_reads_as_its_plain_copy(tmp_path, suffix):
    plain = write_cdr(tmp_path / "cdr.csv", rows())
    packed = tmp_path / f"cdr{suffix}"
    packed.write_bytes(COMPRESS[suffix](plain.read_bytes()))
    assert cdr_format(packed) == "csv"
    a, b = (list(read_cdr_file(f, block_bytes=256)) for f in (plain, packed))   # several blocks
    assert len(a) == len(b) > 1
    assert [r.reason for p in a for r in p.rejected] == [r.reason for p in b for r in p.rejected]
    assert_same(CdrBatch.concat([p.batch for p in a]), CdrBatch.concat([p.batch for p in b]))
    assert sum(len(p.batch) for p in a) == 40
    assert first_event_time(packed) == first_event_time(plain)


def test_score_reads_a_compressed_world_as_its_plain_copy(tmp_path, small_world):
    """What ``score`` and ``train`` detect on comes from ``load_files``: the same records
    from a world's CDRs compressed as from the plain file."""
    plain = batch.load_files([small_world / "cdr.csv"], [small_world / "subscribers.csv"])
    packed = tmp_path / "cdr.csv.zst"
    packed.write_bytes(COMPRESS[".zst"]((small_world / "cdr.csv").read_bytes()))
    loaded = batch.load_files([packed], [small_world / "subscribers.csv"])
    assert_same(plain.cdr, loaded.cdr)


def test_a_cut_gzip_file_keeps_the_rows_before_the_damage(tmp_path):
    plain = write_cdr(tmp_path / "cdr.csv", rows()[:40])
    cut = tmp_path / "cut.gz"
    whole = gzip.compress(plain.read_bytes() * 200)       # 8,000 rows
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    parsed = list(read_cdr_file(cut, block_bytes=4096))
    kept = sum(len(p.batch) for p in parsed)
    damage = [r for p in parsed for r in p.rejected if "compressed stream damaged" in r.reason]
    assert 0 < kept < 8000 and len(damage) == 1
    assert "the rows before it are used" in damage[0].reason and damage[0].source == "cut.gz"


def ber_file(path: Path, header: bool = True) -> Path:
    records = [schema.encode(samples.mo_call(start=samples.START + 60 * i)) for i in range(3)]
    records.append(schema.encode(samples.mt_sms()))
    path.write_bytes(samples.cdr_file(records) if header else b"".join(records))
    return path


@pytest.mark.parametrize("header", [True, False])
def test_ber_files_are_told_from_csv_by_content(tmp_path, header):
    f = ber_file(tmp_path / "hour.dat", header)
    packed = tmp_path / "hour.dat.bz2"
    packed.write_bytes(bz2.compress(f.read_bytes()))
    assert cdr_format(f) == cdr_format(packed) == "ber"
    [a], [b] = list(read_cdr_file(f)), list(read_cdr_file(packed))
    assert len(a.batch) == 4 and not a.rejected
    assert_same(a.batch, b.batch)
    assert first_event_time(f) == samples.START


def test_score_reads_ber_csv_and_compressed_files_together(tmp_path, capsys):
    csv = write_cdr(tmp_path / "cdr.csv", rows()[:5])
    ber = ber_file(tmp_path / "cdr.ber")
    zst = tmp_path / "more.zst"
    zst.write_bytes(COMPRESS[".zst"](csv.read_bytes()))
    loaded = batch.load_files([csv, ber, zst])
    assert len(loaded.cdr) == 5 + 4 + 5 and not loaded.rejected


def test_inspect_prints_a_cdr_files_canonical_rows(tmp_path, capsys):
    f = ber_file(tmp_path / "hour.dat")
    assert main(["inspect", str(f)]) == 0
    out, err = capsys.readouterr()
    first = out.splitlines()[0]
    assert '"record_type": "voice", "direction": "MO"' in first and f'"imsi": "{samples.IMSI}"' in first
    assert "ber CDRs: 4 records, 0 refused" in err
    csv = write_cdr(tmp_path / "cdr.csv", rows())
    assert main(["inspect", str(csv)]) == 1            # a refused row is said
    out, err = capsys.readouterr()
    assert '"imsi": "001010000000000"' in out and '"rejected": "imsi: \'4600\' must be 15 digits"' in out
    assert "csv CDRs: 40 records, 1 refused" in err


@pytest.mark.captures
@pytest.mark.tshark
def test_a_capture_of_gtp_prime_reads_as_a_cdr_file():
    rows = list(canonical_rows(CAPTURES / "ndpi_gtp_prime.pcapng"))
    assert rows == list(canonical_rows(CAPTURES / "ndpi_gtp_prime_epdgrecord.ber"))
    assert rows[0]["imsi"] == "310012000000000" and rows[0]["msisdn"] == ""
