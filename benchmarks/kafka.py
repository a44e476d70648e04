"""Benchmark: the Kafka probe against librdkafka's mock cluster, alone and in the daemon.

    python benchmarks/kafka.py                          # 5,000 SIMs x 1 day (~117 k records)
    python benchmarks/kafka.py --subscribers 2000 --rows-per-message 100

Simulates a world (cached in --workdir), produces its CDRs to a mock cluster (lz4, rows spread
over the topic's 4 partitions by IMSI, so that each SIM's records stay in order; the mock
keeps ~5 MB per partition, which bounds the world), then times:

- **consume + parse**: the probe's own loop (micro-batches fetched and parsed into CdrBatch),
  without the daemon;
- **daemon**: ``goipwatch run --until-done`` in-process with the Kafka probe: consume, parse,
  features, scoring ticks and one store checkpoint (with the offsets) per micro-batch, on the
  PostgreSQL of --dsn (a scratch database is created and dropped).

Prints a JSON object with both rates, the micro-batch size, records quarantined as late
(partitions are consumed side by side, so one may run ahead in event time) and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402

from benchmarks.machine import machine  # noqa: E402
from detector import config as config_mod  # noqa: E402
from detector.daemon import Daemon  # noqa: E402
from detector.world.simulate import WorldParams, simulate_world  # noqa: E402
from probes.kafka import KafkaProbe  # noqa: E402
from probes.kafka_testing import MockKafka  # noqa: E402

PARTITIONS = 4


def world(workdir: Path, subscribers: int, days: int, seed: int) -> Path:
    out = workdir / f"world-{subscribers}x{days}-s{seed}"
    if not (out / "world.json").exists():
        simulate_world(WorldParams(subscribers=subscribers, days=days, seed=seed), out)
    return out


def produce(kafka: MockKafka, topic: str, cdr: Path, rows_per_message: int) -> tuple[int, int]:
    """Rows by IMSI onto the partitions, ``rows_per_message`` to a message; (messages, rows)."""
    parts: list[list[bytes]] = [[] for _ in range(PARTITIONS)]
    rows = 0
    with cdr.open("rb") as fh:
        fh.readline()
        for line in fh:
            imsi = line.split(b",", 5)[4]
            parts[zlib.crc32(imsi) % PARTITIONS].append(line)
            rows += 1
    messages = 0
    for p, lines in enumerate(parts):
        values = [b"".join(lines[i:i + rows_per_message]) for i in range(0, len(lines), rows_per_message)]
        messages += kafka.produce(topic, values, partition=p)
    return messages, rows


def probe_config(bootstrap: str, topic: str, batch_messages: int) -> str:
    return f"""[[probes]]
type = "kafka"
name = "kafka"
[probes.kafka]
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
batch_messages = {batch_messages}
batch_s = 1.0
"""


def consume_and_parse(cfg: config_mod.Config) -> tuple[int, float]:
    """The probe's loop without the daemon: fetch, parse, until the topic's end."""
    probe = KafkaProbe(cfg.probes[0])
    probe.finite = True
    consumer = probe._open()
    try:
        started = time.perf_counter()
        probe._assign(consumer)
        records = 0
        while not probe.caught_up():
            messages = probe._collect(consumer)
            if messages:
                records += len(probe._work(messages).parsed.batch)
        return records, time.perf_counter() - started
    finally:
        consumer.close()


async def daemon_run(text: str, dsn: str, registrations: Path) -> tuple[dict, float]:
    cfg_regs = config_mod.parse(__import__("tomllib").loads(text.split("[[probes]]")[0] + f"""
[[probes]]
type = "registrations_csv"
name = "registrations"
files = [{json.dumps(str(registrations))}]
"""))
    for cfg, timed in ((cfg_regs, False), (config_mod.parse(__import__("tomllib").loads(text)), True)):
        daemon = Daemon(cfg)
        try:
            await daemon.open()
            started = time.perf_counter()
            await daemon.run(until_done=True)
            took = time.perf_counter() - started
        finally:
            await daemon.close()
    conn = await asyncpg.connect(dsn)
    try:
        counters = json.loads(await conn.fetchval("SELECT value FROM engine_state WHERE key = 'counters'"))
        counters["flags"] = await conn.fetchval("SELECT count(*) FROM flags")
    finally:
        await conn.close()
    return counters, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=5_000)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--rows-per-message", type=int, default=500)
    ap.add_argument("--batch-messages", type=int, default=100)
    ap.add_argument("--model", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "goipwatch.skops")
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="admin DSN of the server to create the scratch database on")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/goipwatch-bench"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    w = world(args.workdir, args.subscribers, args.days, args.seed)

    kafka = MockKafka()
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    t = time.perf_counter()
    messages, rows = produce(kafka, topic, w / "cdr.csv", args.rows_per_message)
    produce_s = time.perf_counter() - t
    kept = kafka.retained(topic)
    if kept != messages:
        raise SystemExit(f"the mock cluster kept {kept} of {messages} messages (~5 MB a "
                         f"partition): use fewer --subscribers")

    base, _, _ = args.dsn.rpartition("/")
    db = f"gw_bench_{uuid.uuid4().hex[:8]}"
    dsn = f"{base}/{db}"
    text = f"""
[daemon]
state_dir = {json.dumps(str(args.workdir / "kafka-state"))}
idle_score_s = 0.0
[store]
dsn = {json.dumps(dsn)}
[detector]
model = {json.dumps(str(args.model))}
""" + probe_config(kafka.bootstrap, topic, args.batch_messages)
    records, parse_s = consume_and_parse(config_mod.parse(__import__("tomllib").loads(text)))

    async def with_db():
        admin = await asyncpg.connect(args.dsn)
        await admin.execute(f'CREATE DATABASE "{db}"')
        await admin.close()
        try:
            return await daemon_run(text, dsn, w / "subscribers.csv")
        finally:
            admin = await asyncpg.connect(args.dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            await admin.close()

    counters, daemon_s = asyncio.run(with_db())
    kafka.close()
    k = counters["kafka"]
    print(json.dumps({
        "world": w.name, "rows": rows, "messages": messages, "partitions": PARTITIONS,
        "rows_per_message": args.rows_per_message, "batch_messages": args.batch_messages,
        "produce_s": round(produce_s, 2),
        "consume_parse": {"records": records, "seconds": round(parse_s, 2),
                          "records_per_s": round(records / parse_s)},
        "daemon": {"records": k["records"], "quarantined_late": k.get("rejected", 0),
                   "messages": k["messages"], "flags": counters["flags"],
                   "seconds": round(daemon_s, 2),
                   "records_per_s": round((k["records"] + k.get("rejected", 0)) / daemon_s)},
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
