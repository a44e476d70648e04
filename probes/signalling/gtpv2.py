"""GTPv2-C (S11/S5/S8): Create/Modify/Delete Session with IMSI, MEI, MSISDN and ULI.

A response is paired with its request by the sequence number between the same two hosts.
Responses carry no identities, so the pairing mainly gives the latency.

Only the Create Session Request names the subscriber; the later messages of the session
(Modify Bearer with a new ULI: a location update; Delete Session: a detach) are addressed by
tunnel id. :func:`orient` keeps, per pair of hosts, the control-plane TEIDs both ends chose
for the session (the request's and the response's first F-TEID, the sender's own) and gives
a later message whose header TEID is one of them the session's IMSI, MSISDN and MEI.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


from probes.signalling import codec
from probes.signalling.correlate import ANSWER, REQUEST, Message
from probes.signalling.tshark import FrameInfo, Row

PROTOCOL = "gtpv2"
MARKER = "gtpv2.message_type"
FIELDS = (
    "gtpv2.message_type", "gtpv2.seq", "e212.imsi", "gtpv2.mei", "e164.msisdn",
    "e212.ecgi.mcc", "e212.ecgi.mnc", "gtpv2.ecgi_eci", "gtpv2.tai_tac",
    "e212.cgi.mcc", "e212.cgi.mnc", "gtpv2.uli_cgi_lac", "gtpv2.uli_cgi_ci",
    "gtpv2.teid", "gtpv2.f_teid_gre_key",
)
CREATE_REQUEST, CREATE_RESPONSE = 32, 33

# message type -> (name, kind, role)
MESSAGES = {
    32: ("Create Session Request", "session", REQUEST),
    33: ("Create Session Response", "session", ANSWER),
    34: ("Modify Bearer Request", "session", REQUEST),
    35: ("Modify Bearer Response", "session", ANSWER),
    36: ("Delete Session Request", "session", REQUEST),
    37: ("Delete Session Response", "session", ANSWER),
}


def uli_cell(row: Row) -> str | None:
    """ECGI (with the TAI's TAC when present) or else CGI of the message's ULI IE."""
    return _uli_cell(*row.firsts(_ULI))


_ULI = ("e212.ecgi.mcc", "e212.ecgi.mnc", "gtpv2.ecgi_eci", "gtpv2.tai_tac",
        "e212.cgi.mcc", "e212.cgi.mnc", "gtpv2.uli_cgi_lac", "gtpv2.uli_cgi_ci")


@functools.lru_cache(maxsize=1 << 16)
def _uli_cell(mcc: str | None, mnc: str | None, eci_s: str | None, tac_s: str | None,
              cgi_mcc: str | None, cgi_mnc: str | None, lac_s: str | None,
              ci_s: str | None) -> str | None:
    # Pure, and kept: the same cells come back in many sessions.
    eci = codec.int_or_none(eci_s)
    if eci is not None and mcc and mnc:
        tac = codec.int_or_none(tac_s) or 0
        return codec.cell(int(mcc), int(mnc), tac, eci)
    lac, ci = codec.int_or_none(lac_s), codec.int_or_none(ci_s)
    if lac is not None and ci is not None and cgi_mcc and cgi_mnc:
        return codec.cell(int(cgi_mcc), int(cgi_mnc), lac, ci)
    return None


def messages(row: Row, f: FrameInfo) -> list[Message]:
    types = row.all("gtpv2.message_type")
    if len(types) != 1:  # piggybacked messages: identities could not be told apart
        return []
    mtype = codec.int_or_none(types[0])
    known = MESSAGES.get(mtype or -1)
    if known is None:
        return []
    name, kind, role = known
    (_, seq, imsi, mei, msisdn, mcc, mnc, eci, tac, cgi_mcc, cgi_mnc, lac, ci, teid,
     own) = row.firsts(FIELDS)
    seq = seq or ""
    return [Message(
        ts=f.ts, frame=f.frame, protocol=PROTOCOL, message=name, kind=kind, role=role,
        key=(f.hosts, seq), correlation_id=seq, fold_repeats=True,
        # (type, header TEID, the sender's own control TEID), for orient()
        context=(mtype, _teid(teid), _teid(own)),
        imsi=codec.imsi(imsi), imei=codec.imei(mei), msisdn=codec.e164(msisdn),
        cell_id=_uli_cell(mcc, mnc, eci, tac, cgi_mcc, cgi_mnc, lac, ci),
    )]


def _teid(value: str | None) -> int | None:
    try:
        return int(value, 16) if value else None
    except ValueError:
        return None




def orienter() -> Callable[[Message], Message]:
    """:func:`orient` one message at a time, in frame order (as TShark writes them)."""
    sessions: dict[tuple, tuple] = {}      # (hosts, TEID) -> (IMSI, MSISDN, MEI)
    creating: dict[tuple, tuple] = {}      # (hosts, seq) -> (IMSI, MSISDN, MEI)

    def step(m: Message) -> Message:
        if m.context is None or m.protocol != PROTOCOL:
            return m
        mtype, header, own = m.context
        if mtype == CREATE_REQUEST and m.imsi:
            hosts, seq = m.key
            creating[(hosts, seq)] = ids = (m.imsi, m.msisdn, m.imei)
            if own is not None:
                sessions[(hosts, own)] = ids
        elif mtype == CREATE_RESPONSE and own is not None and m.key in creating:
            sessions[(m.key[0], own)] = creating.pop(m.key)
        elif header and (ids := sessions.get((m.key[0], header))):
            imsi, msisdn, imei = ids
            if (imsi and not m.imsi) or (msisdn and not m.msisdn) or (imei and not m.imei):
                m = m._replace(imsi=imsi if imsi and not m.imsi else m.imsi,
                               msisdn=msisdn if msisdn and not m.msisdn else m.msisdn,
                               imei=imei if imei and not m.imei else m.imei)
        return m

    return step


def orient(msgs: list[Message]) -> list[Message]:
    """Give the messages of a session the identities of its Create Session Request."""
    step = orienter()
    return [step(m) for m in sorted(msgs, key=lambda m: m.frame)]
