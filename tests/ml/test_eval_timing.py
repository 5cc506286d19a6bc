"""The timing helper the evaluations and the benchmarks share."""

from __future__ import annotations

import itertools
import time

from ml.eval.timing import median_seconds, timed_median


def test_warmup_calls_are_not_timed_and_the_last_result_comes_back() -> None:
    counter = itertools.count()
    result, seconds = timed_median(lambda: next(counter), repeats=3, warmup=2)
    assert result == 4  # 2 untimed calls, then 3 timed ones: 0, 1 | 2, 3, 4
    assert seconds >= 0.0


def test_median_ignores_one_slow_call() -> None:
    delays = iter([0.0, 0.2, 0.0, 0.0])  # the warm-up, then one slow timed call of three

    seconds = median_seconds(lambda: time.sleep(next(delays)), repeats=3, warmup=1)
    assert seconds < 0.1
