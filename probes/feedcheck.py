"""A dry run of a feed through its layout (``goipwatch check-feed``): how many rows map, why
the others are refused and where, a sample of the canonical rows, and in plain words what
in the layout does not fit the feed, before the daemon is started on it.

Reading goes through the readers the daemon uses (:func:`probes.cdrfile.read_cdr_file`,
:func:`probes.csvparse.read_feed_file`), so a feed maps here exactly as it will there.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from detector import ids
from detector.records import iso
from detector.wording import counted
from probes import schema
from probes.cdrfile import cdr_format, read_cdr_file
from probes.compressed import DECOMPRESSION_ERRORS, CompressionError, open_stream
from probes.csvparse import (CANONICAL, CDR_FIELDS, REGISTRATION_FIELDS, FeedError, Layout,
                             Parsed, read_feed_file)

KINDS = {"cdr": CDR_FIELDS, "registrations": REGISTRATION_FIELDS}
KIND_OF_PROBE = {"cdr_csv": "cdr", "kafka": "cdr", "registrations_csv": "registrations"}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A probe whose layout may read the feed."""

    name: str
    type: str
    layout: Layout

    @property
    def kind(self) -> str:
        return KIND_OF_PROBE[self.type]


CANONICAL_CANDIDATES = (Candidate("canonical CDR", "cdr_csv", CANONICAL),
                        Candidate("canonical registrations", "registrations_csv", CANONICAL))


@dataclass(frozen=True, slots=True)
class Reason:
    what: str                   # the reason without the value it quotes
    count: int
    lines: tuple[int, ...]      # the first few lines (byte offsets in a BER file)
    examples: tuple[str, ...]   # a few distinct values that were refused


@dataclass(frozen=True, slots=True)
class Check:
    source: str
    fmt: str                    # csv, ber or gtp_prime
    probe: Candidate
    mapped: int
    reasons: tuple[Reason, ...]  # commonest first
    sample: tuple[dict, ...]

    @property
    def refused(self) -> int:
        return sum(r.count for r in self.reasons)

    @property
    def rows(self) -> int:
        return self.mapped + self.refused


# ---- which probe reads the feed ------------------------------------------------------

def csv_header(path: Path) -> list[str]:
    """The first line of a CSV feed (compressed or not), split into its column names."""
    try:
        with open_stream(path) as fh:
            first = fh.readline(1 << 20)
    except CompressionError as e:
        raise FeedError(str(e)) from e
    except DECOMPRESSION_ERRORS as e:
        raise FeedError(f"{path.name}: compressed stream damaged: {e}") from e
    text = first.rstrip(b"\r\n").decode("utf-8-sig", "replace")
    try:
        return [h.strip() for h in next(csv.reader([text]), [])]
    except csv.Error as e:
        raise FeedError(f"{path.name}: header unreadable: {e}") from None


def missing_columns(header: list[str], cand: Candidate) -> list[tuple[str, str]]:
    """(column, field) the candidate's layout reads that the header lacks."""
    sources = schema.CDR_SOURCES if cand.kind == "cdr" else schema.REGISTRATION_SOURCES
    return [(col, name) for col, name in
            schema.needed_columns(cand.layout, KINDS[cand.kind], sources) if col not in header]


def _missing_words(missing: list[tuple[str, str]]) -> str:
    return ", ".join(f"{col!r} (layout.columns.{name})" if col != name else
                     f"{col!r} (the canonical column of {name}; another name goes in "
                     f"layout.columns.{name})" for col, name in missing)


