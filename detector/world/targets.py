"""The detection targets, checked on a world's evaluation; a table of several worlds' checks.

``check(ours, baseline)`` reads two results of :func:`detector.world.evaluate.evaluate` (the
detector's and the naive baseline's) and says, target by target, whether it is met: the
targets operators were promised (issue "Detection operators can trust", docs/evaluation.md).
A target whose figure the world cannot give (no SIM of that kind in scope) is not judged and
is listed as such; it never counts as met or missed.

Times are minutes of rig activity when the evaluation had the CDRs (the targets speak of
rig activity), wall-clock otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.world.evaluate import PERCENTILE, grid, number, percent

# network_probe: test-call devices, which Murynets et al. (2014) name as looking like SIM boxes
# (the second generator, detector/world/boxgen.py, has them)
HARD_NEGATIVES = ("call_centre", "courier", "taxi", "iot_meter", "enterprise", "shop", "network_probe")
EVASIVE = "goip_evasive"


@dataclass(frozen=True, slots=True)
class Targets:
    scenario_recall: float = 0.95       # every fraud scenario ...
    evasive_recall: float = 0.90        # ... but evasive gateways, built to look like people
    rig_recall: float = 0.98
    precision: float = 0.98
    fp_per_10k: float = 5.0             # false positives per 10,000 benign SIMs
    hard_negative_rate: float = 0.02    # share flagged of each hard-negative class
    median_min: float = 30.0            # time to detect, minutes of rig activity
    p95_min: float = 240.0


@dataclass(frozen=True, slots=True)
class Check:
    target: str           # what is asked, in words
    value: str            # what the world gave, in words ("-": nothing to judge)
    met: bool | None      # None: the world cannot say


def _ttd(overall: dict) -> tuple[dict, str]:
    """The time-to-detect figures the targets judge, and what they are."""
    if overall.get("rig_activity_to_detect"):
        return overall["rig_activity_to_detect"], "minutes of rig activity"
    return overall["time_to_detect"], "minutes, wall-clock"


def _at_least(target: str, value: float | None, limit: float, shown: str) -> Check:
    return Check(target, shown if value is not None else "-", None if value is None else value >= limit)


def _at_most(target: str, value: float | None, limit: float, shown: str) -> Check:
    return Check(target, shown if value is not None else "-", None if value is None else value <= limit)


def check(ours: dict, baseline: dict | None = None, targets: Targets = Targets()) -> list[Check]:
    """Each target on ``ours``; with ``baseline``, also "not worse than the naive baseline"
    on every line of the comparison (recall per scenario, rig recall, precision, false
    positives, time to detect)."""
    o, t = ours["overall"], targets
    out = []
    for name, r in ours["scenarios"].items():
        limit = t.evasive_recall if name == EVASIVE else t.scenario_recall
        out.append(_at_least(f"recall {name} >= {percent(limit)}", r["recall"], limit,
                             f"{percent(r['recall'])} ({r['flagged']}/{r['sims']})"))
    out.append(_at_least(f"rig recall >= {percent(t.rig_recall)}", o["rig_recall"], t.rig_recall,
                         f"{percent(o['rig_recall'])} ({o['rigs_found']}/{o['rigs']})"))
    out.append(_at_least(f"precision >= {percent(t.precision)}", o["precision"], t.precision,
                         f"{percent(o['precision'])} (FP {o['false_positives']})"))
    fp = o["fp_per_10k_benign"]
    out.append(_at_most(f"false positives per 10k benign <= {t.fp_per_10k:g}", fp, t.fp_per_10k,
                        f"{fp:.1f}" if fp is not None else "-"))
    for name in HARD_NEGATIVES:
        r = ours["benign"].get(name)
        rate = None if r is None else r["fp_rate"]
        out.append(_at_most(f"{name} flagged <= {percent(t.hard_negative_rate)}", rate, t.hard_negative_rate,
                            f"{percent(rate)} ({r['flagged']}/{r['sims']})" if rate is not None else "-"))
    ttd, unit = _ttd(o)
    p = f"p{PERCENTILE}_min"
    for label, key, limit in (("median", "median_min", t.median_min), (f"p{PERCENTILE}", p, t.p95_min)):
        v = ttd[key]
        out.append(_at_most(f"time to detect, {label} <= {limit:g} {unit}", v, limit,
                            f"{v:.1f} ({ttd['n']} SIMs)" if v is not None else "-"))
    if baseline is not None:
        out.append(_not_worse(ours, baseline))
    return out


def _not_worse(ours: dict, base: dict) -> Check:
    """Whether the detector is at least as good as the baseline on every line, naming the
    lines where it is not."""
    worse = []
    for name, r in ours["scenarios"].items():
        b = base["scenarios"].get(name)
        if b and b["recall"] is not None and (r["recall"] or 0) < b["recall"]:
            worse.append(f"recall {name}")
    o, b = ours["overall"], base["overall"]
    for what, key, higher_is_better in (("rig recall", "rig_recall", True), ("precision", "precision", True),
                                        ("false positives per 10k", "fp_per_10k_benign", False)):
        if o[key] is not None and b[key] is not None and \
                (o[key] < b[key] if higher_is_better else o[key] > b[key]):
            worse.append(what)
    for label, key in (("median", "median_min"), (f"p{PERCENTILE}", f"p{PERCENTILE}_min")):
        mine, theirs = _ttd(o)[0][key], _ttd(b)[0][key]
        if mine is not None and theirs is not None and mine > theirs:
            worse.append(f"time to detect {label}")
    return Check("not worse than the naive baseline on any line",
                 "worse on: " + ", ".join(worse) if worse else "no line worse", not worse)


def _tally(checks: list[Check]) -> tuple[str, list[str]]:
    """"K of N met" over the judged targets, and the targets missed."""
    judged = [c for c in checks if c.met is not None]
    missed = [c.target for c in judged if not c.met]
    return f"{len(judged) - len(missed)} of {len(judged)}", missed


def format_checks(checks: list[Check]) -> str:
    """One line per target (met / MISSED / not judged) and a last line counting them."""
    mark = {True: "met", False: "MISSED", None: "n/a"}
    width = max(len(c.target) for c in checks)
    lines = [f"{mark[c.met]:<6}  {c.target:<{width}}  {c.value}" for c in checks]
    met, missed = _tally(checks)
    lines.append(f"targets: {met} met" + (f"; missed: {', '.join(missed)}" if missed else ""))
    return "\n".join(lines)


def format_worlds(verdicts: dict[str, tuple[dict, list[Check]]]) -> str:
    """A row per world (its detector result and targets check): the headline figures, the
    targets met and the ones missed; then how many worlds meet every target."""
    p = f"p{PERCENTILE}_min"
    rows = []
    for world, (result, checks) in verdicts.items():
        o = result["overall"]
        ttd, _ = _ttd(o)
        met, missed = _tally(checks)
        rows.append([world, percent(o["precision"]), percent(o["recall"]), number(o["fp_per_10k_benign"]),
                     percent(o["rig_recall"]), number(ttd["median_min"]), number(ttd[p]),
                     met, "; ".join(missed) or "-"])
    lines = grid(["world", "precision", "recall", "FP per 10k", "rig recall", "TTD median",
                   f"TTD p{PERCENTILE}", "targets met", "missed"], rows)
    every = sum(1 for r in rows if r[-1] == "-")
    lines.append(f"worlds meeting every target: {every} of {len(rows)}")
    return "\n".join(lines)
