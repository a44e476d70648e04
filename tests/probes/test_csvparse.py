from pathlib import Path

import numpy as np
import pytest

from detector.records import Direction, RecordType, Result
from detector.testing import Row, imei, write_cdr, write_registrations
from probes.csvparse import FeedError, Layout, prefetched, read_feed_file


def parse_all(path: Path, kind: str = "cdr", layout: Layout = Layout(), block_bytes: int = 1 << 20):
    parsed = list(read_feed_file(path, kind, layout, block_bytes))
    records = [r for p in parsed for r in p.batch.records()]
    rejected = [r for p in parsed for r in p.rejected]
    lines = np.concatenate([p.batch.line for p in parsed])
    return records, sorted(rejected, key=lambda r: r.line), lines


def test_canonical_rows_parse_to_typed_records(tmp_path):
    path = write_cdr(tmp_path / "a.csv", [
        Row(),
        Row(record_type="sms", direction="MT", duration_s="0", peer="10690001",
            result="delivered", imei=imei(2)[:14] + "05"),  # IMEISV: SV dropped, Luhn added
        Row(record_type="data", peer="", duration_s="600", result="ok", imei="",
            cell_id="460-00-04097-00001"),
    ])
    records, rejected, lines = parse_all(path)
    assert rejected == []
    assert [r.record_type for r in records] == [RecordType.VOICE, RecordType.SMS, RecordType.DATA]
    assert records[1].direction == Direction.MT and records[1].result == Result.DELIVERED
    assert records[1].imei == imei(2)
    assert records[2].imei is None and records[2].peer is None
    assert records[2].cell_id == "460-00-4097-1"
    assert records[0].start_time == 1791187200
    assert lines.tolist() == [2, 3, 4]


@pytest.mark.parametrize("row, reason", [
    (Row(imsi="46000123"), "imsi: '46000123' must be 15 digits"),
    (Row(record_type="fax"), "record_type: 'fax' is not one of"),
    (Row(direction="XX"), "direction: 'XX' is not MO or MT"),
    (Row(record_type="data", direction="MT", peer="", result="ok"), "must be MO for data"),
    (Row(start_time="2026-10-05 08:00:00"), "start_time: '2026-10-05 08:00:00' does not match"),
    (Row(start_time="0000-01-01T00:00:00Z"), "start_time: '0000-01-01T00:00:00Z' is not between"),
    (Row(duration_s="-5"), "duration_s"),
    (Row(imei="352099001761482"), "imei: '352099001761482' is not a 14/15-digit IMEI"),
    (Row(peer=""), "peer: '' must be 1 to 15 digits"),
    (Row(cell_id="cell-7"), "cell_id: 'cell-7' is not MCC-MNC-LAC-CI"),
    (Row(result="delivered"), "result: 'delivered' is not a result of this record_type"),
    (Row(msisdn="86-abc"), "msisdn"),
])
def test_bad_rows_are_rejected_with_line_and_reason_and_neighbours_kept(tmp_path, row, reason):
    path = write_cdr(tmp_path / "b.csv", [Row(), row, Row()])
    records, rejected, lines = parse_all(path)
    assert len(records) == 2 and lines.tolist() == [2, 4]
    assert len(rejected) == 1
    assert rejected[0].line == 3 and rejected[0].source == "b.csv"
    assert reason in rejected[0].reason
    assert rejected[0].raw


def test_structural_damage_blank_lines_and_bad_utf8(tmp_path):
    good = ",".join(Row().__getattribute__(f) for f in Row.__slots__)
    body = "\n".join([",".join(Row.__slots__), good, "voice,MO,short", "", good]).encode()
    body += b"\n" + good.replace("answered", "answ\xffered").encode("latin-1") + b"\n" + good.encode() + b"\n"
    path = tmp_path / "c.csv"
    path.write_bytes(body)
    records, rejected, lines = parse_all(path)
    assert len(records) == 3 and lines.tolist() == [2, 5, 7]
    assert [(r.line, r.reason) for r in rejected] == [
        (3, "expected 10 fields, found 3"), (6, "not UTF-8")]


