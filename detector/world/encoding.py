"""Identifiers (IMSI, MSISDN, IMEI, ICCID) and vectorised CSV formatting for the simulated world.

Every column is turned into a ``uint8`` matrix of ASCII bytes, one row per CSV row, padded with
NUL bytes. Columns are joined with commas, a newline is appended and the NUL padding is dropped in
one boolean-mask pass, so a million rows are formatted without a Python loop per row.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

NUL = 0
_COMMA = 44
_NEWLINE = 10


# --------------------------------------------------------------------------- hashing

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(*parts: np.ndarray | int) -> np.ndarray:
    """Deterministic splitmix64-style hash of integer arrays (broadcast), as uint64.

    Used where a value must be a pure function of (SIM, time bucket), e.g. which cell a person is
    in at 14:30, so that the caller's and the callee's records agree without storing state.
    """
    h = np.zeros(np.broadcast(*[np.asarray(p) for p in parts]).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            h = h ^ np.asarray(p).astype(np.uint64)
            h = h + _GOLDEN
            h = (h ^ (h >> np.uint64(30))) * _M1
            h = (h ^ (h >> np.uint64(27))) * _M2
            h = h ^ (h >> np.uint64(31))
    return h


# --------------------------------------------------------------------------- digits and Luhn


def digit_values(x: np.ndarray, width: int) -> np.ndarray:
    """(n, width) matrix of decimal digit values (0-9), most significant first, zero-padded."""
    x = np.asarray(x, dtype=np.uint64)
    powers = np.array([10**k for k in range(width - 1, -1, -1)], dtype=np.uint64)
    return ((x[:, None] // powers[None, :]) % np.uint64(10)).astype(np.uint8)


def fixed_digits(x: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits, fixed width with leading zeros."""
    return digit_values(x, width) + np.uint8(48)


def var_digits(x: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits without leading zeros (NUL-padded); negative values give an empty field."""
    x = np.asarray(x, dtype=np.int64)
    empty = x < 0
    xv = np.where(empty, 0, x)
    out = fixed_digits(xv, width)
    ndig = np.ones(len(xv), dtype=np.int64)
    for k in range(1, width):
        ndig += xv >= 10**k
    lead = np.arange(width)[None, :] < (width - ndig)[:, None]
    out[lead] = NUL
    out[empty] = NUL
    return out


def luhn_check_digit(payload: np.ndarray) -> np.ndarray:
    """Luhn check digit for each row of a (n, L) digit-value matrix (most significant first)."""
    d = payload.astype(np.int64)
    length = d.shape[1]
    doubled = ((length - 1 - np.arange(length)) % 2) == 0  # rightmost payload digit is doubled
    v = d.copy()
    dv = v[:, doubled] * 2
    v[:, doubled] = np.where(dv > 9, dv - 9, dv)
    return ((10 - v.sum(axis=1) % 10) % 10).astype(np.int64)


def luhn_valid(number: str) -> bool:
    """Scalar Luhn check of a full number string (payload + check digit); used by tests."""
    if not number.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        v = int(ch)
        if i % 2 == 1:
            v *= 2
            if v > 9:
                v -= 9
        total += v
    return total % 10 == 0


def with_luhn(payload: np.ndarray, width: int) -> np.ndarray:
    """Append a Luhn check digit to integer payloads of ``width`` digits; returns int64/uint64 numbers."""
    payload = np.asarray(payload, dtype=np.uint64)
    check = luhn_check_digit(digit_values(payload, width)).astype(np.uint64)
    return payload * np.uint64(10) + check


# --------------------------------------------------------------------------- strings and time


def str_table(values: list[str] | tuple[str, ...]) -> np.ndarray:
    """(k, w) byte matrix of category strings, NUL-padded, for gathering by code."""
    arr = np.array([v.encode("ascii") for v in values] or [b""], dtype="S")
    width = max(arr.dtype.itemsize, 1)
    return np.frombuffer(arr.astype(f"S{width}").tobytes(), dtype=np.uint8).reshape(len(arr), width)


def bytes_column(arr: np.ndarray) -> np.ndarray:
    """View an ``S`` dtype array as a (n, itemsize) byte matrix."""
    arr = np.ascontiguousarray(arr)
    width = arr.dtype.itemsize
    return arr.view(np.uint8).reshape(len(arr), width)


def iso_seconds(t: np.ndarray) -> np.ndarray:
    """(n, 20) ASCII matrix of ISO 8601 UTC timestamps ``YYYY-MM-DDTHH:MM:SSZ`` from epoch seconds."""
    t = np.asarray(t, dtype=np.int64)
    n = len(t)
    out = np.empty((n, 20), dtype=np.uint8)
    if n == 0:
        return out
    day = t // 86400
    d0, d1 = int(day.min()), int(day.max())
    days = [
        (dt.datetime(1970, 1, 1) + dt.timedelta(days=d)).strftime("%Y-%m-%dT").encode()
        for d in range(d0, d1 + 1)
    ]
    table = np.frombuffer(b"".join(days), dtype=np.uint8).reshape(-1, 11)
    out[:, :11] = table[day - d0]
    sod = t - day * 86400
    out[:, 11:13] = fixed_digits(sod // 3600, 2)
    out[:, 13] = ord(":")
    out[:, 14:16] = fixed_digits((sod // 60) % 60, 2)
    out[:, 16] = ord(":")
    out[:, 17:19] = fixed_digits(sod % 60, 2)
    out[:, 19] = ord("Z")
    return out


def iso_scalar(t: int) -> str:
    return dt.datetime.fromtimestamp(int(t), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def csv_rows(columns: list[np.ndarray]) -> bytes:
    """Join byte-matrix columns into CSV rows; NUL padding is dropped."""
    n = columns[0].shape[0]
    parts: list[np.ndarray] = []
    for i, col in enumerate(columns):
        if i:
            parts.append(np.full((n, 1), _COMMA, dtype=np.uint8))
        parts.append(col)
    parts.append(np.full((n, 1), _NEWLINE, dtype=np.uint8))
    m = np.concatenate(parts, axis=1)
    return m[m != NUL].tobytes()


# --------------------------------------------------------------------------- unique draws


def unique_draws(rng: np.random.Generator, n: int, draw, taken: np.ndarray | None = None) -> np.ndarray:
    """``n`` distinct values from ``draw(rng, k)``, also distinct from the sorted array ``taken``."""
    out = draw(rng, n).astype(np.int64)
    for _ in range(100):
        bad = np.zeros(n, dtype=bool)
        _, first = np.unique(out, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        bad |= dup
        if taken is not None and len(taken):
            pos = np.searchsorted(taken, out)
            pos = np.minimum(pos, len(taken) - 1)
            bad |= taken[pos] == out
        k = int(bad.sum())
        if k == 0:
            return out
        out[bad] = draw(rng, k)
    raise RuntimeError("could not draw unique identifiers; identifier space too small")
