"""TShark field output and request/answer pairing, on literal text (no TShark needed)."""

from probes.signalling import diameter, gtpv2, sip
from probes.signalling.correlate import ANSWER, REQUEST, Message, correlate
from probes.signalling.tshark import (AGGREGATOR as A, SEPARATOR as S, FrameInfo, damage,
                                      invalid_fields, parse_fields_output)


def test_parse_fields_output_keeps_occurrences_and_drops_cut_lines():
    fields = ["frame.number", "sip.contact.parameter", "sip.From"]
    text = (f"1{S}expires=1200{A}q=0.500{S}<sip:a@b>;tag=1, x\n"   # a comma inside a value
            f"2{S}{S}\n"
            f"3{S}cut")                                           # too few fields: dropped
    rows = parse_fields_output(text, fields)
    assert len(rows) == 2
    assert rows[0].all("sip.contact.parameter") == ("expires=1200", "q=0.500")
    assert rows[0].first("sip.From") == "<sip:a@b>;tag=1, x"
    assert rows[1].all("sip.contact.parameter") == () and rows[1].first("sip.From") is None
    assert rows[0].first("no.such.field") is None


def test_tshark_messages():
    stderr = ('Running as user "root" and group "root". This could be dangerous.\n'
              "tshark: Some fields aren't valid:\n\tsip.contact.addr\n\tfoo.bar\n")
    assert invalid_fields(stderr) == ["sip.contact.addr", "foo.bar"]
    cut = 'tshark: The file "x.pcap" appears to have been cut short in the middle of a packet.\n'
    assert damage(cut).startswith('The file "x.pcap" appears to have been cut short')
    assert damage('Running as user "root" and group "root". This could be dangerous.\n') is None


def _row(fields: dict):
    names = list(fields)
    return parse_fields_output(S.join(fields[n] for n in names), names)[0]


def test_diameter_ccr_row_to_message():
    row = _row({
        "diameter.cmd.code": "272", "diameter.flags.request": "1",
        "diameter.hopbyhopid": "0x25a1bc81", "diameter.endtoendid": "0x6c6c07c7",
        "diameter.User-Name": "", "diameter.Subscription-Id-Type": f"1{A}0",
        "diameter.Subscription-Id-Data": f"999991234567810{A}1234567810",
        "diameter.MSISDN": "", "diameter.3GPP-User-Location-Info": "8200f110000100f11000000101",
        "diameter.User-Equipment-Info-Type": "0",
        "diameter.User-Equipment-Info-Value": "04000904010705030307070600000000",
        "diameter.IMEI": "", "diameter.Software-Version": "",
    })
    (m,) = diameter.messages(row, FrameInfo(32, 1.0, "10.0.0.1", "10.0.0.2"))
    assert (m.message, m.kind, m.role) == ("CCR", "session", REQUEST)
    assert (m.imsi, m.msisdn, m.imei, m.cell_id) == (
        "999991234567810", "1234567810", "409417533776004", "001-01-1-257")


def test_gtpv2_and_sip_rows():
    g = _row({"gtpv2.message_type": "32", "gtpv2.seq": "0x4b5462", "e212.imsi": "987654112233445",
              "gtpv2.mei": "436587092110203", "e164.msisdn": "896745214365",
              "e212.ecgi.mcc": "896", "e212.ecgi.mnc": "457", "gtpv2.ecgi_eci": "305419896",
              "gtpv2.tai_tac": "0x1234"})
    (m,) = gtpv2.messages(g, FrameInfo(1, 1.0, "a", "b"))
    assert (m.imsi, m.imei, m.msisdn, m.cell_id) == (
        "987654112233445", "436587092110204", "896745214365", "896-457-4660-305419896")
    s = _row({"sip.Method": "INVITE", "sip.Status-Code": "", "sip.CSeq.method": "INVITE",
              "sip.CSeq.seq": "1", "sip.Call-ID": "c1", "sip.r-uri": "tel:122",
              "sip.from.addr": "tel:+88270006", "sip.to.addr": "tel:122"})
    (m,) = sip.messages(s, FrameInfo(75, 1.0, "a", "b"))
    assert (m.msisdn, m.peer, m.kind) == ("88270006", "122", "call_attempt")


