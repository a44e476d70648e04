"""The daemon end to end on a real PostgreSQL: exactly-once intake across restarts, SIGTERM
and kill -9, quarantine of bad input."""

import asyncio
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from detector import config as config_mod
from detector.daemon import Daemon
from detector.demo import split_capture, split_cdr
from detector.features.catalog import FEATURES
from detector.ids import imsi_text, msisdn_text
from detector.records import iso
from detector.testing import T0, Row, at, cdr_batch, daemon_config, gateway_rows, imei, imsi, write_cdr
from probes.config import ProbeConfig
from probes.files import FileProbe
from tests.inputs import CAPTURES
from tests.probes.feed_shapes import SHAPES


def write_config(tmp: Path, dsn: str, model: Path, world: Path, cdr_files: list[Path],
                 block_bytes: int = 1 << 20, more_probes: str = "") -> Path:
    files = ", ".join(json.dumps(str(f)) for f in cdr_files)
    cfg = daemon_config(tmp, dsn, model, f"""
[[probes]]
type = "registrations_csv"
name = "registrations"
files = [{json.dumps(str(world / "subscribers.csv"))}]
[[probes]]
type = "cdr_csv"
name = "cdr"
files = [{files}]
block_bytes = {block_bytes}
{more_probes}
""")
    return cfg


async def snapshot(dsn: str) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "files": [tuple(r) for r in await conn.fetch(
                "SELECT probe, name, status, records, rejected FROM ingested_files ORDER BY probe, name")],
            "counters": json.loads(await conn.fetchval(
                "SELECT value FROM engine_state WHERE key = 'counters'") or "{}"),
            "flags": [tuple(r) for r in await conn.fetch(
                "SELECT imsi, kind, flagged_at, score FROM flags ORDER BY imsi")],
            "sim_state": await conn.fetchval(
                "SELECT md5(string_agg(imsi::text || encode(state, 'hex'), ',' ORDER BY imsi)) FROM sim_state"),
            "quarantine": await conn.fetchval("SELECT count(*) FROM quarantine"),
        }
    finally:
        await conn.close()


def stream_events(path: Path) -> list[dict]:
    """The whole lines of a flag stream (a line torn by a crash mid-write is none)."""
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


async def store_view(dsn: str) -> dict[int, dict]:
    """Every flag of the store as a stream line shows it, by flag id."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id, imsi, msisdn, kind, score, flagged_at, rig_id, reasons FROM flags")
    finally:
        await conn.close()
    return {r["id"]: {"flag_id": r["id"], "imsi": imsi_text(r["imsi"]),
                      "msisdn": msisdn_text(r["msisdn"]) if r["msisdn"] else "", "kind": r["kind"],
                      "score": float(r["score"]), "flagged_at": iso(int(r["flagged_at"].timestamp())),
                      "rig_id": r["rig_id"], "reasons": json.loads(r["reasons"])} for r in rows}


def assert_stream_is_the_store(events: list[dict], store: dict[int, dict]) -> None:
    """Each event once, in event id order, and the last line of each flag is the store's."""
    ids = [e["event_id"] for e in events]
    assert ids == sorted(set(ids))
    last = {e["flag_id"]: {k: v for k, v in e.items() if k not in ("event_id", "event")} for e in events}
    assert last == store
    assert sorted(e["flag_id"] for e in events if e["event"] == "flag") == sorted(store)


def cdr_rows(world: Path) -> int:
    with (world / "cdr.csv").open() as fh:
        return sum(1 for _ in fh) - 1


async def run_daemon(cfg: Path) -> None:
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        await daemon.run(until_done=True)
    finally:
        await daemon.close()


