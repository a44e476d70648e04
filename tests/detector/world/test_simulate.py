"""Invariants of the simulated world (small worlds; each test well under a few seconds)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from detector.world.encoding import luhn_valid
from detector.world.simulate import (
    CDR_HEADER,
    LABELS_HEADER,
    SUBSCRIBERS_HEADER,
    WorldParams,
    WorldSummary,
    resolve_mix,
    simulate_world,
)

SMALL = WorldParams(subscribers=2000, days=2, seed=7)
FILES = ("cdr.csv", "subscribers.csv", "labels.csv", "world.json")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[WorldSummary, Path]:
    out = tmp_path_factory.mktemp("world")
    return simulate_world(SMALL, out), out


@pytest.fixture(scope="module")
def tables(world):
    _, out = world
    meta = json.loads((out / "world.json").read_text())
    return rows(out / "cdr.csv"), rows(out / "subscribers.csv"), rows(out / "labels.csv"), meta


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _ts(s: str) -> dt.datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s), s
    return dt.datetime.fromisoformat(s)


def test_headers(world):
    _, out = world
    assert (out / "cdr.csv").read_text().split("\n", 1)[0] == CDR_HEADER
    assert (out / "subscribers.csv").read_text().split("\n", 1)[0] == SUBSCRIBERS_HEADER
    assert (out / "labels.csv").read_text().split("\n", 1)[0] == LABELS_HEADER


def test_label_counts_match_world_json_and_mix(world, tables):
    summary, _ = world
    _, subs, labels, meta = tables
    counts = Counter(r["scenario"] for r in labels)
    assert dict(counts) == {k: v for k, v in meta["counts"].items() if v}
    assert summary.counts == meta["counts"]
    assert summary.subscribers == len(subs) == len(labels) == meta["sims"]["total"]
    assert summary.records == meta["records"]["total"]
    mix = resolve_mix("default")
    assert meta["mix"] == mix
    benign = Counter(r["scenario"] for r in labels if r["label"] == "benign")
    assert sum(benign.values()) == SMALL.subscribers == meta["sims"]["benign"]
    for key in ("call_centre", "courier", "iot_meter", "enterprise", "elderly"):
        assert meta["counts"][key] == round(mix[key] * SMALL.subscribers)
    fraud_scen = {r["scenario"] for r in meta["rigs"]}
    for r in labels:
        assert (r["label"] == "fraud") == (r["scenario"] in fraud_scen)
        assert (r["rig_id"] != "") == (r["label"] == "fraud")


def test_every_cdr_sim_is_registered_and_labelled(tables):
    cdr, subs, labels, _ = tables
    sub_imsi = {r["imsi"] for r in subs}
    lab_imsi = {r["imsi"] for r in labels}
    assert sub_imsi == lab_imsi
    assert len(sub_imsi) == len(subs)
    assert {r["imsi"] for r in cdr} <= sub_imsi
    assert len({r["msisdn"] for r in subs}) == len(subs)
    msisdn_of = {r["imsi"]: r["msisdn"] for r in subs}
    assert all(msisdn_of[r["imsi"]] == r["msisdn"] for r in cdr)


def test_onnet_records_are_reciprocal(tables):
    cdr, subs, _, _ = tables
    imsi_of = {r["msisdn"]: r["imsi"] for r in subs}
    mt = Counter((r["record_type"], r["start_time"], r["imsi"], r["peer"]) for r in cdr if r["direction"] == "MT")
    mo = Counter()
    checked = 0
    for r in cdr:
        if r["direction"] == "MO" and r["record_type"] in ("voice", "sms") and r["peer"] in imsi_of:
            key = (r["record_type"], r["start_time"], imsi_of[r["peer"]], r["msisdn"])
            mo[key] += 1
            checked += 1
    assert checked > 1000
    for key, k in mo.items():
        assert mt[key] >= k, key
    # and the other way round: an MT from a world SIM has its MO
    msisdns = set(imsi_of)
    mo_keys = Counter((r["record_type"], r["start_time"], r["imsi"], r["peer"]) for r in cdr if r["direction"] == "MO")
    for r in cdr:
        if r["direction"] == "MT" and r["peer"] in msisdns:
            assert mo_keys[(r["record_type"], r["start_time"], imsi_of[r["peer"]], r["msisdn"])] >= 1


def test_determinism(tmp_path, world):
    _, out = world
    again = tmp_path / "again"
    simulate_world(SMALL, again)
    for name in FILES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    other = tmp_path / "other"
    simulate_world(WorldParams(subscribers=SMALL.subscribers, days=SMALL.days, seed=SMALL.seed + 1), other)
    for name in ("cdr.csv", "subscribers.csv", "labels.csv"):
        assert (other / name).read_bytes() != (out / name).read_bytes(), name


RESULTS = {"voice": {"answered", "unanswered", "busy", "failed"}, "sms": {"delivered", "failed"}, "data": {"ok"}}


def test_cdr_schema(tables):
    cdr, _, _, meta = tables
    start = _ts(meta["span"]["start"])
    end = _ts(meta["span"]["end"])
    empty_imei = 0
    for r in cdr:
        assert r["record_type"] in RESULTS
        assert r["result"] in RESULTS[r["record_type"]]
        assert r["direction"] in ("MO", "MT")
        t = _ts(r["start_time"])
        assert start <= t < end
        assert re.fullmatch(r"\d+", r["duration_s"])
        d = int(r["duration_s"])
        if r["record_type"] == "sms" or r["result"] != "answered" and r["record_type"] == "voice":
            assert d == 0
        if r["record_type"] == "voice" and r["result"] == "answered":
            assert d > 0
        if r["record_type"] == "data":
            assert r["direction"] == "MO" and r["peer"] == "" and d > 0
        else:
            assert re.fullmatch(r"\d{5,13}", r["peer"]), r
        assert re.fullmatch(r"460(00|02|07|01|11)\d{10}", r["imsi"]), r["imsi"]
        assert re.fullmatch(r"861\d{10}", r["msisdn"])
        if r["imei"]:
            assert re.fullmatch(r"\d{15}", r["imei"]) and luhn_valid(r["imei"]), r["imei"]
        else:
            empty_imei += 1
        m = re.fullmatch(r"460-(\d\d)-(\d+)-(\d+)", r["cell_id"])
        assert m, r["cell_id"]
        assert 1 <= int(m.group(2)) <= 65535 and 1 <= int(m.group(3)) <= 268435455
    assert 0 < empty_imei < 0.05 * len(cdr)


def test_subscribers_schema(tables):
    _, subs, _, meta = tables
    start = _ts(meta["span"]["start"])
    carriers = Counter()
    for r in subs:
        assert re.fullmatch(r"8986\d{15,16}", r["iccid"]) and luhn_valid(r["iccid"]), r["iccid"]
        _ts(r["activated_at"])
        assert re.fullmatch(r"[0-9a-f]{32}", r["id_hash"])
        assert re.fullmatch(r"CH\d{4}", r["channel"])
        carriers[r["carrier"]] += 1
    assert len({r["iccid"] for r in subs}) == len(subs)
    assert {"China Mobile", "China Unicom", "China Telecom"} <= set(carriers)
    mvno = sum(v for k, v in carriers.items() if not k.startswith("China"))
    assert 0 < mvno < 0.1 * len(subs)
    before = sum(_ts(r["activated_at"]) < start for r in subs)
    assert before > 0.95 * len(subs)


def test_some_legitimate_subscribers_are_new(tables):
    """A carrier signs up a few percent of its base every month: a young card is no label."""
    _, subs, labels, meta = tables
    start = _ts(meta["span"]["start"])
    benign = {r["imsi"] for r in labels if r["label"] == "benign"}
    young = [r for r in subs if r["imsi"] in benign and (start - _ts(r["activated_at"])).days < 60]
    assert 0.02 * len(benign) < len(young) < 0.06 * len(benign)
    assert all(_ts(r["activated_at"]) < start for r in young)


def test_rows_sorted_by_time(world):
    _, out = world
    times = [line.split(",", 3)[2] for line in (out / "cdr.csv").read_text().splitlines()[1:]]
    assert times == sorted(times)


def test_first_active_is_first_record(tables):
    cdr, _, labels, _ = tables
    first: dict[str, str] = {}
    for r in cdr:
        first.setdefault(r["imsi"], r["start_time"])
    n_fraud_active = 0
    for r in labels:
        if r["label"] == "fraud":
            assert r["first_active"] == first.get(r["imsi"], "")
            n_fraud_active += r["first_active"] != ""
        else:
            assert r["first_active"] == ""
    assert n_fraud_active > 0


def test_already_running_marks_the_rigs_at_work_when_the_world_starts(tables):
    _, _, labels, meta = tables
    running = {r["rig_id"]: r["start"] == meta["span"]["start"] for r in meta["rigs"]}
    assert any(running.values()) and not all(running.values())
    for r in labels:
        if r["label"] == "fraud":
            assert r["already_running"] == ("1" if running[r["rig_id"]] else "0")
        else:
            assert r["already_running"] == ""


def test_no_archive_unless_asked(world):
    _, out = world
    assert not (out / "archive.csv").exists() and not (out / "archive.pcap").exists()
    assert json.loads((out / "world.json").read_text())["span"]["archive_from"] is None


def test_archive_holds_the_hours_before_the_start(tmp_path):
    """``archive_hours``: the world runs from earlier; the records before ``start`` go to
    archive.csv, the rest to cdr.csv, and the labels describe cdr.csv's world."""
    from probes.signalling.capture import read_capture

    out = tmp_path / "w"
    simulate_world(WorldParams(subscribers=1000, days=1, seed=5, archive_hours=12, pcap=True), out)
    meta = json.loads((out / "world.json").read_text())
    start, archive_from = meta["span"]["start"], meta["span"]["archive_from"]
    assert (start, archive_from) == ("2026-10-05T00:00:00Z", "2026-10-04T12:00:00Z")
    archived, cdr, labels = (rows(out / name) for name in ("archive.csv", "cdr.csv", "labels.csv"))
    assert archived and all(archive_from <= r["start_time"] < start for r in archived)
    assert all(r["start_time"] >= start for r in cdr)
    assert meta["records"]["archive"] == len(archived) and meta["records"]["total"] == len(cdr)
    first: dict[str, str] = {}
    for r in cdr:
        first.setdefault(r["imsi"], r["start_time"])
    fraud = [r for r in labels if r["label"] == "fraud"]
    assert all(r["first_active"] == first.get(r["imsi"], "") for r in fraud)
    # rigs that start within the archive are at work when the world starts, and have a past
    rig_start = {r["rig_id"]: r["start"] for r in meta["rigs"]}
    in_archive = {k for k, v in rig_start.items() if archive_from < v <= start}
    fraud_in_archive = {r["imsi"] for r in archived} & {r["imsi"] for r in fraud}
    assert in_archive and fraud_in_archive
    for r in fraud:
        assert r["already_running"] == ("1" if rig_start[r["rig_id"]] <= start else "0")
    # the capture host's files split at the start too
    t0, t_archive = (dt.datetime.fromisoformat(x).timestamp() for x in (start, archive_from))
    archived_events = read_capture(out / "archive.pcap").events
    live_events = read_capture(out / "signalling.pcap").events
    assert archived_events and all(t_archive <= e.ts < t0 for e in archived_events)
    assert live_events and all(e.ts >= t0 for e in live_events)


