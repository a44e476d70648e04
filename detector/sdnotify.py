"""systemd notifications (sd_notify): READY, WATCHDOG, STATUS, STOPPING.

A no-op outside systemd (no ``NOTIFY_SOCKET``). WATCHDOG pings are sent from a task on the
event loop, so a loop blocked by a stuck handler stops them and systemd restarts the service.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def notify(self, message: str) -> None:
        if not self._addr:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(self._addr)
            s.sendall(message.encode())

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
