"""A capture file as normalised :class:`~detector.records.SignalingEvent` records."""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from detector.records import SignalingEvent
from probes.signalling import diameter, gsm_map, gtpv2, isup, s1ap, sip
from probes.signalling.correlate import Message, Pairing
from probes.signalling.tshark import FRAME_FIELDS, FrameInfo, Row, dissect

# Each mapper: PROTOCOL, MARKER (a field present in every frame it reads), FIELDS, messages();
# optionally orienter() (a forward pass, run as the rows arrive) or orient() (whole capture).
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


class _Lane:
    """One protocol's messages on their way to events, while the rows still arrive: its
    orientation step (``orienter()``, a forward pass), then request/answer pairing. A
    protocol whose orientation needs the whole capture (``orient()`` alone: S1AP shares a
    UE context's identities backwards too) holds its messages until the end. Protocols
    never pair or orient across each other, so each lane is on its own."""

    __slots__ = ("mapper", "step", "held", "pairing")

    def __init__(self, mapper) -> None:
        self.mapper = mapper
        self.step = mapper.orienter() if hasattr(mapper, "orienter") else None
        self.held: list[Message] | None = \
            [] if self.step is None and hasattr(mapper, "orient") else None
        self.pairing = Pairing()

    def add(self, msgs: list[Message]) -> None:
        if self.held is not None:
            self.held.extend(msgs)
            return
        add, step = self.pairing.add, self.step
        for m in msgs:
            add(m if step is None else step(m))

    def events(self) -> list[SignalingEvent]:
        if self.held is not None:
            for m in sorted(self.mapper.orient(self.held), key=_FRAME):
                self.pairing.add(m)
            self.held = []
        return self.pairing.events


_FRAME = attrgetter("frame")


def _map(rows) -> tuple[list[SignalingEvent], bool]:
    """Every frame's events, mapped, oriented and paired as the rows arrive (TShark writes
    them in frame order); and whether M3UA needs draft 6."""
    lanes = [_Lane(m) for m in MAPPERS]
    draft6 = False
    markers: list[tuple[int, object, _Lane]] | None = None
    m3ua_class = -1
    for row in rows:
        if markers is None:  # column positions, once: the fields are those of this run
            index = row.index
            markers = [(index[m.MARKER], m.messages, lane)
                       for m, lane in zip(MAPPERS, lanes, strict=True) if m.MARKER in index]
            m3ua_class = index.get("m3ua.message_class", -1)
        cols = row.columns
        if not draft6 and m3ua_class >= 0 and cols[m3ua_class]:
            draft6 = needs_m3ua_draft6(row)
        f = FrameInfo.of(row)
        if f is None:
            continue
        for i, messages, lane in markers:
            if cols[i]:
                lane.add(messages(row, f))
    # Frame order across protocols; within a frame, MAPPERS order (a stable sort).
    events = [e for lane in lanes for e in lane.events()]
    events.sort(key=_FRAME)
    return events, draft6


def read_capture(path: str | Path, tshark: str = "tshark") -> Capture:
    """Dissect ``path`` once and map every frame of a covered protocol to events.

    Raises :class:`~probes.signalling.tshark.CaptureError` (naming the file) when nothing
    can be read; a damaged file that yielded frames returns them with ``error`` set.
    """
    path = Path(path)
    d = dissect(path, fields(), display_filter(), tshark=tshark)
    events, draft6 = _map(d)
    if draft6:
        d = dissect(path, fields(), display_filter(), prefs=M3UA_DRAFT6, tshark=tshark)
        events, _ = _map(d)
    return Capture(path, events, d.error, d.dropped_fields)
