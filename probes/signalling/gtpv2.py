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

from dataclasses import replace

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
    eci = codec.int_or_none(row.first("gtpv2.ecgi_eci"))
    mcc, mnc = row.first("e212.ecgi.mcc"), row.first("e212.ecgi.mnc")
    if eci is not None and mcc and mnc:
        tac = codec.int_or_none(row.first("gtpv2.tai_tac")) or 0
        return codec.cell(int(mcc), int(mnc), tac, eci)
    lac, ci = codec.int_or_none(row.first("gtpv2.uli_cgi_lac")), codec.int_or_none(row.first("gtpv2.uli_cgi_ci"))
    mcc, mnc = row.first("e212.cgi.mcc"), row.first("e212.cgi.mnc")
    if lac is not None and ci is not None and mcc and mnc:
        return codec.cell(int(mcc), int(mnc), lac, ci)
    return None


def messages(row: Row, f: FrameInfo) -> list[Message]:
    types = row.all("gtpv2.message_type")
    if len(types) != 1:  # piggybacked messages: identities could not be told apart
        return []
    known = MESSAGES.get(codec.int_or_none(types[0]) or -1)
    if known is None:
        return []
    name, kind, role = known
    seq = row.first("gtpv2.seq") or ""
    return [Message(
        ts=f.ts, frame=f.frame, protocol=PROTOCOL, message=name, kind=kind, role=role,
        key=(f.hosts, seq), correlation_id=seq, fold_repeats=True,
        # (type, header TEID, the sender's own control TEID), for orient()
        context=(codec.int_or_none(types[0]), _teid(row.first("gtpv2.teid")),
                 _teid(row.first("gtpv2.f_teid_gre_key"))),
        imsi=codec.imsi(row.first("e212.imsi")), imei=codec.imei(row.first("gtpv2.mei")),
        msisdn=codec.e164(row.first("e164.msisdn")), cell_id=uli_cell(row),
    )]


def _teid(value: str | None) -> int | None:
    try:
        return int(value, 16) if value else None
    except ValueError:
        return None


_SESSION_IDS = ("imsi", "msisdn", "imei")


def orient(msgs: list[Message]) -> list[Message]:
    """Give the messages of a session the identities of its Create Session Request."""
    sessions: dict[tuple, dict[str, str]] = {}      # (hosts, TEID) -> identities
    creating: dict[tuple, dict[str, str]] = {}      # (hosts, seq) -> identities
    out = []
    for m in sorted(msgs, key=lambda m: m.frame):
        if m.protocol != PROTOCOL or m.context is None:
            out.append(m)
            continue
        hosts, seq = m.key
        mtype, header, own = m.context
        if mtype == CREATE_REQUEST and m.imsi:
            ids = {k: getattr(m, k) for k in _SESSION_IDS if getattr(m, k)}
            creating[(hosts, seq)] = ids
            if own is not None:
                sessions[(hosts, own)] = ids
        elif mtype == CREATE_RESPONSE and (hosts, seq) in creating and own is not None:
            sessions[(hosts, own)] = creating.pop((hosts, seq))
        elif header and (hosts, header) in sessions:
            missing = {k: v for k, v in sessions[(hosts, header)].items() if not getattr(m, k)}
            if missing:
                m = replace(m, **missing)
        out.append(m)
    return out
