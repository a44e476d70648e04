"""The simulated world's signalling, written as a capture.

``simulate --pcap`` adds ``signalling.pcap``: what taps of the simulated network would show.

- Attaches, on S11 (MME ↔ SGW, GTPv2-C): a Create Session Request (IMSI, MSISDN, MEI, ULI with
  TAI and ECGI, the MME's control F-TEID) and the SGW's Create Session Response (its F-TEID).
- IMEI checks, on S13 (MME → EIR, Diameter over SCTP): an ME-Identity-Check-Request with the
  IMSI and the device's IMEI, at each attach whose device is known.
- Location updates, on S11: a Modify Bearer Request with the new ULI to the SGW's tunnel of the
  SIM's session, whenever a SIM's record is in another cell than its previous one (after its
  first attach in the capture: a session created before the capture is not seen).
- Call set-ups, on the IMS Gm interface (SIP over UDP): an INVITE for every outgoing call of
  the SIMs on VoLTE (From the SIM's number, To the callee's, P-Access-Network-Info with the
  cell, the device in ``+sip.instance``).

No authentications are written (remote-SIM latency is tested on hand-built cases). The
behaviours (assumptions, documented in docs/simulator.md):

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

from detector.world.core import HOUR, MO, VOICE, Ctx, local_day
from detector.world.population import BENIGN_ORDER, BenignPlan
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
    volte_share: float = 0.25              # SIMs whose calls are set up over IMS (SIP)


BEHAVIOUR = Behaviour()
CREATE_SESSION_REQUEST, CREATE_SESSION_RESPONSE, MODIFY_BEARER_REQUEST = 32, 33, 34
ATTACH, UPDATE, CALL = 0, 1, 2          # what a Signalling row is
MME, SGW, EIR = bytes([10, 20, 0, 1]), bytes([10, 20, 0, 2]), bytes([10, 20, 0, 3])
PCSCF = bytes([10, 30, 0, 1])
MME_TEID, SGW_TEID = 0x01000000, 0x02000000     # + SIM index: the session's control tunnels


@dataclass(frozen=True, slots=True)
class Signalling:
    """What the taps saw, in time order: time (µs), what (ATTACH, UPDATE, CALL), SIM, cell
    (row of the cell-name table), device (-1: none), callee (CALL only)."""

    t_us: np.ndarray
    what: np.ndarray
    sim: np.ndarray
    cell: np.ndarray
    dev: np.ndarray
    peer: np.ndarray


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
    a_t, a_sim, a_cell, a_dev = a_t[keep], a_sim[keep], a_cell[keep], a_dev[keep]

    # location updates: a record in another cell than the SIM's previous record, once the
    # SIM's session is known (it attached earlier in the capture)
    first_attach = np.full(n_sims, np.iinfo(np.int64).max)
    np.minimum.at(first_attach, a_sim, a_t)
    by_sim = np.lexsort((t, sim))
    s2, c2 = sim[by_sim], cell[by_sim]
    moved = np.r_[False, (s2[1:] == s2[:-1]) & (c2[1:] != c2[:-1])]
    u = by_sim[moved]
    u_t = t[u] - rng.integers(1, 60, len(u))
    known = u_t > first_attach[sim[u]]
    u, u_t = u[known], u_t[known]

    # call set-ups of the SIMs on VoLTE
    volte = ctx.rng("volte").random(n_sims) < b.volte_share
    c = np.flatnonzero((rec["rtype"][order] == VOICE) & (rec["direction"][order] == MO) & volte[sim])

    t_s = np.concatenate([a_t, u_t, t[c]])
    t_us = t_s * 1_000_000 + rng.integers(0, 1_000_000, len(t_s))
    what = np.concatenate([np.full(len(a_t), ATTACH), np.full(len(u), UPDATE), np.full(len(c), CALL)])
    peer = rec["peer"][order].astype(np.int64)
    cols = [np.concatenate(x) for x in ((a_sim, sim[u], sim[c]), (a_cell, cell[u], cell[c]),
                                        (a_dev, dev[u], dev[c]),
                                        (np.full(len(a_t), -1), np.full(len(u), -1), peer[c]))]
    o = np.argsort(t_us, kind="stable")
    return Signalling(t_us[o], what[o], *(x[o] for x in cols))


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


def _fteid(interface: int, teid: int, ipv4: bytes) -> bytes:
    return _ie(87, bytes([0x80 | interface]) + struct.pack("!I", teid) + ipv4)


def _avp(code: int, data: bytes, vendor: int | None = None) -> bytes:
    head = struct.pack("!IB", code, 0x40 | (0x80 if vendor else 0))
    head += (len(data) + (12 if vendor else 8)).to_bytes(3, "big")
    return head + (struct.pack("!I", vendor) if vendor else b"") + data + b"\0" * (-len(data) % 4)


def _ecr(seq: int, imsi: str, imei: str) -> bytes:
    """S13 ME-Identity-Check-Request (3GPP TS 29.272) as a Diameter message."""
    host = b"mme1.epc.mnc000.mcc460.3gppnetwork.org"
    body = (_avp(263, host + b";%d" % seq) + _avp(277, struct.pack("!I", 1)) + _avp(264, host)
            + _avp(296, b"epc.mnc000.mcc460.3gppnetwork.org")
            + _avp(283, b"epc.mnc000.mcc460.3gppnetwork.org") + _avp(1, imsi.encode())
            + _avp(1401, _avp(1402, imei[:14].encode(), 10415), 10415))
    return (bytes([1]) + (20 + len(body)).to_bytes(3, "big") + bytes([0x80])
            + (324).to_bytes(3, "big") + struct.pack("!III", 16777252, seq, 0x5A000000 | seq) + body)


def _invite(seq: int, msisdn: int, peer: int, cell_name: str, imei: str | None, ue: str) -> bytes:
    mcc, mnc, tac, eci = cell_name.split("-")
    pani = f"{mcc}{mnc}{int(tac):04X}{int(eci):07X}"
    instance = f';+sip.instance="<urn:gsma:imei:{imei[:8]}-{imei[8:14]}-{imei[14]}>"' if imei else ""
    return (f"INVITE tel:+{peer} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {ue}:5060;branch=z9hG4bK{seq:x}\r\n"
            f"From: <sip:+{msisdn}@ims.mnc{mnc:0>3}.mcc{mcc}.3gppnetwork.org>;tag={seq:x}\r\n"
            f"To: <tel:+{peer}>\r\nCall-ID: {seq:x}@{ue}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:+{msisdn}@{ue}:5060>{instance}\r\n"
            f"P-Access-Network-Info: 3GPP-E-UTRAN-FDD; utran-cell-id-3gpp={pani}\r\n"
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


class _Capture:
    """Ethernet/IPv4 frames for a pcap file, written in time order by :meth:`write` (an
    answer a millisecond after its request may come after the next request)."""

    ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"

    def __init__(self) -> None:
        self.frames = 0
        self._out: list[tuple[int, int, bytes]] = []

    def write(self, f) -> None:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t_us, _, frame in sorted(self._out):
            f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
            f.write(frame)

    def udp(self, t_us: int, src: bytes, dst: bytes, port: int, payload: bytes) -> None:
        self._ip(t_us, src, dst, 17, struct.pack("!HHHH", port, port, len(payload) + 8, 0) + payload)

    def sctp(self, t_us: int, src: bytes, dst: bytes, ppid: int, payload: bytes) -> None:
        chunk = struct.pack("!BBHIHHI", 0, 3, 16 + len(payload), self.frames, 0, 0, ppid)
        self._ip(t_us, src, dst, 132, struct.pack("!HHII", 3868, 3868, 1, 0) + chunk + payload
                 + b"\0" * (-len(payload) % 4))

    def _ip(self, t_us: int, src: bytes, dst: bytes, proto: int, payload: bytes) -> None:
        frame = self.ETH + struct.pack("!BBHHHBBH4s4s", 0x45, 0, len(payload) + 20,
                                       self.frames & 0xFFFF, 0, 64, proto, 0, src, dst) + payload
        self._out.append((t_us, self.frames, frame))
        self.frames += 1


def write_pcap(path: Path, sig: Signalling, imsi: np.ndarray, msisdn: np.ndarray, imei: np.ndarray,
               cell_names: list[str]) -> int:
    """Write ``sig`` as S11 (GTPv2-C), S13 (Diameter/SCTP) and Gm (SIP) frames; returns the
    number of frames."""
    ids_ie: dict[int, bytes] = {}
    uli_ie = [uli(c) for c in cell_names]
    rat = _ie(82, b"\x06")                    # E-UTRAN
    accepted = _ie(2, bytes([16, 0]))          # Cause: request accepted
    cap = _Capture()
    for seq, (t_us, what, sim, cell, dev, peer) in enumerate(zip(
            sig.t_us.tolist(), sig.what.tolist(), sig.sim.tolist(), sig.cell.tolist(),
            sig.dev.tolist(), sig.peer.tolist())):
        device = f"{imei[dev]:015d}" if dev >= 0 else None
        if what == CALL:
            ue = f"10.{100 + (sim >> 16 & 63)}.{sim >> 8 & 255}.{sim & 255}"
            cap.udp(t_us, bytes(int(x) for x in ue.split(".")), PCSCF, 5060,
                    _invite(seq, int(msisdn[sim]), peer, cell_names[cell], device, ue))
            continue
        if what == UPDATE:       # to the SGW's tunnel of the session
            gtp = _gtp(MODIFY_BEARER_REQUEST, SGW_TEID + sim, seq, uli_ie[cell])
            cap.udp(t_us, MME, SGW, 2123, gtp)
            continue
        ids = ids_ie.get(sim)
        if ids is None:
            ids = ids_ie[sim] = (_ie(1, _tbcd(f"{imsi[sim]:015d}"))
                                 + _ie(76, _tbcd(f"{msisdn[sim]}")))
        body = ids + (_ie(75, _tbcd(device)) if device else b"") + uli_ie[cell] + rat + \
            _fteid(10, MME_TEID + sim, MME)
        # an initial attach's request goes to TEID 0: the SGW has no tunnel for it yet
        cap.udp(t_us, MME, SGW, 2123, _gtp(CREATE_SESSION_REQUEST, 0, seq, body))
        cap.udp(t_us + 800, SGW, MME, 2123, _gtp(CREATE_SESSION_RESPONSE, MME_TEID + sim, seq,
                                                 accepted + _fteid(11, SGW_TEID + sim, SGW)))
        if device:
            cap.sctp(t_us + 2000, MME, EIR, 46, _ecr(seq, f"{imsi[sim]:015d}", device))
    with open(path, "wb") as f:
        cap.write(f)
    return cap.frames


def _gtp(kind: int, teid: int, seq: int, body: bytes) -> bytes:
    return struct.pack("!BBHII", 0x48, kind, len(body) + 8, teid, (seq & 0xFFFFFF) << 8) + body
