"""The simulated world's signalling capture, read back through the real probe (TShark)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from detector.records import parse_iso
from detector.world.signalling import _rank_within, _tbcd, uli
from detector.world.simulate import WorldParams, simulate_world

needs_tshark = pytest.mark.tshark


def test_tbcd_and_uli_encodings_by_hand():
    assert _tbcd("460001") == bytes([0x64, 0x00, 0x10])
    assert _tbcd("12345") == bytes([0x21, 0x43, 0xF5])
    # ULI: type 86, length 13, flags TAI+ECGI, PLMN 460-00 = 64 F0 00, TAC 4097, ECI 1
    assert uli("460-00-4097-1") == bytes.fromhex("56000d00" "18" "64f000" "1001" "64f000" "00000001")


def test_rank_within_groups_follows_the_tiebreak():
    group = np.array([2, 1, 2, 1, 2])
    assert _rank_within(group, np.array([0.5, 0.9, 0.1, 0.2, 0.7])).tolist() == [1, 1, 0, 0, 2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("sigworld")
    simulate_world(WorldParams(subscribers=3000, days=2, seed=4, mix="goip_fixed=0.005,goip_evasive=0.005",
                               pcap=True), out)
    return out


@needs_tshark
def test_capture_holds_the_worlds_attaches_with_registered_identities(world):
    from probes.signalling.capture import read_capture

    meta = json.loads((world / "world.json").read_text())
    cap = read_capture(world / "signalling.pcap")
    assert cap.error is None
    sig = meta["signalling"]
    counts = Counter((e.protocol, e.message) for e in cap.events)
    assert counts == {("gtpv2", "Create Session Request"): sig["attaches"],
                      ("diameter", "ECR"): sig["imei_checks"],
                      ("gtpv2", "Modify Bearer Request"): sig["location_updates"],
                      ("sip", "INVITE"): sig["call_setups"]}
    assert min(counts.values()) > 0
    # every create is answered (its latency known); updates reach their session by tunnel id
    assert all(e.latency_ms is not None for e in cap.events if e.message == "Create Session Request")
    assert all(e.imsi for e in cap.events if e.protocol != "sip")
    with (world / "subscribers.csv").open() as fh:
        imsi_of = {r["msisdn"]: r["imsi"] for r in csv.DictReader(fh)}
    for e in cap.events:
        if e.message == "ECR":              # the device of the attach just before it
            assert e.imei
        if e.protocol == "sip":             # the caller by number; the cell and device too
            assert e.msisdn in imsi_of and e.cell_id and e.peer
    with (world / "subscribers.csv").open() as fh:
        msisdn_of = {r["imsi"]: r["msisdn"] for r in csv.DictReader(fh)}
    with (world / "cdr.csv").open() as fh:
        cdr_cells = {r["cell_id"] for r in csv.DictReader(fh)}
    for e in cap.events:
        if e.imsi:
            assert msisdn_of[e.imsi] == e.msisdn or e.protocol == "diameter"
        if e.cell_id:
            assert e.cell_id in cdr_cells           # the same cell names as the CDRs
    assert [e.ts for e in cap.events] == sorted(e.ts for e in cap.events)
    assert parse_iso(meta["span"]["start"]) <= cap.events[0].ts
    assert cap.events[-1].ts < parse_iso(meta["span"]["end"])


@needs_tshark
def test_rig_sims_attach_together_and_people_do_not(world):
    from probes.signalling.capture import read_capture

    with (world / "labels.csv").open() as fh:
        labels = {r["imsi"]: r for r in csv.DictReader(fh)}
    by_cell = defaultdict(list)
    for e in read_capture(world / "signalling.pcap").events:
        if e.message == "Create Session Request":
            by_cell[e.cell_id].append((e.ts, e.imsi))
    others = defaultdict(int)
    for events in by_cell.values():
        for t, imsi in events:
            n = sum(1 for u, other in events if other != imsi and abs(u - t) <= 30)
            others[imsi] = max(others[imsi], n)
    fixed = [i for i, r in labels.items() if r["scenario"] == "goip_fixed" and i in others]
    ordinary = [i for i, r in labels.items() if r["scenario"] == "ordinary" and i in others]
    assert fixed and ordinary
    assert np.median([others[i] for i in fixed]) >= 3
    assert np.mean([others[i] >= 3 for i in ordinary]) < 0.01
