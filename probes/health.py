"""Whether an input answers: logged once when it starts failing and once when it recovers.

A broker that is down or a drop directory that cannot be read makes every poll fail; logging
each failure would drown the log, logging none would hide it. :class:`InputHealth` logs the
transitions only and keeps the state for ``/metrics`` (``goipwatch_input_up``).
"""

from __future__ import annotations

import logging
import threading
import time


class InputHealth:
    def __init__(self, probe: str, logger: logging.Logger) -> None:
        self.probe = probe
        self._log = logger
        self._lock = threading.Lock()   # Kafka reports errors from its client's thread
        self.failing_since: float | None = None
        self.reason = ""

    @property
    def up(self) -> bool:
        return self.failing_since is None

    def failing(self, reason: str) -> None:
        with self._lock:
            if self.failing_since is not None:
                return
            self.failing_since, self.reason = time.time(), reason
        self._log.error("input failing", extra={"probe": self.probe, "error": reason})

    def ok(self) -> None:
        with self._lock:
            if self.failing_since is None:
                return
            down_s = round(time.time() - self.failing_since, 3)
            self.failing_since, self.reason = None, ""
        self._log.info("input recovered", extra={"probe": self.probe, "down_s": down_s})