def test_bulk_cards_share_registration_and_unused_cards_are_silent(tables):
    cdr, subs, labels, meta = tables
    sub = {r["imsi"]: r for r in subs}
    active = {r["imsi"] for r in cdr}
    by_rig = defaultdict(list)
    for r in labels:
        if r["scenario"] == "bulk_cards":
            by_rig[r["rig_id"]].append(r)
    assert by_rig
    for rig, rows in by_rig.items():
        regs = [sub[r["imsi"]] for r in rows]
        assert len({s["id_hash"] for s in regs}) == 1
        assert len({s["channel"] for s in regs}) == 1
        bodies = sorted(int(s["iccid"][:-1]) for s in regs)
        assert bodies == list(range(bodies[0], bodies[0] + len(bodies)))
        acts = sorted(_ts(s["activated_at"]) for s in regs)
        assert (acts[-1] - acts[0]).total_seconds() <= 300 * len(acts)
        for r in rows:
            if r["first_active"] == "":
                assert r["imsi"] not in active
            else:
                assert _ts(sub[r["imsi"]]["activated_at"]) < _ts(r["first_active"])


def test_fraud_share_under_one_percent(tmp_path):
    summary = simulate_world(WorldParams(subscribers=10_000, days=1, seed=3), tmp_path)
    meta = json.loads((tmp_path / "world.json").read_text())
    fraud = meta["sims"]["fraud"]
    assert 0 < fraud < 0.01 * summary.subscribers
    assert all(meta["counts"][k] > 0 for k in {r["scenario"] for r in meta["rigs"]})
    assert len({r["scenario"] for r in meta["rigs"]}) == 8


