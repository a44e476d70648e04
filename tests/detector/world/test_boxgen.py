"""The second generator: files the detector reads, a ground truth that matches them, and the
behaviours its sources describe."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from detector.cli import main
from detector.world.boxgen import SCENARIOS, BoxParams, simulate_boxworld
from detector.world.encoding import luhn_valid
from detector.world.evaluate import evaluate
from probes.csvparse import read_feed_file


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("boxworld")
    simulate_boxworld(BoxParams(subscribers=800, days=1, seed=3), d)
    return d


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_detector_reads_every_row_of_its_files(world):
    cdr = list(read_feed_file(world / "cdr.csv", "cdr"))
    assert sum(len(p.batch.ts) for p in cdr) == len(rows(world / "cdr.csv")) > 0
    assert not any(p.rejected for p in cdr)
    reg = list(read_feed_file(world / "subscribers.csv", "registrations"))
    assert sum(len(p.batch.imsi) for p in reg) == len(rows(world / "subscribers.csv"))
    assert not any(p.rejected for p in reg)
    for r in rows(world / "subscribers.csv")[:50]:
        assert luhn_valid(r["iccid"]) and len(r["iccid"]) == 20


def test_score_and_evaluate_run_on_it(world, tmp_path):
    flags = tmp_path / "flags.csv"
    assert main(["score", "--cdr", str(world / "cdr.csv"), "--subscribers", str(world / "subscribers.csv"),
                 "--out", str(flags)]) == 0
    result = evaluate(world / "labels.csv", flags, world / "cdr.csv")
    assert set(result["scenarios"]) == set(SCENARIOS)
    assert result["overall"]["fraud_sims"] == sum(1 for r in rows(world / "labels.csv") if r["label"] == "fraud")
    assert result["overall"]["wall_clock"]["all"]["sims"] == result["overall"]["fraud_sims"]


def test_the_ground_truth_matches_the_records(world):
    labels = {r["imsi"]: r for r in rows(world / "labels.csv")}
    assert set(labels) == {r["imsi"] for r in rows(world / "subscribers.csv")}
    first: dict[str, str] = {}
    for r in rows(world / "cdr.csv"):
        first.setdefault(r["imsi"], r["start_time"])      # the file is in time order
    meta = json.loads((world / "world.json").read_text())
    for imsi, lab in labels.items():
        if lab["label"] == "fraud":
            assert lab["scenario"] in SCENARIOS and lab["rig_id"]
            assert lab["first_active"] == first.get(imsi, "")
            assert lab["already_running"] in ("0", "1")
        else:
            assert lab["rig_id"] == "" and lab["first_active"] == "" and lab["already_running"] == ""
    assert meta["generator"] == "goipwatch detector.world.boxgen"
    assert sum(r["sims"] for r in meta["rigs"]) == meta["sims"]["fraud"]
    assert {r["scenario"] for r in meta["rigs"]} == set(SCENARIOS)


def test_the_same_seed_writes_the_same_bytes(world, tmp_path):
    simulate_boxworld(BoxParams(subscribers=800, days=1, seed=3), tmp_path)
    for f in ("cdr.csv", "subscribers.csv", "labels.csv", "world.json"):
        assert (tmp_path / f).read_bytes() == (world / f).read_bytes()


def test_boxes_behave_as_the_sources_describe(world):
    labels = {r["imsi"]: r for r in rows(world / "labels.csv")}
    out, inc, cells, peers, imeis = Counter(), Counter(), defaultdict(set), defaultdict(list), defaultdict(set)
    sims_of_imei = defaultdict(set)
    for r in rows(world / "cdr.csv"):
        i = r["imsi"]
        if r["record_type"] == "voice":
            (out if r["direction"] == "MO" else inc)[i] += 1
            if r["direction"] == "MO":
                peers[i].append(r["peer"])
        cells[i].add(r["cell_id"])
        if r["imei"]:
            imeis[i].add(r["imei"])
            sims_of_imei[r["imei"]].add(i)
    by = defaultdict(list)
    for i, lab in labels.items():
        if out[i]:
            by[lab["scenario"]].append(i)
    # Murynets et al.: a static location, far more calls out than in, to many distinct numbers
    static = by["simbox_static"]
    assert static
    assert sum(out[i] for i in static) > 20 * sum(inc[i] for i in static)
    assert all(len(cells[i]) == 1 for i in static)
    assert all(len(set(peers[i])) > 0.9 * len(peers[i]) for i in static)
    # people: calls both ways, several places
    people = by["ordinary"]
    assert 0.3 < sum(inc[i] for i in people) / sum(out[i] for i in people) < 3
    assert sum(len(cells[i]) > 1 for i in people) > 0.5 * len(people)
    # Kouam et al.: rotation puts several SIMs behind one port IMEI; IMEI manipulation gives
    # one SIM many IMEIs; a mobile box's SIMs move together
    rotating = set(by["simbox_rotating"])
    assert any(len(sims_of_imei[e] & rotating) > 1 for i in rotating for e in imeis[i])
    assert all(len(imeis[i]) > 2 for i in by["simbox_imei_change"] if out[i] > 20)
    assert max(len(cells[i]) for i in by["simbox_mobile"]) > 5
    # human behaviour simulation: the box's SIMs call each other
    human = set(by["simbox_human"])
    msisdn = {r["imsi"]: r["msisdn"] for r in rows(world / "subscribers.csv")}
    mates = {msisdn[i] for i in human}
    assert sum(p in mates for i in human for p in peers[i]) > 0


def test_bad_parameters_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown mix 'random'"):
        simulate_boxworld(BoxParams(mix="random"), tmp_path)
    with pytest.raises(ValueError, match="subscribers"):
        simulate_boxworld(BoxParams(subscribers=10), tmp_path)
    assert main(["simulate", "--generator", "boxgen", "--pcap", "--out", str(tmp_path / "w")]) == 2
