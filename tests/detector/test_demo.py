"""The README's first command: ``goipwatch demo`` on the embedded store and on a given one."""

from detector.cli import main


def test_demo_on_a_given_store(tmp_path, pg_dsn, capsys):
    assert main(["demo", "--state-dir", str(tmp_path), "--subscribers", "1000", "--dsn", pg_dsn]) == 0
    out = capsys.readouterr().out
    assert "SIM(s) flagged" in out and "against the ground truth" in out
    assert (tmp_path / "flags.jsonl").read_text().strip()


def test_demo_on_the_embedded_store(tmp_path, capsys):
    assert main(["demo", "--state-dir", str(tmp_path), "--subscribers", "600", "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "embedded PostgreSQL" in out and "4/4" in out
