"""A second world generator, written from published descriptions of SIM-box traffic.

``simulate_boxworld(BoxParams(...), out_dir)`` writes ``cdr.csv``, ``subscribers.csv``,
``labels.csv`` and ``world.json`` in the formats ``goipwatch score`` and ``goipwatch evaluate``
read (docs/simulator.md, "Output files"), so the detector can be judged on a world that its
own simulator (``detector.world.simulate``) did not make. Nothing of that simulator's
population, mobility or scenario code is used here, only the digit and CSV formatting of
``detector.world.encoding``. Where the two agree it is because the sources below say so.

The setting is also different: one carrier's own feed (China Unicom, 460-01; every other
network's subscribers are outside numbers), a square grid of cells, every SIM a renewal
process rather than daily counts.

Published descriptions used (what each one gives this module):

- I. Murynets, M. Zabarankin, R. P. Jover, A. Panagia, "Analysis and detection of SIMbox
  fraud in mobility networks", IEEE INFOCOM 2014 (AT&T CDRs): SIM boxes sit at a static
  location and make a disproportionate volume of outgoing calls, about 100 times their
  incoming ones; legitimate devices such as cellular network probes look much the same
  (here the hard negative ``network_probe``).
- A. Kouam, A. C. Viana, A. Tchana, "SIMBox bypass frauds in cellular networks: strategies,
  evolution, detection, and future directions", IEEE Communications Surveys & Tutorials 2021
  (hal-03105845): the boxes' counter-measures, one scenario each: SIM rotation over the
  ports (``simbox_rotating``), IMEI manipulation (``simbox_imei_change``), human behaviour
  simulation, calls and SMS among the box's own SIMs, data, some incoming calls
  (``simbox_human``), and mobile boxes (``simbox_mobile``); the boxes' SIMs are prepaid
  cards bought in bulk shortly before use.
- P. O. S. Vaz de Melo, L. Akoglu, C. Faloutsos, A. A. F. Loureiro, "Surprising patterns for
  the call duration distribution of mobile phone users", ECML PKDD 2010: a user's call
  durations follow a (truncated) log-logistic distribution, with the user's own median and
  shape; used for every answered call here.
- Z.-Q. Jiang, W.-J. Xie, M.-X. Li, B. Podobnik, W.-X. Zhou, H. E. Stanley, "Calling patterns
  in human communication dynamics", PNAS 110 (2013), a Chinese operator's CDRs: most people's
  inter-call times are Weibull with a shape below 1 (bursty); robot callers, telecom fraud
  and telephone sales are the anomalous clusters (here ``call_centre`` as telephone sales);
  the chance to call one's r-th contact falls as a power of r.
- M. Seshadri, S. Machiraju, A. Sridharan, J. Bolot, C. Faloutsos, J. Leskovec, "Mobile call
  graphs: beyond power-law and lognormal distributions", KDD 2008: calls per customer and
  distinct partners follow a double Pareto lognormal (DPLN) distribution.
- M. C. González, C. A. Hidalgo, A.-L. Barabási, "Understanding individual human mobility
  patterns", Nature 453 (2008): a person returns to a few places, the k-th most visited with
  frequency proportional to k^-1.2 (here 2 to 8 places, home at night).

Figures no source gives (box sizes beyond "4 to hundreds of SIMs", per-SIM call rates, answer
ratios, the hard negatives' volumes, the day profiles) are assumptions named as such below.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from detector.world.encoding import (
    NUL,
    csv_rows,
    digit_values,
    fixed_digits,
    iso_scalar,
    iso_seconds,
    luhn_check_digit,
    mix64,
    str_table,
    var_digits,
    with_luhn,
)

GENERATOR = "goipwatch detector.world.boxgen"
DAY, HOUR, MINUTE = 86_400, 3_600, 60
LOCAL_S = 8 * HOUR           # the carrier's local time, UTC+8 (the detector's default)
MCC_MNC = "460-01"
IMSI_BASE = 460_01 * 10**10
OWN_PREFIXES = (130, 131, 132, 155, 156, 166, 175, 176, 185, 186)        # China Unicom ranges
OTHER_PREFIXES = (134, 135, 136, 137, 138, 139, 150, 151, 133, 153, 180, 189)

VOICE, SMS, DATA = 0, 1, 2
MO, MT = 0, 1
ANSWERED, UNANSWERED, BUSY, FAILED, DELIVERED, OK = range(6)
RESULT_NAMES = ("answered", "unanswered", "busy", "failed", "delivered", "ok")

# Day profiles, weight of each local hour 0..23 (assumptions). Bypass traffic is international
# calls ending at local phones: their recipients must be awake, their callers abroad call into
# the local evening.
PROFILES = {
    "people": (0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.4, 1.2, 2.5, 3.5, 4, 4, 3.5, 3.5, 3.8, 4, 4, 4.2,
               4.5, 4.8, 4.5, 3.5, 2, 0.8),
    "data": (1.5, 0.8, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 3.5, 3.5, 4, 4.5, 4, 3.5, 3.5, 3.5, 4, 4.5,
             5, 5.5, 5.5, 4.5, 3),
    "office": (0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 0.5, 2, 4, 4, 4, 4, 0.5, 0, 0, 0, 0, 0),
    "street": (0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 1, 0, 0, 0),
    "bypass": (0.6, 0.3, 0.1, 0.05, 0.05, 0.1, 0.3, 1, 2, 3, 3.5, 3.5, 3.5, 3.5, 3.5, 4, 4, 4.5, 5,
               5.5, 5.5, 5, 3.5, 1.5),
    "flat": (1.0,) * 24,
}

# Who exists: share of the subscribers per benign class (ordinary = the rest), and the fraud
# share of all SIMs split over the box scenarios (assumptions).
CLASSES = ("ordinary", "call_centre", "courier", "iot_meter", "network_probe", "enterprise")
SCENARIOS = ("simbox_static", "simbox_rotating", "simbox_human", "simbox_mobile", "simbox_imei_change")
MIXES = {
    "default": {"classes": {"call_centre": 0.005, "courier": 0.008, "iot_meter": 0.015,
                            "network_probe": 0.002, "enterprise": 0.01},
                "fraud_share": 0.006,
                "scenarios": {"simbox_static": 0.3, "simbox_rotating": 0.25, "simbox_human": 0.15,
                              "simbox_mobile": 0.1, "simbox_imei_change": 0.2}},
    "hard": {"classes": {"call_centre": 0.02, "courier": 0.03, "iot_meter": 0.04,
                         "network_probe": 0.006, "enterprise": 0.03},
             "fraud_share": 0.01,
             "scenarios": {"simbox_static": 0.15, "simbox_rotating": 0.2, "simbox_human": 0.35,
                           "simbox_mobile": 0.15, "simbox_imei_change": 0.15}},
}
PORTS = (4, 8, 16, 32)        # GSM gateway models come with 4 to 32 ports (assumption)
PLACE_EXPONENT = 1.2          # González et al.: visits to the k-th place ~ k^-1.2
CONTACT_EXPONENT = 1.3        # Jiang et al.: calls to the r-th contact fall as a power of r
MAX_PLACES = 8

# TAC-shaped prefixes, synthetic: phones, and the GSM modules of gateways, meters and probes.
PHONE_TACS = (35123406, 35266907, 35411208, 86203509, 86344710, 86507211, 86661912, 86805213)
MODULE_TACS = (86073603, 86218404, 35840105, 86455706)

# mobility kinds
PERSON, OFFICE, STREET, FIXED, MOBILE = range(5)


@dataclass(frozen=True, slots=True)
class BoxParams:
    subscribers: int = 6000       # benign subscribers; fraud SIMs come on top
    days: int = 2
    seed: int = 1
    mix: str = "default"          # default | hard
    start: str = "2026-11-02T00:00:00Z"


@dataclass(frozen=True, slots=True)
class BoxSummary:
    out_dir: Path
    records: int
    sims: int
    counts: dict[str, int]


class _Gen:
    """The world while it is made: the SIM table, the cells and the records so far."""

    def __init__(self, p: BoxParams):
        if p.mix not in MIXES:
            raise ValueError(f"unknown mix {p.mix!r} for the second generator; mixes: {', '.join(MIXES)}")
        if p.subscribers < 100:
            raise ValueError("subscribers must be at least 100")
        if p.days < 1:
            raise ValueError("days must be at least 1")
        self.p = p
        t0 = dt.datetime.fromisoformat(p.start.replace("Z", "+00:00"))
        if t0.tzinfo is None:
            t0 = t0.replace(tzinfo=dt.timezone.utc)
        self.t0 = int(t0.timestamp())
        self.t1 = self.t0 + p.days * DAY
        self.side = max(20, int(math.ceil(math.sqrt(p.subscribers / 3))))
        self.chunks: list[tuple[np.ndarray, ...]] = []
        minutes = np.arange(self.t0, self.t1, MINUTE)
        self._minutes = minutes
        self._cum = {}
        hours = ((minutes + LOCAL_S) // HOUR) % 24
        for name, prof in PROFILES.items():
            w = np.asarray(prof, float)[hours]
            self._cum[name] = np.concatenate([[0.0], np.cumsum(w / w.mean())])

    def rng(self, what: str) -> np.random.Generator:
        ss = np.random.SeedSequence([self.p.seed, zlib.crc32(f"boxgen:{what}".encode())])
        return np.random.Generator(np.random.PCG64(ss))

    # ------------------------------------------------------------------ time

    def warp(self, u_min: np.ndarray, profile: str) -> np.ndarray:
        """Epoch seconds of points given in profile-weighted minutes since the start (the
        profile's intensity integrates to the span's minutes)."""
        cum = self._cum[profile]
        grid = np.arange(len(cum)) * MINUTE + self.t0
        return np.interp(u_min, cum, grid).astype(np.int64)

    def renewal(self, rng, per_day: np.ndarray, shape: np.ndarray | float, profile: str,
                since: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(owner, t) of a Weibull renewal process per owner (``shape`` 1: Poisson) at
        ``per_day`` events a day, in the profile's time. Owners index ``per_day``."""
        n = len(per_day)
        shape = np.broadcast_to(np.asarray(shape, float), (n,))
        span = (self.t1 - self.t0) / MINUTE
        owners, times = [], []
        for i in np.flatnonzero(per_day > 0):
            mean_gap = DAY / MINUTE / per_day[i]
            k = shape[i]
            scale = mean_gap / math.gamma(1 + 1 / k)
            # started a day (at least 20 gaps) before the span, so that the span begins in
            # the middle of a process, not at an event
            warm = max(DAY / MINUTE, 20 * mean_gap)
            m = int((span + warm) / mean_gap * 1.5) + 8
            u = np.cumsum(scale * rng.weibull(k, m)) - warm
            while u[-1] < span:
                u = np.concatenate([u, u[-1] + np.cumsum(scale * rng.weibull(k, m))])
            u = u[(u >= 0) & (u < span)]
            owners.append(np.full(len(u), i))
            times.append(self.warp(u, profile))
        if not owners:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        own, t = np.concatenate(owners).astype(np.int64), np.concatenate(times)
        if since is not None:
            keep = t >= since[own]
            own, t = own[keep], t[keep]
        return own, t

    # ------------------------------------------------------------------ records

    def add(self, sim, t, rtype, direction, dur, result, peer, imei, cell) -> None:
        t = np.asarray(t, np.int64)
        n = len(t)
        if not n:
            return

        def col(v, dtype):
            return np.broadcast_to(np.asarray(v, dtype), (n,)).copy()

        self.chunks.append((col(sim, np.int64), t, col(rtype, np.int8), col(direction, np.int8),
                            col(dur, np.int64), col(result, np.int8), col(peer, np.int64),
                            col(imei, np.int64), col(cell, np.int64)))


