"""``goipwatch inspect`` output: JSON lines (a stable contract) or a readable table."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from detector.records import SignalingEvent

# The contract of ``inspect --jsonl``: these keys, in this order, null where absent.
# New keys may be appended; none may be removed or renamed.
JSONL_KEYS = ("ts", "kind", "protocol", "message", "imsi", "msisdn", "imei", "cell_id", "peer",
              "correlation_id", "latency_ms", "frame")
_TABLE = (("frame", 6), ("time", 26), ("protocol", 8), ("message", 24), ("kind", 15),
          ("imsi", 15), ("msisdn", 15), ("imei", 15), ("cell_id", 22), ("peer", 15),
          ("latency_ms", 10))


def event_dict(e: SignalingEvent) -> dict:
    # Not dataclasses.asdict: it deep-copies every value, and the values are plain scalars.
    return {k: getattr(e, k) for k in JSONL_KEYS}


# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def format_jsonl(events: Iterable[SignalingEvent]) -> Iterator[str]:
    for e in events:
        yield _ENCODE({k: getattr(e, k) for k in JSONL_KEYS})


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_table(events: Iterable[SignalingEvent]) -> Iterator[str]:
    yield "  ".join(name.ljust(width) for name, width in _TABLE).rstrip()
    for e in events:
        values = {"frame": e.frame, "time": _time(e.ts), "protocol": e.protocol,
                  "message": e.message, "kind": e.kind, "imsi": e.imsi, "msisdn": e.msisdn,
                  "imei": e.imei, "cell_id": e.cell_id, "peer": e.peer,
                  "latency_ms": None if e.latency_ms is None else f"{e.latency_ms:.1f}"}
        yield "  ".join(("-" if values[n] is None else str(values[n]))[:w].ljust(w)
                        for n, w in _TABLE).rstrip()
