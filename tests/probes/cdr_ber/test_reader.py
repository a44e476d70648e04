"""Files of BER records, with and without the TS 32.297 header: records kept, problems
quarantined with their byte offset and reason."""

import json

import numpy as np
import pytest

from detector.records import CdrBatch
from probes import csvparse
from probes.cdr_ber import (
    canonical_rows, decode_records, looks_like_ber_cdr, read_ber_file, samples, schema, to_batch,
)
from probes.cdr_ber.framing import file_header, tag_and_length

BUILDERS = (samples.mo_call, samples.mt_call, samples.mo_sms, samples.mt_sms, samples.sgw,
            samples.pgw, samples.epdg)


@pytest.fixture(scope="module")
def records():
    return [schema.encode(b(start=samples.START + 60 * i)) for i, b in enumerate(BUILDERS)]


def offsets_of(parts: list[bytes], start: int = 0) -> list[int]:
    out, pos = [], start
    for p in parts:
        out.append(pos)
        pos += len(p)
    return out


def test_headerless_file(records):
    data = b"".join(records)
    decoded = decode_records(data, "f.ber")
    assert decoded.header is None and decoded.rejected == []
    assert [r.offset for r in decoded.records] == offsets_of(records)
    assert [r.record for r in decoded.records] == ["moCallRecord", "mtCallRecord", "moSMSRecord",
                                                   "mtSMSRecord", "sGWRecord", "pGWRecord",
                                                   "ePDGRecord"]


@pytest.mark.parametrize("release", [9, 15])   # without / with the release extension octets
def test_file_with_the_32297_header(records, release):
    data = samples.cdr_file(records, release=release)
    decoded = decode_records(data, "f.dat")
    assert decoded.rejected == []
    assert decoded.header.cdr_count == len(records)
    assert decoded.header.header_length == (54 if release >= 10 else 52)
    cdr_header = 5 if release >= 10 else 4
    pos, expected = decoded.header.header_length, []
    for r in records:
        expected.append(pos + 2 + cdr_header - 2)   # the BER record's first octet
        pos += cdr_header + len(r)
    assert [r.offset for r in decoded.records] == expected
    assert [r.canonical() for r in decoded.records] == \
        [r.canonical() for r in decode_records(b"".join(records), "x").records]


def test_header_length_counted_without_the_two_length_fields(records):
    data = bytearray(samples.cdr_file(records[:2]))
    data[4:8] = (int.from_bytes(data[4:8], "big") - 8).to_bytes(4, "big")
    decoded = decode_records(bytes(data), "f")
    assert len(decoded.records) == 2 and decoded.rejected == []


def test_header_only_file_has_no_records():
    data = samples.cdr_file([])
    assert file_header(data) is not None
    assert decode_records(data, "f") == ([], [], file_header(data))


def test_a_record_that_does_not_decode_is_quarantined_between_good_ones(records):
    vendor = bytes.fromhex("a0038001" "00")          # moCallRecord with only its recordType
    parts = [records[0], vendor, records[1]]
    decoded = decode_records(b"".join(parts), "f.ber")
    assert [r.offset for r in decoded.records] == [0, len(records[0]) + len(vendor)]
    (rej,) = decoded.rejected
    assert rej.line == len(records[0])
    assert rej.reason.startswith("does not decode as a TS 32.298 moCallRecord: ")
    assert "missing mandatory" in rej.reason
    assert rej.raw == vendor.hex()


def test_a_corrupt_record_inside_a_32297_file(records):
    bad = bytearray(records[1])
    bad[2:4] = b"\x9f\x7f"                            # an unknown field tag where recordType was
    data = samples.cdr_file([records[0], bytes(bad), records[2]])
    decoded = decode_records(data, "f")
    assert [r.record for r in decoded.records] == ["moCallRecord", "moSMSRecord"]
    (rej,) = decoded.rejected
    assert rej.line == 54 + 5 + len(records[0]) + 5   # the bad record's own first octet
    assert "mtCallRecord" in rej.reason


def test_garbage_between_records(records):
    garbage = b"GARBAGE!" * 3
    decoded = decode_records(records[0] + garbage + records[4], "f")
    assert [r.record for r in decoded.records] == ["moCallRecord", "sGWRecord"]
    (rej,) = decoded.rejected
    assert rej.line == len(records[0])
    assert rej.reason.startswith("24 octets that are not a record (octet 0x47 is not a record tag")
    assert rej.raw == garbage.hex()


def test_garbage_between_records_of_a_32297_file(records):
    data = bytearray(samples.cdr_file(records[:3]))
    second = 54 + 5 + len(records[0])                  # the second CDR header
    data[second:second] = b"\x01\x02\x03junk"
    decoded = decode_records(bytes(data), "f")
    assert len(decoded.records) == 3
    (rej,) = decoded.rejected
    assert (rej.line, rej.raw) == (second, b"\x01\x02\x03junk".hex())
    assert rej.reason.startswith("7 octets that are not a record")


@pytest.mark.parametrize("headered", [False, True])
def test_truncated_last_record(records, headered):
    data = samples.cdr_file(records[:2]) if headered else b"".join(records[:2])
    cut = data[:-10]
    decoded = decode_records(cut, "f")
    assert [r.record for r in decoded.records] == ["moCallRecord"]
    (rej,) = decoded.rejected
    assert rej.reason.startswith("record cut short: its ")
    assert rej.line == (54 + 5 + len(records[0]) if headered else len(records[0]))


