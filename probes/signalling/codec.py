"""Pure decoders for identifiers as TShark prints them in ``-T fields`` output.

TShark decodes most identities itself, but a few fields must be read from their raw bytes:
MAP AddressStrings (``gsm_map.*msisdn`` keep their nature/plan octet), Diameter ``MSISDN``
(raw TBCD), ``3GPP-User-Location-Info`` and ``User-Equipment-Info-Value`` (one capture packs
one digit per octet, which TShark's IMEISV decoding turns into garbage). Every function here
returns ``None`` for a value it cannot read: a probe must never stop on one odd field.
"""

from __future__ import annotations

import functools
import re

from detector.ids import InvalidIdentifier, mnc_length, normalise_msisdn, parse_imei, parse_imsi

# The decoders are pure, and a capture names the same subscribers, devices and cells again
# and again (every message of a session, every retransmission): each keeps its recent
# answers, so a repeated value costs one look-up instead of a parse and a Luhn check.
_memo = functools.lru_cache(maxsize=1 << 16, typed=True)

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_DIGITS = re.compile(r"\d+")


@_memo
def tbcd(hex_value: str) -> str | None:
    """TBCD digits (3GPP TS 29.002: low nibble first, ``f`` filler) of a hex byte string."""
    v = hex_value.strip().replace(":", "")
    if not _HEX.fullmatch(v):
        return None
    out = []
    for i in range(0, len(v), 2):
        for nibble in (v[i + 1], v[i]):
            if nibble in "fF":
                return "".join(out) if i + 2 >= len(v) else None  # filler only at the very end
            if not nibble.isdigit():
                return None
            out.append(nibble)
    return "".join(out)


@_memo
def address_string(hex_value: str) -> str | None:
    """Digits of a MAP AddressString / ISDN-AddressString: one nature/plan octet, then TBCD."""
    v = hex_value.strip().replace(":", "")
    if len(v) < 4 or not _HEX.fullmatch(v) or not int(v[:2], 16) & 0x80:
        return None  # the first octet always has its extension bit set
    return tbcd(v[2:])


def digits_or_none(value: str | None) -> str | None:
    v = (value or "").strip()
    return v if _DIGITS.fullmatch(v) else None


@_memo
def imsi(value: str | None) -> str | None:
    try:
        return parse_imsi(value).digits if value else None
    except InvalidIdentifier:
        return None


@_memo
def imei(value: str | None) -> str | None:
    """15-digit IMEI (check digit included) from an IMEI or IMEISV, or None.

    A 15-digit value takes its check digit from the first 14: TS 23.003 6.2.1 has the
    mobile send a spare digit (0) in place of the check digit, so wire values often fail
    the Luhn check while naming the same device.
    """
    v = (value or "").strip()
    try:
        return parse_imei(v[:14] if len(v) == 15 else v).imei if v else None
    except InvalidIdentifier:
        return None


@_memo
def e164(value: str | None) -> str | None:
    """An MSISDN already in international form on the wire (MAP, Diameter, GTP): digits only.

    Not :func:`detector.ids.normalise_msisdn`: a wire value such as ``0012000`` is the
    number itself, and stripping a ``00`` "international prefix" would corrupt it.
    """
    v = digits_or_none(value)
    return v if v and 3 <= len(v) <= 15 else None


@_memo
def dialled(value: str | None) -> str | None:
    """A number as a user or a SIP/ISUP party writes it: ``+``/``00`` prefixes dropped."""
    if not value:
        return None
    try:
        return normalise_msisdn(value.strip().rstrip("fF"))  # ISUP ends a number with ST (F)
    except InvalidIdentifier:
        return None


@_memo
def ue_equipment_value(hex_value: str | None) -> str | None:
    """Digits of a Diameter User-Equipment-Info-Value (IMEISV).

    Three encodings are met: ASCII digits, TBCD (the standard), and one digit per octet
    (magma's test tool). The last is recognised by every octet being 0..9.
    """
    v = (hex_value or "").strip()
    if not v or not _HEX.fullmatch(v):
        return None
    octets = bytes.fromhex(v)
    if all(0x30 <= b <= 0x39 for b in octets):
        return octets.decode("ascii")
    if len(octets) in (15, 16) and all(b <= 9 for b in octets):
        return "".join(str(b) for b in octets)
    return tbcd(v)


