"""``goipwatch`` command line: run the daemon, score or train on files, simulate, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from detector import __version__
from detector.wording import counted


def _run_async(coro) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - declared dependency
        return asyncio.run(coro)
    return uvloop.run(coro)


def input_file(value: str) -> Path:
    """An input file argument: a directory is refused at once, with what to give instead (the
    daemon's ``watch`` takes directories; ``score`` and ``train`` replay named files)."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a directory: name its files (e.g. {value}/*.csv)")
    return path


CAPTURE_HELP = "pcap/pcapng files whose signalling joins the CDRs (cells, devices, attaches)"


def cmd_run(args: argparse.Namespace) -> int:
    from detector import config as config_mod
    from detector import logs
    from detector.daemon import serve

    cfg = config_mod.load(args.config)
    logs.setup(cfg.daemon.log_level)
    if args.idle_exit is not None and (args.idle_exit < 0 or not args.until_done):
        raise SystemExit("goipwatch run: --idle-exit takes seconds >= 0, with --until-done")
    return _run_async(serve(cfg, until_done=args.until_done, idle_exit_s=args.idle_exit))


def _layouts(args: argparse.Namespace):
    from detector import config as config_mod
    from probes.csvparse import CANONICAL

    if not args.config:
        return CANONICAL, CANONICAL
    cfg = config_mod.load(args.config)
    by_type = {p.type: p.layout for p in reversed(cfg.probes)}   # the first of each type
    cdr = by_type.get("cdr_csv", by_type.get("kafka", CANONICAL))
    return cdr, by_type.get("registrations_csv", CANONICAL)


def _rows_read(loaded) -> int:
    """CSV rows taken (signalling observations from captures are not rows)."""
    from detector.records import RecordType

    rows = int((loaded.cdr.record_type < RecordType.SIGNAL).sum())
    return rows + (len(loaded.registrations) if loaded.registrations is not None else 0)


MODEL_HELP = ("trained model (default: the configured [detector] model, else the shipped one), "
              "calibrated to the input's population as it is replayed, as the daemon does")
FIT_HELP = "instead, fit a model on the whole input first and score with it (no calibration)"


def cmd_score(args: argparse.Namespace) -> int:
    import numpy as np

    from detector import batch, config as config_mod

    cfg = config_mod.load(args.config) if args.config else config_mod.Config()
    cdr_layout, reg_layout = _layouts(args)
    loaded = batch.load_files(args.cdr, args.subscribers or [], cdr_layout, reg_layout,
                              args.capture or [])
    batch.report_rejected(loaded.rejected, args.out.with_name(args.out.stem + ".rejected.csv"),
                          read=_rows_read(loaded))
    scored = batch.detect(loaded, cfg, args.model, args.seed, args.fit_on_input)
    batch.write_outputs(scored, args.out)
    print(f"{counted(len(scored.flags), 'SIM')} flagged in {counted(len(scored.rigs), 'rig')}, of "
          f"{len(np.unique(loaded.cdr.imsi))} seen in {len(loaded.cdr)} records; "
          f"written to {args.out}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from detector import batch, config as config_mod, model as model_mod
    from detector.records import parse_iso

    cfg = config_mod.load(args.config) if args.config else config_mod.Config()
    cdr_layout, reg_layout = _layouts(args)
    loaded = batch.load_files(args.cdr, args.subscribers or [], cdr_layout, reg_layout,
                              args.capture or [])
    batch.report_rejected(loaded.rejected, args.out.with_name(args.out.stem + ".rejected.csv"),
                          read=_rows_read(loaded))
    trained = batch.train_on(
        loaded, seed=args.seed, interval_s=cfg.detector.scoring_interval_s,
        features=cfg.features, start=parse_iso(args.start) if args.start else None,
        end=parse_iso(args.end) if args.end else None)
    labels = None
    if args.confirmed:    # verdicts from several files (e.g. several regions) are one set
        labels = {imsi: v for path in args.confirmed for imsi, v in batch.read_labels(path).items()}
    if args.confirmed_from_store:
        if not args.config:
            raise config_mod.ConfigError("--confirmed-from-store reads the store of --config")
        from detector.feedback import verdicts
        labels = _on_store(cfg, verdicts)
    if labels is not None:
        trained = batch.add_reranker(loaded, trained, labels, cfg)
    path, manifest = model_mod.save(trained, args.out)
    print(f"model trained on {trained.manifest['rows']} SIM snapshots "
          f"({trained.manifest['training_window']['from']} .. "
          f"{trained.manifest['training_window']['to']}): {path}, {manifest}", file=sys.stderr)
    return 0


def _on_store(cfg, work):
    """``await work(pool)`` on the configured store (the embedded one is stopped after)."""
    from detector.store.db import session

    async def go():
        async with session(cfg.store, cfg.daemon.state_dir) as pool:
            return await work(pool)

    return _run_async(go())


def cmd_simulate(args: argparse.Namespace) -> int:
    from detector.world.simulate import WorldParams, simulate_world

    if args.generator == "boxgen":
        from detector.world.boxgen import BoxParams, simulate_boxworld

        if args.pcap or args.archive_hours:
            print("goipwatch simulate: error: --generator boxgen writes no capture and no archive "
                  "(--pcap, --archive-hours)", file=sys.stderr)
            return 2
        box = simulate_boxworld(BoxParams(subscribers=args.subscribers, days=args.days,
                                          seed=args.seed, mix=args.mix), args.out)
        print(f"world written to {box.out_dir}: {box.sims} SIMs, {box.records} records",
              file=sys.stderr)
        return 0
    summary = simulate_world(WorldParams(subscribers=args.subscribers, days=args.days,
                                         seed=args.seed, mix=args.mix, pcap=args.pcap,
                                         archive_hours=args.archive_hours), args.out)
    print(f"world written to {summary.out_dir}: {summary.subscribers} SIMs, "
          f"{summary.records} records in {summary.seconds:.1f} s", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from detector.world.targets import format_worlds

    worlds = args.world
    wrong = ""
    if args.flags and len(args.flags) != len(worlds):
        wrong = (f"--flags: {counted(len(args.flags), 'file')} for {counted(len(worlds), 'world')}; "
                 "give one per world")
    elif args.out and len(worlds) > 1:
        wrong = "--out names one result file: with several worlds each goes to DIR/evaluation.json"
    if wrong:
        print(f"goipwatch evaluate: error: {wrong}", file=sys.stderr)
        return 2
    verdicts = {}
    for i, world in enumerate(worlds):
        flags = args.flags[i] if args.flags else None
        verdicts[str(world)] = _evaluate_world(world, flags, args.out, args)
        print()
    if len(worlds) > 1:
        from detector.world.family import format_family

        print("== each world")
        print(format_family({w: ours for w, (ours, _) in verdicts.items()}))
        print()
        print("== all worlds")
        print(format_worlds(verdicts))
    return 0


def _evaluate_world(world: Path, flags_csv: Path | None, out: Path | None,
                    args: argparse.Namespace) -> tuple[dict, list]:
    """One world of ``goipwatch evaluate``: scored (unless ``flags_csv``), judged beside the
    baseline, printed and written; returns the detector's result and its targets check."""
    import dataclasses
    import json

    from detector import batch, config as config_mod
    from detector.records import RecordType
    from detector.world.baseline import run_baseline
    from detector.world.evaluate import evaluate, format_comparison, format_table
    from detector.world.family import world_info
    from detector.world.targets import check, format_checks

    cdr_csv, subs_csv, labels_csv = world / "cdr.csv", world / "subscribers.csv", world / "labels.csv"
    for f in (cdr_csv, labels_csv):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: not found (is {world} a simulated world?)")
    cfg = config_mod.load(args.config) if args.config else config_mod.Config()
    # a daemon deployed at the world's start reads the archive first (simulate --archive-hours)
    cdrs = [p for p in (world / "archive.csv", cdr_csv) if p.is_file()]
    captures = [] if args.no_signalling else \
        [p for p in (world / "archive.pcap", world / "signalling.pcap") if p.is_file()]
    loaded = batch.load_files(cdrs, [subs_csv] if subs_csv.is_file() else [], capture_paths=captures)
    if flags_csv is None:
        flags_csv = world / "flags.csv"
        batch.write_outputs(batch.detect(loaded, cfg, args.model, args.seed, args.fit_on_input),
                            flags_csv)
    baseline_csv = world / "baseline_flags.csv"
    run_baseline(cdr_csv, baseline_csv, score_quantile=cfg.detector.policy.score_quantile,
                 seed=args.seed, cdr=loaded.cdr.take(loaded.cdr.record_type < RecordType.SIGNAL))
    # the detector watched from the archive's start (simulate --archive-hours), else the world's
    watched = world_info(world)["watched_from"]
    ours = evaluate(labels_csv, flags_csv, cdr_csv, watched_from=watched)
    base = evaluate(labels_csv, baseline_csv, cdr_csv, watched_from=watched)
    print(format_table(ours, f"== goipwatch detector ({flags_csv})"))
    print()
    print(format_table(base, f"== naive baseline ({baseline_csv})"))
    print()
    print("== side by side")
    print(format_comparison({"ours": ours, "baseline": base}))
    print()
    checks = check(ours, base)
    print("== targets")
    print(format_checks(checks))
    out = out or world / "evaluation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"world": str(world), "flags": str(flags_csv), "ours": ours,
                               "baseline_flags": str(baseline_csv), "baseline": base,
                               "targets": [dataclasses.asdict(c) for c in checks]},
                              indent=2) + "\n", encoding="utf-8")
    print(f"evaluation written to {out}", file=sys.stderr)
    return ours, checks


