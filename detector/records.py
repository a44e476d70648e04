"""Typed records that flow from probes to the feature engine.

Feeds arrive as columnar batches (:class:`CdrBatch`, :class:`RegistrationBatch`) so that
features are computed in vectorised micro-batches; :class:`CdrRecord` and
:class:`Registration` are the same data one record at a time, for APIs, tests and
inspection. Identifiers in batches are int64 digit strings read as numbers (IMSI 15
digits, MSISDN E.164, IMEI 15 digits with its check digit, 0 = absent); cells are indices
into a batch-local table of canonical ``MCC-MNC-LAC-CI`` names (-1 = absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

import numpy as np

from detector.ids import imei_text, imsi_text, msisdn_text


class RecordType(IntEnum):
    VOICE = 0
    SMS = 1
    DATA = 2
    # A signalling observation (attach, location update, IMEI check, ...): where and on which
    # device the SIM was. It counts as no traffic, so calls seen both in CDRs and in
    # signalling are not counted twice.
    SIGNAL = 8
    # A power-on or attach (NAS Attach request, or the S11 Create Session Request an attach
    # triggers): an observation like SIGNAL that also feeds synchronised-attach evidence.
    ATTACH = 9
    # The UE's answer to an authentication request (NAS, paired with it): an observation whose
    # ``duration`` holds the answer's latency in milliseconds (how long the SIM took).
    AUTH = 10


class Direction(IntEnum):
    MO = 0  # originated by the served SIM
    MT = 1  # terminated at the served SIM


class Result(IntEnum):
    ANSWERED = 0
    UNANSWERED = 1
    BUSY = 2
    FAILED = 3
    DELIVERED = 4
    OK = 5


RESULTS_BY_TYPE = {
    RecordType.VOICE: (Result.ANSWERED, Result.UNANSWERED, Result.BUSY, Result.FAILED),
    RecordType.SMS: (Result.DELIVERED, Result.FAILED),
    RecordType.DATA: (Result.OK,),
}


def iso(ts: int | float) -> str:
    """Event time (epoch seconds) as ISO 8601 UTC with a ``Z``."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> int:
    """ISO 8601 time with a zone (``Z`` or an offset) as epoch seconds."""
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"time {value!r} has no zone; use Z or an offset")
    return int(dt.timestamp())


def _imei(n: int) -> str | None:
    return imei_text(n) if n else None


def _peer(n: int) -> str | None:
    # E.164 or a short code: digits without leading zeros (a short code's are not kept)
    return msisdn_text(n) if n else None


@dataclass(frozen=True, slots=True)
class CdrRecord:
    record_type: RecordType
    direction: Direction
    start_time: int          # epoch seconds, UTC
    duration_s: int
    imsi: str
    msisdn: str
    imei: str | None
    peer: str | None
    cell_id: str | None
    result: Result

    def canonical(self) -> dict[str, str | int]:
        """The canonical CSV fields (README "Data formats"), values as the CSV spells them."""
        return {
            "record_type": self.record_type.name.lower(), "direction": self.direction.name,
            "start_time": iso(self.start_time), "duration_s": self.duration_s,
            "imsi": self.imsi, "msisdn": self.msisdn, "imei": self.imei or "",
            "peer": self.peer or "", "cell_id": self.cell_id or "",
            "result": self.result.name.lower(),
        }


