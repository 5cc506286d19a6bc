"""The one timing helper of the evaluations and benchmarks: the median of repeated wall times."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def timed_median(action: Callable[[], T], repeats: int, warmup: int = 0) -> tuple[T, float]:
    """Call ``action`` ``warmup`` times untimed, then ``repeats`` times (at least once), timed.

    Returns the last call's result and the median wall time of the timed calls, in seconds.
    """
    for _ in range(warmup):
        action()
    durations = []
    result: T
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        result = action()
        durations.append(time.perf_counter() - started)
    return result, statistics.median(durations)


def median_seconds(action: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time in seconds of ``repeats`` calls after ``warmup`` untimed ones."""
    return timed_median(action, repeats, warmup)[1]
