"""``goipwatch inspect``: the JSON-lines contract and errors on bad files."""

from __future__ import annotations

import json

import pytest

from detector.cli import main
from tests.inputs import CAPTURES

needs_tshark = pytest.mark.tshark
needs_captures = pytest.mark.captures
CONTRACT = ["ts", "kind", "protocol", "message", "imsi", "msisdn", "imei", "cell_id", "peer"]


@needs_tshark
@needs_captures
def test_jsonl_contract(capsys):
    assert main(["inspect", "--jsonl", str(CAPTURES / "ndpi_gtp_c.pcap")]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = json.loads(lines[0])
    assert list(first)[:len(CONTRACT)] == CONTRACT
    assert first["imsi"] == "987654112233445" and first["peer"] is None
    second = json.loads(lines[1])                  # the Delete Session Request
    assert second["peer"] is None and second["latency_ms"] is not None  # null where absent


@needs_tshark
@needs_captures
def test_table(capsys):
    assert main(["inspect", str(CAPTURES / "tcpdump_isup.pcap")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["frame", "time", "protocol", "message"]
    assert "IAM" in out[1] and "3933399708" in out[1]


@needs_tshark
def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.pcap"
    assert main(["inspect", str(missing)]) == 2
    assert f"{missing}: no such file or directory" in capsys.readouterr().err


@needs_tshark
def test_not_a_capture(tmp_path, capsys):
    bad = tmp_path / "notes.pcap"
    bad.write_text("this is not a capture at all\njust text\n")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "notes.pcap: header lacks column(s)" in err   # text: read as a CSV feed


@needs_tshark
@needs_captures
def test_truncated_capture_keeps_events_before_the_damage(tmp_path, capsys):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((CAPTURES / "ndpi_sip.pcap").read_bytes()[:20000])  # mid-packet
    assert main(["inspect", "--jsonl", str(cut)]) == 1
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 9 and events[-1]["message"] == "INVITE"  # REGISTER x8, INVITE
    assert f"{cut}: appears to have been cut short" in err and "9 events" in err
