"""Feeds as carriers have them, through their layouts: the three shapes of docs/feeds.md map
to the expected canonical values, bad rows are refused with their line and a reason naming
the feed's column and value, pseudo IMSIs are stable and the same across CDR and
registration feeds; arbitrary values in mapped columns never crash the mapping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector import ids
from detector.records import Direction, RecordType, Result
from probes.cdrfile import read_cdr_file
from probes.csvparse import parse_cdr_block, parse_registration_block, read_feed_file
from probes.schema import Layout
from tests.probes.feed_shapes import (SHAPES, call_history, extract_registrations, msc_export,
                                      msisdn_extract)


def read(path, layout, kind="cdr"):
    parsed = list(read_cdr_file(path, layout) if kind == "cdr" else
                  read_feed_file(path, kind, layout))
    records = [r for p in parsed for r in p.batch.records()]
    lines = np.concatenate([p.batch.line for p in parsed]).tolist()
    rejected = sorted((r for p in parsed for r in p.rejected), key=lambda r: r.line)
    return records, lines, rejected


@pytest.mark.parametrize("make", SHAPES, ids=lambda m: m.__name__)
def test_each_shape_maps_its_good_rows_and_refuses_the_bad_with_line_and_feed_column(tmp_path, make):
    shape = make()
    records, lines, rejected = read(shape.write(tmp_path), shape.layout())
    assert len(records) == len(shape.rows) - len(shape.bad)
    assert {r.line: r.reason for r in rejected}.keys() == shape.bad.keys()
    for r in rejected:
        assert r.reason.startswith(shape.bad[r.line]), r.reason
        assert r.raw                        # the feed's row as it was
    assert not set(lines) & shape.bad.keys()
    assert all(ids.is_pseudo_imsi(r.imsi) for r in records)


def test_msc_export_rounds_fractions_up_and_takes_the_subscriber_from_a_or_b(tmp_path):
    shape = msc_export()
    records, lines, _ = read(shape.write(tmp_path), shape.layout())
    by_line = dict(zip(lines, records))
    first = by_line[2]   # MOC 8800 -> 8900, 0.00 s, local 09:00 in Shanghai
    assert (first.record_type, first.direction, first.msisdn, first.peer) == \
        (RecordType.VOICE, Direction.MO, "8800", "8900")
    assert first.duration_s == 0 and first.result == Result.UNANSWERED
    assert first.start_time == 1791158400 + 3600
    assert first.cell_id == "460-00-4097-31000"
    second = by_line[3]  # MTC: the subscriber is B
    assert (second.direction, second.msisdn, second.peer) == (Direction.MT, "8801", "8901")
    assert second.duration_s == 8 and second.result == Result.ANSWERED   # 7.25 s, up
    sms = by_line[4]
    assert sms.record_type == RecordType.SMS and sms.result == Result.DELIVERED
    assert first.imsi == ids.pseudo_imsi("msisdn", "8800")
    assert second.imsi == ids.pseudo_imsi("msisdn", "8801")


def test_msisdn_extract_derives_direction_from_the_served_number(tmp_path):
    shape = msisdn_extract()
    records, lines, _ = read(shape.write(tmp_path), shape.layout())
    by_line = dict(zip(lines, records))
    mo, mt = by_line[2], by_line[3]       # rows 0 and 1 of the extract
    assert (mo.direction, mo.peer) == (Direction.MO, "8613900000000")
    assert (mt.direction, mt.peer) == (Direction.MT, "8613900000001")
    assert mt.duration_s == 2            # 1700 ms, to the nearest second
    assert mo.start_time == 1791158400 + 3600
    assert mo.cell_id == "460-00-4097-12345600"        # the ECI alone, with plmn and TAC
    assert mt.cell_id == "460-00-4098-12345601"        # MCC-MNC-ECI
    assert mo.imei == ids.parse_imei(mo.imei[:14]).imei
    assert mo.imsi == ids.pseudo_imsi("msisdn", "8613800000000")


def test_pseudo_imsis_are_the_same_in_the_cdrs_and_the_registrations(tmp_path):
    shape = msisdn_extract()
    cdrs, _, _ = read(shape.write(tmp_path), shape.layout(0))
    regs, _, rejected = read(extract_registrations(tmp_path), shape.layout(1), "registrations")
    assert {r.imsi for r in cdrs} == {r.imsi for r in regs}
    assert len(regs) == 5 and [r.line for r in rejected] == [7]
    assert rejected[0].reason.startswith("msisdn (MSISDN): 'not-a-number'")
    assert {r.carrier for r in regs} == {ids.PSEUDO_CARRIER} and "pseudo" in ids.PSEUDO_CARRIER
    assert {r.channel for r in regs} == {"retail"}


def test_call_history_keys_devices_takes_constants_and_lac_0(tmp_path):
    shape = call_history()
    records, lines, _ = read(shape.write(tmp_path), shape.layout())
    first = dict(zip(lines, records))[2]
    assert (first.record_type, first.direction, first.msisdn, first.imei) == \
        (RecordType.VOICE, Direction.MT, "", None)
    assert first.duration_s == 0 and first.result == Result.UNANSWERED
    assert first.cell_id == "460-01-0-20500"
    assert first.imsi == ids.pseudo_imsi("id", "17")
    assert len({r.imsi for r in records}) == 4


def test_pseudo_imsis_are_stable_and_keyed_by_kind():
    # the derivation is declared stable: these values never change between releases
    assert ids.pseudo_imsi("msisdn", "8613800000000") == "999195335244691"
    assert ids.pseudo_imsi("id", "17") == STABLE_ID_17
    assert ids.pseudo_imsi("id", "17") != ids.pseudo_imsi("msisdn", "17")
    assert ids.is_pseudo_imsi(ids.pseudo_imsi("id", "17"))
    assert not ids.is_pseudo_imsi("460001234567890")
    assert ids.carrier_for_imsi(ids.pseudo_imsi("id", "x")) == ids.PSEUDO_CARRIER
    assert ids.pseudo_imsi_array("id", ["17", "17"]).tolist() == [int(STABLE_ID_17)] * 2


STABLE_ID_17 = "999786186064933"


def test_the_canonical_layout_refuses_what_only_a_declared_layout_accepts(tmp_path):
    """Fractions and epoch times are read only when the layout says so."""
    header = "record_type,direction,start_time,duration_s,imsi,msisdn,imei,peer,cell_id,result"
    line = b"voice,MO,2026-10-05T08:00:00Z,12.5,460001234567890,8613800000001,,8613900000000,460-00-1-1,answered\n"
    parsed = parse_cdr_block(line, header.split(","), 2, "c.csv")
    assert parsed.rejected[0].reason == "duration_s: '12.5' is not whole seconds from 0 to 86400"
    parsed = parse_cdr_block(line, header.split(","), 2, "c.csv", Layout(duration_rounding="nearest"))
    assert not parsed.rejected and parsed.batch.duration.tolist() == [13]


# ---- properties ----------------------------------------------------------------------

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELD = st.text(st.characters(blacklist_characters=",\n\r\"", blacklist_categories=("Cs",)),
                max_size=20)


@SETTINGS
@given(st.sampled_from(SHAPES), st.lists(st.lists(FIELD, min_size=9, max_size=9), min_size=1,
                                          max_size=8))
def test_arbitrary_values_in_mapped_columns_never_crash_and_every_refusal_has_its_line(make, rows):
    shape = make()
    header = shape.header.split(",")
    body = "".join(",".join(r[: len(header)]) + "\n" for r in rows).encode()
    parsed = parse_cdr_block(body, header, 2, "f.csv", shape.layout())
    lines = set(parsed.batch.line.tolist())
    refused = {r.line for r in parsed.rejected}
    assert lines | refused == set(range(2, 2 + len(rows)))
    assert not lines & refused
    assert all(r.reason and r.source == "f.csv" for r in parsed.rejected)
    assert all(ids.is_pseudo_imsi(int(i)) for i in parsed.batch.imsi)


@SETTINGS
@given(st.lists(st.lists(FIELD, min_size=4, max_size=4), min_size=1, max_size=8))
def test_arbitrary_registration_values_never_crash(rows):
    layout = msisdn_extract().layout(1)
    header = ["MSISDN", "iccid", "opened", "id_hash"]
    body = "".join(",".join(r) + "\n" for r in rows).encode()
    parsed = parse_registration_block(body, header, 2, "r.csv", layout)
    assert len(parsed.batch) + len(parsed.rejected) == len(rows)
    assert all(r.reason and r.line >= 2 for r in parsed.rejected)
