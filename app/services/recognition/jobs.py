"""One background thread that runs at most one job per class at a time (head training, back-fill,
the retention purge).

``request(cid)`` queues the class unless it is already queued or running; ``wait_idle`` and
``close`` serve the tests and the shutdown. Subclasses implement :meth:`ClassJobQueue._job`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

logger = logging.getLogger(__name__)


class ClassJobQueue:
    def __init__(self, thread_name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._scheduled: set[str] = set()
        self._closed = False

    def request(self, class_id: str) -> None:
        """Make sure the job runs for ``class_id`` soon (no-op when it is already queued)."""
        with self._lock:
            if self._closed or not self._should_queue(class_id):
                return
            self._scheduled.add(class_id)
        future: Future[None] = self._executor.submit(self._run, class_id)
        future.add_done_callback(self._log_unexpected)

    def _should_queue(self, class_id: str) -> bool:
        """Called under the lock: False when ``class_id`` needs no new job."""
        return class_id not in self._scheduled

    def is_busy(self, class_id: str) -> bool:
        with self._lock:
            return class_id in self._scheduled

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is scheduled (tests, shutdown). False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._scheduled, timeout=timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._idle:
            self._scheduled.clear()
            self._idle.notify_all()

    def _run(self, class_id: str) -> None:
        try:
            self._job(class_id)
        finally:
            with self._idle:
                self._scheduled.discard(class_id)
                self._finished(class_id)
                self._idle.notify_all()

    def _job(self, class_id: str) -> None:
        raise NotImplementedError

    def _finished(self, class_id: str) -> None:
        """Called under the lock once the job of ``class_id`` is over."""

    def _log_unexpected(self, future: Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error("%s job crashed", type(self).__name__, exc_info=future.exception())


class JobRunner:
    """Long jobs of the service (a roster import), one at a time on one background thread, in
    the order asked. A job gets an event set when the service stops: it saves where it is and
    ends (a later run finishes the work)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs")
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def submit(self, name: str, job: Callable[[threading.Event], None]) -> None:
        with self._lock:
            self._pending += 1

        def run() -> None:
            try:
                job(self.stopping)
            except Exception:
                logger.exception("job %s crashed", name)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

        self._executor.submit(run)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every job asked for has ended (tests, commands). False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self) -> None:
        self.stopping.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
