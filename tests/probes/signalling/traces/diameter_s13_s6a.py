"""Generate ``diameter_s13_s6a.pcap``: S13 ME-Identity-Check and an S6a ULR with Terminal-Information.

No public trace holds either. Diameter messages and AVPs are built by hand below
(3GPP TS 29.272; RFC 6733), so every byte is visible here.

S13 over SCTP (PPID 46), MME 10.0.3.3 -> EIR 10.0.4.4:
  t=0.000 ECR  hbh 0x00000101 e2e 0x5a000101  User-Name 234150999999001,
               Terminal-Information { IMEI "35209900176148" (14 digits), Software-Version "07" }
  t=0.008 ECA  Result-Code 2001, Equipment-Status 0 (WHITELISTED)
  t=0.500 ECR  hbh 0x00000102 e2e 0x5a000102  no User-Name (optional in S13),
               Terminal-Information { IMEI "490154203237518" (15 digits), Software-Version "12" }
  t=0.512 ECA  Result-Code 2001, Equipment-Status 1 (BLACKLISTED)

S6a over TCP, MME 10.0.3.3:40001 -> HSS 10.0.5.5:3868, after a handshake and a CER/CEA
(peer housekeeping, no event):
  t=1.030 ULR  hbh 0x00000201 e2e 0x5a000201  User-Name 234150999999001, RAT-Type EUTRAN,
               ULR-Flags, Visited-PLMN-Id 234-15, Terminal-Information { IMEI "35209900176148",
               Software-Version "07" }
  t=1.055 ULA  Result-Code 2001, ULA-Flags, Subscription-Data { MSISDN 447700900123 (TBCD) }

Fixed timestamps, ids and TCP sequence numbers: re-running this script rewrites the same bytes.

    python tests/probes/signalling/traces/diameter_s13_s6a.py   # writes the .pcap beside it
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.utils import wrpcap

BASE_TS = 1_700_000_200.0
MME_IP, EIR_IP, HSS_IP = "10.0.3.3", "10.0.4.4", "10.0.5.5"
MAC = {MME_IP: "02:00:00:00:03:03", EIR_IP: "02:00:00:00:04:04", HSS_IP: "02:00:00:00:05:05"}
MME_HOST, MME_REALM = "mme1.epc.mnc015.mcc234.3gppnetwork.org", "epc.mnc015.mcc234.3gppnetwork.org"
EIR_HOST, HSS_HOST = "eir1." + MME_REALM, "hss1." + MME_REALM
IMSI = "234150999999001"
VENDOR_3GPP = 10415
APP_S6A, APP_S13 = 16777251, 16777252
CMD_CER, CMD_ULR, CMD_ECR = 257, 316, 324
FLAG_V, FLAG_M = 0x80, 0x40
REQUEST, PROXIABLE = 0x80, 0x40


def avp(code: int, data: bytes, vendor: int | None = None, mandatory: bool = True) -> bytes:
    flags = (FLAG_M if mandatory else 0) | (FLAG_V if vendor else 0)
    head = 12 if vendor else 8
    out = struct.pack("!I", code) + bytes([flags]) + (head + len(data)).to_bytes(3, "big")
    if vendor:
        out += struct.pack("!I", vendor)
    return out + data + b"\x00" * (-len(data) % 4)


def u32(code: int, value: int, vendor: int | None = None) -> bytes:
    return avp(code, struct.pack("!I", value), vendor)


def utf8(code: int, value: str, vendor: int | None = None) -> bytes:
    return avp(code, value.encode(), vendor)


def grouped(code: int, *members: bytes, vendor: int | None = None) -> bytes:
    return avp(code, b"".join(members), vendor)


def message(cmd: int, flags: int, app: int, hbh: int, e2e: int, *avps: bytes) -> bytes:
    body = b"".join(avps)
    return (bytes([1]) + (20 + len(body)).to_bytes(3, "big") + bytes([flags])
            + cmd.to_bytes(3, "big") + struct.pack("!III", app, hbh, e2e) + body)


def tbcd(digits: str) -> bytes:
    d = digits + ("F" if len(digits) % 2 else "")
    return bytes(int(d[i + 1], 16) << 4 | int(d[i], 16) for i in range(0, len(d), 2))


def session_id(n: int) -> bytes:
    return utf8(263, f"{MME_HOST};1700000200;{n}")


def origin(host: str = MME_HOST) -> bytes:
    return utf8(264, host) + utf8(296, MME_REALM)


def terminal_information(imei: str, sv: str) -> bytes:
    return grouped(1401, utf8(1402, imei, VENDOR_3GPP), utf8(1403, sv, VENDOR_3GPP),
                   vendor=VENDOR_3GPP)


def ecr(hbh: int, e2e: int, n: int, imei: str, sv: str, imsi: str | None) -> bytes:
    avps = [session_id(n), u32(277, 1), origin(), utf8(283, MME_REALM),
            terminal_information(imei, sv)]
    if imsi:
        avps.append(utf8(1, imsi))
    return message(CMD_ECR, REQUEST | PROXIABLE, APP_S13, hbh, e2e, *avps)


def eca(hbh: int, e2e: int, n: int, status: int) -> bytes:
    return message(CMD_ECR, PROXIABLE, APP_S13, hbh, e2e, session_id(n), u32(268, 2001),
                   u32(277, 1), origin(EIR_HOST), u32(1445, status, VENDOR_3GPP))


def cer(hbh: int, e2e: int) -> bytes:
    return message(CMD_CER, REQUEST, 0, hbh, e2e, origin(),
                   avp(257, b"\x00\x01" + bytes([10, 0, 3, 3])),       # Host-IP-Address
                   u32(266, VENDOR_3GPP), utf8(269, "goipwatch-tracegen"),
                   grouped(260, u32(266, VENDOR_3GPP), u32(258, APP_S6A)))  # Vendor-Specific-Application-Id


def cea(hbh: int, e2e: int) -> bytes:
    return message(CMD_CER, 0, 0, hbh, e2e, u32(268, 2001), origin(HSS_HOST),
                   avp(257, b"\x00\x01" + bytes([10, 0, 5, 5])), u32(266, VENDOR_3GPP),
                   utf8(269, "goipwatch-tracegen"),
                   grouped(260, u32(266, VENDOR_3GPP), u32(258, APP_S6A)))


def ulr(hbh: int, e2e: int, n: int) -> bytes:
    return message(CMD_ULR, REQUEST | PROXIABLE, APP_S6A, hbh, e2e, session_id(n), u32(277, 1),
                   origin(), utf8(283, MME_REALM), utf8(1, IMSI),
                   terminal_information("35209900176148", "07"),
                   u32(1032, 1004, VENDOR_3GPP),                        # RAT-Type EUTRAN
                   u32(1405, 0x22, VENDOR_3GPP),                        # ULR-Flags
                   avp(1407, bytes.fromhex("32f451"), VENDOR_3GPP))     # Visited-PLMN-Id 234-15


def ula(hbh: int, e2e: int, n: int) -> bytes:
    return message(CMD_ULR, PROXIABLE, APP_S6A, hbh, e2e, session_id(n), u32(268, 2001),
                   u32(277, 1), origin(HSS_HOST), u32(1406, 1, VENDOR_3GPP),
                   grouped(1400, avp(701, tbcd("447700900123"), VENDOR_3GPP),
                           u32(1424, 0, VENDOR_3GPP),                   # Subscriber-Status
                           vendor=VENDOR_3GPP))


def _ether(src: str, dst: str) -> Ether:
    return Ether(src=MAC[src], dst=MAC[dst])


def sctp(ts: float, src: str, dst: str, tsn: int, data: bytes, ip_id: int) -> Ether:
    p = (_ether(src, dst) / IP(src=src, dst=dst, id=ip_id, ttl=64)
         / SCTP(sport=3868, dport=3868, tag=0x5EED0003 if src == MME_IP else 0x5EED0004)
         / SCTPChunkData(tsn=tsn, stream_id=0, stream_seq=tsn & 0xFFFF, proto_id=46,
                         beginning=1, ending=1, data=data))
    p.time = ts
    return p


class TcpFlow:
    """One TCP connection with fixed initial sequence numbers."""

    def __init__(self, client: str, server: str, cport: int, sport: int) -> None:
        self.ends = {client: (server, cport, sport), server: (client, sport, cport)}
        self.seq = {client: 1000, server: 5000}
        self.ip_id = 100

    def packet(self, ts: float, src: str, flags: str, data: bytes = b"") -> Ether:
        dst, sport, dport = self.ends[src]
        ack = self.seq[dst] if "A" in flags else 0
        p = (_ether(src, dst) / IP(src=src, dst=dst, id=self.ip_id, ttl=64)
             / TCP(sport=sport, dport=dport, seq=self.seq[src], ack=ack, flags=flags,
                   window=65535, options=[]))
        if data:
            p = p / data
        self.seq[src] += len(data) + (1 if "S" in flags else 0)
        self.ip_id += 1
        p.time = ts
        return p


def packets() -> list[Ether]:
    t = BASE_TS
    out = [
        sctp(t + 0.000, MME_IP, EIR_IP, 1, ecr(0x101, 0x5A000101, 1, "35209900176148", "07", IMSI), 1),
        sctp(t + 0.008, EIR_IP, MME_IP, 1, eca(0x101, 0x5A000101, 1, 0), 2),
        sctp(t + 0.500, MME_IP, EIR_IP, 2, ecr(0x102, 0x5A000102, 2, "490154203237518", "12", None), 3),
        sctp(t + 0.512, EIR_IP, MME_IP, 2, eca(0x102, 0x5A000102, 2, 1), 4),
    ]
    tcp = TcpFlow(MME_IP, HSS_IP, 40001, 3868)
    out += [
        tcp.packet(t + 1.000, MME_IP, "S"),
        tcp.packet(t + 1.001, HSS_IP, "SA"),
        tcp.packet(t + 1.002, MME_IP, "A"),
        tcp.packet(t + 1.010, MME_IP, "PA", cer(0x1, 0x5A000001)),
        tcp.packet(t + 1.020, HSS_IP, "PA", cea(0x1, 0x5A000001)),
        tcp.packet(t + 1.030, MME_IP, "PA", ulr(0x201, 0x5A000201, 3)),
        tcp.packet(t + 1.055, HSS_IP, "PA", ula(0x201, 0x5A000201, 3)),
        tcp.packet(t + 1.095, MME_IP, "A"),
    ]
    return out


def main(argv: list[str]) -> None:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_suffix(".pcap")
    wrpcap(str(path), packets())
    print(path)


if __name__ == "__main__":
    main(sys.argv)
