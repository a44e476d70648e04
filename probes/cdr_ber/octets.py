"""Pure decoders for the octet strings inside 3GPP charging records (not ASN.1 themselves).

TS 32.298 carries identities and times as OCTET STRINGs whose layout other specifications
define: TBCD digits (TS 29.002), BCD directory numbers (TS 24.008 10.5.4.7/9), SMS TP
addresses (TS 23.040 9.1.2.5), PLMN identities (TS 24.008 10.5.1.13), the BCD TimeStamp
(TS 32.298 5.x, ``YYMMDDhhmmssShhmm``) and the GTPv2 User Location Information (TS 29.274
8.22). Each function returns ``None`` for a value it cannot read; the caller decides
whether that makes the record unusable.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from probes.signalling import codec

_DIGIT_NIBBLES = frozenset(range(10))


def tbcd(octets: bytes) -> str | None:
    """TBCD digits, low nibble first, ``F`` filler only as the very last nibble."""
    return codec.tbcd(octets.hex()) if octets else None


def bcd_number(octets: bytes) -> str | None:
    """Digits of a BCDDirectoryNumber (TS 24.008 called/calling party BCD number) or a MAP
    AddressString: a type-of-number/numbering-plan octet, an optional presentation and
    screening octet (present when the first octet's extension bit is 0), then TBCD digits.

    A number with ``*``, ``#`` or ``a``-``c`` (service codes) is not a directory number:
    ``None``. An empty digit string is ``""``."""
    if not octets:
        return None
    skip = 1 if octets[0] & 0x80 else 2
    body = octets[skip:]
    if not body:
        return "" if len(octets) == skip else None
    return codec.tbcd(body.hex())


def tp_address(octets: bytes) -> str | None:
    """Digits of an SMS TP-Destination-Address (TS 23.040 9.1.2.5): the number of useful
    semi-octets, the type-of-address octet, then the semi-octets. An alphanumeric address
    (type of number 101) has no digits: ``None``."""
    if len(octets) < 2 or (octets[1] >> 4) & 0x7 == 0b101:
        return None
    n = octets[0]
    if (n + 1) // 2 != len(octets) - 2:
        return None
    digits = codec.tbcd(octets[2:].hex()) if n else ""
    return digits[:n] if digits is not None and len(digits) >= n else None


def plmn(octets: bytes) -> tuple[str, str] | None:
    """(MCC, MNC) of a 3-octet PLMN identity; a 2-digit MNC (filler ``F`` as its third
    digit) stays 2 digits. Any other nibble above 9 makes it no PLMN."""
    if len(octets) != 3:
        return None
    n = [octets[0] & 0xF, octets[0] >> 4, octets[1] & 0xF, octets[2] & 0xF, octets[2] >> 4,
         octets[1] >> 4]
    if n[5] == 0xF:
        n.pop()
    if any(d > 9 for d in n):
        return None
    digits = "".join(map(str, n))
    return digits[:3], digits[3:]


def _bcd2(octet: int) -> int | None:
    hi, lo = octet >> 4, octet & 0xF
    return hi * 10 + lo if hi in _DIGIT_NIBBLES and lo in _DIGIT_NIBBLES else None


def timestamp(octets: bytes) -> int | None:
    """Epoch seconds (UTC) of a TS 32.298 TimeStamp: ``YYMMDDhhmmss`` in BCD (high nibble
    first), the sign of the offset as ASCII ``+``/``-``, the offset ``hhmm`` in BCD. The
    time is local time at the recording node; the offset says how far that is from UTC.
    Years are 2000 + YY."""
    if len(octets) != 9 or octets[6] not in (0x2B, 0x2D):
        return None
    parts = [_bcd2(b) for b in octets[:6] + octets[7:]]
    if any(p is None for p in parts):
        return None
    yy, mo, dd, hh, mi, ss, off_h, off_m = parts
    if off_h > 14 or off_m > 59:
        return None
    offset = timedelta(hours=off_h, minutes=off_m) * (1 if octets[6] == 0x2B else -1)
    try:
        local = datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=timezone(offset))
    except ValueError:
        return None
    return int(local.timestamp())


def cell(mcc_mnc: tuple[str, str], area: int, ci: int) -> str:
    """Canonical ``MCC-MNC-LAC-CI`` (``MCC-MNC-TAC-ECI`` for E-UTRAN), as the signalling
    probe names cells, so that the two sources meet on the same cell."""
    return codec.cell(mcc_mnc[0], mcc_mnc[1], area, ci)


# GTPv2 ULI flags (TS 29.274 8.22) and the length of each part they announce, in order.
_ULI_PARTS = (("cgi", 0x01, 7), ("sai", 0x02, 7), ("rai", 0x04, 7), ("tai", 0x08, 5),
              ("ecgi", 0x10, 7), ("lai", 0x20, 5), ("macro_enb", 0x40, 6),
              ("ext_macro_enb", 0x80, 6))


def uli_parts(octets: bytes) -> dict[str, bytes] | None:
    """The parts of a GTPv2 User Location Information value (flags octet first), by name;
    ``None`` when the value is shorter than its flags announce."""
    if not octets:
        return None
    flags, pos, out = octets[0], 1, {}
    for name, bit, size in _ULI_PARTS:
        if flags & bit:
            if pos + size > len(octets):
                return None
            out[name] = octets[pos:pos + size]
            pos += size
    return out


def uli_cell(octets: bytes) -> str | None:
    """The cell a GTPv2 ULI names: the ECGI (its area the TAI's TAC when the TAI is there,
    else 0), else the CGI (LAC, CI), else the SAI (LAC, SAC). A TAI, RAI or LAI alone names
    an area, not a cell: ``None``."""
    parts = uli_parts(octets)
    if not parts:
        return None
    if "ecgi" in parts:
        e = parts["ecgi"]
        p = plmn(e[:3])
        tac = int.from_bytes(parts["tai"][3:5], "big") if "tai" in parts else 0
        return cell(p, tac, int.from_bytes(e[3:7], "big") & 0x0FFFFFFF) if p else None
    for name in ("cgi", "sai"):
        if name in parts:
            v = parts[name]
            p = plmn(v[:3])
            return cell(p, int.from_bytes(v[3:5], "big"), int.from_bytes(v[5:7], "big")) if p else None
    return None
