"""Sample TS 32.298 records and files, built from the standard's types, for tests and demos.

Each builder returns a record value in pycrate's form with every field the reader maps set
(plus the fields the standard makes mandatory); :func:`probes.cdr_ber.schema.encode` turns
it into BER. The octet encoders are the inverses of :mod:`probes.cdr_ber.octets`.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone

# ---- octet strings ---------------------------------------------------------------------------

def tbcd(digits: str) -> bytes:
    """TBCD, low nibble first, an odd count padded with an ``F`` filler."""
    nibbles = [int(d) for d in digits] + ([0xF] if len(digits) % 2 else [])
    return bytes(lo | hi << 4 for lo, hi in zip(nibbles[::2], nibbles[1::2]))


def address(digits: str, nature: int = 0x91) -> bytes:
    """AddressString / BCDDirectoryNumber: international ISDN number by default."""
    return bytes([nature]) + tbcd(digits)


def tp_address(digits: str, type_of_address: int = 0x91) -> bytes:
    """SMS TP-Destination-Address: semi-octet count, type of address, TBCD digits."""
    return bytes([len(digits), type_of_address]) + tbcd(digits)


def timestamp(epoch: int, offset_minutes: int = 0) -> bytes:
    """TS 32.298 TimeStamp of ``epoch`` as local time at ``offset_minutes`` from UTC."""
    local = datetime.fromtimestamp(epoch, timezone(timedelta(minutes=offset_minutes)))
    digits = local.strftime("%y%m%d%H%M%S")
    sign = b"+" if offset_minutes >= 0 else b"-"
    off = f"{abs(offset_minutes) // 60:02d}{abs(offset_minutes) % 60:02d}"
    return bytes.fromhex(digits) + sign + bytes.fromhex(off)


def plmn(mcc: str, mnc: str) -> bytes:
    """3-octet PLMN identity (TS 24.008 10.5.1.13)."""
    mnc3 = int(mnc[2]) if len(mnc) == 3 else 0xF
    return bytes([int(mcc[1]) << 4 | int(mcc[0]), mnc3 << 4 | int(mcc[2]),
                  int(mnc[1]) << 4 | int(mnc[0])])


def uli(mcc: str, mnc: str, *, tac: int | None = None, eci: int | None = None,
        cgi: tuple[int, int] | None = None, sai: tuple[int, int] | None = None) -> bytes:
    """GTPv2 User Location Information value (TS 29.274 8.22): flags, then the parts."""
    p = plmn(mcc, mnc)
    flags, body = 0, b""
    if cgi is not None:
        flags |= 0x01
        body += p + struct.pack(">HH", *cgi)
    if sai is not None:
        flags |= 0x02
        body += p + struct.pack(">HH", *sai)
    if tac is not None:
        flags |= 0x08
        body += p + struct.pack(">H", tac)
    if eci is not None:
        flags |= 0x10
        body += p + struct.pack(">I", eci)
    return bytes([flags]) + body


# ---- records ---------------------------------------------------------------------------------

IMSI = "460001234567890"
IMEI14 = "35209900176148"          # TAC + serial; the check digit is 1
IMEI = IMEI14 + "1"
MSISDN = "8613800138000"
PEER = "8613912345678"
START = 1_790_000_000              # 2026-09-21T14:13:20Z
_NODE = ("iPBinaryAddress", ("iPBinV4Address", bytes([10, 0, 0, 1])))


def _cs_common() -> dict:
    return {
        "servedIMSI": tbcd(IMSI), "servedIMEI": tbcd(IMEI14 + "0"),  # spare digit, as sent
        "recordingEntity": address("8613800100"),
        "location": {"locationAreaCode": (0x1A2B).to_bytes(2, "big"),
                     "cellId": (0x3C4D).to_bytes(2, "big"), "mCC-MNC": plmn("460", "00")},
    }


def mo_call(start: int = START, duration: int = 75, **fields) -> tuple[str, dict]:
    v = {"recordType": 0, **_cs_common(), "servedMSISDN": address(MSISDN),
         "calledNumber": address(PEER), "seizureTime": timestamp(start, 480),
         "answerTime": timestamp(start + 6, 480), "releaseTime": timestamp(start + 6 + duration, 480),
         "callDuration": duration, "causeForTerm": 0, "callReference": b"\x01\x02\x03"}
    return "moCallRecord", {**v, **fields}


def mt_call(start: int = START, duration: int = 42, **fields) -> tuple[str, dict]:
    v = {"recordType": 1, **_cs_common(), "servedMSISDN": address(MSISDN),
         "callingNumber": address(PEER), "seizureTime": timestamp(start, 480),
         "answerTime": timestamp(start + 4, 480), "callDuration": duration, "causeForTerm": 0,
         "callReference": b"\x04\x05"}
    return "mtCallRecord", {**v, **fields}


def mo_sms(start: int = START, **fields) -> tuple[str, dict]:
    v = {"recordType": 6, **_cs_common(), "servedMSISDN": address(MSISDN),
         "msClassmark": b"\x33\x59\xa6", "serviceCentre": address("8613800100500"),
         "messageReference": b"\x07", "originationTime": timestamp(start, 480),
         "destinationNumber": tp_address(PEER)}
    return "moSMSRecord", {**v, **fields}


def mt_sms(start: int = START, **fields) -> tuple[str, dict]:
    v = {"recordType": 7, **_cs_common(), "servedMSISDN": address(MSISDN),
         "msClassmark": b"\x33\x59\xa6", "serviceCentre": address("8613800100500"),
         "deliveryTime": timestamp(start, 480),
         "cAMELSMSInformation": {"callingPartyNumber": address(PEER)}}
    return "mtSMSRecord", {**v, **fields}


def _packet(record_type: int, node: str, start: int, duration: int) -> dict:
    return {"recordType": record_type, "servedIMSI": tbcd(IMSI), node: _NODE,
            "chargingID": 4711, "recordOpeningTime": timestamp(start, 480),
            "duration": duration, "causeForRecClosing": 0, "chargingCharacteristics": b"\x08\x00",
            "servedMSISDN": address(MSISDN), "servedIMEI": tbcd(IMEI14 + "07"),  # IMEISV
            "userLocationInformation": uli("460", "00", tac=0x2B3C, eci=0x1A2B3C4)}


def sgw(start: int = START, duration: int = 600, **fields) -> tuple[str, dict]:
    v = {**_packet(84, "s-GWAddress", start, duration), "servingNodeAddress": [_NODE],
         "servingNodeType": ["mME"]}
    return "sGWRecord", {**v, **fields}


def pgw(start: int = START, duration: int = 600, **fields) -> tuple[str, dict]:
    v = {**_packet(85, "p-GWAddress", start, duration), "servingNodeAddress": [_NODE],
         "servingNodeType": ["gTPSGW"]}
    return "pGWRecord", {**v, **fields}


def epdg(start: int = START, duration: int = 600, **fields) -> tuple[str, dict]:
    v = _packet(96, "ePDGAddressUsed", start, duration)
    del v["userLocationInformation"]   # an ePDG record has no 3GPP cell
    return "ePDGRecord", {**v, **fields}


# ---- files -----------------------------------------------------------------------------------

def cdr_file(records: list[bytes], release: int = 15, ts_number: int = 7) -> bytes:
    """A TS 32.297 CDR file: the file header, then each record behind its CDR header
    (release ``release`` with its extension octet, BER, TS number 7 = TS 32.251)."""
    rel_id, ext = (7, bytes([release - 10])) if release >= 10 else (release - 3, b"")
    cdr_header = bytes([rel_id << 5 | 0, 1 << 5 | ts_number]) + ext
    body = b"".join(struct.pack(">H", len(r)) + cdr_header + r for r in records)
    fixed = struct.pack(">BBIIIIB20sB", rel_id << 5, rel_id << 5, 0, 0, len(records), 1, 0,
                        b"\xff" * 4 + bytes(16), 0)
    tail = struct.pack(">HH", 0, 0) + (ext * 2 if ext else b"")
    header_length = 8 + len(fixed) + len(tail)
    return struct.pack(">II", header_length + len(body), header_length) + fixed + tail + body
