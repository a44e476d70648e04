"""Records built from the 32.298 types and encoded to BER by pycrate, read back through the
entry points: every mapped field lands in its canonical field."""

import pytest

from detector.records import CdrRecord, Direction, RecordType, Result
from probes.cdr_ber import decode_records, samples, schema
from probes.cdr_ber.reader import to_batch
from probes.cdr_ber.mapping import call_result

CELL_CS = "460-00-6699-15437"          # LAC 0x1A2B, CI 0x3C4D under 460-00
CELL_ULI = "460-00-11068-27440068"     # TAC 0x2B3C, ECI 0x1A2B3C4
COMMON = {"imsi": samples.IMSI, "msisdn": samples.MSISDN, "imei": samples.IMEI,
          "start_time": "2026-09-21T14:13:20Z"}


def decode_one(value):
    decoded = decode_records(schema.encode(value), "t.ber")
    assert decoded.rejected == []
    (record,) = decoded.records
    return record


@pytest.mark.parametrize("build, record, expected", [
    (samples.mo_call, "moCallRecord", {"record_type": "voice", "direction": "MO", "duration_s": 75,
                                       "peer": samples.PEER, "cell_id": CELL_CS, "result": "answered"}),
    (samples.mt_call, "mtCallRecord", {"record_type": "voice", "direction": "MT", "duration_s": 42,
                                       "peer": samples.PEER, "cell_id": CELL_CS, "result": "answered"}),
    (samples.mo_sms, "moSMSRecord", {"record_type": "sms", "direction": "MO", "duration_s": 0,
                                     "peer": samples.PEER, "cell_id": CELL_CS, "result": "delivered"}),
    (samples.mt_sms, "mtSMSRecord", {"record_type": "sms", "direction": "MT", "duration_s": 0,
                                     "peer": samples.PEER, "cell_id": CELL_CS, "result": "delivered"}),
    (samples.sgw, "sGWRecord", {"record_type": "data", "direction": "MO", "duration_s": 600,
                                "peer": "", "cell_id": CELL_ULI, "result": "ok"}),
    (samples.pgw, "pGWRecord", {"record_type": "data", "direction": "MO", "duration_s": 600,
                                "peer": "", "cell_id": CELL_ULI, "result": "ok"}),
    (samples.epdg, "ePDGRecord", {"record_type": "data", "direction": "MO", "duration_s": 600,
                                  "peer": "", "cell_id": "", "result": "ok"}),
])
def test_every_mapped_field(build, record, expected):
    got = decode_one(build())
    assert got.record == record
    assert got.offset == 0
    assert got.canonical() == {**COMMON, **expected}


@pytest.mark.parametrize("build", [samples.mo_call, samples.mt_sms, samples.epdg])
def test_a_ber_record_is_the_cdr_record_its_batch_row_reads_back(build):
    got = decode_one(build())
    (row,) = to_batch([got], "t.ber").records()
    assert isinstance(got, CdrRecord)
    assert row.canonical() == got.canonical()


def test_mt_call_starts_at_answer_time_without_a_seizure_time():
    name, v = samples.mt_call()
    del v["seizureTime"]
    assert decode_one((name, v)).start_time == samples.START + 4


def test_cs_cell_takes_the_imsi_plmn_when_the_location_has_none():
    name, v = samples.mo_call()
    v["location"] = {"locationAreaCode": b"\x00\x01", "cellId": b"\x00\x02"}
    assert decode_one((name, v)).cell_id == "460-00-1-2"


def test_absent_optional_identities_stay_empty():
    name, v = samples.mo_call()
    for f in ("servedIMEI", "servedMSISDN", "calledNumber", "location"):
        del v[f]
    got = decode_one((name, v)).canonical()
    assert (got["imei"], got["msisdn"], got["peer"], got["cell_id"]) == ("", "", "", "")


def test_a_service_code_peer_is_left_empty_and_the_record_kept():
    got = decode_one(samples.mo_call(calledNumber=bytes.fromhex("81a1b2")))   # *1#2
    assert got.peer == ""


def test_alphanumeric_sms_destination_is_left_empty():
    got = decode_one(samples.mo_sms(destinationNumber=bytes.fromhex("05d0c8329bfd06")))
    assert got.peer == ""


def test_a_long_data_session_is_capped_at_a_day():
    assert decode_one(samples.pgw(duration=3 * 86_400)).duration_s == 86_400


def test_a_failed_sms_is_failed():
    got = decode_one(samples.mo_sms(smsResult=("gsm0408Cause", 41)))
    assert got.result is Result.FAILED


