"""The README's first command: ``goipwatch demo`` on the embedded store and on a given one."""

import re
import struct

from detector.cli import main
from detector.demo import split_capture


def test_demo_on_a_given_store(tmp_path, pg_dsn, capsys, monkeypatch):
    """Without --state-dir the demo writes to the user's state directory, never to the
    working directory (often a checkout), and says where."""
    work, state = tmp_path / "checkout", tmp_path / "xdg-state"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    assert main(["demo", "--subscribers", "1000", "--dsn", pg_dsn]) == 0
    out = capsys.readouterr().out
    assert "SIMs flagged" in out and "against the ground truth" in out
    assert f"state in {state / 'goipwatch' / 'demo'}" in out
    assert (state / "goipwatch" / "demo" / "flags.jsonl").read_text().strip()
    assert not any(work.iterdir())


def test_demo_on_the_embedded_store(tmp_path, capsys):
    assert main(["demo", "--state-dir", str(tmp_path), "--subscribers", "600", "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "embedded PostgreSQL" in out and "4/4" in out
    # CDRs and capture in hour files, read in turn: nothing late
    read = dict(re.findall(r"(\w+) \d+ files?, \d+ records?, (\d+) refused", out))
    assert read == {"cdr": "0", "registrations": "0", "signalling": "0"}


def test_a_capture_is_cut_into_a_file_per_period_empty_ones_included(tmp_path):
    t0 = 1_790_000_000 // 3600 * 3600
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    frames = [struct.pack("<IIII", t, 5, 3, 3) + bytes([i] * 3) for i, t in
              enumerate((t0 + 10, t0 + 3700, t0 + 3 * 3600 + 5))]
    pcap = tmp_path / "all.pcap"
    pcap.write_bytes(header + b"".join(frames))
    parts = split_capture(pcap, tmp_path / "out", t0, t0 + 4 * 3600, hours=1)
    assert [p.name for p in parts] == [f"signalling-2026-09-21T{h:02d}0000Z.pcap" for h in (14, 15, 16, 17)]
    assert [p.read_bytes() for p in parts] == [header + frames[0], header + frames[1], header,
                                               header + frames[2]]
