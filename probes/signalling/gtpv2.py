"""GTPv2-C (S11/S5/S8): Create/Modify/Delete Session with IMSI, MEI, MSISDN and ULI.

A response is paired with its request by the sequence number between the same two hosts.
Responses carry no identities, so the pairing mainly gives the latency.
"""

from __future__ import annotations

from probes.signalling import codec
from probes.signalling.correlate import ANSWER, REQUEST, Message
from probes.signalling.tshark import FrameInfo, Row

PROTOCOL = "gtpv2"
MARKER = "gtpv2.message_type"
FIELDS = (
    "gtpv2.message_type", "gtpv2.seq", "e212.imsi", "gtpv2.mei", "e164.msisdn",
    "e212.ecgi.mcc", "e212.ecgi.mnc", "gtpv2.ecgi_eci", "gtpv2.tai_tac",
    "e212.cgi.mcc", "e212.cgi.mnc", "gtpv2.uli_cgi_lac", "gtpv2.uli_cgi_ci",
)

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
        imsi=codec.imsi(row.first("e212.imsi")), imei=codec.imei(row.first("gtpv2.mei")),
        msisdn=codec.e164(row.first("e164.msisdn")), cell_id=uli_cell(row),
    )]
