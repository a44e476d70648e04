"""ISUP (ITU): IAM with calling and called numbers, ANM, REL.

A call is the circuit (OPC/DPC pair, unordered, and CIC). The IAM is the request; ANM
answers it (the latency is the answer delay). REL is an event of its own that takes the
call's numbers from the IAM of the same circuit. The calling party is the served party
(``msisdn``), the called party the ``peer``. Numbers are as signalled (national numbers
stay national: the nature of address is not used to add a country code).
"""

from __future__ import annotations

from collections.abc import Callable


from probes.signalling import codec
from probes.signalling.correlate import ANSWER, REQUEST, SINGLE, Message
from probes.signalling.tshark import FrameInfo, Row

PROTOCOL = "isup"
MARKER = "isup.message_type"
FIELDS = ("isup.message_type", "isup.cic", "mtp3.opc", "mtp3.dpc", "m3ua.protocol_data_opc",
          "m3ua.protocol_data_dpc", "isup.calling", "isup.called")

# message type -> (name, kind, role)
MESSAGES = {1: ("IAM", "call_attempt", REQUEST), 9: ("ANM", "call_answer", ANSWER),
            12: ("REL", "call_release", SINGLE)}


def messages(row: Row, f: FrameInfo) -> list[Message]:
    types = row.all("isup.message_type")
    if len(types) != 1 or (known := MESSAGES.get(codec.int_or_none(types[0]) or -1)) is None:
        return []
    opc = row.first("mtp3.opc") or row.first("m3ua.protocol_data_opc")
    dpc = row.first("mtp3.dpc") or row.first("m3ua.protocol_data_dpc")
    cic = row.first("isup.cic")
    circuit = f"{min(opc or '', dpc or '')}-{max(opc or '', dpc or '')}-{cic}"
    name, kind, role = known
    return [Message(ts=f.ts, frame=f.frame, protocol=PROTOCOL, message=name, kind=kind, role=role,
                    key=(circuit,), correlation_id=circuit,
                    msisdn=codec.dialled(row.first("isup.calling")),
                    peer=codec.dialled(row.first("isup.called")))]


def orienter() -> Callable[[Message], Message]:
    """:func:`orient` one message at a time, in frame order (as TShark writes them)."""
    calls: dict[str, Message] = {}

    def step(m: Message) -> Message:
        if m.protocol == PROTOCOL:
            if m.message == "IAM":
                calls[m.correlation_id] = m
            elif m.message == "REL" and (iam := calls.get(m.correlation_id)):
                m = m._replace(msisdn=iam.msisdn, peer=iam.peer)
        return m

    return step


def orient(msgs: list[Message]) -> list[Message]:
    """A REL (either side may send it) takes the numbers of its circuit's last IAM."""
    step = orienter()
    return [step(m) for m in msgs]
