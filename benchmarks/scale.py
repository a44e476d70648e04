"""Benchmark: the scale-out over NATS JetStream with 1, 2 and 3 detector workers and the rig
stage, against ``goipwatch score`` on the same world and model.

    python benchmarks/scale.py                        # 20,000 SIMs x 2 days
    python benchmarks/scale.py --subscribers 100000 --days 1 --workers 1 2 3

Needs the NATS server on 127.0.0.1:4222 (JetStream) and PostgreSQL on 127.0.0.1:5432 (as
.ci/run starts them). Simulates the world once (cached in --workdir), trains a model on a
separate world and scores the world with ``goipwatch score`` (timed). Then, for each worker
count, it publishes the world to a stream and a fresh database of their own (timed: the
publisher's records/s, the fastest of the runs) and replays that stream with that many
``goipwatch worker`` processes and one ``goipwatch rigs``, timed from the first checkpoint
to the rig stage's last step (start-up excluded). Prints, per run, records/s, each
process's peak RSS, the SIMs the rig stage holds, the bytes of the summaries sent to it
and the comparison with ``score`` SIM by
SIM (each SIM's first flag: equal, missing, extra, later, earlier; rigs with the same
members); then the feature state bytes per SIM and the machine. The streams and the
databases are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402
import nats  # noqa: E402
import numpy as np  # noqa: E402
import sklearn  # noqa: E402

from benchmarks.machine import machine  # noqa: E402
from detector.records import parse_iso  # noqa: E402
from benchmarks.pipeline import world  # noqa: E402
from detector import batch, model as model_mod  # noqa: E402
from detector.features import state as st  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADMIN = os.environ.get("GOIPWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("GOIPWATCH_TEST_NATS", "nats://127.0.0.1:4222")


def dsn_for(db: str) -> str:
    return ADMIN.rpartition("/")[0] + "/" + db


def config(path: Path, dsn: str, model: Path, stream: str, prefix: str, partitions: int,
           fetch_batch: int) -> Path:
    path.write_text(f"""
[daemon]
state_dir = {json.dumps(str(path.parent / "state"))}
log_level = "warning"
[store]
dsn = {json.dumps(dsn)}
[detector]
model = {json.dumps(str(model))}
[scale]
nats_url = {json.dumps(NATS_URL)}
stream = {json.dumps(stream)}
subject_prefix = {json.dumps(prefix)}
partitions = {partitions}
fetch_batch = {fetch_batch}
""")
    return path


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "detector.cli", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def run_workers(cfg: Path, dsn: str, n: int, final: dict[int, int]) -> dict:
    """Replay the stream with ``n`` workers and the rig stage; times the first checkpoint to
    the rig stage's last step (the flush that ends the stream)."""
    procs = [cli("worker", "--config", str(cfg), "--index", str(i), "--of", str(n), "--until-idle", "3")
             for i in range(n)]
    # the rig stage waits for summaries while the workers start and commit: on a busy machine
    # a worker can send none for longer than 10 s (the clock below stops at its last step)
    procs.append(cli("rigs", "--config", str(cfg), "--until-idle", "60"))
    peaks = [0.0] * len(procs)
    started = workers_done = finished = None
    conn = None
    while any(p.poll() is None for p in procs):
        peaks = [max(pk, peak_rss_mib(p.pid)) for pk, p in zip(peaks, procs)]
        if conn is None:
            try:
                conn = await asyncpg.connect(dsn)
            except (OSError, asyncpg.PostgresError):
                pass
        if conn is not None and finished is None and \
                await conn.fetchval("SELECT to_regclass('scale_partitions') IS NOT NULL"):
            rows = {r["partition"]: r for r in await conn.fetch(
                "SELECT partition, last_seq, next_tick FROM scale_partitions")}
            if started is None and any(r["last_seq"] for p, r in rows.items() if p >= 0):
                started = time.perf_counter()
            if workers_done is None and all(p in rows and rows[p]["last_seq"] >= s for p, s in final.items()):
                workers_done = time.perf_counter()
            if -1 in rows and rows[-1]["next_tick"] == 1:    # the rig stage handled the flush
                finished = time.perf_counter()
        await asyncio.sleep(0.05)
    for p in procs:
        if p.returncode:
            raise RuntimeError(f"{p.args[3]} failed: {p.stderr.read()}")
    counters = {}
    for (c,) in await conn.fetch("SELECT counters FROM scale_partitions WHERE partition >= 0"):
        for k, v in json.loads(c).items():
            counters[k] = counters.get(k, 0) + v
    sims = await conn.fetchval("SELECT count(*) FROM scale_state WHERE kind = 's' AND partition >= 0")
    stage_sims = await conn.fetchval("SELECT count(*) FROM scale_state WHERE partition = -1 AND kind = 's'")
    flags = await first_flags(conn)
    rigs = [set(json.loads(r["members"])) for r in await conn.fetch("SELECT members FROM rigs")]
    await conn.close()
    now = time.perf_counter()
    seconds = (finished or now) - (started or now)
    records = counters.get("records", 0)
    return {"workers": n, "records": records, "seconds": round(seconds, 1),
            "records_per_s": round(records / max(seconds, 1e-9)),
            "workers_seconds": round((workers_done or now) - (started or now), 1),
            "rig_stage_finished": finished is not None,   # it handled the flush before it left
            "flags": len(flags), "sims": sims, "rig_stage_sims": stage_sims, "worker_peak_rss_mib": [round(x) for x in peaks[:-1]],
            "rig_stage_peak_rss_mib": round(peaks[-1]), "_flags": flags, "_rigs": rigs}


