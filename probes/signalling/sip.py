"""SIP: REGISTER, INVITE, BYE, MESSAGE with numbers, cell and device.

- Numbers come from the URI *address*, not TShark's ``user`` field: in a ``tel:`` URI
  (``tel:+88270006``) TShark leaves the user part empty. The served party is From, the
  peer is To (R-URI when To has no number); a BYE sent by the far end is turned round
  using the dialogue's INVITE (:func:`orient`).
- IMSI: an IMS private/public identity derived from the IMSI (TS 23.003 13.3,
  ``<IMSI>@ims.mnc<MNC>.mcc<MCC>.3gppnetwork.org``) in the R-URI or Authorization username.
- Cell: ``P-Access-Network-Info`` ``utran-cell-id-3gpp`` (UTRAN/E-UTRAN) or ``cgi-3gpp``.
- IMEI: the ``+sip.instance`` Contact parameter ``<urn:gsma:imei:TAC-SNR-CD>`` (RFC 7254).

A final response (>= 200) answers the request with the same Call-ID and CSeq; provisional
responses are ignored, retransmitted requests are folded into the first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from probes.signalling import codec
from probes.signalling.correlate import ANSWER, REQUEST, Message
from probes.signalling.tshark import FrameInfo, Row

PROTOCOL = "sip"
MARKER = "sip.CSeq.method"
FIELDS = (
    "sip.Method", "sip.Status-Code", "sip.CSeq.method", "sip.CSeq.seq", "sip.Call-ID",
    "sip.r-uri", "sip.from.addr", "sip.to.addr", "sip.P-Access-Network-Info",
    "sip.contact.parameter", "sip.auth.username",
)
METHODS = {"REGISTER": "register", "INVITE": "call_attempt", "BYE": "call_release",
           "MESSAGE": "sms"}

# Pure, and a capture repeats its numbers, identities and cells: recent answers are kept.
_memo = functools.lru_cache(maxsize=1 << 16)

_IMS_IMSI = re.compile(r"(\d{15})@ims\.mnc(\d{3})\.mcc(\d{3})\.3gppnetwork\.org", re.I)
_PANI_CELL = re.compile(r"(?:utran-cell-id-3gpp|cgi-3gpp)=\"?([0-9A-Fa-f]+)")
_IMEI_URN = re.compile(r"urn:gsma:imei:([\d-]+)", re.I)


@_memo
def uri_number(uri: str | None) -> str | None:
    """The telephone number of a ``tel:`` or ``sip:`` URI, or None (names, anonymous)."""
    if not uri:
        return None
    u = uri.strip().strip("<>")
    scheme, _, rest = u.partition(":")
    if scheme.lower() == "tel":
        number = rest
    elif scheme.lower() in ("sip", "sips") and "@" in rest:
        number = rest.split("@", 1)[0]
    else:
        return None
    return codec.dialled(number.split(";", 1)[0])


@_memo
def ims_imsi(value: str | None) -> str | None:
    """The IMSI of an IMSI-derived IMS identity whose MCC/MNC agree with its domain."""
    m = _IMS_IMSI.search(value or "")
    if not m:
        return None
    digits, mnc, mcc = m.groups()  # the domain always writes a 3-digit MNC (zero-padded)
    if not digits.startswith(mcc) or mnc not in (digits[3:6], "0" + digits[3:5]):
        return None
    return codec.imsi(digits)


@_memo
def pani_cell(value: str | None) -> str | None:
    m = _PANI_CELL.search(value or "")
    return codec.pani_cell(m.group(1)) if m else None


@_memo
def instance_imei(params: tuple[str, ...]) -> str | None:
    for p in params:
        if m := _IMEI_URN.search(p):
            return codec.imei(m.group(1).replace("-", ""))
    return None


def messages(row: Row, f: FrameInfo) -> list[Message]:
    cseq_methods = row.all("sip.CSeq.method")
    if len(cseq_methods) != 1:
        return []
    cseq_method = cseq_methods[0]
    kind = METHODS.get(cseq_method)
    if kind is None:
        return []
    (method, status, _, cseq, call_id, ruri, from_addr, to_addr, pani, _,
     auth_user) = row.firsts(FIELDS)
    key = (call_id, cseq, cseq_method)
    if method is None:  # a response
        status = codec.int_or_none(status)
        if status is None or status < 200:
            return []
        return [Message(ts=f.ts, frame=f.frame, protocol=PROTOCOL,
                        message=f"{status} {cseq_method}", kind=kind, role=ANSWER, key=key,
                        correlation_id=call_id, fold_repeats=True)]
    if method != cseq_method:
        return []
    peer = uri_number(to_addr)
    if method != "REGISTER":
        peer = peer or uri_number(ruri)
    return [Message(
        ts=f.ts, frame=f.frame, protocol=PROTOCOL, message=method, kind=kind, role=REQUEST,
        key=key, correlation_id=call_id, fold_repeats=True,
        imsi=ims_imsi(ruri) or ims_imsi(auth_user),
        msisdn=uri_number(from_addr),
        peer=None if method == "REGISTER" else peer,  # REGISTER's To is the subscriber itself
        cell_id=pani_cell(pani),
        imei=instance_imei(row.all("sip.contact.parameter")),
    )]


def orienter() -> Callable[[Message], Message]:
    """:func:`orient` one message at a time, in frame order (as TShark writes them)."""
    callers: dict[str, tuple[str | None, str | None]] = {}

    def step(m: Message) -> Message:
        if m.protocol == PROTOCOL and m.role == REQUEST:
            if m.message == "INVITE":
                callers.setdefault(m.correlation_id, (m.msisdn, m.peer))
            elif (c := callers.get(m.correlation_id)) and m.msisdn and m.msisdn == c[1] != c[0]:
                m = m._replace(msisdn=m.peer, peer=m.msisdn)
        return m

    return step


def orient(msgs: list[Message]) -> list[Message]:
    """Turn round requests sent by the called side of a dialogue (a callee's BYE).

    The INVITE fixes who is the served party (its From); a later request of the same
    Call-ID whose From is the INVITE's To swaps msisdn and peer.
    """
    step = orienter()
    return [step(m) for m in msgs]
