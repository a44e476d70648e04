"""Fixtures of the scale-out tests: the real NATS server on 127.0.0.1:4222 (.ci/run starts
one), a stream and subject prefix of each test's own (deleted afterwards), run configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import ADMIN_DSN, _dsn_for

NATS_URL = os.environ.get("GOIPWATCH_TEST_NATS", "nats://127.0.0.1:4222")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def scale_names():
    """A factory of (stream, subject prefix) unique to this test; the streams are deleted
    at the end."""
    import nats

    made: list[str] = []

    def new() -> tuple[str, str]:
        tag = uuid.uuid4().hex[:10]
        made.append(f"GWTEST_{tag}")
        return made[-1], f"gwtest.{tag}"

    yield new
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    for stream in made:
        try:
            await js.delete_stream(stream)
        except Exception:  # never made (the test failed before)
            pass
    await nc.close()


@pytest.fixture
async def make_db():
    """A factory of fresh databases beyond ``pg_dsn``, dropped at the end."""
    names: list[str] = []

    async def new() -> str:
        names.append(f"gw_test_{uuid.uuid4().hex[:12]}")
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{names[-1]}"')
        finally:
            await admin.close()
        return _dsn_for(names[-1])

    yield new
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        for n in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')
    finally:
        await admin.close()


def write_scale_config(tmp: Path, dsn: str, model: Path, stream: str, prefix: str,
                       partitions: int = 3, fetch_batch: int = 64, block_bytes: int = 1 << 20) -> Path:
    cfg = tmp / f"{stream}.toml"
    cfg.write_text(f"""
[daemon]
state_dir = {json.dumps(str(tmp / "state"))}
log_level = "warning"
[store]
dsn = {json.dumps(dsn)}
[detector]
model = {json.dumps(str(model))}
[[probes]]
type = "cdr_csv"
name = "cdr"
watch = {json.dumps(str(tmp))}
block_bytes = {block_bytes}
[scale]
nats_url = {json.dumps(NATS_URL)}
stream = {json.dumps(stream)}
subject_prefix = {json.dumps(prefix)}
partitions = {partitions}
fetch_batch = {fetch_batch}
""")
    return cfg


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "detector.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def run_cli(*args: str, timeout: float = 120) -> str:
    p = cli(*args)
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"goipwatch {args[0]} failed ({p.returncode}):\n{err}"
    return err


@pytest.fixture(scope="session")
def scale_world(tmp_path_factory):
    """(world directory, model path): a small world (500 SIMs, 2 days, a gateway among
    them) and a model trained on its first day, so that each replay takes seconds."""
    from detector import batch, model
    from detector.world.simulate import WorldParams, simulate_world

    out = tmp_path_factory.mktemp("scale_world")
    simulate_world(WorldParams(subscribers=500, days=2, seed=11), out)
    loaded = batch.load_files([out / "cdr.csv"], [out / "subscribers.csv"])
    start = int(loaded.cdr.ts.min()) // 86400 * 86400
    path, _ = model.save(batch.train_on(loaded, start=start, end=start + 86400),
                         tmp_path_factory.mktemp("scale_model") / "m.skops")
    return out, path
