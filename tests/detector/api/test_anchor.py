"""The audit chain's head exported to an anchor file outside the store, and a chain whose tail
was deleted and head rewound (behind the triggers' back) failing `goipwatch audit verify
--anchor`, though it passes every check inside the store."""

from __future__ import annotations

import asyncio
import json

import pytest

from detector.api import ApiConfig, start_api, verify_audit
from detector.api.anchor import AnchorExporter, append_line, parse, read
from tests.detector.api.conftest import BODY, audit_rows, auth
from tests.detector.api.test_audit import _behind_triggers, _fill


def _cli_config(tmp_path, pg_dsn):
    path = tmp_path / "goipwatch.toml"
    path.write_text(f'[daemon]\nstate_dir = {json.dumps(str(tmp_path / "state"))}\n'
                    f'[store]\ndsn = {json.dumps(pg_dsn)}\n')
    return path


async def _rewind(pool, keep: int) -> None:
    """Delete the rows after ``keep`` and set the head back onto row ``keep``."""
    await _behind_triggers(
        pool, f"DELETE FROM audit_log WHERE seq > {keep}",
        f"UPDATE audit_head SET seq = {keep}, hash = (SELECT hash FROM audit_log WHERE seq = {keep})")


async def test_the_api_exports_the_head_while_serving_and_at_shutdown(pool, tokens_file, tmp_path):
    anchor_file = tmp_path / "other-volume" / "audit.anchor"
    anchor_file.parent.mkdir()
    config = ApiConfig.from_toml({"tokens_file": str(tokens_file), "port": 0,
                                  "audit_anchor_file": str(anchor_file),
                                  "audit_anchor_interval_s": 10}, "api")
    runner = await start_api(pool, config)
    try:
        await asyncio.sleep(0.2)
        import aiohttp
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.post(f"http://{host}:{port}/v1/lookups", json=BODY,
                                     headers=auth("police")) as r:
                    assert r.status == 200
    finally:
        await runner.cleanup()
    anchors = read(anchor_file)
    assert [(a.seq, a.hash) for a in anchors] == [
        (0, "0" * 64), (3, await pool.fetchval("SELECT hash FROM audit_log WHERE seq = 3"))]
    assert anchor_file.read_text().endswith("Z\n")
    assert (await verify_audit(pool, anchors=[(a.seq, a.hash) for a in anchors])).ok


async def test_a_truncated_and_rewound_chain_fails_against_the_anchor(pool, tmp_path):
    anchor_file = tmp_path / "audit.anchor"
    exporter = AnchorExporter(pool, anchor_file, 60)
    await _fill(pool, 3)
    await exporter.export()
    await _fill(pool, 3)
    assert await exporter.export() == (6, await pool.fetchval("SELECT hash FROM audit_log WHERE seq = 6"))
    assert await exporter.export() is None            # unchanged: no line
    await _rewind(pool, 4)

    assert (await verify_audit(pool)).ok              # nothing inside the store shows it
    anchors = [(a.seq, a.hash) for a in read(anchor_file)]
    report = await verify_audit(pool, anchors=anchors)
    assert not report.ok
    assert [(p.seq, p.kind) for p in report.problems] == [(6, "anchor_mismatch")]
    assert "gone" in report.problems[0].detail

    # rows appended after the rewind take the anchored seq with another hash: still caught
    await _fill(pool, 3)
    report = await verify_audit(pool, anchors=anchors)
    assert [(p.seq, p.kind) for p in report.problems] == [(6, "anchor_mismatch")]
    assert "hash" in report.problems[0].detail


async def test_audit_verify_cli_with_anchor(pool, pg_dsn, tmp_path, capsys):
    from detector.cli import main

    anchor_file = tmp_path / "audit.anchor"
    exporter = AnchorExporter(pool, anchor_file, 60)
    await _fill(pool, 5)
    await exporter.export()
    cfg = _cli_config(tmp_path, pg_dsn)
    args = ["audit", "verify", "--config", str(cfg), "--anchor", str(anchor_file)]
    assert await asyncio.to_thread(main, args) == 0
    assert "intact: 5 rows" in capsys.readouterr().out

    await _rewind(pool, 3)
    assert await asyncio.to_thread(main, ["audit", "verify", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, args) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and "row 5: anchor_mismatch" in out

    # every run is recorded in the chain, with its result
    runs = [json.loads(r["query"]) for r in await audit_rows(pool) if r["action"] == "audit.verify"]
    assert [(q["ok"], q["anchor_file"]) for q in runs] == [(True, False), (False, True)]

    anchor_file.write_text("5 nothex 2026\n")
    assert await asyncio.to_thread(main, args) == 2
    assert "audit.anchor:1" in capsys.readouterr().err


def test_anchor_lines_parse_and_a_cut_last_line_is_ignored(tmp_path):
    path = tmp_path / "a"
    append_line(path, f"1 {'a' * 64} 2026-10-05T08:00:00Z\n")
    append_line(path, f"2 {'b' * 64} 2026-10-05T08:05:00Z\n")
    assert [a.seq for a in read(path)] == [1, 2]
    assert [a.seq for a in parse(path.read_text() + "3 cc")] == [1, 2]
    with pytest.raises(ValueError, match=":2:"):
        parse(f"1 {'a' * 64} t\n2 {'g' * 64} t\n")
