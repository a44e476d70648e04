"""Which partition an IMSI belongs to: a fixed integer hash of the IMSI modulo the stream's
partition count.

The hash is the SplitMix64 finaliser over the IMSI read as an integer: pure integer
arithmetic with fixed constants, so it gives the same answer in every process, on every
machine and in every version (Python's ``hash`` is salted per process; this is not).
Changing it would move SIMs between partitions of an existing stream: don't.
"""

from __future__ import annotations

import numpy as np

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix64(keys: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, vectorised (wrapping uint64 arithmetic)."""
    z = np.asarray(keys).astype(np.int64).view(np.uint64).copy()
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _C1
        z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


def partition_of(imsi: np.ndarray | int, partitions: int) -> np.ndarray:
    """Partition (0 .. partitions-1) of each IMSI."""
    if partitions < 1:
        raise ValueError("a stream has at least one partition")
    return (mix64(np.atleast_1d(np.asarray(imsi, np.int64))) % np.uint64(partitions)).astype(np.int64)


def owned(index: int, of: int, partitions: int) -> tuple[int, ...]:
    """The partitions worker ``index`` of ``of`` owns: every ``of``-th, from ``index``."""
    if not 0 <= index < of:
        raise ValueError(f"worker index {index} is not in 0..{of - 1}")
    if of > partitions:
        raise ValueError(f"{of} workers for {partitions} partitions: some would own none")
    return tuple(range(index, partitions, of))
