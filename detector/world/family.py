"""Several worlds judged together: which generator and draw each is, and its figures side by side.

``goipwatch evaluate --world A B ...`` prints, before the targets' table of all worlds, the
tables of :func:`format_family`: a row per world (generator, mix, seed) with the wall-clock
time to detect first (missed SIMs count as never; cold and after a day watched), then
precision, recall and false positives per 10,000 benign SIMs; then the recall of every fraud
scenario per world; then the flagged share of every hard-negative class per world. Nothing
is chosen per world: each row is the same detector with the same settings.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from detector.world.evaluate import PERCENTILE, grid, minutes_or_never, number, percent
from detector.world.targets import HARD_NEGATIVES

GENERATORS = {"goipwatch detector.world.simulate": "simulate", "goipwatch detector.world.boxgen": "boxgen"}


def _epoch(s: str | None) -> int | None:
    if not s:
        return None
    return int(dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp())


def world_info(world: Path) -> dict:
    """What ``world.json`` says of a world: ``generator`` (simulate / boxgen), ``mix``,
    ``seed``, ``sims`` and ``watched_from`` (epoch s: the archive's start when the world has
    one, else its start; None without world.json). A world without world.json is ``?``."""
    path = Path(world) / "world.json"
    if not path.is_file():
        return {"generator": "?", "mix": "?", "seed": None, "sims": None, "watched_from": None}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not readable as JSON ({e})") from None
    params = meta.get("params") or {}
    span = meta.get("span") or {}
    return {"generator": GENERATORS.get(meta.get("generator", ""), meta.get("generator", "?")),
            "mix": params.get("mix", "?"), "seed": meta.get("seed"),
            "sims": (meta.get("sims") or {}).get("total"),
            "watched_from": _epoch(span.get("archive_from")) or _epoch(span.get("start"))}


def label(info: dict) -> str:
    seed = "" if info.get("seed") is None else f" seed {info['seed']}"
    return f"{info['generator']} {info['mix']}{seed}"


def format_family(results: dict[str, dict], infos: dict[str, dict] | None = None) -> str:
    """Tables of the detector's results of several worlds (``results``: world -> the
    ``evaluate`` result; ``infos``: world -> :func:`world_info`, read from each world's
    directory when not given)."""
    infos = infos or {w: world_info(Path(w)) for w in results}
    p = f"p{PERCENTILE}_min"
    rows = []
    for w, r in results.items():
        o = r["overall"]
        wall = o.get("wall_clock") or {}

        def ttd(key: str) -> str:
            s = wall.get(key)
            if not s or not s["sims"]:
                return "-"
            return f"{minutes_or_never(s, 'median_min')} / {minutes_or_never(s, p)}"

        miss = wall.get("all", {}).get("missed", 0)
        rows.append([w, label(infos[w]), str(o["fraud_sims"] + o["benign_sims"]), str(o["fraud_sims"]),
                     ttd("all"), ttd("cold"), ttd("after_a_day"), str(miss),
                     percent(o["precision"]), percent(o["recall"]), number(o["fp_per_10k_benign"])])
    lines = ["wall-clock minutes from a SIM's first record to its flag, median / p95; a missed SIM "
             "counts as never; cold: first record in the first day watched"]
    lines += grid(["world", "generator, mix, seed", "SIMs", "fraud", "TTD all", "TTD cold",
                   "TTD after a day", "missed", "precision", "recall", "FP per 10k"], rows)
    lines.append("")
    scen = sorted({s for r in results.values() for s in r["scenarios"]})
    rows = [[w] + [_recall(r["scenarios"].get(s)) for s in scen] for w, r in results.items()]
    lines.append("recall per fraud scenario (flagged / SIMs)")
    lines += grid(["world"] + scen, rows)
    lines.append("")
    classes = [c for c in HARD_NEGATIVES if any(c in r["benign"] for r in results.values())]
    rows = [[w] + [_flag_rate(r["benign"].get(c)) for c in classes] for w, r in results.items()]
    lines.append("hard negatives flagged (flagged / SIMs)")
    lines += grid(["world"] + classes, rows)
    return "\n".join(lines)


def _recall(r: dict | None) -> str:
    return "-" if not r or not r["sims"] else f"{percent(r['recall'])} ({r['flagged']}/{r['sims']})"


def _flag_rate(r: dict | None) -> str:
    return "-" if not r or not r["sims"] else f"{percent(r['fp_rate'])} ({r['flagged']}/{r['sims']})"