async def first_flags(conn: asyncpg.Connection) -> dict[str, tuple[int, str]]:
    """Each flagged SIM's first flag: (event time, kind)."""
    out: dict[str, tuple[int, str]] = {}
    for r in await conn.fetch("SELECT imsi, kind, flagged_at FROM flags ORDER BY flagged_at, id"):
        out.setdefault(str(r["imsi"]), (int(r["flagged_at"].timestamp()), r["kind"]))
    return out


def score_flags(out: Path) -> tuple[dict[str, int], list[set[str]]]:
    """``goipwatch score``'s flags (SIM -> event time) and its rigs' members."""
    with out.open(newline="") as f:
        flags = {r["imsi"]: parse_iso(r["flagged_at"]) for r in csv.DictReader(f)}
    rigs_file = out.with_suffix(".rigs.jsonl")
    rigs = [set(json.loads(line)["sims"]) for line in rigs_file.read_text().splitlines() if line.strip()]
    return flags, rigs


def compare(single: dict[str, int], single_rigs: list[set[str]], scaled: dict[str, tuple[int, str]],
            scaled_rigs: list[set[str]]) -> dict:
    """The scale-out's flags against the single process's, SIM by SIM, and their rigs."""
    both = single.keys() & scaled.keys()
    late = sorted(scaled[s][0] - single[s] for s in both if scaled[s][0] > single[s])
    a = {frozenset(r) for r in single_rigs}
    b = {frozenset(r) for r in scaled_rigs}
    return {
        "flagged_single": len(single), "flagged_scale": len(scaled),
        "equal": sum(scaled[s][0] == single[s] for s in both),
        "missing": len(single.keys() - scaled.keys()), "extra": len(scaled.keys() - single.keys()),
        "later": len(late), "earlier": sum(scaled[s][0] < single[s] for s in both),
        "later_max_h": round(late[-1] / 3600, 1) if late else 0.0,
        "rigs_single": len(a), "rigs_scale": len(b), "rigs_same_members": len(a & b),
        "missing_sims": sorted(single.keys() - scaled.keys())[:20],   # the first 20, to look up
        "extra_sims": sorted(scaled.keys() - single.keys())[:20],
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--fetch-batch", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/goipwatch-bench"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    model_path = args.workdir / f"scale-model-s{args.seed}.skops"
    if not model_path.exists():
        train_world = world(args.workdir, 20_000, 2, args.seed + 1000)
        model_mod.save(batch.train_on(batch.load_files([train_world / "cdr.csv"],
                                                       [train_world / "subscribers.csv"])), model_path)
    w = world(args.workdir, args.subscribers, args.days, args.seed)
    scored = args.workdir / f"{w.name}-score.csv"
    t = time.perf_counter()
    # the workers score with the model as it is (calibration is per process, docs/scaling.md):
    # so does the reference
    plain = args.workdir / "uncalibrated.toml"
    plain.write_text("[detector.calibration]\nenabled = false\n")
    p = cli("score", "--cdr", str(w / "cdr.csv"), "--subscribers", str(w / "subscribers.csv"),
            "--model", str(model_path), "--config", str(plain), "--out", str(scored))
    _, err = p.communicate()
    if p.returncode:
        raise RuntimeError(f"score failed: {err}")
    score_s = time.perf_counter() - t
    single, single_rigs = score_flags(scored)
    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"GWBENCH_{tag}", f"gwbench.{tag}"
    dbs = []

    async def new_db() -> str:
        dbs.append(f"gw_bench_scale_{tag}_{len(dbs)}")
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'CREATE DATABASE "{dbs[-1]}"')
        await admin.close()
        return dsn_for(dbs[-1])

    async def publish(stream: str, prefix: str, dsn: str) -> tuple[float, int, int, dict[int, int]]:
        """The world onto ``stream`` (registrations into the store at ``dsn``, where the rig
        stage reads them); returns the seconds it took, the stream's CDR messages and bytes,
        and each partition's last sequence."""
        cfg = config(args.workdir / f"{stream}-pub.toml", dsn, model_path, stream, prefix,
                     args.partitions, args.fetch_batch)
        t = time.perf_counter()
        p = cli("publish", "--config", str(cfg), "--subscribers", str(w / "subscribers.csv"),
                "--cdr", str(w / "cdr.csv"), "--flush")
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError(f"publish failed: {err}")
        seconds = time.perf_counter() - t
        info = await js.stream_info(stream, subjects_filter=f"{prefix}.cdr.>")
        final = {part: (await js.get_last_msg(stream, f"{prefix}.cdr.{part}")).seq
                 for part in range(args.partitions)}
        return seconds, info.state.messages, info.state.bytes, final

    runs = []
    published = []
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        # a stream of its own for each worker count: the workers' summaries go to the same
        # stream, and a second run's would be taken for the first's repeats
        for n in args.workers:
            dsn = await new_db()
            stream_n, prefix_n = f"{stream}_{n}", f"{prefix}.w{n}"
            publish_s, msgs, stream_bytes, final = await publish(stream_n, prefix_n, dsn)
            published.append(publish_s)
            cfg = config(args.workdir / f"{stream_n}.toml", dsn, model_path, stream_n, prefix_n,
                         args.partitions, args.fetch_batch)
            try:
                run = await run_workers(cfg, dsn, n, final)
                # what the workers sent the rig stage: summaries, contacts between partitions included
                info = await js.stream_info(stream_n)
                run["summary_bytes"] = info.state.bytes - stream_bytes
                run["summary_bytes_per_record"] = round(run["summary_bytes"] / max(run["records"], 1), 1)
            finally:
                await js.delete_stream(stream_n)
            run["vs_score"] = compare(single, single_rigs, run.pop("_flags"), run.pop("_rigs"))
            runs.append(run)
            print(json.dumps(run), file=sys.stderr)
    finally:
        await nc.close()
        admin = await asyncpg.connect(ADMIN)
        for db in dbs:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
    publish_s = min(published)
    records = runs[0]["records"] if runs else 0
    index = 3 * 8
    result = {
        "world": w.name, "records": records, "partitions": args.partitions,
        "fetch_batch": args.fetch_batch, "stream_messages": msgs,
        "stream_bytes_per_record": round(stream_bytes / max(records, 1), 1),
        "publish_s": round(publish_s, 1), "publish_records_per_s": round(records / publish_s),   # fastest
        "score_s": round(score_s, 1), "score_records_per_s": round(records / score_s),
        "score_flagged": len(single), "score_rigs": len(single_rigs),
        "runs": runs,
        "sim_state_bytes_per_sim": st.SIM_STATE.itemsize + 4 + index,
        "imei_state_bytes_per_device": st.IMEI_STATE.itemsize + index,
        "machine": machine(numpy=np.__version__, **{"scikit-learn": sklearn.__version__,
                                                    "nats-server": _nats_version()}),
    }
    print(json.dumps(result, indent=1))


def _nats_version() -> str:
    try:
        return subprocess.run(["nats-server", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    asyncio.run(main())
