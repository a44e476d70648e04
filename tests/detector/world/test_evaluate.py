"""The evaluator's arithmetic on a hand-made world where every figure is worked out here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from detector.cli import main
from detector.world.evaluate import evaluate, format_comparison, format_table

T0 = "2026-10-05T00:00:00Z"


def imsi(n: int) -> str:
    return f"46000{n:010d}"


def at(minutes: float) -> str:
    """T0 + minutes, ISO UTC."""
    s = int(minutes * 60)
    h, rem = divmod(s, 3600)
    return f"2026-10-05T{h:02d}:{rem // 60:02d}:{rem % 60:02d}Z"


# fraud: goip rig R1 = F1..F4, rig R2 = F5, F6 (F6 never active);
#        sms  rig R3 = F7..F9, F10 without a rig (its own rig)
# benign: ordinary B1..B7 (B6 never active, B7 not in the CDRs but flagged), call_centre C1, C2
F = {i: imsi(100 + i) for i in range(1, 11)}
B = {i: imsi(200 + i) for i in range(1, 8)}
C = {i: imsi(300 + i) for i in range(1, 3)}
X = {i: imsi(900 + i) for i in range(1, 3)}  # flagged, not in labels

LABELS = [
    (F[1], "fraud", "goip", "R1", at(0)),
    (F[2], "fraud", "goip", "R1", at(0)),
    (F[3], "fraud", "goip", "R1", at(10)),
    (F[4], "fraud", "goip", "R1", at(20)),   # active by first_active only (no CDR rows)
    (F[5], "fraud", "goip", "R2", at(100)),
    (F[6], "fraud", "goip", "R2", ""),       # never active: left out
    (F[7], "fraud", "sms", "R3", at(60)),
    (F[8], "fraud", "sms", "R3", at(60)),
    (F[9], "fraud", "sms", "R3", ""),        # active by its CDR rows only
    (F[10], "fraud", "sms", "", at(60)),
    *[(B[i], "benign", "ordinary", "", "") for i in range(1, 8)],
    (C[1], "benign", "call_centre", "", ""),
    (C[2], "benign", "call_centre", "", ""),
]
FLAGS = [  # (imsi, flagged_at)
    (F[1], at(10)),   # TTD 10
    (F[1], at(50)),   # a second flag of F1: the earliest counts
    (F[2], at(30)),   # TTD 30
    (F[5], at(160)),  # TTD 60
    (F[7], at(65)),   # TTD 5
    (B[1], at(5)),
    (B[7], at(5)),
    (C[1], at(5)),
    (C[2], at(5)),
    (X[1], at(5)),
    (X[2], at(5)),
]
IN_CDR = [F[1], F[2], F[3], F[5], F[7], F[8], F[9], F[10], B[1], B[2], B[3], B[4], B[5], C[1], C[2]]


def write_world(d: Path) -> tuple[Path, Path, Path]:
    labels, flags, cdr = d / "labels.csv", d / "flags.csv", d / "cdr.csv"
    labels.write_text("imsi,label,scenario,rig_id,first_active\n"
                      + "".join(",".join(r) + "\n" for r in LABELS))
    flags.write_text("imsi,msisdn,score,flagged_at,rig_id,reasons\n"
                     + "".join(f"{i},8613800000000,0.7,{t},,x\n" for i, t in FLAGS))
    cdr.write_text(
        "record_type,direction,start_time,duration_s,imsi,msisdn,imei,peer,cell_id,result\n"
        + "".join(f"voice,MO,{at(k)},30,{i},86138{k:08d},,8613900000000,460-00-1-2,answered\n"
                  for k, i in enumerate(IN_CDR)))
    return labels, flags, cdr


@pytest.fixture()
def files(tmp_path):
    return write_world(tmp_path)


def test_fraud_scenarios(files):
    r = evaluate(*files)
    goip, sms = r["scenarios"]["goip"], r["scenarios"]["sms"]
    # goip: F1..F5 active (F6 never), F1, F2, F5 flagged
    assert (goip["sims"], goip["flagged"], goip["inactive"]) == (5, 3, 1)
    assert goip["recall"] == pytest.approx(3 / 5)
    # R1: 2 of 4 flagged -> found (half is enough); R2: its one active SIM flagged -> found
    assert (goip["rigs"], goip["rigs_found"], goip["rig_recall"]) == (2, 2, 1.0)
    # TTD 10, 30, 60 -> median 30; p95 at rank 0.95 * 2 = 1.9 -> 30 + 0.9 * 30 = 57
    assert goip["time_to_detect"] == {"n": 3, "median_min": 30.0, "p95_min": 57.0}
    # sms: F7..F10 active, only F7 flagged
    assert (sms["sims"], sms["flagged"], sms["inactive"]) == (4, 1, 0)
    assert sms["recall"] == pytest.approx(1 / 4)
    # R3: 1 of 3 flagged -> not found (less than half); F10 alone, unflagged -> not found
    assert (sms["rigs"], sms["rigs_found"], sms["rig_recall"]) == (2, 0, 0.0)
    assert sms["time_to_detect"] == {"n": 1, "median_min": 5.0, "p95_min": 5.0}


def test_time_to_detect_apart_for_rigs_already_running_at_the_start(tmp_path):
    labels, flags, cdr = write_world(tmp_path)
    rows = labels.read_text().splitlines()
    # R1 (F1..F4) was at work before the world started; the other rigs start in it
    running = {str(F[i]) for i in range(1, 5)}
    labels.write_text("\n".join([rows[0] + ",already_running"] + [
        r + ("," + ("1" if r.split(",")[0] in running else "0") if ",fraud," in r else ",")
        for r in rows[1:]]) + "\n")
    o = evaluate(labels, flags, cdr)["overall"]
    assert o["time_to_detect_running"] == {"n": 2, "median_min": 20.0, "p95_min": 29.0}   # 10, 30
    assert o["time_to_detect_starting"] == {"n": 2, "median_min": 32.5, "p95_min": 57.25}  # 60, 5
    assert "rigs already running at its start (from the start) median 20.0 min" in \
        format_table(evaluate(labels, flags, cdr))


def test_minutes_of_rig_activity_leave_out_the_rigs_idle_time(tmp_path):
    """Rig R: A works at minutes 0, 5 and 10, stops, and B works at 60 and 65; B is flagged at
    70. Wall-clock 70 min, rig activity 5 + 5 + 15 (the idle gap counts 15 min) + 5 + 5 = 35."""
    a, b = imsi(1), imsi(2)
    labels, flags, cdr = tmp_path / "labels.csv", tmp_path / "flags.csv", tmp_path / "cdr.csv"
    labels.write_text("imsi,label,scenario,rig_id,first_active,already_running\n"
                      f"{a},fraud,goip,R,{at(0)},0\n{b},fraud,goip,R,{at(60)},0\n")
    flags.write_text(f"imsi,msisdn,score,flagged_at,rig_id,reasons\n{b},1,0.7,{at(70)},,x\n")
    cdr.write_text(
        "record_type,direction,start_time,duration_s,imsi,msisdn,imei,peer,cell_id,result\n"
        + "".join(f"voice,MO,{at(m)},30,{s},8613800000001,,8613900000000,460-00-1-2,answered\n"
                  for s, m in ((a, 0), (a, 5), (a, 10), (b, 60), (b, 65))))
    o = evaluate(labels, flags, cdr)["overall"]
    assert o["time_to_detect"]["median_min"] == 10.0                  # B: 70 - 60
    assert o["rig_activity_to_detect"]["median_min"] == 10.0          # 60..65..70
    flags.write_text(f"imsi,msisdn,score,flagged_at,rig_id,reasons\n{a},1,0.7,{at(70)},,x\n")
    o = evaluate(labels, flags, cdr)["overall"]
    assert o["time_to_detect"]["median_min"] == 70.0
    assert o["rig_activity_to_detect"]["median_min"] == 35.0
    assert o["rig_activity_to_detect_starting"]["n"] == 1 and o["rig_activity_to_detect_running"]["n"] == 0
    assert evaluate(labels, flags)["overall"]["rig_activity_to_detect"] is None   # no CDRs


def test_a_flag_before_the_first_record_counts_as_no_delay(tmp_path):
    """A SIM flagged before its first record in the world (a box's SIM at its power-on, a rig
    found in the world's archive) was detected at once: 0 minutes, not a negative delay."""
    a = imsi(1)
    labels, flags, cdr = tmp_path / "labels.csv", tmp_path / "flags.csv", tmp_path / "cdr.csv"
    labels.write_text(f"imsi,label,scenario,rig_id,first_active,already_running\n{a},fraud,goip,R,{at(30)},1\n")
    flags.write_text(f"imsi,msisdn,score,flagged_at,rig_id,reasons\n{a},1,0.7,{at(0)},,x\n")
    cdr.write_text("record_type,direction,start_time,duration_s,imsi,msisdn,imei,peer,cell_id,result\n"
                   f"voice,MO,{at(30)},30,{a},8613800000001,,8613900000000,460-00-1-2,answered\n")
    o = evaluate(labels, flags, cdr)["overall"]
    assert o["time_to_detect"] == {"n": 1, "median_min": 0.0, "p95_min": 0.0}
    assert o["rig_activity_to_detect_running"] == {"n": 1, "median_min": 0.0, "p95_min": 0.0}


def test_cli_evaluate_reads_the_worlds_archive_first(tmp_path, capsys):
    """A world with archive.csv is scored as a daemon deployed at its start scores it: the
    archive, then cdr.csv; the figures are of cdr.csv's world."""
    from detector.world.simulate import WorldParams, simulate_world

    world = tmp_path / "w"
    simulate_world(WorldParams(subscribers=800, days=1, seed=3, archive_hours=24,
                               mix="default,goip_fixed=0.03,goip_rotating=0.03"), world)
    model = Path(__file__).resolve().parents[3] / "models" / "goipwatch.skops"
    assert main(["evaluate", "--world", str(world), "--no-signalling", "--model", str(model)]) == 0
    flagged_at = [line.split(",")[3] for line in (world / "flags.csv").read_text().splitlines()[1:]]
    from_archive = [t for t in flagged_at if t < "2026-10-05T00:00:00Z"]   # the world's start
    assert from_archive and len(from_archive) < len(flagged_at)
    o = json.loads((world / "evaluation.json").read_text())["ours"]["overall"]
    assert o["true_positives"] == len(flagged_at) and o["false_positives"] == 0
    # the rigs found in the archive were found before their first record in the world
    assert o["time_to_detect_running"]["median_min"] == 0.0


def test_benign_classes_and_unknown(files):
    r = evaluate(*files)
    ordinary, cc = r["benign"]["ordinary"], r["benign"]["call_centre"]
    # B1..B5 in the CDRs, B7 flagged (a flag puts a SIM in scope), B6 left out
    assert (ordinary["sims"], ordinary["flagged"], ordinary["inactive"]) == (6, 2, 1)
    assert ordinary["fp_rate"] == pytest.approx(2 / 6)
    assert (cc["sims"], cc["flagged"], cc["fp_rate"]) == (2, 2, 1.0)
    assert r["unknown_imsis"] == sorted([str(int(X[1])), str(int(X[2]))])


def test_overall(files):
    o = evaluate(*files)["overall"]
    tp, fn = 4, 5                 # F1, F2, F5, F7 of 9 active fraud SIMs
    fp = 2 + 2 + 2                # ordinary B1, B7; call_centre C1, C2; unknown X1, X2
    assert (o["true_positives"], o["false_negatives"], o["false_positives"]) == (tp, fn, fp)
    assert (o["fraud_sims"], o["benign_sims"], o["unknown_flagged"], o["flagged"]) == (9, 8, 2, 10)
    assert o["precision"] == pytest.approx(4 / 10)
    assert o["recall"] == pytest.approx(4 / 9)
    assert o["f1"] == pytest.approx(8 / 19)       # 2PR/(P+R) = (32/90) / (76/90)
    assert o["fp_per_10k_benign"] == pytest.approx(10_000 * 6 / (8 + 2))
    assert (o["rigs"], o["rigs_found"], o["rig_recall"]) == (4, 2, 0.5)
    # TTD 5, 10, 30, 60 -> median 20; p95 at rank 2.85 -> 30 + 0.85 * 30 = 55.5
    assert o["time_to_detect"] == {"n": 4, "median_min": 20.0, "p95_min": 55.5}
    assert o["activity_from"] == "cdr"


def test_without_cdr_activity_comes_from_labels(files):
    labels, flags, _ = files
    r = evaluate(labels, flags)
    # fraud: active = first_active set (or flagged); F9 drops out, F10 stays
    assert r["scenarios"]["sms"]["sims"] == 3
    assert r["scenarios"]["goip"]["sims"] == 5
    # benign: all in scope
    assert r["benign"]["ordinary"]["sims"] == 7
    assert r["overall"]["activity_from"] == "labels"
    assert r["overall"]["recall"] == pytest.approx(4 / 8)


def test_no_flags(tmp_path):
    labels, flags, cdr = write_world(tmp_path)
    flags.write_text("imsi,msisdn,score,flagged_at,rig_id,reasons\n")
    o = evaluate(labels, flags, cdr)["overall"]
    assert o["precision"] is None and o["recall"] == 0.0 and o["f1"] is None
    assert o["fp_per_10k_benign"] == 0.0 and o["time_to_detect"]["median_min"] is None


def test_tables_render(files):
    r = evaluate(*files)
    text = format_table(r, "title")
    lines = text.splitlines()
    assert lines[0] == "title"
    assert any(l.startswith("goip ") and "60.0%" in l and "2/2" in l for l in lines)
    assert any(l.startswith("(not in labels)") for l in lines)
    assert "precision 40.0%  recall 44.4%  F1 0.421  FP per 10k benign 6000.0" in text
    both = format_comparison({"ours": r, "baseline": r})
    assert "ours flagged (recall)" in both and "baseline rig recall" in both
    json.dumps(r)  # JSON-ready
    assert not any(isinstance(v, float) and math.isnan(v) for v in r["overall"].values())


def test_cli_evaluate_given_flags(files, tmp_path, capsys):
    labels, flags, cdr = files
    (tmp_path / "subscribers.csv").unlink(missing_ok=True)
    out = tmp_path / "res.json"
    assert main(["evaluate", "--world", str(tmp_path), "--flags", str(flags), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ours"]["overall"]["true_positives"] == 4
    assert "baseline" in res and (tmp_path / "baseline_flags.csv").is_file()
    printed = capsys.readouterr().out
    assert "goipwatch detector" in printed and "naive baseline" in printed
    # the targets, judged on this world: precision 4 of 10 flags misses its 98 %
    assert "== targets" in printed and "MISSED  precision >= 98.0%" in printed
    judged = {c["target"]: c["met"] for c in res["targets"]}
    assert judged["precision >= 98.0%"] is False and judged["iot_meter flagged <= 2.0%"] is None


def test_cli_evaluate_several_worlds_ends_with_a_table_of_all(tmp_path, capsys):
    worlds = [tmp_path / "a", tmp_path / "b"]
    flags = []
    for d in worlds:
        d.mkdir()
        flags.append(write_world(d)[1])
    assert main(["evaluate", "--world", *map(str, worlds), "--flags", *map(str, flags)]) == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("== all worlds"):].splitlines()
    assert [line.split()[0] for line in table[3:5]] == [str(d) for d in worlds]
    assert table[-1] == "worlds meeting every target: 0 of 2"
    assert all((d / "evaluation.json").is_file() for d in worlds)


@pytest.mark.parametrize("extra, message", [
    (["--flags", "x.csv"], "--flags: 1 file for 2 worlds"),
    (["--out", "r.json"], "--out names one result file"),
])
def test_cli_evaluate_several_worlds_refuses_ambiguous_options(tmp_path, capsys, extra, message):
    assert main(["evaluate", "--world", str(tmp_path / "a"), str(tmp_path / "b"), *extra]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- wall clock, misses as never


def at_any(minutes: float) -> str:
    """T0 + minutes (any number of days), ISO UTC."""
    import datetime as dt

    t = dt.datetime(2026, 10, 5, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minutes)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# scenario x: first record at 0, 30, 60 min (flagged after 10 and 60 min, one never);
# scenario y: first record 25 h, 26 h 40, 28 h 20 in (after 20 min, before it, never);
# scenario z: both flagged (30 and 50 min); W has no first record (not timed)
TIMED = [  # (imsi, scenario, first_active minutes, flagged_at minutes or None)
    (imsi(1), "x", 0, 10), (imsi(2), "x", 30, 90), (imsi(3), "x", 60, None),
    (imsi(4), "y", 1500, 1520), (imsi(5), "y", 1600, 1590), (imsi(6), "y", 1700, None),
    (imsi(7), "z", 0, 30), (imsi(8), "z", 0, 50),
]


def write_timed(d: Path) -> tuple[Path, Path]:
    labels, flags = d / "labels.csv", d / "flags.csv"
    labels.write_text("imsi,label,scenario,rig_id,first_active\n"
                      + "".join(f"{i},fraud,{s},{s}{i},{at_any(f)}\n" for i, s, f, _ in TIMED)
                      + f"{imsi(9)},fraud,z,W,\n{imsi(10)},benign,ordinary,,\n")
    flags.write_text("imsi,msisdn,score,flagged_at,rig_id,reasons\n"
                     + "".join(f"{i},8613800000000,0.7,{at_any(t)},,x\n" for i, _, _, t in TIMED
                               if t is not None))
    return labels, flags


def test_wall_clock_time_to_detect_counts_a_missed_sim_as_never(tmp_path):
    labels, flags = write_timed(tmp_path)
    w = evaluate(labels, flags)["overall"]["wall_clock"]
    # all: 10, 60, never, 20, 0 (flagged before its first record), never, 30, 50
    # sorted 0 10 20 30 50 60 never never: median between 30 and 50; p95 at 6.65 -> never
    assert w["all"] == {"sims": 8, "flagged": 6, "missed": 2, "median_min": 40.0, "median_never": False,
                        "p95_min": None, "p95_never": True}
    # cold (first record in the first day): 10, 60, never, 30, 50 -> median 50
    assert w["cold"]["sims"] == 5 and w["cold"]["median_min"] == 50.0 and w["cold"]["p95_never"]
    # after a day watched: 20, 0, never -> median 20, p95 never
    assert w["after_a_day"]["sims"] == 3 and w["after_a_day"]["median_min"] == 20.0
    assert w["after_a_day"]["missed"] == 1 and w["after_a_day"]["p95_never"]


def test_wall_clock_median_is_never_when_half_are_missed_and_exact_without_misses(tmp_path):
    labels, flags = write_timed(tmp_path)
    s = evaluate(labels, flags)["scenarios"]
    # x: 10, 60, never: the median is 60, the p95 interpolates into the miss
    assert s["x"]["wall_clock"]["median_min"] == 60.0 and s["x"]["wall_clock"]["p95_never"]
    # z: 30, 50 and W without a first record (not timed): p95 = 30 + 0.95 * 20
    assert s["z"]["wall_clock"] == {"sims": 2, "flagged": 2, "missed": 0, "median_min": 40.0,
                                    "median_never": False, "p95_min": 49.0, "p95_never": False}
    # with only the flags of x's first SIM, two of three are missed: the median is never
    only = tmp_path / "one.csv"
    only.write_text(f"imsi,msisdn,score,flagged_at,rig_id,reasons\n{imsi(1)},86138,0.7,{at_any(10)},,x\n")
    x = evaluate(labels, only)["scenarios"]["x"]["wall_clock"]
    assert x["median_never"] and x["median_min"] is None and x["missed"] == 2


def test_watching_from_a_day_before_makes_every_sim_warm(tmp_path):
    import datetime as dt

    labels, flags = write_timed(tmp_path)
    day_before = int(dt.datetime(2026, 10, 4, tzinfo=dt.timezone.utc).timestamp())
    w = evaluate(labels, flags, watched_from=day_before)["overall"]["wall_clock"]
    assert w["cold"]["sims"] == 0 and w["after_a_day"]["sims"] == 8
    assert w["after_a_day"]["median_min"] == 40.0 and w["watched_from"] == day_before