# --------------------------------------------------------------------------- distributions


def loglogistic(rng: np.random.Generator, median: np.ndarray, shape: np.ndarray, cap: int = 3600) -> np.ndarray:
    """Seconds from a log-logistic distribution (Vaz de Melo et al.), truncated at ``cap``."""
    u = rng.uniform(1e-9, 1 - 1e-9, len(median))
    x = median * (u / (1 - u)) ** (1 / shape)
    return np.clip(np.rint(x), 1, cap).astype(np.int64)


def dpln(rng: np.random.Generator, n: int, mu: float, sigma: float, alpha: float, beta: float) -> np.ndarray:
    """Double Pareto lognormal draws (Reed and Jorgensen), the shape Seshadri et al. fit to
    calls per customer: a lognormal body with power-law tails on both sides."""
    return np.exp(mu + sigma * rng.standard_normal(n) + rng.exponential(1 / alpha, n)
                  - rng.exponential(1 / beta, n))


def outcome(rng: np.random.Generator, n: int, answer: np.ndarray | float, median, shape) -> tuple[np.ndarray, np.ndarray]:
    """(result, duration) of calls: answered with probability ``answer`` (log-logistic
    talk time), otherwise unanswered, busy or failed 70/20/10 (assumption)."""
    answer = np.broadcast_to(np.asarray(answer, float), (n,))
    u = rng.random(n)
    rest = rng.random(n)
    res = np.where(u < answer, ANSWERED, np.where(rest < 0.7, UNANSWERED, np.where(rest < 0.9, BUSY, FAILED)))
    dur = loglogistic(rng, np.broadcast_to(np.asarray(median, float), (n,)),
                      np.broadcast_to(np.asarray(shape, float), (n,)))
    return res.astype(np.int8), np.where(res == ANSWERED, dur, 0)


