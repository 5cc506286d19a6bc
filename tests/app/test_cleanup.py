"""The queue of rollbacks that could not be done while the store was down."""

from __future__ import annotations

import time

from app.records.cleanup import PendingCleanup
from app.storage import StorageUnavailableError

RETRY_WAIT_S = 0.8
"""Longer than the first retry delay: the worker has looked again and found nothing."""


def _wait_until_done(queue: PendingCleanup, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while queue.pending:
        assert time.monotonic() < deadline, f"{queue.pending} cleanups still pending"
        time.sleep(0.01)


def test_actions_are_retried_in_order_until_the_store_answers() -> None:
    queue = PendingCleanup()
    store_down = [True]
    done: list[str] = []

    def action(name: str) -> None:
        if store_down[0]:
            raise StorageUnavailableError("down", reason="storage server unreachable")
        done.append(name)

    queue.defer("first", lambda: action("first"))
    queue.defer("second", lambda: action("second"))
    time.sleep(1.2)  # a few retries while the store is down
    assert queue.pending == 2 and done == []
    store_down[0] = False
    _wait_until_done(queue)
    assert done == ["first", "second"]


def test_an_action_failing_otherwise_is_dropped_and_the_worker_ends() -> None:
    queue = PendingCleanup()
    done: list[str] = []

    def broken() -> None:
        raise ValueError("not a storage problem")

    queue.defer("broken", broken)
    queue.defer("fine", lambda: done.append("fine"))
    _wait_until_done(queue)
    assert done == ["fine"]
    time.sleep(RETRY_WAIT_S)
    assert queue._worker is None  # no thread is kept while nothing is pending


def test_nothing_runs_after_close() -> None:
    queue = PendingCleanup()
    queue.close()
    queue.defer("late", lambda: None)
    assert queue.pending == 0
