"""Diameter: S6a ULR/AIR/PUR, S13 ECR, Gx/Gy CCR with the subscriber's identities.

Identities per AVP (3GPP TS 29.272, 29.212, RFC 4006):

- ``User-Name``: the IMSI on S6a/S13 (and on Gx where present);
- ``Subscription-Id``: type 1 END_USER_IMSI, type 0 END_USER_E164 (MSISDN);
- ``MSISDN`` (ULA Subscription-Data): raw TBCD, decoded here;
- ``Terminal-Information``/``IMEI`` (ULR, ECR) and ``User-Equipment-Info`` type 0 (IMEISV,
  CCR), the latter decoded from its raw value (see :func:`codec.ue_equipment_value`);
- ``3GPP-User-Location-Info`` (CCR): CGI, SAI or TAI+ECGI.

Answers are paired with requests by hop-by-hop and end-to-end identifiers together.
Watchdog, capabilities-exchange and disconnect messages are peer housekeeping: skipped.
"""

from __future__ import annotations

from probes.signalling import codec
from probes.signalling.correlate import ANSWER, REQUEST, Message
from probes.signalling.tshark import FrameInfo, Row

PROTOCOL = "diameter"
MARKER = "diameter.cmd.code"
FIELDS = (
    "diameter.cmd.code", "diameter.flags.request", "diameter.hopbyhopid",
    "diameter.endtoendid", "diameter.User-Name", "diameter.Subscription-Id-Type",
    "diameter.Subscription-Id-Data", "diameter.MSISDN", "diameter.3GPP-User-Location-Info",
    "diameter.User-Equipment-Info-Type", "diameter.User-Equipment-Info-Value",
    "diameter.IMEI", "diameter.Software-Version",
)

# command code -> (request name, answer name, kind)
COMMANDS = {
    316: ("ULR", "ULA", "location_update"),
    318: ("AIR", "AIA", "auth"),
    321: ("PUR", "PUA", "purge"),
    324: ("ECR", "ECA", "imei_check"),
    272: ("CCR", "CCA", "session"),
}
END_USER_E164, END_USER_IMSI = "0", "1"
UE_INFO_IMEISV = "0"


def _subscription_ids(row: Row) -> tuple[str | None, str | None]:
    """(IMSI, MSISDN) from the Subscription-Id AVPs; types and data come in pairs."""
    imsi = msisdn = None
    for kind, data in zip(row.all("diameter.Subscription-Id-Type"),
                          row.all("diameter.Subscription-Id-Data"), strict=False):
        if kind == END_USER_IMSI and imsi is None:
            imsi = codec.imsi(data)
        elif kind == END_USER_E164 and msisdn is None:
            msisdn = codec.e164(data.lstrip("+"))
    return imsi, msisdn


def _imei(row: Row) -> str | None:
    for kind, value in zip(row.all("diameter.User-Equipment-Info-Type"),
                           row.all("diameter.User-Equipment-Info-Value"), strict=False):
        if kind == UE_INFO_IMEISV and (found := codec.imei(codec.ue_equipment_value(value))):
            return found
    return codec.imei(row.first("diameter.IMEI"))  # Terminal-Information (ULR, ECR)


def messages(row: Row, f: FrameInfo) -> list[Message]:
    codes = row.all("diameter.cmd.code")
    flags = row.all("diameter.flags.request")
    hbh, e2e = row.all("diameter.hopbyhopid"), row.all("diameter.endtoendid")
    # Several messages in one segment: headers line up, AVPs cannot be told apart.
    single = len(codes) == 1
    out = []
    for i, code in enumerate(codes):
        known = COMMANDS.get(codec.int_or_none(code) or -1)
        if known is None or i >= min(len(flags), len(hbh), len(e2e)):
            continue
        request = flags[i] in ("1", "True")
        ids: dict = {}
        if single:
            imsi, msisdn = _subscription_ids(row)
            tbcd_msisdn = row.first("diameter.MSISDN")
            ids = dict(
                imsi=codec.imsi(row.first("diameter.User-Name")) or imsi,
                msisdn=msisdn or (codec.e164(codec.tbcd(tbcd_msisdn)) if tbcd_msisdn else None),
                imei=_imei(row),
                cell_id=codec.user_location_info(row.first("diameter.3GPP-User-Location-Info")),
            )
        out.append(Message(
            ts=f.ts, frame=f.frame, protocol=PROTOCOL, message=known[0] if request else known[1],
            kind=known[2], role=REQUEST if request else ANSWER, key=(hbh[i], e2e[i]),
            correlation_id=f"{hbh[i]}/{e2e[i]}", fold_repeats=True, **ids))
    return out
