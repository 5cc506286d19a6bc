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
from app.services.records import StudentEmbeddings
from app.storage import ObjectNotFoundError, ObjectStore
from ml.fusion import FACENET
from ml.matching import Gallery
from ml.types import Embeddings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassGallery:
    """A snapshot of one class's enrolled students, ready for matching."""

    class_id: str
    embedding_keys: tuple[str, ...]
    """FaceNet's embedding objects: one per registration photo that counts."""
    views: Mapping[str, Embeddings] = field(repr=False)
    """``student_id -> (n_photos * n_views, 512)``: every photo's FaceNet views stacked."""
    gallery: Gallery = field(repr=False)
    secondary_keys: tuple[str, ...] = ()
    """Secondary models' embedding objects of those photos (see ``layout.embedding_key``)."""
    secondary_views: Mapping[str, Mapping[str, Embeddings]] = field(
        default_factory=dict, repr=False
    )
    """``model -> student_id -> (n, D)`` for the students whose photos that model has embedded."""

    @property
    def signature(self) -> str:
        """Identifies exactly which photos the gallery holds (stored with a trained head, which
        is trained on FaceNet's views alone, so secondary models do not change it)."""
        digest = hashlib.sha256("\n".join(self.embedding_keys).encode("utf-8"))
        return digest.hexdigest()[:32]

    @property
    def student_ids(self) -> tuple[str, ...]:
        return self.gallery.student_ids

    def without(self, student_id: str) -> Gallery:
        """The gallery minus one student (to compare a student's new photo with everybody else)."""
        if student_id not in self.views:
            return self.gallery
        return Gallery.from_views(
            {s: v for s, v in self.views.items() if s != student_id},
            {
                model: {s: v for s, v in per_student.items() if s != student_id}
                for model, per_student in self.secondary_views.items()
            },
        )

    def model_progress(self, model: str) -> tuple[int, int]:
        """``(photos embedded by model, photos)``: how far a back-fill of ``model`` has come."""
        refs = (layout.parse_embedding_key(self.class_id, key) for key in self.secondary_keys)
        done = sum(1 for ref in refs if ref is not None and ref.model == model)
        return done, len(self.embedding_keys)


class GalleryCache:
    """Thread-safe: readers share immutable snapshots; loading happens outside the lock."""

    def __init__(self, store: ObjectStore):
        self._embeddings = StudentEmbeddings(store)
        self._lock = threading.Lock()
        self._arrays: dict[str, Embeddings] = {}
        self._snapshots: dict[str, ClassGallery] = {}

    def get(self, class_id: str) -> ClassGallery:
        """The current gallery of ``class_id`` (empty if it has no students)."""
        parsed = self._embeddings.listing(class_id)
        wanted = (tuple(parsed.embeddings), tuple(parsed.secondary))
        with self._lock:
            snapshot = self._snapshots.get(class_id)
            if (
                snapshot is not None
                and (snapshot.embedding_keys, snapshot.secondary_keys) == wanted
            ):
                return snapshot
            all_wanted = (*wanted[0], *wanted[1])
            known = {key: self._arrays[key] for key in all_wanted if key in self._arrays}
        loaded: dict[str, Embeddings] = {}
        for key in all_wanted:
            if key in known:
                continue
            try:
                loaded[key] = self._embeddings.load(key)
            except ObjectNotFoundError:
                # Deleted between the listing and now: the next listing will not show it either.
                continue
            except ValueError:
                logger.exception("ignoring unreadable embedding object %s", key)
                continue
        arrays = {**known, **loaded}
        present = tuple(key for key in wanted[0] if key in arrays)
        present_secondary = tuple(key for key in wanted[1] if key in arrays)
        per_student: dict[str, list[Embeddings]] = {}
        per_model: dict[str, dict[str, list[Embeddings]]] = {}
        for key in (*present, *present_secondary):
            ref = layout.parse_embedding_key(class_id, key)
            if ref is None:  # pragma: no cover - the listing was parsed with the same rules
                continue
            target = per_student if ref.model == FACENET else per_model.setdefault(ref.model, {})
            target.setdefault(ref.student_id, []).append(arrays[key])
        views = {sid: np.concatenate(chunks) for sid, chunks in per_student.items()}
        secondary_views = {
            model: {sid: np.concatenate(chunks) for sid, chunks in students.items() if sid in views}
            for model, students in per_model.items()
        }
        snapshot = ClassGallery(
            class_id,
            present,
            views,
            Gallery.from_views(views, secondary_views),
            present_secondary,
            secondary_views,
        )
        with self._lock:
            class_prefix = layout.class_prefix(class_id)
            # Drop arrays of photos that are gone, keep the rest for the next rebuild.
            for key in [k for k in self._arrays if k.startswith(class_prefix)]:
                if key not in arrays:
                    del self._arrays[key]
            self._arrays.update(loaded)
            if (present, present_secondary) == wanted:
                self._snapshots[class_id] = snapshot
        return snapshot

    def forget(self, class_id: str) -> None:
        """Drop everything cached for a class (after the class is deleted)."""
        class_prefix = layout.class_prefix(class_id)
        with self._lock:
            self._snapshots.pop(class_id, None)
            for key in [k for k in self._arrays if k.startswith(class_prefix)]:
                del self._arrays[key]