def demo_state_dir() -> Path:
    """Where the demo keeps its world, feed files and embedded store when not told: the user's
    state directory (``$XDG_STATE_HOME``, else ``~/.local/state``), never the working directory,
    which is often a checkout. A second demo reuses it (the store is emptied first)."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "goipwatch" / "demo"


def cmd_demo(args: argparse.Namespace) -> int:
    from detector.demo import demo

    state_dir = args.state_dir or demo_state_dir()
    print(f"goipwatch demo: state in {state_dir} (--state-dir to choose another)")
    return _run_async(demo(state_dir, subscribers=args.subscribers, days=args.days,
                           seed=args.seed, dsn=args.dsn))


def cmd_status(args: argparse.Namespace) -> int:
    from detector import config as config_mod
    from detector.status import status

    return _run_async(status(config_mod.load(args.config), quarantine=args.quarantine))


def cmd_feedback(args: argparse.Namespace) -> int:
    from detector import config as config_mod, feedback

    async def work(pool) -> int:
        if args.verdict == "allow":
            kind, value = next((k, v) for k, v in (("imsi", args.imsi), ("id_hash", args.id_hash),
                                                    ("cell", args.cell)) if v)
            await feedback.allow(pool, kind, value, args.reason or "", args.by)
            print(f"allow-listed {kind} {value}: not flagged again")
        else:
            if not args.imsi:
                raise feedback.FeedbackError("confirm and dismiss take --imsi")
            n = await feedback.judge(pool, args.imsi, args.verdict, args.by, args.note or "")
            print(f"{args.verdict}: {counted(n, 'flag')} of {args.imsi} by {args.by}")
        return 0

    return _on_store(config_mod.load(args.config), work)


def cmd_inspect(args: argparse.Namespace) -> int:
    from probes.sniff import kind_of_file

    kind = kind_of_file(args.file)
    if kind == "empty":
        print(f"goipwatch inspect: error: {args.file}: an empty file", file=sys.stderr)
        return 2
    if kind in ("pcap", "pcapng") and not args.cdr:
        return _inspect_capture(args)
    if kind == "binary":
        from probes.cdrfile import cdr_format

        if cdr_format(args.file) != "ber":
            print(f"goipwatch inspect: error: {args.file}: neither a capture (pcap, pcapng) nor "
                  "a CDR file (CSV, BER)", file=sys.stderr)
            return 2
    return _inspect_cdr(args)


def _inspect_capture(args: argparse.Namespace) -> int:
    from probes.signalling import read_capture
    from probes.signalling.output import format_jsonl, format_table

    capture = read_capture(args.file)
    lines = format_jsonl(capture.events) if args.jsonl else format_table(capture.events)
    sys.stdout.writelines(f"{line}\n" for line in lines)  # print() costs twice per line
    sys.stdout.flush()
    if capture.error:  # the events above are those read before the damage
        print(f"goipwatch inspect: error: {capture.error} "
              f"({counted(len(capture.events), 'event')} read before it)", file=sys.stderr)
        return 1
    return 0


def _inspect_cdr(args: argparse.Namespace) -> int:
    """A CDR file (CSV in the configured layout, BER, a capture's GTP' CDRs; compressed or
    not) as canonical rows, one JSON object a line; refused records in their place."""
    import json

    from probes.cdrfile import canonical_rows, cdr_format
    from probes.csvparse import CANONICAL
    from probes.feedcheck import mark_pseudo

    fmt = cdr_format(args.file)
    layout = _layouts(args)[0] if fmt == "csv" else CANONICAL   # BER maps by the standard
    rows = refused = 0
    for row in canonical_rows(args.file, layout):
        refused += "rejected" in row
        rows += "rejected" not in row
        print(json.dumps(mark_pseudo(row, layout), ensure_ascii=False))
    sys.stdout.flush()
    pseudo = (f"; IMSIs are pseudo IMSIs derived from the {layout.subscriber_key} "
              "(\"pseudo_imsi\" in each row)") if layout.subscriber_key != "imsi" else ""
    print(f"goipwatch inspect: {args.file}: {fmt.replace('_', ' ')} CDRs: {counted(rows, 'record')}, "
          f"{refused} refused{pseudo}", file=sys.stderr)
    return 1 if refused else 0


def cmd_check_feed(args: argparse.Namespace) -> int:
    """A dry run of feed files through the configured layouts: rows that map, the commonest
    reasons for refusal with their lines, a sample of canonical rows. Exit 0 when every row
    maps, 1 when some are refused, 2 when a feed or the configuration cannot be used."""
    from detector import config as config_mod
    from probes import feedcheck
    from probes.cdrfile import cdr_format
    from probes.csvparse import FeedError

    candidates = feedcheck.CANONICAL_CANDIDATES
    if args.config:
        cfg = config_mod.load(args.config)
        candidates = tuple(feedcheck.Candidate(p.name, p.type, p.layout) for p in cfg.probes
                           if p.type in feedcheck.KIND_OF_PROBE)
        if args.probe:
            named = [c for c in candidates if c.name == args.probe]
            if not named:
                known = ", ".join(repr(c.name) for c in candidates) or "none"
                raise config_mod.ConfigError(f"{args.config}: no CSV or CDR probe is named "
                                             f"{args.probe!r} (they are: {known})")
            candidates = tuple(named)
    elif args.probe:
        raise config_mod.ConfigError("--probe names a probe of --config, which is not given")
    code = 0
    for i, feed in enumerate(args.feed):
        if i:
            print()
        try:
            probe = feedcheck.choose(feed, cdr_format(feed), candidates)
            check = feedcheck.check_feed(feed, probe, sample=args.sample)
        except FeedError as e:
            print(f"goipwatch check-feed: error: {e}", file=sys.stderr)
            code = 2
            continue
        for line in feedcheck.format_check(check):
            print(line)
        code = max(code, 1 if check.refused else 0)
    return code


def cmd_api(args: argparse.Namespace) -> int:
    """The API alone, against the daemon's store (a separate process from detection).
    SIGTERM/SIGINT stop it; SIGHUP reloads the credentials file (``start_api``)."""
    import signal

    from detector import config as config_mod, logs
    from detector.api import lifecycle
    from detector.daemon import serve_api
    from detector.store.db import opened

    cfg = config_mod.load(args.config)
    logs.setup(cfg.daemon.log_level)
    if cfg.api is None or not cfg.api.enabled:
        raise config_mod.ConfigError(f"{args.config}: no enabled [api] table")

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # the API leaves no session state on its connections: no reset at each release
        async with opened(cfg.store, cfg.daemon.state_dir, reset_session=False,
                          prepare=lifecycle.prepare_connection) as (pool, dsn):
            runner = await serve_api(pool, dsn, cfg)
            lifecycle.settle_memory()
            try:
                await stop.wait()
            finally:
                await runner.cleanup()
        return 0

    return _run_async(go())


def cmd_outbox(args: argparse.Namespace) -> int:
    import json

    from detector import config as config_mod
    from detector.verify import outbox_summary, requeue_dead

    async def work(pool) -> int:
        if args.action == "requeue":
            requeued = await requeue_dead(pool, args.request_id or None)
            print(f"{counted(requeued, 'dead letter')} queued again")
        else:
            print(json.dumps(await outbox_summary(pool), default=str, indent=1))
        return 0

    return _on_store(config_mod.load(args.config), work)


def cmd_audit(args: argparse.Namespace) -> int:
    """Walk the audit chain (against the heads of an anchor file with ``--anchor``); the run
    and its result are appended to the chain."""
    from detector import config as config_mod
    from detector.api import anchor, verify_audit
    from detector.api.audit import record_verification

    cfg = config_mod.load(args.config)
    try:
        anchors = anchor.read(args.anchor) if args.anchor else []
    except ValueError as e:        # unreadable or malformed: said before the store is opened
        raise config_mod.ConfigError(f"--anchor {e}") from None

    async def work(pool):
        report = await verify_audit(pool, anchors=[(a.seq, a.hash) for a in anchors])
        try:
            await record_verification(pool, report, "cli", args.anchor is not None)
        except Exception as e:       # a read-only role may verify; the result stands
            print(f"warning: the verification could not be recorded in the chain: {e}",
                  file=sys.stderr)
        return report

    report = _on_store(cfg, work)
    print(report.summary())
    for p in report.problems[:20]:
        print(f"  row {p.seq}: {p.kind}: {p.detail}")
    return 0 if report.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from detector import config as config_mod
    from detector.report import gather, parse_month, write_all

    parse_month(args.month)             # a malformed month fails before the store is opened
    cfg = config_mod.load(args.config)

    async def work(pool):
        return await gather(pool, args.month, cfg.report)

    report = _on_store(cfg, work)
    paths = write_all(report, args.out, cfg.report)
    carriers = report.table("carriers")
    print(f"report {report.month}: {sum(carriers.column('flagged_cards'))} flagged and "
          f"{counted(sum(carriers.column('fraud_involved_cards')), 'fraud-involved card')} of "
          f"{sum(carriers.column('active_subscribers'))} active, {counted(len(carriers.rows), 'carrier')}; "
          f"{counted(len(paths), 'file')} in {args.out}", file=sys.stderr)
    return 0


def _scale_command(args: argparse.Namespace, name: str, run) -> int:
    """A scale-out command: load the config, set up logging, run ``run(cfg)``'s coroutine;
    NATS, stream and partition-ownership errors are reported as the command's."""
    from detector import config as config_mod
    from detector import logs
    from detector.scale.bus import BusError
    from detector.scale.checkpoint import OwnedElsewhere
    from detector.scale.publisher import PublishError

    cfg = config_mod.load(args.config)
    logs.setup(cfg.daemon.log_level)
    try:
        return _run_async(run(cfg))
    except (BusError, OwnedElsewhere, PublishError) as e:
        print(f"goipwatch {name}: error: {e}", file=sys.stderr)
        return 2


