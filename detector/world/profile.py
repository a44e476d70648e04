"""The behaviour tables a world is generated from, and the random draw of them (``--mix random``).

A :class:`Profile` bundles what ``population`` and ``scenarios`` read: the benign usage table,
the group structure, the gateway call engine, the fraud scenarios, and three knobs that the
fixed presets leave off (heavy callers, boxes carried to a new place every few hours, ports
with phone IMEIs). ``DEFAULT_PROFILE`` is the documented tables (docs/simulator.md); with it a
world is the same, byte for byte, as before these knobs existed, because each knob draws from
a random stream of its own only when it is on.

:func:`random_draw` makes a profile and a mix from a seed, each behaviour from a wide range,
so that the detector is judged on worlds it was not tuned on. The draw is a pure function of
the seed and is written to ``world.json`` (``draw``).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from detector.world.population import BENIGN, GROUPS, Groups, Usage
from detector.world.scenarios import FRAUD_ORDER, GATEWAY, SCENARIOS, Gateway, Scenario


@dataclass(frozen=True, slots=True)
class Profile:
    benign: Mapping[str, Usage]
    groups: Groups
    gateway: Gateway
    scenarios: Mapping[str, Scenario]
    heavy_share: float = 0.0            # share of people who call and text far more than their class
    heavy_factor: tuple[float, float] = (1.0, 1.0)   # their factor, log-uniform
    relocate_share: float = 0.0         # static rigs carried to a new place every relocate_s
    relocate_s: tuple[int, int] = (3600, 6 * 3600)
    port_smartphone_share: float = 0.0  # rotating, SIM-bank and mobile rigs whose ports carry phone IMEIs


DEFAULT_PROFILE = Profile(BENIGN, GROUPS, GATEWAY, SCENARIOS)

# Ranges of the random draw (docs/simulator.md, "Random mix"). Rates are factors on the
# default tables; log-uniform where the range spans orders of magnitude.
RANGES: dict[str, tuple[float, float]] = {
    "people_call_rate": (0.5, 4.0),       # people's calls and SMS, the whole world
    "heavy_call_rate": (8.0, 40.0),       # heavy callers' calls and SMS (so 0.5x to 40x in all)
    "heavy_share": (0.0, 0.05),
    "inbound_rate": (0.3, 3.0),           # calls and SMS people receive from outside numbers
    "data_rate": (0.3, 3.0),
    "hard_negative_share": (0.3, 5.0),    # factor on each hard-negative class's default share
    "other_benign_share": (0.5, 2.0),     # elderly, travellers, dual SIMs, phone changers
    "fraud_share": (0.001, 0.10),         # fraud SIMs among all SIMs
    "rig_size": (0.25, 2.0),              # factor on each scenario's rig sizes
    "start_at_zero": (0.1, 0.6),          # rigs already at work when the world starts
    "answer": (0.08, 0.5),
    "talk_median_s": (8.0, 60.0),
    "gap_s": (10.0, 600.0),               # a port's mean idle gap: hundreds to tens of calls a day
    "work_start_h": (0.0, 12.0),          # local hour the box's working day begins
    "work_hours": (6.0, 20.0),            # its length
    "night_share": (0.0, 1.0),
    "callback": (0.002, 0.2),             # victims calling back: the box's inbound share
    "onnet_victims": (0.05, 0.5),
    "smartphone_imei_share": (0.0, 1.0),
    "port_smartphone_share": (0.0, 0.6),
    "rotation_s": (300.0, 6 * 3600.0),    # IMEI rotation of rotating gateways and SIM banks
    "mobile_segment_s": (120.0, 600.0),   # a moving box steps to the next cells every few minutes
    "relocate_share": (0.0, 0.5),
    "relocate_s": (3600.0, 6 * 3600.0),   # boxes carried elsewhere every few hours
    "evasive_victim_calls": (3.0, 40.0),
    "evasive_internal": (0.5, 6.0),
    "evasive_incoming": (0.2, 3.0),
    "sms_farm_mt_sms": (5.0, 120.0),
}
HARD_NEGATIVE_KEYS = ("call_centre", "courier", "taxi", "iot_meter", "enterprise", "shop")
OTHER_BENIGN_KEYS = ("elderly", "traveller", "dual_sim", "phone_changer")


@dataclass(frozen=True, slots=True)
class RandomDraw:
    mix: dict[str, float]
    profile: Profile
    record: dict   # every drawn value, for world.json


def _stream(seed: int) -> np.random.Generator:
    ss = np.random.SeedSequence([seed, zlib.crc32(b"random-mix")])
    return np.random.Generator(np.random.PCG64(ss))


def random_draw(seed: int, default_mix: Mapping[str, float]) -> RandomDraw:
    """A profile and a mix drawn from :data:`RANGES` with the seed (``default_mix``: the
    default preset, whose benign shares are scaled)."""
    rng = _stream(seed)
    rec: dict = {}

    def uni(key: str) -> float:
        lo, hi = RANGES[key]
        return float(rng.uniform(lo, hi))

    def logu(key: str) -> float:
        lo, hi = RANGES[key]
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    def span(key: str, log: bool = False) -> tuple[float, float]:
        """A sub-range [a, b] of the key's range: per-rig values are drawn inside it."""
        a, b = sorted((logu(key), logu(key)) if log else (uni(key), uni(key)))
        return a, max(b, a * 1.05)

    # ---- people
    people = logu("people_call_rate")
    inbound = logu("inbound_rate")
    data = logu("data_rate")
    heavy_share = uni("heavy_share")
    heavy_lo, heavy_hi = RANGES["heavy_call_rate"]
    rec["people"] = {"call_rate": round(people, 4), "inbound_rate": round(inbound, 4),
                     "data_rate": round(data, 4), "heavy_share": round(heavy_share, 4),
                     "heavy_call_rate": [heavy_lo, heavy_hi]}
    benign = {}
    for name, u in BENIGN.items():
        benign[name] = dataclasses.replace(
            u, voice_mo=u.voice_mo * people, sms_mo=u.sms_mo * people,
            voice_in=u.voice_in * inbound, sms_in=u.sms_in * inbound, data=u.data * data)

    # ---- shares
    mix = dict(default_mix)
    shares = {}
    for key in HARD_NEGATIVE_KEYS:
        shares[key] = logu("hard_negative_share")
    for key in OTHER_BENIGN_KEYS:
        shares[key] = logu("other_benign_share")
    for key, f in shares.items():
        mix[key] = round(default_mix[key] * f, 6)
    fraud_share = logu("fraud_share")
    split = rng.dirichlet(np.ones(len(FRAUD_ORDER)))
    on_top = fraud_share / (1 - fraud_share)      # mix fractions are of the subscribers
    for key, w in zip(FRAUD_ORDER, split):
        mix[key] = round(float(on_top * w), 6)
    rec["shares"] = {k: round(v, 4) for k, v in shares.items()}
    rec["fraud_share"] = round(fraud_share, 6)

    # ---- gateways
    answer = span("answer")
    gap = span("gap_s", log=True)
    start_h = uni("work_start_h")
    hours = (round(start_h, 3), round(min(start_h + uni("work_hours"), 24.0), 3))
    gateway = dataclasses.replace(
        GATEWAY, answer=answer, talk_median_s=uni("talk_median_s"), gap_s=gap, hours=hours,
        night_share=uni("night_share"), callback=logu("callback"), onnet_victims=uni("onnet_victims"),
        smartphone_imei_share=uni("smartphone_imei_share"))
    rec["gateway"] = {f.name: getattr(gateway, f.name) for f in dataclasses.fields(gateway)}

    # ---- scenarios
    start_at_zero = uni("start_at_zero")
    rotation = tuple(int(x) for x in span("rotation_s", log=True))
    bank_rotation = tuple(int(x) for x in span("rotation_s", log=True))
    segment = tuple(int(x) for x in span("mobile_segment_s"))
    victim = span("evasive_victim_calls", log=True)
    mt_sms = span("sms_farm_mt_sms", log=True)
    extra = {
        "goip_rotating": {"rotation_s": rotation},
        "sim_bank": {"rotation_s": bank_rotation},
        "mobile_rig": {"segment_s": segment},
        "goip_evasive": {"victim_calls": victim, "internal_calls": uni("evasive_internal"),
                         "internal_sms": uni("evasive_internal"), "incoming": uni("evasive_incoming"),
                         "cells": int(rng.integers(1, 4))},
        "sms_farm": {"mt_sms": mt_sms},
    }
    scenarios = {}
    rec["scenarios"] = {}
    for name, sc in SCENARIOS.items():
        f = logu("rig_size")
        sizes = tuple(sorted({max(2, int(round(s * f))) for s in sc.sizes}))
        scenarios[name] = dataclasses.replace(sc, sizes=sizes, start_at_zero=start_at_zero,
                                              extra={**sc.extra, **extra.get(name, {})})
        rec["scenarios"][name] = {"sizes": list(sizes), **{k: _plain(v) for k, v in extra.get(name, {}).items()}}
    rec["start_at_zero"] = round(start_at_zero, 4)

    relocate_share = uni("relocate_share")
    relocate = tuple(int(x) for x in span("relocate_s"))
    port_phone = uni("port_smartphone_share")
    rec["boxes"] = {"relocate_share": round(relocate_share, 4), "relocate_s": list(relocate),
                    "port_smartphone_share": round(port_phone, 4)}
    profile = Profile(benign, GROUPS, gateway, scenarios, heavy_share=heavy_share,
                      heavy_factor=(heavy_lo / people, heavy_hi / people),
                      relocate_share=relocate_share, relocate_s=relocate,
                      port_smartphone_share=port_phone)
    return RandomDraw(mix, profile, _plain(rec))


def _plain(v):
    """JSON-ready copy: tuples as lists, floats rounded to 6 decimals."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float):
        return round(v, 6)
    return v
