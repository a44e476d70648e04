"""Benchmark: ingest + features + scoring, end to end, on a simulated carrier.

    python benchmarks/pipeline.py                     # 1,000,000 SIMs x 1 day (~23 M records)
    python benchmarks/pipeline.py --subscribers 100000

Simulates the world once (cached in --workdir), trains a model on a separate small world,
times the CDR probe's parse alone, then times the daemon's path: CSV blocks parsed by the
probe (the next block in a worker thread) and fed through the event-time pipeline (features,
5-minute scoring ticks, the rig stage, flags). Prints parse records/s, the pipeline's
records/s (time in ``Pipeline.feed`` while parsing runs beside it), the rig stage's share of
it, what a checkpoint's pass over the rigs costs (one after each block), end-to-end records/s, peak
memory, feature state bytes per SIM and the machine it ran on. As in the daemon, the model
is calibrated to the world's population as it is replayed (docs/calibration.md; the time of
its refits is printed). ``--no-rigs`` leaves the rig stage out and ``--no-calibration`` the
calibration (neither is the daemon's path).

For scale, it also times a reference on the same file in the same run: DuckDB (or polars when
DuckDB is not installed; ``pip install .[bench]``) reading the CSV and aggregating it per IMSI
(records, distinct peers, cells and IMEIs, total duration, MO and MT counts: a one-shot batch
summary, with none of the detector's windows, ticks or rules), and prints our end-to-end rate
as a ratio of its rate. ``--no-reference`` skips it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow  # noqa: E402
import sklearn  # noqa: E402

from benchmarks.machine import machine  # noqa: E402
from detector import batch  # noqa: E402
from detector.features.engine import FeatureEngine  # noqa: E402
from detector.calibration import CalibrationPolicy, calibrator_for  # noqa: E402
from detector.pipeline import SCORING_INTERVAL_S, Pipeline  # noqa: E402
from detector.rigs.book import RigBook  # noqa: E402
from detector.scoring import Policy, Scorer  # noqa: E402
from detector.world.simulate import WorldParams, simulate_world  # noqa: E402
from probes.csvparse import read_feed_file  # noqa: E402


def world(workdir: Path, subscribers: int, days: int, seed: int) -> Path:
    out = workdir / f"world-{subscribers}x{days}-s{seed}"
    if not (out / "world.json").exists():
        t = time.perf_counter()
        simulate_world(WorldParams(subscribers=subscribers, days=days, seed=seed), out)
        print(f"simulated {out.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return out


# the per-IMSI summary the reference computes: what a batch tool does with one pass of the file
_REFERENCE_SQL = """
SELECT count(*) AS imsis, sum(n) AS records FROM (
  SELECT imsi, count(*) AS n, count(DISTINCT peer) AS peers, count(DISTINCT cell_id) AS cells,
         count(DISTINCT imei) AS imeis, sum(duration_s) AS duration_s,
         count(*) FILTER (WHERE direction = 'MO') AS mo, count(*) FILTER (WHERE direction = 'MT') AS mt
  FROM read_csv(?, header = true) GROUP BY imsi)
