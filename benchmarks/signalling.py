"""Benchmark: the signalling probe (``probes.signalling.read_capture``) against plain TShark.

    python benchmarks/signalling.py                       # the two default inputs, best of 3
    python benchmarks/signalling.py --repeat 5 FILE ...   # other captures

Inputs by default: the public magma Gx/Gy capture (``../shared/captures/
magma_gx_gy_combined_04_210505_133027-1.pcapng``, 2.9 MB, 4070 frames) and a large SIP
capture generated once into ``--workdir`` (default /tmp/goipwatch-bench): the GOIP-like
INVITE burst of ``tests/probes/signalling/traces/sip_invite_burst.py`` repeated with fresh
Call-IDs and times to ``--sip-packets`` packets (default 50,000; needs scapy); and the
signalling capture of a simulated world (``goipwatch simulate --pcap``, ``--world-subscribers``
subscribers over one day, default 100,000: GTPv2-C Create Session Requests, every frame an
event).

For every file, in the same run and interleaved (best of ``--repeat`` wall times each):

- ``tshark_frames``: ``tshark -n -r FILE -T fields -e frame.number`` (TShark's own floor:
  every frame dissected, one field printed);
- ``tshark_probe_fields``: exactly the command the probe runs (its display filter and its
  field list, output read through a pipe like the probe does);
- ``probe``: ``read_capture(FILE)``: that TShark run plus parsing, mapping and pairing.

It prints one JSON object: packets/s and events/s of each, the probe's rate as a fraction of
each TShark run's, the machine (CPU model, nproc, TShark version) and the 1-minute load
average before and after (other work on the machine skews the ratios).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from probes.signalling import read_capture  # noqa: E402
from probes.signalling.capture import display_filter, fields  # noqa: E402
from probes.signalling.tshark import command  # noqa: E402

MAGMA = ROOT.parent / "shared" / "captures" / "magma_gx_gy_combined_04_210505_133027-1.pcapng"
SIP_GENERATOR = ROOT / "tests" / "probes" / "signalling" / "traces" / "sip_invite_burst.py"


def tshark_version() -> str:
    out = subprocess.run(["tshark", "-v"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "?"


def sip_capture(workdir: Path, packets: int) -> Path:
    """The SIP burst repeated (new Call-IDs and times per copy) to about ``packets`` packets."""
    out = workdir / f"sip_invite_burst_x{packets}.pcap"
    if out.exists():
        return out
    from scapy.utils import PcapWriter

    spec = importlib.util.spec_from_file_location("sip_invite_burst", SIP_GENERATOR)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    workdir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    tmp = out.with_suffix(".tmp")
    writer = PcapWriter(str(tmp), linktype=1, sync=False)
    written, copy = 0, 0
    while written < packets:
        # A copy every 2 s: each burst spans 1.6 s, so dialogues never overlap across copies.
        burst = gen.burst(base_ts=gen.BASE_TS + 2.0 * copy, tag=f"{copy:05d}", ip_id=written)
        writer.write(burst)
        written += len(burst)
        copy += 1
    writer.close()
    tmp.rename(out)
    print(f"generated {out} ({written} packets) in {time.perf_counter() - t:.1f} s",
          file=sys.stderr)
    return out


def world_capture(workdir: Path, subscribers: int) -> Path:
    """The attaches of a simulated one-day world (GTPv2-C), written once."""
    from detector.world.simulate import WorldParams, simulate_world

    out = workdir / f"world_{subscribers}" / "signalling.pcap"
    if not out.exists():
        simulate_world(WorldParams(subscribers=subscribers, days=1, seed=7, pcap=True), out.parent)
    return out


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def tshark_frames(path: Path) -> int:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout
    return out.count("\n")


def tshark_probe_fields(path: Path) -> int:
    out = subprocess.run(command(path, fields(), display_filter()), capture_output=True,
                         text=True, errors="replace", check=True).stdout
    return out.count("\n")


def bench(path: Path, repeat: int) -> dict:
    best = {"tshark_frames": float("inf"), "tshark_probe_fields": float("inf"),
            "probe": float("inf")}
    packets = rows = events = None
    for _ in range(repeat):  # interleaved, so that a slow spell hits all three alike
        dt, packets = timed(lambda: tshark_frames(path))
        best["tshark_frames"] = min(best["tshark_frames"], dt)
        dt, rows = timed(lambda: tshark_probe_fields(path))
        best["tshark_probe_fields"] = min(best["tshark_probe_fields"], dt)
        dt, capture = timed(lambda: read_capture(path))
        best["probe"] = min(best["probe"], dt)
        assert capture.error is None, capture.error
        events = len(capture.events)
    result = {"file": str(path), "bytes": path.stat().st_size, "packets": packets,
              "frames_matching_filter": rows, "events": events}
    for name, seconds in best.items():
        result[name] = {"seconds": round(seconds, 3),
                        "packets_per_s": round(packets / seconds),
                        **({"events_per_s": round(events / seconds)} if name == "probe" else {})}
    probe_rate = packets / best["probe"]
    result["probe_vs_tshark_frames"] = round(probe_rate / (packets / best["tshark_frames"]), 2)
    result["probe_vs_tshark_probe_fields"] = round(
        probe_rate / (packets / best["tshark_probe_fields"]), 2)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="captures (default: magma Gx/Gy, SIP burst, simulated world)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/goipwatch-bench"))
    ap.add_argument("--sip-packets", type=int, default=50_000)
    ap.add_argument("--world-subscribers", type=int, default=100_000)
    args = ap.parse_args(argv)
    files = args.files or [MAGMA, sip_capture(args.workdir, args.sip_packets),
                           world_capture(args.workdir, args.world_subscribers)]
    load_before = os.getloadavg()
    report = {"machine": machine(tshark=tshark_version()), "repeat": args.repeat,
              "results": [bench(f, args.repeat) for f in files]}
    # Other work on the machine slows TShark and the probe alike, not always equally.
    report["loadavg_1min_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
