"""Fraud scenarios: GOIP gateways, SIM banks, mobile rigs, modem pools, bulk and sleeping cards.

Each scenario is a ``Scenario`` row of ``SCENARIOS``; gateway call traffic shares the ``Gateway``
constants. Sources for each behaviour are in docs/simulator.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from detector.world.core import (
    ANSWERED,
    DATA,
    DAY,
    HOUR,
    LOCAL_OFFSET_S,
    MO,
    OK,
    SMS,
    TACS,
    UNANSWERED,
    VOICE,
    Ctx,
    call_outcome,
    daily_events,
    data_duration,
    hashed_pick,
    sms_outcome,
)
from detector.world.population import World

FRAUD_ORDER = (
    "goip_rotating", "goip_fixed", "goip_evasive", "mobile_rig",
    "sim_bank", "sms_farm", "bulk_cards", "sleeping_card",
)


@dataclass(frozen=True, slots=True)
class Gateway:
    """Outbound call engine of a gateway port (Murynets et al. 2014; VoltDB, optech FAST, HAUD rules)."""

    answer: tuple[float, float] = (0.15, 0.35)  # per-rig answer ratio (victims hang up / do not pick up)
    talk_median_s: float = 20.0  # answered calls are short ...
    talk_sigma: float = 1.2  # ... with a long tail (the scams that work)
    ring_s: tuple[int, int] = (20, 45)  # unanswered: ring time before giving up
    answer_ring_s: tuple[int, int] = (5, 15)
    setup_s: tuple[int, int] = (2, 6)  # busy / failed
    gap_s: tuple[float, float] = (30.0, 180.0)  # per-rig mean idle gap between calls on one port
    gap_jitter: float = 0.15  # machine-regular: small relative spread of the gap
    hours: tuple[float, float] = (8.5, 21.0)  # local working hours of the scam call centre behind the box
    hours_jitter: float = 1.0
    night_share: float = 0.25  # share of rigs that also run 22:00-02:00 local
    onnet_victims: float = 0.2  # share of victims on the simulated network (they get an MT record)
    callback: float = 0.01  # share of calls followed by a victim's call back (nearly no MT)
    smartphone_imei_share: float = 0.7  # fixed-IMEI gateways: owner-set IMEI copied from phones


GATEWAY = Gateway()


@dataclass(frozen=True, slots=True)
class Scenario:
    sizes: tuple[int, ...]  # SIMs per rig (uniform choice)
    start_at_zero: float = 0.3  # share of rigs already running when the world starts
    start_latest: float = 0.75  # other rigs start uniformly within this share of the span
    extra: dict = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    # SIMs rotate over ports: SIMs = ~1.5-4x ports, re-shuffled every rotation period
    "goip_rotating": Scenario(sizes=(16, 32, 64, 96), extra={"ports": (4, 8, 16, 32), "rotation_s": (1200, 7200)}),
    "goip_fixed": Scenario(sizes=(8, 16, 32)),
    # human-like: calls/SMS among own SIMs, some data, a few cells, modest volumes (FraudZen evasion)
    "goip_evasive": Scenario(sizes=(8, 16), extra={
        "victim_calls": (10, 30), "internal_calls": 4.0, "internal_sms": 3.0, "data": (3, 8),
        "incoming": 0.5, "service_sms": 0.5, "answer": 0.35, "talk_median_s": 45.0, "cells": 3,
    }),
    # vehicle: the whole rig moves along a route of cells (VoltDB cell_suspicious_cohorts)
    "mobile_rig": Scenario(sizes=(4, 8, 16), extra={"segment_s": (300, 900), "step": (1, 3)}),
    # remote SIM bank: each SIM appears behind many gateway ports in several cells (Minotaur, SigN)
    "sim_bank": Scenario(sizes=(32, 64, 128), extra={"gateways": (2, 4), "ports": 8, "rotation_s": (600, 3600)}),
    # 猫池 receiving verification codes: many MT SMS from service codes, few MO SMS, no voice
    "sms_farm": Scenario(sizes=(16, 32, 64), extra={"mt_sms": (20, 60), "mo_sms": 1.0}),
    # one ID, one channel, consecutive ICCIDs, minutes apart; part goes into a fixed-IMEI gateway
    "bulk_cards": Scenario(sizes=(10, 20, 30, 40), extra={
        "used_share": 0.6, "activation_gap_s": (60, 300), "in_world_share": 0.5, "use_delay_s": (1800, 6 * 3600),
    }),
    # old card, silent, then wakes up with gateway behaviour (MIIT/MPS sleeping cards; VoltDB NOT_NEW)
    "sleeping_card": Scenario(sizes=(4, 8, 16), extra={"age_years": (1, 6), "wake": (0.3, 0.7)}),
}

# Fraud SIM activation (not bulk, not sleeping): mostly fresh cards, some bought real-name cards.
FRESH_CARD_AGE_S = (HOUR, 60 * DAY)
OLD_CARD_SHARE = 0.3
OLD_CARD_AGE_S = (180 * DAY, 3 * 365 * DAY)


@dataclass
class Rig:
    rig_id: str
    scenario: str
    sims: np.ndarray  # global SIM indices
    start: int
    used: np.ndarray  # mask over sims: SIMs that carry traffic


@dataclass
class FraudPlan:
    n: int
    scenario: np.ndarray  # index into FRAUD_ORDER
    rig: np.ndarray  # index into rigs
    activated: np.ndarray
    owner: np.ndarray
    channel: np.ndarray  # -1 general (complicit-biased); -2-k: one channel for batch k
    iccid_run: np.ndarray
    rigs: list[Rig]


def _rig_sizes(rng: np.random.Generator, n: int, sizes: tuple[int, ...]) -> list[int]:
    out: list[int] = []
    left = n
    while left > 0:
        s = min(int(rng.choice(sizes)), left)
        if left - s < min(sizes) and out:
            s = left
        out.append(s)
        left -= s
    return out


def plan_fraud(ctx: Ctx, counts: dict[str, int], first_sim: int, run_base: int,
               scenarios: dict[str, Scenario] = SCENARIOS) -> FraudPlan:
    rng = ctx.rng("fraud-plan")
    span = ctx.end - ctx.start
    scen, rigidx, act, owner, chan, run = [], [], [], [], [], []
    rigs: list[Rig] = []
    sim = first_sim
    for si, name in enumerate(FRAUD_ORDER):
        sc = scenarios[name]
        for k, size in enumerate(_rig_sizes(rng, counts.get(name, 0), sc.sizes)):
            sims = np.arange(sim, sim + size, dtype=np.int64)
            sim += size
            if rng.random() < sc.start_at_zero:
                start = ctx.start
            else:
                start = ctx.start + int(rng.integers(0, max(int(span * sc.start_latest), 1)))
            used = np.ones(size, dtype=bool)
            a = np.empty(size, dtype=np.int64)
            o = 2 * 10**12 + sims
            c = np.full(size, -1, dtype=np.int64)
            r = np.full(size, -1, dtype=np.int64)
            if name == "bulk_cards":
                ex = sc.extra
                if rng.random() < ex["in_world_share"]:
                    t0 = ctx.start + int(rng.integers(0, max(span // 2, 1)))
                else:
                    t0 = ctx.start - int(rng.integers(DAY, 20 * DAY))
                a[:] = t0 + np.cumsum(rng.integers(*ex["activation_gap_s"], size))
                o[:] = 3 * 10**12 + run_base + len(rigs)
                c[:] = -2 - (run_base + len(rigs))
                r[:] = run_base + len(rigs)
                used = rng.random(size) < ex["used_share"]
                start = max(int(a.max()), ctx.start) + int(rng.integers(*ex["use_delay_s"]))
            elif name == "sleeping_card":
                ex = sc.extra
                a[:] = ctx.start - (rng.uniform(*ex["age_years"], size) * 365 * DAY).astype(np.int64)
                start = ctx.start + int(span * rng.uniform(*ex["wake"]))
            else:
                fresh = rng.integers(*FRESH_CARD_AGE_S, size)
                old = rng.integers(*OLD_CARD_AGE_S, size)
                a[:] = start - np.where(rng.random(size) < OLD_CARD_SHARE, old, fresh)
            rigs.append(Rig(f"{name.replace('_', '-')}-{k + 1}", name, sims, int(start), used))
            scen.append(np.full(size, si, dtype=np.int16))
            rigidx.append(np.full(size, len(rigs) - 1, dtype=np.int64))
            act.append(a)
            owner.append(o)
            chan.append(c)
            run.append(r)

    def cat(xs, dtype):
        return np.concatenate(xs).astype(dtype) if xs else np.empty(0, dtype=dtype)

    return FraudPlan(sim - first_sim, cat(scen, np.int16), cat(rigidx, np.int64), cat(act, np.int64),
                     cat(owner, np.int64), cat(chan, np.int64), cat(run, np.int64), rigs)


# --------------------------------------------------------------------------- traffic


def _windows(ctx: Ctx, rng: np.random.Generator, start: int, night: bool, g: Gateway) -> list[tuple[int, int]]:
    out = []
    for d in ctx.local_days:
        base = int(d) * DAY - LOCAL_OFFSET_S
        h0 = g.hours[0] + rng.uniform(-g.hours_jitter, g.hours_jitter)
        h1 = g.hours[1] + rng.uniform(-g.hours_jitter, g.hours_jitter)
        spans = [(base + int(h0 * HOUR), base + int(h1 * HOUR))]
        if night:
            spans.append((base + 22 * HOUR, base + 26 * HOUR))
        for w0, w1 in spans:
            w0, w1 = max(w0, start, ctx.start), min(w1, ctx.end)
            if w1 - w0 > 60:
                out.append((w0, w1))
    return out


def _port_calls(rng: np.random.Generator, windows, n_ports: int, answer: float, gap_mean: float, g: Gateway):
    """Back-to-back calls on each port within the windows: (port, t, dur, result)."""
    ports, ts, durs, results = [], [], [], []
    for w0, w1 in windows:
        ncol = int((w1 - w0) / (gap_mean + 20) * 1.3) + 20
        while True:
            n = n_ports * ncol
            res, dur = call_outcome(rng, n, answer, g.talk_median_s, g.talk_sigma)
            ring = np.where(
                res == ANSWERED, rng.integers(*g.answer_ring_s, n),
                np.where(res == UNANSWERED, rng.integers(*g.ring_s, n), rng.integers(*g.setup_s, n)),
            )
            gap = np.maximum(gap_mean * (1 + g.gap_jitter * rng.standard_normal(n)), 1.0)
            cyc = (ring + dur + gap).reshape(n_ports, ncol)
            t = w0 + rng.uniform(0, gap_mean, n_ports)[:, None] + np.cumsum(cyc, axis=1) - cyc
            if t[:, -1].min() >= w1:
                break
            ncol *= 2
        valid = t < w1
        ports.append(np.broadcast_to(np.arange(n_ports)[:, None], t.shape)[valid])
        ts.append(t[valid].astype(np.int64))
        durs.append(dur.reshape(n_ports, ncol)[valid])
        results.append(res.reshape(n_ports, ncol)[valid])
    if not ts:
        e = np.empty(0, dtype=np.int64)
        return e, e, e.astype(np.int32), e.astype(np.int8)
    return np.concatenate(ports), np.concatenate(ts), np.concatenate(durs), np.concatenate(results)


def _victim_calls(world: World, rng: np.random.Generator, sim, t, dur, res, dev, cell) -> None:
    """Calls from fraud SIMs to victims (mostly off-net, distinct), plus rare call-backs."""
    n = len(t)
    g = world.profile.gateway
    onnet = rng.random(n) < g.onnet_victims
    vsim = np.where(onnet, world.random_people(rng, n), -1)
    vnum = np.where(vsim >= 0, world.msisdn[np.maximum(vsim, 0)], world.offnet(rng, n))
    world.emit(t, VOICE, res, dur, sim, world.msisdn[sim], vsim, vnum, a_dev=dev, a_cell=cell)
    cb = np.flatnonzero(rng.random(n) < g.callback)
    if len(cb):
        tcb = t[cb] + rng.integers(60, HOUR, len(cb))
        keep = tcb < world.ctx.end
        cb, tcb = cb[keep], tcb[keep]
        cres, cdur = call_outcome(rng, len(cb), 0.4, 15.0)
        world.emit(tcb, VOICE, cres, cdur, vsim[cb], vnum[cb], sim[cb], world.msisdn[sim[cb]],
                   b_dev=dev[cb], b_cell=cell[cb])


def _stride(ports: int, sims: int) -> int:
    """Rotation step: coprime with the SIM count so that every SIM visits every port over time."""
    k = ports + 1
    while math.gcd(k, sims) != 1:
        k += 1
    return k


def _gateway_devices(world: World, rng: np.random.Generator, n: int) -> np.ndarray:
    phone = rng.random(n) < world.profile.gateway.smartphone_imei_share
    dev = world.devices.new("goip", n)
    k = int(phone.sum())
    if k:
        dev[phone] = world.devices.new("smartphone", k)
    return dev


def _port_devices(world: World, rig: Rig, n: int) -> np.ndarray:
    """Devices of a box's ports: GOIP modules or, for the share of rigs whose owner copied
    phone IMEIs into every port (``Profile.port_smartphone_share``), smartphone TACs. The
    choice has a stream of its own, so a profile without such rigs draws nothing here."""
    share = world.profile.port_smartphone_share
    if share > 0 and world.ctx.rng(f"ports-{rig.rig_id}").random() < share:
        return world.devices.new("smartphone", n)
    return world.devices.new("goip", n)


def _relocated(world: World, rig: Rig, t: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """A box carried to a new place every few hours (``Profile.relocate_share`` of the static
    rigs, every ``relocate_s``): after its k-th move each record's cell is shifted by the sum
    of k jumps of a few districts. Rigs that stay are returned as they are."""
    p = world.profile
    if p.relocate_share <= 0 or not len(t):
        return cell
    rng = world.ctx.rng(f"relocate-{rig.rig_id}")
    if rng.random() >= p.relocate_share:
        return cell
    period = int(rng.integers(p.relocate_s[0], p.relocate_s[1] + 1))
    moves = (np.asarray(t, np.int64) - rig.start) // period
    jumps = np.concatenate([[0], np.cumsum(rng.integers(50, 400, int(moves.max()) + 1))])
    return (np.asarray(cell, np.int64) + jumps[moves]) % world.cells.n


def generate_fraud(world: World, plan: FraudPlan) -> None:
    ctx = world.ctx
    for rig in plan.rigs:
        rng = ctx.rng(f"rig-{rig.rig_id}")
        sims = rig.sims[rig.used]
        if len(sims) == 0 or rig.start >= ctx.end:
            continue
        sc = world.profile.scenarios[rig.scenario]
        cell0 = int(rng.integers(0, world.cells.n))
        if rig.scenario == "goip_evasive":
            _evasive(world, rng, rig, sims, cell0, sc.extra)
            continue
        if rig.scenario == "sms_farm":
            _sms_farm(world, rng, rig, sims, cell0, sc.extra)
            continue
        g = world.profile.gateway
        answer = rng.uniform(*g.answer)
        gap = rng.uniform(*g.gap_s)
        windows = _windows(ctx, rng, rig.start, rng.random() < g.night_share, g)
        s = len(sims)
        if rig.scenario == "goip_rotating":
            fit = [p for p in sc.extra["ports"] if p <= s / 1.5]
            n_ports = max(fit) if fit else max(1, int(s / 1.5))
            port_dev = _port_devices(world, rig, n_ports)
            rot = int(rng.integers(*sc.extra["rotation_s"]))
            port, t, dur, res = _port_calls(rng, windows, n_ports, answer, gap, g)
            slot = (t - rig.start) // rot
            local = (port + slot * _stride(n_ports, s)) % s
            dev, cell = port_dev[port], np.full(len(t), cell0)
        elif rig.scenario == "sim_bank":
            n_gw = int(rng.integers(sc.extra["gateways"][0], sc.extra["gateways"][1] + 1))
            per = sc.extra["ports"] if s >= 2 * n_gw * sc.extra["ports"] else max(1, s // (2 * n_gw))
            n_gw = min(n_gw, s)
            q = n_gw * per
            pos_dev = _port_devices(world, rig, q)
            gw_cell = (cell0 + rng.integers(0, world.cells.n, n_gw)) % world.cells.n
            rot = int(rng.integers(*sc.extra["rotation_s"]))
            port, t, dur, res = _port_calls(rng, windows, q, answer, gap, g)
            slot = (t - rig.start) // rot
            local = (port + slot * _stride(q, s)) % s
            dev, cell = pos_dev[port], gw_cell[port // per]
        elif rig.scenario == "mobile_rig":
            sim_dev = _port_devices(world, rig, s)
            port, t, dur, res = _port_calls(rng, windows, s, answer, gap, g)
            seg = int(rng.integers(*sc.extra["segment_s"]))
            nseg = (ctx.end - rig.start) // seg + 2
            route = (cell0 + np.cumsum(rng.integers(sc.extra["step"][0], sc.extra["step"][1] + 1, nseg))) % world.cells.n
            local = port
            dev, cell = sim_dev[port], route[(t - rig.start) // seg]
        else:  # goip_fixed, bulk_cards (used part), sleeping_card: fixed IMEI per SIM, one cell
            sim_dev = _gateway_devices(world, rng, s)
            port, t, dur, res = _port_calls(rng, windows, s, answer, gap, g)
            local = port
            dev, cell = sim_dev[port], np.full(len(t), cell0)
        if rig.scenario not in ("mobile_rig", "sim_bank"):
            cell = _relocated(world, rig, t, cell)
        _victim_calls(world, rng, sims[local], t, dur, res, dev, cell)


def _evasive(world: World, rng: np.random.Generator, rig: Rig, sims: np.ndarray, cell0: int, ex: dict) -> None:
    ctx = world.ctx
    s = len(sims)
    sim_dev = world.devices.new("smartphone", s)
    lut = np.zeros(int(sims.max()) + 1 - int(sims.min()), dtype=np.int64)
    lut[sims - sims.min()] = sim_dev
    cells = (cell0 + np.array([0, 1, 5])[: ex["cells"]]) % world.cells.n

    def dev(x):
        return lut[x - sims.min()]

    def cell(x, t):
        return cells[hashed_pick(x, t // HOUR, 21, len(cells))]

    rate = rng.uniform(*ex["victim_calls"], s)
    own, t = daily_events(ctx, rng, sims, rate, "voice", not_before=rig.start)
    res, dur = call_outcome(rng, len(t), ex["answer"], ex["talk_median_s"])
    _victim_calls(world, rng, own, t, dur, res, dev(own), cell(own, t))
    if s > 1:
        for rtype, rate in ((VOICE, ex["internal_calls"]), (SMS, ex["internal_sms"])):
            own, t = daily_events(ctx, rng, sims, rate, "voice" if rtype == VOICE else "sms", not_before=rig.start)
            other = sims[(np.searchsorted(sims, own) + rng.integers(1, s, len(own))) % s]
            if rtype == VOICE:
                res, dur = call_outcome(rng, len(t), 0.9, 90.0)
            else:
                res, dur = sms_outcome(rng, len(t)), 0
            world.emit(t, rtype, res, dur, own, world.msisdn[own], other, world.msisdn[other],
                       a_dev=dev(own), a_cell=cell(own, t), b_dev=dev(other), b_cell=cell(other, t))
    own, t = daily_events(ctx, rng, sims, rng.uniform(*ex["data"], s), "data", not_before=rig.start)
    world.records.add(own, t, DATA, MO, data_duration(rng, len(t), 300.0), OK, -1, dev(own), cell(own, t))
    own, t = daily_events(ctx, rng, sims, ex["incoming"], "voice", not_before=rig.start)
    res, dur = call_outcome(rng, len(t), 0.6, 40.0)
    world.emit(t, VOICE, res, dur, -1, world.offnet(rng, len(t)), own, world.msisdn[own],
               b_dev=dev(own), b_cell=cell(own, t))
    own, t = daily_events(ctx, rng, sims, ex["service_sms"], "sms", not_before=rig.start)
    peers = world.service_numbers(rng, len(t), {"verification": 0.5, "carrier": 0.5})
    world.emit(t, SMS, sms_outcome(rng, len(t), 0.0), 0, -1, peers, own, world.msisdn[own],
               b_dev=dev(own), b_cell=cell(own, t))


def _sms_farm(world: World, rng: np.random.Generator, rig: Rig, sims: np.ndarray, cell0: int, ex: dict) -> None:
    ctx = world.ctx
    s = len(sims)
    tac = int(rng.choice(np.asarray(TACS["iot_module"])))
    sim_dev = world.devices.new("iot_module", s, tac=tac)
    base = int(sims.min())

    def dev(x):
        return sim_dev[x - base]

    own, t = daily_events(ctx, rng, sims, rng.uniform(*ex["mt_sms"], s), "otp", "flat", not_before=rig.start)
    peers = world.service_numbers(rng, len(t), {"verification": 0.8, "bank": 0.1, "marketing": 0.1})
    world.emit(t, SMS, sms_outcome(rng, len(t), 0.0), 0, -1, peers, own, world.msisdn[own],
               b_dev=dev(own), b_cell=cell0)
    own, t = daily_events(ctx, rng, sims, ex["mo_sms"], "otp", "flat", not_before=rig.start)
    peers = world.service_numbers(rng, len(t), {"verification": 0.7, "carrier": 0.3})
    world.emit(t, SMS, sms_outcome(rng, len(t)), 0, own, world.msisdn[own], -1, peers,
               a_dev=dev(own), a_cell=cell0)