@pytest.mark.parametrize("fields, result", [
    ({"callDuration": 30}, Result.ANSWERED),
    ({"callDuration": 0, "answerTime": b"x"}, Result.ANSWERED),        # answered, released at once
    ({"callDuration": 0, "causeForTerm": 0, "diagnostics": ("gsm0408Cause", 17)}, Result.BUSY),
    ({"callDuration": 0, "causeForTerm": 3, "diagnostics": ("itu-tQ767Cause", 17)}, Result.BUSY),
    ({"callDuration": 0, "causeForTerm": 0, "diagnostics": ("gsm0408Cause", 19)}, Result.UNANSWERED),
    ({"callDuration": 0, "causeForTerm": 3, "diagnostics": ("gsm0408Cause", 18)}, Result.UNANSWERED),
    ({"callDuration": 0, "causeForTerm": 0}, Result.UNANSWERED),       # caller gave up
    ({"callDuration": 0, "causeForTerm": 3}, Result.FAILED),           # unsuccessfulCallAttempt
    ({"callDuration": 0, "causeForTerm": 4}, Result.FAILED),           # abnormalRelease
    ({"callDuration": 0, "causeForTerm": 0, "diagnostics": ("gsm0408Cause", 34)}, Result.FAILED),
])
def test_call_result(fields, result):
    assert call_result(fields) is result


def test_unanswered_call_end_to_end():
    name, v = samples.mo_call(duration=0, diagnostics=("gsm0408Cause", 17))
    del v["answerTime"]
    got = decode_one((name, v))
    assert (got.result, got.duration_s, got.start_time) == (Result.BUSY, 0, samples.START)


@pytest.mark.parametrize("change, reason", [
    ({"servedIMSI": None}, "moCallRecord: no servedIMSI"),
    ({"servedIMSI": samples.tbcd("46000123")}, "servedIMSI 64001032 is not a 15-digit IMSI"),
    ({"servedIMEI": bytes.fromhex("53029900a71684f0")}, "servedIMEI 53029900a71684f0 is not an IMEI"),
    ({"servedMSISDN": bytes.fromhex("9121")}, "servedMSISDN 9121 is not an E.164 number"),
    ({"seizureTime": bytes.fromhex("2613211638012b0000")}, "seizureTime 2613211638012b0000 is not a TimeStamp"),
    ({"seizureTime": None, "answerTime": None, "releaseTime": None}, "no seizureTime or answerTime or releaseTime"),
    ({"callDuration": 90_000}, "callDuration 90000 is not whole seconds from 0 to 86400"),
    ({"location": {"locationAreaCode": b"\x00\x01", "cellId": b"\x00\x02", "mCC-MNC": b"\xff\xff\xff"}},
     "location mCC-MNC ffffff is not a PLMN identity"),
])
def test_a_record_that_cannot_be_mapped_is_rejected_with_the_field(change, reason):
    name, v = samples.mo_call()
    for f, value in change.items():
        if value is None:
            v.pop(f, None)
        else:
            v[f] = value
    decoded = decode_records(schema.encode((name, v)), "t.ber")
    assert decoded.records == []
    (rej,) = decoded.rejected
    assert reason in rej.reason and rej.line == 0 and rej.source == "t.ber"


def test_uli_shorter_than_its_flags_is_rejected():
    decoded = decode_records(schema.encode(samples.sgw(userLocationInformation=b"\x18\x64\xf0")), "t")
    assert "userLocationInformation 1864f0 is shorter than its flags announce" in decoded.rejected[0].reason


def test_enums_in_batch_match_the_canonical_names():
    got = decode_one(samples.mt_sms())
    assert (got.record_type, got.direction, got.result) == (RecordType.SMS, Direction.MT,
                                                            Result.DELIVERED)


def test_a_field_outside_its_size_constraint_does_not_decode():
    """pycrate checks the standard's SIZE constraints when decoding: a 1-octet LAC is a
    record that differs from the standard, rejected with the library's words."""
    ber = bytearray(schema.encode(samples.mo_call()))
    lac = ber.find(bytes.fromhex("80021a2b"))   # [0] locationAreaCode, 2 octets
    ber[lac + 1] = 1                            # now 1 octet, and the cell id's tag follows late
    decoded = decode_records(bytes(ber), "t.ber")
    (rej,) = decoded.rejected
    assert rej.reason.startswith("does not decode as a TS 32.298 moCallRecord: ")