"""


def reference(cdr: Path) -> dict[str, object] | None:
    """Read ``cdr`` and aggregate it per IMSI with DuckDB (else polars); None when neither
    is installed. Returns the tool, its records/s and the IMSIs it summarised."""
    try:
        import duckdb
    except ImportError:
        duckdb = None
    t = time.perf_counter()
    if duckdb is not None:
        with duckdb.connect() as con:
            imsis, records = con.execute(_REFERENCE_SQL, [str(cdr)]).fetchone()
            threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        tool = f"duckdb {duckdb.__version__} ({threads} threads)"
    else:
        try:
            import polars as pl
        except ImportError:
            return None
        df = pl.read_csv(cdr).group_by("imsi").agg(
            pl.len().alias("n"), pl.col("peer").n_unique(), pl.col("cell_id").n_unique(),
            pl.col("imei").n_unique(), pl.col("duration_s").sum(),
            (pl.col("direction") == "MO").sum().alias("mo"), (pl.col("direction") == "MT").sum().alias("mt"))
        imsis, records = len(df), int(df["n"].sum())
        tool = f"polars {pl.__version__}"
    took = time.perf_counter() - t
    return {"tool": tool, "records_per_s": round(records / took), "imsis": imsis, "s": round(took, 2)}


def timed(obj, method: str) -> list[float]:
    """Wrap ``obj.method`` so that its calls' time adds up in the returned one-item list
    (nothing when ``obj`` is None)."""
    total = [0.0]
    if obj is not None:
        inner = getattr(obj, method)

        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                total[0] += time.perf_counter() - t
        setattr(obj, method, wrapper)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--interval", type=int, default=SCORING_INTERVAL_S, help="scoring tick, s of event time")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/goipwatch-bench"))
    ap.add_argument("--no-rigs", action="store_true", help="leave the rig stage out")
    ap.add_argument("--no-calibration", action="store_true", help="score with the model as it is")
    ap.add_argument("--no-reference", action="store_true", help="skip the DuckDB/polars reference")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    train_world = world(args.workdir, 20_000, 2, args.seed + 1000)
    model = batch.train_on(batch.load_files([train_world / "cdr.csv"],
                                            [train_world / "subscribers.csv"]))
    w = world(args.workdir, args.subscribers, args.days, args.seed)
    size_mb = (w / "cdr.csv").stat().st_size / 1e6

    regs = batch.load_files([], [w / "subscribers.csv"]).registrations
    engine = FeatureEngine()
    scorer = Scorer(model, Policy())
    book = None if args.no_rigs else RigBook(engine, scorer)
    calibrator = None if args.no_calibration else \
        calibrator_for(model, scorer.policy, CalibrationPolicy())
    t_refit = timed(calibrator, "refit")     # the refits' share of the pipeline's time
    pipe = Pipeline(engine, scorer, args.interval, rigs=book, calibrator=calibrator)
    pipe.register(regs)
    t_rigs = timed(book, "extend")           # the rig stage's share of the pipeline's time

    # parse alone (the probe's share), then the daemon's path: blocks parsed in a worker
    # thread while the main thread feeds the previous one through the pipeline
    t0 = time.perf_counter()
    parsed_records = sum(len(p.batch) for p in read_feed_file(w / "cdr.csv", "cdr"))
    t_parse = time.perf_counter() - t0

    records = flags = 0
    t_pipe = 0.0
    t0 = time.perf_counter()
    passes: list[float] = []   # a checkpoint after each block: the rig rows it finds stale

    def checkpoint_rigs() -> None:
        t = time.perf_counter()
        book.saved(book.unsaved_rigs())
        passes.append(time.perf_counter() - t)

    for parsed in read_feed_file(w / "cdr.csv", "cdr"):
        t = time.perf_counter()
        flags += len(pipe.feed(parsed.batch).flags)
        t_pipe += time.perf_counter() - t
        records += len(parsed.batch)
        if book is not None:
            checkpoint_rigs()
    t = time.perf_counter()
    flags += len(pipe.score_dirty())
    t_pipe += time.perf_counter() - t
    total = time.perf_counter() - t0 - sum(passes)   # checkpoints are not the pipeline's
    assert records == parsed_records
    rigs = {}
    if book is not None:
        checkpoint_rigs()
        t = time.perf_counter()
        every = book.rigs()
        rigs = {"rigs": len(every), "sims_in_rigs": sum(len(r.sims) for r in every),
                "rig_stage_s": round(t_rigs[0], 2),
                "checkpoint_rig_pass_ms": round(1000 * sum(passes) / len(passes), 1),
                "checkpoint_rig_pass_max_ms": round(1000 * max(passes), 1),
                "building_every_rig_ms": round((time.perf_counter() - t) * 1000, 1)}
    state = engine.state_bytes()
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # before the reference runs
    ref = None if args.no_reference else reference(w / "cdr.csv")
    compared = {"reference": ref, "end_to_end_vs_reference": round(records / total / ref["records_per_s"], 3)} \
        if ref else {"reference": None}
    result = {
        "world": w.name, "records": records, "sims": state["sims"], "cdr_mb": round(size_mb),
        "scoring_interval_s": args.interval,
        "parse_records_per_s": round(records / t_parse),
        "features_and_scoring_records_per_s": round(records / t_pipe),
        "end_to_end_records_per_s": round(records / total),
        "end_to_end_s": round(total, 1),
        "flags": flags,
        **rigs,
        "calibration_refits_s": round(t_refit[0], 2) if calibrator is not None else None,
        "state_bytes_per_sim": round(state["bytes_per_sim"], 1),
        "state_parts_per_sim": state["parts_per_sim"],
        "sim_record_bytes": state["sim_record_bytes"],
        "imeis": state["imeis"],
        "peak_rss_gib": round(peak_gib, 2),
        **compared,
        "machine": machine(numpy=np.__version__, pyarrow=pyarrow.__version__,
                           **{"scikit-learn": sklearn.__version__}),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