def imei_of(tac: np.ndarray, serial: np.ndarray) -> np.ndarray:
    return with_luhn((np.asarray(tac, np.int64) * 1_000_000 + np.asarray(serial, np.int64) % 1_000_000)
                     .astype(np.uint64), 14).astype(np.int64)


# --------------------------------------------------------------------------- the world


class BoxWorld:
    """SIM table and behaviour of every SIM; records go to ``_Gen``."""

    def __init__(self, p: BoxParams):
        self.g = g = _Gen(p)
        mix = MIXES[p.mix]
        rng = g.rng("who")
        counts = {c: int(round(mix["classes"].get(c, 0) * p.subscribers)) for c in CLASSES[1:]}
        counts = {"ordinary": p.subscribers - sum(counts.values()), **counts}
        self.cls_names = list(CLASSES) + list(SCENARIOS)
        cls = np.concatenate([np.full(counts[c], k) for k, c in enumerate(CLASSES)])
        nb = len(cls)
        # fraud: whole boxes until the share is reached (at least one box per scenario)
        n_fraud = max(len(SCENARIOS) * 4, int(round(mix["fraud_share"] / (1 - mix["fraud_share"]) * nb)))
        self.rigs: list[dict] = []
        sizes = []
        weights = np.array([mix["scenarios"][s] for s in SCENARIOS])
        left = {s: max(4, int(round(n_fraud * w / weights.sum()))) for s, w in zip(SCENARIOS, weights)}
        for k, s in enumerate(SCENARIOS):
            while left[s] > 0:
                ports = int(rng.choice([q for q in PORTS if q <= max(4, left[s])] or [4]))
                size = ports * int(rng.integers(2, 5)) if s == "simbox_rotating" else ports
                sizes.append((s, ports, size))
                left[s] -= size
        fraud_cls = np.concatenate([np.full(size, len(CLASSES) + SCENARIOS.index(s)) for s, _, size in sizes])
        self.cls = np.concatenate([cls, fraud_cls]).astype(np.int64)
        self.nb, self.n = nb, len(self.cls)
        n = self.n
        self.rig = np.full(n, -1, np.int64)
        i = nb
        for r, (s, ports, size) in enumerate(sizes):
            self.rig[i:i + size] = r
            self.rigs.append({"rig_id": f"{s.replace('_', '-')}-{r + 1}", "scenario": s, "ports": ports,
                              "first": i, "size": size})
            i += size
        self._identities(rng)
        self._places(rng)
        self._devices(rng)

    # ------------------------------------------------------------------ who

    def name(self, sims: np.ndarray) -> np.ndarray:
        return np.asarray(self.cls_names, dtype=object)[self.cls[sims]]

    def of(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.cls == self.cls_names.index(name))

    def _identities(self, rng: np.random.Generator) -> None:
        n, g = self.n, self.g
        self.imsi = IMSI_BASE + rng.choice(10**10, n, replace=False)
        pre = np.asarray(OWN_PREFIXES, np.int64)[rng.integers(0, len(OWN_PREFIXES), n)]
        self.msisdn = 86 * 10**11 + pre * 10**8 + rng.choice(10**8, n, replace=False)
        self.activated = g.t0 - np.clip(rng.lognormal(np.log(3 * 365 * DAY), 0.9, n), 20 * DAY, 15 * 365 * DAY).astype(np.int64)
        self.owner = np.arange(n, dtype=np.int64)
        self.channel = rng.zipf(1.6, n) % 400
        self.iccid_body = 898601 * 10**13 + rng.choice(10**13, n, replace=False)
        # enterprise: one company id, one channel, consecutive ICCIDs, activated minutes apart
        ent = self.of("enterprise")
        self.company = np.full(n, -1, np.int64)
        k = 0
        while k < len(ent):
            size = int(rng.integers(10, 51))
            m = ent[k:k + size]
            self.company[m] = k
            self.owner[m] = 10**9 + k
            self.channel[m] = int(rng.integers(0, 400))
            self.iccid_body[m] = self.iccid_body[m[0]] + np.arange(len(m))
            self.activated[m] = g.t0 - int(rng.integers(30, 900)) * DAY + np.cumsum(rng.integers(60, 600, len(m)))
            k += size
        # rigs: prepaid cards bought in bulk shortly before use (Kouam et al.), one dealer
        self.rig_start = np.zeros(len(self.rigs), np.int64)
        for r, rig in enumerate(self.rigs):
            m = np.arange(rig["first"], rig["first"] + rig["size"])
            if rng.random() < 0.4:
                start = g.t0 - int(rng.integers(1, 30)) * DAY      # at work before the world
            else:
                start = g.t0 + int(rng.integers(0, int(0.8 * (g.t1 - g.t0))))
            self.rig_start[r] = rig["start"] = start
            fresh = rng.random(len(m)) < 0.7
            self.activated[m] = start - np.where(fresh, rng.integers(HOUR, 20 * DAY, len(m)),
                                                 rng.integers(60 * DAY, 400 * DAY, len(m)))
            self.channel[m] = int(rng.integers(0, 400))
            shared = rng.random() < 0.5
            self.owner[m] = 2 * 10**9 + (r if shared else m)

    def _places(self, rng: np.random.Generator) -> None:
        """Home and the other places of each person (González et al.), the fixed cells of
        offices, meters, probes and boxes, and the routes of moving boxes."""
        n, side = self.n, self.g.side
        x, y = rng.integers(0, side, n), rng.integers(0, side, n)
        self.mobility = np.full(n, PERSON, np.int64)
        self.places = np.empty((n, MAX_PLACES), np.int64)
        radius = np.clip(rng.lognormal(np.log(3), 0.8, n), 1, side / 2)
        for k in range(MAX_PLACES):
            ang = rng.uniform(0, 2 * np.pi, n)
            dist = 0 if k == 0 else radius * rng.uniform(0.3, 1.0, n)
            px = np.clip(np.rint(x + dist * np.cos(ang)), 0, side - 1).astype(np.int64)
            py = np.clip(np.rint(y + dist * np.sin(ang)), 0, side - 1).astype(np.int64)
            self.places[:, k] = px * side + py
        self.nplaces = rng.integers(2, MAX_PLACES + 1, n)
        self.fixed = self.places[:, 0].copy()
        self.district = np.maximum(np.rint(radius).astype(np.int64), 3)
        ranks = np.arange(1, MAX_PLACES + 1, dtype=float) ** -PLACE_EXPONENT
        self.place_cdf = np.stack([np.cumsum(np.where(np.arange(MAX_PLACES) < L, ranks, 0))
                                   / ranks[:L].sum() for L in range(MAX_PLACES + 1) if L] )
        # offices of call centres: buildings of 15-80 agents on one cell
        self._grouped(rng, self.of("call_centre"), (15, 80), OFFICE)
        self._grouped(rng, self.of("iot_meter"), (10, 150), FIXED)
        self._grouped(rng, self.of("network_probe"), (4, 12), FIXED)
        ent = self.of("enterprise")
        for c in np.unique(self.company[ent]):
            m = ent[self.company[ent] == c]
            self.places[m, 1] = self.places[m[0], 1]        # the company's office
        self.mobility[self.of("courier")] = STREET
        self.stop_s = rng.integers(10, 31, n) * MINUTE      # couriers' stops
        self.routes: dict[int, tuple[int, np.ndarray]] = {}
        for r, rig in enumerate(self.rigs):
            m = np.arange(rig["first"], rig["first"] + rig["size"])
            cell = int(rng.integers(0, side * side))
            self.fixed[m] = cell
            self.mobility[m] = FIXED
            if rig["scenario"] == "simbox_mobile":
                step = int(rng.integers(3, 21)) * MINUTE
                steps = (self.g.t1 - min(self.g.t0, self.rig_start[r])) // step + 2
                walk = np.cumsum(rng.integers(-1, 2, (steps, 2)), axis=0) + [cell // side, cell % side]
                walk = np.abs(walk) % (2 * side - 2)
                walk = np.where(walk >= side, 2 * side - 2 - walk, walk)   # reflect at the edge
                self.routes[r] = (step, walk[:, 0] * side + walk[:, 1])
                self.mobility[m] = MOBILE
            if rig["scenario"] == "simbox_human":
                self.places[m, 1] = (cell + 1) % (side * side)      # a second antenna's cell

    def _grouped(self, rng, members: np.ndarray, size: tuple[int, int], kind: int) -> None:
        k = 0
        while k < len(members):
            m = members[k:k + int(rng.integers(size[0], size[1] + 1))]
            self.fixed[m] = self.places[m[0], 0]
            self.mobility[m] = kind
            k += len(m)

    def where(self, sims: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Cell of each SIM at each time: a pure function of (SIM, time), so both ends of a
        call agree."""
        sims, t = np.asarray(sims, np.int64), np.asarray(t, np.int64)
        side = self.g.side
        hour = ((t + LOCAL_S) // HOUR) % 24
        weekday = ((t + LOCAL_S) // DAY + 3) % 7 < 5
        kind = self.mobility[sims]
        home = self.places[sims, 0]
        u = (mix64(sims, t // 1800, 7) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        rank = (u[:, None] > self.place_cdf[self.nplaces[sims] - 1]).sum(axis=1)
        awake = (hour >= 8) & (hour < 22)
        cell = np.where(awake, self.places[sims, np.minimum(rank, MAX_PLACES - 1)], home)
        office = weekday & (hour >= 9) & (hour < 18)
        cell = np.where((kind == OFFICE) & office, self.fixed[sims], cell)
        on_round = (hour >= 8) & (hour < 20)
        stop = mix64(sims, t // self.stop_s[sims], 9)
        d = self.district[sims].astype(np.uint64)
        dx = (stop % (2 * d + np.uint64(1))).astype(np.int64) - self.district[sims]
        dy = ((stop >> np.uint64(20)) % (2 * d + np.uint64(1))).astype(np.int64) - self.district[sims]
        street = np.clip(home // side + dx, 0, side - 1) * side + np.clip(home % side + dy, 0, side - 1)
        cell = np.where((kind == STREET) & on_round, street, cell)
        cell = np.where(kind == FIXED, self.fixed[sims], cell)
        human = self.cls[sims] == self.cls_names.index("simbox_human")
        cell = np.where(human, np.where(mix64(sims, t // HOUR, 5) % np.uint64(3) == 0,
                                        self.places[sims, 1], self.fixed[sims]), cell)
        mobile = np.flatnonzero(kind == MOBILE)
        for r in np.unique(self.rig[sims[mobile]]):
            sel = mobile[self.rig[sims[mobile]] == r]
            step, route = self.routes[int(r)]
            k = np.clip((t[sel] - min(self.g.t0, self.rig_start[r])) // step, 0, len(route) - 1)
            cell[sel] = route[k]
        return cell

    # ------------------------------------------------------------------ devices

    def _devices(self, rng: np.random.Generator) -> None:
        n = self.n
        self.tac = np.asarray(PHONE_TACS, np.int64)[rng.integers(0, len(PHONE_TACS), n)]
        self.serial = rng.choice(1_000_000, n, replace=False)
        self.imei_period = np.zeros(n, np.int64)
        for name in ("iot_meter", "network_probe"):
            m = self.of(name)
            if len(m):
                groups = np.unique(self.fixed[m], return_inverse=True)[1]
                self.tac[m] = np.asarray(MODULE_TACS, np.int64)[groups % len(MODULE_TACS)]
        self.port_imei: dict[int, np.ndarray] = {}
        self.rotation: dict[int, tuple[int, int]] = {}
        for r, rig in enumerate(self.rigs):
            m = np.arange(rig["first"], rig["first"] + rig["size"])
            s = rig["scenario"]
            module = np.int64(MODULE_TACS[int(rng.integers(0, len(MODULE_TACS)))])
            if s in ("simbox_static", "simbox_mobile", "simbox_rotating"):
                self.tac[m] = module              # the gateway's GSM modules
            if s == "simbox_imei_change":
                self.imei_period[m] = int(rng.integers(20, 121)) * MINUTE
            if s == "simbox_rotating":
                ports = rig["ports"]
                self.port_imei[r] = imei_of(np.full(ports, module), rng.choice(1_000_000, ports, replace=False))
                stride = ports + 1
                while math.gcd(stride, rig["size"]) != 1:
                    stride += 1
                self.rotation[r] = (int(rng.integers(30, 181)) * MINUTE, stride)
        self.imei = imei_of(self.tac, self.serial)

    def port_of(self, sims: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Port of a rotating box's SIM at t (-1: out of the ports, in the bank)."""
        out = np.full(len(sims), -1, np.int64)
        for r in np.unique(self.rig[sims]):
            if int(r) not in self.rotation:
                continue
            sel = np.flatnonzero(self.rig[sims] == r)
            period, stride = self.rotation[int(r)]
            rig = self.rigs[int(r)]
            slot = (t[sel] - self.rig_start[r]) // period
            local = sims[sel] - rig["first"]
            port = (local - slot * stride) % rig["size"]
            out[sel] = np.where(port < rig["ports"], port, -1)
        return out

    def device(self, sims: np.ndarray, t: np.ndarray) -> np.ndarray:
        """IMEI of each SIM's device at each time (boxes that change IMEIs, rotating boxes'
        ports); 1 % of records carry none (-1)."""
        sims, t = np.asarray(sims, np.int64), np.asarray(t, np.int64)
        imei = self.imei[sims].copy()
        ch = self.imei_period[sims] > 0
        if ch.any():
            s = sims[ch]
            pick = (mix64(s, t[ch] // self.imei_period[s], 3) % np.uint64(len(PHONE_TACS))).astype(np.int64)
            imei[ch] = imei_of(np.asarray(PHONE_TACS, np.int64)[pick],
                               mix64(s, t[ch] // self.imei_period[s], 4) % np.uint64(1_000_000))
        rot = np.isin(self.rig[sims], list(self.rotation))
        if rot.any():
            idx = np.flatnonzero(rot)
            port = self.port_of(sims[idx], t[idx])
            for r in np.unique(self.rig[sims[idx]]):
                sel = self.rig[sims[idx]] == r
                imei[idx[sel]] = self.port_imei[int(r)][np.maximum(port[sel], 0)]
        missing = mix64(sims, t, 6) % np.uint64(100) == 0
        return np.where(missing, -1, imei)

    # ------------------------------------------------------------------ traffic

    def offnet(self, rng: np.random.Generator, k: int) -> np.ndarray:
        pre = np.asarray(OTHER_PREFIXES, np.int64)[rng.integers(0, len(OTHER_PREFIXES), k)]
        return 86 * 10**11 + pre * 10**8 + rng.integers(0, 10**8, k)

    def call(self, t, rtype, a_sim, a_num, b_sim, b_num, dur, res) -> None:
        """A call or SMS from a to b: the MO record for a and the MT record for b when they
        are subscribers here (sim >= 0), each with its own device and cell."""
        t = np.asarray(t, np.int64)
        n = len(t)
        for sim, peer, direction in ((a_sim, b_num, MO), (b_sim, a_num, MT)):
            sim = np.broadcast_to(np.asarray(sim, np.int64), (n,))
            m = sim >= 0
            if m.any():
                s, tt = sim[m], t[m]
                self.g.add(s, tt, rtype, direction, np.broadcast_to(dur, (n,))[m],
                           np.broadcast_to(res, (n,))[m], np.broadcast_to(peer, (n,))[m],
                           self.device(s, tt), self.where(s, tt))

    def people(self) -> None:
        """Everyone who is not a box, meter or probe: personal calls, SMS and data."""
        g, rng = self.g, self.g.rng("people")
        who = np.flatnonzero(np.isin(self.cls, [self.cls_names.index(c) for c in
                                                ("ordinary", "call_centre", "courier", "enterprise")]))
        k = len(who)
        calls = np.minimum(dpln(rng, k, np.log(2.5), 0.7, 2.5, 2.0), 60)   # Seshadri et al.
        calls[self.cls[who] == self.cls_names.index("call_centre")] *= 0.5
        shape = rng.uniform(0.5, 0.85, k)                                  # Jiang et al.: bursty
        median, dshape = rng.lognormal(np.log(60), 0.5, k), rng.uniform(1.2, 2.2, k)  # Vaz de Melo
        answer = rng.beta(7, 3, k)
        # contacts: grow with activity; 55 % on this network (one carrier of three)
        n_contacts = np.clip(np.rint(3 + 4 * calls ** 0.8), 3, 150).astype(np.int64)
        off = np.concatenate([[0], np.cumsum(n_contacts)])
        onnet = rng.random(off[-1]) < 0.55
        c_sim = np.where(onnet, who[rng.integers(0, k, off[-1])], -1)
        c_num = np.where(c_sim >= 0, self.msisdn[np.maximum(c_sim, 0)], self.offnet(rng, off[-1]))
        rank_w = [np.arange(1, m + 1, dtype=float) ** -CONTACT_EXPONENT for m in range(1, 151)]
        cdfs = {m: np.cumsum(w) / w.sum() for m, w in zip(range(1, 151), rank_w)}

        def contact(owner_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            u = rng.random(len(owner_pos))
            r = np.array([np.searchsorted(cdfs[int(n_contacts[o])], x) for o, x in zip(owner_pos, u)],
                         np.int64) if len(u) else np.empty(0, np.int64)
            j = off[owner_pos] + r
            same = c_sim[j] == who[owner_pos]
            return np.where(same, -1, c_sim[j]), c_num[j]

        pos, t = g.renewal(rng, calls, shape, "people")
        b_sim, b_num = contact(pos)
        res, dur = outcome(rng, len(t), answer[pos], median[pos], dshape[pos])
        self.call(t, VOICE, who[pos], self.msisdn[who[pos]], b_sim, b_num, dur, res)
        # calls from other networks' subscribers: people's calls are roughly reciprocal
        pos, t = g.renewal(rng, calls * 0.45 * rng.uniform(0.5, 1.5, k), shape, "people")
        res, dur = outcome(rng, len(t), answer[pos], median[pos], dshape[pos])
        self.call(t, VOICE, -1, self.offnet(rng, len(t)), who[pos], self.msisdn[who[pos]], dur, res)
        sms = rng.lognormal(0, 1.0, k)
        pos, t = g.renewal(rng, sms, 1.0, "people")
        b_sim, b_num = contact(pos)
        self.call(t, SMS, who[pos], self.msisdn[who[pos]], b_sim, b_num, 0, DELIVERED)
        pos, t = g.renewal(rng, sms * 0.5 + 0.8, 1.0, "people")     # other networks and services
        service = np.asarray([10010, 95588, 95555, 95533, 10690100, 10690222, 106550011], np.int64)
        peer = np.where(rng.random(len(t)) < 0.6, service[rng.integers(0, len(service), len(t))],
                        self.offnet(rng, len(t)))
        self.call(t, SMS, -1, peer, who[pos], self.msisdn[who[pos]], 0, DELIVERED)
        pos, t = g.renewal(rng, rng.lognormal(np.log(10), 0.6, k), 1.0, "data")
        s = who[pos]
        self.g.add(s, t, DATA, MO, np.clip(rng.lognormal(np.log(300), 1.0, len(t)), 1, 6 * HOUR).astype(np.int64),
                   OK, -1, self.device(s, t), self.where(s, t))

    def work(self) -> None:
        """The hard negatives' work: telephone sales (Jiang et al.), couriers' customers,
        meters' reports, probes' test calls (Murynets et al.), colleagues' calls."""
        g, rng = self.g, self.g.rng("work")
        people = np.flatnonzero(self.cls == 0)
        for name, per_day, profile, answer, median, incoming, onnet in (
                ("call_centre", (60, 150), "office", 0.35, 45.0, 8.0, 0.2),
                ("courier", (25, 60), "street", 0.8, 20.0, 15.0, 0.3)):
            m = self.of(name)
            if not len(m):
                continue
            pos, t = g.renewal(rng, rng.uniform(*per_day, len(m)), 0.6 if name == "call_centre" else 0.9, profile)
            if name == "call_centre":      # office days only
                wd = ((t + LOCAL_S) // DAY + 3) % 7 < 5
                pos, t = pos[wd], t[wd]
            cust = np.where(rng.random(len(t)) < onnet, people[rng.integers(0, len(people), len(t))], -1)
            num = np.where(cust >= 0, self.msisdn[np.maximum(cust, 0)], self.offnet(rng, len(t)))
            res, dur = outcome(rng, len(t), answer, median, 1.6)
            self.call(t, VOICE, m[pos], self.msisdn[m[pos]], cust, num, dur, res)
            pos, t = g.renewal(rng, np.full(len(m), incoming), 1.0, profile)
            res, dur = outcome(rng, len(t), 0.9, median * 1.5, 1.6)
            self.call(t, VOICE, -1, self.offnet(rng, len(t)), m[pos], self.msisdn[m[pos]], dur, res)
        m = self.of("enterprise")
        if len(m):
            pos, t = g.renewal(rng, np.full(len(m), 4.0), 0.8, "office")
            mate = np.array([rng.choice(m[self.company[m] == self.company[s]]) for s in m[pos]], np.int64) \
                if len(pos) else np.empty(0, np.int64)
            mate = np.where(mate == m[pos], -1, mate)
            num = np.where(mate >= 0, self.msisdn[np.maximum(mate, 0)], self.offnet(rng, len(t)))
            res, dur = outcome(rng, len(t), 0.8, 90.0, 1.8)
            self.call(t, VOICE, m[pos], self.msisdn[m[pos]], mate, num, dur, res)
        m = self.of("iot_meter")
        if len(m):
            site = np.unique(self.fixed[m], return_inverse=True)[1]
            period = np.asarray([300, 900, 3600])[(mix64(site, 1) % np.uint64(3)).astype(np.int64)]
            for i, s in enumerate(m):
                t = g.t0 + int(rng.integers(0, period[i])) + np.arange(0, g.t1 - g.t0, period[i])
                t = t + np.rint(rng.normal(0, 3, len(t))).astype(np.int64)
                t = t[(t >= g.t0) & (t < g.t1)]
                g.add(np.full(len(t), s), t, DATA, MO, rng.integers(2, 16, len(t)), OK, -1,
                      self.device(np.full(len(t), s), t), self.fixed[s])
        m = self.of("network_probe")
        if len(m):
            pos, t = g.renewal(rng, rng.uniform(72, 288, len(m)), 4.0, "flat")   # every 5-20 min
            other = m[rng.integers(0, len(m), len(t))]
            other = np.where(other == m[pos], -1, other)
            num = np.where(other >= 0, self.msisdn[np.maximum(other, 0)], 86_10010_0000 + rng.integers(0, 9, len(t)))
            ans = np.where(rng.random(len(t)) < 0.95, ANSWERED, FAILED).astype(np.int8)
            self.call(t, VOICE, m[pos], self.msisdn[m[pos]], other, num, np.where(ans == ANSWERED, 30, 0), ans)
            pos, t = g.renewal(rng, np.full(len(m), 24.0), 4.0, "flat")
            g.add(m[pos], t, DATA, MO, np.full(len(t), 20), OK, -1, self.device(m[pos], t), self.where(m[pos], t))

    def boxes(self) -> None:
        """SIM boxes: bypass calls out to many distinct numbers at about 100 times the calls
        in (Murynets et al.), and the counter-measures of Kouam et al. by scenario."""
        g = self.g
        people = np.flatnonzero(self.cls == 0)
        for r, rig in enumerate(self.rigs):
            rng = g.rng(f"box-{r}")
            s = rig["scenario"]
            m = np.arange(rig["first"], rig["first"] + rig["size"])
            start = np.full(len(m), max(int(self.rig_start[r]), g.t0))
            human = s == "simbox_human"
            per_day = rng.uniform(20, 60, len(m)) if human else rng.uniform(80, 300, len(m))   # assumption
            if s == "simbox_rotating":
                # a port's calls, made by whichever SIM sits in it
                ports = rig["ports"]
                pos, t = g.renewal(rng, rng.uniform(150, 400, ports), 1.0, "bypass", start[:ports])
                slot = (t - self.rig_start[r]) // self.rotation[r][0]
                caller = m[(pos + slot * self.rotation[r][1]) % rig["size"]]
            else:
                pos, t = g.renewal(rng, per_day, 1.0, "bypass", start)
                caller = m[pos]
            victim = np.where(rng.random(len(t)) < 0.55, people[rng.integers(0, len(people), len(t))], -1)
            num = np.where(victim >= 0, self.msisdn[np.maximum(victim, 0)], self.offnet(rng, len(t)))
            res, dur = outcome(rng, len(t), rng.uniform(0.45, 0.75), rng.uniform(30, 90), 1.5)
            self.call(t, VOICE, caller, self.msisdn[caller], victim, num, dur, res)
            inbound = 0.15 if human else 0.01
            pos, t = g.renewal(rng, per_day * inbound, 1.0, "bypass", start)
            if s == "simbox_rotating":      # a SIM in the bank, out of the ports, cannot be reached
                reach = self.port_of(m[pos], t) >= 0
                pos, t = pos[reach], t[reach]
            res, dur = outcome(rng, len(t), 0.3, 20.0, 1.5)
            self.call(t, VOICE, -1, self.offnet(rng, len(t)), m[pos], self.msisdn[m[pos]], dur, res)
            if human:       # the box's SIMs call and text each other, and use data
                for rtype, rate in ((VOICE, 3.0), (SMS, 2.0)):
                    pos, t = g.renewal(rng, np.full(len(m), rate), 1.0, "people", start)
                    mate = m[(pos + rng.integers(1, len(m), len(t))) % len(m)]
                    res, dur = outcome(rng, len(t), 0.9, 60.0, 1.8) if rtype == VOICE else (DELIVERED, 0)
                    self.call(t, rtype, m[pos], self.msisdn[m[pos]], mate, self.msisdn[mate], dur, res)
                pos, t = g.renewal(rng, np.full(len(m), 4.0), 1.0, "data", start)
                g.add(m[pos], t, DATA, MO, rng.integers(30, 900, len(t)), OK, -1,
                      self.device(m[pos], t), self.where(m[pos], t))


# --------------------------------------------------------------------------- files


def simulate_boxworld(params: BoxParams, out_dir: Path) -> BoxSummary:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    w = BoxWorld(params)
    w.people()
    w.work()
    w.boxes()
    g = w.g
    cols = [np.concatenate([c[i] for c in g.chunks]) for i in range(9)]
    sim, t, rtype, direction, dur, res, peer, imei, cell = cols
    keep = (t >= g.t0) & (t < g.t1)
    order = np.flatnonzero(keep)[np.argsort(t[keep], kind="stable")]
    _write_cdr(out_dir / "cdr.csv", w, [c[order] for c in cols])
    _write_subscribers(out_dir / "subscribers.csv", w)
    first = np.full(w.n, -1, np.int64)
    fr = sim[order] >= w.nb
    if fr.any():
        big = np.iinfo(np.int64).max
        ft = np.full(w.n, big)
        np.minimum.at(ft, sim[order][fr], t[order][fr])
        first[ft < big] = ft[ft < big]
    _write_labels(out_dir / "labels.csv", w, first)
    counts = {name: int((w.cls == k).sum()) for k, name in enumerate(w.cls_names)}
    meta = {
        "generator": GENERATOR,
        "params": asdict(params),
        "seed": params.seed,
        "mix": MIXES[params.mix],
        "counts": counts,
        "sims": {"total": w.n, "benign": w.nb, "fraud": w.n - w.nb, "fraud_share": round((w.n - w.nb) / w.n, 6)},
        "records": {"total": int(len(order)), "fraud": int(fr.sum())},
        "span": {"start": iso_scalar(g.t0), "archive_from": None, "end": iso_scalar(g.t1),
                 "timezone_local": "UTC+8"},
        "cells": g.side * g.side,
        "rigs": [{"rig_id": r["rig_id"], "scenario": r["scenario"], "sims": r["size"], "ports": r["ports"],
                  "start": iso_scalar(r["start"])} for r in w.rigs],
        "files": ["cdr.csv", "subscribers.csv", "labels.csv", "world.json"],
    }
    (out_dir / "world.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return BoxSummary(out_dir, int(len(order)), w.n, counts)


def _cell_names(side: int) -> list[str]:
    idx = np.arange(side * side)
    lac = 21000 + (idx // side) // 8 * 64 + (idx % side) // 8
    ci = 50_000 * 256 + idx * 3 + 1
    return [f"{MCC_MNC}-{a}-{b}" for a, b in zip(lac, ci)]


def _write_cdr(path: Path, w: BoxWorld, cols: list[np.ndarray]) -> None:
    sim, t, rtype, direction, dur, res, peer, imei, cell = cols
    imei_b = fixed_digits(np.maximum(imei, 0), 15)
    imei_b[imei < 0] = NUL
    columns = [str_table(("voice", "sms", "data"))[rtype], str_table(("MO", "MT"))[direction],
               iso_seconds(t), var_digits(dur, 6), fixed_digits(w.imsi[sim], 15),
               fixed_digits(w.msisdn[sim], 13), imei_b, var_digits(peer, 13),
               str_table(_cell_names(w.g.side))[cell], str_table(RESULT_NAMES)[res]]
    with open(path, "wb") as f:
        f.write(b"record_type,direction,start_time,duration_s,imsi,msisdn,imei,peer,cell_id,result\n")
        if len(t):
            f.write(csv_rows(columns))


def _write_subscribers(path: Path, w: BoxWorld) -> None:
    salt = f"boxgen-{w.g.p.seed}".encode()
    id_hash = np.array([hashlib.blake2b(str(int(o)).encode(), key=salt, digest_size=16).hexdigest().encode()
                        for o in w.owner], dtype="S32")
    channel = np.array([f"CH{int(c):04d}".encode() for c in w.channel], dtype="S6")
    check = luhn_check_digit(digit_values(w.iccid_body, 19))     # 20 digits do not fit 64 bits
    columns = [fixed_digits(w.imsi, 15), fixed_digits(w.msisdn, 13),
               np.concatenate([fixed_digits(w.iccid_body, 19), fixed_digits(check, 1)], axis=1),
               iso_seconds(w.activated), id_hash.view(np.uint8).reshape(w.n, 32),
               channel.view(np.uint8).reshape(w.n, 6), str_table(("China Unicom",))[np.zeros(w.n, np.int64)]]
    with open(path, "wb") as f:
        f.write(b"imsi,msisdn,iccid,activated_at,id_hash,channel,carrier\n")
        f.write(csv_rows(columns))


def _write_labels(path: Path, w: BoxWorld, first: np.ndarray) -> None:
    fraud = np.arange(w.n) >= w.nb
    rig_names = [""] + [r["rig_id"] for r in w.rigs]
    running = np.where(fraud, (w.rig_start[np.maximum(w.rig, 0)] <= w.g.t0).astype(np.int64), 2)
    fa = iso_seconds(np.maximum(first, 0))
    fa[first < 0] = NUL
    columns = [fixed_digits(w.imsi, 15), str_table(("benign", "fraud"))[fraud.astype(np.int64)],
               str_table(w.cls_names)[w.cls], str_table(rig_names)[w.rig + 1], fa,
               str_table(("0", "1", ""))[running]]
    with open(path, "wb") as f:
        f.write(b"imsi,label,scenario,rig_id,first_active,already_running\n")
        f.write(csv_rows(columns))
