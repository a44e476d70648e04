"""The shared public captures, end to end through TShark.

Every expected value was checked by hand against plain TShark, e.g.
``tshark -r F -Y gtpv2 -T fields -e e212.imsi -e gtpv2.mei -e e164.msisdn``,
``tshark -r F -Y diameter -T fields -e diameter.User-Name -e diameter.MSISDN``,
``tshark -r F -Y gsm_map -T fields -e e212.imsi -e gsm_map.sm.msisdn -e gsm_map.ch.msisdn``.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest

from probes.signalling import Capture, read_capture
from tests.inputs import CAPTURES


pytestmark = [
    pytest.mark.captures,
    pytest.mark.tshark,
]


@cache
def capture(name: str) -> Capture:
    c = read_capture(CAPTURES / name)
    assert c.error is None and c.dropped_fields == ()
    return c


def counts(c: Capture) -> dict:
    return dict(Counter((e.protocol, e.message) for e in c.events))


def values(c: Capture, key: str, protocol: str | None = None) -> set:
    return {getattr(e, key) for e in c.events
            if getattr(e, key) is not None and (protocol is None or e.protocol == protocol)}


def by_message(c: Capture, message: str):
    return [e for e in c.events if e.message == message]


def test_ndpi_gtp_c():
    c = capture("ndpi_gtp_c.pcap")
    assert counts(c) == {("gtpv2", "Create Session Request"): 1, ("gtpv2", "Delete Session Request"): 1}
    (cs,) = by_message(c, "Create Session Request")
    assert (cs.imsi, cs.msisdn, cs.imei) == ("987654112233445", "896745214365", "436587092110204")
    assert cs.cell_id == "896-457-4660-305419896"  # TAI TAC 0x1234, ECGI ECI 305419896
    assert cs.kind == "session" and cs.correlation_id == "0x4b5462"
    assert cs.latency_ms == pytest.approx(1.158)   # frame 2 answers frame 1
    # The Delete Session Request names no one: its header TEID 0x35529206 is the PGW's
    # control TEID from the Create Session Response's F-TEID, so it is the same session.
    (ds,) = by_message(c, "Delete Session Request")
    assert (ds.imsi, ds.msisdn, ds.imei) == (cs.imsi, cs.msisdn, cs.imei)


def test_magma_inbound_roaming_01():
    c = capture("magma_inbound_roaming_01_210505_130828-1.pcapng")
    assert counts(c) == {
        ("s1ap", "Attach request"): 1, ("s1ap", "Identity response"): 1,
        ("s1ap", "Authentication request"): 1,
        ("s1ap", "Security mode complete"): 1, ("s1ap", "Detach request"): 1,
        ("diameter", "AIR"): 1, ("diameter", "ULR"): 1, ("diameter", "PUR"): 1,
        ("gtpv2", "Create Session Request"): 1, ("gtpv2", "Delete Session Request"): 1}
    assert values(c, "imsi") == {"001020000000064"}
    # Delete Session Request (frame 207) to TEID 0x13, the PGW's F-TEID in the response
    assert by_message(c, "Delete Session Request")[0].imsi == "001020000000064"
    (ulr,) = by_message(c, "ULR")
    assert ulr.msisdn == "0015102000064"       # raw TBCD 005101020060f4 of the ULA
    assert ulr.imsi == "001020000000064" and ulr.latency_ms is not None
    (cs,) = by_message(c, "Create Session Request")
    assert (cs.msisdn, cs.imei, cs.cell_id) == ("0012000", "409417533776004", "001-01-1-1")
    # NAS: IMSI in the identity response, IMEISV 3571490400677300 in security mode complete;
    # S1AP: ECGI 001-01 cell 0x101, TAC 1. Shared by every event of the UE context.
    for e in c.events:
        if e.protocol == "s1ap":
            assert (e.imsi, e.imei, e.cell_id) == ("001020000000064", "357149040067732", "001-01-1-257")
    assert [e.kind for e in c.events if e.protocol == "s1ap"] == [
        "attach", "identity", "auth", "identity", "detach"]
    # NAS Authentication request (frame 20) answered by the (simulated) UE in frame 21
    (auth,) = by_message(c, "Authentication request")
    assert auth.latency_ms == pytest.approx(0.118)


def test_magma_nsa_connection():
    c = capture("magma_nsa_connection.pcap")
    assert counts(c)[("gtpv2", "Modify Bearer Request")] == 2
    # S11: both Modify Bearer Requests and the Delete Session Request go to TEID 0x2, the
    # SGW's control TEID in the Create Session Response: the session of IMSI ...1140
    linked = by_message(c, "Modify Bearer Request") + by_message(c, "Delete Session Request")
    assert [e.imsi for e in linked] == ["222010100001140"] * 3
    assert values(c, "imsi") == {"222010100001140"}
    assert values(c, "imei") == {"868876040227120"}      # IMEISV 8688760402271206
    assert values(c, "cell_id") == {"222-01-1-917760"}   # ECI 0x000e0100
    assert values(c, "msisdn") == set()
    # a real UE: Authentication request in frame 22, its response 155 ms later in frame 24
    (auth,) = by_message(c, "Authentication request")
    assert auth.latency_ms == pytest.approx(155.211) and auth.imsi == "222010100001140"


def test_magma_gx_gy_ccr_identities():
    c = capture("magma_gx_gy_combined_05_210505_133111-1.pcapng")
    ccrs = by_message(c, "CCR")
    assert len(ccrs) == 7
    full = [e for e in ccrs if e.msisdn]
    assert len(full) == 6  # the Gx CCR-T of frame 121 carries only the IMSI
    for e in full:
        assert (e.imsi, e.msisdn, e.cell_id) == ("999991234567810", "1234567810", "001-01-1-257")
        # User-Equipment-Info-Value 04 00 09 04 ... (one digit per octet) = IMEISV 4094175337760000
        assert e.imei == "409417533776004"
    assert all(e.latency_ms is not None for e in ccrs)
    (ula,) = by_message(c, "ULR")
    assert ula.msisdn == "1234567810"   # diameter.MSISDN 2143658701 is TBCD


def test_ndpi_diameter_gy():
    c = capture("ndpi_diameter.pcap")
    assert counts(c) == {("diameter", "CCR"): 3}
    assert values(c, "msisdn") == {"919080000016"} and values(c, "imsi") == set()
    assert [e.correlation_id for e in c.events] == [
        "0x02ea4930/0x26f00003", "0x02ea4931/0x26f00005", "0x02ea4932/0x26f00007"]


def test_pycrate_s1ap_ims_sip():
    c = capture("pycrate_s1ap_pcapr.pcap")
    assert counts(c) == {("s1ap", "Attach request"): 1, ("s1ap", "Security mode complete"): 1,
                         ("s1ap", "Authentication request"): 1,
                         ("s1ap", "Detach request"): 1, ("sip", "REGISTER"): 3,
                         ("sip", "INVITE"): 1, ("sip", "BYE"): 1, ("sip", "MESSAGE"): 1}
    (invite,) = by_message(c, "INVITE")
    assert (invite.msisdn, invite.peer) == ("88270006", "122")   # tel: URIs
    assert invite.cell_id == "310-410-1-27447297"                # P-Access-Network-Info
    (bye,) = by_message(c, "BYE")                                 # sent by the callee, turned round
    assert (bye.msisdn, bye.peer) == ("88270006", "122")
    (msg,) = by_message(c, "MESSAGE")
    assert msg.kind == "sms" and msg.msisdn == "88270006"
    for reg in by_message(c, "REGISTER"):
        assert reg.imsi == "310410010001002" and reg.msisdn == "263734"
        assert reg.imei == "354427063233479"                      # +sip.instance urn:gsma:imei
    # The UE attached with a GUTI: NAS gives the IMEISV (3544270632334702) but no IMSI.
    assert values(c, "imei", "s1ap") == {"354427063233479"}
    assert values(c, "imsi", "s1ap") == set()
    assert by_message(c, "Authentication request")[0].latency_ms == pytest.approx(111.0)


def test_ndpi_sip_numbers_and_retransmissions():
    c = capture("ndpi_sip.pcap")
    # 11 INVITE frames: 3 copies of one INVITE, 3 of the next, and 5 single ones.
    assert counts(c) == {("sip", "REGISTER"): 18, ("sip", "INVITE"): 7}
    assert values(c, "msisdn") == {"816666", "35104723"}      # voi18063 is a name, not a number
    assert values(c, "peer") == {"97239287044", "35104724"}   # sip:0097239287044@... dialled
    assert all(e.peer is None for e in by_message(c, "REGISTER"))


def test_fax_call_sip():
    c = capture("ndpi_FAX-Call-t38-CA-TDM-SIP-FB-1.pcap")
    assert counts(c) == {("sip", "INVITE"): 9, ("sip", "BYE"): 2}
    assert values(c, "peer") | values(c, "msisdn") == {"061963177"}


def test_pycrate_map():
    c = capture("pycrate_tcapmap_pcapr.pcap")
    assert counts(c) == {
        ("gsm_map", "sendRoutingInfoForSM"): 2, ("gsm_map", "mt-forwardSM"): 3,
        ("gsm_map", "sendAuthenticationInfo"): 2, ("gsm_map", "updateGprsLocation"): 1,
        ("gsm_map", "updateLocation"): 8, ("gsm_map", "anyTimeInterrogation"): 1,
        ("gsm_map", "sendIdentification"): 2, ("gsm_map", "sendRoutingInfo"): 3}
    assert values(c, "imsi") == {"001011356567851", "001011356567853", "228012120109856",
                                 "234157799119004", "405037027451342", "405037027451347",
                                 "460004100000101"}
    # Subscriber numbers only: the VLR/MSC/HLR/SMSC addresses TShark also puts in
    # e164.msisdn (41799797800, 41441122, 41443145, 41797997809, ...) must not appear.
    assert values(c, "msisdn") == {"41792457333", "447799119004", "8618903100031", "918793714126"}
    sri_sm = by_message(c, "sendRoutingInfoForSM")[0]
    assert (sri_sm.msisdn, sri_sm.imsi) == ("41792457333", "228012120109856")  # IMSI from the result
    assert sri_sm.latency_ms == pytest.approx(194.0)
    (ati,) = by_message(c, "anyTimeInterrogation")
    assert ati.cell_id == "405-037-7005-31319"      # CGI in the result: 0475301b5d7a57
    assert {e.peer for e in by_message(c, "mt-forwardSM")} == {"123456789012345"}  # TP-OA
    # updateLocation answered with a ReturnError (roamingNotAllowed) still gets its latency.
    ul = [e for e in by_message(c, "updateLocation") if e.imsi == "405037027451342"]
    assert len(ul) == 1 and ul[0].latency_ms == pytest.approx(947.0)


def test_tcpdump_isup_needs_m3ua_draft6():
    c = capture("tcpdump_isup.pcap")
    assert counts(c) == {("isup", "IAM"): 1, ("isup", "REL"): 1}
    iam, rel = c.events
    assert (iam.msisdn, iam.peer, iam.kind) == ("3933399708", "4891", "call_attempt")
    assert iam.latency_ms == pytest.approx(124.157)   # ANM, frame 4
    assert (rel.msisdn, rel.peer, rel.kind) == ("3933399708", "4891", "call_release")
    assert iam.correlation_id == rel.correlation_id == "11522-12163-213"


def test_no_covered_protocol():
    assert capture("ndpi_gtp_prime.pcapng").events == []