def cmd_publish(args: argparse.Namespace) -> int:
    from detector.scale.commands import publish

    return _scale_command(args, "publish", lambda cfg: publish(
        cfg, args.cdr or [], args.subscribers or [], args.flush, args.watch))


def cmd_worker(args: argparse.Namespace) -> int:
    from detector.scale.commands import worker, worker_partitions

    return _scale_command(args, "worker", lambda cfg: worker(
        cfg, worker_partitions(cfg, args.index, args.of, args.partitions), args.until_idle))


def cmd_rigs(args: argparse.Namespace) -> int:
    from detector.scale.commands import rigs

    return _scale_command(args, "rigs", lambda cfg: rigs(cfg, args.until_idle))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="goipwatch", description=__doc__)
    p.add_argument("--version", action="version", version=f"goipwatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the daemon")
    r.add_argument("--config", type=Path, required=True)
    r.add_argument("--until-done", action="store_true",
                   help="exit once every probe is done: its configured files processed, a Kafka "
                        "topic read to where it stood at start, and a watch directory idle "
                        "(every file in it processed and nothing new settled for --idle-exit "
                        "seconds)")
    r.add_argument("--idle-exit", type=float, metavar="SECONDS",
                   help="with --until-done: how long a watch directory must be idle to be done "
                        "(default: the probe's settle_s, the time after which a file still "
                        "unchanged counts as written)")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("score", help="replay CDR files in event-time order and write flags")
    s.add_argument("--cdr", type=input_file, nargs="+", required=True)
    s.add_argument("--subscribers", type=input_file, nargs="+")
    s.add_argument("--capture", type=input_file, nargs="+", help=CAPTURE_HELP)
    s.add_argument("--model", type=Path, help=MODEL_HELP)
    s.add_argument("--fit-on-input", action="store_true", help=FIT_HELP)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--config", type=Path, help="policy, feature and layout settings")
    s.add_argument("--seed", type=int, default=0, help="seed with --fit-on-input")
    s.set_defaults(func=cmd_score)

    t = sub.add_parser("train", help="fit the anomaly model on a baseline window")
    t.add_argument("--cdr", type=input_file, nargs="+", required=True)
    t.add_argument("--subscribers", type=input_file, nargs="+")
    t.add_argument("--capture", type=input_file, nargs="+", help=CAPTURE_HELP)
    t.add_argument("--start", help="window start, ISO 8601 (default: first record)")
    t.add_argument("--end", help="window end, ISO 8601, exclusive (default: after the last)")
    t.add_argument("--out", type=Path, default=Path("models/goipwatch.skops"))
    t.add_argument("--config", type=Path)
    t.add_argument("--seed", type=int, default=0)
    verdict_source = t.add_mutually_exclusive_group()
    verdict_source.add_argument("--confirmed", type=Path, nargs="+",
                                help="analysts' verdicts (CSV imsi,label; several files are "
                                     "one set): also train the supervised layer that re-ranks "
                                     "flags")
    verdict_source.add_argument("--confirmed-from-store", action="store_true",
                                help="the same from the store's feedback (analysts and the "
                                     "platform's outcomes); needs --config")
    t.set_defaults(func=cmd_train)

    m = sub.add_parser("simulate", help="write a simulated carrier world with ground truth")
    m.add_argument("--subscribers", type=int, default=10_000)
    m.add_argument("--days", type=int, default=2)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--mix", default="default",
                   help="default | hard | random (drawn from the seed) | key=value,...; "
                        "with --generator boxgen: default | hard")
    m.add_argument("--generator", choices=("simulate", "boxgen"), default="simulate",
                   help="simulate: the simulator of docs/simulator.md; boxgen: the second "
                        "generator, modelled from published descriptions of SIM-box traffic "
                        "(no capture, no archive)")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--pcap", action="store_true",
                   help="also write signalling.pcap: the attaches of the world as GTPv2-C")
    m.add_argument("--archive-hours", type=int, default=0,
                   help="also write archive.csv (and, with --pcap, archive.pcap): that many hours "
                        "before the world starts, which a daemon deployed at the start reads "
                        "first (default 0)")
    m.set_defaults(func=cmd_simulate)

    e = sub.add_parser("evaluate", help="score simulated worlds and compare with the naive baseline")
    e.add_argument("--world", type=Path, nargs="+", required=True,
                   help="directories written by simulate (several: each judged, then a table of all)")
    e.add_argument("--flags", type=Path, nargs="+",
                   help="flags to judge, one file per world (default: score each world into DIR/flags.csv)")
    e.add_argument("--out", type=Path, help="result JSON of a single world (default: DIR/evaluation.json)")
    e.add_argument("--model", type=Path, help=MODEL_HELP)
    e.add_argument("--fit-on-input", action="store_true", help=FIT_HELP)
    e.add_argument("--seed", type=int, default=0, help="seed of the fitted models")
    e.add_argument("--config", type=Path, help="policy, calibration and feature settings")
    e.add_argument("--no-signalling", action="store_true",
                   help="ignore the world's signalling.pcap (to measure what it adds)")
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("demo", help="a simulated world through the daemon on the embedded store")
    d.add_argument("--state-dir", type=Path,
                   help="world, feed files and embedded store (default: "
                        "$XDG_STATE_HOME/goipwatch/demo, else ~/.local/state/goipwatch/demo; "
                        "several hundred MB)")
    d.add_argument("--subscribers", type=int, default=10000,
                   help="simulated subscribers (default 10000: rigs of their usual sizes, about half a minute)")
    d.add_argument("--days", type=int, default=2)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--dsn", default="", help="use this PostgreSQL instead of the embedded one")
    d.set_defaults(func=cmd_demo)

    fb = sub.add_parser("feedback", help="confirm or dismiss a flag, or allow-list a subscriber")
    fb.add_argument("verdict", choices=("confirm", "dismiss", "allow"))
    fb.add_argument("--config", type=Path, required=True)
    who = fb.add_mutually_exclusive_group(required=True)
    who.add_argument("--imsi")
    who.add_argument("--id-hash", help="allow: an account's ID-document hash")
    who.add_argument("--cell", help="allow: a cell (MCC-MNC-LAC-CI)")
    fb.add_argument("--by", required=True, help="the analyst")
    fb.add_argument("--note", help="confirm/dismiss: why")
    fb.add_argument("--reason", help="allow: why (required)")
    fb.set_defaults(func=cmd_feedback)

    ins = sub.add_parser("inspect", help="print a capture's signalling events, or a CDR file's "
                                         "records as canonical rows")
    ins.add_argument("file", type=input_file,
                     help="a pcap/pcapng capture, or a CDR file: CSV, BER (TS 32.298), "
                          "plain or compressed (told by content)")
    ins.add_argument("--jsonl", action="store_true",
                     help="captures: one JSON object per line (keys: ts, kind, protocol, message, "
                          "imsi, msisdn, imei, cell_id, peer, correlation_id, latency_ms, frame); "
                          "CDR files are always JSON lines")
    ins.add_argument("--cdr", action="store_true",
                     help="read a capture's GTP' CDRs rather than its signalling")
    ins.add_argument("--config", type=Path, help="the CDR probe's layout, for a CSV feed")
    ins.set_defaults(func=cmd_inspect)

    cf = sub.add_parser("check-feed", help="dry-run feed files through the configured layout: "
                                           "rows that map, why others are refused, a sample")
    cf.add_argument("feed", type=input_file, nargs="+",
                    help="CDR files (CSV, BER; plain or compressed) or registration CSVs")
    cf.add_argument("--config", type=Path,
                    help="the probes' layouts (default: the canonical CDR and registration CSVs)")
    cf.add_argument("--probe", help="the probe whose layout reads the feeds (default: the one "
                                    "whose columns the feed's header has)")
    cf.add_argument("--sample", type=int, default=5, help="canonical rows shown (default 5)")
    cf.set_defaults(func=cmd_check_feed)

    a = sub.add_parser("api", help="serve the lookup API alone, against the daemon's store")
    a.add_argument("--config", type=Path, required=True)
    a.set_defaults(func=cmd_api)

    ob = sub.add_parser("outbox", help="the verification outbox: summary and dead letters")
    ob.add_argument("action", choices=("show", "requeue"))
    ob.add_argument("--config", type=Path, required=True)
    ob.add_argument("--request-id", action="append", help="requeue only these (repeatable)")
    ob.set_defaults(func=cmd_outbox)

    au = sub.add_parser("audit", help="check the hash-chained audit log of lookups")
    au.add_argument("action", choices=("verify",))
    au.add_argument("--config", type=Path, required=True)
    au.add_argument("--anchor", type=Path,
                    help="an anchor file ([api] audit_anchor_file): every head it lists must "
                         "still be in the chain with its hash")
    au.set_defaults(func=cmd_audit)

    rp = sub.add_parser("report", help="the monthly problem-carrier report for regulators")
    rp.add_argument("--month", required=True, help="YYYY-MM (UTC calendar month)")
    rp.add_argument("--out", type=Path, required=True,
                    help="directory: one CSV per table, report-YYYY-MM.xlsx, .pdf and .json")
    rp.add_argument("--config", type=Path, required=True)
    rp.set_defaults(func=cmd_report)

    st = sub.add_parser("status", help="feeds, counters, quarantine and flags in the store")
    st.add_argument("--config", type=Path, required=True)
    st.add_argument("--quarantine", type=int, default=10, help="show this many quarantined rows")
    st.set_defaults(func=cmd_status)

    pb = sub.add_parser("publish", help="scale-out: put feed files on the NATS JetStream stream")
    pb.add_argument("--config", type=Path, required=True, help="with a [scale] section")
    pb.add_argument("--cdr", type=Path, nargs="+", help="CDR files (default: the probes' files)")
    pb.add_argument("--subscribers", type=Path, nargs="+", help="registration files (published first)")
    pb.add_argument("--flush", action="store_true", help="then ask every partition to score what is pending")
    pb.add_argument("--watch", action="store_true",
                    help="run the configured probes (files, then drop directories) until SIGTERM")
    pb.set_defaults(func=cmd_publish)

    wk = sub.add_parser("worker", help="scale-out: a detector worker owning some partitions")
    wk.add_argument("--config", type=Path, required=True, help="with a [scale] section")
    wk.add_argument("--index", type=int, help="this worker's number, 0-based (with --of)")
    wk.add_argument("--of", type=int, help="how many workers share the partitions")
    wk.add_argument("--partitions", help="or the partitions to own, e.g. 0,3,5-7")
    wk.add_argument("--until-idle", type=float, metavar="SECONDS",
                    help="exit after this long without a message (finite runs, tests)")
    wk.set_defaults(func=cmd_worker)

    rg = sub.add_parser("rigs", help="scale-out: the rig stage over the workers' summaries")
    rg.add_argument("--config", type=Path, required=True, help="with a [scale] section")
    rg.add_argument("--until-idle", type=float, metavar="SECONDS",
                    help="exit after this long without a summary (finite runs, tests)")
    rg.set_defaults(func=cmd_rigs)
    return p


# The errors that mean "the input, the setup or the request is wrong": one line naming what and
# where, exit 2. By module: a module that was never imported cannot have raised its error, so
# none is imported just to catch it (a command loads only what it needs, e.g. ``inspect``
# never the scoring stack).
USER_ERRORS = {
    "detector.config": ("ConfigError",),
    "detector.model": ("ModelError",),
    "detector.store.checkpoint": ("CheckpointError",),
    "detector.store.db": ("StoreError",),
    "detector.feedback": ("FeedbackError",),
    "detector.store.embedded": ("EmbeddedStoreError",),
    "detector.report": ("ReportError",),
    "probes.csvparse": ("FeedError",),
    "probes.signalling.tshark": ("CaptureError",),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [FileNotFoundError, IsADirectoryError, NotADirectoryError]
    for module, names in USER_ERRORS.items():
        if (loaded := sys.modules.get(module)) is not None:
            found += [getattr(loaded, n) for n in names]
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:   # `goipwatch status | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        if not isinstance(e, _user_errors()):
            raise
        what = f"{e.filename}: {e.strerror.lower()}" if isinstance(e, OSError) and e.filename else e
        print(f"goipwatch {args.command}: error: {what}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