def test_fraud_behaviour_signatures(tables):
    """Coarse behavioural checks: what the detector should be able to see."""
    cdr, _, labels, _ = tables
    scen = {r["imsi"]: r["scenario"] for r in labels}
    per = defaultdict(Counter)
    imeis = defaultdict(set)
    sims_per_imei = defaultdict(set)
    for r in cdr:
        s = scen[r["imsi"]]
        per[s][(r["record_type"], r["direction"])] += 1
        if r["imei"]:
            imeis[r["imsi"]].add(r["imei"])
            sims_per_imei[r["imei"]].add(r["imsi"])
    assert per["sms_farm"][("voice", "MO")] == 0 and per["sms_farm"][("sms", "MT")] > per["sms_farm"][("sms", "MO")]
    for s in ("goip_fixed", "goip_rotating", "sim_bank", "mobile_rig"):
        assert per[s][("voice", "MO")] > 20 * max(per[s][("voice", "MT")], 1)
        assert per[s][("sms", "MO")] == 0 and per[s][("data", "MO")] == 0
    assert per["goip_evasive"][("data", "MO")] > 0 and per["goip_evasive"][("sms", "MO")] > 0
    assert per["iot_meter"][("voice", "MO")] == 0 and per["iot_meter"][("data", "MO")] > 0
    dual = [i for i, s in scen.items() if s == "dual_sim"]
    assert any(len(sims_per_imei[e]) == 2 for i in dual for e in imeis[i])


