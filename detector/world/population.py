"""Benign population: ordinary subscribers and the hard negatives, their mobility and their traffic.

Every behaviour is a row of ``BENIGN`` (a ``Usage``) plus the group structure in ``GROUPS``; both
are documented, with sources, in docs/simulator.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from detector.world.core import (
    DATA,
    DAY,
    HOUR,
    MO,
    MT,
    OK,
    SMS,
    TACS,
    VOICE,
    Cells,
    Ctx,
    Devices,
    Records,
    call_outcome,
    daily_events,
    data_duration,
    hashed_pick,
    local_day,
    local_dow,
    local_hour,
    sms_outcome,
)

if TYPE_CHECKING:
    from detector.world.profile import Profile


@dataclass(frozen=True, slots=True)
class Usage:
    """Daily traffic of one benign class (means per SIM per day; Poisson per day, lognormal per SIM)."""

    voice_mo: float  # calls to own contacts
    voice_in: float  # calls received from off-net numbers
    sms_mo: float  # SMS to own contacts
    sms_in: float  # SMS received from off-net numbers
    service_sms: float  # SMS received from service codes (10086, 955xx banks, 1069 verification codes)
    data: float  # data sessions
    answer: float = 0.75  # answer ratio of personal calls
    talk_median_s: float = 60.0
    contacts: tuple[int, int] = (5, 30)  # contact-list size, uniform
    onnet_contacts: float = 0.8  # share of contacts that are subscribers of the simulated network
    mobility: str = "homework"
    device: str = "smartphone"
    activity_sigma: float = 0.5  # lognormal spread of activity between SIMs of the class
    data_median_s: float = 400.0
    # work traffic with customers: fresh numbers (high fan-out), own diurnal/weekly profile
    work_out: float = 0.0
    work_in: float = 0.0
    work_answer: float = 0.6
    work_talk_s: float = 60.0
    work_profile: str = "office"
    work_week: str = "office"


# Benign classes. The hard negatives (call centre, courier, taxi, IoT meter, enterprise, shop) are
# those domain.md lists as the classic false positives. Rates are modelling assumptions chosen so
# that an ordinary subscriber produces ~20-30 records a day (see docs/simulator.md).
BENIGN: dict[str, Usage] = {
    "ordinary": Usage(voice_mo=3.5, voice_in=1.0, sms_mo=1.2, sms_in=0.5, service_sms=1.0, data=12),
    "elderly": Usage(
        voice_mo=1.2, voice_in=0.5, sms_mo=0.1, sms_in=0.2, service_sms=0.4, data=1.0,
        answer=0.85, talk_median_s=90, contacts=(3, 10), mobility="home", device="feature",
    ),
    "traveller": Usage(voice_mo=3.5, voice_in=1.0, sms_mo=1.2, sms_in=0.5, service_sms=1.2, data=15, mobility="traveller"),
    "dual_sim": Usage(voice_mo=3.0, voice_in=1.0, sms_mo=1.0, sms_in=0.5, service_sms=1.0, data=10),
    "phone_changer": Usage(voice_mo=3.5, voice_in=1.0, sms_mo=1.2, sms_in=0.5, service_sms=1.0, data=12),
    "call_centre": Usage(
        voice_mo=0.5, voice_in=0.3, sms_mo=0.3, sms_in=0.2, service_sms=0.3, data=3,
        mobility="office", work_out=80, work_in=8, work_answer=0.45, work_talk_s=75,
        work_profile="office", work_week="office",
    ),
    "courier": Usage(
        voice_mo=2.0, voice_in=0.8, sms_mo=0.8, sms_in=0.5, service_sms=1.5, data=15,
        mobility="courier", work_out=35, work_in=12, work_answer=0.8, work_talk_s=25,
        work_profile="courier", work_week="courier",
    ),
    "taxi": Usage(
        voice_mo=2.0, voice_in=0.8, sms_mo=0.8, sms_in=0.5, service_sms=1.0, data=18,
        mobility="taxi", work_out=20, work_in=10, work_answer=0.85, work_talk_s=20,
        work_profile="taxi", work_week="flat",
    ),
    "iot_meter": Usage(voice_mo=0, voice_in=0, sms_mo=0, sms_in=0, service_sms=0, data=0, contacts=(0, 0),
                       mobility="static", device="iot_module"),
    "enterprise": Usage(
        voice_mo=3.0, voice_in=1.0, sms_mo=1.0, sms_in=0.5, service_sms=1.0, data=12,
        work_out=5, work_in=3, work_answer=0.7, work_talk_s=90, work_profile="office", work_week="office",
    ),
    "shop": Usage(
        voice_mo=1.5, voice_in=0.5, sms_mo=0.5, sms_in=0.3, service_sms=1.0, data=8,
        mobility="shop", work_out=2, work_in=18, work_answer=0.9, work_talk_s=45,
        work_profile="shop", work_week="flat",
    ),
}

# Order of the benign blocks in the SIM table; IoT last so that [0, n_callable) are people.
BENIGN_ORDER = (
    "ordinary", "elderly", "traveller", "dual_sim", "phone_changer",
    "call_centre", "courier", "taxi", "enterprise", "shop", "iot_meter",
)


@dataclass(frozen=True, slots=True)
class Groups:
    """Group structure of the benign classes (sizes uniform in the ranges)."""

    call_centre_building: tuple[int, int] = (20, 100)  # agents per building (one or two cells)
    enterprise_company: tuple[int, int] = (10, 60)  # cards per company account
    enterprise_activation_gap_s: tuple[int, int] = (60, 600)  # between consecutive cards of a batch
    iot_site: tuple[int, int] = (10, 200)  # meters behind one cell, one module TAC
    iot_period_s: tuple[int, ...] = (900, 1800, 3600, 14400)  # reporting periods
    iot_session_s: tuple[int, int] = (3, 20)
    iot_jitter_s: float = 2.0
    phone_change_share_of_world: float = 1.0  # phone_changer SIMs change device once during the world
    customer_onnet: float = 0.25  # share of work-traffic customers on the simulated network
    dual_sim_second_activity: float = 0.5  # the second SIM of a dual-SIM phone is used less
    imei_missing: float = 0.02  # share of records with an empty IMEI (all classes)
    new_card_share: float = 0.04  # subscriptions younger than new_card_age_s (not company cards)
    new_card_age_s: int = 60 * 86400


GROUPS = Groups()

MOBILITY = {"homework": 0, "home": 1, "traveller": 2, "courier": 3, "taxi": 4, "office": 5, "shop": 6, "static": 7}


@dataclass
class BenignPlan:
    """Benign SIMs [0, n) with their class blocks, groups and registration requests."""

    n: int
    n_callable: int
    cls: np.ndarray  # index into BENIGN_ORDER
    blocks: dict[str, tuple[int, int]]
    pair_of: np.ndarray  # dual-SIM partner or -1
    group: np.ndarray  # call-centre building / enterprise company / IoT site id, -1 otherwise
    activated: np.ndarray
    owner: np.ndarray  # owner key (shared => same id_hash)
    owner_is_company: np.ndarray
    channel: np.ndarray  # -1 = draw from the general channel distribution
    iccid_run: np.ndarray  # consecutive-ICCID run id or -1


def _split_groups(rng: np.random.Generator, n: int, size: tuple[int, int]) -> np.ndarray:
    """Group id per member for ``n`` members split into groups of uniform size (last one absorbs)."""
    gid = np.empty(n, dtype=np.int64)
    i = g = 0
    while i < n:
        s = int(rng.integers(size[0], size[1] + 1))
        if n - (i + s) < size[0]:
            s = n - i
        gid[i : i + s] = g
        i += s
        g += 1
    return gid


def plan_benign(ctx: Ctx, counts: dict[str, int], group_base: int, groups: Groups = GROUPS) -> BenignPlan:
    rng = ctx.rng("benign-plan")
    blocks: dict[str, tuple[int, int]] = {}
    i = 0
    for name in BENIGN_ORDER:
        blocks[name] = (i, i + counts.get(name, 0))
        i += counts.get(name, 0)
    n = i
    cls = np.empty(n, dtype=np.int16)
    for k, name in enumerate(BENIGN_ORDER):
        a, b = blocks[name]
        cls[a:b] = k
    pair_of = np.full(n, -1, dtype=np.int64)
    a, b = blocks["dual_sim"]
    first = np.arange(a, b - 1, 2)
    pair_of[first] = first + 1
    pair_of[first + 1] = first
    group = np.full(n, -1, dtype=np.int64)
    next_group = group_base
    for name, size in (
        ("call_centre", groups.call_centre_building),
        ("enterprise", groups.enterprise_company),
        ("iot_meter", groups.iot_site),
    ):
        a, b = blocks[name]
        if b > a:
            g = _split_groups(rng, b - a, size)
            group[a:b] = g + next_group
            next_group += int(g.max()) + 1

    # registration: age of the subscription lognormal (median ~3.5 years, 30 days .. 20 years)
    age = np.clip(rng.lognormal(np.log(3.5 * 365 * DAY), 0.8, n), 30 * DAY, 20 * 365 * DAY)
    activated = (ctx.start - age).astype(np.int64)
    owner = np.arange(n, dtype=np.int64)
    owner[pair_of >= 0] = np.minimum(np.arange(n), pair_of)[pair_of >= 0]
    owner_is_company = np.zeros(n, dtype=bool)
    channel = np.full(n, -1, dtype=np.int64)
    iccid_run = np.full(n, -1, dtype=np.int64)
    a, b = blocks["dual_sim"]
    activated[first + 1] = activated[first] + rng.integers(DAY, 400 * DAY, len(first))
    activated[a:b] = np.minimum(activated[a:b], ctx.start - DAY)
    a, b = blocks["enterprise"]
    if b > a:
        for g in np.unique(group[a:b]):
            m = np.flatnonzero(group == g)
            t0 = ctx.start - int(rng.integers(30, 1500)) * DAY
            gaps = rng.integers(*groups.enterprise_activation_gap_s, len(m))
            activated[m] = t0 + np.cumsum(gaps)
            owner[m] = 10**12 + g  # company account
            owner_is_company[m] = True
            channel[m] = -2 - int(g)  # one sales channel per company (resolved in registration)
            iccid_run[m] = g
    # new subscribers: a carrier's gross adds are a few percent of its base every month, so
    # a young card alone is no sign of fraud (own stream: the rest of the world is unchanged)
    new = ctx.rng("new-cards")
    young = (new.random(n) < groups.new_card_share) & ~owner_is_company
    activated[young] = ctx.start - new.integers(HOUR, groups.new_card_age_s, int(young.sum()))
    return BenignPlan(n, blocks["iot_meter"][0], cls, blocks, pair_of, group, activated, owner,
                      owner_is_company, channel, iccid_run)


class World:
    """SIM table, cells, devices and record sink shared by the benign and fraud generators."""

    def __init__(self, ctx: Ctx, plan: BenignPlan, cells: Cells, devices: Devices, msisdn: np.ndarray,
                 service: dict[str, np.ndarray], profile: Profile | None = None):
        from detector.world.profile import DEFAULT_PROFILE

        self.ctx = ctx
        self.profile = DEFAULT_PROFILE if profile is None else profile
        self.plan = plan
        self.cells = cells
        self.devices = devices
        self.msisdn = msisdn
        self._msisdn_sorted = np.sort(msisdn)
        self.service = service
        self.records = Records()
        nb = plan.n
        self.kind = np.zeros(nb, dtype=np.int8)
        self.home = np.zeros(nb, dtype=np.int64)
        self.work = np.zeros(nb, dtype=np.int64)
        self.aux = np.ones(nb, dtype=np.int64)
        self.dev0 = np.zeros(nb, dtype=np.int64)
        self.dev1 = np.zeros(nb, dtype=np.int64)
        self.change_t = np.full(nb, np.iinfo(np.int64).max, dtype=np.int64)
        self.call_boost = np.ones(nb)  # heavy callers' factor on their calls and SMS

    # ------------------------------------------------------------------ numbers

    def offnet(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Random mobile numbers that are not subscribers of the simulated world."""
        from detector.world.registration import random_msisdn

        out = random_msisdn(rng, n)
        for _ in range(50):
            pos = np.minimum(np.searchsorted(self._msisdn_sorted, out), len(self._msisdn_sorted) - 1)
            bad = self._msisdn_sorted[pos] == out
            if not bad.any():
                return out
            out[bad] = random_msisdn(rng, int(bad.sum()))
        return out

    def service_numbers(self, rng: np.random.Generator, n: int, shares: dict[str, float]) -> np.ndarray:
        """Service short codes (carrier, bank, 1069 verification, other 106 senders) by share."""
        keys = list(shares)
        p = np.array([shares[k] for k in keys], dtype=np.float64)
        which = rng.choice(len(keys), n, p=p / p.sum())
        out = np.empty(n, dtype=np.int64)
        for j, k in enumerate(keys):
            m = which == j
            out[m] = rng.choice(self.service[k], int(m.sum()))
        return out

    def random_people(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, self.plan.n_callable, n)

    # ------------------------------------------------------------------ where and with what

    def locate(self, sims: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Cell of benign SIMs at times t: a pure function of (SIM, time) so both call ends agree."""
        sims = np.asarray(sims, dtype=np.int64)
        n = self.cells.n
        kind, home, work, aux = self.kind[sims], self.home[sims], self.work[sims], self.aux[sims]
        h, dow = local_hour(t), local_dow(t)
        weekday = dow < 5
        half_hour = t // 1800
        cell = home.copy()
        errand_roll = hashed_pick(sims, half_hour, 11, 100)
        off = hashed_pick(sims, half_hour, 12, 41) - 20
        m = kind == MOBILITY["homework"]
        at_work = weekday & (h >= 9) & (h < 18)
        cell = np.where(m & at_work, work, cell)
        cell = np.where(m & ~at_work & (errand_roll < 12) & (h >= 7) & (h < 23), home + off, cell)
        m = kind == MOBILITY["home"]
        cell = np.where(m & (errand_roll < 8) & (h >= 8) & (h < 20), home + off // 2, cell)
        m = kind == MOBILITY["traveller"]
        if m.any():
            region = hashed_pick(sims, local_day(t), 13, n)
            cell = np.where(m, np.where(h >= 7, region + hashed_pick(sims, t // HOUR, 14, 30), region), cell)
        m = kind == MOBILITY["courier"]
        if m.any():
            route = aux + hashed_pick(sims, t // 1200, 15, 80)
            cell = np.where(m & (h >= 8) & (h < 20) & (dow < 6), route, cell)
        m = kind == MOBILITY["taxi"]
        if m.any():
            cell = np.where(m & (h >= 7) & (h < 23), hashed_pick(sims, t // 900, 16, n), cell)
        m = kind == MOBILITY["office"]
        cell = np.where(m, work + hashed_pick(sims, t // HOUR, 17, np.maximum(aux, 1)), cell)
        m = kind == MOBILITY["shop"]
        cell = np.where(m & (h >= 8) & (h < 22), work, cell)
        return (cell % n).astype(np.int64)

    def device(self, sims: np.ndarray, t: np.ndarray) -> np.ndarray:
        sims = np.asarray(sims, dtype=np.int64)
        return np.where(t >= self.change_t[sims], self.dev1[sims], self.dev0[sims])

    # ------------------------------------------------------------------ emitting

    def emit(self, t, rtype, result, dur, a_sim, a_num, b_sim, b_num,
             a_dev=None, a_cell=None, b_dev=None, b_cell=None) -> None:
        """One call/SMS from party a (MO) to party b (MT): a record for each party on the network.

        ``*_sim`` is -1 for an off-net party. Device and cell default to the benign mobility model.
        """
        t = np.asarray(t, dtype=np.int64)
        n = len(t)
        result = np.broadcast_to(np.asarray(result), (n,))
        dur = np.broadcast_to(np.asarray(dur), (n,))
        for sim, peer, dev, cell, direction in ((a_sim, b_num, a_dev, a_cell, MO), (b_sim, a_num, b_dev, b_cell, MT)):
            sim = np.broadcast_to(np.asarray(sim, dtype=np.int64), (n,))
            m = sim >= 0
            if not m.any():
                continue
            s, tt = sim[m], t[m]
            d = self.device(s, tt) if dev is None else np.broadcast_to(dev, (n,))[m]
            c = self.locate(s, tt) if cell is None else np.broadcast_to(cell, (n,))[m]
            pe = np.broadcast_to(np.asarray(peer, dtype=np.int64), (n,))[m]
            self.records.add(s, tt, rtype, direction, dur[m], result[m], pe, d, c)


# --------------------------------------------------------------------------- benign generation


def setup_benign(world: World) -> None:
    """Homes, workplaces, mobility kinds and devices of the benign SIMs."""
    ctx, plan, cells, devices = world.ctx, world.plan, world.cells, world.devices
    rng = ctx.rng("benign-setup")
    nb = plan.n
    world.home[:] = rng.choice(cells.n, nb, p=cells.home_weight)
    world.work[:] = rng.choice(cells.n, nb, p=cells.work_weight)
    world.aux[:] = 1
    for k, name in enumerate(BENIGN_ORDER):
        a, b = plan.blocks[name]
        if b == a:
            continue
        u = world.profile.benign[name]
        world.kind[a:b] = MOBILITY[u.mobility]
        world.dev0[a:b] = devices.new(u.device, b - a)
    # shared places per group
    for name in ("call_centre", "enterprise", "iot_meter"):
        a, b = plan.blocks[name]
        if b == a:
            continue
        g = plan.group[a:b]
        ug, inv = np.unique(g, return_inverse=True)
        site = rng.choice(cells.n, len(ug), p=cells.work_weight)
        world.work[a:b] = site[inv]
        if name == "iot_meter":
            world.home[a:b] = site[inv]
            tac = rng.choice(np.asarray(TACS["iot_module"]), len(ug))
            for j in range(len(ug)):
                m = np.flatnonzero(inv == j) + a
                world.dev0[m] = devices.new("iot_module", len(m), tac=int(tac[j]))
        if name == "call_centre":
            world.aux[a:b] = rng.integers(1, 3, len(ug))[inv]  # one or two cells per building
    a, b = plan.blocks["courier"]
    world.aux[a:b] = world.home[a:b] + rng.integers(-40, 40, b - a)  # district
    a, b = plan.blocks["shop"]
    world.work[a:b] = (world.home[a:b] + rng.integers(-10, 10, b - a)) % cells.n
    # heavy callers (a stream of their own: a profile without them draws nothing)
    p = world.profile
    if p.heavy_share > 0 and plan.n_callable:
        heavy = ctx.rng("heavy-callers")
        who = np.flatnonzero(heavy.random(plan.n_callable) < p.heavy_share)
        lo, hi = np.log(p.heavy_factor[0]), np.log(p.heavy_factor[1])
        world.call_boost[who] = np.exp(heavy.uniform(lo, hi, len(who)))
    # dual-SIM phones: two IMSIs behind one IMEI
    pairs = np.flatnonzero(plan.pair_of > np.arange(nb))
    world.dev0[plan.pair_of[pairs]] = world.dev0[pairs]
    # phone changers: new IMEI at a random moment of the world
    a, b = plan.blocks["phone_changer"]
    world.dev1[:] = world.dev0
    if b > a:
        world.dev1[a:b] = devices.new("smartphone", b - a)
        world.change_t[a:b] = rng.integers(ctx.start + HOUR, max(ctx.end - HOUR, ctx.start + 2 * HOUR), b - a)


def _contacts(world: World, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contact lists (CSR): offsets, sizes, on-net SIM (-1 = off-net) and number of each contact."""
    plan = world.plan
    nc = plan.n_callable
    size = np.zeros(nc, dtype=np.int64)
    onnet_p = np.zeros(nc)
    for k, name in enumerate(BENIGN_ORDER):
        a, b = plan.blocks[name]
        b = min(b, nc)
        if b > a:
            lo, hi = world.profile.benign[name].contacts
            size[a:b] = rng.integers(lo, hi + 1, b - a)
            onnet_p[a:b] = world.profile.benign[name].onnet_contacts
    offsets = np.concatenate([[0], np.cumsum(size)])
    owner = np.repeat(np.arange(nc), size)
    total = len(owner)
    onnet = rng.random(total) < onnet_p[owner]
    local = rng.random(total) < 0.7  # community: most contacts are "near" in the graph
    step = rng.integers(1, 300, total) * rng.choice([-1, 1], total)
    peer = np.where(local, owner + step, rng.integers(0, max(nc, 1), total)) % max(nc, 1)
    peer = np.where(peer == owner, (peer + 1) % max(nc, 1), peer)
    contact_sim = np.where(onnet & (nc > 1), peer, -1)
    contact_num = np.where(contact_sim >= 0, world.msisdn[np.maximum(contact_sim, 0)], world.offnet(rng, total))
    return offsets, size, contact_sim, contact_num


SERVICE_SHARES_PERSONAL = {"verification": 0.45, "carrier": 0.25, "bank": 0.2, "marketing": 0.1}


def generate_benign(world: World) -> None:
    ctx, plan = world.ctx, world.plan
    rng = ctx.rng("benign-traffic")
    offsets, size, contact_sim, contact_num = _contacts(world, rng)
    msisdn = world.msisdn
    for k, name in enumerate(BENIGN_ORDER):
        a, b = plan.blocks[name]
        if b == a:
            continue
        u = world.profile.benign[name]
        sims = np.arange(a, b, dtype=np.int64)
        if name == "iot_meter":
            _iot(world, rng, sims)
            continue
        act = rng.lognormal(-0.5 * u.activity_sigma**2, u.activity_sigma, len(sims))
        if name == "dual_sim":
            act[plan.pair_of[sims] < sims] *= world.profile.groups.dual_sim_second_activity

        def pick_contact(owner):
            j = offsets[owner] + np.floor(size[owner] * rng.random(len(owner)) ** 2).astype(np.int64)
            return contact_sim[j], contact_num[j]

        # personal calls and SMS to contacts (on-net contacts get the MT record)
        boost = world.call_boost[sims]
        for rtype, rate, prof in ((VOICE, u.voice_mo, "voice"), (SMS, u.sms_mo, "sms")):
            own, t = daily_events(ctx, rng, sims, rate * act * boost, prof)
            csim, cnum = pick_contact(own)
            if rtype == VOICE:
                res, dur = call_outcome(rng, len(t), u.answer, u.talk_median_s)
            else:
                res, dur = sms_outcome(rng, len(t)), 0
            world.emit(t, rtype, res, dur, own, msisdn[own], csim, cnum)
        # incoming from off-net numbers
        for rtype, rate, prof in ((VOICE, u.voice_in, "voice"), (SMS, u.sms_in, "sms")):
            own, t = daily_events(ctx, rng, sims, rate * act, prof)
            csim, cnum = pick_contact(own)
            cnum = np.where(csim >= 0, world.offnet(rng, len(t)), cnum)
            if rtype == VOICE:
                res, dur = call_outcome(rng, len(t), u.answer, u.talk_median_s)
            else:
                res, dur = sms_outcome(rng, len(t)), 0
            world.emit(t, rtype, res, dur, -1, cnum, own, msisdn[own])
        # service SMS (carrier, bank, verification codes)
        own, t = daily_events(ctx, rng, sims, u.service_sms * act, "sms")
        peers = world.service_numbers(rng, len(t), SERVICE_SHARES_PERSONAL)
        world.emit(t, SMS, sms_outcome(rng, len(t), 0.0), 0, -1, peers, own, msisdn[own])
        # data sessions
        own, t = daily_events(ctx, rng, sims, u.data * act, "data")
        world.records.add(own, t, DATA, MO, data_duration(rng, len(t), u.data_median_s), OK, -1,
                          world.device(own, t), world.locate(own, t))
        # work traffic with customers (fresh numbers: high fan-out)
        if u.work_out > 0 or u.work_in > 0:
            for out, rate in ((True, u.work_out), (False, u.work_in)):
                own, t = daily_events(ctx, rng, sims, rate * act, u.work_profile, u.work_week)
                n = len(t)
                onnet = rng.random(n) < world.profile.groups.customer_onnet
                cust_sim = np.where(onnet, world.random_people(rng, n), -1)
                cust_sim = np.where(cust_sim == own, -1, cust_sim)
                cust_num = np.where(cust_sim >= 0, msisdn[np.maximum(cust_sim, 0)], world.offnet(rng, n))
                res, dur = call_outcome(rng, n, u.work_answer, u.work_talk_s)
                if out:
                    world.emit(t, VOICE, res, dur, own, msisdn[own], cust_sim, cust_num)
                else:
                    world.emit(t, VOICE, res, dur, cust_sim, cust_num, own, msisdn[own])


def _iot(world: World, rng: np.random.Generator, sims: np.ndarray) -> None:
    """Machine-regular data sessions: one period per site, a phase per meter, seconds of jitter."""
    ctx, plan = world.ctx, world.plan
    g = plan.group[sims]
    ug, inv = np.unique(g, return_inverse=True)
    period = rng.choice(np.asarray(world.profile.groups.iot_period_s), len(ug))[inv]
    phase = rng.integers(0, period)
    span = ctx.end - ctx.start
    nmax = int(span // int(period.min())) + 2
    k = np.arange(nmax)
    t = ctx.start + phase[:, None] + k[None, :] * period[:, None]
    t = t + np.rint(rng.normal(0, world.profile.groups.iot_jitter_s, t.shape)).astype(np.int64)
    valid = (t >= ctx.start) & (t < ctx.end)
    own = np.broadcast_to(sims[:, None], t.shape)[valid]
    t = t[valid]
    dur = rng.integers(world.profile.groups.iot_session_s[0], world.profile.groups.iot_session_s[1] + 1, len(t))
    world.records.add(own, t, DATA, MO, dur, OK, -1, world.dev0[own], world.home[own])
