"""Score a flags file against the ground truth of a simulated world.

``evaluate(labels_csv, flags_csv, cdr_csv)`` is a pure function of the three files (nothing
is written, nothing random) and returns a JSON-ready dict; ``format_table`` renders it as a
fixed-width table and ``format_comparison`` puts two results (say, ours and the naive
baseline) side by side. Definitions (see docs/evaluation.md):

- A SIM is *active* when it has at least one record in ``cdr.csv`` or, for a fraud SIM, a
  non-empty ``first_active``. Without ``cdr_csv`` only the second test is available and every
  benign SIM counts as active. A flagged SIM is always in scope (a flag is evidence of
  activity), so the *in-scope* SIMs of a row are ``active | flagged``; SIMs that are neither are
  left out of every figure (they are listed as ``inactive`` in the row, for the record).
- Per fraud scenario: SIMs in scope, flagged, recall = flagged / SIMs. Rig recall: a rig (one
  ``rig_id`` with at least one in-scope SIM) is *found* when at least half of its in-scope SIMs
  are flagged (``2 * flagged >= sims``). Fraud SIMs without a ``rig_id`` are each their own rig.
- Time to detect, per flagged fraud SIM with a ``first_active``: ``flagged_at - first_active``
  in minutes (0 when flagged before it: a box's SIM at its power-on, a rig found in the
  world's archive); median and 95th percentile (``numpy.percentile``, linear interpolation);
  overall also apart for rigs that start in the world and rigs already at work when it starts
  (labels' ``already_running``): for those, the clock starts with the world, not the rig.
  With the CDRs, the same again in *minutes of rig activity*: the part of that span in which
  the SIM's rig (any of its SIMs) was at work, each record counting until the next one, at
  most ``ACTIVE_GAP_S`` (a rig stopped for the night is not at work).
- Wall-clock time to detect with the misses (``wall_clock``): for every fraud SIM in scope
  with a ``first_active``, ``flagged_at - first_active`` (0 when flagged before), and *never*
  for a SIM not flagged; median and 95th percentile over all of them (an order statistic that
  falls on a miss is *never*, reported as ``None`` with ``*_never`` true). Given for all such
  SIMs, for the *cold* ones (first record within a day of the start of what the detector
  watched, ``watched_from``) and for those whose first record came *after a day watched*,
  when the detector's windows and references were already full; and per scenario.
- Per benign class: SIMs in scope, flagged, false-positive rate = flagged / SIMs.
- Flags of IMSIs absent from the labels are false positives of their own row ``unknown``
  (each is one more negative SIM, flagged).
- Overall: TP = flagged fraud SIMs, FP = flagged benign SIMs + unknown IMSIs;
  precision = TP / (TP + FP), recall = TP / fraud SIMs in scope, F1 their harmonic mean;
  false positives per 10,000 benign SIMs = 10,000 * FP / (benign SIMs in scope + unknown).
- An IMSI flagged more than once counts once, at its earliest ``flagged_at``.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

PERCENTILE = 95
WARM_AFTER_S = 86_400   # a SIM whose first record comes a day after watching began is "warm"
ACTIVE_GAP_S = 900   # a rig's record counts as rig activity until its next, at most 15 min


def _epoch(s: str) -> int | None:
    s = s.strip()
    if not s:
        return None
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp())


def _key(imsi: str) -> str:
    """IMSIs compare as digit strings without leading zeros, so that flag files of any
    writer match the labels (``score`` writes all 15 digits; older files dropped the zeros)."""
    s = imsi.strip()
    return str(int(s)) if s.isdigit() else s


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _minutes_stats(minutes: list[float]) -> dict:
    if not minutes:
        return {"n": 0, "median_min": None, f"p{PERCENTILE}_min": None}
    a = np.asarray(minutes, dtype=float)
    return {"n": int(len(a)), "median_min": round(float(np.median(a)), 3),
            f"p{PERCENTILE}_min": round(float(np.percentile(a, PERCENTILE)), 3)}


def _quantile_never(values: np.ndarray, q: float) -> float:
    """``numpy.percentile``'s linear interpolation over values in which a miss is ``inf``:
    ``inf`` when either neighbour of the order statistic is a miss it counts (a p95 that
    half-lands on a never-flagged SIM is never)."""
    a = np.sort(values)
    pos = (len(a) - 1) * q / 100.0
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    frac = pos - lo
    if math.isinf(a[lo]) or (frac > 0 and math.isinf(a[hi])):
        return math.inf
    return float(a[lo] + (a[hi] - a[lo]) * frac)


def wall_clock_stats(minutes: list[float]) -> dict:
    """Median and 95th percentile of minutes to detect in which a missed SIM is ``inf``:
    ``sims``, ``flagged``, ``missed``; a statistic that is never is ``None`` with
    ``<name>_never`` true (JSON has no infinity)."""
    out: dict = {"sims": len(minutes), "flagged": sum(1 for m in minutes if not math.isinf(m)),
                 "missed": sum(1 for m in minutes if math.isinf(m))}
    a = np.asarray(minutes, dtype=float)
    for name, q in (("median_min", 50.0), (f"p{PERCENTILE}_min", float(PERCENTILE))):
        v = _quantile_never(a, q) if len(a) else None
        out[name] = None if v is None or math.isinf(v) else round(v, 3)
        out[name.replace("_min", "_never")] = v is not None and math.isinf(v)
    return out


def _read_labels(path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            out[_key(row["imsi"])] = {
                "fraud": row["label"].strip() == "fraud",
                "scenario": row["scenario"].strip(),
                "rig_id": (row.get("rig_id") or "").strip(),
                "first_active": _epoch(row.get("first_active") or ""),
                "running": (row.get("already_running") or "").strip() == "1",
            }
    return out


def _read_flags(path: Path) -> dict[str, int]:
    """IMSI -> earliest flagged_at (epoch s)."""
    out: dict[str, int] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            k, t = _key(row["imsi"]), _epoch(row["flagged_at"])
            if t is None:
                raise ValueError(f"{path}: flag of {row['imsi']} has no flagged_at")
            out[k] = min(t, out.get(k, t))
    return out


def cdr_first_time(path: Path) -> int | None:
    """The earliest record time of a CDR file (epoch s), None when it has no record."""
    from probes.csvparse import read_feed_file

    first = None
    for parsed in read_feed_file(Path(path), "cdr"):
        if len(parsed.batch.ts):
            t = int(parsed.batch.ts.min())
            first = t if first is None else min(first, t)
    return first


def _cdr_activity(path: Path, fraud: set[str]) -> tuple[set[str], dict[str, np.ndarray]]:
    """The IMSIs with a record in the CDRs, and the record times of the ``fraud`` IMSIs."""
    from probes.csvparse import read_feed_file

    seen: list[np.ndarray] = []
    imsis: list[np.ndarray] = []
    times: list[np.ndarray] = []
    keys = np.array(sorted(int(k) for k in fraud if k.isdigit()), np.int64)
    for parsed in read_feed_file(Path(path), "cdr"):
        b = parsed.batch
        seen.append(np.unique(b.imsi))
        mine = np.isin(b.imsi, keys)
        imsis.append(b.imsi[mine])
        times.append(b.ts[mine])
    if not seen:
        return set(), {}
    imsi, ts = np.concatenate(imsis), np.concatenate(times)
    order = np.lexsort((ts, imsi))
    imsi, ts = imsi[order], ts[order]
    starts = np.flatnonzero(np.r_[True, imsi[1:] != imsi[:-1]]) if len(imsi) else np.empty(0, int)
    by_sim = {str(int(imsi[a])): ts[a:z] for a, z in zip(starts, np.r_[starts[1:], len(imsi)])}
    return {str(int(i)) for i in np.unique(np.concatenate(seen))}, by_sim


def _active_minutes(rig_times: np.ndarray, start: int, end: int) -> float:
    """Minutes in [start, end] during which the rig was at work: each of its records counts
    until the next one, at most ``ACTIVE_GAP_S`` (a rig idle overnight is not at work)."""
    if end <= start:
        return 0.0
    t = rig_times[(rig_times >= start) & (rig_times <= end)]
    if not len(t):
        return min(end - start, ACTIVE_GAP_S) / 60.0
    return float(np.minimum(np.diff(np.r_[t, end]), ACTIVE_GAP_S).sum()) / 60.0


def evaluate(labels_csv: Path, flags_csv: Path, cdr_csv: Path | None = None,
             watched_from: int | None = None) -> dict:
    """``watched_from``: when the detector began to read (epoch s; the archive's start for a
    world with one); by default the first record of ``cdr_csv``, else the first
    ``first_active``."""
    labels = _read_labels(Path(labels_csv))
    flags = _read_flags(Path(flags_csv))
    if cdr_csv is None:
        return evaluate_tables(labels, flags, None, watched_from=watched_from)
    in_cdr, times = _cdr_activity(Path(cdr_csv), {k for k, v in labels.items() if v["fraud"]})
    if watched_from is None:
        watched_from = cdr_first_time(Path(cdr_csv))
    return evaluate_tables(labels, flags, in_cdr, times, watched_from=watched_from)


def evaluate_tables(labels: dict[str, dict], flags: dict[str, int],
                    in_cdr: set[str] | None, times: dict[str, np.ndarray] | None = None,
                    watched_from: int | None = None) -> dict:
    """``evaluate`` on tables already read: labels by IMSI, earliest flag time by IMSI, the
    IMSIs seen in the CDRs (``None``: unknown, see the module docstring), the record
    times of fraud SIMs (for the minutes of rig activity before detection; none without)
    and when watching began (``None``: the earliest ``first_active``)."""
    if watched_from is None:
        starts = [v["first_active"] for v in labels.values() if v["first_active"] is not None]
        watched_from = min(starts) if starts else 0
    wall: dict[str, list[float]] = defaultdict(list)            # "all", "cold", "warm"
    wall_scen: dict[str, list[float]] = defaultdict(list)
    fraud_rows: dict[str, dict] = {}
    benign_rows: dict[str, dict] = {}
    rigs: dict[str, dict[str, list[int]]] = defaultdict(dict)  # scenario -> rig -> [sims, flagged]
    ttd: dict[str, list[float]] = defaultdict(list)
    ttd_by_start: dict[bool, list[float]] = defaultdict(list)   # already running at the start?
    active_by_start: dict[bool, list[float]] = defaultdict(list)
    rig_times: dict[str, np.ndarray] = {}
    if times is not None:
        members: dict[str, list[np.ndarray]] = defaultdict(list)
        for imsi, lab in labels.items():
            if lab["fraud"] and imsi in times:
                members[lab["rig_id"] or f"sim:{imsi}"].append(times[imsi])
        rig_times = {r: np.sort(np.concatenate(v)) for r, v in members.items()}

    for imsi, lab in labels.items():
        flagged = imsi in flags
        if lab["fraud"]:
            active = lab["first_active"] is not None or (in_cdr is not None and imsi in in_cdr)
        else:
            active = in_cdr is None or imsi in in_cdr
        table = fraud_rows if lab["fraud"] else benign_rows
        row = table.setdefault(lab["scenario"], {"sims": 0, "flagged": 0, "inactive": 0})
        if not (active or flagged):
            row["inactive"] += 1
            continue
        row["sims"] += 1
        row["flagged"] += int(flagged)
        if lab["fraud"]:
            rig = rigs[lab["scenario"]].setdefault(lab["rig_id"] or f"sim:{imsi}", [0, 0])
            rig[0] += 1
            rig[1] += int(flagged)
            if lab["first_active"] is not None:
                m = max(0, flags[imsi] - lab["first_active"]) / 60.0 if flagged else math.inf
                warm = lab["first_active"] >= watched_from + WARM_AFTER_S
                for key in ("all", "warm" if warm else "cold"):
                    wall[key].append(m)
                wall_scen[lab["scenario"]].append(m)
            if flagged and lab["first_active"] is not None:
                # a SIM flagged before its first record in the world (a box's SIM at its
                # power-on, a rig found in the archive) was detected with no delay
                ttd[lab["scenario"]].append(max(0, flags[imsi] - lab["first_active"]) / 60.0)
                ttd_by_start[lab["running"]].append(ttd[lab["scenario"]][-1])
                if times is not None:
                    active_by_start[lab["running"]].append(_active_minutes(
                        rig_times.get(lab["rig_id"] or f"sim:{imsi}", np.empty(0, np.int64)),
                        lab["first_active"], flags[imsi]))

    unknown = sorted(k for k in flags if k not in labels)

    scenarios = {}
    for name in sorted(fraud_rows):
        r = fraud_rows[name]
        rr = rigs.get(name, {})
        found = sum(1 for s, f in rr.values() if 2 * f >= s)
        scenarios[name] = {
            "sims": r["sims"], "flagged": r["flagged"], "inactive": r["inactive"],
            "recall": _ratio(r["flagged"], r["sims"]),
            "rigs": len(rr), "rigs_found": found, "rig_recall": _ratio(found, len(rr)),
            "time_to_detect": _minutes_stats(ttd.get(name, [])),
            "wall_clock": wall_clock_stats(wall_scen.get(name, [])),
        }
    benign = {}
    for name in sorted(benign_rows):
        r = benign_rows[name]
        benign[name] = {"sims": r["sims"], "flagged": r["flagged"], "inactive": r["inactive"],
                        "fp_rate": _ratio(r["flagged"], r["sims"])}

    tp = sum(r["flagged"] for r in scenarios.values())
    pos = sum(r["sims"] for r in scenarios.values())
    fp_benign = sum(r["flagged"] for r in benign.values())
    fp = fp_benign + len(unknown)
    neg = sum(r["sims"] for r in benign.values()) + len(unknown)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, pos)
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else
          (0.0 if precision is not None and recall is not None else None))
    n_rigs = sum(r["rigs"] for r in scenarios.values())
    n_found = sum(r["rigs_found"] for r in scenarios.values())
    overall = {
        "fraud_sims": pos, "benign_sims": neg - len(unknown), "flagged": tp + fp,
        "true_positives": tp, "false_positives": fp, "false_negatives": pos - tp,
        "unknown_flagged": len(unknown),
        "precision": precision, "recall": recall, "f1": f1,
        "fp_per_10k_benign": _ratio(10_000 * fp, neg),
        "rigs": n_rigs, "rigs_found": n_found, "rig_recall": _ratio(n_found, n_rigs),
        "time_to_detect": _minutes_stats([m for v in ttd.values() for m in v]),
        # rigs that start in the world, and rigs at work before it (from the world's start)
        "time_to_detect_starting": _minutes_stats(ttd_by_start[False]),
        "time_to_detect_running": _minutes_stats(ttd_by_start[True]),
        # the same in minutes of the rig's own activity (None without the CDRs)
        "rig_activity_to_detect": _minutes_stats(active_by_start[False] + active_by_start[True])
        if times is not None else None,
        "rig_activity_to_detect_starting": _minutes_stats(active_by_start[False])
        if times is not None else None,
        "rig_activity_to_detect_running": _minutes_stats(active_by_start[True])
        if times is not None else None,
        "activity_from": "cdr" if in_cdr is not None else "labels",
        # wall clock from each SIM's first record, a missed SIM counting as never
        "wall_clock": {"all": wall_clock_stats(wall["all"]), "cold": wall_clock_stats(wall["cold"]),
                       "after_a_day": wall_clock_stats(wall["warm"]),
                       "watched_from": watched_from, "warm_after_s": WARM_AFTER_S},
    }
    return {"overall": overall, "scenarios": scenarios, "benign": benign,
            "unknown_imsis": unknown}


# --------------------------------------------------------------------------- tables


def percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def number(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    out += [fmt.format(*r) for r in rows]
    return out


def minutes_or_never(stats: dict | None, key: str) -> str:
    """A wall-clock statistic as text: minutes, ``never`` (it falls on a missed SIM) or ``-``."""
    if not stats:
        return "-"
    if stats.get(key.replace("_min", "_never")):
        return "never"
    return number(stats.get(key))


def format_wall_clock(overall: dict) -> str:
    """The wall-clock time-to-detect line: all, cold, after a day watched."""
    w = overall.get("wall_clock")
    if not w:
        return ""
    p = f"p{PERCENTILE}_min"
    parts = []
    for what, key in (("all", "all"), ("cold (first record in the first day watched)", "cold"),
                      ("after a day watched", "after_a_day")):
        s = w[key]
        if s["sims"]:
            parts.append(f"{what} median {minutes_or_never(s, 'median_min')}, p{PERCENTILE} "
                         f"{minutes_or_never(s, p)} ({s['sims']} SIMs, {s['missed']} missed)")
    return ("wall-clock time to detect from a SIM's first record, missed SIMs as never: "
            + "; ".join(parts)) if parts else ""


def format_table(result: dict, title: str = "") -> str:
    """The result as fixed-width text: fraud scenarios, benign classes, overall."""
    o = result["overall"]
    p = f"p{PERCENTILE}_min"
    lines = [title] if title else []
    rows = [[name, str(r["sims"]), str(r["flagged"]), percent(r["recall"]),
             f"{r['rigs_found']}/{r['rigs']}", percent(r["rig_recall"]),
             number(r["time_to_detect"]["median_min"]), number(r["time_to_detect"][p])]
            for name, r in result["scenarios"].items()]
    t = o["time_to_detect"]
    rows.append(["all fraud", str(o["fraud_sims"]), str(o["true_positives"]), percent(o["recall"]),
                 f"{o['rigs_found']}/{o['rigs']}", percent(o["rig_recall"]),
                 number(t["median_min"]), number(t[p])])
    lines += grid(["fraud scenario", "SIMs", "flagged", "recall", "rigs", "rig recall",
                    "TTD med min", f"TTD p{PERCENTILE} min"], rows)
    if format_wall_clock(o):
        lines.append(format_wall_clock(o))
    for title, prefix in (("time to detect", "time_to_detect"),
                          ("minutes of rig activity before detection", "rig_activity_to_detect")):
        split = [(what, o.get(prefix + key)) for what, key in (
            ("all", ""), ("rigs starting in the world", "_starting"),
            ("rigs already running at its start (from the start)", "_running"))]
        if prefix == "time_to_detect":
            split = split[1:]         # the table's last row has them all
        shown = [(what, s) for what, s in split if s and s["n"]]
        if shown:
            lines.append(f"{title}: " + "; ".join(
                f"{what} median {number(s['median_min'])} min, p{PERCENTILE} {number(s[p])} min ({s['n']} SIMs)"
                for what, s in shown))
    lines.append("")
    rows = [[name, str(r["sims"]), str(r["flagged"]), percent(r["fp_rate"]),
             number(None if r["fp_rate"] is None else 10_000 * r["fp_rate"])]
            for name, r in result["benign"].items()]
    if o["unknown_flagged"]:
        rows.append(["(not in labels)", "-", str(o["unknown_flagged"]), "-", "-"])
    rows.append(["all benign", str(o["benign_sims"]), str(o["false_positives"]),
                 percent(_ratio(o["false_positives"], o["benign_sims"] + o["unknown_flagged"])),
                 number(o["fp_per_10k_benign"])])
    lines += grid(["benign class", "SIMs", "flagged", "FP rate", "per 10k"], rows)
    lines.append("")
    lines.append(
        f"precision {percent(o['precision'])}  recall {percent(o['recall'])}  "
        f"F1 {number(o['f1'], '.3f')}  FP per 10k benign {number(o['fp_per_10k_benign'])}  "
        f"flagged {o['flagged']} (TP {o['true_positives']}, FP {o['false_positives']}"
        + (f", {o['unknown_flagged']} not in labels" if o["unknown_flagged"] else "") + ")")
    return "\n".join(lines)


def format_comparison(results: dict[str, dict]) -> str:
    """Two or more results side by side (e.g. ``{"ours": a, "baseline": b}``): recall per
    fraud scenario, flagged per benign class, and the overall figures."""
    names = list(results)
    scen = sorted({s for r in results.values() for s in r["scenarios"]})
    ben = sorted({s for r in results.values() for s in r["benign"]})
    rows = []
    for s in scen:
        sims = next(r["scenarios"][s]["sims"] for r in results.values() if s in r["scenarios"])
        cells = [s, str(sims)]
        for n in names:
            r = results[n]["scenarios"].get(s)
            cells.append("-" if r is None else f"{r['flagged']} ({percent(r['recall'])})")
        for n in names:
            r = results[n]["scenarios"].get(s)
            cells.append("-" if r is None else percent(r["rig_recall"]))
        rows.append(cells)
    header = ["fraud scenario", "SIMs"] + [f"{n} flagged (recall)" for n in names] + \
             [f"{n} rig recall" for n in names]
    lines = grid(header, rows)
    lines.append("")
    rows = []
    for s in ben:
        sims = next(r["benign"][s]["sims"] for r in results.values() if s in r["benign"])
        rows.append([s, str(sims)] + [
            "-" if s not in results[n]["benign"] else str(results[n]["benign"][s]["flagged"])
            for n in names])
    rows.append(["(not in labels)", "-"] + [str(results[n]["overall"]["unknown_flagged"])
                                           for n in names])
    lines += grid(["benign class", "SIMs"] + [f"{n} flagged" for n in names], rows)
    lines.append("")
    p = f"p{PERCENTILE}_min"
    metrics = [
        ("flagged", lambda o: str(o["flagged"])),
        ("precision", lambda o: percent(o["precision"])),
        ("recall", lambda o: percent(o["recall"])),
        ("F1", lambda o: number(o["f1"], ".3f")),
        ("FP per 10k benign", lambda o: number(o["fp_per_10k_benign"])),
        ("rig recall", lambda o: percent(o["rig_recall"])),
        ("TTD median (min)", lambda o: number(o["time_to_detect"]["median_min"])),
        (f"TTD p{PERCENTILE} (min)", lambda o: number(o["time_to_detect"][p])),
    ]
    lines += grid(["overall"] + names,
                   [[m] + [f(results[n]["overall"]) for n in names] for m, f in metrics])
    return "\n".join(lines)
