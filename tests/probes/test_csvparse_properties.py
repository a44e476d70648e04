"""Properties of the CSV parser over generated input: arbitrary bytes never crash it, every
refused row carries its line and reason, a row's fate does not depend on its neighbours, the
block size changes nothing, and a renamed layout parses as the canonical one."""

from __future__ import annotations

import os
import tempfile
import zoneinfo
from dataclasses import astuple
from datetime import datetime
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.records import iso
from detector.testing import T0, Row, imei
from probes.csvparse import (
    CDR_FIELDS, REGISTRATION_FIELDS, FeedError, Layout, Parsed, parse_cdr_block,
    parse_registration_block, read_feed_file,
)

CDR_HEADER = list(CDR_FIELDS)
REG_HEADER = list(REGISTRATION_FIELDS) + ["carrier"]
FIRST_LINE = 2
# GOIPWATCH_FUZZ_EXAMPLES raises the count for a longer search than the suite's
SETTINGS = settings(max_examples=int(os.environ.get("GOIPWATCH_FUZZ_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ---- strategies ------------------------------------------------------------------------

def n_digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


@st.composite
def good_rows(draw) -> Row:
    """A row the canonical layout accepts."""
    kind = draw(st.sampled_from(["voice", "sms", "data"]))
    result = draw(st.sampled_from({"voice": ["answered", "unanswered", "busy", "failed"],
                                   "sms": ["delivered", "failed"], "data": ["ok"]}[kind]))
    return Row(
        record_type=kind,
        direction="MO" if kind == "data" else draw(st.sampled_from(["MO", "MT"])),
        start_time=iso(T0 + draw(st.integers(0, 1800))),
        duration_s=str(draw(st.integers(0, 86_400))),
        imsi="4600" + draw(n_digits(11)),
        msisdn="86" + str(draw(st.integers(10**10, 10**11 - 1))),
        imei=draw(st.sampled_from(["", imei(draw(st.integers(0, 999_999)))])),
        peer="" if kind == "data" else str(draw(st.integers(1, 10**13))),
        cell_id=f"460-00-{draw(st.integers(1, 65535))}-{draw(st.integers(1, 10**6))}",
        result=result,
    )


def line_of(row: Row) -> bytes:
    return ",".join(astuple(row)).encode()


# a line of anything but a newline: text with the characters that trip parsers (NUL, CR,
# quotes, commas, non-ASCII digits and spaces), raw bytes (often not UTF-8), and good rows
# with one field spoilt
_nasty = st.sampled_from(["\x00", "\r", '"', ",", " ", "\t", "٣", "\u00a0", "\ufeff", "x", "1"])
noise_text = st.lists(st.one_of(_nasty, st.characters(blacklist_characters="\n", blacklist_categories=("Cs",))),
                      max_size=40).map("".join)
noise_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b""))


@st.composite
def spoilt_rows(draw) -> bytes:
    fields = list(astuple(draw(good_rows())))
    i = draw(st.integers(0, len(fields) - 1))
    fields[i] = draw(st.one_of(noise_text, st.sampled_from(["", " 30 ", "46000", "+", "-1"])))
    return ",".join(fields).encode("utf-8")


any_line = st.one_of(good_rows().map(line_of), spoilt_rows(), noise_text.map(str.encode),
                     noise_bytes)


def body_of(lines: list[bytes], crlf: bool = False) -> bytes:
    end = b"\r\n" if crlf else b"\n"
    return b"".join(line + end for line in lines)


def physical_lines(body: bytes) -> int:
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


# ---- checks shared by the properties ---------------------------------------------------

def check_accounting(parsed: Parsed, body: bytes, source: str) -> None:
    """Each line is kept, refused (with its line and a reason) or blank, exactly once."""
    n = physical_lines(body)
    kept = parsed.batch.line.tolist()
    refused = [r.line for r in parsed.rejected]
    assert len(kept) + len(refused) + parsed.blank_lines == n
    assert len(set(kept) | set(refused)) == len(kept) + len(refused)
    assert all(FIRST_LINE <= x < FIRST_LINE + n for x in kept + refused)
    for r in parsed.rejected:
        assert r.source == source and r.reason
    for name in ("ts", "record_type", "imsi", "cell", "line"):
        if hasattr(parsed.batch, name):
            assert len(getattr(parsed.batch, name)) == len(parsed.batch)


def records_of(parsed: Parsed) -> list:
    return list(parsed.batch.records())


# ---- arbitrary bytes -------------------------------------------------------------------

@SETTINGS
@given(st.binary(max_size=400), st.booleans())
def test_arbitrary_bytes_never_crash_the_block_parsers(body, registrations):
    parse, header = ((parse_registration_block, REG_HEADER) if registrations
                     else (parse_cdr_block, CDR_HEADER))
    parsed = parse(body, header, FIRST_LINE, "fuzz.csv")
    check_accounting(parsed, body, "fuzz.csv")


@SETTINGS
@given(st.lists(any_line, max_size=12))
def test_arbitrary_lines_never_crash_and_refused_lines_keep_their_text(lines):
    body = body_of(lines)
    parsed = parse_cdr_block(body, CDR_HEADER, FIRST_LINE, "fuzz.csv")
    check_accounting(parsed, body, "fuzz.csv")
    for r in parsed.rejected:
        line = lines[r.line - FIRST_LINE]
        if b'"' not in body and r.reason != "not UTF-8":
            assert r.raw.encode() == line.removesuffix(b"\r")   # the row as it was, NUL and all


@SETTINGS
@given(st.one_of(st.binary(max_size=300),
                 st.lists(any_line, max_size=10).map(
                     lambda ls: body_of([",".join(CDR_FIELDS).encode()] + ls))),
       st.sampled_from([16, 64, 1 << 20]))
def test_arbitrary_files_are_read_or_refused_whole_never_crash(content, block_bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(content)
        try:
            parsed = list(read_feed_file(path, "cdr", block_bytes=block_bytes))
        except FeedError as e:
            assert "fuzz.csv" in str(e)
            return
    lines = [x for p in parsed for x in p.batch.line.tolist()] + \
        [r.line for p in parsed for r in p.rejected]
    assert len(lines) == len(set(lines)) and all(x >= 2 for x in lines)


# ---- neighbours and blocks -------------------------------------------------------------

@SETTINGS
@given(st.lists(any_line, max_size=12), st.booleans())
def test_a_row_is_parsed_the_same_whatever_its_neighbours(lines, crlf):
    """Good rows beside bad ones give exactly the batch the good rows alone give: each line
    parsed in the block equals that line parsed on its own."""
    body = body_of(lines, crlf)
    whole = parse_cdr_block(body, CDR_HEADER, FIRST_LINE, "f.csv")
    alone = [parse_cdr_block(body_of([line], crlf), CDR_HEADER, FIRST_LINE + i, "f.csv")
             for i, line in enumerate(lines)]
    assert records_of(whole) == [r for p in alone for r in records_of(p)]
    assert whole.batch.line.tolist() == [x for p in alone for x in p.batch.line.tolist()]
    assert sorted((r.line, r.reason) for r in whole.rejected) == \
        sorted((r.line, r.reason) for p in alone for r in p.rejected)
    good_only = parse_cdr_block(body_of([line for line, p in zip(lines, alone) if len(p.batch)],
                                        crlf), CDR_HEADER, FIRST_LINE, "f.csv")
    assert records_of(whole) == records_of(good_only)
    # the same cell table too (the engine numbers cells in the order it meets them)
    assert whole.batch.cells == good_only.batch.cells
    assert whole.batch.cell.tolist() == good_only.batch.cell.tolist()


@SETTINGS
@given(st.lists(any_line, max_size=12), st.sampled_from([8, 50, 200]))
def test_the_block_size_changes_nothing(lines, block_bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.csv"
        path.write_bytes(body_of([",".join(CDR_FIELDS).encode()] + lines))
        small = list(read_feed_file(path, "cdr", block_bytes=block_bytes))
        big = list(read_feed_file(path, "cdr"))
    assert [r for p in small for r in records_of(p)] == [r for p in big for r in records_of(p)]
    assert sorted((r.line, r.reason) for p in small for r in p.rejected) == \
        sorted((r.line, r.reason) for p in big for r in p.rejected)


# ---- registrations ---------------------------------------------------------------------

@st.composite
def good_registrations(draw) -> tuple[str, ...]:
    return ("4600" + draw(n_digits(11)), "86" + str(draw(st.integers(10**10, 10**11 - 1))),
            "8986" + draw(n_digits(15)), iso(T0 - draw(st.integers(0, 10**6))),
            draw(st.text("0123456789abcdef", min_size=16, max_size=64)),
            draw(st.text("ABCDEFGH0123456789", min_size=1, max_size=8)),
            draw(st.sampled_from(["", "China Mobile", "某运营商"])))


@st.composite
def spoilt_registrations(draw) -> bytes:
    fields = list(draw(good_registrations()))
    i = draw(st.integers(0, len(fields) - 1))
    fields[i] = draw(st.one_of(noise_text, st.sampled_from(["", "\x00", "CH\x0001"])))
    return ",".join(fields).encode()


@SETTINGS
@given(st.lists(st.one_of(good_registrations().map(lambda r: ",".join(r).encode()),
                          spoilt_registrations(), noise_bytes), max_size=10))
def test_registrations_beside_bad_rows_are_those_of_the_good_rows_alone(lines):
    body = body_of(lines)
    whole = parse_registration_block(body, REG_HEADER, FIRST_LINE, "r.csv")
    check_accounting(whole, body, "r.csv")
    alone = [parse_registration_block(body_of([line]), REG_HEADER, FIRST_LINE + i, "r.csv")
             for i, line in enumerate(lines)]
    assert records_of(whole) == [r for p in alone for r in records_of(p)]
    for reg in records_of(whole):   # what reaches the store's text columns is clean text
        for text in (reg.iccid, reg.id_hash, reg.channel, reg.carrier):
            assert not any(ord(c) < 32 or ord(c) == 127 for c in text)


# ---- layouts ---------------------------------------------------------------------------

SPELT = {"record_type": ("voice", "sms", "data"), "direction": ("MO", "MT"),
         "result": ("answered", "unanswered", "busy", "failed", "delivered", "ok")}
FORMATS = ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%Y%m%d%H%M%S"]
ZONES = ["UTC", "Asia/Shanghai", "Asia/Kolkata"]   # fixed offsets: no folds to guess
name_chars = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz0123456789",
                     min_size=1, max_size=12)


@st.composite
def layouts(draw) -> tuple[Layout, list[str]]:
    """A layout with renamed columns (in another order) and spellings of its own."""
    names = draw(st.lists(name_chars, min_size=len(CDR_FIELDS), max_size=len(CDR_FIELDS),
                          unique=True))
    columns = dict(zip(CDR_FIELDS, names))
    values = {}
    for field, canon in SPELT.items():
        spellings = draw(st.lists(name_chars.map(lambda s: "X" + s), min_size=len(canon),
                                  max_size=len(canon), unique=True))
        values[field] = dict(zip(spellings, canon))
    layout = Layout(columns=columns, values=values, timestamp_format=draw(st.sampled_from(FORMATS)),
                    timezone=draw(st.sampled_from(ZONES)))
    return layout, draw(st.permutations(CDR_FIELDS))


def in_layout(row: Row, layout: Layout, order: list[str]) -> bytes:
    fields = dict(zip(CDR_FIELDS, astuple(row)))
    for field, spellings in layout.values.items():
        fields[field] = {c: s for s, c in spellings.items()}[fields[field]]
    utc = datetime.fromisoformat(row.start_time.replace("Z", "+00:00"))
    fields["start_time"] = utc.astimezone(zoneinfo.ZoneInfo(layout.timezone)).strftime(
        layout.timestamp_format)
    return ",".join(fields[f] for f in order).encode()


@SETTINGS
@given(layouts(), st.lists(good_rows(), min_size=1, max_size=8),
       st.lists(st.one_of(noise_text.map(str.encode), noise_bytes), max_size=4))
def test_a_renamed_layout_parses_as_the_canonical_one(layout_order, rows, noise):
    layout, order = layout_order
    header = [layout.column(f) for f in order]
    canonical = parse_cdr_block(body_of([line_of(r) for r in rows]), CDR_HEADER, FIRST_LINE, "c.csv")
    assert len(canonical.batch) == len(rows)
    mapped = body_of([in_layout(r, layout, order) for r in rows] + noise)
    parsed = parse_cdr_block(mapped, header, FIRST_LINE, "m.csv", layout)
    check_accounting(parsed, mapped, "m.csv")
    assert records_of(parsed)[:len(rows)] == records_of(canonical)
    assert np.array_equal(parsed.batch.line[:len(rows)], canonical.batch.line)
