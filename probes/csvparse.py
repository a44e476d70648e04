"""Pure CSV parsing for CDR and registration feeds: bytes in, typed batches and rejects out.

The canonical layouts are documented in README.md; a :class:`Layout` maps other layouts
onto them (column names, value spellings, constants, derived fields, times, durations,
cells and subscriber keys: :mod:`probes.schema`, docs/feeds.md). Parsing is
vectorised: lines are split and counted with numpy, fields parsed by pyarrow, checked
column by column. Each row that fails a check is rejected with its line and the first
reason; the rows beside it are kept.
"""

from __future__ import annotations

import csv
import functools
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from detector import ids
from probes import schema
from probes.compressed import DECOMPRESSION_ERRORS, CompressionError, open_stream
from detector.records import (
    RESULTS_BY_TYPE, CdrBatch, Direction, RecordType, RegistrationBatch, Rejected, Result,
)
from probes.schema import CANONICAL, ISO_UTC, Layout

CDR_FIELDS = ("record_type", "direction", "start_time", "duration_s", "imsi", "msisdn",
              "imei", "peer", "cell_id", "result")
REGISTRATION_FIELDS = ("imsi", "msisdn", "iccid", "activated_at", "id_hash", "channel")
REGISTRATION_OPTIONAL = ("carrier",)
MAX_DURATION_S = 86_400
# Event and activation times a feed can hold. A time outside is a broken field, and one
# before year 1 (strptime reads year 0000) cannot even be stored.
TIME_RANGE = (631_152_000, 4_102_444_800)   # 1990-01-01 to 2099-12-31 (UTC)
TIME_RANGE_WHY = "is not between 1990 and 2099"
BOM = b"\xef\xbb\xbf"
CONTROL = r"[\x00-\x1f\x7f]"   # control characters (RE2)


class FeedError(ValueError):
    """A whole input (file or header) that cannot be read; names the source and why."""


B = TypeVar("B", CdrBatch, RegistrationBatch)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Parsed(Generic[B]):
    batch: B
    rejected: tuple[Rejected, ...]
    blank_lines: int = 0


# ---- lines ---------------------------------------------------------------------------

def _split_lines(buf: bytes, n_fields: int, first_line: int, source: str
                 ) -> tuple[bytes, np.ndarray, list[Rejected], int]:
    """Keep the lines that have ``n_fields`` fields; returns (kept bytes, their line numbers,
    rejected lines, blank line count)."""
    if not buf:   # a header-only file, or a block of nothing: no lines at all
        return buf, np.empty(0, np.int64), [], 0
    if b'"' in buf:
        return _split_quoted(buf, n_fields, first_line, source)
    arr = np.frombuffer(buf, np.uint8)
    nl = np.flatnonzero(arr == 10)
    ends = nl if arr[-1] == 10 else np.append(nl, len(arr))
    starts = np.concatenate(([0], nl + 1))[: len(ends)]
    text_ends = ends - ((ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13))  # drop a CR
    commas = np.flatnonzero(arr == 44)
    n_commas = np.searchsorted(commas, text_ends) - np.searchsorted(commas, starts)
    # pyarrow ends a row at a lone CR too: a CR inside a line would cut it in two there
    crs = np.flatnonzero(arr == 13)
    inner_cr = (np.searchsorted(crs, text_ends) - np.searchsorted(crs, starts)) > 0
    blank = text_ends == starts
    good = ~blank & (n_commas == n_fields - 1) & ~inner_cr
    bad = np.flatnonzero(~blank & ~good)
    numbers = np.arange(first_line, first_line + len(ends), dtype=np.int64)
    rejected = [
        Rejected(source, int(numbers[i]),
                 INNER_CR if inner_cr[i] else
                 f"expected {n_fields} fields, found {int(n_commas[i]) + 1}",
                 buf[starts[i]:text_ends[i]].decode("utf-8", "backslashreplace"))
        for i in bad
    ]
    if good.all():
        return buf, numbers, rejected, 0
    spans = np.r_[starts[1:], len(arr)] - starts   # each line with its newline
    kept = arr[np.repeat(good, spans)].tobytes()
    return kept, numbers[good], rejected, int(blank.sum())


