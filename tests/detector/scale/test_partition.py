"""Partitioning: a fixed function of the IMSI, the same in every process and version."""

import subprocess
import sys

import numpy as np
import pytest

from detector.scale.partition import mix64, owned, partition_of

IMSIS = np.array([460001234567890, 460000000000001, 460020000012345, 1], np.int64)


def test_pinned_values_never_change():
    # changing these moves SIMs between the partitions of existing streams
    assert mix64(np.array([1], np.int64)).tolist() == [6238072747940578789]
    assert partition_of(IMSIS, 12).tolist() == [0, 6, 5, 1]
    assert partition_of(np.array([460001234567890]), 1000).tolist() == \
        [int(mix64(np.array([460001234567890]))[0] % 1000)]


def test_same_answer_in_another_process():
    code = ("import numpy as np; from detector.scale.partition import partition_of; "
            f"print(partition_of(np.array({IMSIS.tolist()}), 12).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == str(partition_of(IMSIS, 12).tolist())


def test_spreads_consecutive_imsis_evenly():
    counts = np.bincount(partition_of(np.arange(460000000000000, 460000000060000), 12), minlength=12)
    assert counts.min() > 0.9 * 5000 and counts.max() < 1.1 * 5000


def test_scalar_and_vector_agree():
    assert partition_of(460001234567890, 7)[0] == partition_of(IMSIS, 7)[0]


def test_owned_partitions_cover_each_once():
    parts = [owned(i, 3, 12) for i in range(3)]
    assert sorted(p for ps in parts for p in ps) == list(range(12))
    assert owned(0, 1, 4) == (0, 1, 2, 3)
    with pytest.raises(ValueError, match="not in 0..2"):
        owned(3, 3, 12)
    with pytest.raises(ValueError, match="some would own none"):
        owned(0, 5, 4)
