"""When a capture begins, read from its framing: the same second as TShark's first frame."""

from __future__ import annotations

import struct
import subprocess

import pytest

from probes.signalling.pcapfile import first_packet_time
from tests.inputs import CAPTURES



@pytest.mark.captures
@pytest.mark.tshark
@pytest.mark.parametrize("name", ["ndpi_diameter.pcap", "magma_nsa_connection.pcap",
                                  "ndpi_gtp_prime.pcapng", "magma_gx_gy_combined_03_210505_132953-1.pcapng"])
def test_the_first_packet_time_of_a_real_capture_is_tsharks(name):
    out = subprocess.run(["tshark", "-r", str(CAPTURES / name), "-c", "1", "-T", "fields",
                          "-e", "frame.time_epoch"], capture_output=True, text=True, check=True)
    assert first_packet_time(CAPTURES / name) == int(float(out.stdout))


def _block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)


def test_pcapng_timestamps_follow_the_interfaces_resolution(tmp_path):
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    ms = struct.pack("<HH", 9, 1) + bytes([3]) + b"\0\0\0" + struct.pack("<HH", 0, 0)  # if_tsresol 10^-3
    idb = _block(1, struct.pack("<HHI", 1, 0, 65535) + ms)
    ticks = 1_791_158_400_250                                   # ms
    epb = _block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, 4, 4) + b"abcd")
    (tmp_path / "ms.pcapng").write_bytes(shb + idb + epb)
    assert first_packet_time(tmp_path / "ms.pcapng") == 1_791_158_400


def test_a_capture_without_packets_or_not_a_capture_has_no_first_time(tmp_path):
    (tmp_path / "header.pcap").write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    (tmp_path / "text.pcap").write_text("not a capture at all, just some text")
    (tmp_path / "cut.pcapng").write_bytes(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))[:20])
    for name in ("header.pcap", "text.pcap", "cut.pcapng", "missing.pcap"):
        assert first_packet_time(tmp_path / name) is None
