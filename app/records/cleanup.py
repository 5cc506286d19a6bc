"""Undo work that could not be undone at once because the store was down.

A request that fails half-way removes what it wrote. When the failure is the store itself (S3
unreachable), that removal usually fails too; the objects would stay half-written until someone
noticed. Each such removal is handed to :class:`PendingCleanup`, which retries it in a background
thread until the store answers again, so the service repairs itself when S3 comes back, without a
restart. The queue lives in memory: a process killed before the store came back leaves objects that
readers already ignore (a photo without its embedding, a student without any embedding, a session
photo without ``result.json``), see :mod:`app.records.keys`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.storage import StorageUnavailableError

logger = logging.getLogger(__name__)

RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 5.0
MAX_PENDING = 10_000
"""Beyond this the oldest cleanups are dropped (logged): a store down for days must not exhaust memory."""


@dataclass(frozen=True)
class _Task:
    description: str
    action: Callable[[], None]


class PendingCleanup:
    """A queue of idempotent cleanup actions, retried until each succeeds; thread-safe.

    The worker thread exists only while something is pending, so idle apps (and tests that build
    many) hold no thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: list[_Task] = []
        self._in_flight = 0
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False

    def defer(self, description: str, action: Callable[[], None]) -> None:
        """Run ``action`` later, again and again until it returns without raising
        :class:`StorageUnavailableError`. It must be safe to run more than once."""
        with self._lock:
            if self._closed:
                logger.error("cleanup after shutdown dropped: %s", description)
                return
            self._tasks.append(_Task(description, action))
            if len(self._tasks) > MAX_PENDING:
                dropped = self._tasks.pop(0)
                logger.error("too many pending cleanups; dropped: %s", dropped.description)
            logger.warning("storage down; will retry: %s", description)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="pending-cleanup", daemon=True
                )
                self._worker.start()

    def attempt(
        self, description: str, action: Callable[[], None], *, raise_errors: bool = False
    ) -> None:
        """Run ``action`` now; with the store down, :meth:`defer` it. A request that cannot
        finish its work (``raise_errors``) still fails; otherwise (an undo, an audit event) no
        error escapes and any other failure is logged with ``description``."""
        try:
            action()
        except StorageUnavailableError:
            self.defer(description, action)
            if raise_errors:
                raise
        except Exception:
            if raise_errors:
                raise
            logger.exception("failed: %s", description)

    @property
    def pending(self) -> int:
        """Actions not done yet, including those being tried right now."""
        with self._lock:
            return len(self._tasks) + self._in_flight

    def run_now(self) -> int:
        """Try every pending action once, in order; returns how many are still pending."""
        with self._lock:
            tasks, self._tasks = self._tasks, []
            self._in_flight += len(tasks)
        failed: list[_Task] = []
        for index, task in enumerate(tasks):
            try:
                task.action()
            except StorageUnavailableError:
                # Still down: keep this and the rest for later, in order, without hammering it.
                failed.extend(tasks[index:])
                break
            except Exception:
                logger.exception("cleanup failed for good: %s", task.description)
            else:
                logger.info("cleaned up: %s", task.description)
        with self._lock:
            self._tasks[:0] = failed
            self._in_flight -= len(tasks)
            return len(self._tasks)

    def close(self) -> None:
        """Stop retrying (shutdown); what is still pending is logged."""
        with self._lock:
            self._closed = True
            left = [task.description for task in self._tasks]
        self._wake.set()
        for description in left:
            logger.error("cleanup not done at shutdown: %s", description)

    def _run(self) -> None:
        delay = RETRY_INITIAL_S
        while True:
            self._wake.wait(delay)
            with self._lock:
                if self._closed or not self._tasks:
                    self._worker = None
                    return
            before = self.pending
            left = self.run_now()
            delay = RETRY_INITIAL_S if left < before else min(delay * 2, RETRY_MAX_S)
