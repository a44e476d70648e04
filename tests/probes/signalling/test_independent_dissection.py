"""The signalling probe against an independent dissection of the same captures.

The probe reads TShark's ``-T fields`` output through its own field lists and decoders;
pyshark walks TShark's full PDML dissection of every packet, with no field list of ours. The
IMSIs each finds in the GTPv2-C, S1AP/NAS and Diameter packets of a capture must be the same:
a field the probe's lists miss, or a decoder that mangles a value (e.g. drops an IMSI's leading
zeros, as in the test network 001-02), shows up here. pyshark is 10-50 times slower, which is
why the probe does not use it.
"""

from __future__ import annotations

import asyncio

import pyshark
import pytest

from probes.signalling import read_capture
from tests.inputs import CAPTURES

pytestmark = [pytest.mark.captures, pytest.mark.tshark]


def pyshark_imsis(path) -> set[str]:
    # pyshark drives TShark from an asyncio loop of its own: a fresh one, since the async
    # tests before this one leave the thread without a current loop
    loop = asyncio.new_event_loop()
    cap = pyshark.FileCapture(str(path), keep_packets=False, eventloop=loop)
    try:
        return {str(v) for pkt in cap for layer in pkt.layers
                if (v := layer.get_field("e212_imsi"))}
    finally:
        cap.close()
        loop.close()


@pytest.mark.parametrize("name", ["ndpi_gtp_c.pcap",
                                  "magma_inbound_roaming_01_210505_130828-1.pcapng",
                                  "magma_nsa_connection.pcap"])
def test_the_probe_finds_the_imsis_of_a_full_dissection(name):
    expected = pyshark_imsis(CAPTURES / name)
    assert expected, "the capture carries IMSIs"
    found = {e.imsi for e in read_capture(CAPTURES / name).events if e.imsi}
    assert found == expected
    assert all(len(i) == 15 for i in found)
