"""How a feed's table becomes canonical fields: the mapping stage of :mod:`probes.csvparse`.

A :class:`Layout` says, for each canonical field, where it comes from: a column of the feed
(renamed or not), a constant (a field the feed lacks), or a derivation (the result from the
duration, the direction from which party is the subscriber). It also says how the feed spells
times, durations, cells and subscribers when not as the canonical CSV does. The readers here
turn those spellings into canonical values column by column (pyarrow compute, numpy), never
row by row: feeds run at millions of rows a minute. Each returns an ok mask beside its values;
csvparse turns the failures into rejections naming the feed's column and value.

The canonical layout (:data:`CANONICAL`) never reaches the readers of other spellings, so its
path and its messages are those of a plain canonical CSV.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detector import ids

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"
EPOCH_FORMATS = {"epoch_s": 1, "epoch_ms": 1000}       # timestamp_format -> units a second
SUBSCRIBER_KEYS = ("imsi", "msisdn", "id")
DURATION_UNITS = {"s": 1, "ms": 1000}
DURATION_ROUNDING = ("none", "up", "nearest")
CELL_FORMATS = ("canonical", "ci", "ecgi")
MAX_LAC = 65_535                     # LAC and TAC are 16 bits
MAX_ECI = (1 << 28) - 1              # E-UTRAN cell identity: 28 bits

# columns a layout may name beside the canonical fields: what some feeds carry instead
CDR_SOURCES = ("subscriber_id", "a_number", "b_number", "lac")
REGISTRATION_SOURCES = ("subscriber_id",)
# fields a constant may fill (an IMSI or a time is never the same for every row)
CDR_CONSTANTS = ("record_type", "direction", "result", "imei", "msisdn", "peer", "cell_id")
REGISTRATION_CONSTANTS = ("msisdn", "channel", "carrier")
CDR_DERIVED = ("result", "direction", "msisdn")


@dataclass(frozen=True, slots=True)
class Layout:
    """How a feed's columns and values map onto a canonical schema (config/goipwatch.toml,
    ``[probes.layout]``, documents every key; docs/feeds.md gives worked examples)."""

    columns: Mapping[str, str] = field(default_factory=dict)   # field -> the feed's column
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # field -> {feed: canonical}
    timestamp_format: str = ISO_UTC      # a strptime format, or epoch_s / epoch_ms
    timezone: str = "UTC"
    constants: Mapping[str, str] = field(default_factory=dict)  # field -> its value in every row
    derive: tuple[str, ...] = ()          # fields computed from others (CDR_DERIVED)
    subscriber_key: str = "imsi"          # imsi, or msisdn / id: a pseudo IMSI is derived
    duration_unit: str = "s"
    duration_rounding: str = "none"       # none: a fraction of a second is refused
    cell_format: str = "canonical"        # canonical MCC-MNC-LAC-CI, ci (a number) or ecgi
    plmn: str = ""                        # MCC-MNC of cells given without one

    def column(self, name: str) -> str:
        return self.columns.get(name, name)

    @property
    def parties(self) -> bool:
        """The feed gives the calling and called numbers, not the subscriber's peer."""
        return "a_number" in self.columns

    def reads_column(self, name: str) -> bool:
        """Whether canonical field (or source) ``name`` comes from a column of the feed."""
        if name in self.constants or name in self.derive:
            return False
        if name == "imsi":
            return self.subscriber_key == "imsi"
        if name == "peer":
            return not self.parties
        if name in CDR_SOURCES:
            return name in self.columns
        return True


CANONICAL = Layout()


def label(layout: Layout, name: str) -> str:
    """How a rejection names a field: the canonical name, with the feed's column or
    ``constant`` when the feed spells it otherwise (``imsi`` stays ``imsi``)."""
    if name in layout.constants:
        return f"{name} (constant)"
    col = layout.column(name)
    return name if col == name else f"{name} ({col})"


def needed_columns(layout: Layout, fields: tuple[str, ...], sources: tuple[str, ...]
                   ) -> list[tuple[str, str]]:
    """(column, field) for every column the layout reads from a feed with ``fields``."""
    out = [(layout.column(f), f) for f in fields if layout.reads_column(f)]
    if layout.subscriber_key == "id":
        out.append((layout.column("subscriber_id"), "subscriber_id"))
    out += [(layout.columns[s], s) for s in sources if s in layout.columns and s != "subscriber_id"]
    return out


def field_column(table: pa.Table, layout: Layout, name: str) -> pa.ChunkedArray | pa.Array:
    """The text column a field is read from: the feed's, or its constant in every row."""
    if name in layout.constants:
        return pa.repeat(layout.constants[name], table.num_rows)
    return table.column(layout.column(name))


