"""Request/answer pairing shared by every protocol.

Protocol modules turn frames into :class:`Message` records; :func:`correlate` merges each
answer into the oldest open request with the same key (FIFO, because the same dialogue can
be captured on several links), so that an identity present only in the answer (the IMSI in
an SRI-for-SM result, the MSISDN in a ULA) reaches the event, and the request-to-answer
latency is known. One event is emitted per request; an answer whose request was not
captured becomes an event of its own.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, replace

from detector.records import SignalingEvent

REQUEST, ANSWER, SINGLE = "request", "answer", "single"
_IDS = ("imsi", "msisdn", "imei", "cell_id", "peer")


@dataclass(frozen=True, slots=True)
class Message:
    ts: float
    frame: int
    protocol: str
    message: str
    kind: str
    role: str = SINGLE                   # request | answer | single
    key: tuple | None = None             # what pairs an answer with its request
    imsi: str | None = None
    msisdn: str | None = None
    imei: str | None = None
    cell_id: str | None = None
    peer: str | None = None
    correlation_id: str | None = None
    # A request repeated while the first is still open is a retransmission (SIP, Diameter,
    # GTP), not a new attempt. MAP leaves this off: one dialogue relayed over several
    # captured links is seen once per link with the same transaction id.
    fold_repeats: bool = False
    # False for a message that means nothing alone (a MAP ReturnError carries no operation):
    # it is dropped when its request was not captured.
    standalone: bool = True
    # What a protocol's whole-capture pass needs to link messages beyond request/answer
    # pairs (GTPv2: the tunnel ids of a session); never part of the event.
    context: tuple | None = None

    def event(self) -> SignalingEvent:
        return SignalingEvent(ts=self.ts, kind=self.kind, protocol=self.protocol,
                              message=self.message, imsi=self.imsi, msisdn=self.msisdn,
                              imei=self.imei, cell_id=self.cell_id, peer=self.peer,
                              correlation_id=self.correlation_id, frame=self.frame)


def merge_answer(event: SignalingEvent, answer: Message) -> SignalingEvent:
    """The request's event with the answer's identities filled in where it had none."""
    filled = {k: getattr(answer, k) for k in _IDS
              if getattr(event, k) is None and getattr(answer, k) is not None}
    latency = round((answer.ts - event.ts) * 1000.0, 3)
    return replace(event, latency_ms=latency, **filled)


def correlate(messages: list[Message]) -> list[SignalingEvent]:
    """Events in frame order, answers merged into their requests."""
    events: list[SignalingEvent | None] = []
    open_requests: dict[tuple, deque[int]] = defaultdict(deque)
    answered: set[tuple] = set()
    for m in sorted(messages, key=lambda m: m.frame):
        key = (m.protocol, m.key)
        if m.role == ANSWER and m.key is not None:
            if open_requests.get(key):
                i = open_requests[key].popleft()
                events[i] = merge_answer(events[i], m)
                answered.add(key)
                continue
            if not m.standalone or key in answered:
                continue  # meaningless alone, or a repeat of an answer already merged
        if m.role == REQUEST and m.key is not None:
            if m.fold_repeats and open_requests.get(key):
                continue
            open_requests[key].append(len(events))
        events.append(m.event())
    return [e for e in events if e is not None]
