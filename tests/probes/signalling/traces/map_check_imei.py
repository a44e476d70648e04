"""Generate ``map_check_imei.pcap``: GSM MAP CheckIMEI dialogues (no public trace has one).

SCTP (PPID 3) / M3UA DATA (RFC 4666) / SCCP UDT / TCAP / MAP, between an MSC/VLR
(point code 1001, GT 447700900001, SSN 8) and an EIR (point code 2002, GT 447700900002, SSN 9).
scapy has no SCCP, TCAP or MAP layer: those bytes are BER-encoded by hand below.

1. t=0.000  TCAP Begin, otid 0x0a000001, AC equipmentMngtContext-v3: invoke checkIMEI with
   CheckIMEI-Arg { imei 35209900176148-1, requestedEquipmentInfo {equipmentStatus} }
   t=0.042  TCAP End, dtid 0x0a000001: returnResultLast checkIMEI, equipmentStatus whiteListed
2. t=1.000  TCAP Begin, otid 0x0a000002, AC equipmentMngtContext-v2: invoke checkIMEI with a
   bare IMEI (v2) 49015420323751-0 sent with a spare 0 in place of its check digit (TS 23.003 6.2.1)
   t=1.015  TCAP End, dtid 0x0a000002: returnResultLast, equipmentStatus blackListed
   (TShark 4.0 names value 1 "prohibitedListed")
3. t=2.000  TCAP Begin, otid 0x0a000003, v3 again: IMEI 86691203457651-1 ... never answered.

Fixed timestamps and ids: re-running this script rewrites the same bytes.

    python tests/probes/signalling/traces/map_check_imei.py   # writes the .pcap beside it
"""

from __future__ import annotations

import sys
from pathlib import Path

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.utils import wrpcap

BASE_TS = 1_700_000_100.0
MSC_IP, EIR_IP = "10.0.1.1", "10.0.2.2"
MSC_MAC, EIR_MAC = "02:00:00:00:01:01", "02:00:00:00:02:02"
MSC_PC, EIR_PC = 1001, 2002
MSC_GT, EIR_GT = "447700900001", "447700900002"
SSN_MSC, SSN_EIR = 8, 9
OP_CHECK_IMEI = 43
DIALOGUE_AS_ID = bytes.fromhex("00118605010101")      # 0.0.17.773.1.1.1
EQUIPMENT_MNGT = "04000001000d"                     # 0.4.0.0.1.0.13 + version


def tlv(tag: int, value: bytes) -> bytes:
    """A BER TLV with a definite length (short or long form)."""
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + value


def tbcd(digits: str) -> bytes:
    """TBCD (low nibble first, F filler)."""
    d = digits + ("F" if len(digits) % 2 else "")
    return bytes(int(d[i + 1], 16) << 4 | int(d[i], 16) for i in range(0, len(d), 2))


def ac_name(version: int) -> bytes:
    return tlv(0x06, bytes.fromhex(EQUIPMENT_MNGT) + bytes([version]))


def aarq(version: int) -> bytes:
    """Dialogue portion of a Begin: AARQ-apdu with the application context name."""
    apdu = tlv(0x60, tlv(0x80, b"\x07\x80") + tlv(0xA1, ac_name(version)))
    return tlv(0x6B, tlv(0x28, tlv(0x06, DIALOGUE_AS_ID) + tlv(0xA0, apdu)))


def aare(version: int) -> bytes:
    """Dialogue portion of an End: AARE-apdu, accepted by the dialogue service user."""
    apdu = tlv(0x61, tlv(0x80, b"\x07\x80") + tlv(0xA1, ac_name(version))
               + tlv(0xA2, tlv(0x02, b"\x00"))
               + tlv(0xA3, tlv(0xA1, tlv(0x02, b"\x00"))))
    return tlv(0x6B, tlv(0x28, tlv(0x06, DIALOGUE_AS_ID) + tlv(0xA0, apdu)))


def begin(otid: int, version: int, invoke_id: int, argument: bytes) -> bytes:
    invoke = tlv(0xA1, tlv(0x02, bytes([invoke_id])) + tlv(0x02, bytes([OP_CHECK_IMEI])) + argument)
    return tlv(0x62, tlv(0x48, otid.to_bytes(4, "big")) + aarq(version) + tlv(0x6C, invoke))


def end(dtid: int, version: int, invoke_id: int, result: bytes) -> bytes:
    rrl = tlv(0xA2, tlv(0x02, bytes([invoke_id]))
              + tlv(0x30, tlv(0x02, bytes([OP_CHECK_IMEI])) + result))
    return tlv(0x64, tlv(0x49, dtid.to_bytes(4, "big")) + aare(version) + tlv(0x6C, rrl))


