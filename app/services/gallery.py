"""In-process cache of each class's gallery, rebuilt from the per-student embedding objects.

The cache is keyed by the sorted list of embedding keys of the class's students (one ``list`` call,
cheap on disk and on S3). Embedding objects are immutable once written (a new photo gets a new id),
so an array loaded once stays valid; any registration, new photo or deletion, by this process or by
another worker on the same bucket, changes the key list and therefore the gallery.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from app.services import layout
from app.storage import ObjectNotFoundError, ObjectStore
from ml.matching import Gallery
from ml.types import Embeddings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassGallery:
    """A snapshot of one class's enrolled students, ready for matching."""

    class_id: str
    embedding_keys: tuple[str, ...]
    views: Mapping[str, Embeddings] = field(repr=False)
    """``student_id -> (n_photos * n_views, 512)``: every photo's views stacked."""
    gallery: Gallery = field(repr=False)

    @property
    def signature(self) -> str:
        """Identifies exactly which photos the gallery holds (stored with a trained head)."""
        digest = hashlib.sha256("\n".join(self.embedding_keys).encode("utf-8"))
        return digest.hexdigest()[:32]

    @property
    def student_ids(self) -> tuple[str, ...]:
        return self.gallery.student_ids

    def without(self, student_id: str) -> Gallery:
        """The gallery minus one student (to compare a student's new photo with everybody else)."""
        if student_id not in self.views:
            return self.gallery
        return Gallery.from_views({s: v for s, v in self.views.items() if s != student_id})


def parse_student_keys(class_id: str, keys: list[str]) -> tuple[set[str], list[str]]:
    """From a listing of a class's students: ids that have ``student.json``, and their embedding keys.

    A student without ``student.json`` is being created or deleted right now; it is not enrolled.
    """
    prefix = layout.students_prefix(class_id)
    documented: set[str] = set()
    embeddings: list[tuple[str, str]] = []
    for key in keys:
        parts = key[len(prefix) :].split("/")
        if len(parts) == 2 and parts[1] == "student.json":
            documented.add(parts[0])
        elif len(parts) == 3 and parts[1] == "embeddings" and parts[2].endswith(".npy"):
            embeddings.append((parts[0], key))
    return documented, sorted(key for sid, key in embeddings if sid in documented)


class GalleryCache:
    """Thread-safe: readers share immutable snapshots; loading happens outside the lock."""

    def __init__(self, store: ObjectStore):
        self._store = store
        self._lock = threading.Lock()
        self._arrays: dict[str, Embeddings] = {}
        self._snapshots: dict[str, ClassGallery] = {}

    def get(self, class_id: str) -> ClassGallery:
        """The current gallery of ``class_id`` (empty if it has no students)."""
        listing = self._store.list(layout.students_prefix(class_id))
        _, keys = parse_student_keys(class_id, listing)
        wanted = tuple(keys)
        with self._lock:
            snapshot = self._snapshots.get(class_id)
            if snapshot is not None and snapshot.embedding_keys == wanted:
                return snapshot
            known = {key: self._arrays[key] for key in wanted if key in self._arrays}
        loaded: dict[str, Embeddings] = {}
        for key in wanted:
            if key in known:
                continue
            try:
                loaded[key] = layout.embeddings_from_bytes(self._store.get(key))
            except ObjectNotFoundError:
                # Deleted between the listing and now: the next listing will not show it either.
                continue
            except ValueError:
                logger.exception("ignoring unreadable embedding object %s", key)
                continue
        arrays = {**known, **loaded}
        present = tuple(key for key in wanted if key in arrays)
        per_student: dict[str, list[Embeddings]] = {}
        prefix = layout.students_prefix(class_id)
        for key in present:
            student_id = key[len(prefix) :].split("/", 1)[0]
            per_student.setdefault(student_id, []).append(arrays[key])
        views = {sid: np.concatenate(chunks) for sid, chunks in per_student.items()}
        snapshot = ClassGallery(class_id, present, views, Gallery.from_views(views))
        with self._lock:
            class_prefix = layout.class_prefix(class_id)
            # Drop arrays of photos that are gone, keep the rest for the next rebuild.
            for key in [k for k in self._arrays if k.startswith(class_prefix)]:
                if key not in arrays:
                    del self._arrays[key]
            self._arrays.update(loaded)
            if present == wanted:
                self._snapshots[class_id] = snapshot
        return snapshot

    def forget(self, class_id: str) -> None:
        """Drop everything cached for a class (after the class is deleted)."""
        class_prefix = layout.class_prefix(class_id)
        with self._lock:
            self._snapshots.pop(class_id, None)
            for key in [k for k in self._arrays if k.startswith(class_prefix)]:
                del self._arrays[key]