INNER_CR = "carriage return inside the line"


def _split_quoted(buf: bytes, n_fields: int, first_line: int, source: str
                  ) -> tuple[bytes, np.ndarray, list[Rejected], int]:
    """Slow path for feeds that quote fields. Values never span lines (the feeds write one
    record a line), so each physical line is read on its own: an unbalanced quote spoils
    its own line only, never the lines after it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    numbers, rejected, blank = [], [], 0
    lines = buf.split(b"\n")
    if not lines[-1]:
        lines.pop()   # the empty rest after the last newline is no line
    for i, raw_line in enumerate(lines):
        here = first_line + i
        text = raw_line.decode("utf-8")
        text = text[:-1] if text.endswith("\r") else text
        if not text:
            blank += 1
            continue
        if "\r" in text:
            rejected.append(Rejected(source, here, INNER_CR, text))
            continue
        try:
            row = next(csv.reader([text], strict=True))
        except csv.Error as e:
            rejected.append(Rejected(source, here, f"malformed quoting: {e}", text))
            continue
        if len(row) != n_fields:
            rejected.append(Rejected(source, here, f"expected {n_fields} fields, found {len(row)}",
                                     text))
        else:
            writer.writerow(row)
            numbers.append(here)
    return out.getvalue().encode(), np.array(numbers, np.int64), rejected, blank


def _check_utf8(buf: bytes, first_line: int, source: str) -> tuple[bytes, list[Rejected], int]:
    """(the block with each line that is not UTF-8 emptied, those lines refused, how many of
    the emptied lines the line split will count as blank)."""
    try:
        buf.decode("utf-8")
        return buf, [], 0
    except UnicodeDecodeError:
        pass
    lines = buf.split(b"\n")
    kept, rejected = [], []
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
            kept.append(line)
        except UnicodeDecodeError:
            # the undecodable bytes stay visible as \xNN escapes
            rejected.append(Rejected(source, first_line + i, "not UTF-8",
                                     line.rstrip(b"\r").decode("utf-8", "backslashreplace")))
            kept.append(b"")  # keeps line numbering
    # an emptied last line without its newline is no line at all
    emptied = len(rejected) - (1 if not kept[-1] and lines[-1] else 0)
    return b"\n".join(kept), rejected, emptied


def _read_table(buf: bytes, header: list[str], lines: np.ndarray) -> pa.Table:
    if not lines.size:
        return pa.table({name: pa.array([], pa.string()) for name in header})
    if buf.startswith(BOM):
        # pyarrow drops a BOM at the start of its input: here it begins a row's first value
        # (the file's own BOM went with the header), which must read as it does in any row
        buf = b"\n" + buf   # an empty line, skipped
    return pv.read_csv(
        pa.py_buffer(buf),
        read_options=pv.ReadOptions(column_names=header, block_size=1 << 24),
        parse_options=pv.ParseOptions(newlines_in_values=False, ignore_empty_lines=True),
        convert_options=pv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=False, quoted_strings_can_be_null=False,
        ),
    )


# ---- column checks -------------------------------------------------------------------

class _Checks:
    """First failing check per row; messages are built only for the failing rows."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, -1, np.int32)
        self._why: list[tuple[str, str, pa.Array]] = []

    def fail(self, mask: np.ndarray, name: str, why: str, values: pa.Array) -> None:
        hit = mask & (self.reason < 0)
        if hit.any():
            self.reason[hit] = len(self._why)
        self._why.append((name, why, values))

    @property
    def ok(self) -> np.ndarray:
        return self.reason < 0

    def rejected(self, lines: np.ndarray, source: str, raw: Callable[[int], str]) -> list[Rejected]:
        out = []
        for i in np.flatnonzero(self.reason >= 0):
            name, why, values = self._why[self.reason[i]]
            out.append(Rejected(source, int(lines[i]),
                                f"{name}: {values[int(i)].as_py()!r} {why}", raw(int(i))))
        return out