async def test_each_file_is_taken_once_across_restarts(tmp_path, pg_dsn, small_world, small_model):
    files = split_cdr(small_world / "cdr.csv", tmp_path / "feed", hours=6)
    cfg = write_config(tmp_path, pg_dsn, small_model, small_world, files)
    await run_daemon(cfg)
    first = await snapshot(pg_dsn)
    assert first["counters"]["cdr"]["records"] == cdr_rows(small_world)
    assert first["counters"]["cdr"]["files"] == len(files)
    assert first["quarantine"] == 0
    assert first["flags"], "the world's rigs should raise flags"
    assert_stream_is_the_store(stream_events(tmp_path / "state" / "flags.jsonl"), await store_view(pg_dsn))

    await run_daemon(cfg)  # a restart over the same files changes nothing
    assert await snapshot(pg_dsn) == first

    copy = tmp_path / "feed" / "copy-of-first.csv"
    shutil.copy(files[0], copy)
    cfg = write_config(tmp_path, pg_dsn, small_model, small_world, files + [copy])
    await run_daemon(cfg)
    after = await snapshot(pg_dsn)
    assert ("cdr", copy.name, "duplicate", 0, 0) in after["files"]
    assert after["counters"]["cdr"]["records"] == cdr_rows(small_world)


async def test_bad_rows_and_bad_files_are_quarantined_and_good_rows_kept(tmp_path, pg_dsn,
                                                                         small_world, small_model):
    good = write_cdr(tmp_path / "good.csv", [Row(), Row(imsi="4600"), Row(start_time="yesterday")])
    headless = tmp_path / "headless.csv"
    headless.write_text("a,b,c\n1,2,3\n")
    cfg = write_config(tmp_path, pg_dsn, small_model, small_world, [good, headless])
    await run_daemon(cfg)
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch("SELECT source, line, reason FROM quarantine ORDER BY source, line")
        files = {r["name"]: r for r in await conn.fetch("SELECT * FROM ingested_files")}
    finally:
        await conn.close()
    assert [(r["source"], r["line"]) for r in rows] == [("good.csv", 3), ("good.csv", 4),
                                                        ("headless.csv", 0)]
    assert "imsi: '4600' must be 15 digits" in rows[0]["reason"]
    assert "header lacks column(s) record_type" in rows[2]["reason"]
    assert files["good.csv"]["status"] == "done" and files["good.csv"]["records"] == 1
    assert files["good.csv"]["rejected"] == 2
    assert files["headless.csv"]["status"] == "rejected"