def check_imei_arg_v3(imei: str) -> bytes:
    # CheckIMEI-Arg ::= SEQUENCE { imei IMEI, requestedEquipmentInfo RequestedEquipmentInfo, ...}
    # RequestedEquipmentInfo ::= BIT STRING { equipmentStatus (0), bmuef (1) }: equipmentStatus
    return tlv(0x30, tlv(0x04, tbcd(imei)) + tlv(0x03, b"\x07\x80"))


def check_imei_arg_v2(imei: str) -> bytes:
    return tlv(0x04, tbcd(imei))  # v2: the argument is the IMEI itself


WHITE, BLACK = 0, 1  # EquipmentStatus ::= ENUMERATED {whiteListed, blackListed, greyListed}


def check_imei_res_v3(status: int) -> bytes:
    return tlv(0x30, tlv(0x0A, bytes([status])))  # CheckIMEI-Res ::= SEQUENCE {equipmentStatus}


def check_imei_res_v2(status: int) -> bytes:
    return tlv(0x0A, bytes([status]))


def sccp_party(ssn: int, gt: str) -> bytes:
    # Address indicator 0x12: route on GT, GT indicator 4, SSN present, no point code.
    # GT type 4: translation type 0, numbering plan E.164 + encoding BCD odd/even,
    # nature of address international.
    encoding = 1 if len(gt) % 2 else 2
    value = bytes([0x12, ssn, 0x00, 0x10 | encoding, 0x04]) + tbcd(gt)
    return bytes([len(value)]) + value


def sccp_udt(called: bytes, calling: bytes, data: bytes) -> bytes:
    # message type UDT (9), protocol class 0; three pointers, each counted from itself.
    p1 = 3
    p2 = p1 + len(called) - 1
    p3 = p2 + len(calling) - 1
    return bytes([0x09, 0x00, p1, p2, p3]) + called + calling + bytes([len(data)]) + data


def m3ua_data(opc: int, dpc: int, sls: int, sccp: bytes) -> bytes:
    # Protocol Data parameter (0x0210): OPC, DPC, SI 3 (SCCP), NI 2 (national), MP 0, SLS.
    pd = opc.to_bytes(4, "big") + dpc.to_bytes(4, "big") + bytes([3, 2, 0, sls]) + sccp
    param = (0x0210).to_bytes(2, "big") + (4 + len(pd)).to_bytes(2, "big") + pd
    param += b"\x00" * (-len(param) % 4)
    # routing context (0x0006) = 1, then the protocol data
    rc = (0x0006).to_bytes(2, "big") + (8).to_bytes(2, "big") + (1).to_bytes(4, "big")
    body = rc + param
    return bytes([1, 0, 1, 1]) + (8 + len(body)).to_bytes(4, "big") + body


def packet(ts: float, from_msc: bool, tcap: bytes, tsn: int, ip_id: int, sls: int) -> Ether:
    if from_msc:
        macs, ips, pcs = (MSC_MAC, EIR_MAC), (MSC_IP, EIR_IP), (MSC_PC, EIR_PC)
        called, calling = sccp_party(SSN_EIR, EIR_GT), sccp_party(SSN_MSC, MSC_GT)
    else:
        macs, ips, pcs = (EIR_MAC, MSC_MAC), (EIR_IP, MSC_IP), (EIR_PC, MSC_PC)
        called, calling = sccp_party(SSN_MSC, MSC_GT), sccp_party(SSN_EIR, EIR_GT)
    m3ua = m3ua_data(pcs[0], pcs[1], sls, sccp_udt(called, calling, tcap))
    p = (Ether(src=macs[0], dst=macs[1]) / IP(src=ips[0], dst=ips[1], id=ip_id, ttl=64)
         / SCTP(sport=2905, dport=2905, tag=0x5EED0001 if from_msc else 0x5EED0002)
         / SCTPChunkData(tsn=tsn, stream_id=1, stream_seq=tsn & 0xFFFF, proto_id=3,
                         beginning=1, ending=1, data=m3ua))
    p.time = ts
    return p


def packets() -> list[Ether]:
    t = BASE_TS
    return [
        packet(t + 0.000, True, begin(0x0A000001, 3, 1, check_imei_arg_v3("352099001761481")), 1, 1, 1),
        packet(t + 0.042, False, end(0x0A000001, 3, 1, check_imei_res_v3(WHITE)), 1, 2, 1),
        packet(t + 1.000, True, begin(0x0A000002, 2, 1, check_imei_arg_v2("490154203237510")), 2, 3, 2),
        packet(t + 1.015, False, end(0x0A000002, 2, 1, check_imei_res_v2(BLACK)), 2, 4, 2),
        packet(t + 2.000, True, begin(0x0A000003, 3, 1, check_imei_arg_v3("866912034576511")), 3, 5, 3),
    ]


def main(argv: list[str]) -> None:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_suffix(".pcap")
    wrpcap(str(path), packets())
    print(path)


if __name__ == "__main__":
    main(sys.argv)