@dataclass(frozen=True, slots=True, eq=False)
class CdrBatch:
    """Voice/SMS/data records as columns; every array has one entry per record."""

    ts: np.ndarray           # int64 epoch seconds
    record_type: np.ndarray  # int8 RecordType
    direction: np.ndarray    # int8 Direction
    duration: np.ndarray     # int32 seconds
    imsi: np.ndarray         # int64
    msisdn: np.ndarray       # int64
    imei: np.ndarray         # int64, 0 = absent
    peer: np.ndarray         # int64, 0 = absent (short codes keep their digits, not leading zeros)
    cell: np.ndarray         # int32 index into ``cells``, -1 = absent
    result: np.ndarray       # int8 Result
    line: np.ndarray         # int64 source line of each record (for quarantine)
    cells: tuple[str, ...] = ()
    source: str = ""

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> CdrBatch:
        """The records at ``index`` (a boolean mask or positions), in that order."""
        return CdrBatch(
            ts=self.ts[index], record_type=self.record_type[index], direction=self.direction[index],
            duration=self.duration[index], imsi=self.imsi[index], msisdn=self.msisdn[index],
            imei=self.imei[index], peer=self.peer[index], cell=self.cell[index],
            result=self.result[index], line=self.line[index], cells=self.cells, source=self.source,
        )

    @staticmethod
    def concat(batches: list[CdrBatch]) -> CdrBatch:
        """One batch of all records; cell tables are merged and indices remapped."""
        if not batches:
            return CdrBatch.empty()
        names: dict[str, int] = {}
        cells = []
        for b in batches:
            remap = np.array([names.setdefault(c, len(names)) for c in b.cells] + [-1], dtype=np.int32)
            cells.append(remap[b.cell])  # index -1 picks the trailing -1
        sources = {b.source for b in batches}

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(b, name) for b in batches])

        return CdrBatch(
            ts=cat("ts"), record_type=cat("record_type"), direction=cat("direction"),
            duration=cat("duration"), imsi=cat("imsi"), msisdn=cat("msisdn"), imei=cat("imei"),
            peer=cat("peer"), cell=np.concatenate(cells) if cells else np.empty(0, np.int32),
            result=cat("result"), line=cat("line"), cells=tuple(names),
            source=sources.pop() if len(sources) == 1 else "",
        )

    @staticmethod
    def empty() -> CdrBatch:
        i8, z = np.int8, np.zeros(0, np.int64)
        return CdrBatch(ts=z, record_type=z.astype(i8), direction=z.astype(i8),
                        duration=z.astype(np.int32), imsi=z, msisdn=z, imei=z, peer=z,
                        cell=z.astype(np.int32), result=z.astype(i8), line=z)

    def records(self):
        """The batch as typed records (for inspection and tests, not the hot path)."""
        for i in range(len(self)):
            c = int(self.cell[i])
            yield CdrRecord(
                record_type=RecordType(int(self.record_type[i])),
                direction=Direction(int(self.direction[i])),
                start_time=int(self.ts[i]), duration_s=int(self.duration[i]),
                imsi=imsi_text(self.imsi[i]),
                msisdn=msisdn_text(self.msisdn[i]) if self.msisdn[i] else "",   # none: 0
                imei=_imei(self.imei[i]), peer=_peer(self.peer[i]),
                cell_id=self.cells[c] if c >= 0 else None, result=Result(int(self.result[i])),
            )


@dataclass(frozen=True, slots=True)
class Registration:
    imsi: str
    msisdn: str
    iccid: str
    activated_at: int        # epoch seconds
    id_hash: str
    channel: str
    carrier: str


@dataclass(frozen=True, slots=True, eq=False)
class RegistrationBatch:
    imsi: np.ndarray          # int64
    msisdn: np.ndarray        # int64
    iccid: np.ndarray         # object (str), 19-20 digits
    activated_at: np.ndarray  # int64 epoch seconds
    id_hash: np.ndarray       # object (str)
    channel: np.ndarray       # object (str)
    carrier: np.ndarray       # object (str)
    line: np.ndarray          # int64
    source: str = ""

    def __len__(self) -> int:
        return len(self.imsi)

    def records(self):
        for i in range(len(self)):
            yield Registration(
                imsi=imsi_text(self.imsi[i]), msisdn=msisdn_text(self.msisdn[i]), iccid=self.iccid[i],
                activated_at=int(self.activated_at[i]), id_hash=self.id_hash[i],
                channel=self.channel[i], carrier=self.carrier[i],
            )


@dataclass(frozen=True, slots=True)
class SignalingEvent:
    """One signalling message (or request with its answer), normalised across protocols.

    ``kind`` is what it means for detection (``attach``, ``detach``, ``location_update``, ``auth``,
    ``imei_check``, ``call_attempt``, ``call_answer``, ``call_release``, ``sms``,
    ``session``, ``register``, ``purge``, ``identity``, ``other``); ``message`` is the
    protocol's own name (``updateLocation``, ``IAM``, ``ULR``, ``Create Session Request``,
    ``INVITE``). Identifiers are normalised as in CDRs (IMSI digits, MSISDN E.164 digits,
    15-digit IMEI with check digit, canonical ``MCC-MNC-LAC-CI``/``MCC-MNC-TAC-ECI`` cell),
    None where absent. ``correlation_id`` ties a request to its answer (TCAP transaction,
    Diameter hop-by-hop/end-to-end ids, GTP sequence number, SIP Call-ID); ``latency_ms`` is
    the request-to-answer time when both were seen.
    """

    ts: float
    kind: str
    protocol: str
    message: str
    imsi: str | None = None
    msisdn: str | None = None
    imei: str | None = None
    cell_id: str | None = None
    peer: str | None = None
    correlation_id: str | None = None
    latency_ms: float | None = None
    frame: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input that could not be used, kept with where it came from and why."""

    source: str   # file name or probe
    line: int     # 1-based line in the source (0 when the whole source is rejected)
    reason: str
    raw: str = ""
