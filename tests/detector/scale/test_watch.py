"""``goipwatch publish --watch`` on the real NATS server and PostgreSQL: a file that fails is
logged, counted and quarantined with its reason, and the probes go on; a probe task that
dies ends the publisher with a non-zero status (systemd restarts it)."""

import asyncio
import signal
import time

import asyncpg
import nats

from detector.scale.commands import supervise
from detector.testing import Row, at, imsi, write_cdr
from tests.detector.scale.conftest import NATS_URL, cli, write_scale_config


async def until(conn, sql: str, *args, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (v := await conn.fetchval(sql, *args)):
            return v
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {sql} {args}")


async def test_a_failing_file_is_quarantined_and_the_watch_goes_on(small_model, pg_dsn, scale_names,
                                                                    tmp_path):
    stream, prefix = scale_names()
    drop = tmp_path / "drop"
    drop.mkdir()
    cfg = write_scale_config(tmp_path, pg_dsn, small_model, stream, prefix)
    cfg.write_text(cfg.read_text().replace(f'watch = "{tmp_path}"', f'watch = "{drop}"\nsettle_s = 0.2'))
    proc = cli("publish", "--config", str(cfg), "--watch")
    conn = await asyncpg.connect(pg_dsn)
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        await until(conn, "SELECT to_regclass('scale_streams') IS NOT NULL")   # the store is made
        await until(conn, "SELECT 1 FROM scale_streams WHERE stream = $1", stream)
        await js.delete_stream(stream)        # JetStream loses the stream: publishing fails
        write_cdr(drop / "first.csv", [Row(start_time=at(60 * i), imsi=imsi(i)) for i in range(5)])
        reason = await until(conn, "SELECT reason FROM quarantine WHERE source = 'first.csv'")
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"])   # it is back
        write_cdr(drop / "second.csv", [Row(start_time=at(600 + 60 * i), imsi=imsi(i)) for i in range(5)])
        await until(conn, "SELECT 1 FROM scale_published WHERE name = 'second.csv'")
        assert proc.poll() is None, "the publisher keeps running"
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0, err
        assert reason.startswith("publish failed: PublishError") and stream in reason
        assert await conn.fetchval("SELECT count(*) FROM quarantine WHERE source = 'first.csv'") == 1
        assert "file not published" in err and "first.csv" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await conn.close()
        await nc.close()


async def test_a_probe_task_that_dies_ends_the_publisher_non_zero():
    stopping = asyncio.Event()

    async def dies():
        await asyncio.sleep(0.05)
        raise RuntimeError("watch loop broke")

    async def runs():
        await stopping.wait()

    assert await supervise([asyncio.create_task(dies()), asyncio.create_task(runs())], stopping) == 1
    calm = [asyncio.create_task(runs())]
    asyncio.get_running_loop().call_later(0.05, stopping.set)
    assert await supervise(calm, stopping) == 0
