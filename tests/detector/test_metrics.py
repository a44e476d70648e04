"""Histograms: cumulative buckets, sums and counts per label set, as Prometheus reads them."""

from detector.metrics import Histogram


def test_buckets_are_cumulative_and_labels_kept_apart():
    h = Histogram(buckets=(0.1, 1.0))
    for seconds, status in ((0.05, "200"), (0.1, "200"), (0.5, "200"), (3.0, "200"), (0.2, "404")):
        h.observe(seconds, status=status)
    lines = h.exposition("x_seconds", "test")
    assert lines[:2] == ["# HELP x_seconds test", "# TYPE x_seconds histogram"]
    assert lines[2:] == [
        'x_seconds_bucket{status="200",le="0.1"} 2',     # le is inclusive
        'x_seconds_bucket{status="200",le="1.0"} 3',
        'x_seconds_bucket{status="200",le="+Inf"} 4',
        'x_seconds_sum{status="200"} 3.65',
        'x_seconds_count{status="200"} 4',
        'x_seconds_bucket{status="404",le="0.1"} 0',
        'x_seconds_bucket{status="404",le="1.0"} 1',
        'x_seconds_bucket{status="404",le="+Inf"} 1',
        'x_seconds_sum{status="404"} 0.2',
        'x_seconds_count{status="404"} 1',
    ]
    assert h.count(status="200") == 4 and h.count(status="500") == 0
