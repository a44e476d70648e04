"""Shared devices: SIMs in a device (IMEI) of a flagged SIM, now or earlier in the day.

A SIM with rig-like behaviour that shares a device with a flagged SIM is an associate
(``rig_member``): a gateway's ports take new SIMs long after its first were flagged, and a
SIM bank rotates SIMs through a port, so the one before may be gone when the port's next SIM
is flagged. An association needs a flagged SIM on the other end: one behaviour alone still
flags nothing.

A SIM in a device of a *rig* (two or more flagged SIMs grouped by their own evidence: the
device is a gateway's port or a bank's slot, not a lone suspect's phone) joins it at its
first record, before it has traffic to judge: the rig book watches such SIMs from their
first record (:meth:`RigBook.watches`), and here they need no evidence of their own. A
gateway's next card is flagged at the first tick after its first call, not after its tenth.
"""

from __future__ import annotations

import numpy as np

from detector.features.engine import FeatureFrame
from detector.flags import Flag
from detector.ids import imsi_text
from detector.rigs.common import row_flag
from detector.rigs.tick import Tick


def find(tick: Tick) -> list[Flag]:
    """SIMs of the frame in a device of any flagged SIM, this tick's or an earlier one's
    (a gateway's ports take new SIMs long after its first were flagged), and SIMs that
    used a device of this tick's flags in ports (:meth:`Tick.ported`) earlier in the day
    and have been quiet since (a SIM bank rotates SIMs through a port: the one before may
    be gone when the port's next SIM is flagged). The second asks the engine's device
    index, and only about devices that carried other SIMs."""
    if not tick.policy.associate:
        return []
    known, ported = tick.known(), tick.ported()
    engine, frame = tick.engine, tick.frame
    # in a rig's device, the device is the evidence; in a lone suspect's, one behaviour more
    joins = in_devices(engine, frame.sims, tick.rig_devices())
    out = _device_users(tick, frame, tick.strengths, np.where(joins, 1, tick.families),
                        _devices(tick, known))
    dev = _devices(tick, ported)
    if not len(dev):
        return out
    earlier = engine.device_users(dev)     # in the last 24 h
    earlier = earlier[~np.isin(earlier, frame.sims)]
    if len(earlier):
        gone = engine.features(earlier)
        strengths = tick.scorer.strengths(gone.values)
        out += _device_users(tick, gone, strengths, tick.scorer.families(strengths), dev, engine.watermark)
    return out


def _devices(tick: Tick, slots: np.ndarray) -> np.ndarray:
    dev = tick.engine.devices(slots)
    return np.unique(dev[dev != 0])


def in_devices(engine, sims: np.ndarray, devices: np.ndarray) -> np.ndarray:
    """Per SIM (engine slots), whether one of its devices is among ``devices`` (sorted,
    distinct)."""
    if not len(devices) or not len(sims):
        return np.zeros(len(sims), bool)
    return _among(engine.devices(sims), devices).any(axis=1)


def _among(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` for a sorted, distinct, non-empty ``sorted_set``: a
    binary search per value, where isin sorts both (the set is every flagged SIM's devices,
    the values every frame SIM's)."""
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def _device_users(tick: Tick, frame: FeatureFrame, strengths: np.ndarray, families: np.ndarray,
                  dev: np.ndarray, at: int | None = None) -> list[Flag]:
    """Rows of ``frame`` with one kind of rig-like evidence whose SIM used one of ``dev``."""
    if not len(dev):
        return []
    shares = _among(tick.engine.devices(frame.sims), dev).any(axis=1) & (families >= 1)
    out: list[Flag] = []
    for r in np.flatnonzero(shares):
        imsi = imsi_text(frame.imsi[r])
        if imsi in tick.taken:
            continue
        # the device link is structure the supervised layer does not see (as for bursts)
        flag = row_flag(tick.scorer, frame, strengths, r, "rig_member",
                        "shares a device (IMEI) with a flagged SIM", at, vetoable=False)
        if flag is not None:
            out.append(flag)
            tick.taken.add(imsi)
    return out
