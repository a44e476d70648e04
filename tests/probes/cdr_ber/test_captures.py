"""The shared real CDR inputs: an ePDGRecord cut out of a GTP' capture, and the capture."""

import struct
import subprocess

import pytest

from probes.cdr_ber import decode_records, iter_capture, read_ber_file, read_gtp_prime_capture
from probes.cdr_ber.gtp_prime import transfer_records
from probes.cdr_ber import samples, schema
from tests.inputs import CAPTURES

EPDG = CAPTURES / "ndpi_gtp_prime_epdgrecord.ber"
GTP_PRIME = CAPTURES / "ndpi_gtp_prime.pcapng"

needs_captures = pytest.mark.captures
needs_tshark = pytest.mark.tshark

EPDG_ROW = {"record_type": "data", "direction": "MO", "start_time": "2015-02-25T16:38:01Z",
            "duration_s": 43, "imsi": "310012000000000", "msisdn": "", "imei": "", "peer": "",
            "cell_id": "", "result": "ok"}


@needs_captures
def test_real_epdg_record():
    decoded = decode_records(EPDG.read_bytes(), EPDG.name)
    assert decoded.rejected == [] and decoded.header is None
    (record,) = decoded.records
    assert record.record == "ePDGRecord"
    assert record.canonical() == EPDG_ROW


@needs_captures
def test_real_epdg_record_file_keeps_the_fifteen_digit_imsi():
    (parsed,) = read_ber_file(EPDG)
    (rec,) = parsed.batch.records()
    assert rec.imsi == "310012000000000"       # MCC 310, MNC 012: the zero is part of it
    assert parsed.batch.line.tolist() == [0]


@needs_captures
@needs_tshark
def test_gtp_prime_capture():
    items = list(iter_capture(GTP_PRIME))
    assert len(items) == 1
    assert items[0].canonical() == EPDG_ROW
    assert items[0].offset == 1                 # the frame number
    (parsed,) = read_gtp_prime_capture(GTP_PRIME)
    assert len(parsed.batch) == 1 and parsed.rejected == ()


@needs_captures
@needs_tshark
def test_gtp_prime_records_are_the_ones_tshark_dissects():
    """Our reading of the Data Record Packet and TShark's gtpprime dissector agree."""
    out = subprocess.run(["tshark", "-n", "-r", str(GTP_PRIME), "-Y", "gtpprime", "-T", "fields",
                          "-e", "udp.payload", "-e", "gtp.cdr_context"],
                         capture_output=True, text=True, check=True).stdout
    payload, context = out.strip().split("\t")
    chunks = transfer_records(bytes.fromhex(payload))
    assert [c.data.hex() for c in chunks] == [context]
    assert chunks[0].data == EPDG.read_bytes()


def gtp_prime_message(records: list[bytes], command: int = 1, fmt: int = 1) -> bytes:
    """A GTP' v2 Data Record Transfer Request (6-octet header) carrying ``records``."""
    packet = bytes([len(records), fmt]) + b"\x1c\x06" + b"".join(
        struct.pack(">H", len(r)) + r for r in records)
    body = bytes([126, command, 252]) + struct.pack(">H", len(packet)) + packet
    return bytes([0x4E, 240]) + struct.pack(">HH", len(body), 7) + body


def test_transfer_records_on_a_built_message():
    recs = [schema.encode(samples.mo_call()), schema.encode(samples.sgw())]
    chunks = transfer_records(gtp_prime_message(recs))
    assert [c.data for c in chunks] == recs and all(c.problem is None for c in chunks)
    assert [c.tag for c in chunks] == [0, 78]


@pytest.mark.parametrize("message, problem", [
    (gtp_prime_message([b"\xa0\x03\x80\x01\x00"], fmt=2), "data record format is unaligned PER, not BER"),
    (gtp_prime_message([b"\xa0\x05\x80\x01\x00"]), "record 1 of 1: record cut short"),
    (gtp_prime_message([b"\xa0\x01\x80\x01\x00"]), "record 1 of 1: not one BER record of 5 octets"),
    (gtp_prime_message([b"\xa0\x03\x80\x01\x00"])[:-2], "not a GTP' message"),
])
def test_transfer_records_problems(message, problem):
    (chunk,) = transfer_records(message)
    assert chunk.problem.startswith(problem)


def test_transfer_records_of_other_messages_and_commands():
    assert transfer_records(gtp_prime_message([b"\xa0\x03\x80\x01\x00"], command=3)) == []  # cancel
    echo = bytes([0x4E, 1]) + struct.pack(">HH", 0, 1)                          # echo request
    assert transfer_records(echo) == []
