"""The publisher on the real NATS JetStream server and PostgreSQL: each file once, bad rows
and late records quarantined with their reasons, ticks to every partition, a file published
again after a crash de-duplicated by JetStream."""

from collections import Counter

import nats

from detector.scale import codec
from detector.scale.bus import connect
from detector.scale.config import ScaleConfig
from detector.scale.partition import partition_of
from detector.scale.publisher import Publisher
from detector.store.db import connect as store_connect
import pytest

from detector.testing import T0, Row, at, imsi, write_cdr
from tests.detector.scale.conftest import NATS_URL


async def stream_messages(js, stream: str, prefix: str) -> list[tuple[str, codec.Message]]:
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        m = await js.get_msg(stream, seq)
        out.append((m.subject, codec.decode(m.data)))
    return out


async def test_publish_once_with_quarantine_and_ticks(pg_dsn, scale_names, tmp_path):
    stream, prefix = scale_names()
    cfg = ScaleConfig(nats_url=NATS_URL, stream=stream, subject_prefix=prefix, partitions=3)
    rows = [Row(start_time=at(60 * i), imsi=imsi(i % 5)) for i in range(30)]     # 0:00 .. 0:29
    rows.append(Row(start_time=at(1000), imsi="not-an-imsi"))                    # malformed
    rows.append(Row(start_time=at(1001), imsi="46000\x000000001"))              # a NUL byte
    rows.append(Row(start_time=at(7200), imsi=imsi(1)))                         # 2:00
    cdr = write_cdr(tmp_path / "cdr.csv", rows)
    later = write_cdr(tmp_path / "later.csv", [Row(start_time=at(600), imsi=imsi(2)),    # 0:10: late
                                               Row(start_time=at(7500), imsi=imsi(3))])
    (tmp_path / "bad.csv").write_text("when,who\n1,2\n")
    pool = await store_connect(pg_dsn)
    nc, js = await connect(cfg)
    try:
        pub = Publisher(js, pool, cfg, interval_s=900, lateness_s=3600)
        await pub.open()
        done = await pub.publish_file(cdr, "cdr", "cdr")
        assert (done.status, done.records, done.rejected) == ("published", 31, 2)
        assert (await pub.publish_file(cdr, "cdr", "cdr")).status == "already"
        late = await pub.publish_file(later, "cdr", "cdr")
        assert (late.records, late.rejected) == (1, 1)
        bad = await pub.publish_file(tmp_path / "bad.csv", "cdr", "cdr")
        assert bad.status == "rejected"
        reasons = [r["reason"] for r in await pool.fetch("SELECT reason FROM quarantine ORDER BY id")]
        assert any("imsi" in r for r in reasons)
        raw = await pool.fetch("SELECT raw_bytes FROM quarantine WHERE position('\\x00' in reason) > 0")
        assert [bytes(r["raw_bytes"]).count(b"\x00") for r in raw] == [1]   # kept as read
        assert any(r.startswith("late: event time") for r in reasons)
        assert "bad.csv" in reasons[-1]

        msgs = await stream_messages(js, stream, prefix)
        assert len(msgs) == done.messages + late.messages
        ticks = [(s, m.fields["at"]) for s, m in msgs if m.kind == "tick"]
        # 0:15 .. 2:00 (the tick boundaries crossed), each to all 3 partitions
        assert Counter(at_ for _, at_ in ticks) == {T0 + 900 * k: 3 for k in range(1, 9)}
        for subject, m in msgs:
            if m.kind == "cdr":
                assert set(partition_of(m.columns["imsi"], 3)) == {int(subject.rsplit(".", 1)[1])}
        assert sum(len(m.columns["imsi"]) for _, m in msgs if m.kind == "cdr") == 32

        # a crash after sending, before the commit: the file goes out again, JetStream drops it
        await pool.execute("DELETE FROM scale_published")
        await pool.execute("UPDATE scale_streams SET watermark = 0, next_tick = 0")
        pub2 = Publisher(js, pool, cfg, interval_s=900, lateness_s=3600)
        await pub2.open()
        again = await pub2.publish_file(cdr, "cdr", "cdr")
        assert again.messages == done.messages
        assert len(await stream_messages(js, stream, prefix)) == done.messages + late.messages
    finally:
        await nc.close()
        await pool.close()


async def test_a_rejected_file_is_quarantined_once_across_restarts(pg_dsn, scale_names, tmp_path):
    stream, prefix = scale_names()
    cfg = ScaleConfig(nats_url=NATS_URL, stream=stream, subject_prefix=prefix, partitions=3)
    (tmp_path / "bad.csv").write_text("when,who\n1,2\n")
    pool = await store_connect(pg_dsn)
    nc, js = await connect(cfg)
    try:
        statuses = []
        for _ in range(3):   # three publisher starts, each offered the same file
            pub = Publisher(js, pool, cfg)
            await pub.open()
            statuses.append((await pub.publish_file(tmp_path / "bad.csv", "cdr", "cdr")).status)
        assert statuses == ["rejected", "already", "already"]
        assert await pool.fetchval("SELECT count(*) FROM quarantine WHERE source = 'bad.csv'") == 1
        assert await pool.fetchval("SELECT status FROM scale_published WHERE name = 'bad.csv'") == "rejected"
        assert await pool.fetchval("SELECT status FROM ingested_files WHERE name = 'bad.csv'") == "rejected"
    finally:
        await nc.close()
        await pool.close()


async def test_partition_count_is_fixed_per_stream(pg_dsn, scale_names):
    from detector.scale.publisher import PublishError

    stream, prefix = scale_names()
    pool = await store_connect(pg_dsn)
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        await Publisher(js, pool, ScaleConfig(nats_url=NATS_URL, stream=stream, subject_prefix=prefix,
                                              partitions=3)).open()
        other = Publisher(js, pool, ScaleConfig(nats_url=NATS_URL, stream=stream, subject_prefix=prefix,
                                                partitions=4))
        with pytest.raises(PublishError, match="was made with 3 partitions; scale.partitions says 4"):
            await other.open()
    finally:
        await nc.close()
        await pool.close()


async def test_publish_watch_takes_dropped_files_until_sigterm(scale_world, pg_dsn, scale_names, tmp_path):
    import asyncio
    import signal
    import time

    import asyncpg

    from tests.detector.scale.conftest import cli, write_scale_config

    stream, prefix = scale_names()
    drop = tmp_path / "drop"
    drop.mkdir()
    cfg = write_scale_config(drop, pg_dsn, scale_world[1], stream, prefix)   # its probe watches drop/
    cfg = cfg.rename(tmp_path / cfg.name)
    proc = cli("publish", "--config", str(cfg), "--watch")
    try:
        write_cdr(drop / "cdr-1.csv.part", [Row(start_time=at(60 * i), imsi=imsi(i % 4)) for i in range(20)])
        (drop / "cdr-1.csv.part").rename(drop / "cdr-1.csv")     # mediation's atomic rename
        conn = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            if conn is None:
                try:
                    conn = await asyncpg.connect(pg_dsn)
                except OSError:
                    continue
            if await conn.fetchval("SELECT to_regclass('scale_published') IS NOT NULL") and \
                    await conn.fetchval("SELECT records FROM scale_published WHERE name = 'cdr-1.csv'"):
                break
        assert await conn.fetchval("SELECT records FROM scale_published WHERE name = 'cdr-1.csv'") == 20
        await conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, err
