"""A capture file as normalised :class:`~detector.records.SignalingEvent` records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detector.records import SignalingEvent
from probes.signalling import diameter, gsm_map, gtpv2, isup, s1ap, sip
from probes.signalling.correlate import Message, correlate
from probes.signalling.tshark import FRAME_FIELDS, FrameInfo, Row, dissect

# Each mapper: PROTOCOL, MARKER (a field present in every frame it reads), FIELDS, messages().
MAPPERS = (gtpv2, diameter, sip, gsm_map, isup, s1ap)
# Some SS7-over-IP traces (the public ISUP one) frame M3UA in the pre-RFC draft-6 format;
# TShark's default (RFC 4666) stops there. The preference cannot be on for every file, as
# RFC 4666 traffic is then misread, so a capture is read again with it only when M3UA
# DATA messages came out without their RFC Protocol Data parameter.
M3UA_DRAFT6 = ("m3ua.version:Internet Draft version 6",)
M3UA_FIELDS = ("m3ua.message_class", "m3ua.message_type", "m3ua.parameter_tag")
M3UA_PROTOCOL_DATA = "528"


@dataclass(frozen=True, slots=True)
class Capture:
    path: Path
    events: list[SignalingEvent]
    error: str | None = None          # the file is damaged: events are those before the damage
    dropped_fields: tuple[str, ...] = ()


def fields(mappers=MAPPERS) -> list[str]:
    """All fields of all mappers, each once, frame fields first."""
    out = dict.fromkeys(FRAME_FIELDS + M3UA_FIELDS)
    for m in mappers:
        out.update(dict.fromkeys(m.FIELDS))
    return list(out)


def display_filter(mappers=MAPPERS) -> str:
    return " || ".join([m.MARKER for m in mappers] + ["m3ua"])


def needs_m3ua_draft6(row: Row) -> bool:
    """True when the row's M3UA DATA (class 1, type 1) lacks the RFC 4666 Protocol Data
    parameter."""
    return row.first("m3ua.message_class") == "1" and row.first("m3ua.message_type") == "1" \
        and M3UA_PROTOCOL_DATA not in row.all("m3ua.parameter_tag")


def _map(rows) -> tuple[list[Message], bool]:
    """Every frame's messages, as the rows arrive; and whether M3UA needs draft 6."""
    msgs: list[Message] = []
    draft6 = False
    for row in rows:
        draft6 = draft6 or needs_m3ua_draft6(row)
        f = FrameInfo.of(row)
        if f is None:
            continue
        for m in MAPPERS:
            if row.has(m.MARKER):
                msgs.extend(m.messages(row, f))
    return msgs, draft6


def read_capture(path: str | Path, tshark: str = "tshark") -> Capture:
    """Dissect ``path`` once and map every frame of a covered protocol to events.

    Raises :class:`~probes.signalling.tshark.CaptureError` (naming the file) when nothing
    can be read; a damaged file that yielded frames returns them with ``error`` set.
    """
    path = Path(path)
    d = dissect(path, fields(), display_filter(), tshark=tshark)
    msgs, draft6 = _map(d)
    if draft6:
        d = dissect(path, fields(), display_filter(), prefs=M3UA_DRAFT6, tshark=tshark)
        msgs, _ = _map(d)
    for m in MAPPERS:  # whole-capture passes (dialogue orientation, UE contexts)
        if hasattr(m, "orient"):
            msgs = m.orient(msgs)
    return Capture(path, correlate(msgs), d.error, d.dropped_fields)
