"""Hand-built cases for the rig rules: registrations, people's days, power-on bursts, and a
pipeline with the rig book to run them through."""

import numpy as np

from detector import model as model_mod
from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.records import RegistrationBatch
from detector.rigs.book import RigBook
from detector.rigs.policy import RigPolicy
from detector.scoring import Policy, Scorer

HOUR = 3600


def registrations(imsis, id_hash, first_iccid, channel, activated, step_s=120):
    n = len(imsis)
    iccid = [str(first_iccid + i) + "0" for i in range(n)]  # body runs; last digit stands for Luhn
    return RegistrationBatch(
        imsi=np.array(imsis, np.int64), msisdn=np.array(imsis, np.int64) % 10**11 + 8613000000000,
        iccid=np.array(iccid, object), activated_at=activated + step_s * np.arange(n),
        id_hash=np.array([id_hash] * n, object), channel=np.array([channel] * n, object),
        carrier=np.array(["China Mobile"] * n, object), line=np.arange(n))


def new_pipe(model_path):
    engine = FeatureEngine()
    scorer = Scorer(model_mod.load(model_path), Policy())
    return Pipeline(engine, scorer, 900, rigs=RigBook(engine, scorer, RigPolicy()))


def run(pipe, batch):
    flags = pipe.feed(batch).flags + pipe.score_dirty()
    return {f.imsi: f for f in flags}


def person_day(sim, dev, day0, cell, rng, contacts, called_back=True):
    """A human-looking day: calls to a few repeated contacts, calls back (a person's; a box
    imitating one calls out instead: its victims do not call back), data sessions."""
    rows = []
    for k in range(12):
        t = day0 + 8 * HOUR + int(rng.integers(0, 10 * HOUR))
        rows.append((t, sim, dev, cell, int(rng.choice(contacts)), int(called_back and k % 3 == 0),
                     k % 4 == 3 and 2 or 0, 0, 60))
    return rows


def box_day(sim, dev, day0, cell, rng, first_victim):
    """A box imitating a person's day: the hours and data sessions of :func:`person_day`, but
    each call terminates bypass traffic on a number of its own (a victim, never called again
    and not calling back), from ``first_victim`` on."""
    rows = []
    for k in range(12):
        t = day0 + 8 * HOUR + int(rng.integers(0, 10 * HOUR))
        rows.append((t, sim, dev, cell, first_victim + k, 0, k % 4 == 3 and 2 or 0, 0, 60))
    return rows


def power_on(sims, devs, t0, cell):
    from detector.records import RecordType
    return [(t0 + 2 * i, s, d, cell, 0, 0, RecordType.ATTACH, 6, 0) for i, (s, d) in enumerate(zip(sims, devs))]