def test_a_dropped_file_is_offered_only_once_settled(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    probe = FileProbe(ProbeConfig(type="cdr_csv", name="cdr", watch=drop))
    growing = drop / "a.csv"
    growing.write_text("record_type,direction\n")
    (drop / "b.csv.tmp").write_text("still being written")
    (drop / ".hidden").write_text("x")
    assert probe.settled() == []
    with growing.open("a") as fh:
        fh.write("voice,MO\n")
    assert probe.settled() == []            # grew since the last look
    assert probe.settled() == [growing]     # held still for one interval
    assert [p.name for p in probe.settled()] == ["a.csv"]


def test_an_archived_file_is_settled_at_once_and_offered_by_its_first_event_time(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    probe = FileProbe(ProbeConfig(type="cdr_csv", name="cdr", watch=drop, settle_s=60))
    rows = [Row(start_time=at(7200)), Row(start_time=at(3600))]
    old = write_cdr(drop / "old.csv", rows)
    write_cdr(drop / "new.csv", rows)        # just written: settled only at a later look
    day_ago = time.time() - 86400
    os.utime(old, (day_ago, day_ago))
    assert probe.settled() == [old]          # written a day ago: an archive, nobody writes it
    assert probe.first_event_time(old) == T0 + 3600     # the earliest of its first rows
    (drop / "bad.csv").write_text("no,header,here\n1,2,3\n")
    assert probe.first_event_time(drop / "bad.csv") is None


def _goipwatch(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "detector.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_log(proc: subprocess.Popen, needle: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if needle in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"daemon never logged {needle!r}")


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
async def test_interrupted_daemon_resumes_to_the_same_state(tmp_path, pg_dsn, small_world,
                                                           small_model, how):
    files = split_cdr(small_world / "cdr.csv", tmp_path / "feed", hours=4)
    # the reference: one uninterrupted run on its own database
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    admin = await asyncpg.connect(pg_dsn)
    ref_db = pg_dsn.rsplit("/", 1)[1] + "_ref"
    await admin.execute(f'CREATE DATABASE "{ref_db}"')
    await admin.close()
    ref_dsn = pg_dsn.rsplit("/", 1)[0] + "/" + ref_db
    try:
        await run_daemon(write_config(ref_dir, ref_dsn, small_model, small_world, files,
                                      block_bytes=32 << 10))
        reference = await snapshot(ref_dsn)
    finally:
        admin = await asyncpg.connect(pg_dsn)
        await admin.execute(f'DROP DATABASE "{ref_db}" WITH (FORCE)')
        await admin.close()

    cfg = write_config(tmp_path, pg_dsn, small_model, small_world, files, block_bytes=32 << 10)
    proc = _goipwatch("run", "--config", str(cfg), "--until-done")
    try:
        _wait_for_log(proc, '"probe": "cdr"')   # registrations done, CDR files under way
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        else:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = await snapshot(pg_dsn)
    assert partial["counters"].get("cdr", {}).get("files", 0) < len(files)

    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "detector.cli", "run",
                                             "--config", str(cfg), "--until-done"],
                            check=True, capture_output=True)
    resumed = await snapshot(pg_dsn)
    assert resumed == reference
    store = await store_view(pg_dsn)
    assert len(store) == len(reference["flags"])
    assert_stream_is_the_store(stream_events(tmp_path / "state" / "flags.jsonl"), store)


CAPTURE = CAPTURES / "ndpi_gtp_c.pcap"


@pytest.mark.captures
@pytest.mark.tshark
async def test_capture_and_cdr_probes_feed_one_feature_state(tmp_path, pg_dsn, small_model):
    # the capture's subscriber (GTPv2 Create Session: IMSI, MEI, ECGI) makes two calls,
    # seen in CDRs from another phone in another cell
    sub, phone = "987654112233445", "352099001761481"
    cdr = write_cdr(tmp_path / "cdr.csv", [
        Row(imsi=sub, imei=phone, start_time="2021-03-03T10:40:00Z", cell_id="460-00-4097-1"),
        Row(imsi=sub, imei=phone, start_time="2021-03-03T10:41:00Z", cell_id="460-00-4097-1")])
    cfg = daemon_config(tmp_path, pg_dsn, small_model, f"""
[[probes]]
type = "pcap"
name = "gtp"
files = [{json.dumps(str(CAPTURE))}]
[[probes]]
type = "cdr_csv"
name = "cdr"
files = [{json.dumps(str(cdr))}]
""")
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        await daemon.run(until_done=True)
        slot = daemon.engine.sims.lookup(np.array([int(sub)]))
        f = dict(zip(FEATURES, daemon.engine.features(slot).values[0]))
        counters = (await snapshot(pg_dsn))["counters"]
    finally:
        await daemon.close()
    assert f["distinct_imeis_24h"] == 2          # the CDR phone and the MEI from GTPv2
    assert round(f["distinct_cells_24h"]) == 2    # the CDR cell and the ECGI from GTPv2
    assert f["voice_out_24h"] == 2                # observations are not traffic
    assert f["dominant_cell_share_24h"] == 1.0
    assert counters["cdr"]["records"] == 2 and counters["gtp"]["records"] >= 1


async def test_flags_reach_the_verification_platform(tmp_path, pg_dsn, small_world, small_model,
                                                     monkeypatch):
    from aiohttp import web

    from detector.verify import verify_signature

    secret = "s3cret-for-the-test-platform"
    got = []

    async def accept(request):
        body = await request.read()
        assert verify_signature(secret.encode(), request.headers["X-Goipwatch-Timestamp"], body,
                                request.headers["X-Goipwatch-Signature"], time.time())
        got.append((request.headers["Idempotency-Key"], json.loads(body)))
        return web.json_response({"accepted": True})

    app = web.Application()
    app.router.add_post("/v1/verification-requests", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    monkeypatch.setenv("GOIPWATCH_PLATFORM_SECRET", secret)
    try:
        files = split_cdr(small_world / "cdr.csv", tmp_path / "feed", hours=12)
        cfg = write_config(tmp_path, pg_dsn, small_model, small_world, files)
        cfg.write_text(cfg.read_text() + f"""
[verification]
url = "http://127.0.0.1:{port}/v1/verification-requests"
secret_env = "GOIPWATCH_PLATFORM_SECRET"
""")
        await run_daemon(cfg)
        flags = (await snapshot(pg_dsn))["flags"]
    finally:
        await runner.cleanup()
    assert flags and got
    lines = {line["imsi"] for _, body in got for line in body.get("lines", [])}
    assert lines <= {str(f[0]) for f in flags} and lines
    assert len({key for key, _ in got}) == len(got)     # each request once
    assert secret not in (tmp_path / "state").joinpath("flags.jsonl").read_text()


async def test_the_daemon_serves_lookups_from_the_detection_process(tmp_path, pg_dsn, small_world,
                                                                    small_model, capsys):
    import hashlib

    import aiohttp

    from detector.cli import main

    token = "officer-wang-token-for-tests"
    creds = tmp_path / "credentials.toml"
    creds.write_text(f"""
[[tokens]]
sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"
client_id = "psb-kunming"
identity = "officer:wang"
role = "police"
officers = ["wang"]
""")
    files = split_cdr(small_world / "cdr.csv", tmp_path / "feed", hours=12)
    cfg = write_config(tmp_path, pg_dsn, small_model, small_world, files)
    cfg.write_text(cfg.read_text() + f"""
[api]
enabled = true
host = "127.0.0.1"
port = 0
tokens_file = {json.dumps(str(creds))}
""")
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        await daemon.run(until_done=True)
        flagged = (await snapshot(pg_dsn))["flags"][0][0]
        host, port = daemon._api.addresses[0][:2]
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"http://{host}:{port}/v1/lookups",
                                headers={"Authorization": f"Bearer {token}"},
                                json={"number": str(flagged), "number_type": "imsi",
                                      "case_ref": "KM-2026-0042",
                                      "legal_basis": "Anti-Telecom and Online Fraud Law Art. 11",
                                      "officer": "wang"})
            answer = await r.json()
            refused = await http.post(f"http://{host}:{port}/v1/lookups",
                                      headers={"Authorization": f"Bearer {token}"},
                                      json={"number": str(flagged), "number_type": "imsi",
                                            "officer": "wang", "legal_basis": "x"})
    finally:
        await daemon.close()
    assert r.status == 200 and answer["subscribers"][0]["flags"]
    assert refused.status == 400 and refused.content_type == "application/problem+json"
    assert await asyncio.to_thread(main, ["audit", "verify", "--config", str(cfg)]) == 0
    assert "2" in capsys.readouterr().out     # both requests are in the chain


async def test_health_and_metrics_carry_no_subscriber_data(tmp_path, pg_dsn, small_world, small_model):
    import aiohttp

    files = split_cdr(small_world / "cdr.csv", tmp_path / "feed", hours=12)
    cfg = write_config(tmp_path, pg_dsn, small_model, small_world, files)
    cfg.write_text(cfg.read_text() + '\n[ops]\nhost = "127.0.0.1"\nport = 0\n')
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        await daemon.run(until_done=True)
        host, port = daemon._ops.addresses[0][:2]
        async with aiohttp.ClientSession() as http:
            live = await http.get(f"http://{host}:{port}/livez")
            ready = await http.get(f"http://{host}:{port}/readyz")
            metrics = await (await http.get(f"http://{host}:{port}/metrics")).text()
        flagged = [str(f[0]) for f in (await snapshot(pg_dsn))["flags"]]
    finally:
        await daemon.close()
    assert live.status == 200 and ready.status == 200
    assert f'goipwatch_records_total{{probe="cdr"}} {cdr_rows(small_world)}' in metrics
    assert 'goipwatch_flags{kind="sim_anomaly"}' in metrics
    assert "goipwatch_feature_state_bytes" in metrics and "goipwatch_scoring_ticks_total" in metrics
    assert not any(imsi in metrics for imsi in flagged)


@pytest.mark.tshark
async def test_a_new_daemon_reads_the_archive_of_two_feeds_in_event_order(tmp_path, pg_dsn):
    """First start (docs/operations.md): the last day of CDRs and of captures before the live
    files, the CDRs in half-hour files and the captures in hour files, the capture host
    having written none for hours without packets. The daemon takes the files of both in
    event order, so no record falls behind the other feed's watermark (none is quarantined
    as late; taking turns, a file each, the CDRs fell hours behind), and rigs at work in the
    archive are flagged from it, before the live feed starts."""
    from detector.world.simulate import WorldParams, simulate_world

    world = tmp_path / "world"
    simulate_world(WorldParams(subscribers=800, days=1, seed=3, archive_hours=24, pcap=True,
                               mix="default,goip_fixed=0.03,goip_rotating=0.03"), world)
    cdrs = split_cdr(world / "archive.csv", tmp_path / "cdr-archive", hours=0.5) + \
        split_cdr(world / "cdr.csv", tmp_path / "cdr-live", hours=0.5)
    t0 = int(datetime.datetime(2026, 10, 5, tzinfo=datetime.timezone.utc).timestamp())
    captures = split_capture(world / "archive.pcap", tmp_path / "cap-archive", t0 - 86400, t0, hours=1) + \
        split_capture(world / "signalling.pcap", tmp_path / "cap-live", t0, t0 + 86400, hours=1)
    captures = [p for p in captures if p.stat().st_size > 24]   # a pcap header alone: no packets
    model = Path(__file__).resolve().parents[2] / "models" / "goipwatch.skops"
    cfg = write_config(tmp_path, pg_dsn, model, world, cdrs, more_probes=f"""
[[probes]]
type = "pcap"
name = "capture"
files = [{", ".join(json.dumps(str(p)) for p in captures)}]""")
    await run_daemon(cfg)
    snap = await snapshot(pg_dsn)
    assert snap["quarantine"] == 0
    assert len(snap["files"]) == 1 + len(cdrs) + len(captures)
    start = datetime.datetime(2026, 10, 5, tzinfo=datetime.timezone.utc)   # the world's start
    from_archive = [f for f in snap["flags"] if f[2] < start]
    assert from_archive and len(from_archive) < len(snap["flags"])


def _feed(daemon: Daemon, rows) -> list:
    """Rows through the daemon's pipeline, their flags pending for its next checkpoint."""
    flags = daemon.pipe.feed(cdr_batch(rows)).flags + daemon.pipe.score_dirty()
    daemon.pending.flags += flags
    return flags


async def test_a_rig_assigned_after_its_flag_is_streamed_once_across_a_crash_and_restarts(
        tmp_path, pg_dsn, small_model, monkeypatch):
    """A SIM flagged alone is committed and streamed without a rig. After a restart, a second
    SIM in its device makes them a rig, which the store records on the first flag too: the
    stream gets a ``rig_assigned`` line for it. The daemon dies after that commit and before
    writing (a line torn): the next start writes the lines once, and a start after that none."""
    cfg = config_mod.load(daemon_config(tmp_path, pg_dsn, small_model, ""))
    stream = tmp_path / "state" / "flags.jsonl"
    port = int(imei(920, tac="86000005"))
    lone, joiner = imsi(920), imsi(921)

    daemon = Daemon(cfg)
    try:
        await daemon.open()
        flags = _feed(daemon, gateway_rows([int(lone)], [port], "460-00-580-1", hours=6))
        assert [(f.imsi, f.rig_id) for f in flags] == [(lone, "")]
        await daemon.checkpoint()
    finally:
        await daemon.close()
    [first] = stream_events(stream)
    assert (first["event"], first["imsi"], first["rig_id"]) == ("flag", lone, "")

    daemon = Daemon(cfg)
    try:
        await daemon.open()
        assert stream_events(stream) == [first]              # nothing to catch up
        later = [(t + 7 * 3600, *rest) for t, *rest in
                 gateway_rows([int(joiner)], [port], "460-00-580-1", hours=3, victim0=8613710000000)]
        [flag] = _feed(daemon, later)
        assert flag.imsi == joiner and flag.rig_id

        async def killed_before_writing() -> None:
            with stream.open("a") as fh:
                fh.write('{"event_id": ')
        monkeypatch.setattr(daemon, "_emit", killed_before_writing)
        await daemon.checkpoint()
    finally:
        await daemon.close()
    assert stream_events(stream) == [first]

    for _ in range(2):   # the start after the crash catches up; the next one finds nothing to add
        daemon = Daemon(cfg)
        try:
            await daemon.open()
        finally:
            await daemon.close()
        events = stream_events(stream)
        assert [(e["event"], e["imsi"], e["rig_id"]) for e in events] == [
            ("flag", lone, ""), ("flag", joiner, flag.rig_id), ("rig_assigned", lone, flag.rig_id)]
        assert events[2]["flag_id"] == first["flag_id"]
        assert_stream_is_the_store(events, await store_view(pg_dsn))


async def test_a_stream_written_before_events_had_ids_resumes_after_its_last_flag(
        tmp_path, pg_dsn, small_model):
    """A stream whose lines carry flag ids only (as written before this version): the first
    start appends the events after its last flag, not the whole store again."""
    from detector.flags import Flag
    from detector.store import checkpoint as cp
    from detector.store.db import connect

    cfg = config_mod.load(daemon_config(tmp_path, pg_dsn, small_model, ""))
    pool = await connect(pg_dsn)
    try:
        daemon = Daemon(cfg)
        flags = [Flag(imsi(930 + i), "8613800000000", 0.7, T0 + i, ("why",)) for i in range(3)]
        _, ids = await cp.save(pool, daemon.engine, daemon.pipe, cp.Pending(flags=flags), 0)
    finally:
        await pool.close()
    stream = tmp_path / "state" / "flags.jsonl"
    stream.parent.mkdir(parents=True)
    stream.write_text("".join(json.dumps({"flag_id": i, "imsi": f.imsi}) + "\n" for i, f in zip(ids[:2], flags)))
    try:
        await daemon.open()
    finally:
        await daemon.close()
    added = stream_events(stream)[2:]
    assert [(e["event"], e["flag_id"], e["imsi"]) for e in added] == [("flag", ids[2], flags[2].imsi)]


async def test_compressed_and_ber_files_are_taken_as_their_plain_records(tmp_path, pg_dsn,
                                                                         small_world, small_model):
    """A day of the world in 6-hour files, once plain and once each compressed its own way
    (gzip, bzip2, xz, zstd, told by content): the same records, feature state and flags. A
    BER file of TS 32.298 records is taken by the same CDR probe."""
    import bz2
    import gzip
    import lzma

    import zstandard

    from probes.cdr_ber import samples, schema

    files = split_cdr(small_world / "cdr.csv", tmp_path / "feed", hours=6)[:4]
    packers = (gzip.compress, bz2.compress, lzma.compress, zstandard.ZstdCompressor().compress)
    packed = []
    for f, pack in zip(files, packers):
        packed.append(tmp_path / "packed" / f"{f.stem}.dat")
        packed[-1].parent.mkdir(exist_ok=True)
        packed[-1].write_bytes(pack(f.read_bytes()))
    plain_db, packed_db = pg_dsn, pg_dsn.rsplit("/", 1)[0] + "/" + pg_dsn.rsplit("/", 1)[1] + "_z"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{packed_db.rsplit("/", 1)[1]}"')
    finally:
        await admin.close()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        await run_daemon(write_config(tmp_path / "a", plain_db, small_model, small_world, files))
        ber = tmp_path / "ber" / "mediation-0001"
        ber.parent.mkdir()
        at = T0 + 23 * 3600 + 1800   # within the lateness of the last 6-hour file
        ber.write_bytes(samples.cdr_file([schema.encode(samples.mo_call(start=at)),
                                          schema.encode(samples.mt_sms(start=at + 60))]))
        await run_daemon(write_config(tmp_path / "b", packed_db, small_model, small_world,
                                      packed + [ber]))
        a, b = await snapshot(plain_db), await snapshot(packed_db)
    finally:
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{packed_db.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()
    assert a["flags"] == [f for f in b["flags"] if f[0] != samples.IMSI]
    assert a["counters"]["cdr"]["records"] + 2 == b["counters"]["cdr"]["records"]
    assert a["quarantine"] == b["quarantine"] == 0
    assert ("cdr", ber.name, "done", 2, 0) in b["files"]


@pytest.mark.captures
@pytest.mark.tshark
async def test_a_cdr_probe_takes_the_shared_ber_record_and_gtp_prime_capture(tmp_path, pg_dsn,
                                                                              small_model):
    """The real ePDG record, alone and inside its GTP' capture, through the daemon's CDR probe
    (both told by content): each file taken with its one record, the subscriber in the state
    with all 15 digits."""
    cfg = daemon_config(tmp_path, pg_dsn, small_model, f"""
[[probes]]
type = "cdr_csv"
name = "mediation"
files = [{json.dumps(str(CAPTURES / "ndpi_gtp_prime_epdgrecord.ber"))},
         {json.dumps(str(CAPTURES / "ndpi_gtp_prime.pcapng"))}]
""")
    await run_daemon(cfg)
    conn = await asyncpg.connect(pg_dsn)
    try:
        files = {r["name"]: (r["status"], r["records"], r["rejected"])
                 for r in await conn.fetch("SELECT * FROM ingested_files")}
        sims = await conn.fetch("SELECT imsi FROM sim_state")
    finally:
        await conn.close()
    assert files == {"ndpi_gtp_prime_epdgrecord.ber": ("done", 1, 0),
                     "ndpi_gtp_prime.pcapng": ("done", 1, 0)}
    assert [imsi_text(r["imsi"]) for r in sims] == ["310012000000000"]


@pytest.mark.parametrize("make", SHAPES, ids=lambda m: m.__name__)
async def test_the_daemon_reads_each_carrier_shape_through_its_layout(tmp_path, pg_dsn, small_model,
                                                                      make):
    """An MSC export, an MSISDN-keyed extract and an integer-cell call history (docs/feeds.md)
    through the daemon's CDR probe with their layouts: every good row taken, every bad one
    quarantined at its line, as ``score`` and ``check-feed`` read them."""
    shape = make()
    feed = shape.write(tmp_path)
    sections = shape.toml.replace('watch = "in"', f"files = [{json.dumps(str(feed))}]")
    await run_daemon(daemon_config(tmp_path, pg_dsn, small_model, sections))
    conn = await asyncpg.connect(pg_dsn)
    try:
        done = await conn.fetchrow("SELECT status, records, rejected FROM ingested_files "
                                   "WHERE name = $1", feed.name)
        lines = [r["line"] for r in await conn.fetch(
            "SELECT line FROM quarantine WHERE source = $1 ORDER BY line", feed.name)]
    finally:
        await conn.close()
    assert tuple(done) == ("done", len(shape.rows) - len(shape.bad), len(shape.bad))
    assert lines == sorted(shape.bad)
