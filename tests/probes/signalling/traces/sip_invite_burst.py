"""Generate ``sip_invite_burst.pcap``: a GOIP-like burst of SIP INVITEs (no public trace has one).

One gateway (192.0.2.10, five SIMs, each its own From number) sends 12 INVITEs to one SIP
proxy (198.51.100.20) in 1.1 s, to ``tel:`` and ``sip:`` callees, international and
national. The proxy answers 100 Trying to each, then a final response (200, 486, 404, 480,
487). INVITE 3 goes unanswered for 500 ms and is retransmitted (the same call, not a new one) (a retransmission, not a new call);
the callee of call 1 hangs up (a BYE from the far end, answered 200 OK); ACKs go back for every
final response. Everything is fixed (timestamps, Call-IDs, tags, MACs, IP ids), so
re-running this script rewrites the same bytes:

    python tests/probes/signalling/traces/sip_invite_burst.py   # writes the .pcap beside it

``burst()`` is also used by ``benchmarks/signalling.py`` to build a large capture.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

GATEWAY, PROXY = "192.0.2.10", "198.51.100.20"
GW_MAC, PROXY_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:14"
BASE_TS = 1_700_000_000.0  # 2023-11-14T22:13:20Z
SIMS = ("+447700900101", "+447700900102", "+447700900103", "+447700900104", "+447700900105")
# (SIM index, callee URI, final status) per INVITE, in sending order.
CALLS = (
    (0, "tel:+441632960001", 200),
    (1, "sip:+441632960002@198.51.100.20", 486),
    (2, "tel:+441632960003", 200),
    (3, "sip:01632960004@198.51.100.20;user=phone", 404),
    (4, "tel:+441632960005", 480),
    (0, "tel:+441632960006", 487),
    (1, "sip:+441632960007@198.51.100.20", 200),
    (2, "tel:+441632960008", 486),
    (3, "tel:01632960009", 200),
    (4, "sip:+441632960010@198.51.100.20", 486),
    (0, "tel:+441632960011", 404),
    (1, "sip:+441632960012@198.51.100.20", 200),
)
REASONS = {100: "Trying", 200: "OK", 404: "Not Found", 480: "Temporarily Unavailable",
           486: "Busy Here", 487: "Request Terminated"}
INVITE_GAP = 0.1      # s between INVITEs
TRYING_AFTER = 0.004  # s from an INVITE to its 100 Trying
FINAL_AFTER = 0.35    # s from the INVITE to its final response, plus 0.01 per call index
RETRANSMITTED = 2     # index of the INVITE sent twice: its proxy is silent for T1
RETRANSMIT_AFTER = 0.5
BYE_CALL, BYE_AT = 0, 1.5


def _uri_user(uri: str) -> str:
    return uri.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]


def _sip(src: str, dst: str, text: str, ts: float, ip_id: int) -> Ether:
    mac_src, mac_dst = (GW_MAC, PROXY_MAC) if src == GATEWAY else (PROXY_MAC, GW_MAC)
    p = (Ether(src=mac_src, dst=mac_dst) / IP(src=src, dst=dst, id=ip_id & 0xFFFF, ttl=64)
         / UDP(sport=5060, dport=5060) / text.replace("\n", "\r\n").encode())
    p.time = ts
    return p


def _headers(method_line: str, via_host: str, branch: str, frm: str, to: str, call_id: str,
             cseq: str, extra: str = "", body: str = "") -> str:
    return (f"{method_line}\n"
            f"Via: SIP/2.0/UDP {via_host}:5060;branch={branch}\n"
            f"Max-Forwards: 70\n"
            f"From: {frm}\n"
            f"To: {to}\n"
            f"Call-ID: {call_id}\n"
            f"CSeq: {cseq}\n"
            f"{extra}"
            f"Content-Length: {len(body.encode()) + body.count(chr(10))}\n\n"
            f"{body}")


def _sdp(session: int) -> str:
    return (f"v=0\no=- {session} {session} IN IP4 {GATEWAY}\ns=-\nc=IN IP4 {GATEWAY}\n"
            f"t=0 0\nm=audio {10000 + 2 * (session % 1000)} RTP/AVP 8 0 18\na=rtpmap:8 PCMA/8000\n")


def burst(base_ts: float = BASE_TS, tag: str = "b0", ip_id: int = 1) -> list[Ether]:
    """The burst's packets in time order; ``tag`` makes Call-IDs unique across copies."""
    out: list[tuple[float, int, str, str, str]] = []  # (ts, seq, src, dst, text)

    def add(ts: float, src: str, dst: str, text: str) -> None:
        out.append((ts, len(out), src, dst, text))

    for i, (sim, callee, status) in enumerate(CALLS):
        t0 = base_ts + i * INVITE_GAP
        call_id = f"{tag}c{i:03d}@{GATEWAY}"
        frm = f"<sip:{SIMS[sim]}@{GATEWAY}>;tag=gw{tag}{i:03d}"
        to = f"<{callee}>"
        branch = f"z9hG4bK{tag}i{i:03d}"
        invite = _headers(f"INVITE {callee} SIP/2.0", GATEWAY, branch, frm, to, call_id,
                          "1 INVITE",
                          f"Contact: <sip:{SIMS[sim]}@{GATEWAY}:5060>\n"
                          "User-Agent: dbl GoIP\nContent-Type: application/sdp\n",
                          _sdp(i + 1))
        add(t0, GATEWAY, PROXY, invite)
        t_answer = t0
        if i == RETRANSMITTED:  # no answer within T1 (500 ms): the same INVITE again
            t_answer = t0 + RETRANSMIT_AFTER
            add(t_answer, GATEWAY, PROXY, invite)

        def response(code: int, to_tag: str = "") -> str:
            return _headers(f"SIP/2.0 {code} {REASONS[code]}", GATEWAY, branch, frm,
                            to + to_tag, call_id, "1 INVITE")

        add(t_answer + TRYING_AFTER, PROXY, GATEWAY, response(100))
        t_final = t_answer + FINAL_AFTER + 0.01 * i
        add(t_final, PROXY, GATEWAY, response(status, f";tag=px{tag}{i:03d}"))
        uri = f"sip:{_uri_user(callee)}@{PROXY}"
        add(t_final + 0.002, GATEWAY, PROXY,
            _headers(f"ACK {callee if status >= 300 else uri} SIP/2.0", GATEWAY,
                     branch if status >= 300 else f"z9hG4bK{tag}a{i:03d}", frm,
                     f"{to};tag=px{tag}{i:03d}", call_id, "1 ACK"))
        if i == BYE_CALL and status == 200:  # the callee hangs up: From/To are swapped
            t_bye = base_ts + BYE_AT
            bye_branch = f"z9hG4bK{tag}y{i:03d}"
            bye = _headers(f"BYE sip:{SIMS[sim]}@{GATEWAY}:5060 SIP/2.0", PROXY, bye_branch,
                           f"{to};tag=px{tag}{i:03d}", frm, call_id, "1 BYE")
            add(t_bye, PROXY, GATEWAY, bye)
            add(t_bye + 0.003, GATEWAY, PROXY,
                _headers("SIP/2.0 200 OK", PROXY, bye_branch, f"{to};tag=px{tag}{i:03d}", frm,
                         call_id, "1 BYE"))
    out.sort(key=lambda x: (x[0], x[1]))
    return [_sip(src, dst, text, round(ts, 6), ip_id + n)
            for n, (ts, _, src, dst, text) in enumerate(out)]


def main(argv: list[str]) -> None:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_suffix(".pcap")
    wrpcap(str(path), burst())
    print(path)


if __name__ == "__main__":
    main(sys.argv)
