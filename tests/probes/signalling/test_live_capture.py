"""Live capture: dumpcap on the loopback interface writes the file the pcap probe reads."""

import os
import shutil
import socket
import subprocess
import time

import pytest

from probes.signalling import read_capture

pytestmark = pytest.mark.skipif(
    not shutil.which("dumpcap") or os.geteuid() != 0,
    reason="needs dumpcap and capture rights (root here; CAP_NET_RAW in production)")

INVITE = ("INVITE sip:8613900000001@127.0.0.1 SIP/2.0\r\n"
          "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{n}\r\n"
          "From: <sip:8613800000001@127.0.0.1>;tag=a{n}\r\n"
          "To: <sip:8613900000{n:03d}@127.0.0.1>\r\n"
          "Call-ID: live-{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
          "Content-Length: 0\r\n\r\n")


def test_packets_captured_live_become_events(tmp_path):
    out = tmp_path / "live.pcapng"
    cap = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", "udp port 5060", "-a", "duration:4",
                            "-w", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 3
        while not out.exists() and time.monotonic() < deadline:  # dumpcap is listening
            time.sleep(0.05)
        time.sleep(0.3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for n in range(5):
                s.sendto(INVITE.format(n=n).encode(), ("127.0.0.1", 5060))
        cap.wait(timeout=10)
    finally:
        if cap.poll() is None:
            cap.kill()
    events = read_capture(out).events
    invites = [e for e in events if e.message == "INVITE"]
    assert len(invites) == 5
    assert {e.peer for e in invites} == {f"8613900000{n:03d}" for n in range(5)}
    assert {e.msisdn for e in invites} == {"8613800000001"}