def _np(arr) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def dictionary(col) -> pa.DictionaryArray:
    """A text column (chunked or not) as one dictionary array: its distinct values once."""
    enc = pc.dictionary_encode(col)
    return enc.combine_chunks() if isinstance(enc, pa.ChunkedArray) else enc


def _matches(col, pattern: str) -> np.ndarray:
    return _np(pc.match_substring_regex(col, pattern))


def _numbers(col, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """(ok, float64 values, 0 where not ok) of a column of decimal numbers."""
    text = pc.utf8_trim_whitespace(col)
    ok = _matches(text, pattern)
    nums = pc.cast(pc.if_else(pa.array(ok), text, "0"), pa.float64())
    return ok, _np(nums)


# ---- times and durations -------------------------------------------------------------

def epoch_times(col, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(ok, epoch seconds) of a column of epoch seconds or milliseconds (a fraction of the
    unit is allowed, and dropped: event times are whole seconds)."""
    ok, nums = _numbers(col, r"^\d{1,16}(\.\d{1,9})?$")
    return ok, np.floor(nums / EPOCH_FORMATS[layout.timestamp_format]).astype(np.int64)


def durations(col, layout: Layout, max_s: int) -> tuple[np.ndarray, np.ndarray]:
    """(ok, whole seconds) of a duration column in the layout's unit, rounded as it says:
    ``up`` counts a started second as a second (as billing does, so that any answered
    fraction stays above 0), ``nearest`` rounds halves up, ``none`` refuses a fraction."""
    ok, nums = _numbers(col, r"^\d{1,12}(\.\d{1,9})?$")
    secs = nums / DURATION_UNITS[layout.duration_unit]
    if layout.duration_rounding == "up":
        whole = np.ceil(secs)
    elif layout.duration_rounding == "nearest":
        whole = np.floor(secs + 0.5)
    else:
        whole = secs
        ok &= np.floor(secs) == secs
    ok &= whole <= max_s
    return ok, np.where(ok, whole, 0).astype(np.int64)


def duration_why(layout: Layout, max_s: int) -> str:
    if layout.duration_rounding == "none":
        return (f"is not whole seconds from 0 to {max_s}" if layout.duration_unit == "s" else
                f"is not milliseconds of whole seconds from 0 to {max_s}")
    unit = {"s": "seconds", "ms": "milliseconds"}[layout.duration_unit]
    return f"is not a number of {unit} from 0 to {max_s} s"


# ---- subscribers ---------------------------------------------------------------------

def subscriber_ids(col) -> tuple[np.ndarray, pa.ChunkedArray]:
    """(ok, trimmed ids) of a subscriber-id column: any text but empty, short enough for a
    key, no control character."""
    text = pc.utf8_trim_whitespace(col)
    length = _np(pc.utf8_length(text))
    ok = (length > 0) & (length <= 64) & ~_matches(text, r"[\x00-\x1f\x7f]")
    return ok, text


def pseudo_imsis_of_ids(ok: np.ndarray, text) -> np.ndarray:
    """The pseudo IMSI (int64) of each id that is ok, 0 elsewhere; each distinct id is
    hashed once (a feed repeats its subscribers)."""
    enc = dictionary(pc.if_else(pa.array(ok), text, ""))
    if not len(enc):
        return np.zeros(0, np.int64)
    table = ids.pseudo_imsi_array("id", enc.dictionary.to_pylist())
    out = table[_np(enc.indices).astype(np.int64)]
    return np.where(ok, out, 0)


def pseudo_imsis_of_msisdns(ok: np.ndarray, msisdn: np.ndarray) -> np.ndarray:
    """The pseudo IMSI (int64) of each MSISDN (as the batch holds it) that is ok, 0 elsewhere."""
    if not len(msisdn):
        return np.zeros(0, np.int64)
    unique, inverse = np.unique(msisdn, return_inverse=True)
    table = ids.pseudo_imsi_array("msisdn", [str(n) for n in unique.tolist()])
    return np.where(ok, table[inverse], 0)


# ---- parties: A and B numbers --------------------------------------------------------

def strip_plus(col):
    return pc.utf8_ltrim(pc.utf8_trim_whitespace(col), "+")


def direction_from_parties(subscriber, a, b) -> tuple[np.ndarray, np.ndarray]:
    """(ok, direction) from which of the A and B numbers is the subscriber's: A is the
    caller (MO), B the called party (MT); a call to oneself counts as MO."""
    sub = strip_plus(subscriber)
    is_a = _np(pc.fill_null(pc.equal(sub, strip_plus(a)), False))
    is_b = _np(pc.fill_null(pc.equal(sub, strip_plus(b)), False))
    ok = (is_a | is_b) & _np(pc.greater(pc.utf8_length(sub), 0))
    return ok, np.where(is_a, 0, 1).astype(np.int8)


def parties(mo: np.ndarray, a, b):
    """(the subscriber's number, the peer) for each row, given whether it is MO."""
    mask = pa.array(mo)
    return pc.if_else(mask, a, b), pc.if_else(mask, b, a)


# ---- cells ---------------------------------------------------------------------------

def _ints(col, max_value: int, empty_ok: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ok, int64 values, empty) of a column of decimal integers up to ``max_value``."""
    text = pc.utf8_trim_whitespace(col)
    empty = _np(pc.equal(text, ""))
    ok, nums = _numbers(text, r"^\d{1,10}$")
    ok &= nums <= max_value
    return ok | (empty & empty_ok), np.where(ok, nums, 0).astype(np.int64), empty


def lacs(col) -> tuple[np.ndarray, np.ndarray]:
    """(ok, LAC or TAC) of a LAC/TAC column; an empty one is LAC 0."""
    ok, nums, _ = _ints(col, MAX_LAC, empty_ok=True)
    return ok, nums


def cell_texts(col, layout: Layout, lac: np.ndarray | None) -> tuple[np.ndarray, pa.Array]:
    """(ok, canonical-form cell text, "" where the feed has none) of a cell column in the
    layout's ``cell_format``: ``ci`` a cell identity number (with the LAC column, else LAC 0),
    ``ecgi`` an E-UTRAN cell global id, ``MCC-MNC-ECI`` or the ECI alone (with the TAC
    column as LAC, else 0). Cells without a PLMN of their own take the layout's ``plmn``."""
    n = len(col)
    lac_text = pc.cast(pa.array(lac if lac is not None else np.zeros(n, np.int64)), pa.string())
    text = pc.utf8_trim_whitespace(col)
    empty = _np(pc.equal(text, ""))
    if layout.cell_format == "ci":
        ok, ci, _ = _ints(text, 999_999_999, empty_ok=True)
        plmn = pa.repeat(layout.plmn, n)
        eci_text = pc.cast(pa.array(ci), pa.string())
    else:
        pattern = r"^(?:(?P<mcc>\d{3})-(?P<mnc>\d{2,3})-)?(?P<eci>\d{1,9})$"
        found = _matches(text, pattern)
        parts = pc.extract_regex(pc.if_else(pa.array(found), text, "0"), pattern)
        mcc, mnc = pc.struct_field(parts, "mcc"), pc.struct_field(parts, "mnc")
        own = _np(pc.greater(pc.utf8_length(mcc), 0))
        plmn = pc.if_else(pa.array(own), pc.binary_join_element_wise(mcc, mnc, "-"),
                          layout.plmn)
        eci = pc.cast(pc.struct_field(parts, "eci"), pa.int64())
        ok = (found & (_np(eci) <= MAX_ECI) & (own | bool(layout.plmn))) | empty
        eci_text = pc.cast(eci, pa.string())
    joined = pc.binary_join_element_wise(plmn, lac_text, eci_text, "-")
    return ok, pc.if_else(pa.array(ok & ~empty), joined, "")


def cell_why(layout: Layout) -> str:
    if layout.cell_format == "ci":
        return f"is not a cell identity number (cells of {layout.plmn})"
    plmn = f", or the ECI alone (cells of {layout.plmn})" if layout.plmn else ""
    return f"is not an ECGI (MCC-MNC-ECI{plmn}; ECI at most {MAX_ECI})"


# ---- constants -----------------------------------------------------------------------

_VOCAB = {
    "record_type": ("voice", "sms", "data"),
    "direction": ("MO", "MT"),
    "result": ("answered", "unanswered", "busy", "failed", "delivered", "ok"),
}


def constant_problem(name: str, value: str, layout: Layout) -> str | None:
    """Why ``value`` cannot be field ``name``'s constant, or None when it can."""
    if name in _VOCAB:
        return None if value in _VOCAB[name] else f"must be one of {', '.join(_VOCAB[name])}"
    if name == "msisdn":
        if value == "":
            return None if layout.subscriber_key == "id" else \
                "may be empty only when subscribers are keyed by an id (subscriber_key = 'id')"
        return None if value.isascii() and value.lstrip("+").isdigit() and \
            3 <= len(value.lstrip("+")) <= 15 else "must be 3 to 15 digits (E.164), or empty"
    if name == "peer":
        return None if value == "" or (value.isdigit() and len(value) <= 15) else \
            "must be 1 to 15 digits, or empty"
    checks = {"imei": ids.parse_imei, "cell_id": ids.canonical_cell}
    if name in checks:
        if value == "":
            return None
        try:
            checks[name](value)
        except ids.InvalidIdentifier as e:
            return f"is not valid ({e.why}), nor empty"
        return None
    if name in ("channel", "carrier"):
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            return "contains a control character"
        return "must not be empty" if name == "channel" and not value.strip() else None
    return "cannot be a constant"
