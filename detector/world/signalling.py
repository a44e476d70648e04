"""The simulated world's signalling: attaches, written as a capture.

``simulate --pcap`` adds ``signalling.pcap``: what an S11 tap (MME → SGW, GTPv2-C) of the
simulated network would show of attaches: one Create Session Request each (IMSI, MSISDN,
MEI, ULI with TAI and ECGI). Location updates (Modify Bearer), detaches (Delete Session),
IMEI checks and call set-ups are not written yet. The behaviours (assumptions, documented in docs/simulator.md):

- people: on some days the phone was off overnight and attaches before its first use of the
  day; now and then it re-attaches (flight mode, no coverage) at an unrelated moment;
- IoT meters: attach once; a site that loses power re-attaches all its meters together when
  power returns (the hard negative of synchronised attach);
- rigs (gateways, SIM banks, modem pools): the box powers on before each day's work and its
  modules register one after another, a few seconds apart (patent CN113660721A: synchronised
  power-on of co-located SIMs).

Packets are built from fixed templates with ``struct``: a few hundred thousand per second.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.world.core import DAY, HOUR, Ctx, local_day
from detector.world.population import BENIGN_ORDER, GROUPS, BenignPlan
from detector.world.scenarios import FraudPlan


@dataclass(frozen=True, slots=True)
class Behaviour:
    morning_power_on: float = 0.3          # share of person-days that start with a power-on
    power_on_lead_s: tuple[int, int] = (60, 2 * HOUR)  # before the day's first record
    reattach_per_day: float = 0.3          # flight mode, coverage holes
    site_power_cut: float = 0.3            # share of IoT sites with one outage in the world
    meter_restart_s: tuple[int, int] = (0, 20)
    box_lead_s: tuple[int, int] = (30, 300)   # rig power-on before the day's first call
    module_step_s: tuple[float, float] = (1.0, 3.0)  # between successive module registrations


BEHAVIOUR = Behaviour()
CREATE_SESSION_REQUEST = 32
MME, SGW = bytes([10, 20, 0, 1]), bytes([10, 20, 0, 2])


@dataclass(frozen=True, slots=True)
class Signalling:
    """Attaches in time order: time (µs), SIM, cell (row of the cell-name table), device
    (-1: none)."""

    t_us: np.ndarray
    sim: np.ndarray
    cell: np.ndarray
    dev: np.ndarray


def world_signalling(ctx: Ctx, rec: dict[str, np.ndarray], order: np.ndarray, bplan: BenignPlan,
                     fplan: FraudPlan, b: Behaviour = BEHAVIOUR) -> Signalling:
    """Attaches implied by the records (``order``: their time order); ``rec["cell"]`` holds
    rows of the cell-name table."""
    rng = ctx.rng("signalling")
    sim, t, cell, dev = (rec[k][order].astype(np.int64) for k in ("sim", "t", "cell", "dev"))
    n_sims = bplan.n + fplan.n
    parts: list[tuple[np.ndarray, ...]] = []

    # first record of each (SIM, local day)
    day = local_day(t)
    key = sim * (1 << 20) + (day - day.min())
    _, first = np.unique(key, return_index=True)
    f_sim, f_t, f_cell, f_dev = sim[first], t[first], cell[first], dev[first]

    rig_of = np.full(n_sims, -1, np.int64)
    rig_of[bplan.n:] = fplan.rig
    cls = np.full(n_sims, -1, np.int64)
    cls[: bplan.n] = bplan.cls
    iot = BENIGN_ORDER.index("iot_meter")

    # people: morning power-on and random re-attaches near a record of that day
    person = (rig_of[f_sim] < 0) & (cls[f_sim] != iot)
    on = person & (rng.random(len(f_sim)) < b.morning_power_on)
    lead = rng.integers(*b.power_on_lead_s, len(f_sim))
    parts.append((f_t[on] - lead[on], f_sim[on], f_cell[on], f_dev[on]))
    k = rng.poisson(b.reattach_per_day, len(f_sim)) * person
    idx = np.repeat(np.arange(len(f_sim)), k)
    if len(idx):
        t_re = f_t[idx] + rng.integers(0, 14 * HOUR, len(idx))
        parts.append((t_re, f_sim[idx], f_cell[idx], f_dev[idx]))

    # IoT meters: first attach, and one outage for some sites
    first_ever = np.unique(sim, return_index=True)[1]
    m = first_ever[cls[sim[first_ever]] == iot]
    parts.append((t[m] - rng.integers(60, HOUR, len(m)), sim[m], cell[m], dev[m]))
    if len(m):
        site = bplan.group[sim[m]]
        sites = np.unique(site)
        cut = sites[rng.random(len(sites)) < b.site_power_cut]
        when = ctx.start + rng.integers(0, ctx.end - ctx.start, len(cut))
        hit = np.isin(site, cut)
        restart = when[np.searchsorted(cut, site[hit])] + rng.integers(*b.meter_restart_s, hit.sum())
        parts.append((restart, sim[m][hit], cell[m][hit], dev[m][hit]))

    # rigs: the box powers on before each day's first call; modules register in turn
    rig = rig_of[f_sim]
    r = np.flatnonzero(rig >= 0)
    if len(r):
        box_day = rig[r] * (1 << 20) + (day[first][r] - day.min())
        boxes, box_of = np.unique(box_day, return_inverse=True)
        first_of_box = np.lexsort((f_t[r], box_of))[np.r_[True, np.diff(np.sort(box_of)) != 0]]
        start = f_t[r][first_of_box] - rng.integers(*b.box_lead_s, len(boxes))
        # one box, one place: its modules camp on the cell it is in (a SIM bank's SIMs sit in
        # several gateways, each in its own cell: there each SIM's own cell)
        bank = np.isin(rig[r], [i for i, x in enumerate(fplan.rigs) if x.scenario == "sim_bank"])
        box_cell = np.where(bank, f_cell[r], f_cell[r][first_of_box][box_of])
        step = rng.uniform(*b.module_step_s, len(r))
        rank = _rank_within(box_of, rng.random(len(r)))
        parts.append((start[box_of] + (rank * step).astype(np.int64), f_sim[r], box_cell, f_dev[r]))

    a_t, a_sim, a_cell, a_dev = (np.concatenate(c) for c in zip(*parts))
    keep = (a_t >= ctx.start) & (a_t < ctx.end)
    t_us = a_t[keep] * 1_000_000 + rng.integers(0, 1_000_000, int(keep.sum()))
    o = np.argsort(t_us, kind="stable")
    return Signalling(t_us[o], a_sim[keep][o], a_cell[keep][o], a_dev[keep][o])


def _rank_within(group: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each group, in the order of ``tiebreak``."""
    order = np.lexsort((tiebreak, group))
    g = group[order]
    start = np.r_[True, g[1:] != g[:-1]]
    pos = np.arange(len(g))
    rank = np.empty(len(g), np.int64)
    rank[order] = pos - np.maximum.accumulate(np.where(start, pos, 0))
    return rank


