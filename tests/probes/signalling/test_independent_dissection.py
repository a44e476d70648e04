"""The signalling probe against an independent dissection of the same captures.

The probe reads TShark's ``-T fields`` output through its own field lists and decoders;
pyshark walks TShark's full PDML dissection of every packet, with no field list of ours. The
IMSIs each finds in the GTPv2-C, S1AP/NAS and Diameter packets of a capture must be the same:
a field the probe's lists miss, or a decoder that mangles a value (e.g. drops an IMSI's leading
zeros, as in the test network 001-02), shows up here. pyshark is 10-50 times slower, which is
why the probe does not use it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from probes.signalling import read_capture
from tests.inputs import CAPTURES

pytestmark = [pytest.mark.captures, pytest.mark.tshark]

# pyshark drives TShark from an asyncio loop and reaps it through asyncio's child watcher.
# Inside the test process other tests have installed loops, policies and child processes of
# their own, and a TShark reaped by someone else is reported as crashed (exit 255). A
# separate interpreter gives the dissection a process of its own.
_DISSECT = """
import json, sys
import pyshark
cap = pyshark.FileCapture(sys.argv[1], keep_packets=False)
try:
    imsis = {str(v) for pkt in cap for layer in pkt.layers if (v := layer.get_field("e212_imsi"))}
finally:
    cap.close()
print(json.dumps(sorted(imsis)))
"""


def pyshark_imsis(path) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _DISSECT, str(path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("name", ["ndpi_gtp_c.pcap",
                                  "magma_inbound_roaming_01_210505_130828-1.pcapng",
                                  "magma_nsa_connection.pcap"])
def test_the_probe_finds_the_imsis_of_a_full_dissection(name):
    expected = pyshark_imsis(CAPTURES / name)
    assert expected, "the capture carries IMSIs"
    found = {e.imsi for e in read_capture(CAPTURES / name).events if e.imsi}
    assert found == expected
    assert all(len(i) == 15 for i in found)
