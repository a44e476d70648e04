"""Registration data of every SIM: brand, IMSI, MSISDN, ICCID, owner id hash, channel, activation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from detector.world.core import Ctx
from detector.world.encoding import digit_values, luhn_check_digit, mix64, unique_draws

# Brands: MNOs and virtual operators (MVNO) with the network that hosts them.
BRANDS = ("China Mobile", "China Unicom", "China Telecom", "Xiaomi Mobile", "Snail Mobile", "JD Communication")
BRAND_NET = (0, 1, 2, 1, 2, 0)  # host network: 0 China Mobile, 1 China Unicom, 2 China Telecom
NET_MNC = ("00", "01", "11")  # MNC in cell ids of the host network
# Shares of SIMs per brand. Benign: roughly national market shares, ~3% MVNO. Fraud: MVNO cards
# over-represented (assumption informed by the 170/171 number-range crackdowns; see docs).
BRAND_SHARE_BENIGN = (0.68, 0.18, 0.11, 0.012, 0.009, 0.009)
BRAND_SHARE_FRAUD = (0.55, 0.17, 0.12, 0.07, 0.05, 0.04)
# IMSI MNC per host network (China Mobile uses several MNCs)
IMSI_MNC = {0: ((0, 2, 7), (0.6, 0.25, 0.15)), 1: ((1,), (1.0,)), 2: ((11,), (1.0,))}
# MSISDN number-segment prefixes per brand
PREFIXES: dict[int, tuple[int, ...]] = {
    0: (134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 157, 158, 159, 178, 182, 183, 187, 188, 198),
    1: (130, 131, 132, 145, 155, 156, 166, 175, 176, 185, 186),
    2: (133, 149, 153, 173, 177, 180, 181, 189, 199),
    3: (170, 171, 167),
    4: (170, 171, 165),
    5: (170, 171, 162),
}
ALL_PREFIXES = np.array(sorted({p for v in PREFIXES.values() for p in v}), dtype=np.int64)
ICCID_ISSUER = {0: 898600, 1: 898601, 2: 898611}  # ICCID body prefix per host network
ICCID_BODY_DIGITS = {0: 19, 1: 19, 2: 18}  # + Luhn digit = 20, 20, 19 digits


def random_msisdn(rng: np.random.Generator, n: int, prefixes: np.ndarray | None = None) -> np.ndarray:
    """E.164 digits ``86`` + 3-digit segment + 8 digits (13 digits)."""
    p = rng.choice(ALL_PREFIXES if prefixes is None else prefixes, n)
    return 86 * 10**11 + p * 10**8 + rng.integers(0, 10**8, n)


@dataclass
class Registration:
    brand: np.ndarray
    net: np.ndarray
    imsi: np.ndarray
    msisdn: np.ndarray
    iccid_body: np.ndarray  # int64, 18 or 19 digits (a 20-digit ICCID does not fit in 64 bits)
    iccid_check: np.ndarray  # Luhn check digit
    channel: np.ndarray
    id_hash: np.ndarray  # S32


def register(
    ctx: Ctx,
    fraud: np.ndarray,
    owner: np.ndarray,
    owner_is_company: np.ndarray,
    channel_req: np.ndarray,
    iccid_run: np.ndarray,
    n_channels: int,
    complicit: np.ndarray,
) -> Registration:
    """Draw registration data. ``channel_req``: >=0 fixed, -1 general distribution, <=-2 one per group."""
    rng = ctx.rng("registration")
    n = len(fraud)
    brand = np.where(
        fraud,
        rng.choice(len(BRANDS), n, p=BRAND_SHARE_FRAUD),
        rng.choice(len(BRANDS), n, p=BRAND_SHARE_BENIGN),
    ).astype(np.int8)
    # a consecutive-ICCID run shares one brand (one batch of cards)
    runs = iccid_run >= 0
    if runs.any():
        ur, first = np.unique(iccid_run[runs], return_index=True)
        idx = np.flatnonzero(runs)
        brand[idx] = brand[idx[first]][np.searchsorted(ur, iccid_run[idx])]
    net = np.asarray(BRAND_NET, dtype=np.int8)[brand]

    mnc = np.zeros(n, dtype=np.int64)
    for k, (mncs, p) in IMSI_MNC.items():
        m = net == k
        mnc[m] = rng.choice(np.asarray(mncs), int(m.sum()), p=p)
    msin = unique_draws(rng, n, lambda r, k: r.integers(0, 10**10, k))
    imsi = 460 * 10**12 + mnc * 10**10 + msin

    msisdn = np.empty(n, dtype=np.int64)
    for b in range(len(BRANDS)):
        m = brand == b
        msisdn[m] = random_msisdn(rng, int(m.sum()), np.asarray(PREFIXES[b]))
    for _ in range(100):
        _, first = np.unique(msisdn, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        for b in np.unique(brand[dup]):
            m = dup & (brand == b)
            msisdn[m] = random_msisdn(rng, int(m.sum()), np.asarray(PREFIXES[int(b)]))

    # ICCID: issuer prefix + serial; runs get consecutive serials
    body_digits = np.asarray([ICCID_BODY_DIGITS[int(k)] for k in range(3)])[net]
    serial_digits = body_digits - 6
    high = 10**serial_digits - 10**6  # room for runs of consecutive serials
    serial = rng.integers(0, high)
    for _ in range(100):
        _, first = np.unique(serial * 10 + net, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        serial[dup] = rng.integers(0, high[dup])
    if runs.any():
        for r in np.unique(iccid_run[runs]):
            m = np.flatnonzero(iccid_run == r)
            serial[m] = serial[m[0]] + np.arange(len(m))
    issuer = np.asarray([ICCID_ISSUER[k] for k in range(3)], dtype=np.int64)[net]
    body = issuer * 10**serial_digits + serial
    check = np.empty(n, dtype=np.int64)
    for d in (18, 19):
        m = body_digits == d
        if m.any():
            check[m] = luhn_check_digit(digit_values(body[m], d))

    # channel: Zipf-like popularity of dealer codes; fraud cards concentrate on complicit channels
    pop = 1.0 / np.arange(1, n_channels + 1) ** 0.8
    channel = rng.choice(n_channels, n, p=pop / pop.sum())
    fraud_complicit = fraud & (rng.random(n) < 0.6)
    channel[fraud_complicit] = rng.choice(complicit, int(fraud_complicit.sum()))
    fixed = channel_req >= 0
    channel[fixed] = channel_req[fixed]
    grouped = channel_req <= -2
    if grouped.any():
        ug, inv = np.unique(channel_req[grouped], return_inverse=True)
        channel[grouped] = rng.choice(n_channels, len(ug))[inv]

    id_hash = owner_hashes(ctx, owner, owner_is_company)
    return Registration(brand, net, imsi, msisdn, body, check, channel, id_hash)


_REGIONS = np.array([110101, 310104, 440106, 440304, 510107, 330106, 320102, 420106, 500103, 610113,
                     350203, 370202, 410105, 430104, 450103, 530102], dtype=np.int64)
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = "10X98765432"


def owner_hashes(ctx: Ctx, owner: np.ndarray, is_company: np.ndarray) -> np.ndarray:
    """Hex of a keyed BLAKE2b hash of a synthetic ID number per owner (the number is never written).

    Persons get an 18-character resident-ID-shaped number (region, birth date, sequence, ISO 7064
    check character); companies a unified-social-credit-code-shaped string.
    """
    salt = hashlib.blake2b(f"goipwatch-world-{ctx.seed}".encode(), digest_size=16).digest()
    uo, first, inv = np.unique(owner, return_index=True, return_inverse=True)
    h = mix64(uo, ctx.seed, 99)
    region = _REGIONS[(h % np.uint64(len(_REGIONS))).astype(np.int64)]
    birth_day = ((h >> np.uint64(8)) % np.uint64(365 * 60)).astype(np.int64)  # 1950..2010
    birth = (np.datetime64("1950-01-01") + birth_day.astype("timedelta64[D]")).astype("datetime64[D]")
    ymd = birth.astype(str)
    seq = ((h >> np.uint64(32)) % np.uint64(1000)).astype(np.int64)
    body17 = [f"{r}{d[0:4]}{d[5:7]}{d[8:10]}{s:03d}" for r, d, s in zip(region.tolist(), ymd.tolist(), seq.tolist())]
    digits = np.frombuffer("".join(body17).encode(), dtype=np.uint8).reshape(len(uo), 17) - 48
    check = (digits.astype(np.int64) * _ID_WEIGHTS).sum(axis=1) % 11
    comp = is_company[first]
    hashes = []
    for b, c, k, co in zip(body17, check.tolist(), uo.tolist(), comp.tolist()):
        ident = f"91{k:016d}" if co else b + _ID_CHECK[c]
        hashes.append(hashlib.blake2b(ident.encode(), digest_size=16, key=salt).hexdigest().encode())
    return np.array(hashes, dtype="S32")[inv]
