"""``goipwatch api`` as its own process: its pool is open and prepared before the first
request, it answers an audited lookup, reloads on SIGHUP and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import asyncpg

from tests.detector.api.conftest import BODY, IMSI, auth

ROOT = Path(__file__).resolve().parents[3]
POOL_SIZE = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, body: dict, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/lookups", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def _connections(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await conn.close()


async def test_the_api_process_serves_prepared_and_reloads_and_stops(pool, pg_dsn, tokens_file,
                                                                     tmp_path):
    port = _free_port()
    config = tmp_path / "goipwatch.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n\n'
        f'[store]\ndsn = "{pg_dsn}"\npool_size = {POOL_SIZE}\n\n'
        f'[api]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        f'tokens_file = "{tokens_file}"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = await _connections(pg_dsn)        # the test's own
    proc = subprocess.Popen([sys.executable, "-m", "detector.cli", "api", "--config", str(config)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                assert time.monotonic() < deadline, "goipwatch api did not start"
                await asyncio.sleep(0.2)
        # every connection of the pool is open before the first lookup
        assert await _connections(pg_dsn) - before == POOL_SIZE
        status, answer = await asyncio.to_thread(_post, port, BODY, auth("police"))
        assert status == 200 and [s["imsi"] for s in answer["subscribers"]] == [IMSI]
        assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'lookup' "
                                   "AND outcome = 'answered'") == 1
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not await pool.fetchval("SELECT count(*) FROM audit_log "
                                      "WHERE action = 'credentials.reload'"):
            assert time.monotonic() < deadline, "SIGHUP did not reload the credentials"
            await asyncio.sleep(0.1)
        assert proc.poll() is None            # SIGHUP reloads; it does not end the process
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
