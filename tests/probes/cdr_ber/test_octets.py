"""The octet-string decoders inside 32.298 records, on hand-checked values."""

import pytest

from probes.cdr_ber import octets, samples


@pytest.mark.parametrize("raw, digits", [
    ("64000021436587f9", "460000123456789"),       # 15 digits, F filler
    ("13002100000000f0", "310012000000000"),       # the shared ePDG record's IMSI
    ("5302990010671684", "3520990001766148"),       # 16 digits (IMEISV)
    ("1f24", None),                                 # filler before the end
    ("2f13", None),
    ("1a", None),                                   # a nibble that is no digit
])
def test_tbcd(raw, digits):
    assert octets.tbcd(bytes.fromhex(raw)) == digits


@pytest.mark.parametrize("raw, digits", [
    ("916831080031f8", "8613800013"[:10] + "8"),    # international, odd count
    ("81" + "2143", "1234"),                        # unknown TON
    ("0180" + "2143", "1234"),                      # ext bit 0: presentation octet skipped
    ("91" + "a1", None),                            # '*' is not a directory-number digit
    ("91", ""),
    ("", None),
])
def test_bcd_number(raw, digits):
    assert octets.bcd_number(bytes.fromhex(raw)) == digits


@pytest.mark.parametrize("raw, digits", [
    ("0d91" + samples.tbcd("8613912345678").hex(), "8613912345678"),
    ("0481" + "2143", "1234"),
    ("05d0" + "c8329bfd06", None),                  # alphanumeric sender
    ("0d91" + "2143", None),                        # count longer than the digits
])
def test_tp_address(raw, digits):
    assert octets.tp_address(bytes.fromhex(raw)) == digits


@pytest.mark.parametrize("raw, epoch", [
    ("1502251638012b0000", 1424882281),             # the shared ePDG record: 2015-02-25T16:38:01Z
    ("2609212213202b0800", 1790000000),             # 22:13:20 at +08:00 is 14:13:20Z
    ("2609210913202d0500", 1790000000),             # 09:13:20 at -05:00
    ("2613211638012b0000", None),                   # month 13
    ("1502251638012a0000", None),                   # no sign octet
    ("15022516380a2b0000", None),                   # not BCD
    ("150225163801", None),                         # no offset
])
def test_timestamp(raw, epoch):
    assert octets.timestamp(bytes.fromhex(raw)) == epoch


def test_timestamp_round_trips_through_the_sample_encoder():
    for offset in (-720, -90, 0, 330, 840):
        assert octets.timestamp(samples.timestamp(1_790_000_000, offset)) == 1_790_000_000


@pytest.mark.parametrize("value, cell", [
    (samples.uli("460", "00", tac=0x2B3C, eci=0x1A2B3C4), "460-00-11068-27440068"),
    (samples.uli("310", "012", eci=0x0000101), "310-012-0-257"),     # ECGI alone: area 0
    (samples.uli("460", "01", cgi=(0x1234, 0x5678)), "460-01-4660-22136"),
    (samples.uli("460", "01", sai=(0x1234, 0x0042)), "460-01-4660-66"),
    (samples.uli("460", "01", cgi=(1, 2), tac=3, eci=4), "460-01-3-4"),  # ECGI preferred
    (samples.uli("460", "00", tac=0x2B3C), None),                       # an area, no cell
    (bytes([0x18]) + samples.plmn("460", "00") + b"\x2b\x3c", None),    # ECGI announced, absent
])
def test_uli_cell(value, cell):
    assert octets.uli_cell(value) == cell


def test_uli_parts_refuses_a_value_shorter_than_its_flags():
    assert octets.uli_parts(bytes([0x18]) + samples.plmn("460", "00") + b"\x2b\x3c") is None
    assert octets.uli_parts(samples.uli("460", "00", tac=1, eci=2)).keys() == {"tai", "ecgi"}


@pytest.mark.parametrize("mcc, mnc, raw", [("460", "00", "64f000"), ("310", "012", "132010"),
                                          ("234", "15", "32f451")])
def test_plmn(mcc, mnc, raw):
    assert samples.plmn(mcc, mnc).hex() == raw
    assert octets.plmn(bytes.fromhex(raw)) == (mcc, mnc)
