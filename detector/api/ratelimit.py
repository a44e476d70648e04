"""Per-client token buckets: ``rate`` tokens per second, at most ``burst`` saved up (a key may
bring its own rate and burst, :meth:`RateLimiter.take`)."""

from __future__ import annotations

import math
import time


class RateLimiter:
    def __init__(self, rate: float, burst: int, max_keys: int = 100_000, clock=time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[str, tuple[float, float, float]] = {}   # key -> (tokens, at, full at)

    def _params(self, rate: float | None, burst: float | None) -> tuple[float, float]:
        """A key's own rate and burst, else the limiter's."""
        return (self.rate if rate is None else rate,
                self.burst if burst is None else float(burst))

    def _tokens(self, key: str, now: float, rate: float, burst: float) -> float:
        tokens, at, _ = self._buckets.get(key, (burst, now, now))
        return min(burst, tokens + (now - at) * rate)

    def take(self, key: str, rate: float | None = None, burst: float | None = None) -> float:
        """0 when a request of ``key`` may go ahead (one token taken), else the seconds until
        the next token (the ``Retry-After``); ``rate`` and ``burst``, when given, are the
        key's own in place of the limiter's."""
        rate, burst = self._params(rate, burst)
        now = self.clock()
        tokens = self._tokens(key, now, rate, burst)
        taken = tokens >= 1.0
        if taken:
            tokens -= 1.0
        self._buckets[key] = (tokens, now, now + (burst - tokens) / rate)
        if taken:
            if len(self._buckets) > self.max_keys:
                self._forget(now)
            return 0.0
        return (1.0 - tokens) / rate

    def peek(self, key: str, rate: float | None = None, burst: float | None = None) -> float:
        """What :meth:`take` would answer, without taking a token."""
        rate, burst = self._params(rate, burst)
        tokens = self._tokens(key, self.clock(), rate, burst)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate

    def _forget(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold nothing a new bucket would not)."""
        self._buckets = {k: v for k, v in self._buckets.items() if now < v[2]}

    @staticmethod
    def retry_after(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))
