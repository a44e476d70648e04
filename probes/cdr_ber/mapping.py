"""TS 32.298 records (as pycrate decodes them) onto goipwatch's canonical CDR.

One pure function, :func:`canonical`, per record: its value in, a :class:`BerCdr` out, or
:class:`Unusable` naming the field that stops it. The table in docs/feeds-ber.md is the
same mapping in words; keep the two together.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.ids import mnc_length
from detector.records import CdrRecord, Direction, RecordType, Result
from probes.signalling import codec

from . import octets

MAX_DURATION_S = 86_400     # as for CSV feeds (probes.csvparse)

# Q.850 / TS 24.008 cause values (Diagnostics gsm0408Cause or itu-tQ767Cause) that tell
# how a call that was never answered ended.
CAUSE_USER_BUSY = 17
CAUSES_NOT_ANSWERED = frozenset({16, 18, 19, 31})  # normal clearing, no user responding,
                                                   # no answer (alerted), normal unspecified
# causeForTerm values of a call that ended normally (TS 32.298 CauseForTerm)
TERM_NORMAL = frozenset({0, 1, 2, 5})  # normalRelease, partialRecord,
                                       # partialRecordCallReestablishment, cAMELInitCallRelease


class Unusable(ValueError):
    """A record that decodes but cannot become a canonical CDR; the message says why."""


@dataclass(frozen=True, slots=True)
class BerCdr(CdrRecord):
    """One canonical CDR read from a BER record (a :class:`CdrRecord`, whose
    :meth:`~CdrRecord.canonical` gives its CSV fields), with where it was found.

    Identifiers are digit strings ("" when the record has none): ``imsi`` always 15 digits,
    ``imei`` 15 digits with its check digit, ``cell_id`` ``MCC-MNC-LAC-CI``."""

    offset: int             # of the record's first octet (the frame number in a capture)
    record: str             # the 32.298 alternative, e.g. "moCallRecord"


def canonical(name: str, value: dict, offset: int) -> BerCdr:
    """The canonical CDR of one decoded record ``(name, value)``; raises :class:`Unusable`."""
    mapper = _MAPPERS.get(name)
    if mapper is None:
        raise Unusable(f"record type {name} is not mapped")
    return mapper(name, value, offset)


# ---- fields ------------------------------------------------------------------------------

def _imsi(v: dict) -> str:
    raw = v.get("servedIMSI")
    if raw is None:
        raise Unusable("no servedIMSI")
    digits = octets.tbcd(raw)
    if digits is None or len(digits) != 15:
        raise Unusable(f"servedIMSI {raw.hex()} is not a 15-digit IMSI")
    return digits


def _imei(v: dict) -> str:
    raw = v.get("servedIMEI")
    if raw is None:
        return ""
    imei = codec.imei(octets.tbcd(raw))
    if imei is None:
        raise Unusable(f"servedIMEI {raw.hex()} is not an IMEI or IMEISV")
    return imei


def _msisdn(v: dict) -> str:
    raw = v.get("servedMSISDN")
    if raw is None:
        return ""
    digits = octets.bcd_number(raw)
    if digits is None or not 3 <= len(digits) <= 15:
        raise Unusable(f"servedMSISDN {raw.hex()} is not an E.164 number of 3 to 15 digits")
    return digits


def _peer(raw: bytes | None, decode=octets.bcd_number) -> str:
    """A party number; one that is not 1-15 digits (a service code with * or #, an
    alphanumeric SMS address) leaves the peer empty: the record itself is sound."""
    digits = decode(raw) if raw is not None else None
    return digits if digits and len(digits) <= 15 else ""


def _time(v: dict, *fields: str) -> int:
    for f in fields:
        raw = v.get(f)
        if raw is not None:
            t = octets.timestamp(raw)
            if t is None:
                raise Unusable(f"{f} {raw.hex()} is not a TimeStamp (YYMMDDhhmmss±hhmm)")
            return t
    raise Unusable(f"no {' or '.join(fields)}")


def _cs_cell(v: dict, imsi: str) -> str:
    """LAC and CI of ``location`` under its mCC-MNC, or the IMSI's PLMN when it has none."""
    loc = v.get("location")
    if loc is None:
        return ""
    lac, ci = loc.get("locationAreaCode", b""), loc.get("cellId", b"")
    if len(lac) != 2 or len(ci) != 2:
        raise Unusable(f"location {lac.hex()}/{ci.hex()} is not a 2-octet LAC and CI")
    if "mCC-MNC" in loc:
        plmn = octets.plmn(loc["mCC-MNC"])
        if plmn is None:
            raise Unusable(f"location mCC-MNC {loc['mCC-MNC'].hex()} is not a PLMN identity")
    else:
        plmn = (imsi[:3], imsi[3:3 + mnc_length(int(imsi[:3]))])
    return octets.cell(plmn, int.from_bytes(lac, "big"), int.from_bytes(ci, "big"))


