"""The daemon's intake against the real store: no row stops it (NUL bytes, names that are not
UTF-8), a header-only file is an empty file, a failing probe is reported and started again,
and --until-done ends on an idle watch directory."""

import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from detector import config as config_mod
from detector.cli import main
from detector.daemon import Daemon
from detector.testing import Row, at, daemon_config, imsi, write_cdr
from probes.config import ProbeConfig
from probes.csvparse import CDR_FIELDS, REGISTRATION_FIELDS
from probes.files import FileProbe

MODEL = Path(__file__).resolve().parents[2] / "models" / "goipwatch.skops"


def cdr_probe(files: list[Path] = (), watch: Path | None = None, settle_s: float = 0.2,
              name: str = "cdr") -> str:
    out = f'[[probes]]\ntype = "cdr_csv"\nname = "{name}"\nsettle_s = {settle_s}\n'
    out += f"files = [{', '.join(json.dumps(str(f)) for f in files)}]\n"
    return out + (f"watch = {json.dumps(str(watch))}\n" if watch else "")


async def run_daemon(cfg: Path, **run) -> Daemon:
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        await daemon.run(until_done=True, **run)
    finally:
        await daemon.close()
    return daemon


async def fetch(dsn: str, query: str, *args) -> list:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def line(row: Row) -> bytes:
    return ",".join(getattr(row, f) for f in CDR_FIELDS).encode()