# --------------------------------------------------------------------------- capture


def _tbcd(digits: str) -> bytes:
    d = digits + ("f" if len(digits) % 2 else "")
    return bytes(int(d[i + 1], 16) << 4 | int(d[i], 16) for i in range(0, len(d), 2))


def _plmn(mcc: str, mnc: str) -> bytes:
    m3 = int(mnc[2]) if len(mnc) == 3 else 0xF
    return bytes([int(mcc[1]) << 4 | int(mcc[0]), m3 << 4 | int(mcc[2]), int(mnc[1]) << 4 | int(mnc[0])])


def _ie(kind: int, value: bytes) -> bytes:
    return struct.pack("!BHB", kind, len(value), 0) + value


def uli(cell_name: str) -> bytes:
    """ULI IE with TAI and ECGI of a ``MCC-MNC-TAC-ECI`` cell name."""
    mcc, mnc, tac, eci = cell_name.split("-")
    plmn = _plmn(mcc, mnc)
    return _ie(86, bytes([0x18]) + plmn + struct.pack("!H", int(tac)) + plmn + struct.pack("!I", int(eci)))


def write_pcap(path: Path, sig: Signalling, imsi: np.ndarray, msisdn: np.ndarray, imei: np.ndarray,
               cell_names: list[str]) -> int:
    """Write ``sig`` as Ethernet/IPv4/UDP/GTPv2-C frames; returns the number of frames."""
    imsi_ie = {}
    uli_ie = [uli(c) for c in cell_names]
    rat = _ie(82, b"\x06")                    # E-UTRAN
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for seq, (t_us, sim, cell, dev) in enumerate(zip(
                sig.t_us.tolist(), sig.sim.tolist(), sig.cell.tolist(), sig.dev.tolist())):
            ids = imsi_ie.get(sim)
            if ids is None:
                ids = imsi_ie[sim] = (_ie(1, _tbcd(f"{imsi[sim]:015d}"))
                                      + _ie(76, _tbcd(f"{msisdn[sim]}")))
            body = ids + (_ie(75, _tbcd(f"{imei[dev]:015d}")) if dev >= 0 else b"") + uli_ie[cell] + rat
            # an initial attach's request goes to TEID 0: the SGW has no tunnel for it yet
            gtp = struct.pack("!BBHII", 0x48, CREATE_SESSION_REQUEST, len(body) + 8, 0,
                              (seq & 0xFFFFFF) << 8) + body
            udp = struct.pack("!HHHH", 2123, 2123, len(gtp) + 8, 0) + gtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, len(udp) + 20, seq & 0xFFFF, 0, 64, 17, 0,
                             MME, SGW) + udp
            frame = eth + ip
            f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
            f.write(frame)
    return len(sig.t_us)
