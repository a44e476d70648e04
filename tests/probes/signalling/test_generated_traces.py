"""Traces no public capture holds, generated with scapy (``traces/*.py`` beside each ``.pcap``).

Each trace was first checked with plain TShark (``tshark -r F -V``): the SIP burst decodes as
12 INVITEs from 5 From numbers, the MAP trace as gsm_map checkIMEI invoke/returnResultLast with
``gsm_map.ms.imei`` 352099001761481 etc., the Diameter trace as 3GPP-ME-Identity-Check and
3GPP-Update-Location with ``diameter.IMEI`` inside Terminal-Information. The events below are
the probe's, value for value. The generators are also re-run to check that they still write
the committed bytes.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

from detector.cli import main
from detector.records import SignalingEvent
from probes.signalling import read_capture

TRACES = Path(__file__).resolve().parent / "traces"
NAMES = ("sip_invite_burst", "map_check_imei", "diameter_s13_s6a")

needs_tshark = pytest.mark.tshark


def events(name: str) -> list[SignalingEvent]:
    c = read_capture(TRACES / f"{name}.pcap")
    assert c.error is None and c.dropped_fields == ()
    return c.events


def jsonl(name: str, capsys) -> list[dict]:
    assert main(["inspect", "--jsonl", str(TRACES / f"{name}.pcap")]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


# --- (a) GOIP-like SIP INVITE burst -----------------------------------------------------

SIP_BASE = 1_700_000_000.0
# (frame, offset s, From SIM, callee as read, latency ms) per INVITE, in order
SIP_INVITES = [
    (1, 0.0, "447700900101", "441632960001", 350.0),
    (3, 0.1, "447700900102", "441632960002", 360.0),
    (5, 0.2, "447700900103", "441632960003", 870.0),   # retransmitted at 0.7 s: folded
    (6, 0.3, "447700900104", "01632960004", 380.0),    # sip:0163...;user=phone stays national
    (10, 0.4, "447700900105", "441632960005", 390.0),
    (14, 0.5, "447700900101", "441632960006", 400.0),
    (16, 0.6, "447700900102", "441632960007", 410.0),
    (21, 0.7, "447700900103", "441632960008", 420.0),
    (26, 0.8, "447700900104", "01632960009", 430.0),   # tel:0163... national
    (29, 0.9, "447700900105", "441632960010", 440.0),
    (32, 1.0, "447700900101", "441632960011", 450.0),
    (38, 1.1, "447700900102", "441632960012", 460.0),
]


@needs_tshark
def test_sip_invite_burst_events():
    got = events("sip_invite_burst")
    expected = [
        SignalingEvent(ts=SIP_BASE + dt, kind="call_attempt", protocol="sip", message="INVITE",
                       msisdn=sim, peer=callee, correlation_id=f"b0c{i:03d}@192.0.2.10",
                       latency_ms=lat, frame=frame)
        for i, (frame, dt, sim, callee, lat) in enumerate(SIP_INVITES)
    ] + [
        # The callee of call 0 hangs up: From/To are turned round to the SIM's point of view.
        SignalingEvent(ts=SIP_BASE + 1.5, kind="call_release", protocol="sip", message="BYE",
                       msisdn="447700900101", peer="441632960001",
                       correlation_id="b0c000@192.0.2.10", latency_ms=3.0, frame=48),
    ]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.ts == pytest.approx(e.ts, abs=1e-6)  # pcap keeps microseconds
        assert g == replace(e, ts=g.ts)


@needs_tshark
def test_sip_invite_burst_goip_shape():
    """What a detector sees: one source, 5 SIMs, 12 distinct callees within 1.1 s."""
    invites = [e for e in events("sip_invite_burst") if e.message == "INVITE"]
    assert len({e.msisdn for e in invites}) == 5
    assert len({e.peer for e in invites}) == 12
    assert max(e.ts for e in invites) - min(e.ts for e in invites) == pytest.approx(1.1)
    assert all(e.imsi is None and e.imei is None and e.cell_id is None for e in invites)


@needs_tshark
def test_sip_invite_burst_jsonl(capsys):
    lines = jsonl("sip_invite_burst", capsys)
    assert [(d["message"], d["kind"], d["msisdn"], d["peer"], d["latency_ms"], d["frame"])
            for d in lines] == [
        ("INVITE", "call_attempt", sim, callee, lat, frame)
        for frame, _, sim, callee, lat in SIP_INVITES
    ] + [("BYE", "call_release", "447700900101", "441632960001", 3.0, 48)]
    assert lines[2]["correlation_id"] == "b0c002@192.0.2.10" and lines[2]["imsi"] is None


# --- (b) GSM MAP CheckIMEI ---------------------------------------------------------------

@needs_tshark
def test_map_check_imei(capsys):
    assert [(d["message"], d["kind"], d["protocol"], d["imsi"], d["msisdn"], d["imei"],
             d["correlation_id"], d["latency_ms"], d["frame"], d["ts"])
            for d in jsonl("map_check_imei", capsys)] == [
        # v3 argument (SEQUENCE with requestedEquipmentInfo), answered whiteListed in 42 ms
        ("checkIMEI", "imei_check", "gsm_map", None, None, "352099001761481", "0a000001", 42.0, 1,
         1_700_000_100.0),
        # v2 bare IMEI sent with a spare 0 as check digit: the check digit 8 is recomputed
        ("checkIMEI", "imei_check", "gsm_map", None, None, "490154203237518", "0a000002", 15.0, 3,
         1_700_000_101.0),
        # never answered: no latency
        ("checkIMEI", "imei_check", "gsm_map", None, None, "866912034576511", "0a000003", None, 5,
         1_700_000_102.0),
    ]


# --- (c) Diameter S13 ECR/ECA and S6a ULR with Terminal-Information ----------------------

@needs_tshark
def test_diameter_s13_s6a(capsys):
    assert [(d["message"], d["kind"], d["imsi"], d["msisdn"], d["imei"], d["correlation_id"],
             d["latency_ms"], d["frame"], d["ts"])
            for d in jsonl("diameter_s13_s6a", capsys)] == [
        # S13 over SCTP: Terminal-Information IMEI of 14 digits gets its check digit
        ("ECR", "imei_check", "234150999999001", None, "352099001761481",
         "0x00000101/0x5a000101", 8.0, 1, 1_700_000_200.0),
        # no User-Name (optional in S13); a 15-digit IMEI
        ("ECR", "imei_check", None, None, "490154203237518",
         "0x00000102/0x5a000102", 12.0, 3, 1_700_000_200.5),
        # S6a over TCP after CER/CEA (no event): MSISDN from the ULA's Subscription-Data
        ("ULR", "location_update", "234150999999001", "447700900123", "352099001761481",
         "0x00000201/0x5a000201", 25.0, 10, 1_700_000_201.03),
    ]


# --- the generators still write the committed bytes --------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_generator_is_deterministic(name, tmp_path):
    spec = importlib.util.spec_from_file_location(f"trace_{name}", TRACES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / f"{name}.pcap"
    module.main(["gen", str(out)])
    assert out.read_bytes() == (TRACES / f"{name}.pcap").read_bytes()