def test_unknown_and_unmapped_record_types(records):
    unknown = bytes.fromhex("be038001" "1e")          # [30]: no CS or packet record has it
    roaming = bytes.fromhex("a2038001" "02")          # roamingRecord: known, not mapped
    decoded = decode_records(records[0] + unknown + roaming + records[1], "f")
    assert len(decoded.records) == 2
    first, second = decoded.rejected
    assert first.line == len(records[0])
    assert first.reason == "unknown record type [30]: no TS 32.298 CS or packet record has this tag"
    assert second.reason.startswith("record type roamingRecord [2] is not one this reader maps")


def test_a_record_in_another_format_is_rejected_and_the_rest_read(records):
    data = bytearray(samples.cdr_file(records[:2]))
    data[54 + 3] = 2 << 5 | 7                          # first CDR: unaligned PER
    decoded = decode_records(bytes(data), "f")
    assert [r.record for r in decoded.records] == ["mtCallRecord"]
    assert decoded.rejected[0].reason == "data record format is unaligned PER, not BER"


def test_filler_between_and_after_records_is_skipped(records):
    data = records[0] + b"\x00" * 7 + records[1] + b"\xff" * 100
    decoded = decode_records(data, "f")
    assert len(decoded.records) == 2 and decoded.rejected == []


def test_indefinite_length_record(records):
    name, value = samples.mo_call()
    definite = schema.encode((name, value))
    # the same record with an indefinite outer length: A0 80 ... 00 00
    _, _, _, head, _ = tag_and_length(definite)
    indefinite = b"\xa0\x80" + definite[head:] + b"\x00\x00"
    decoded = decode_records(indefinite + records[1], "f")
    assert [r.record for r in decoded.records] == ["moCallRecord", "mtCallRecord"]
    assert decoded.records[1].offset == len(indefinite)


def test_read_ber_file_yields_batches_with_byte_offsets(tmp_path, records):
    path = tmp_path / "cdr.ber"
    path.write_bytes(records[0] + b"GARBAGE!" + b"".join(records[1:]))
    parsed = list(read_ber_file(path, batch_records=3))
    assert [len(p.batch) for p in parsed] == [3, 3, 1]
    assert [len(p.rejected) for p in parsed] == [1, 0, 0]
    assert parsed[0].rejected[0].line == len(records[0])
    batch = CdrBatch.concat([p.batch for p in parsed])
    assert batch.source == "cdr.ber"
    assert list(batch.line) == [0] + [len(records[0]) + 8 + o for o in offsets_of(records[1:])]


def test_read_ber_file_refuses_an_empty_file(tmp_path):
    path = tmp_path / "empty.ber"
    path.write_bytes(b"")
    with pytest.raises(csvparse.FeedError, match="empty.ber: empty file"):
        list(read_ber_file(path))


def test_header_only_file_gives_one_empty_batch(tmp_path):
    path = tmp_path / "h.dat"
    path.write_bytes(samples.cdr_file([]))
    (parsed,) = read_ber_file(path)
    assert len(parsed.batch) == 0 and parsed.rejected == ()


def test_batch_is_typed_as_the_csv_parser_makes_it(records):
    """The same records as canonical CSV through probes.csvparse give the same columns."""
    decoded = decode_records(b"".join(records), "f")
    batch = to_batch(decoded.records, "f")
    rows = [r.canonical() for r in decoded.records]
    csv = "\n".join(",".join(str(r[f]) for f in csvparse.CDR_FIELDS) for r in rows) + "\n"
    # CSV demands a peer for voice/SMS and an MSISDN: these records have both
    ref = csvparse.parse_cdr_block(csv.encode(), list(csvparse.CDR_FIELDS), 1, "f")
    assert ref.rejected == ()
    for col in ("ts", "record_type", "direction", "duration", "imsi", "msisdn", "imei", "peer",
                "result"):
        got, want = getattr(batch, col), getattr(ref.batch, col)
        assert got.dtype == want.dtype, col
        assert np.array_equal(got, want), col
    assert [batch.cells[c] for c in batch.cell] == [ref.batch.cells[c] for c in ref.batch.cell]
    assert batch.imsi.dtype == np.int64 and batch.imsi[0] == int(samples.IMSI)


def test_absent_identities_are_zero_in_the_batch():
    name, v = samples.mt_call()
    for f in ("servedMSISDN", "servedIMEI", "callingNumber", "location"):
        del v[f]
    batch = to_batch(decode_records(schema.encode((name, v)), "f").records, "f")
    assert (batch.msisdn[0], batch.imei[0], batch.peer[0], batch.cell[0]) == (0, 0, 0, -1)
    assert batch.cells == ()


def test_canonical_rows(tmp_path, records):
    path = tmp_path / "cdr.ber"
    path.write_bytes(records[0] + b"XY" + records[4])
    rows = list(canonical_rows(path))
    assert [list(r) for r in rows] == [list(csvparse.CDR_FIELDS)] * 2
    assert rows[0]["record_type"] == "voice" and rows[1]["record_type"] == "data"
    with_rejects = list(canonical_rows(path, include_rejected=True))
    assert with_rejects[1] == {"rejected": with_rejects[1]["rejected"], "source": "cdr.ber",
                               "offset": len(records[0]), "raw": "5859"}
    json.dumps(with_rejects)     # printable as JSON lines


@pytest.mark.parametrize("head, expected", [
    (None, True),                                          # a headerless BER file
    ("header", True),                                      # a TS 32.297 file
    (b"record_type,direction,start_time\n", False),        # canonical CSV
    (b"\xa0\x03\x02\x01\x00", False),                      # BER, but no recordType first
    (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", False),          # a pcap
    (b"", False),
])
def test_looks_like_ber_cdr(records, head, expected):
    if head is None:
        head = b"".join(records)[:512]
    elif head == "header":
        head = samples.cdr_file(records)[:512]
    assert looks_like_ber_cdr(head) is expected