def _msg(frame, ts, role, key, **ids):
    return Message(ts=ts, frame=frame, protocol="p", message="ULR" if role == REQUEST else "ULA",
                   kind="location_update", role=role, key=key, **ids)


def test_correlate_merges_answer_identity_and_latency():
    events = correlate([
        _msg(1, 10.0, REQUEST, ("a",), imsi="001010000000001"),
        _msg(2, 10.5, REQUEST, ("b",)),
        _msg(3, 10.25, ANSWER, ("a",), msisdn="1234567810"),
        _msg(4, 11.0, ANSWER, ("zz",)),              # request not captured: kept alone
    ])
    assert [(e.frame, e.message) for e in events] == [(1, "ULR"), (2, "ULR"), (4, "ULA")]
    assert events[0].msisdn == "1234567810" and events[0].imsi == "001010000000001"
    assert events[0].latency_ms == 250.0
    assert events[1].latency_ms is None


def test_correlate_folds_retransmissions_only_when_asked():
    def req(frame, fold):
        return Message(ts=frame, frame=frame, protocol="p", message="INVITE", kind="call_attempt",
                       role=REQUEST, key=("c",), fold_repeats=fold)
    assert len(correlate([req(1, True), req(2, True)])) == 1
    assert len(correlate([req(1, False), req(2, False)])) == 2  # MAP: one dialogue per link


def test_gtpv2_messages_of_a_session_get_its_identities_by_tunnel_id_between_the_same_hosts():
    from probes.signalling import gtpv2
    from probes.signalling.correlate import ANSWER, REQUEST, Message

    a, b, other = frozenset({"10.0.0.1", "10.0.0.2"}), frozenset({"10.0.0.1", "10.0.0.2"}), \
        frozenset({"10.0.0.1", "10.0.0.9"})

    def msg(frame, hosts, seq, mtype, header, own, role=REQUEST, **ids):
        return Message(ts=frame, frame=frame, protocol="gtpv2", message=str(mtype), kind="session",
                       role=role, key=(hosts, seq), context=(mtype, header, own), **ids)

    out = gtpv2.orient([
        msg(1, a, "0x1", 32, 0, 0x100, imsi="460001234567890", msisdn="8613800000001"),
        msg(2, b, "0x1", 33, 0x100, 0x200, role=ANSWER),
        msg(3, a, "0x2", 34, 0x200, None),              # Modify Bearer to the SGW's TEID
        msg(4, other, "0x3", 34, 0x200, None),          # same TEID, another pair of hosts
        msg(5, a, "0x4", 36, 0x999, None),              # a TEID nobody announced
    ])
    assert [m.imsi for m in out] == ["460001234567890", None, "460001234567890", None, None]
    assert out[2].msisdn == "8613800000001"
    assert [m.key for m in out] == [(a, "0x1"), (b, "0x1"), (a, "0x2"), (other, "0x3"), (a, "0x4")]


def test_ue_authentications_become_auth_observations_with_their_latency():
    from detector.records import RecordType, SignalingEvent
    from probes.signalling.observations import observations

    events = [
        SignalingEvent(ts=10.0, kind="auth", protocol="s1ap", message="Authentication request",
                       imsi="460001234567890", latency_ms=2350.4, cell_id="460-00-1-2"),
        SignalingEvent(ts=11.0, kind="auth", protocol="diameter", message="AIR",
                       imsi="460001234567890", latency_ms=12.0),           # the HSS, not the SIM
        SignalingEvent(ts=12.0, kind="auth", protocol="s1ap", message="Authentication request",
                       imsi="460001234567891"),                            # never answered
    ]
    batch = observations(events, "x.pcap").batch
    assert batch.record_type.tolist() == [RecordType.AUTH, RecordType.SIGNAL, RecordType.SIGNAL]
    assert batch.duration.tolist() == [2350, 0, 0]