def test_hard_mix_has_more_hard_negatives_and_evasive_rigs(tmp_path):
    default, hard = resolve_mix("default"), resolve_mix("hard")
    for k in ("call_centre", "courier", "taxi", "iot_meter", "enterprise", "shop", "goip_evasive"):
        assert hard[k] > default[k]
    summary = simulate_world(WorldParams(subscribers=2000, days=1, seed=2, mix="hard"), tmp_path)
    assert summary.counts["goip_evasive"] > summary.counts["goip_rotating"]
    fraud = sum(summary.counts[k] for k in default if k.startswith(("goip", "mobile", "sim_", "sms_", "bulk", "sleep")))
    assert fraud < 0.01 * summary.subscribers


@pytest.mark.parametrize(
    ("spec", "key", "value"),
    [("courier=0.05", "courier", 0.05), ("hard,goip_rotating=0", "goip_rotating", 0.0), ("default", "taxi", 0.004)],
)
def test_mix_overrides(spec, key, value):
    assert resolve_mix(spec)[key] == value


@pytest.mark.parametrize(
    ("spec", "match"),
    [("nosuch=1", "unknown mix key"), ("weird", "unknown mix preset"), ("courier=x", "not a number"),
     ("ordinary_share=0.1", "unknown mix key"), ("elderly=0.9,courier=0.2", "less than 1")],
)
def test_mix_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        resolve_mix(spec)


def test_override_removes_scenario(tmp_path):
    summary = simulate_world(WorldParams(subscribers=500, days=1, seed=1, mix="sms_farm=0,bulk_cards=0"), tmp_path)
    assert summary.counts["sms_farm"] == 0 and summary.counts["bulk_cards"] == 0
    labels = (tmp_path / "labels.csv").read_text()
    assert "sms_farm" not in labels and "bulk_cards" not in labels
