"""In-process histograms and counters for ``/metrics`` (Prometheus text exposition, no client library).

Labels are bounded sets chosen by the code (an HTTP status, a probe name), never values from
requests or records, so no subscriber identifier can become a label.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

# seconds: from a fast store round trip to a slow scoring tick over many SIMs
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Cumulative-bucket histogram, per label value; safe to observe from worker threads."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._series: dict[tuple[tuple[str, str], ...], list] = {}

    def observe(self, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        i = bisect_left(self.buckets, seconds)
        with self._lock:
            counts, total = self._series.setdefault(key, [[0] * (len(self.buckets) + 1), 0.0])
            counts[i] += 1
            self._series[key][1] = total + seconds

    def count(self, **labels: str) -> int:
        with self._lock:
            series = self._series.get(tuple(sorted(labels.items())))
            return sum(series[0]) if series else 0

    def exposition(self, name: str, help_: str) -> list[str]:
        out = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
        with self._lock:
            series = {k: (list(c), s) for k, (c, s) in self._series.items()}
        for key, (counts, total) in sorted(series.items()):
            base = ",".join(f'{k}="{v}"' for k, v in key)
            sep = "," if base else ""
            running = 0
            for le, n in zip([*map(_num, self.buckets), "+Inf"], counts):
                running += n
                out.append(f'{name}_bucket{{{base}{sep}le="{le}"}} {running}')
            braces = f"{{{base}}}" if base else ""
            out.append(f"{name}_sum{braces} {round(total, 6)}")
            out.append(f"{name}_count{braces} {running}")
        return out


class Counter:
    """A monotonic count per label value; safe to increment from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[tuple[str, str], ...], int] = {}

    def inc(self, n: int = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._series[key] = self._series.get(key, 0) + n

    def count(self, **labels: str) -> int:
        with self._lock:
            return self._series.get(tuple(sorted(labels.items())), 0)

    def exposition(self, name: str, help_: str, always: tuple[dict[str, str], ...] = ()) -> list[str]:
        """The series as Prometheus text; ``always`` lists label sets shown (at 0) before
        anything was counted, so a rate over them is defined from the start."""
        with self._lock:
            series = dict(self._series)
        for labels in always:
            series.setdefault(tuple(sorted(labels.items())), 0)
        out = [f"# HELP {name} {help_}", f"# TYPE {name} counter"]
        for key, n in sorted(series.items()):
            base = ",".join(f'{k}="{v}"' for k, v in key)
            out.append(f"{name}{{{base}}} {n}" if base else f"{name} {n}")
        return out


def _num(x: float) -> str:
    return repr(float(x))


# Lookups of the API served by this process (the daemon's, or `goipwatch api`'s).
LOOKUP_SECONDS = Histogram()

# Authentication lockouts started by the API of this process, by scope: "address" (a source
# address failed too often) or "client" (a client named in too many failed attempts).
AUTH_LOCKOUTS = Counter()
LOCKOUT_SCOPES = ({"scope": "address"}, {"scope": "client"})

# Audit groups of this process chained again because another process had appended
# (detector/api/audit.py): several API processes, or the daemon's and an API's writers.
AUDIT_RECHAINED = Counter()