def test_quoted_fields_take_the_slow_path_with_the_same_result(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(",".join(Row.__slots__) + "\n"
                    '"voice","MO","2026-10-05T08:00:00Z","30","460000000000001","8613800000001",'
                    '"","8613900000000","460-00-4097-1","answered"\n'
                    '"voice","MO"\n')
    records, rejected, _ = parse_all(path)
    assert len(records) == 1 and records[0].imsi == "460000000000001"
    assert rejected[0].line == 3


def test_blocks_keep_line_numbers(tmp_path):
    rows = [Row(imsi=f"4600000000{i:05d}") for i in range(500)]
    rows[321] = Row(imsi="bad")
    path = write_cdr(tmp_path / "d.csv", rows)
    records, rejected, lines = parse_all(path, block_bytes=4096)
    assert len(records) == 499
    assert rejected[0].line == 323
    assert lines.tolist() == [i + 2 for i in range(500) if i != 321]


def test_missing_column_and_empty_file_are_feed_errors(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("record_type,direction\nvoice,MO\n")
    with pytest.raises(FeedError, match="e.csv: header lacks column\\(s\\) start_time"):
        parse_all(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(FeedError, match="empty file"):
        parse_all(empty)


def test_other_layout_with_local_time_and_value_spellings(tmp_path):
    layout = Layout(
        columns={"record_type": "CALL_TYPE", "direction": "DIR", "start_time": "START",
                 "imsi": "IMSI"},
        values={"record_type": {"MOC": "voice"}, "direction": {"O": "MO"}},
        timestamp_format="%Y-%m-%d %H:%M:%S", timezone="Asia/Shanghai")
    header = ("CALL_TYPE", "DIR", "START", "duration_s", "IMSI", "msisdn", "imei", "peer",
              "cell_id", "result")
    row = ("MOC", "O", "2026-10-05 16:00:00", "30", "460000000000001", "8613800000001", "",
           "8613900000000", "460-00-4097-1", "answered")
    path = write_cdr(tmp_path / "f.csv", [row], header=header)
    records, rejected, _ = parse_all(path, layout=layout)
    assert rejected == []
    assert records[0].record_type == RecordType.VOICE
    assert records[0].start_time == 1791187200  # 16:00 in UTC+8 is 08:00Z


def test_registrations(tmp_path):
    path = write_registrations(tmp_path / "r.csv", [
        ("460000000000001", "8613800000001", "8986001234567890123", "2026-09-01T10:00:00Z",
         "a1b2c3d4e5f60718", "CH0001"),
        ("460110000000002", "8613800000002", "89860012345", "2026-09-01T10:00:00Z",
         "a1b2c3d4e5f60718", "CH0001"),
        ("460110000000003", "8613800000003", "8986001234567890125", "2026-09-01T10:02:00Z",
         "110101199001011234", "CH0001"),
        ("460110000000004", "8613800000004", "8986001234567890126", "2026-09-01T10:03:00Z",
         "ffeeddccbbaa9988", "CH0002"),
    ])
    records, rejected, _ = parse_all(path, "registrations")
    assert [r.imsi for r in records] == ["460000000000001", "460110000000004"]
    assert records[0].carrier == "China Mobile" and records[1].carrier == "China Telecom"
    assert [(r.line, r.reason.split(":")[0]) for r in rejected] == [(3, "iccid"), (4, "id_hash")]


def test_prefetched_keeps_order_and_raises_at_the_failing_item():
    def items():
        yield from range(5)
        raise FeedError("broken at 5")

    got = []
    with pytest.raises(FeedError, match="broken at 5"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    assert list(prefetched(iter([]))) == []


@pytest.mark.parametrize("content", [
    ",".join(Row.__slots__) + "\n", ",".join(Row.__slots__), ",".join(Row.__slots__) + "\r\n",
    "\ufeff" + ",".join(Row.__slots__) + "\n\n"])
def test_a_header_only_file_is_an_empty_file(tmp_path, content):
    """Mediation writes the header alone for a quiet hour: no records, nothing refused."""
    path = tmp_path / "quiet.csv"
    path.write_text(content, encoding="utf-8")
    records, rejected, lines = parse_all(path)
    assert records == [] and rejected == [] and lines.tolist() == []


def test_a_stray_carriage_return_or_padded_number_spoils_only_its_own_row(tmp_path):
    good = ",".join(Row().__getattribute__(f) for f in Row.__slots__)
    path = tmp_path / "cr.csv"
    path.write_bytes("\n".join([",".join(Row.__slots__), good, good.replace("answered", "ans\rwered"),
                                good.replace(",30,", ", 30 ,"), good]).encode() + b"\n")
    records, rejected, lines = parse_all(path)
    assert lines.tolist() == [2, 4, 5] and records[1].duration_s == 30
    assert [(r.line, r.reason) for r in rejected] == [(3, "carriage return inside the line")]


def test_an_unbalanced_quote_spoils_only_its_own_row(tmp_path):
    good = ",".join(Row().__getattribute__(f) for f in Row.__slots__)
    path = tmp_path / "quote.csv"
    path.write_text("\n".join([",".join(Row.__slots__), good.replace("voice", '"voice'), good,
                               good]) + "\n")
    records, rejected, lines = parse_all(path)
    assert lines.tolist() == [3, 4] and [r.line for r in rejected] == [2]
    assert rejected[0].reason.startswith("malformed quoting")


def test_free_text_of_registrations_refuses_control_characters(tmp_path):
    row = ("460000000000001", "8613800000001", "8986001234567890123", "2026-09-01T10:00:00Z",
           "a1b2c3d4e5f60718", "CH0001", "China Mobile")
    path = write_registrations(tmp_path / "r.csv", [
        row, row[:5] + ("CH\x0001",) + row[6:], row[:6] + ("Mobile\x00",)], carrier=True)
    records, rejected, _ = parse_all(path, "registrations")
    assert len(records) == 1
    assert [(r.line, r.reason.split(":")[0]) for r in rejected] == [(3, "channel"), (4, "carrier")]
    assert "\x00" in rejected[0].raw   # the row as it came, for the quarantine
