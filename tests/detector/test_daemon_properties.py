"""A property of the daemon's intake, through its real path and the real store: a file of
good rows mixed with bad ones (NUL bytes, bytes that are not UTF-8, stray quotes and carriage
returns) leaves exactly the state the good rows alone leave, and each bad row is quarantined
with its line, its reason and its bytes."""

from __future__ import annotations

import json
import tempfile
from dataclasses import astuple
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector import config as config_mod
from detector.daemon import Daemon
from detector.testing import daemon_config
from probes.csvparse import CDR_FIELDS
from tests.probes.test_csvparse_properties import good_rows, noise_text

MODEL = Path(__file__).resolve().parents[2] / "models" / "goipwatch.skops"
HEADER = ",".join(CDR_FIELDS).encode()


@st.composite
def bad_lines(draw) -> bytes:
    """A line no layout accepts: a good row with a NUL in one field, or bytes that are not
    UTF-8."""
    if draw(st.booleans()):
        return b"\xff" + draw(st.binary(max_size=40)).replace(b"\n", b"")
    fields = list(astuple(draw(good_rows())))
    i = draw(st.integers(0, len(fields) - 1))
    fields[i] = draw(noise_text) + "\x00" + draw(noise_text)
    return ",".join(fields).encode()


lines = st.lists(st.one_of(good_rows().map(lambda r: (True, ",".join(astuple(r)).encode())),
                           bad_lines().map(lambda b: (False, b))), min_size=1, max_size=12)


@pytest.fixture
async def two_stores(pg_dsn):
    """The fixture's database and a second one beside it."""
    admin = await asyncpg.connect(pg_dsn)
    other = pg_dsn.rsplit("/", 1)[1] + "_good"
    await admin.execute(f'CREATE DATABASE "{other}"')
    await admin.close()
    yield pg_dsn, pg_dsn.rsplit("/", 1)[0] + "/" + other
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
    await admin.close()


async def intake(dsn: str, state: Path, body: bytes) -> dict:
    """Run the daemon once over a file holding ``body`` on an emptied store; what it left."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('schema_migrations', 'audit_log', 'audit_head')")]   # append-only
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    state.mkdir(parents=True)
    feed = state / "feed.csv"
    feed.write_bytes(body)
    cfg = daemon_config(state, dsn, MODEL, f'[[probes]]\ntype = "cdr_csv"\nname = "cdr"\n'
                                           f"files = [{json.dumps(str(feed))}]\n")
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        await daemon.run(until_done=True)
    finally:
        await daemon.close()
    conn = await asyncpg.connect(dsn)
    try:
        state_of = {}
        for table, key in (("sim_state", "imsi"), ("imei_state", "imei")):
            state_of[table] = await conn.fetchval(
                f"SELECT md5(string_agg({key}::text || encode(state, 'hex'), ',' ORDER BY {key})) "
                f"FROM {table}")
        return {
            "state": state_of,
            "clock": await conn.fetchval("SELECT value FROM engine_state WHERE key = 'clock'"),
            "counters": json.loads(await conn.fetchval(
                "SELECT value FROM engine_state WHERE key = 'counters'") or "{}").get("cdr", {}),
            "file": tuple(await conn.fetchrow("SELECT status, records, rejected FROM ingested_files")),
            "flags": [tuple(r) for r in await conn.fetch("SELECT imsi, kind, score FROM flags ORDER BY 1, 2")],
            "quarantine": [tuple(r) for r in await conn.fetch(
                "SELECT line, reason, raw_bytes FROM quarantine ORDER BY line")],
        }
    finally:
        await conn.close()


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines)
async def test_good_rows_beside_bad_ones_leave_the_state_of_the_good_rows_alone(two_stores, rows):
    mixed_dsn, good_dsn = two_stores
    good = [line for ok, line in rows if ok]
    bad = {n + 2: line for n, (ok, line) in enumerate(rows) if not ok}   # line 1: the header
    with tempfile.TemporaryDirectory() as tmp:
        mixed = await intake(mixed_dsn, Path(tmp) / "mixed",
                             b"\n".join([HEADER] + [line for _, line in rows]) + b"\n")
        alone = await intake(good_dsn, Path(tmp) / "good", b"\n".join([HEADER] + good) + b"\n")
    assert mixed["state"] == alone["state"] and mixed["clock"] == alone["clock"]
    assert mixed["flags"] == alone["flags"]
    assert mixed["counters"]["records"] == alone["counters"]["records"] == len(good)
    assert mixed["counters"]["rejected"] == len(bad) and alone["counters"]["rejected"] == 0
    assert mixed["file"] == ("done", len(good), len(bad))
    assert [line for line, _, _ in mixed["quarantine"]] == sorted(bad)
    for line, reason, raw in mixed["quarantine"]:
        assert reason
        # the line without its ending (a CR before the newline); \xNN where not UTF-8
        expected = bad[line].removesuffix(b"\r").decode("utf-8", "backslashreplace").encode()
        assert bytes(raw) == expected
