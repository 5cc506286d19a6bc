"""A bounded, per-process cache of parsed documents, by key and version tag.

Reading a term of attendance from S3 costs one GET per small object (a photo's ``result.json``,
a correction, an assignment, ``session.json``): 1,991 ms for the list of 60 sessions on S3 on
loopback before this cache (``bench.roster_cost``, 2026-11-29). Those objects are written once
and rarely rewritten (erasure rewrites a ``result.json``; a deleted session's id may be created
again), so each entry is keyed by the object's key *and* the version tag its listing gave
(:meth:`app.storage.ObjectStore.list_versions`): a rewritten object has a new tag and is read
again, on every replica. An entry is only ever looked up with a tag from a listing made by the
caller, so the cache never answers for an object that is gone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

DEFAULT_BUDGET_BYTES = 16 * 1024 * 1024
"""Of stored JSON kept parsed (the objects take a few times more in memory). A term of 360
sessions of 2 photos of 30 students is about 3 MB of it (``bench.roster_cost``)."""


class DocumentCache:
    """LRU of ``(key, tag) -> parsed document``, bounded by the size of the stored bytes;
    thread-safe."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._budget = budget_bytes
        self._used = 0
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[str, Any, int]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, tag: str) -> Any | None:
        """The document parsed from ``key`` at version ``tag``, if cached."""
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] != tag:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found[1]

    def put(self, key: str, tag: str, document: Any, size: int) -> None:
        """Remember ``document``, parsed from ``size`` stored bytes of ``key`` at ``tag``."""
        if size > self._budget:
            return
        with self._lock:
            previous = self._items.pop(key, None)
            if previous is not None:
                self._used -= previous[2]
            self._items[key] = (tag, document, size)
            self._used += size
            while self._used > self._budget:
                _, (_, _, dropped) = self._items.popitem(last=False)
                self._used -= dropped

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