def choose(path: Path, fmt: str, candidates: Iterable[Candidate]) -> Candidate:
    """The probe whose layout reads ``path``: the only one there is, or the one whose columns
    the header has. Raises :class:`FeedError` saying which columns each lacks."""
    cands = list(candidates)
    if fmt != "csv":     # BER and GTP' are CDRs, read by the standard's mapping
        cdrs = [c for c in cands if c.kind == "cdr"]
        return cdrs[0] if cdrs else CANONICAL_CANDIDATES[0]
    header = csv_header(path)
    fits = [c for c in cands if not missing_columns(header, c)]
    if fits:
        return fits[0]
    if not cands:
        raise FeedError(f"{path.name}: the configuration has no CSV probe (cdr_csv, kafka, "
                        "registrations_csv) whose layout could read it")
    lacks = "; ".join(f"probe {c.name!r} ({c.type}) reads {_missing_words(missing_columns(header, c))}"
                      for c in cands)
    raise FeedError(f"{path.name}: the header lacks column(s) the layout names: {lacks}. "
                    f"The header's columns are: {', '.join(header) or '(none)'}")


# ---- the dry run ---------------------------------------------------------------------

_FIELD_REASON = re.compile(r"^(?P<label>[^:'\"]+): (?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
                           r" (?P<why>.*)$")
# a quoted value, or an event time (late rows quote the watermark they fell behind)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\d{4}-\d\d-\d\dT[\d:]+Z")


def split_reason(reason: str) -> tuple[str, str | None]:
    """(the reason without its value, the value as quoted) — ``"imsi: '8800' must be 15
    digits"`` is ``("imsi: … must be 15 digits", "'8800'")``."""
    m = _FIELD_REASON.match(reason)
    if m:
        return f"{m['label']}: … {m['why']}", m["value"]
    return _QUOTED.sub("…", reason), None


def _batches(path: Path, cand: Candidate) -> Iterable[Parsed]:
    if cand.kind == "cdr":
        return read_cdr_file(path, cand.layout)
    return read_feed_file(path, "registrations", cand.layout)


def check_feed(path: Path, cand: Candidate, sample: int = 5, lines: int = 5) -> Check:
    """Read all of ``path`` with the candidate's layout and summarise it."""
    fmt = cdr_format(path) if cand.kind == "cdr" else "csv"
    mapped = 0
    counts: Counter[str] = Counter()
    where: dict[str, list[int]] = {}
    values: dict[str, list[str]] = {}
    rows: list[dict] = []
    for parsed in _batches(path, cand):
        mapped += len(parsed.batch)
        if len(rows) < sample:
            rows += _canonical(parsed, cand)[: sample - len(rows)]
        for r in parsed.rejected:
            what, value = split_reason(r.reason)
            counts[what] += 1
            seen = where.setdefault(what, [])
            if len(seen) < lines:
                seen.append(r.line)
            examples = values.setdefault(what, [])
            if value is not None and value not in examples and len(examples) < 3:
                examples.append(value)
    reasons = tuple(Reason(w, n, tuple(sorted(where[w])), tuple(values[w]))
                    for w, n in counts.most_common())
    return Check(path.name, fmt, cand, mapped, reasons, tuple(rows))


def _canonical(parsed: Parsed, cand: Candidate) -> list[dict]:
    b = parsed.batch
    out = []
    if cand.kind == "cdr":
        for line, rec in zip(b.line.tolist(), b.records()):
            out.append({"line": line, **rec.canonical()})
    else:
        for line, rec in zip(b.line.tolist(), b.records()):
            out.append({"line": line, "imsi": rec.imsi, "msisdn": rec.msisdn, "iccid": rec.iccid,
                        "activated_at": iso(rec.activated_at), "id_hash": rec.id_hash,
                        "channel": rec.channel, "carrier": rec.carrier})
    return [mark_pseudo(row, cand.layout) for row in out]


def mark_pseudo(row: dict, layout: Layout) -> dict:
    """A canonical row with ``pseudo_imsi`` naming the key its IMSI was derived from, when
    the layout keys subscribers by something other than an IMSI."""
    if layout.subscriber_key != "imsi" and row.get("imsi") and ids.is_pseudo_imsi(row["imsi"]):
        return {**row, "pseudo_imsi": layout.subscriber_key}
    return row


# ---- plain words ---------------------------------------------------------------------

