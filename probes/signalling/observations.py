"""Signalling events as engine records: where, when and on which device a SIM was seen.

Each event with an IMSI becomes one ``RecordType.SIGNAL`` record (no traffic: CDRs count the
calls and messages, so nothing is counted twice) carrying its cell and IMEI. The feature
engine folds them into the SIM's cells and devices, which gives cell stasis, IMEI churn and
SIMs per device for SIMs whose CDRs lack them. Events without an IMSI say nothing about a
SIM's state and are left out (counted). Attaches (a NAS Attach request, or the S11 Create
Session Request with which the core network answers one) become ``RecordType.ATTACH``, which
the engine also compares across SIMs for synchronised power-on of co-located SIMs; a NAS
authentication the UE answered becomes ``RecordType.AUTH`` carrying its latency in ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.records import CdrBatch, Direction, RecordType, Result, SignalingEvent

ATTACH_MESSAGES = frozenset({("gtpv2", "Create Session Request")})


def is_attach(e: SignalingEvent) -> bool:
    return e.kind == "attach" or (e.protocol, e.message) in ATTACH_MESSAGES


def is_ue_auth(e: SignalingEvent) -> bool:
    """An authentication the UE answered: the SIM's own response time. (Diameter AIR/AIA and
    MAP SendAuthenticationInfo time the HSS, not the SIM.)"""
    return e.protocol == "s1ap" and e.message == "Authentication request" and e.latency_ms is not None


def _record_type(e: SignalingEvent) -> RecordType:
    if is_ue_auth(e):
        return RecordType.AUTH
    return RecordType.ATTACH if is_attach(e) else RecordType.SIGNAL


@dataclass(frozen=True, slots=True)
class Observations:
    batch: CdrBatch
    without_imsi: int


def observations(events: list[SignalingEvent], source: str) -> Observations:
    rows = [e for e in events if e.imsi]
    cells: dict[str, int] = {}
    cell = [cells.setdefault(e.cell_id, len(cells)) if e.cell_id else -1 for e in rows]
    n = len(rows)
    zeros = np.zeros(n, np.int64)
    batch = CdrBatch(
        ts=np.array([int(e.ts) for e in rows], np.int64),
        record_type=np.array([_record_type(e) for e in rows], np.int8).reshape(n),
        direction=np.full(n, Direction.MO, np.int8),
        duration=np.array([min(round(e.latency_ms), 2**31 - 1) if is_ue_auth(e) else 0
                           for e in rows], np.int32).reshape(n),
        imsi=np.array([int(e.imsi) for e in rows], np.int64),
        msisdn=np.array([int(e.msisdn) if e.msisdn else 0 for e in rows], np.int64),
        imei=np.array([int(e.imei) if e.imei else 0 for e in rows], np.int64),
        peer=zeros, cell=np.array(cell, np.int32), result=np.full(n, Result.OK, np.int8),
        line=np.array([e.frame or 0 for e in rows], np.int64), cells=tuple(cells), source=source,
    )
    return Observations(batch, len(events) - n)