def _np(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def _digits(col: pa.ChunkedArray, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """(ok mask, int64 values with 0 where not ok) for columns of digits."""
    ok = _np(pc.match_substring_regex(col, pattern))
    usable = ok & _np(pc.greater(pc.utf8_length(col), 0))
    # the patterns may allow blanks around the digits; the cast does not
    nums = pc.cast(pc.if_else(pa.array(usable), pc.utf8_trim_whitespace(col), "0"), pa.int64())
    return ok, _np(nums)


def _strip_plus(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.utf8_ltrim(pc.utf8_trim_whitespace(col), "+")


def _codes(col: pa.ChunkedArray, mapping: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    keys = list(mapping)
    idx = pc.index_in(pc.utf8_trim_whitespace(col), value_set=pa.array(keys, pa.string()))
    ok = _np(pc.is_valid(idx))
    lut = np.array([mapping[k] for k in keys] + [-1], np.int8)
    return ok, lut[_np(pc.fill_null(idx, len(keys))).astype(np.int64)]


def _times(col: pa.ChunkedArray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    if layout.timestamp_format in schema.EPOCH_FORMATS:
        return schema.epoch_times(col, layout)
    parsed = pc.strptime(pc.utf8_trim_whitespace(col), format=layout.timestamp_format,
                         unit="s", error_is_null=True)
    if layout.timezone.upper() != "UTC":
        parsed = pc.assume_timezone(parsed, timezone=layout.timezone,
                                    ambiguous="earliest", nonexistent="earliest")
    ok = _np(pc.is_valid(parsed))
    secs = _np(pc.fill_null(pc.cast(parsed, pa.int64()), 0))
    return ok, secs.astype(np.int64)


def _time_why(layout: Layout) -> str:
    if layout.timestamp_format in schema.EPOCH_FORMATS:
        return {"epoch_s": "is not epoch seconds", "epoch_ms": "is not epoch milliseconds"}[
            layout.timestamp_format]
    return f"does not match {layout.timestamp_format!r}"


def _in_range(secs: np.ndarray) -> np.ndarray:
    return (secs >= TIME_RANGE[0]) & (secs < TIME_RANGE[1])


def _value_map(layout: Layout, name: str, canonical: Mapping[str, int]) -> dict[str, int]:
    extra = layout.values.get(name, {})
    out = dict(canonical)
    for feed_value, canon in extra.items():
        if canon not in canonical:
            raise FeedError(f"layout maps {name} value {feed_value!r} to unknown {canon!r}")
        out[feed_value] = canonical[canon]
    return out


def _sources(required: tuple[str, ...]) -> tuple[str, ...]:
    return schema.CDR_SOURCES if "record_type" in required else schema.REGISTRATION_SOURCES


def _header(buf: bytes, layout: Layout, required: tuple[str, ...], source: str) -> list[str]:
    first = buf.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig", "replace")
    try:
        header = [h.strip() for h in next(csv.reader([first]), [])]
    except csv.Error as e:   # a CR inside the line, a field beyond the csv module's limit
        raise FeedError(f"{source}: header unreadable: {e} (header: {first[:200]!r})") from None
    check_header(header, layout, required, source, first)
    return header


def check_header(header: list[str], layout: Layout, required: tuple[str, ...], source: str,
                 first: str = "") -> None:
    """Raise :class:`FeedError` when ``header`` lacks a column the layout reads for a feed of
    ``required`` fields (those given as constants or derived need none), or repeats one."""
    first = first or ",".join(header)
    missing = [col if col == name else f"{col} (for {name})"
               for col, name in schema.needed_columns(layout, required, _sources(required))
               if col not in header]
    if missing:
        raise FeedError(f"{source}: header lacks column(s) {', '.join(missing)} "
                        f"(header: {first[:200]!r})")
    dup = {h for h in header if header.count(h) > 1}
    if dup:
        raise FeedError(f"{source}: header repeats column(s) "
                        f"{', '.join(repr(d) for d in sorted(dup))}")


# ---- CDR -----------------------------------------------------------------------------

_RECORD_TYPES = {"voice": RecordType.VOICE, "sms": RecordType.SMS, "data": RecordType.DATA}
_DIRECTIONS = {"MO": Direction.MO, "MT": Direction.MT}
_RESULTS = {r.name.lower(): r.value for r in Result}
_ALLOWED = np.zeros((3, len(Result)), bool)
for _rt, _rs in RESULTS_BY_TYPE.items():
    _ALLOWED[_rt, list(_rs)] = True


def _raw_row(table: pa.Table, header: list[str]) -> Callable[[int], str]:
    return lambda i: ",".join(str(table.column(h)[i].as_py()) for h in header)


@dataclass(frozen=True, slots=True, eq=False)
class _Block:
    table: pa.Table
    layout: Layout
    lines: np.ndarray                 # source line of each table row
    rejected: list[Rejected]          # lines refused before field checks
    blank: int

    def col(self, name: str) -> pa.ChunkedArray | pa.Array:
        """The text a field is read from: its column of the feed, or its constant."""
        return schema.field_column(self.table, self.layout, name)

    def label(self, name: str) -> str:
        return schema.label(self.layout, name)


def _block(body: bytes, header: list[str], first_line: int, source: str, layout: Layout) -> _Block:
    """The lines of a block that are UTF-8 and have the header's field count, as a table."""
    body, bad_utf8, emptied = _check_utf8(body, first_line, source)
    buf, lines, rejected, blank = _split_lines(body, len(header), first_line, source)
    table = _read_table(buf, header, lines)
    return _Block(table, layout, lines, bad_utf8 + rejected, blank - emptied)


def _coded(blk: _Block, checks: _Checks, name: str, vocab: Mapping[str, int], why: str
           ) -> np.ndarray:
    ok, codes = _codes(blk.col(name), _value_map(blk.layout, name, vocab))
    checks.fail(~ok, blk.label(name), why, blk.col(name))
    return codes


def _subscriber(blk: _Block, checks: _Checks, msisdn: tuple[np.ndarray, np.ndarray] | None
                ) -> np.ndarray:
    """The IMSI column: the feed's, or the pseudo IMSIs of its subscriber key. For an MSISDN
    key, ``msisdn`` is (ok, numbers) of the MSISDNs, checked where they are read."""
    key = blk.layout.subscriber_key
    if key == "imsi":
        ok, imsi = _digits(pc.utf8_trim_whitespace(blk.col("imsi")), r"^\d{15}$")
        checks.fail(~ok, blk.label("imsi"), "must be 15 digits", blk.col("imsi"))
        return imsi
    if key == "msisdn":
        return schema.pseudo_imsis_of_msisdns(*msisdn)
    ok, text = schema.subscriber_ids(blk.col("subscriber_id"))
    checks.fail(~ok, blk.label("subscriber_id"),
                "is not a subscriber id (1 to 64 characters, no control character)",
                blk.col("subscriber_id"))
    return schema.pseudo_imsis_of_ids(ok, text)


def _msisdns(col, blk: _Block, checks: _Checks, name: str) -> tuple[np.ndarray, np.ndarray]:
    ok, msisdn = _digits(_strip_plus(col), r"^\d{3,15}$")
    if blk.layout.subscriber_key == "id":   # the key is the id: the MSISDN may be absent (0)
        ok |= _np(pc.equal(pc.utf8_trim_whitespace(col), ""))
        why = "must be 3 to 15 digits (E.164), or empty"
    else:
        why = "must be 3 to 15 digits (E.164)"
    checks.fail(~ok, name, why, col)
    return ok, msisdn


def parse_cdr_block(body: bytes, header: list[str], first_line: int, source: str,
                    layout: Layout = CANONICAL) -> Parsed[CdrBatch]:
    """Parse CSV lines (no header) that start at ``first_line`` of ``source``."""
    blk = _block(body, header, first_line, source, layout)
    table, lines, rejected, col = blk.table, blk.lines, blk.rejected, blk.col
    checks = _Checks(table.num_rows)

    rtype = _coded(blk, checks, "record_type", _RECORD_TYPES, "is not one of voice, sms, data")
    if "direction" in layout.derive:     # from which of A and B is the subscriber's number
        ok, direction = schema.direction_from_parties(col("msisdn"), col("a_number"),
                                                      col("b_number"))
        checks.fail(~ok, blk.label("msisdn"), f"is neither {layout.column('a_number')} nor "
                    f"{layout.column('b_number')}: the direction cannot be told", col("msisdn"))
        direction_col = col("msisdn")
    else:
        direction = _coded(blk, checks, "direction", _DIRECTIONS, "is not MO or MT")
        direction_col = col("direction")
    checks.fail((rtype == RecordType.DATA) & (direction == Direction.MT), blk.label("direction"),
                "must be MO for data records", direction_col)
    ok, ts = _times(col("start_time"), layout)
    checks.fail(~ok, blk.label("start_time"), _time_why(layout), col("start_time"))
    checks.fail(~_in_range(ts), blk.label("start_time"), TIME_RANGE_WHY, col("start_time"))
    if layout.duration_unit == "s" and layout.duration_rounding == "none":
        ok, duration = _digits(col("duration_s"), r"^\s*\d{1,6}\s*$")
        ok &= duration <= MAX_DURATION_S
        why = f"is not whole seconds from 0 to {MAX_DURATION_S}"
    else:
        ok, duration = schema.durations(col("duration_s"), layout, MAX_DURATION_S)
        why = schema.duration_why(layout, MAX_DURATION_S)
    checks.fail(~ok, blk.label("duration_s"), why, col("duration_s"))

    if layout.parties:   # the subscriber's number and the peer from A and B
        mo = direction == Direction.MO
        number, peer_text = schema.parties(mo, col("a_number"), col("b_number"))
        msisdn_col = col("msisdn") if "direction" in layout.derive else number
        msisdn_name = blk.label("msisdn") if "direction" in layout.derive else \
            f"msisdn ({layout.column('a_number')}/{layout.column('b_number')})"
        peer_name = f"peer ({layout.column('a_number')}/{layout.column('b_number')})"
    else:
        msisdn_col, msisdn_name = col("msisdn"), blk.label("msisdn")
        peer_text, peer_name = col("peer"), blk.label("peer")
    if layout.subscriber_key == "msisdn":   # the MSISDN is the key: checked before the IMSI
        msisdn_ok, msisdn = _msisdns(msisdn_col, blk, checks, msisdn_name)
        imsi = _subscriber(blk, checks, (msisdn_ok, msisdn))
    else:
        imsi = _subscriber(blk, checks, None)
        _, msisdn = _msisdns(msisdn_col, blk, checks, msisdn_name)
    imei_ok, imei = _imeis(pc.utf8_trim_whitespace(col("imei")))
    checks.fail(~imei_ok, blk.label("imei"), "is not a 14/15-digit IMEI with a valid Luhn digit "
                "or a 16-digit IMEISV", col("imei"))
    peer_col = _strip_plus(peer_text)
    ok, peer = _digits(peer_col, r"^\d{1,15}$")
    empty = _np(pc.equal(peer_col, ""))
    checks.fail(~(ok | (empty & (rtype == RecordType.DATA))), peer_name,
                "must be 1 to 15 digits (empty only for data)", peer_text)
    cell, cells = _cell_column(blk, checks)
    if "result" in layout.derive:
        result = _derived_results(rtype, duration)
    else:
        ok, result = _codes(col("result"), _value_map(layout, "result", _RESULTS))
        valid_type = (rtype >= 0) & (rtype <= 2)
        allowed = np.zeros(len(result), bool)
        allowed[valid_type & ok] = _ALLOWED[rtype[valid_type & ok], result[valid_type & ok]]
        checks.fail(~allowed, blk.label("result"), "is not a result of this record_type",
                    col("result"))

    rejected += checks.rejected(lines, source, _raw_row(table, header))
    keep = checks.ok
    cell, cells = _kept_cells(cell[keep], cells)
    batch = CdrBatch(
        ts=ts[keep], record_type=rtype[keep], direction=direction[keep],
        duration=duration[keep].astype(np.int32), imsi=imsi[keep], msisdn=msisdn[keep],
        imei=imei[keep], peer=peer[keep], cell=cell, result=result[keep],
        line=lines[keep], cells=cells, source=source,
    )
    return Parsed(batch, tuple(rejected), blk.blank)


def _derived_results(rtype: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """A record's result from its duration: a voice call lasted (answered) or did not
    (unanswered); an SMS is delivered; a data session ok."""
    voice = np.where(duration > 0, Result.ANSWERED, Result.UNANSWERED)
    by_type = np.where(rtype == RecordType.SMS, Result.DELIVERED, Result.OK)
    return np.where(rtype == RecordType.VOICE, voice, by_type).astype(np.int8)


def _cell_column(blk: _Block, checks: _Checks) -> tuple[np.ndarray, tuple[str, ...]]:
    """(index into the cell names, names) of the cell column, in the layout's cell format."""
    layout, col = blk.layout, blk.col("cell_id")
    if layout.cell_format == "canonical" or "cell_id" in layout.constants:
        cell, cells, cell_ok = _cells(col)
        checks.fail(~cell_ok, blk.label("cell_id"), "is not MCC-MNC-LAC-CI", col)
        return cell, cells
    lac = None
    if "lac" in layout.columns:
        lac_ok, lac = schema.lacs(blk.col("lac"))
        checks.fail(~lac_ok, f"lac ({layout.column('lac')})",
                    f"is not a LAC or TAC (0 to {schema.MAX_LAC})", blk.col("lac"))
    ok, text = schema.cell_texts(col, layout, lac)
    checks.fail(~ok, blk.label("cell_id"), schema.cell_why(layout), col)
    cell, cells, cell_ok = _cells(text)
    checks.fail(~cell_ok, blk.label("cell_id"), f"does not make a cell MCC-MNC-LAC-CI", col)
    return cell, cells


def _kept_cells(cell: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The cell table of the kept rows only, in order of first use: the engine numbers
    cells as it meets them, so a cell of a refused row must not enter it (nor move the
    others' numbers)."""
    located = cell >= 0
    used, first = np.unique(cell[located], return_index=True)
    used = used[np.argsort(first)]
    remap = np.full(len(names) + 1, -1, np.int32)   # index -1 (no cell) stays -1
    remap[used] = np.arange(len(used), dtype=np.int32)
    return remap[cell], tuple(names[i] for i in used)


def _imeis(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """IMEI/IMEISV column → (ok, 15-digit IMEI with check digit; 0 when empty)."""
    ok, num = _digits(col, r"^(\d{14,16})?$")
    length = _np(pc.utf8_length(col))
    out = np.zeros(len(num), np.int64)
    for n, digits_in in ((14, 14), (15, 15), (16, 16)):
        sel = ok & (length == digits_in)
        if not sel.any():
            continue
        if n == 15:
            valid = ids.luhn_valid_array(num[sel], 15)
            out[sel] = np.where(valid, num[sel], 0)
            ok[np.flatnonzero(sel)[~valid]] = False
        else:
            body = num[sel] if n == 14 else num[sel] // 100  # IMEISV: drop the 2-digit SV
            out[sel] = ids.luhn_complete_array(body, 14)
    return ok, out


@functools.lru_cache(maxsize=1 << 18)
def _canonical_cell(raw: str) -> str:
    return ids.canonical_cell(raw)   # a network has few cells: parse each spelling once


def _cells(col: pa.ChunkedArray) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Cell column → (index into canonical names, names, ok). Empty cells are allowed (-1)."""
    enc = schema.dictionary(pc.utf8_trim_whitespace(col))
    names, canon_index, lut = [], {}, []
    for raw in enc.dictionary.to_pylist():
        if raw == "":
            lut.append(-1)
            continue
        try:
            name = _canonical_cell(raw)
        except ids.InvalidIdentifier:
            lut.append(-2)
            continue
        lut.append(canon_index.setdefault(name, len(canon_index)))
        if len(canon_index) > len(names):
            names.append(name)
    table = np.array(lut + [-1], np.int32)
    index = table[_np(enc.indices).astype(np.int64)] if len(enc) else np.empty(0, np.int32)
    ok = index != -2
    return np.where(ok, index, -1).astype(np.int32), tuple(names), ok


# ---- registrations -------------------------------------------------------------------

def parse_registration_block(body: bytes, header: list[str], first_line: int, source: str,
                             layout: Layout = CANONICAL) -> Parsed[RegistrationBatch]:
    blk = _block(body, header, first_line, source, layout)
    table, lines, rejected, col = blk.table, blk.lines, blk.rejected, blk.col
    checks = _Checks(table.num_rows)
    if layout.subscriber_key == "msisdn":   # the MSISDN is the key: checked before the IMSI
        msisdn_ok, msisdn = _msisdns(col("msisdn"), blk, checks, blk.label("msisdn"))
        imsi = _subscriber(blk, checks, (msisdn_ok, msisdn))
    else:
        imsi = _subscriber(blk, checks, None)
        _, msisdn = _msisdns(col("msisdn"), blk, checks, blk.label("msisdn"))
    iccid = pc.utf8_trim_whitespace(col("iccid"))
    checks.fail(~_np(pc.match_substring_regex(iccid, r"^\d{19,20}$")), blk.label("iccid"),
                "must be 19 or 20 digits", col("iccid"))
    ok, activated = _times(col("activated_at"), layout)
    checks.fail(~ok, blk.label("activated_at"), _time_why(layout), col("activated_at"))
    checks.fail(~_in_range(activated), blk.label("activated_at"), TIME_RANGE_WHY,
                col("activated_at"))
    id_hash = pc.utf8_trim_whitespace(col("id_hash"))
    checks.fail(~_np(pc.match_substring_regex(id_hash, r"^[0-9A-Za-z+/=_-]{16,128}$")),
                blk.label("id_hash"), "must be a hash (16-128 characters of hex or base64)",
                col("id_hash"))
    checks.fail(_np(pc.match_substring_regex(id_hash, r"^(\d{15}|\d{17}[\dXx])$")),
                blk.label("id_hash"),
                "looks like a raw ID document number; the feed must carry its salted hash",
                col("id_hash"))
    channel = pc.utf8_trim_whitespace(col("channel"))
    checks.fail(~_np(pc.greater(pc.utf8_length(channel), 0)), blk.label("channel"), "is empty",
                col("channel"))
    # free text that is stored and shown as it is: no NUL (a text column cannot hold one)
    # nor any other control character
    checks.fail(_np(pc.match_substring_regex(channel, CONTROL)), blk.label("channel"),
                "contains a control character", col("channel"))
    if "carrier" in layout.constants or layout.column("carrier") in table.column_names:
        carrier_col = col("carrier")
        checks.fail(_np(pc.match_substring_regex(carrier_col, CONTROL)), blk.label("carrier"),
                    "contains a control character", carrier_col)
        carrier = _np(pc.utf8_trim_whitespace(carrier_col)).astype(object)
    else:
        carrier = np.full(table.num_rows, "", object)
    missing = carrier == ""
    if missing.any():  # derive the MNO brand from the IMSI's PLMN
        carrier[missing] = [ids.carrier_for_imsi(ids.imsi_text(v)) if v else "" for v in imsi[missing]]
    rejected += checks.rejected(lines, source, _raw_row(table, header))
    keep = checks.ok
    batch = RegistrationBatch(
        imsi=imsi[keep], msisdn=msisdn[keep], iccid=_np(iccid).astype(object)[keep],
        activated_at=activated[keep], id_hash=_np(id_hash).astype(object)[keep],
        channel=_np(channel).astype(object)[keep], carrier=carrier[keep], line=lines[keep],
        source=source,
    )
    return Parsed(batch, tuple(rejected), blk.blank)


# ---- files ---------------------------------------------------------------------------

class DamagedStream(Exception):
    """A compressed file whose stream breaks off: the lines before the damage were given."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line = line


def iter_blocks(path: Path, block_bytes: int = 32 << 20) -> Iterator[tuple[bytes, int]]:
    """(bytes, line number of the first line) for whole-line blocks of a file, header included;
    a compressed file's plain bytes (:mod:`probes.compressed`). A compressed stream that breaks
    off (a truncated or corrupt file) raises :class:`DamagedStream` after the whole lines
    before the damage; the line cut by it is dropped."""
    line = 1
    carry = b""
    try:
        fh = open_stream(path)
    except CompressionError as e:
        raise FeedError(str(e)) from e
    with fh:
        while True:
            try:
                chunk = fh.read(block_bytes)
            except DECOMPRESSION_ERRORS as e:
                raise DamagedStream(line + carry.count(b"\n"),
                                    f"compressed stream damaged: {e or type(e).__name__}") from e
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            block, carry = data[:cut], data[cut:]
            yield block, line
            line += block.count(b"\n")
    if carry:
        yield carry, line


def prefetched(items: Iterable[T]) -> Iterator[T]:
    """``items``, with the next one produced in a worker thread while the caller handles the
    current one. Parsing spends most of its time in pyarrow and numpy, which release the GIL,
    so on two cores it overlaps with the caller's work. Errors surface at the same item."""
    it = iter(items)
    end = object()
    with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as pool:
        ahead = pool.submit(next, it, end)
        while (item := ahead.result()) is not end:
            ahead = pool.submit(next, it, end)
            yield item


def source_name(path: Path) -> str:
    """A file's name as text that can be stored and logged: the bytes of a name that are
    not UTF-8 (a POSIX name may hold any byte but ``/`` and NUL) as ``\\xNN`` escapes."""
    return os.fsencode(path.name).decode("utf-8", "backslashreplace")


def read_feed_file(path: Path, kind: str, layout: Layout = CANONICAL,
                   block_bytes: int = 32 << 20) -> Iterator[Parsed]:
    """Parse a CDR (``kind='cdr'``) or registration (``'registrations'``) CSV block by block;
    the next block is parsed in the background while the caller handles the current one."""
    return prefetched(_parse_blocks(path, kind, layout, block_bytes))


def _parse_blocks(path: Path, kind: str, layout: Layout, block_bytes: int) -> Iterator[Parsed]:
    parse, required = {
        "cdr": (parse_cdr_block, CDR_FIELDS),
        "registrations": (parse_registration_block, REGISTRATION_FIELDS),
    }[kind]
    source = source_name(path)
    header: list[str] | None = None
    try:
        for block, first_line in iter_blocks(path, block_bytes):
            if header is None:
                header = _header(block, layout, required, source)
                nl = block.find(b"\n")
                block, first_line = (block[nl + 1:] if nl >= 0 else b""), first_line + 1
            yield parse(block, header, first_line, source, layout)
    except DamagedStream as e:
        if header is None:
            raise FeedError(f"{source}: {e}") from e
        # the rows before the damage are used; the damage is kept as the file's last reject
        empty = parse(b"", header, e.line, source, layout)
        yield Parsed(empty.batch, (Rejected(source, e.line, f"{e}; the rows before it are used"),))
        return
    if header is None:
        raise FeedError(f"{source}: empty file, no header")
