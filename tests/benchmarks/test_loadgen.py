"""The open-loop load generator: its schedule, its percentile maths, and latencies measured
from the due time (a request that waits for a connection counts its wait)."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from hypothesis import given, settings, strategies as st

from benchmarks.loadgen import (Outcome, arrivals, http_post, percentile, run_open_loop, summarise,
                               worst_windows)


def test_poisson_arrivals_keep_the_rate_and_are_reproducible():
    times = arrivals(1000.0, 20.0, seed=7)
    assert times == arrivals(1000.0, 20.0, seed=7)
    assert times != arrivals(1000.0, 20.0, seed=8)
    # 20,000 expected; a Poisson count's standard deviation is its square root (~141)
    assert abs(len(times) - 20_000) < 5 * 141
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert statistics.fmean(gaps) == pytest.approx(1e-3, rel=0.05)
    # exponential gaps: the standard deviation equals the mean
    assert statistics.stdev(gaps) == pytest.approx(1e-3, rel=0.05)


def test_even_arrivals_are_spaced_by_one_over_the_rate():
    assert arrivals(4.0, 1.0, seed=0, poisson=False) == [0.0, 0.25, 0.5, 0.75]


@given(rate=st.floats(0.5, 5000), seconds=st.floats(0.01, 5), seed=st.integers(0, 2**32),
       poisson=st.booleans())
@settings(max_examples=60, deadline=None)
def test_arrivals_are_increasing_and_within_the_run(rate, seconds, seed, poisson):
    times = arrivals(rate, seconds, seed, poisson)
    assert all(0 <= t < seconds for t in times)
    assert all(a < b for a, b in zip(times, times[1:]))


@pytest.mark.parametrize("rate, seconds", [(0, 1), (-1, 1), (10, 0)])
def test_arrivals_refuse_a_rate_or_length_that_is_not_positive(rate, seconds):
    with pytest.raises(ValueError, match="must be > 0"):
        arrivals(rate, seconds, seed=1)


def test_percentiles_by_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    # of 10 values, p99 is the largest: 99 % of 10 rounds up to all 10
    assert percentile([float(v) for v in range(10)], 99) == 9.0
    assert percentile([float(v) for v in range(10)], 50) == 4.0


@given(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=300),
       st.floats(0.1, 100))
def test_a_percentile_is_a_measured_value_with_at_least_q_percent_at_or_below(values, q):
    values.sort()
    p = percentile(values, q)
    assert p in values
    assert sum(v <= p for v in values) >= q / 100 * len(values)
    assert sum(v < p for v in values) < q / 100 * len(values)


@pytest.mark.parametrize("values, q", [([], 50), ([1.0], 0), ([1.0], 101)])
def test_percentile_refuses_no_values_or_q_out_of_range(values, q):
    with pytest.raises(ValueError):
        percentile(values, q)


def test_summary_merges_processes_and_counts_errors():
    a = Outcome(latencies=[0.001] * 98, statuses={200: 90, 404: 8}, failures=0, last_s=10.0)
    b = Outcome(latencies=[0.5, 0.002], statuses={200: 1, 503: 1}, failures=2, last_s=12.5)
    s = summarise([a, b], offered_rate=10.0, seconds=10.0)
    assert s["answered"] == 100 and s["requests"] == 102 and s["rate_sent"] == 10.2
    assert s["errors"] == 3 and s["failures"] == 2          # two without answer, one 503
    assert s["statuses"] == {200: 91, 404: 8, 503: 1}
    assert s["rate_achieved"] == 8.0                        # 100 answers over 12.5 s
    assert (s["p50_ms"], s["p99_ms"], s["max_ms"]) == (1.0, 2.0, 500.0)
    assert s["over_20_ms"] == 1


def test_the_worst_windows_are_where_most_requests_were_slow():
    due = [0.01, 0.02, 0.05, 1.31, 1.32, 1.35, 1.38, 2.0, 2.05, 2.99]
    lat = [0.030, 0.001, 0.025, 0.080, 0.060, 0.040, 0.002, 0.021, 0.022, 0.5]
    got = worst_windows(due, lat, bound_s=0.020, most=3)
    assert got == [{"at_s": 1.3, "over": 3, "max_ms": 80.0},      # a stall: three slow at once
                   {"at_s": 0.0, "over": 2, "max_ms": 30.0},      # ties: the earlier first
                   {"at_s": 2.0, "over": 2, "max_ms": 22.0}]
    assert worst_windows(due, lat, bound_s=1.0) == []
    s = summarise([Outcome(latencies=lat, due_s=due, statuses={200: 10})], 10.0, 3.0)
    assert s["worst_windows"][0] == got[0] and s["over_20_ms"] == 8


async def _slow_server(delay_s: float):
    """A keep-alive HTTP server answering every request after ``delay_s``."""
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                await reader.readexactly(length)
                await asyncio.sleep(delay_s)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_a_request_waiting_for_a_connection_counts_its_wait():
    server = await _slow_server(0.05)
    port = server.sockets[0].getsockname()[1]
    raw = http_post("127.0.0.1", port, "/v1/lookups", b"{}", {})
    try:
        # five requests due at once on one connection: answered 50, 100, ... 250 ms after due
        out = await run_open_loop("127.0.0.1", port, [(0.0, raw)] * 5, time.monotonic() + 0.05,
                                  connections=1)
    finally:
        server.close()
        await server.wait_closed()
    assert out.statuses == {200: 5} and out.failures == 0
    for k, latency in enumerate(sorted(out.latencies), 1):
        assert latency >= 0.05 * k * 0.95


async def test_requests_without_an_answer_are_failures():
    server = await _slow_server(5.0)
    port = server.sockets[0].getsockname()[1]
    raw = http_post("127.0.0.1", port, "/", b"{}", {})
    try:
        out = await run_open_loop("127.0.0.1", port, [(0.0, raw), (0.01, raw)],
                                  time.monotonic(), connections=2, timeout_s=0.1)
    finally:
        server.close()
    assert out.failures == 2 and out.latencies == []
