"""Per-class projection heads: versioned objects and the pointer to the one in use.

A head is written as a new versioned object first, then ``current.json`` is pointed at it, so a
reader sees either the old head or the new one, never half of one. Older versions are deleted
after the switch: they may hold the influence of a student who has since been deleted. The
training itself is :class:`app.services.recognition.heads.HeadTrainer`.
"""

from __future__ import annotations

import json
import logging
import threading

from pydantic import ValidationError

from app.core.ids import utc_now
from app.records import keys
from app.records.documents import HeadFailureDoc, HeadPointerDoc
from app.storage import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
)
from ml.head import ProjectionHead

logger = logging.getLogger(__name__)


class HeadStore:
    """Reads and writes one class's heads; caches the loaded head per class and version."""

    def __init__(self, store: ObjectStore):
        self._store = store
        self._lock = threading.Lock()
        self._loaded: dict[str, ProjectionHead] = {}

    def pointer(self, class_id: str) -> HeadPointerDoc | None:
        try:
            data = self._store.get(keys.HEAD_POINTER.key(class_id=class_id))
        except ObjectNotFoundError:
            return None
        try:
            return HeadPointerDoc.model_validate_json(data)
        except ValidationError:
            logger.exception("ignoring unreadable head pointer of class %s", class_id)
            return None

    def failure(self, class_id: str) -> HeadFailureDoc | None:
        try:
            data = self._store.get(keys.HEAD_FAILURE.key(class_id=class_id))
            return HeadFailureDoc.model_validate_json(data)
        except (ObjectNotFoundError, ValidationError):
            return None

    def current(self, class_id: str) -> tuple[HeadPointerDoc, ProjectionHead] | None:
        """The head ``current.json`` points at, loaded once per version."""
        pointer = self.pointer(class_id)
        if pointer is None:
            return None
        with self._lock:
            cached = self._loaded.get(class_id)
        if cached is not None and cached.version == pointer.version:
            return pointer, cached
        try:
            head = ProjectionHead.from_bytes(self._store.get(pointer.key))
        except ObjectNotFoundError:
            # Replaced (and the old version deleted) between reading the pointer and the head.
            return None
        except (ValueError, KeyError, json.JSONDecodeError):
            logger.exception("ignoring unreadable head %s", pointer.key)
            return None
        head = _with_version(head, pointer.version)
        with self._lock:
            self._loaded[class_id] = head
        return pointer, head

    def versions(self, class_id: str) -> list[int]:
        """Stored head versions, ascending."""
        found = []
        for key in self._store.list(keys.HEAD.prefix(class_id=class_id)):
            ref = keys.HEAD.parse(key)
            if ref is not None and ref.class_id == class_id:
                found.append(ref.version)
        return sorted(found)

    def save(self, class_id: str, head: ProjectionHead, gallery_signature: str) -> int:
        """Store ``head`` as a new version, then point ``current.json`` at it. Returns the version.

        Versions are claimed with ``if_absent``, so two workers saving at once never overwrite each
        other; the pointer only ever moves to a higher version than the one it names.
        """
        pointed = self.pointer(class_id)
        # The pointer may name a version whose object is gone (erased): never reuse its number.
        version = max([*self.versions(class_id), pointed.version if pointed else 0]) + 1
        while True:
            stored = _with_version(head, version)
            try:
                self._store.put(
                    keys.HEAD.key(class_id=class_id, version=version),
                    stored.to_bytes(),
                    content_type="application/octet-stream",
                    if_absent=True,
                )
                break
            except ObjectExistsError:
                # Another worker trained this class at the same moment; take the next number.
                version += 1
        current = self.pointer(class_id)
        if current is not None and current.version > version:
            logger.info("class %s: head v%d superseded by v%d", class_id, version, current.version)
            self._store.delete(keys.HEAD.key(class_id=class_id, version=version))
            return version
        pointer = HeadPointerDoc(
            version=version,
            key=keys.HEAD.key(class_id=class_id, version=version),
            student_ids=list(stored.student_ids),
            gallery_signature=gallery_signature,
            trained_at=utc_now(),
        )
        self._store.put(
            keys.HEAD_POINTER.key(class_id=class_id),
            pointer.to_json_bytes(),
            content_type="application/json",
        )
        with self._lock:
            self._loaded[class_id] = stored
        self._store.delete(keys.HEAD_FAILURE.key(class_id=class_id))
        return version

    def prune(self, class_id: str, enrolled: set[str], *, keep: int | None = None) -> None:
        """Delete every version trained with a student who is no longer enrolled (erasure), and,
        given the version just saved (``keep``), every version older than the one before it.

        The version just before ``keep`` survives unless erasure requires otherwise: a second worker
        may be pointing ``current.json`` at it at this very moment.
        """
        for version in self.versions(class_id):
            key = keys.HEAD.key(class_id=class_id, version=version)
            if version == keep:
                continue
            if keep is not None and version < keep - 1:
                self._delete_version(class_id, version)
                continue
            try:
                trained_on = set(ProjectionHead.from_bytes(self._store.get(key)).student_ids)
            except ObjectNotFoundError:
                continue
            except (ValueError, KeyError, json.JSONDecodeError):
                logger.exception("deleting unreadable head %s", key)
                trained_on = {""}  # never a subset of real students: delete below
            if not trained_on <= enrolled:
                self._delete_version(class_id, version)

    def _delete_version(self, class_id: str, version: int) -> None:
        self._store.delete(keys.HEAD.key(class_id=class_id, version=version))
        with self._lock:
            loaded = self._loaded.get(class_id)
            if loaded is not None and loaded.version == version:
                del self._loaded[class_id]

    def clear(self, class_id: str) -> None:
        """Remove every head of the class (fewer than two students left, or heads disabled)."""
        self._store.delete(keys.HEAD_POINTER.key(class_id=class_id))
        with self._lock:
            self._loaded.pop(class_id, None)
        for version in self.versions(class_id):
            self._store.delete(keys.HEAD.key(class_id=class_id, version=version))

    def record_failure(self, class_id: str, gallery_signature: str, error: str) -> None:
        doc = HeadFailureDoc(
            gallery_signature=gallery_signature, error=error[:500], failed_at=utc_now()
        )
        self._store.put(
            keys.HEAD_FAILURE.key(class_id=class_id),
            doc.to_json_bytes(),
            content_type="application/json",
        )

    def delete_all(self, class_id: str) -> None:
        """Remove every object of the class's heads (the class was deleted meanwhile)."""
        self._store.delete_prefix(keys.HEAD.prefix(class_id=class_id))
        self.forget(class_id)

    def forget(self, class_id: str) -> None:
        with self._lock:
            self._loaded.pop(class_id, None)


def _with_version(head: ProjectionHead, version: int) -> ProjectionHead:
    """The same weights under the storage version (the trainer restarts at 1 without a warm start)."""
    if head.version == version:
        return head
    return ProjectionHead(
        head.weights,
        version=version,
        student_ids=head.student_ids,
        steps=head.steps,
        final_loss=head.final_loss,
    )
