import numpy as np
import pytest

from detector import ids


@pytest.mark.parametrize("value, mcc, mnc, carrier", [
    ("460001234567890", "460", "00", "China Mobile"),
    ("460110000000001", "460", "11", "China Telecom"),
    ("310150123456789", "310", "150", "310-150"),
])
def test_imsi_split(value, mcc, mnc, carrier):
    parsed = ids.parse_imsi(value)
    assert (parsed.mcc, parsed.mnc) == (mcc, mnc)
    assert parsed.msin == value[len(mcc) + len(mnc):]
    assert ids.carrier_for_imsi(value) == carrier


@pytest.mark.parametrize("bad", ["46000123456789", "4600012345678901", "46000123456789x", ""])
def test_imsi_rejects(bad):
    with pytest.raises(ids.InvalidIdentifier, match="imsi"):
        ids.parse_imsi(bad)


@pytest.mark.parametrize("value, expected", [
    ("+86 138-0000-0001", "8613800000001"),
    ("008613800000001", "8613800000001"),
    ("10086", "10086"),
])
def test_msisdn(value, expected):
    assert ids.normalise_msisdn(value) == expected


def test_msisdn_rejects_letters():
    with pytest.raises(ids.InvalidIdentifier, match="msisdn"):
        ids.normalise_msisdn("86abc")


def test_imei_forms():
    # 490154203237518 is the textbook IMEI (check digit 8)
    assert ids.parse_imei("49015420323751").imei == "490154203237518"
    full = ids.parse_imei("490154203237518")
    assert (full.imei, full.tac, full.sv) == ("490154203237518", "49015420", None)
    sv = ids.parse_imei("4901542032375107")
    assert (sv.imei, sv.sv, sv.tac) == ("490154203237518", "07", "49015420")
    with pytest.raises(ids.InvalidIdentifier, match="Luhn"):
        ids.parse_imei("490154203237517")
    with pytest.raises(ids.InvalidIdentifier, match="IMEISV"):
        ids.parse_imei("4901542032")


def test_iccid_and_cells():
    assert ids.parse_iccid("8986001234567890123") == "8986001234567890123"
    with pytest.raises(ids.InvalidIdentifier, match="iccid"):
        ids.parse_iccid("89860012")
    assert ids.canonical_cell("460-00-04097-0012345") == "460-00-4097-12345"
    with pytest.raises(ids.InvalidIdentifier, match="cell_id"):
        ids.canonical_cell("460-00-4097")


def test_a_shared_cell_is_one_radio_cell_under_every_networks_id():
    assert ids.radio_cell("460-01-5031-79213059") == ids.radio_cell("460-11-5031-79213059") == "460-5031-79213059"
    assert ids.radio_cell("460-00-5031-79213059") != ids.radio_cell("460-00-5031-79213058")
    assert ids.radio_cell("250-01-5031-79213059") != ids.radio_cell("460-01-5031-79213059")
    assert ids.radio_cell("cell-A") == "cell-A"


def test_luhn_arrays_match_scalar():
    bodies = np.array([49015420323751, 35209900176148, 86000000000001], np.int64)
    full = ids.luhn_complete_array(bodies, 14)
    assert [str(v) for v in full] == [str(b) + str(ids.luhn_check_digit(str(b))) for b in bodies]
    assert ids.luhn_valid_array(full, 15).all()
    assert not ids.luhn_valid_array(full + 1, 15).any()


@pytest.mark.parametrize("number, text", [
    (1010000000001, "001010000000001"),          # test PLMN 001-01
    (460001234567890, "460001234567890"),
    ("1010000000001", "001010000000001"),        # a number's digits as older stores wrote them
    (np.int64(999990000000042), "999990000000042"),
])
def test_a_stored_imsi_gets_its_15_digits_back(number, text):
    assert ids.imsi_text(number) == text
    assert ids.parse_imsi(ids.imsi_text(number)).digits == text


def test_a_stored_imei_of_a_tac_beginning_with_zero_gets_its_15_digits_back():
    imei = ids.parse_imei("01234567890123").imei
    assert imei.startswith("0") and ids.imei_text(int(imei)) == imei
    assert ids.imei_texts(np.array([int(imei), 490154203237518])) == [imei, "490154203237518"]
    assert ids.imsi_texts(np.array([1010000000001], np.int64)) == ["001010000000001"]
    assert ids.imsi_texts(()) == []


@pytest.mark.parametrize("number", [0, -1, 10 ** 15])
def test_a_stored_number_that_cannot_be_an_imsi_is_refused(number):
    with pytest.raises(ids.InvalidIdentifier, match="imsi"):
        ids.imsi_text(number)


def test_a_stored_msisdn_is_its_e164_digits():
    assert ids.msisdn_text(8613800138000) == "8613800138000"


def test_a_stored_tac_beginning_with_zero_gets_its_8_digits_back():
    imei = ids.parse_imei("01104542000001")
    assert ids.tac_text(int(imei.imei) // 10 ** 7) == imei.tac == "01104542"
