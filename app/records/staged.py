"""One mechanism for writes that must land completely or not at all.

An operation that stores several objects (a registration photo and its embeddings, a session photo
and the attendance records it makes) writes them through a :class:`StagedWrites`. Each object is
written in an order chosen so that a reader ignores an incomplete set (the object that makes the
set count goes last, see :mod:`app.records.keys`); if the operation fails, what it wrote is
removed again, newest first, so the set stops counting before any of its parts disappear.

When the store itself is down, the removal usually fails too: the rest of it is handed to
:class:`app.records.cleanup.PendingCleanup`, which retries until the store is back. An object
written with ``shared=True`` may have been acted on by a concurrent request as soon as it existed
(an attendance record makes another upload answer "already present"); if one of those cannot be
removed, it stays, and so does everything it points at (written before it), rather than being
removed later, when nobody can tell any more.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from app.records.cleanup import PendingCleanup
from app.storage import ObjectStore, StorageUnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Written:
    key: str
    shared: bool


class StagedWrites:
    """The objects one operation wrote, removed in reverse order if it fails.

    Use as a context manager: an exception inside the block rolls back and propagates::

        with StagedWrites(store, cleanup, "a registration photo") as staged:
            repository.stage_something(staged, ...)
    """

    def __init__(self, store: ObjectStore, cleanup: PendingCleanup, what: str) -> None:
        self._store = store
        self._cleanup = cleanup
        self._what = what
        self._written: list[_Written] = []

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        if_absent: bool = False,
        shared: bool = False,
    ) -> None:
        """Write ``key`` and remember it. With ``if_absent`` a taken key raises
        :class:`app.storage.ObjectExistsError` and is not remembered (it is not ours)."""
        self._store.put(key, data, content_type=content_type, if_absent=if_absent)
        self._written.append(_Written(key, shared))

    @property
    def keys(self) -> list[str]:
        """What was written, in order."""
        return [written.key for written in self._written]

    def roll_back(self) -> None:
        """Remove every object written, newest first (see the module docstring when the store
        is down). Nothing is left to roll back afterwards."""
        newest_first = self._written[::-1]
        self._written = []
        remove_in_order(
            self._store,
            self._cleanup,
            [written.key for written in newest_first],
            self._what,
            shared=frozenset(written.key for written in newest_first if written.shared),
        )

    def __enter__(self) -> StagedWrites:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.roll_back()


def remove_in_order(
    store: ObjectStore,
    cleanup: PendingCleanup,
    keys: Sequence[str],
    what: str,
    *,
    shared: frozenset[str] = frozenset(),
) -> None:
    """Delete ``keys`` in the given order; when the store goes down, the rest is retried later
    (in the same order), unless some of the rest are ``shared`` (others may have acted on them:
    they stay, with everything after them). Other failures are logged and the next key is
    tried."""
    for index, key in enumerate(keys):
        try:
            store.delete(key)
        except StorageUnavailableError:
            left = list(keys[index:])
            if shared.intersection(left):
                logger.warning(
                    "storage down: keeping %d objects of %s (others may rely on them)",
                    len(left),
                    what,
                )
                return
            cleanup.defer(
                f"remove {len(left)} objects of {what}, e.g. {left[0]}",
                functools.partial(delete_in_order, store, left),
            )
            return
        except Exception:
            logger.exception("could not remove %s", key)


def delete_in_order(store: ObjectStore, keys: Sequence[str]) -> None:
    """Delete ``keys`` one after the other, in the given order (a deferred rollback's task)."""
    for key in keys:
        store.delete(key)
