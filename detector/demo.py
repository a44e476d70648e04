"""``goipwatch demo``: a simulated world through the daemon, on the embedded store.

1. simulate a small carrier world with ground truth (``state_dir/world``), with its
   signalling capture when TShark is installed (the pcap probe dissects it with TShark);
2. take the shipped model (``models/goipwatch.skops``, the daemon's default), or, where the
   package was installed without it, train one on the world's first day;
3. cut the CDRs and the capture into hour files, as mediation and a capture host deliver
   them, and run the daemon on those and the registration file (embedded PostgreSQL unless
   a DSN is given);
4. print what it flagged and why, and how that compares with the ground truth.
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
from collections import Counter
from pathlib import Path

from detector import batch, model as model_mod
from detector.config import Config, DaemonConfig, DetectorConfig, StoreConfig
from detector.daemon import Daemon
from detector.ids import imsi_text
from detector.records import iso, parse_iso
from detector.wording import counted
from probes.config import ProbeConfig

FILE_HOURS = 1   # mediation's files are 5-60 min; no file may span more than lateness_s (1 h)


def split_cdr(cdr: Path, out_dir: Path, hours: float = FILE_HOURS) -> list[Path]:
    """Cut a time-sorted CDR CSV into files of ``hours`` of event time each."""
    period = int(hours * 3600)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with cdr.open() as src:
        header = src.readline()
        current, fh = None, None
        for line in src:
            t = parse_iso(line.split(",", 3)[2])
            key = t // period
            if key != current:
                if fh:
                    fh.close()
                current = key
                paths.append(out_dir / f"cdr-{iso(key * period).replace(':', '')}.csv")
                fh = paths[-1].open("w")
                fh.write(header)
            fh.write(line)
        if fh:
            fh.close()
    return paths


def split_capture(pcap: Path, out_dir: Path, start: int, end: int, hours: float = FILE_HOURS) -> list[Path]:
    """Cut a classic pcap (``simulate --pcap`` writes one) into a file per ``hours`` of event
    time in [``start``, ``end``), empty ones included, as a capture host rotates its files:
    the daemon takes two feeds' files in event order, and a file longer than ``lateness_s``
    (1 h) would leave the other feed's records of its span late (docs/operations.md)."""
    period = int(hours * 3600)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = pcap.read_bytes()
    header = data[:24]
    endian = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    keys = range(start // period, (end - 1) // period + 1)
    frames: dict[int, list[bytes]] = {k: [header] for k in keys}
    pos = 24
    while pos + 16 <= len(data):
        ts, _, caplen, _ = struct.unpack_from(endian + "IIII", data, pos)
        frames[min(max(ts // period, keys[0]), keys[-1])].append(data[pos:pos + 16 + caplen])
        pos += 16 + caplen
    paths = []
    for k in keys:
        paths.append(out_dir / f"signalling-{iso(k * period).replace(':', '')}.pcap")
        paths[-1].write_bytes(b"".join(frames[k]))
    return paths


def _labels(world: Path) -> dict[str, dict[str, str]]:
    with (world / "labels.csv").open() as fh:
        return {r["imsi"]: r for r in csv.DictReader(fh)}


async def demo(state_dir: Path, *, subscribers: int = 10000, days: int = 2, seed: int = 7,
               dsn: str = "") -> int:
    from detector.world.simulate import WorldParams, simulate_world

    state_dir = Path(state_dir).resolve()
    world = state_dir / "world"
    print(f"1/4 simulating {subscribers} subscribers x {days} days (seed {seed}) into {world}")
    capture = shutil.which("tshark") is not None
    params = WorldParams(subscribers=subscribers, days=days, seed=seed, pcap=capture)
    summary = simulate_world(params, world)
    print(f"    {summary.subscribers} SIMs, {summary.records} CDRs"
          + ("" if capture else "; TShark is not installed: no capture, CDRs alone"))

    if model_mod.SHIPPED_MODEL.exists():
        print(f"2/4 the shipped model ({model_mod.SHIPPED_MODEL}), as the daemon's default")
        model_path = model_mod.SHIPPED_MODEL
    else:
        loaded = batch.load_files([world / "cdr.csv"], [world / "subscribers.csv"])
        start = int(loaded.cdr.ts.min()) // 86400 * 86400
        print(f"2/4 no shipped model here: training one on the first day ({iso(start)} .. {iso(start + 86400)})")
        model_path, _ = model_mod.save(batch.train_on(loaded, start=start, end=start + 86400),
                                       state_dir / "models" / "demo.skops")

    files = split_cdr(world / "cdr.csv", state_dir / "feed" / "cdr")
    begin = parse_iso(params.start)
    captures = split_capture(world / "signalling.pcap", state_dir / "feed" / "signalling",
                             begin, begin + days * 86400) if capture else []
    config = Config(
        source="demo",
        daemon=DaemonConfig(state_dir=state_dir, idle_score_s=0.0),
        store=StoreConfig(dsn=dsn),
        detector=DetectorConfig(model=model_path),
        probes=(ProbeConfig(type="registrations_csv", name="registrations",
                            files=(world / "subscribers.csv",)),
                ProbeConfig(type="cdr_csv", name="cdr", files=tuple(files)))
        + ((ProbeConfig(type="pcap", name="signalling", files=tuple(captures)),) if capture else ()),
    )
    where = "the embedded PostgreSQL in " + str(state_dir / "pg") if not dsn else "the given store"
    print(f"3/4 running the daemon over {len(files)} CDR files{' and the capture' if capture else ''} on {where}")
    daemon = Daemon(config)
    try:
        await daemon.open()
        async with daemon.pool.acquire() as conn:  # a demo starts from an empty store
            await conn.execute("TRUNCATE ingested_files, quarantine, registrations, sim_state, "
                               "imei_state, cells, engine_state, flag_history, flags, "
                               "flag_events, feature_snapshots, rigs, verification_outbox, "
                               "verification_outcomes")
        await daemon._restore()
        daemon._stream.unlink(missing_ok=True)   # and a fresh flag stream
        await daemon._catch_up_stream()
        await daemon.run(until_done=True)
        rows = await daemon.pool.fetch(
            "SELECT imsi, kind, rig_id, score, flagged_at, reasons FROM flags ORDER BY flagged_at, imsi")
        rigs = await daemon.pool.fetch("SELECT id, evidence FROM rigs ORDER BY first_at, id")
        read = await daemon.pool.fetch(
            "SELECT probe, count(*) AS files, sum(records) AS records, sum(rejected) AS refused "
            "FROM ingested_files GROUP BY probe ORDER BY probe")
    finally:
        await daemon.close()

    labels = _labels(world)
    print("    read: " + "; ".join(f"{r['probe']} {counted(r['files'], 'file')}, {counted(r['records'], 'record')}, "
                                  f"{r['refused']} refused" for r in read))
    print(f"4/4 {counted(len(rows), 'SIM')} flagged; the first ten:")
    imsis = [imsi_text(r["imsi"]) for r in rows]
    for imsi, r in zip(imsis[:10], rows):
        truth = labels.get(imsi, {})
        print(f"  {imsi} ({truth.get('scenario', '?')}) {r['kind']} score {r['score']:.3f} "
              f"at {r['flagged_at']:%Y-%m-%d %H:%M}Z {r['rig_id']}")
        for reason in json.loads(r["reasons"]):
            print(f"      - {reason}")
    flagged = Counter(labels.get(imsi, {}).get("scenario", "?") for imsi in imsis)
    fraud = Counter(v["scenario"] for v in labels.values() if v["label"] == "fraud")
    tp = sum(1 for imsi in imsis if labels.get(imsi, {}).get("label") == "fraud")
    print(f"    against the ground truth: {tp} of {len(rows)} flags are fraud SIMs; "
          f"by scenario (flagged / fraud SIMs):")
    for scen in sorted(set(fraud) | set(flagged)):
        print(f"      {scen:<16} {flagged.get(scen, 0):>5} / {fraud.get(scen, 0)}")
    print(f"    {counted(len(rigs), 'rig')}:")
    for rig in rigs:
        print(f"      {rig['id']}: {rig['evidence']}")
    print(f"    flags stream: {state_dir / 'flags.jsonl'}")
    size = sum(p.stat().st_size for p in state_dir.rglob("*") if p.is_file())
    print(f"    state: {state_dir} ({size / 1e6:,.0f} MB; remove it when done)")
    return 0
