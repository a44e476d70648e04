"""Pure decoders, on literal values taken from the shared captures."""

from probes.signalling import codec
from probes.signalling.sip import ims_imsi, instance_imei, pani_cell, uri_number


def test_tbcd_and_address_strings():
    assert codec.tbcd("2143658701") == "1234567810"          # Diameter MSISDN (ULA)
    assert codec.tbcd("64004001000001f1") == "460004100000101"  # MAP IMSI
    assert codec.tbcd("1f23") is None                         # filler only at the end
    assert codec.address_string("911497427533f3") == "41792457333"  # SRI-for-SM msisdn
    assert codec.address_string("11497427533f3") is None      # no extension bit: not an AddressString
    assert codec.address_string("zz") is None


def test_e164_keeps_wire_digits_dialled_drops_prefixes():
    assert codec.e164("0012000") == "0012000"  # a wire MSISDN is never "international-prefixed"
    assert codec.dialled("0097239287044") == "97239287044"
    assert codec.dialled("+88270006") == "88270006"
    assert codec.dialled("4891F") == "4891"   # ISUP end-of-pulsing signal
    assert codec.dialled("unavailable") is None


def test_imei_from_imei_imeisv_and_spare_check_digit():
    assert codec.imei("3571490400677300") == "357149040067732"  # IMEISV
    assert codec.imei("357149040067732") == "357149040067732"
    assert codec.imei("436587092110203") == "436587092110204"   # wire spare digit replaced
    assert codec.imei("12") is None


def test_user_equipment_info_value_encodings():
    one_digit_per_octet = "04000904010705030307070600000000"  # magma's Gx/Gy quirk
    assert codec.ue_equipment_value(one_digit_per_octet) == "4094175337760000"
    assert codec.ue_equipment_value("3335343432373036") == "35442706"      # ASCII digits
    assert codec.ue_equipment_value("5344726023337420") == "3544270632334702"  # TBCD


def test_cells():
    assert codec.plmn("00f110") == ("001", "01")
    assert codec.plmn("130014") == ("310", "410")
    assert codec.user_location_info("8200f110000100f11000000101") == "001-01-1-257"
    assert codec.user_location_info("8000f1100001") is None  # TAI alone names no cell
    assert codec.cgi_fixed_length("0475301b5d7a57") == "405-037-7005-31319"
    assert codec.cell(1, 1, 1, 257) == "001-01-1-257"       # integer MNC padded
    assert codec.cell(896, 457, 0x1234, 305419896) == "896-457-4660-305419896"
    assert codec.pani_cell("31041000011a2d001") == "310-410-1-27447297"


def test_sip_helpers():
    assert uri_number("tel:+88270006") == "88270006"
    assert uri_number("tel:122;phone-context=ims.example") == "122"
    assert uri_number("sip:061963177@italtel.it;user=phone") == "061963177"
    assert uri_number("sip:voi18063@sip.cybercity.dk") is None
    assert uri_number("sip:sip.cybercity.dk") is None
    assert ims_imsi("sip:310410010001002@ims.mnc410.mcc310.3gppnetwork.org") == "310410010001002"
    assert ims_imsi("sip:310410010001002@ims.mnc260.mcc310.3gppnetwork.org") is None
    assert pani_cell("3GPP-E-UTRAN-FDD;utran-cell-id-3gpp=31041000011a2d001") == "310-410-1-27447297"
    assert instance_imei(('+g.3gpp.smsip', '+sip.instance="<urn:gsma:imei:35442706-323347-9>"')) \
        == "354427063233479"
