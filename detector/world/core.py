"""Shared machinery of the simulator: time, randomness, cells, devices, record accumulation.

Codes used in the in-memory record columns (written out as text by ``simulate.py``):
record type VOICE/SMS/DATA, direction MO/MT, result codes in ``RESULTS``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from detector.world.encoding import mix64, with_luhn

VOICE, SMS, DATA = 0, 1, 2
RECORD_TYPES = ("voice", "sms", "data")
MO, MT = 0, 1
DIRECTIONS = ("MO", "MT")
ANSWERED, UNANSWERED, BUSY, FAILED, DELIVERED, SMS_FAILED, OK = range(7)
RESULTS = ("answered", "unanswered", "busy", "failed", "delivered", "failed", "ok")

LOCAL_OFFSET_S = 8 * 3600  # Asia/Shanghai, UTC+8, no daylight saving
DAY = 86400
HOUR = 3600

# Diurnal profiles: relative weight of each local hour 0..23. Shape follows the usual published
# mobile-traffic day curves (quiet 01-06, voice peaks late morning and early evening, data peaks in
# the evening). They are modelling assumptions, not fitted to a data set.
HOUR_PROFILES: dict[str, tuple[float, ...]] = {
    "voice": (0.3, 0.15, 0.1, 0.08, 0.08, 0.2, 0.6, 1.5, 3, 4.5, 5, 5, 4, 4, 4.5, 4.8, 5, 5.2, 5, 5, 4.8, 4, 2.5, 1.2),
    "sms": (0.5, 0.2, 0.1, 0.1, 0.1, 0.2, 0.6, 1.5, 3, 4, 4.5, 4.5, 4.5, 4, 4, 4.2, 4.5, 4.5, 4.5, 5, 5, 4.5, 3, 1.5),
    "data": (2, 1, 0.5, 0.3, 0.3, 0.5, 1.5, 3, 4, 4, 4, 4.5, 5.5, 4.5, 4, 4, 4, 4.5, 5, 5.5, 6, 6.5, 5.5, 4),
    "office": (0, 0, 0, 0, 0, 0, 0, 0, 1, 5, 5, 5, 1, 3, 5, 5, 5, 5, 1, 0, 0, 0, 0, 0),
    "courier": (0, 0, 0, 0, 0, 0, 0.2, 1, 3, 5, 5, 4.5, 4, 4, 4.5, 5, 5, 4.5, 3.5, 2, 1, 0.3, 0, 0),
    "taxi": (0.5, 0.3, 0.2, 0.1, 0.1, 0.3, 1, 3, 4, 3, 3, 3, 3, 3, 3, 3, 3.5, 4, 4.5, 4, 3.5, 3, 2, 1),
    "shop": (0, 0, 0, 0, 0, 0, 0, 0.3, 1, 3, 4, 4, 4, 3.5, 3.5, 3.5, 4, 4, 4, 3.5, 3, 2, 0.5, 0),
    "flat": (1.0,) * 24,
    # Scam call centres abroad keep office hours; gateway traffic follows them (assumption).
    "scam": (0.1, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 2, 5, 5, 5, 3, 4, 5, 5, 5, 5, 4, 4, 4, 3, 1, 0.3),
    # Verification-code traffic: app sign-ups happen all day and late into the night.
    "otp": (2, 1.5, 1, 0.8, 0.6, 0.6, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4.5, 4.5, 4.5, 4, 3),
}

# Weekly factor Monday..Sunday applied to daily event counts.
WEEK_PROFILES: dict[str, tuple[float, ...]] = {
    "personal": (1, 1, 1, 1, 1.05, 0.9, 0.85),
    "office": (1, 1, 1, 1, 1, 0.3, 0.1),
    "courier": (1, 1, 1, 1, 1, 0.9, 0.7),
    "flat": (1, 1, 1, 1, 1, 1, 1),
}


def local_hour(t: np.ndarray) -> np.ndarray:
    return ((t + LOCAL_OFFSET_S) // HOUR) % 24


def local_dow(t: np.ndarray) -> np.ndarray:
    """Day of week in local time, Monday = 0 (1970-01-01 was a Thursday)."""
    return ((t + LOCAL_OFFSET_S) // DAY + 3) % 7


def local_day(t: np.ndarray) -> np.ndarray:
    return (t + LOCAL_OFFSET_S) // DAY


@dataclass
class Ctx:
    """World-wide context: seed, span and named random streams."""

    seed: int
    start: int  # epoch seconds, inclusive
    end: int  # epoch seconds, exclusive

    def rng(self, name: str) -> np.random.Generator:
        """An independent, reproducible stream per component (adding a component leaves others alone)."""
        ss = np.random.SeedSequence([self.seed, zlib.crc32(name.encode())])
        return np.random.Generator(np.random.PCG64(ss))

    @property
    def local_days(self) -> np.ndarray:
        """Local-day numbers overlapping the world span."""
        return np.arange(local_day(np.int64(self.start)), local_day(np.int64(self.end - 1)) + 1)


# --------------------------------------------------------------------------- cells


@dataclass
class Cells:
    """Cell table. Index i is a location; nearby indices are nearby cells (LAC = block of 64)."""

    n: int
    lac: np.ndarray
    ci: np.ndarray
    home_weight: np.ndarray  # residential density
    work_weight: np.ndarray  # business density

    @classmethod
    def build(cls, rng: np.random.Generator, n: int) -> Cells:
        idx = np.arange(n, dtype=np.int64)
        lac = int(rng.integers(4096, 40000)) + idx // 64
        enb0 = int(rng.integers(100_000, 800_000))
        ci = (enb0 + idx // 3) * 256 + idx % 3 + 1
        home_w = rng.lognormal(0, 1.0, n)
        work_w = rng.lognormal(0, 1.6, n)
        return cls(n, lac, ci, home_w / home_w.sum(), work_w / work_w.sum())

    def near(self, base: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return (np.asarray(base, dtype=np.int64) + offset) % self.n


# --------------------------------------------------------------------------- devices

# Type allocation codes (first 8 IMEI digits). Realistic-looking, synthetic: they are not claimed to
# be real allocations of a given vendor.
TACS: dict[str, tuple[int, ...]] = {
    "smartphone": (
        86891204, 86769503, 86475004, 86032805, 86119706, 86560707, 86238009, 86780310,
        35332811, 35467812, 35291613, 35698914, 35201515, 35876716, 35403917, 35955218,
        86614519, 86917620, 86042521, 86383722, 35114623, 35672824, 86256925, 86826026,
    ),
    "feature": (35867331, 35210432, 86010533),
    "iot_module": (86104540, 86673541, 86358142, 86966843, 35591044, 35987145),
    "goip": (86289250, 86289351, 35916052, 35916153, 86145454),
}


class Devices:
    """Device (IMEI) table. Serial numbers per TAC are a bijection of a counter, so never repeat."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._chunks: list[np.ndarray] = []
        self._kind_chunks: list[np.ndarray] = []
        self._count = 0
        self._next: dict[int, int] = {}
        self._affine: dict[int, tuple[int, int]] = {}

    def new(self, kind: str, n: int, tac: int | None = None) -> np.ndarray:
        """Allocate ``n`` devices of ``kind`` (one shared TAC if ``tac`` given); returns device indices."""
        if n == 0:
            return np.empty(0, dtype=np.int64)
        tacs = np.asarray(TACS[kind], dtype=np.int64)
        chosen = np.full(n, tac, dtype=np.int64) if tac is not None else self._rng.choice(tacs, n)
        serial = np.empty(n, dtype=np.int64)
        for t in np.unique(chosen):
            sel = np.flatnonzero(chosen == t)
            t = int(t)
            if t not in self._affine:
                a = int(self._rng.integers(1, 100_000)) * 10 + int(self._rng.choice([1, 3, 7, 9]))
                self._affine[t] = (a % 1_000_000, int(self._rng.integers(0, 1_000_000)))
                self._next[t] = 0
            a, b = self._affine[t]
            k = np.arange(self._next[t], self._next[t] + len(sel), dtype=np.int64)
            if k[-1] >= 1_000_000:
                raise RuntimeError(f"TAC {t} serial space exhausted")
            self._next[t] += len(sel)
            serial[sel] = (a * k + b) % 1_000_000
        imei = with_luhn((chosen * 1_000_000 + serial).astype(np.uint64), 14).astype(np.int64)
        idx = np.arange(self._count, self._count + n, dtype=np.int64)
        self._chunks.append(imei)
        self._count += n
        return idx

    @property
    def imei(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.empty(0, dtype=np.int64)


# --------------------------------------------------------------------------- records


@dataclass
class Records:
    """Accumulates record columns in generation order (which fixes the order of ties)."""

    chunks: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    def add(self, sim, t, rtype, direction, dur, result, peer, dev, cell) -> None:
        t = np.asarray(t, dtype=np.int64)
        n = len(t)
        if n == 0:
            return

        def col(v, dtype):
            v = np.asarray(v, dtype=dtype)
            return np.broadcast_to(v, (n,)).copy() if v.ndim == 0 else v

        self.chunks.append(
            (
                col(sim, np.int32),
                t,
                col(rtype, np.int8),
                col(direction, np.int8),
                col(dur, np.int32),
                col(result, np.int8),
                col(peer, np.int64),
                col(dev, np.int32),
                col(cell, np.int32),
            )
        )

    def concat(self) -> dict[str, np.ndarray]:
        names = ("sim", "t", "rtype", "direction", "dur", "result", "peer", "dev", "cell")
        if not self.chunks:
            dtypes = (np.int32, np.int64, np.int8, np.int8, np.int32, np.int8, np.int64, np.int32, np.int32)
            return {k: np.empty(0, dtype=d) for k, d in zip(names, dtypes)}
        out = {}
        for i, k in enumerate(names):
            out[k] = np.concatenate([c[i] for c in self.chunks])
        self.chunks.clear()
        return out


# --------------------------------------------------------------------------- event timing


def daily_events(
    ctx: Ctx,
    rng: np.random.Generator,
    owners: np.ndarray,
    rate_per_day: np.ndarray | float,
    hour_profile: str,
    week_profile: str = "personal",
    not_before: np.ndarray | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson event times per owner and local day, following a diurnal and weekly profile.

    Returns (owner, t) for events inside the world span (and at or after ``not_before``).
    """
    owners = np.asarray(owners, dtype=np.int64)
    rate = np.broadcast_to(np.asarray(rate_per_day, dtype=np.float64), owners.shape)
    days = ctx.local_days
    dow = (days + 3) % 7
    wf = np.asarray(WEEK_PROFILES[week_profile])[dow]
    counts = rng.poisson(rate[:, None] * wf[None, :])
    flat = counts.ravel()
    ev_owner_pos = np.repeat(np.repeat(np.arange(len(owners)), len(days)), flat)
    ev_day = np.repeat(np.tile(days, len(owners)), flat)
    n = len(ev_day)
    prof = np.asarray(HOUR_PROFILES[hour_profile], dtype=np.float64)
    cdf = np.cumsum(prof) / prof.sum()
    hour = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), 23)
    sec = rng.integers(0, HOUR, n)
    t = ev_day * DAY - LOCAL_OFFSET_S + hour * HOUR + sec
    keep = (t >= ctx.start) & (t < ctx.end)
    if not_before is not None:
        nb = np.broadcast_to(np.asarray(not_before, dtype=np.int64), owners.shape)
        keep &= t >= nb[ev_owner_pos]
    return owners[ev_owner_pos[keep]], t[keep]


def call_outcome(
    rng: np.random.Generator, n: int, answer: np.ndarray | float, talk_median_s: np.ndarray | float, talk_sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(result, duration_s) of voice calls. Unanswered calls split unanswered/busy/failed 60/25/15."""
    u = rng.random(n)
    answer = np.broadcast_to(np.asarray(answer, dtype=np.float64), (n,))
    rest = (u - answer) / np.maximum(1 - answer, 1e-9)
    result = np.where(
        u < answer, ANSWERED, np.where(rest < 0.6, UNANSWERED, np.where(rest < 0.85, BUSY, FAILED))
    ).astype(np.int8)
    med = np.broadcast_to(np.asarray(talk_median_s, dtype=np.float64), (n,))
    talk = np.clip(np.rint(med * rng.lognormal(0, talk_sigma, n)), 1, 7200).astype(np.int32)
    dur = np.where(result == ANSWERED, talk, 0).astype(np.int32)
    return result, dur


def sms_outcome(rng: np.random.Generator, n: int, fail: float = 0.02) -> np.ndarray:
    return np.where(rng.random(n) < fail, SMS_FAILED, DELIVERED).astype(np.int8)


def data_duration(rng: np.random.Generator, n: int, median_s: float, sigma: float = 1.2) -> np.ndarray:
    return np.clip(np.rint(median_s * rng.lognormal(0, sigma, n)), 1, 6 * HOUR).astype(np.int32)


def hashed_pick(sim: np.ndarray, bucket: np.ndarray, salt: int, k: np.ndarray | int) -> np.ndarray:
    """Deterministic pick in [0, k) from (sim, time bucket): same answer for both ends of a call."""
    return (mix64(sim, bucket, salt) % np.asarray(k, dtype=np.uint64)).astype(np.int64)
