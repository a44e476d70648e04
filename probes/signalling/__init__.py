"""Signalling probes: capture files dissected by TShark into typed signalling events.

``read_capture(path)`` runs ``tshark -T fields`` once over a pcap/pcapng file and maps the
frames of each covered protocol (one module per protocol family) to
:class:`detector.records.SignalingEvent`, pairing requests with their answers.
See docs/signalling.md for what each protocol yields.
"""

from probes.signalling.capture import Capture, read_capture
from probes.signalling.tshark import CaptureError

__all__ = ["Capture", "CaptureError", "read_capture"]