def _uli_cell(v: dict) -> str:
    raw = v.get("userLocationInformation")
    if raw is None:
        return ""
    if octets.uli_parts(raw) is None:
        raise Unusable(f"userLocationInformation {raw.hex()} is shorter than its flags announce")
    return octets.uli_cell(raw) or ""


def _duration(v: dict, field: str) -> int:
    d = v.get(field)
    if d is None:
        raise Unusable(f"no {field}")
    if not 0 <= d <= MAX_DURATION_S:
        raise Unusable(f"{field} {d} is not whole seconds from 0 to {MAX_DURATION_S}")
    return d


def _q850_cause(v: dict) -> int | None:
    diag = v.get("diagnostics")
    if diag and diag[0] in ("gsm0408Cause", "itu-tQ767Cause") and isinstance(diag[1], int):
        return diag[1]
    return None


def call_result(v: dict) -> Result:
    """Answered when the call has a duration or an answer time; busy on Q.850 cause 17;
    unanswered on a not-answered cause (16, 18, 19, 31), or without a cause when causeForTerm
    is a normal ending; failed otherwise (unsuccessfulCallAttempt, abnormalRelease, ...)."""
    if v.get("callDuration", 0) > 0 or v.get("answerTime") is not None:
        return Result.ANSWERED
    cause = _q850_cause(v)
    if cause == CAUSE_USER_BUSY:
        return Result.BUSY
    if cause in CAUSES_NOT_ANSWERED or (cause is None and v.get("causeForTerm") in TERM_NORMAL):
        return Result.UNANSWERED
    return Result.FAILED


# ---- records -----------------------------------------------------------------------------

def _call(name: str, v: dict, offset: int) -> BerCdr:
    mo = name == "moCallRecord"
    imsi = _imsi(v)
    return BerCdr(
        offset=offset, record=name, record_type=RecordType.VOICE,
        direction=Direction.MO if mo else Direction.MT,
        start_time=_time(v, "seizureTime", "answerTime", "releaseTime"),
        duration_s=_duration(v, "callDuration"), imsi=imsi, msisdn=_msisdn(v), imei=_imei(v),
        peer=_peer(v.get("calledNumber" if mo else "callingNumber")),
        cell_id=_cs_cell(v, imsi), result=call_result(v),
    )


def _sms(name: str, v: dict, offset: int) -> BerCdr:
    mo = name == "moSMSRecord"
    camel = v.get("cAMELSMSInformation") or {}
    if mo:
        peer = _peer(v.get("destinationNumber"), octets.tp_address) \
            or _peer(camel.get("destinationSubscriberNumber"), octets.tp_address)
    else:
        peer = _peer(camel.get("callingPartyNumber"))
    imsi = _imsi(v)
    return BerCdr(
        offset=offset, record=name, record_type=RecordType.SMS,
        direction=Direction.MO if mo else Direction.MT,
        start_time=_time(v, "originationTime" if mo else "deliveryTime"), duration_s=0,
        imsi=imsi, msisdn=_msisdn(v), imei=_imei(v), peer=peer, cell_id=_cs_cell(v, imsi),
        # smsResult is present only when the attempt failed (TS 32.298)
        result=Result.FAILED if v.get("smsResult") is not None else Result.DELIVERED,
    )


def _packet(name: str, v: dict, offset: int) -> BerCdr:
    duration = v.get("duration")
    if duration is None or duration < 0:
        raise Unusable(f"duration {duration} is not whole seconds")
    return BerCdr(
        offset=offset, record=name, record_type=RecordType.DATA, direction=Direction.MO,
        start_time=_time(v, "recordOpeningTime"),
        # a PDN connection stays open for days; the canonical duration is bounded by a day
        duration_s=min(duration, MAX_DURATION_S),
        imsi=_imsi(v), msisdn=_msisdn(v), imei=_imei(v), peer="", cell_id=_uli_cell(v),
        result=Result.OK,
    )


_MAPPERS = {
    "moCallRecord": _call, "mtCallRecord": _call,
    "moSMSRecord": _sms, "mtSMSRecord": _sms,
    "sGWRecord": _packet, "pGWRecord": _packet, "ePDGRecord": _packet,
}
