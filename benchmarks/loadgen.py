"""An open-loop HTTP load generator: requests sent on a fixed schedule from their own process.

The schedule is drawn before the run (Poisson arrivals at a fixed rate, or evenly spaced), and
each request's latency is measured from the time it was *due*, not from when a connection
became free to send it: when the server falls behind, the requests waiting for a connection
count their wait (no coordinated omission). The client speaks just enough HTTP/1.1 over
keep-alive connections (pre-encoded requests, the status line and ``Content-Length`` of the
answer) to cost the machine little next to the server it measures.

The scheduling and the percentile maths are pure functions (:func:`arrivals`,
:func:`percentile`, :func:`summarise`), tested without a network.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


def arrivals(rate: float, seconds: float, seed: int, poisson: bool = True) -> list[float]:
    """Send times (seconds from the start, increasing, all below ``seconds``) of an open-loop
    run at ``rate`` requests per second: exponential gaps (a Poisson process) or a fixed gap
    of ``1 / rate``."""
    if not rate > 0 or not seconds > 0:
        raise ValueError(f"arrivals: rate and seconds must be > 0 (got {rate}, {seconds})")
    out: list[float] = []
    if not poisson:
        n = math.ceil(rate * seconds)
        return [k / rate for k in range(n) if k / rate < seconds]
    rng = random.Random(seed)
    t = rng.expovariate(rate)
    while t < seconds:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 < q <= 100) of ascending ``sorted_values`` by the nearest-rank
    method: the smallest value with at least q % of the values at or below it (so p100 is the
    maximum and a percentile is always a latency that was measured)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile: q must be in (0, 100] (got {q})")
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass(slots=True)
class Outcome:
    """What one load process measured: latencies (seconds, from the due time) of the requests
    answered, the count of each HTTP status, failures (no answer: timeout, connection lost)
    and when the last answer arrived (seconds after the start); the CPU time the load process
    spent (set by its caller)."""
    latencies: list[float] = field(default_factory=list)
    due_s: list[float] = field(default_factory=list)   # each answered request's due time, from the start
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0
    last_s: float = 0.0
    cpu_s: float = 0.0


def worst_windows(due_s: Sequence[float], latencies: Sequence[float], bound_s: float,
                  window_s: float = 0.1, most: int = 5) -> list[dict]:
    """The ``window_s`` windows of the run (by due time) with the most requests slower than
    ``bound_s``, most first (ties: earlier first): when the tail happened, to set beside what
    the server and the machine did then (a few stalls, or a queue all along)."""
    width_ms = max(1, round(window_s * 1e3))     # whole milliseconds: 2.0 s // 0.1 s is 19.0
    over: dict[int, list[float]] = {}
    for t, lat in zip(due_s, latencies):
        if lat > bound_s:
            over.setdefault(int(t * 1e3 + 1e-6) // width_ms, []).append(lat)
    ranked = sorted(over.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:most]
    return [{"at_s": k * width_ms / 1e3, "over": len(v), "max_ms": round(max(v) * 1e3, 1)}
            for k, v in ranked]


def summarise(outcomes: Sequence[Outcome], offered_rate: float, seconds: float,
              bound_s: float = 0.020) -> dict:
    """The merged figures of ``outcomes``: p50/p95/p99/max latency in ms, the rate sent (the
    schedule's requests over the run: the offered rate give or take the Poisson draw), the
    achieved rate (answers per second, over the span from the start to the last answer, so a
    server that falls behind shows a lower rate than it was sent) and the errors (failures
    plus 5xx)."""
    lat = sorted(x for o in outcomes for x in o.latencies)
    statuses: dict[int, int] = {}
    for o in outcomes:
        for k, v in o.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    failures = sum(o.failures for o in outcomes)
    span = max([seconds] + [o.last_s for o in outcomes])
    out: dict = {"rate_offered": round(offered_rate, 1), "requests": len(lat) + failures,
                 "rate_sent": round((len(lat) + failures) / seconds, 1),
                 "answered": len(lat), "rate_achieved": round(len(lat) / span, 1),
                 "errors": failures + sum(v for k, v in statuses.items() if k >= 500),
                 "failures": failures, "statuses": dict(sorted(statuses.items()))}
    if lat:
        for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100)):
            out[f"{name}_ms"] = round(percentile(lat, q) * 1e3, 2)
        out[f"over_{bound_s * 1e3:g}_ms"] = sum(1 for x in lat if x > bound_s)
        out["worst_windows"] = worst_windows([t for o in outcomes for t in o.due_s],
                                             [x for o in outcomes for x in o.latencies], bound_s)
    return out


class _Conn:
    """One keep-alive HTTP/1.1 connection: a request out, its answer's status and body read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


def http_post(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A pre-encoded HTTP/1.1 POST (keep-alive)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive",
             "Content-Type: application/json", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run_open_loop(host: str, port: int, requests: Sequence[tuple[float, bytes]],
                        start: float, connections: int, timeout_s: float = 10.0) -> Outcome:
    """Send ``requests`` ((offset in seconds, raw request)) at ``start + offset`` on the
    ``time.monotonic`` clock, each on a free connection of ``connections`` (opened before
    ``start``); the latency runs from the due time to the end of the answer."""
    out = Outcome()
    idle: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(_Conn(*await asyncio.open_connection(host, port)))

    async def one(due: float, raw: bytes) -> None:
        conn = await idle.get()
        try:
            status = await asyncio.wait_for(conn.exchange(raw), timeout_s)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            out.failures += 1
            conn.writer.close()
            try:
                conn = _Conn(*await asyncio.open_connection(host, port))
            except OSError:
                return
        else:
            now = time.monotonic()
            out.latencies.append(now - due)
            out.due_s.append(due - start)
            out.statuses[status] = out.statuses.get(status, 0) + 1
            out.last_s = max(out.last_s, now - start)
        idle.put_nowait(conn)

    # no collection while the schedule runs: a full one, walking the run's thousands of
    # requests and tasks, held this process 35-55 ms, late requests the server was blamed for
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        tasks = []
        for offset, raw in requests:
            due = start + offset
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.ensure_future(one(due, raw)))
        await asyncio.gather(*tasks)
    finally:
        gc.enable()
        gc.unfreeze()
    while not idle.empty():
        idle.get_nowait().writer.close()
    return out