@_memo
def plmn(hex_value: str) -> tuple[str, str] | None:
    """(MCC, MNC) of a 3-octet PLMN identity (TS 24.008 10.5.1.13); MNC keeps its length."""
    v = hex_value.strip()
    if len(v) != 6 or not _HEX.fullmatch(v):
        return None
    b = bytes.fromhex(v)
    mcc = f"{b[0] & 0xF}{b[0] >> 4}{b[1] & 0xF}"
    mnc3 = b[1] >> 4
    mnc = f"{b[2] & 0xF}{b[2] >> 4}" + ("" if mnc3 == 0xF else str(mnc3))
    return (mcc, mnc) if (mcc + mnc).isdigit() else None


@_memo
def cell(mcc: str | int, mnc: str | int, area: int, ci: int) -> str:
    """Canonical ``MCC-MNC-LAC-CI`` / ``MCC-MNC-TAC-ECI`` name (decimal area and cell).

    An MNC given as an integer (TShark's ``e212.*.mnc`` fields) has lost its leading zero,
    so it is padded to the MCC's usual MNC length; an MNC decoded from the wire keeps its
    length. Unlike :func:`detector.ids.canonical_cell` a 3-digit MNC is accepted for any MCC
    (test networks use them).
    """
    mcc_s = str(mcc).zfill(3)
    mnc_s = mnc if isinstance(mnc, str) else str(mnc).zfill(mnc_length(int(mcc_s)))
    return f"{mcc_s}-{mnc_s}-{int(area)}-{int(ci)}"


@_memo
def int_or_none(value: str | None) -> int | None:
    """An integer field as TShark prints it: decimal or ``0x`` hex."""
    v = (value or "").strip()
    try:
        return int(v, 0) if v else None
    except ValueError:
        return None


@_memo
def user_location_info(hex_value: str | None) -> str | None:
    """Cell of a 3GPP-User-Location-Info (TS 29.061 16.4.7.2 / GTPv1 ULI), or None.

    Types: 0 CGI (PLMN, LAC, CI), 1 SAI (PLMN, LAC, SAC), 130 TAI+ECGI, 129 ECGI alone
    (then the area is unknown and 0 is written), 128 TAI alone has no cell.
    """
    v = (hex_value or "").strip()
    if not v or not _HEX.fullmatch(v):
        return None
    b = bytes.fromhex(v)
    kind, body = b[0], b[1:]
    if kind in (0, 1) and len(body) >= 7:
        p = plmn(body[:3].hex())
        return cell(*p, int.from_bytes(body[3:5], "big"), int.from_bytes(body[5:7], "big")) if p else None
    if kind == 130 and len(body) >= 12:  # TAI (PLMN + TAC) then ECGI (PLMN + 28-bit ECI)
        p = plmn(body[5:8].hex())
        tac = int.from_bytes(body[3:5], "big")
        eci = int.from_bytes(body[8:12], "big") & 0x0FFFFFFF
        return cell(*p, tac, eci) if p else None
    if kind == 129 and len(body) >= 7:
        p = plmn(body[:3].hex())
        return cell(*p, 0, int.from_bytes(body[3:7], "big") & 0x0FFFFFFF) if p else None
    return None


@_memo
def cgi_fixed_length(hex_value: str | None) -> str | None:
    """Cell of a MAP CellGlobalIdOrServiceAreaIdFixedLength (PLMN, LAC, CI: 7 octets)."""
    v = (hex_value or "").strip()
    if len(v) != 14 or not _HEX.fullmatch(v):
        return None
    p = plmn(v[:6])
    return cell(*p, int(v[6:10], 16), int(v[10:14], 16)) if p else None


@_memo
def pani_cell(value: str | None) -> str | None:
    """Cell of a SIP P-Access-Network-Info ``utran-cell-id-3gpp`` / ``cgi-3gpp`` value.

    TS 24.229 7.2A.4: MCC (3 digits), MNC (2 or 3), then the area (4 hex digits, LAC or
    TAC) and the cell (7 hex digits for UTRAN/E-UTRAN, 4 for GERAN). The total length says
    which MNC length was used.
    """
    v = (value or "").strip().strip('"')
    for cell_len in (7, 4):
        mnc_len = len(v) - 3 - 4 - cell_len
        if mnc_len in (2, 3) and v[: 3 + mnc_len].isdigit():
            try:
                area = int(v[3 + mnc_len: 7 + mnc_len], 16)
                ci = int(v[7 + mnc_len:], 16)
            except ValueError:
                continue
            return cell(v[:3], v[3:3 + mnc_len], area, ci)
    return None