def layout_notes(layout: Layout, kind: str) -> list[str]:
    """What the layout does besides renaming columns, one line each."""
    notes = []
    if layout.subscriber_key != "imsi":
        col = layout.column("msisdn" if layout.subscriber_key == "msisdn" else "subscriber_id")
        if layout.subscriber_key == "msisdn" and "msisdn" in layout.derive:
            col = f"{layout.column('a_number')}/{layout.column('b_number')}"
        notes.append(f"subscribers are keyed by their {layout.subscriber_key} (column {col}): "
                     f"their IMSIs are pseudo IMSIs, MCC {ids.PSEUDO_MCC} + 12 digits of a "
                     "keyed hash, the same in every feed keyed so")
    if layout.timestamp_format in schema.EPOCH_FORMATS:
        notes.append("times are epoch " + {"epoch_s": "seconds", "epoch_ms": "milliseconds"}[
            layout.timestamp_format])
    elif layout.timezone.upper() != "UTC":
        notes.append(f"times are local time in {layout.timezone} ({layout.timestamp_format})")
    for name, value in sorted(layout.constants.items()):
        notes.append(f"{name} is {value!r} in every row (constant)")
    if kind != "cdr":
        return notes
    if layout.duration_unit != "s" or layout.duration_rounding != "none":
        how = {"none": "whole seconds only (a fraction is refused)",
               "up": "rounded up to the next whole second",
               "nearest": "rounded to the nearest second (halves up)"}[layout.duration_rounding]
        notes.append(f"durations are in {layout.duration_unit}: {how}")
    if "result" in layout.derive:
        notes.append("result is derived from the duration: voice answered when it lasted "
                     "(> 0 s), else unanswered; sms delivered; data ok")
    a, b = layout.column("a_number"), layout.column("b_number")
    if "direction" in layout.derive:
        notes.append(f"direction is derived: MO when the subscriber's msisdn "
                     f"({layout.column('msisdn')}) is {a}, MT when it is {b}; the peer is the other")
    if "msisdn" in layout.derive:
        notes.append(f"msisdn and peer come from {a} and {b} by the direction: MO, the "
                     f"subscriber is {a}; MT, {b}")
    area = "LAC" if layout.cell_format == "ci" else "TAC"
    lac = f"the {area} from column {layout.column('lac')}" if "lac" in layout.columns else \
        f"no {area} in the feed: {area} 0 is used"
    if layout.cell_format == "ci":
        notes.append(f"cells are cell identity numbers of PLMN {layout.plmn}, {lac} "
                     f"(cell id {layout.plmn}-LAC-CI)")
    elif layout.cell_format == "ecgi":
        notes.append(f"cells are ECGIs: the ECI is the cell id, {lac} (cell id MCC-MNC-TAC-ECI)")
    return notes


