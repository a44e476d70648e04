"""Subscriber and network identifiers: parse, validate, normalise.

Scalar functions serve records and APIs; the ``*_array`` functions do the same
checks over whole columns so that feeds are validated without a per-row loop.
Every parser raises :class:`InvalidIdentifier` naming the field and the value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# MCCs whose networks use 3-digit MNCs (ITU-T E.212 list; the rest use 2 digits).
_THREE_DIGIT_MNC_MCCS = frozenset(
    {302, 310, 311, 312, 313, 314, 315, 316, 334, 338, 342, 344, 346, 348, 354, 356, 358,
     360, 365, 376, 405, 708, 722, 732, 750}
)

# Brands of the Chinese MNOs by MCC-MNC; used when a registration has no carrier column.
CARRIER_BY_PLMN = {
    "460-00": "China Mobile", "460-02": "China Mobile", "460-04": "China Mobile",
    "460-07": "China Mobile", "460-08": "China Mobile",
    "460-01": "China Unicom", "460-06": "China Unicom", "460-09": "China Unicom",
    "460-03": "China Telecom", "460-05": "China Telecom", "460-11": "China Telecom",
    "460-15": "China Broadnet",
}

_DIGITS = re.compile(r"\d+")
_CELL = re.compile(r"(\d{3})-(\d{2,3})-(\d{1,5})-(\d{1,9})")


class InvalidIdentifier(ValueError):
    """An identifier that does not have the form its field requires."""

    def __init__(self, field: str, value: object, why: str) -> None:
        super().__init__(f"invalid {field} {value!r}: {why}")
        self.field = field
        self.value = value
        self.why = why


def mnc_length(mcc: int) -> int:
    return 3 if mcc in _THREE_DIGIT_MNC_MCCS else 2


@dataclass(frozen=True, slots=True)
class Imsi:
    digits: str
    mcc: str
    mnc: str

    @property
    def plmn(self) -> str:
        return f"{self.mcc}-{self.mnc}"

    @property
    def msin(self) -> str:
        return self.digits[len(self.mcc) + len(self.mnc):]


def parse_imsi(value: str) -> Imsi:
    v = value.strip()
    if not (_DIGITS.fullmatch(v) and len(v) == 15):
        raise InvalidIdentifier("imsi", value, "must be 15 digits")
    mcc = v[:3]
    mnc = v[3:3 + mnc_length(int(mcc))]
    return Imsi(v, mcc, mnc)


def carrier_for_imsi(imsi: str) -> str:
    """The MNO brand of an IMSI's home network, or its PLMN when the brand is unknown; for a
    pseudo IMSI (:func:`pseudo_imsi`), which names no network, :data:`PSEUDO_CARRIER`."""
    parsed = parse_imsi(imsi)
    if parsed.mcc == PSEUDO_MCC:
        return PSEUDO_CARRIER
    return CARRIER_BY_PLMN.get(parsed.plmn, parsed.plmn)


# ---- pseudo IMSIs -------------------------------------------------------------------------
#
# A feed that keys its subscribers by an MSISDN or an anonymised id, not an IMSI, still needs
# one key a subscriber: the feature state, the store and every output are keyed by IMSI. A
# pseudo IMSI is MCC 999 followed by 12 digits of a keyed hash (BLAKE2b) of the key's kind and
# value: the same kind and value give the same pseudo IMSI in every feed (CDRs and
# registrations), on every machine and in every release (the key below never changes). MCC 999
# is the ITU's code for private networks: no public network's SIM has it, so an IMSI beginning
# 999 is a pseudo one (a private network's own SIMs aside). 12 digits hold 10^12 values: among
# n keys, about n^2 / (2 * 10^12) pairs share one (some 50 among 10 million), so a feed that has
# IMSIs should give them.

PSEUDO_MCC = "999"
PSEUDO_KINDS = ("msisdn", "id")
PSEUDO_CARRIER = "unknown (pseudo IMSI)"
_PSEUDO_KEY = b"goipwatch pseudo-IMSI v1"


def pseudo_imsi(kind: str, value: str) -> str:
    """The pseudo IMSI of a subscriber keyed by ``kind`` (``msisdn``: its E.164 digits as a
    batch holds them, without '+' or leading zeros; ``id``: the feed's id text, trimmed)."""
    if kind not in PSEUDO_KINDS:
        raise ValueError(f"pseudo IMSI of unknown key kind {kind!r} (one of {PSEUDO_KINDS})")
    digest = hashlib.blake2b(f"{kind}:{value}".encode(), key=_PSEUDO_KEY, digest_size=8).digest()
    return f"{PSEUDO_MCC}{int.from_bytes(digest, 'big') % 10**12:012d}"


def pseudo_imsi_array(kind: str, values: Sequence[str]) -> np.ndarray:
    """:func:`pseudo_imsi` of each value, as int64 numbers (a batch's IMSI column)."""
    return np.array([int(pseudo_imsi(kind, v)) for v in values], np.int64)


def is_pseudo_imsi(imsi: str | int | np.integer) -> bool:
    """Whether an IMSI (its digits, or the number a batch holds) is a pseudo one."""
    text = imsi if isinstance(imsi, str) else imsi_text(imsi)
    return text.strip().startswith(PSEUDO_MCC) and len(text.strip()) == IMSI_DIGITS


def normalise_msisdn(value: str) -> str:
    """E.164 digits without '+' or international prefix; separators are dropped."""
    v = value.strip().replace(" ", "").replace("-", "")
    if v.startswith("+"):
        v = v[1:]
    elif v.startswith("00"):
        v = v[2:]
    if not _DIGITS.fullmatch(v) or not 3 <= len(v) <= 15:
        raise InvalidIdentifier("msisdn", value, "must be 3 to 15 digits (E.164)")
    return v


# ---- stored numbers back to text ----------------------------------------------------------
#
# Batches, feature state and the store hold IMSIs and IMEIs as numbers (int64, bigint); a
# number has no leading zeros, and both have them: test and private PLMNs (001-01, 999-xx)
# and TACs beginning with 0 (01xxxxxx). These are the one way back to their text; never
# ``str(int(n))``.

IMSI_DIGITS = 15
IMEI_DIGITS = 15


def _fixed(field: str, n: int, width: int) -> str:
    text = str(n)     # a lookup answer spells dozens of these: str and zfill are the cheapest
    if not (0 < n and len(text) <= width):
        raise InvalidIdentifier(field, n, f"a stored {field} must be 1 to {width} digits")
    return text.zfill(width)


def imsi_text(n: int | np.integer | str) -> str:
    """The 15 digits of an IMSI held as a number (``1010000000001`` is ``001010000000001``)."""
    return _fixed("imsi", int(n), IMSI_DIGITS)


def imei_text(n: int | np.integer | str) -> str:
    """The 15 digits (check digit included) of an IMEI held as a number."""
    return _fixed("imei", int(n), IMEI_DIGITS)


def tac_text(n: int | np.integer | str) -> str:
    """The 8 digits of a TAC (an IMEI's first 8) held as a number."""
    return _fixed("tac", int(n), 8)


def msisdn_text(n: int | np.integer | str) -> str:
    """An MSISDN held as a number: E.164 digits begin with a country code, never with 0, so
    the number's digits are the MSISDN's (a national-format number read with its trunk 0
    would lose it: feeds carry E.164). 0 is no MSISDN (a feed keyed by another id may have
    none), spelled as the empty text."""
    return str(int(n)) if int(n) else ""


def imsi_texts(numbers: np.ndarray) -> list[str]:
    """:func:`imsi_text` over a column."""
    return [imsi_text(n) for n in np.asarray(numbers, np.int64).tolist()]


def imei_texts(numbers: np.ndarray) -> list[str]:
    """:func:`imei_text` over a column."""
    return [imei_text(n) for n in np.asarray(numbers, np.int64).tolist()]


def luhn_check_digit(body: str) -> int:
    """The Luhn check digit that completes ``body`` (used by IMEIs and ICCIDs)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled positions, counted from the right of the body
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


@dataclass(frozen=True, slots=True)
class Imei:
    imei: str            # 15 digits, check digit included
    sv: str | None = None  # software version when it came from an IMEISV

    @property
    def tac(self) -> str:
        return self.imei[:8]


def parse_imei(value: str) -> Imei:
    """IMEI (14 digits: check digit computed; 15: check digit verified) or IMEISV (16 digits)."""
    v = value.strip()
    if not _DIGITS.fullmatch(v or "x"):
        raise InvalidIdentifier("imei", value, "must be digits")
    if len(v) == 14:
        return Imei(v + str(luhn_check_digit(v)))
    if len(v) == 15:
        if int(v[14]) != luhn_check_digit(v[:14]):
            raise InvalidIdentifier("imei", value, "Luhn check digit does not match")
        return Imei(v)
    if len(v) == 16:  # IMEISV: 14-digit IMEI body + 2-digit software version, no check digit
        return Imei(v[:14] + str(luhn_check_digit(v[:14])), sv=v[14:])
    raise InvalidIdentifier("imei", value, "must be 14/15 digits (IMEI) or 16 (IMEISV)")


def parse_iccid(value: str) -> str:
    v = value.strip()
    if not _DIGITS.fullmatch(v or "x") or len(v) not in (19, 20):
        raise InvalidIdentifier("iccid", value, "must be 19 or 20 digits")
    return v


def canonical_cell(value: str) -> str:
    """``MCC-MNC-LAC-CI`` with leading zeros dropped from LAC and CI, MNC kept as given."""
    m = _CELL.fullmatch(value.strip())
    if not m:
        raise InvalidIdentifier("cell_id", value, "must be MCC-MNC-LAC-CI")
    mcc, mnc, lac, ci = m.groups()
    if len(mnc) != mnc_length(int(mcc)) and not (len(mnc) == 3 and mnc.startswith("0")):
        raise InvalidIdentifier("cell_id", value, f"MNC of MCC {mcc} has {mnc_length(int(mcc))} digits")
    return f"{mcc}-{mnc}-{int(lac)}-{int(ci)}"


def radio_cell(cell: str) -> str:
    """The radio cell a canonical cell id names, whichever network's id it is: ``MCC-LAC-CI``.
    A cell shared by several networks (RAN sharing: one cell identity broadcast under each
    sharing network's MNC, as China Unicom and China Telecom share theirs) has one id per
    network; SIMs of those networks in one box camp on it under their own MNC. A name that is
    not ``MCC-MNC-LAC-CI`` is its own cell."""
    parts = cell.split("-")
    return f"{parts[0]}-{parts[2]}-{parts[3]}" if len(parts) == 4 else cell


# ---- column-wise checks ---------------------------------------------------------------

_POW10 = 10 ** np.arange(19, dtype=np.int64)


def luhn_valid_array(numbers: np.ndarray, n_digits: int) -> np.ndarray:
    """Luhn check over int64 numbers of ``n_digits`` digits (check digit last)."""
    digits = (numbers[:, None] // _POW10[:n_digits][None, :]) % 10  # rightmost digit first
    doubled = digits[:, 1::2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = digits[:, 0::2].sum(axis=1) + doubled.sum(axis=1)
    return total % 10 == 0


def luhn_complete_array(bodies: np.ndarray, n_digits: int) -> np.ndarray:
    """Append the Luhn check digit to int64 bodies of ``n_digits`` digits."""
    digits = (bodies[:, None] // _POW10[:n_digits][None, :]) % 10
    doubled = digits[:, 0::2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = doubled.sum(axis=1) + digits[:, 1::2].sum(axis=1)
    return bodies * 10 + (10 - total % 10) % 10
