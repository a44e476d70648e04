"""What a worker tells the rig stage after each tick: its SIMs with rig-like evidence, and
its SIMs' contacts with numbers it does not hold.

:class:`Summaries` takes the place of the :class:`detector.rigs.book.RigBook` in a worker's
pipeline (both are a :class:`detector.rigs.interface.RigPass`). At each scoring it keeps the
rows the rig logic can use (SIMs with at least one family of rig-like evidence, the callers
of the calling groups, the silent code-takers and the SIMs flagged in that tick) instead of
acting on them. As records are applied it keeps their contacts whose peer is no SIM of the
partition: a call between SIMs of two partitions is a contact neither worker can name, and
the rig stage joins the two ends by number. It also keeps every (device, SIM, hour) of the
records: a gateway's ports and a SIM bank's slots carry SIMs of many partitions, and the
rig stage adds them all to its devices' SIM bitmaps, so that ``sims_per_imei`` counts a
device's SIMs of the whole network as in the daemon. After the tick the worker turns them
into a ``sum`` message (or several chunks) for the rig stage. With ``calling_groups`` false
(``[scale] calling_groups``) it keeps neither callers nor contacts: they are most of the
rig stage's input (docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from detector.features.engine import Contacts, DeviceUses, FeatureEngine, FeatureFrame
from detector.flags import Flag
from detector.records import CdrBatch
from detector.rigs.common import DAY_S, VOICE_DATA, callers_min
from detector.rigs.policy import RigPolicy
from detector.rigs.interface import watched
from detector.scale import codec
from detector.scoring import Scorer


# A summary's SIMs (about 1.7 KB each: record, feature values, strengths) and contacts (32
# bytes each) per message: a chunk stays near 512 KB, within a NATS server's default
# max_payload (1 MB) whatever the number of callers and contacts of a tick.
CHUNK_SIMS = 300
CHUNK_CONTACTS = 16_384
CHUNK_DEVICES = 8_192     # (device, SIM, hour): 24 bytes each


class Summaries:
    def __init__(self, engine: FeatureEngine, scorer: Scorer, partition: int,
                 policy: RigPolicy = RigPolicy(), calling_groups: bool = True) -> None:
        self.engine = engine
        self.calling_groups = calling_groups   # callers and contacts across partitions
        self.scorer = scorer
        self.partition = partition
        self.policy = policy
        self._frames: list[tuple[FeatureFrame, np.ndarray]] = []
        self._flags: list[Flag] = []
        self.contacts = Contacts.none()   # since the last summary; in the partition's checkpoint
        self.devices = DeviceUses.none()  # likewise

    def watches(self, sims: np.ndarray) -> np.ndarray:
        return watched(self.engine, sims, self.policy)

    def register(self, batch) -> None:  # registrations reach the rig stage through the store
        pass

    def note_contacts(self, batch: CdrBatch) -> None:
        """Keep the contacts of ``batch`` (records just applied) whose peer is no SIM of
        this partition, for the next summary."""
        if not self.calling_groups:
            return
        got = self.engine.contacts_elsewhere(batch)
        if len(got):
            self.contacts = merged_contacts(self.contacts, got)

    def note_devices(self, batch: CdrBatch) -> None:
        """Keep the (device, SIM, hour) of ``batch`` (records just applied) for the next
        summary: the rig stage counts each device's SIMs over all partitions."""
        got = self.engine.device_uses(batch)
        if len(got):
            self.devices = self.devices.merged(got)

    def extend(self, frame: FeatureFrame, strengths: np.ndarray, flags: list[Flag],
               flagged: Mapping[str, Flag], skip: Callable[[Flag], bool] = lambda f: False
               ) -> list[Flag]:
        just = np.isin(frame.imsi, np.array([int(f.imsi) for f in flags], np.int64))
        # the callers: the calling groups need no evidence of a SIM's own
        callers = (frame.column("voice_out_24h") >= callers_min(self.engine)) & self.calling_groups
        keep = (self.scorer.families(strengths) >= 1) | just | callers | silent_code_takers(self.engine, frame)
        if keep.any():
            rows = np.flatnonzero(keep)
            self._frames.append((FeatureFrame(frame.sims[rows], frame.imsi[rows], frame.msisdn[rows],
                                              frame.at[rows], frame.values[rows], frame.activity[rows]),
                                 strengths[rows]))
        self._flags += flags
        return flags

    def take(self, step: str, at: int) -> list[bytes]:
        """The ``sum`` messages of this tick (``step`` tick or flush at event time ``at``):
        one, or as many chunks as keep each within :data:`CHUNK_BYTES` (the rig stage waits
        for all of them)."""
        frames, self._frames = self._frames, []
        flags, self._flags = self._flags, []
        if frames:
            sims = np.concatenate([f.sims for f, _ in frames])
            # a SIM scored twice in one step (flush after tick) keeps its last row
            _, last = np.unique(sims[::-1], return_index=True)
            pick = np.sort(len(sims) - 1 - last)
            cat = lambda name: np.concatenate([getattr(f, name) for f, _ in frames])[pick]  # noqa: E731
            sims, imsi, msisdn, at_, values, activity = (cat(n) for n in
                                                          ("sims", "imsi", "msisdn", "at", "values", "activity"))
            strengths = np.concatenate([s for _, s in frames])[pick]
        else:
            sims = imsi = msisdn = at_ = activity = np.empty(0, np.int64)
            values = strengths = np.empty((0, 0))
        contacts, self.contacts = self.contacts, Contacts.none()
        devices, self.devices = self.devices, DeviceUses.none()
        n_chunks = max(1, -(-len(sims) // CHUNK_SIMS), -(-len(contacts) // CHUNK_CONTACTS),
                       -(-len(devices) // CHUNK_DEVICES))
        out = []
        for k in range(n_chunks):
            r = slice(k * CHUNK_SIMS, (k + 1) * CHUNK_SIMS)
            c = slice(k * CHUNK_CONTACTS, (k + 1) * CHUNK_CONTACTS)
            d = slice(k * CHUNK_DEVICES, (k + 1) * CHUNK_DEVICES)
            records, cells = self.engine.portable_records(sims[r])
            fields = {"partition": self.partition, "step": step, "at": int(at), "chunk": k, "chunks": n_chunks,
                      # the rig stage's clock is the daemon's: the newest event time, and the
                      # time watching began (the oldest record of the first piece), not the tick's
                      "watermark": int(self.engine.watermark), "observed_from": int(self.engine.observed_from),
                      "cells": cells,
                      "flags": [{"imsi": f.imsi, "msisdn": f.msisdn, "score": f.score,
                                 "flagged_at": f.flagged_at, "reasons": list(f.reasons), "kind": f.kind,
                                 "features": dict(f.features)}   # the rig book reads a card's use from them
                                for f in (flags if k == 0 else [])]}
            out.append(codec.encode("sum", fields, {
                "imsi": imsi[r], "msisdn": msisdn[r], "at": at_[r], "activity": activity[r],
                "values": values[r].ravel(), "strengths": strengths[r].ravel(),
                "state": records, "contact_imsi": contacts.imsi[c], "contact_number": contacts.number[c],
                "contact_peer": contacts.peer[c], "contact_hour": contacts.hour[c],
                "device_imei": devices.imei[d], "device_imsi": devices.imsi[d], "device_hour": devices.hour[d]}))
        return out


def silent_code_takers(engine: FeatureEngine, frame: FeatureFrame) -> np.ndarray:
    """Which rows of ``frame`` are SIMs that received a verification code within the last
    day (the window in which the rig book watches them) and neither call, are called nor use
    data: what the code-pool rule counts in a cell, by device model. A pool's modems each
    take a few codes and nothing else, and only their number in one cell shows the pool, so
    a worker summarises every such SIM, with or without evidence of its own, and the rig
    stage counts the pool as the daemon does. People who get codes call or browse: they stay
    with their worker."""
    quiet = frame.values[:, VOICE_DATA].sum(axis=1) == 0
    return quiet & (engine.last_code(frame.sims) > engine.watermark - DAY_S - engine.lateness_s)


def merged_contacts(a: Contacts, b: Contacts) -> Contacts:
    """``a`` and ``b``: one per SIM and peer, at its newest hour (and the SIM's newest number)."""
    if not len(a):
        return b
    imsi, number, peer, hour = (np.r_[getattr(a, k), getattr(b, k)] for k in ("imsi", "number", "peer", "hour"))
    order = np.lexsort((-hour, peer, imsi))
    imsi, number, peer, hour = imsi[order], number[order], peer[order], hour[order]
    first = np.r_[True, (imsi[1:] != imsi[:-1]) | (peer[1:] != peer[:-1])]
    return Contacts(imsi[first], number[first], peer[first], hour[first])


def contacts_bytes(c: Contacts) -> bytes:
    """``c`` for a checkpoint: int64 little-endian quadruples (IMSI, number, peer, hour)."""
    return np.stack([c.imsi, c.number, c.peer, c.hour], axis=1).astype("<i8").tobytes()


def contacts_from(data: bytes) -> Contacts:
    q = np.frombuffer(data, "<i8").astype(np.int64).reshape(-1, 4)
    return Contacts(q[:, 0].copy(), q[:, 1].copy(), q[:, 2].copy(), q[:, 3].copy())


def devices_bytes(d: DeviceUses) -> bytes:
    """``d`` for a checkpoint: int64 little-endian triples (IMEI, IMSI, hour)."""
    return np.stack([d.imei, d.imsi, d.hour], axis=1).astype("<i8").tobytes()


def devices_from(data: bytes) -> DeviceUses:
    q = np.frombuffer(data, "<i8").astype(np.int64).reshape(-1, 3)
    return DeviceUses(q[:, 0].copy(), q[:, 1].copy(), q[:, 2].copy())


def flags_of(msg: codec.Message) -> list[Flag]:
    return [Flag(imsi=f["imsi"], msisdn=f["msisdn"], score=f["score"], flagged_at=f["flagged_at"],
                 reasons=tuple(f["reasons"]), kind=f["kind"], features=dict(f.get("features", {})))
            for f in msg.fields["flags"]]