def hint(what: str, layout: Layout) -> str | None:
    """What to change in the layout for rows refused for ``what``, when it can be told."""
    name = what.split(" ", 1)[0].split(":", 1)[0]
    if name == "duration_s" and "whole" in what:
        return ("the durations have fractions of a second (or are milliseconds): set "
                "layout.duration_rounding = 'up' or 'nearest', and layout.duration_unit = 'ms' "
                "for milliseconds")
    if name == "imsi" and "15 digits" in what:
        return ("the column read as the IMSI does not hold IMSIs: a feed without IMSIs keys "
                "its subscribers by another column, layout.subscriber_key = 'msisdn' or 'id' "
                "(with layout.columns.subscriber_id)")
    if name in ("start_time", "activated_at") and ("does not match" in what or "is not epoch" in what):
        return ("the times are spelled otherwise: set layout.timestamp_format (a strptime "
                "format such as '%Y-%m-%d %H:%M:%S' with layout.timezone, or 'epoch_s' / "
                "'epoch_ms')")
    if name in ("start_time", "activated_at") and "between 1990" in what:
        return ("the times fall outside 1990-2099: epoch milliseconds read as seconds "
                "(timestamp_format = 'epoch_ms'), or the reverse?")
    if name == "cell_id" and layout.cell_format != "canonical":
        return (f"the cell column does not hold what cell_format {layout.cell_format!r} reads: "
                "'ci' a cell identity number, 'ecgi' MCC-MNC-ECI or the ECI alone")
    if name == "cell_id":
        return ("the cells are not MCC-MNC-LAC-CI: a cell number takes layout.cell_format = "
                "'ci' with layout.plmn (and layout.columns.lac when the feed has a LAC); an "
                "ECGI takes cell_format = 'ecgi'")
    if name in ("record_type", "direction", "result") and "is not" in what:
        return (f"the feed spells {name} otherwise: map its values in layout.values.{name}, "
                f"or give it as layout.constants.{name}"
                + (", or derive it (layout.derive)" if name != "record_type" else ""))
    if name == "msisdn" and "is neither" in what:
        return ("the subscriber's number is neither party: check layout.columns.a_number and "
                "b_number, or derive msisdn from the direction instead")
    if name == "imei":
        return "the column read as the IMEI does not hold IMEIs; a feed without them: layout.constants.imei = ''"
    if name == "peer" and "(constant)" not in what:
        return "the peer column is empty or not a number: only data records may lack a peer"
    if name == "msisdn" and "3 to 15" in what:
        return ("the column read as the MSISDN does not hold E.164 numbers; a feed keyed by "
                "an id may leave it empty (layout.constants.msisdn = '')")
    return None


def explain(check: Check) -> list[str]:
    """Plain words about what went wrong, when something did."""
    if not check.refused:
        return []
    out = []
    top = check.reasons[0]
    if not check.mapped and len(check.reasons) == 1:
        out.append(f"{'The' if check.rows == 1 else 'All'} {counted(check.rows, 'row')} "
                   f"{'is' if check.rows == 1 else 'are'} refused, every one for the same reason: "
                   f"{top.what}{_examples(top)}. How the layout reads that field does not fit this feed.")
    elif not check.mapped:
        out.append(f"All {check.rows} rows are refused; the commonest reason ({top.count}): "
                   f"{top.what}{_examples(top)}.")
    for r in check.reasons[:3]:   # a cause of many refusals is the layout's, not the row's
        if 2 * r.count >= check.rows and (h := hint(r.what, check.probe.layout)) is not None:
            out.append(f"{r.what.split(':', 1)[0]}: {h}.")
    return out


def _examples(r: Reason) -> str:
    return f" (values such as {', '.join(r.examples)})" if r.examples else ""


def format_check(check: Check, top: int = 5) -> list[str]:
    """The dry run's report, as lines (the sample as JSON lines)."""
    import json

    where = "byte offsets" if check.fmt == "ber" else "frames" if check.fmt == "gtp_prime" else "lines"
    kind = "CDRs" if check.probe.kind == "cdr" else "registrations"
    out = [f"{check.source}: {check.fmt.replace('_', ' ').upper() if check.fmt != 'csv' else 'CSV'} "
           f"{kind}, read with the layout of {check.probe.name!r} ({check.probe.type})"]
    if check.fmt == "csv":
        out += [f"  {n}" for n in layout_notes(check.probe.layout, check.probe.kind)]
    out.append(f"{counted(check.rows, 'row')}: {check.mapped} map, {check.refused} refused")
    if check.reasons:
        out.append("commonest reasons for refusal:")
        for r in check.reasons[:top]:
            more = ", …" if r.count > len(r.lines) else ""
            out.append(f"  {r.count} × {r.what}{_examples(r)} — {where[:-1] if len(r.lines) == 1 else where} "
                       f"{', '.join(map(str, r.lines))}{more}")
        if len(check.reasons) > top:
            rest = sum(r.count for r in check.reasons[top:])
            out.append(f"  and {counted(rest, 'row')} for {counted(len(check.reasons) - top, 'other reason')}")
    out += explain(check)
    if check.sample:
        out.append("sample of canonical rows (JSON lines):")
        out += [json.dumps(row, ensure_ascii=False) for row in check.sample]
    return out

