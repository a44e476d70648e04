"""The cutting of records at scoring ticks, shared by the pipeline and the scale-out publisher."""

import numpy as np

from detector.pipeline import tick_cuts


def test_first_batch_starts_the_clock_and_cuts_before_each_tick():
    ts = np.array([100, 200, 900, 950, 1800, 2000])
    first, ticks, bounds = tick_cuts(ts, 0, 900)
    assert first == 900
    assert ticks.tolist() == [900, 1800]
    assert bounds.tolist() == [0, 2, 4, 6]       # [100 200] | 900 [900 950] | 1800 [1800 2000]


def test_a_batch_crossing_no_tick_is_one_piece():
    first, ticks, bounds = tick_cuts(np.array([1000, 1700]), 1800, 900)
    assert (first, ticks.tolist(), bounds.tolist()) == (1800, [], [0, 2])


def test_ticks_from_the_clock_include_empty_stretches():
    first, ticks, bounds = tick_cuts(np.array([1000, 4000]), 1800, 900)
    assert first == 1800 and ticks.tolist() == [1800, 2700, 3600]
    assert bounds.tolist() == [0, 1, 1, 1, 2]
