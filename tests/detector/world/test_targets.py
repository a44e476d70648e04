"""The targets check on hand-built evaluation results: what is met, missed or not judged."""

from __future__ import annotations

import numpy as np

from detector.world.evaluate import evaluate_tables
from detector.world.targets import Targets, check, format_checks, format_worlds

T0 = 1_790_000_000


def world(fraud: dict[str, tuple[int, int]], benign: dict[str, tuple[int, int]],
          ttd_min: float = 10.0) -> tuple[dict, dict]:
    """Labels and flags: per fraud scenario (SIMs, flagged), one rig each; per benign class
    (SIMs, flagged). Flagged fraud SIMs are found ``ttd_min`` after their first activity."""
    labels, flags, n = {}, {}, 0
    for name, (sims, flagged) in fraud.items():
        for k in range(sims):
            n += 1
            labels[str(n)] = {"fraud": True, "scenario": name, "rig_id": name, "first_active": T0,
                              "running": False}
            if k < flagged:
                flags[str(n)] = T0 + int(ttd_min * 60)
    for name, (sims, flagged) in benign.items():
        for k in range(sims):
            n += 1
            labels[str(n)] = {"fraud": False, "scenario": name, "rig_id": "", "first_active": None,
                              "running": False}
            if k < flagged:
                flags[str(n)] = T0
    return labels, flags


def judged(result: dict, baseline: dict | None = None) -> dict[str, bool | None]:
    return {c.target: c.met for c in check(result, baseline)}


def result(fraud, benign, ttd_min=10.0) -> dict:
    return evaluate_tables(*world(fraud, benign, ttd_min), None)


def test_a_world_meeting_every_target():
    r = result({"goip_fixed": (100, 100), "sms_farm": (20, 20)},
               {"ordinary": (20_000, 0), "courier": (100, 1)})     # precision 120 of 121
    checks = check(r)
    assert all(c.met in (True, None) for c in checks)
    assert format_checks(checks).splitlines()[-1] == f"targets: {sum(c.met is True for c in checks)} of " \
        f"{sum(c.met is not None for c in checks)} met"


def test_evasive_gateways_have_their_own_recall_target():
    r = result({"goip_evasive": (10, 9), "goip_fixed": (10, 9)}, {"ordinary": (20_000, 0)})
    j = judged(r)
    assert j["recall goip_evasive >= 90.0%"] is True     # 90 %: enough for gateways built to hide
    assert j["recall goip_fixed >= 95.0%"] is False      # 90 %: not for the others
    # each scenario's rig has 9 of 10 flagged: found (at least half), so rig recall is met
    assert j["rig recall >= 98.0%"] is True


def test_false_positives_precision_and_hard_negative_classes():
    r = result({"goip_fixed": (100, 100)},
               {"ordinary": (20_000, 1), "call_centre": (100, 3), "enterprise": (100, 2)})
    j = judged(r)
    assert j["precision >= 98.0%"] is False               # 100 of 106
    assert j["false positives per 10k benign <= 5"] is True  # 6 of 20,200: 3.0
    assert j["call_centre flagged <= 2.0%"] is False and j["enterprise flagged <= 2.0%"] is True
    assert j["taxi flagged <= 2.0%"] is None              # no taxi in this world: not judged
    assert "MISSED  call_centre flagged <= 2.0%" in format_checks(check(r))


def test_time_to_detect_wall_clock_without_the_cdrs():
    slow = result({"goip_fixed": (20, 20)}, {"ordinary": (100, 0)}, ttd_min=300)
    j = judged(slow)
    assert j["time to detect, median <= 30 minutes, wall-clock"] is False
    assert j["time to detect, p95 <= 240 minutes, wall-clock"] is False
    assert judged(slow, None) == j
    lenient = {c.target: c.met for c in check(slow, targets=Targets(median_min=600, p95_min=600))}
    assert lenient["time to detect, p95 <= 600 minutes, wall-clock"] is True


def test_time_to_detect_in_minutes_of_rig_activity_with_the_cdrs():
    labels, flags = world({"goip_fixed": (4, 4)}, {"ordinary": (100, 0)}, ttd_min=300)
    # records 10 minutes apart, then none: 300 wall-clock minutes are 10 + 10 + 15 of activity
    times = {k: np.array([T0, T0 + 600, T0 + 1200]) for k, v in labels.items() if v["fraud"]}
    r = evaluate_tables(labels, flags, set(labels), times)
    j = judged(r)
    assert j["time to detect, median <= 30 minutes of rig activity"] is False
    assert j["time to detect, p95 <= 240 minutes of rig activity"] is True


def test_not_worse_than_the_baseline_names_the_lines_where_it_is():
    ours = result({"goip_fixed": (20, 20), "sms_farm": (20, 10)}, {"ordinary": (20_000, 0)})
    base = result({"goip_fixed": (20, 5), "sms_farm": (20, 15)}, {"ordinary": (20_000, 40)}, ttd_min=900)
    c = check(ours, base)[-1]
    assert c.met is False and c.value == "worse on: recall sms_farm"
    assert check(ours, ours)[-1].met is True


def test_a_row_per_world_and_how_many_meet_every_target():
    good = result({"goip_fixed": (100, 100)}, {"ordinary": (20_000, 0)})
    slow = result({"goip_fixed": (100, 100)}, {"ordinary": (20_000, 0)}, ttd_min=300)
    text = format_worlds({"w1": (good, check(good)), "h1": (slow, check(slow))}).splitlines()
    w1, h1 = text[2].split(), text[3]
    assert w1[0] == "w1" and w1[-1] == "-" and "6 of 6" in text[2]    # no hard negatives: not judged
    assert h1.startswith("h1") and h1.endswith("time to detect, median <= 30 minutes, wall-clock; "
                                               "time to detect, p95 <= 240 minutes, wall-clock")
    assert text[-1] == "worlds meeting every target: 1 of 2"
