"""GSM MAP over TCAP: location updates, authentication, IMEI checks, SMS and routing queries.

The subscriber MSISDN is read from the operation's own parameter (``gsm_map.sm.msisdn`` of
SRI-for-SM, ``gsm_map.ch.msisdn`` of SRI, ``gsm_map.msisdn`` of ATI, ``gsm_old.msisdn`` of
an MO-ForwardSM's sm-RP-OA), never from ``e164.msisdn``: TShark fills that for every
ISDN address in the message, VLR, MSC, HLR and SMSC numbers included. Those fields are
raw AddressStrings and are decoded here. IMSIs come from ``e212.imsi`` (the IMSI
parameter, or sm-RP-DA of an MT-ForwardSM).

An invoke in a TCAP Begin (or a Continue from the initiator) is a request keyed by the
sender's transaction id; a ReturnResult/ReturnError comes back with that id as the
destination id and is merged into it (identity from the result, e.g. the IMSI of an
SRI-for-SM, and the latency). Frames TShark marks malformed are skipped: their BER
decoding yields phantom operations (a malformed answer still closes its request, without
its parameters).
"""

from __future__ import annotations

from probes.signalling import codec
from probes.signalling.correlate import ANSWER, REQUEST, Message
from probes.signalling.tshark import FrameInfo, Row

PROTOCOL = "gsm_map"
MARKER = "gsm_map.old.Component"
FIELDS = (
    "gsm_map.old.Component", "tcap.otid", "tcap.dtid",
    "gsm_old.localValue", "_ws.malformed", "gsm_map.sm.msisdn", "gsm_map.ch.msisdn",
    "gsm_map.msisdn", "gsm_old.msisdn", "gsm_map.ms.imei", "e212.imsi",
    "gsm_map.cellGlobalIdOrServiceAreaIdFixedLength", "gsm_sms.tp-mti", "gsm_sms.tp-oa",
    "gsm_sms.tp-da",
)

# operation code -> (name, kind)
OPERATIONS = {
    2: ("updateLocation", "location_update"),
    23: ("updateGprsLocation", "location_update"),
    56: ("sendAuthenticationInfo", "auth"),
    43: ("checkIMEI", "imei_check"),
    46: ("mo-forwardSM", "sms"),
    44: ("mt-forwardSM", "sms"),
    45: ("sendRoutingInfoForSM", "other"),
    22: ("sendRoutingInfo", "other"),
    67: ("purgeMS", "purge"),
    55: ("sendIdentification", "identity"),
    71: ("anyTimeInterrogation", "other"),
}
# gsm_map.old.Component: invoke (1), returnResultLast (2), returnError (3), reject (4),
# returnResult (7, not last).
INVOKE, ERROR, RESULTS = "1", "3", ("2", "7")
SMS_DELIVER, SMS_SUBMIT = "0", "1"


def _msisdn(row: Row) -> str | None:
    for name in ("gsm_map.sm.msisdn", "gsm_map.ch.msisdn", "gsm_map.msisdn", "gsm_old.msisdn"):
        if (v := row.first(name)) and (digits := codec.e164(codec.address_string(v))):
            return digits
    return None


def _sms(row: Row, op: int) -> tuple[str, str | None]:
    """Name and peer of a forwardSM: MAP v1/v2 used opcode 46 for MT too, so TP-MTI decides."""
    mti = row.first("gsm_sms.tp-mti")
    if op == 44 or mti == SMS_DELIVER:
        return "mt-forwardSM", codec.dialled(row.first("gsm_sms.tp-oa"))
    return "mo-forwardSM", codec.dialled(row.first("gsm_sms.tp-da"))


def messages(row: Row, f: FrameInfo) -> list[Message]:
    malformed = row.has("_ws.malformed")
    components = row.all("gsm_map.old.Component")
    values = row.all("gsm_old.localValue")
    if not components:
        return []
    # One TCAP message -> one event, from its first component (the captures carry one).
    # gsm_old.localValue is the operation of an invoke/result but the *error code* of a
    # ReturnError, and a result without parameters has none.
    component = components[0]
    if component == INVOKE:
        op, role, tid = codec.int_or_none(values[0]) if values else None, REQUEST, row.first("tcap.otid")
        if op not in OPERATIONS or malformed:
            return []
    else:
        op = codec.int_or_none(values[0]) if component in RESULTS and values else None
        role, tid = ANSWER, row.first("tcap.dtid")
    if not tid:
        return []
    name, kind = OPERATIONS.get(op, ("returnError" if component == ERROR else "returnResult", "other"))
    peer = None
    if op in (44, 46):
        name, peer = _sms(row, op)
    if malformed:  # an answer still gives the latency; its parameters are not trusted
        return [Message(ts=f.ts, frame=f.frame, protocol=PROTOCOL, message=name, kind=kind,
                        role=role, key=(tid,), correlation_id=tid, standalone=False)]
    return [Message(
        ts=f.ts, frame=f.frame, protocol=PROTOCOL, message=name, kind=kind, role=role,
        key=(tid,), correlation_id=tid, standalone=op in OPERATIONS,
        imsi=codec.imsi(row.first("e212.imsi")), msisdn=_msisdn(row),
        imei=codec.imei(codec.tbcd(row.first("gsm_map.ms.imei") or "")), peer=peer,
        cell_id=codec.cgi_fixed_length(row.first("gsm_map.cellGlobalIdOrServiceAreaIdFixedLength")),
    )]