async def test_a_nul_byte_is_quarantined_with_its_bytes_and_intake_goes_on(tmp_path, pg_dsn, capsys):
    nul_row = line(Row(imsi=imsi(2))).replace(b"460", b"46\x000", 1)
    feed = tmp_path / "feed"
    feed.mkdir()
    first = feed / "a.csv"
    first.write_bytes(b"\n".join([",".join(CDR_FIELDS).encode(), line(Row()), nul_row,
                                  line(Row(imsi=imsi(3)))]) + b"\n")
    # a name that is not UTF-8, a header naming a column twice with a NUL in it
    odd_name = feed / os.fsdecode(b"b-\xff.csv")
    write_cdr(odd_name, [Row(imsi=imsi(4))])
    twice = feed / "c.csv"
    twice.write_bytes(b"x\x00,x\x00," + ",".join(CDR_FIELDS).encode() + b"\n" + line(Row()) + b"\n")
    regs = tmp_path / "regs.csv"
    regs.write_bytes(",".join(REGISTRATION_FIELDS).encode() + b"\n460000000000009,8613800000009,"
                     b"8986001234567890123,2026-09-01T10:00:00Z,a1b2c3d4e5f60718,CH\x0001\n"
                     # year 0000 reads as a time, and cannot be stored as one
                     b"460000000000008,8613800000008,8986001234567890124,0000-01-01T00:00:00Z,"
                     b"a1b2c3d4e5f60718,CH01\n")
    cfg = daemon_config(tmp_path, pg_dsn, MODEL, cdr_probe(watch=feed) +
                        f'[[probes]]\ntype = "registrations_csv"\nname = "regs"\n'
                        f"files = [{json.dumps(str(regs))}]\n")
    await run_daemon(cfg)
    await run_daemon(cfg)   # and it starts again: nothing left that stops it
    files = {r["name"]: r for r in await fetch(pg_dsn, "SELECT * FROM ingested_files")}
    assert files["a.csv"]["status"] == "done" and files["a.csv"]["records"] == 2
    assert files["a.csv"]["rejected"] == 1
    assert files["b-\\xff.csv"]["status"] == "done" and files["b-\\xff.csv"]["records"] == 1
    assert files["c.csv"]["status"] == "rejected" and "\\x00" in files["c.csv"]["detail"]
    assert files["regs.csv"]["status"] == "done" and files["regs.csv"]["rejected"] == 2
    q = {(r["source"], r["line"]): r for r in await fetch(
        pg_dsn, "SELECT source, line, reason, raw, raw_bytes FROM quarantine")}
    assert bytes(q[("a.csv", 3)]["raw_bytes"]) == nul_row       # the row's bytes, NUL and all
    assert "imsi: '46\\x00" in q[("a.csv", 3)]["reason"]
    assert b"CH\x0001" in bytes(q[("regs.csv", 2)]["raw_bytes"])
    assert "activated_at: '0000-01-01T00:00:00Z' is not between" in q[("regs.csv", 3)]["reason"]
    assert len(q) == 4 and sum(len(r) for r in await fetch(pg_dsn, "SELECT 1 FROM ingested_files")) == 4

    assert await asyncio.to_thread(main, ["status", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "a.csv:3: imsi: '46\\x00" in out and "FAILING" not in out


async def test_a_header_only_file_is_an_empty_file_for_the_daemon_and_for_score(tmp_path, pg_dsn):
    drop = tmp_path / "drop"
    drop.mkdir()
    quiet = write_cdr(drop / "01-quiet.csv", [])
    busy = write_cdr(drop / "02-busy.csv", [Row(start_time=at(60)), Row(start_time=at(120))])
    cfg = daemon_config(tmp_path, pg_dsn, MODEL, cdr_probe(watch=drop) + "[ops]\nport = 0\n")
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        running = asyncio.create_task(daemon.run())
        ops = "http://%s:%d" % daemon._ops.addresses[0][:2]
        for _ in range(200):   # the probe goes on to the file after the quiet one, and beyond
            done = await daemon.pool.fetchval("SELECT count(*) FROM ingested_files")
            if done == 2:
                break
            await asyncio.sleep(0.05)
        later = write_cdr(drop / "03-later.csv", [Row(start_time=at(180))])
        for _ in range(200):
            if await daemon.pool.fetchval("SELECT count(*) FROM ingested_files") == 3:
                break
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http, http.get(f"{ops}/readyz") as r:
            ready, body = r.status, await r.json()
        daemon.stop()
        await running
    finally:
        await daemon.close()
    files = {r["name"]: (r["status"], r["records"], r["rejected"]) for r in await fetch(
        pg_dsn, "SELECT name, status, records, rejected FROM ingested_files")}
    assert files == {quiet.name: ("done", 0, 0), busy.name: ("done", 2, 0),
                     later.name: ("done", 1, 0)}
    assert ready == 200 and body["failing_inputs"] == []

    out = tmp_path / "flags.csv"
    assert await asyncio.to_thread(main, ["score", "--cdr", str(quiet), str(busy), "--model",
                                          str(MODEL), "--out", str(out)]) == 0
    assert out.read_text().startswith("imsi,msisdn,score,flagged_at,rig_id,reasons")


class BrokenLooks(FileProbe):
    """A file probe whose drop-directory look fails its first ``failures`` times (as a bug
    in a probe would), counting the files it offers."""

    def __init__(self, config, failures: int) -> None:
        super().__init__(config)
        self.failures = failures
        self.offered: list[str] = []

    def settled(self):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("look failed")
        return super().settled()

    def work(self, path, *args):
        self.offered.append(path.name)
        return super().work(path, *args)


async def test_a_failing_probe_is_reported_restarted_and_offers_no_file_twice(tmp_path, pg_dsn,
                                                                           capsys):
    drop = tmp_path / "drop"
    drop.mkdir()
    listed = write_cdr(tmp_path / "listed.csv", [Row(start_time=at(60))])
    dropped = write_cdr(drop / "dropped.csv", [Row(start_time=at(120))])
    old = time.time() - 3600
    os.utime(dropped, (old, old))
    cfg = daemon_config(tmp_path, pg_dsn, MODEL, cdr_probe([listed], watch=drop, settle_s=0.1) +
                        "[ops]\nport = 0\n")
    daemon = Daemon(config_mod.load(cfg))
    daemon.restart_backoff_s, daemon.probe_stable_s = 0.3, 1.5
    probe = daemon.probes[0] = BrokenLooks(daemon.probes[0].config, failures=2)
    try:
        await daemon.open()
        running = asyncio.create_task(daemon.run())
        ops = "http://%s:%d" % daemon._ops.addresses[0][:2]
        for _ in range(200):
            if (await daemon.pool.fetch("SELECT 1 FROM probe_health WHERE failing")):
                break
            await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as http, http.get(f"{ops}/readyz") as r:
            failing_status, failing_body = r.status, await r.json()
        assert await asyncio.to_thread(main, ["status", "--config", str(cfg)]) == 0
        failing_out = capsys.readouterr().out
        for _ in range(300):   # restarted, taken the dropped file, and running well since
            healthy = await daemon.pool.fetchrow("SELECT * FROM probe_health WHERE probe = 'cdr'")
            if not healthy["failing"] and healthy["failures"] == 2:
                break
            await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as http, http.get(f"{ops}/readyz") as r:
            well_status = r.status
        daemon.stop()
        await running
    finally:
        await daemon.close()
    assert failing_status == 503 and failing_body["checks"]["probes"] is False
    assert failing_body["failing_inputs"] == [{"probe": "cdr", "error": "RuntimeError: look failed"}]
    assert "FAILING" in failing_out and "RuntimeError: look failed" in failing_out
    assert not healthy["failing"] and healthy["state"] == "running" and well_status == 200
    assert probe.offered == ["listed.csv", "dropped.csv"]   # once each, across two restarts
    done = await fetch(pg_dsn, "SELECT name FROM ingested_files ORDER BY name")
    assert [r["name"] for r in done] == ["dropped.csv", "listed.csv"]


async def test_a_file_offered_but_not_committed_is_offered_again_after_a_restart(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in ("a.csv", "b.csv"):
        write_cdr(drop / name, [Row()])
        os.utime(drop / name, (time.time() - 3600,) * 2)
    probe = FileProbe(ProbeConfig(type="cdr_csv", name="cdr", watch=drop))
    got: list[str] = []

    async def offer_then_fail(work):
        if work is not None:
            got.append(work.name)
            if work.name == "b.csv":
                raise RuntimeError("daemon gone before b.csv was committed")

    with pytest.raises(RuntimeError):
        await probe.run(offer_then_fail, asyncio.Event())
    stopping = asyncio.Event()

    async def offer_and_stop(work):
        if work is None:
            stopping.set()
        else:
            got.append(work.name)

    await probe.run(offer_and_stop, stopping)
    assert got == ["a.csv", "b.csv", "b.csv"]


async def test_until_done_ends_once_the_watch_directory_is_idle(tmp_path, pg_dsn):
    drop = tmp_path / "drop"
    drop.mkdir()
    write_cdr(drop / "a.csv", [Row(start_time=at(60))])
    (drop / "b.csv.part").write_text("still being written")   # ignored: not waited for
    cfg = daemon_config(tmp_path, pg_dsn, MODEL, cdr_probe(watch=drop, settle_s=0.3))
    started = time.monotonic()
    await asyncio.wait_for(run_daemon(cfg), 60)
    default_s = time.monotonic() - started
    write_cdr(drop / "c.csv", [Row(start_time=at(120))])
    started = time.monotonic()
    await asyncio.wait_for(run_daemon(cfg, idle_exit_s=2.0), 60)
    longer_s = time.monotonic() - started
    done = await fetch(pg_dsn, "SELECT name, records FROM ingested_files ORDER BY name")
    assert [(r["name"], r["records"]) for r in done] == [("a.csv", 1), ("c.csv", 1)]
    assert longer_s >= 2.0 and longer_s > default_s
