"""In-process cache of each class's gallery, rebuilt from the per-student embedding and sample
objects.

The cache is keyed by the sorted list of those keys of the class's students (one ``list`` call,
cheap on disk and on S3). Embedding and sample objects are immutable once written (a new photo or
sample gets a new id), so an array loaded once stays valid; any registration, new photo, confirmed
face or deletion, by this process or by another worker on the same bucket, changes the key list and
therefore the gallery.

Each registration photo and each confirmed face (``samples/``) is one photo of the student for
:meth:`ml.matching.Gallery.from_photos`: one template per photo, combined by their mean.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from app.records import keys
from app.records.documents import vector_from_text
from app.records.students import Samples, StudentEmbeddings
from app.storage import ObjectNotFoundError, ObjectStore
from ml.fusion import FACENET
from ml.matching import Gallery
from ml.types import Embeddings

logger = logging.getLogger(__name__)

T = TypeVar("T")

PhotoArrays = Mapping[str, Sequence[Embeddings]]
"""``student_id -> [(n, D) per photo]``."""


@dataclass(frozen=True)
class ClassGallery:
    """A snapshot of one class's enrolled students, ready for matching."""

    class_id: str
    embedding_keys: tuple[str, ...]
    """FaceNet's embedding objects: one per registration photo that counts."""
    photos: PhotoArrays = field(repr=False)
    """FaceNet's arrays of each student's photos: registration photos (``(n_views, 512)``), then
    confirmed faces (``(1, 512)``)."""
    gallery: Gallery = field(repr=False)
    secondary_keys: tuple[str, ...] = ()
    """Secondary models' embedding objects of those photos (see ``keys.embedding_key``)."""
    secondary_photos: Mapping[str, PhotoArrays] = field(default_factory=dict, repr=False)
    """``model -> student_id -> [(n, D) per photo]`` for the photos that model has embedded."""
    sample_keys: tuple[str, ...] = ()
    """Confirmed faces in the gallery (``keys.SAMPLE``)."""

    @property
    def views(self) -> Mapping[str, Embeddings]:
        """``student_id -> (rows, 512)``: all FaceNet rows of the student's photos stacked."""
        return {sid: np.concatenate(arrays) for sid, arrays in self.photos.items()}

    def registration_templates(self, student_id: str) -> Embeddings | None:
        """FaceNet's rows of the student's registration photos (their photos less the samples,
        which come last), or ``None`` if the student is not in the gallery."""
        arrays = self.photos.get(student_id)
        if not arrays:
            return None
        refs = (keys.SAMPLE.parse(key) for key in self.sample_keys)
        n_samples = sum(1 for ref in refs if ref is not None and ref.student_id == student_id)
        return np.concatenate(arrays[: len(arrays) - n_samples])

    @property
    def signature(self) -> str:
        """Identifies exactly which photos and samples the gallery holds (stored with a trained
        head, which is trained on FaceNet's rows alone, so secondary models do not change it)."""
        digest = hashlib.sha256("\n".join((*self.embedding_keys, *self.sample_keys)).encode())
        return digest.hexdigest()[:32]

    @property
    def student_ids(self) -> tuple[str, ...]:
        return self.gallery.student_ids

    def without(self, student_id: str) -> Gallery:
        """The gallery minus one student (to compare a student's new photo with everybody else)."""
        if student_id not in self.photos:
            return self.gallery
        return Gallery.from_photos(
            {s: v for s, v in self.photos.items() if s != student_id},
            {
                model: {s: v for s, v in per_student.items() if s != student_id}
                for model, per_student in self.secondary_photos.items()
            },
        )

    def model_progress(self, model: str) -> tuple[int, int]:
        """``(photos embedded by model, photos)``: how far a back-fill of ``model`` has come."""
        refs = (keys.parse_embedding_key(self.class_id, key) for key in self.secondary_keys)
        done = sum(1 for ref in refs if ref is not None and ref.model == model)
        return done, len(self.embedding_keys)


class GalleryCache:
    """Thread-safe: readers share immutable snapshots; loading happens outside the lock."""

    def __init__(self, store: ObjectStore):
        self._embeddings = StudentEmbeddings(store)
        self._samples = Samples(store)
        self._lock = threading.Lock()
        self._arrays: dict[str, Embeddings] = {}
        self._sample_arrays: dict[str, dict[str, Embeddings]] = {}
        self._snapshots: dict[str, ClassGallery] = {}

    def get(self, class_id: str) -> ClassGallery:
        """The current gallery of ``class_id`` (empty if it has no students)."""
        parsed = self._embeddings.listing(class_id)
        wanted = (tuple(parsed.embeddings), tuple(parsed.secondary), tuple(parsed.samples))
        with self._lock:
            snapshot = self._snapshots.get(class_id)
            if snapshot is not None and _keys_of(snapshot) == wanted:
                return snapshot
            known = {
                key: self._arrays[key] for key in (*wanted[0], *wanted[1]) if key in self._arrays
            }
            known_samples = {
                key: self._sample_arrays[key] for key in wanted[2] if key in self._sample_arrays
            }
        loaded = load_new(wanted[0] + wanted[1], known, self._embeddings.load)
        loaded_samples = load_new(wanted[2], known_samples, self._sample_embeddings)
        arrays = {**known, **loaded}
        samples = {**known_samples, **loaded_samples}
        present = tuple(key for key in wanted[0] if key in arrays)
        present_secondary = tuple(key for key in wanted[1] if key in arrays)
        per_student: dict[str, list[Embeddings]] = {}
        per_model: dict[str, dict[str, list[Embeddings]]] = {}
        for key in (*present, *present_secondary):
            ref = keys.parse_embedding_key(class_id, key)
            if ref is None:  # pragma: no cover - the listing was parsed with the same rules
                continue
            target = per_student if ref.model == FACENET else per_model.setdefault(ref.model, {})
            target.setdefault(ref.student_id, []).append(arrays[key])
        # A confirmed face joins a student who has a registration photo that counts.
        present_samples = []
        for key in wanted[2]:
            sample = keys.SAMPLE.parse(key)
            if sample is None or key not in samples or sample.student_id not in per_student:
                continue
            present_samples.append(key)
            for model, row in samples[key].items():
                target = per_student if model == FACENET else per_model.setdefault(model, {})
                target.setdefault(sample.student_id, []).append(row)
        secondary_photos = {
            model: {sid: chunks for sid, chunks in students.items() if sid in per_student}
            for model, students in per_model.items()
        }
        snapshot = ClassGallery(
            class_id,
            present,
            per_student,
            Gallery.from_photos(per_student, secondary_photos),
            present_secondary,
            secondary_photos,
            tuple(present_samples),
        )
        with self._lock:
            class_prefix = keys.CLASS.prefix(class_id=class_id)
            # Drop arrays of photos that are gone, keep the rest for the next rebuild.
            drop_unlisted(self._arrays, class_prefix, arrays)
            drop_unlisted(self._sample_arrays, class_prefix, samples)
            self._arrays.update(loaded)
            self._sample_arrays.update(loaded_samples)
            if (present, present_secondary) == wanted[:2] and len(samples) == len(wanted[2]):
                self._snapshots[class_id] = snapshot
        return snapshot

    def _sample_embeddings(self, key: str) -> dict[str, Embeddings]:
        """``model -> (1, D)`` of a stored sample."""
        doc = self._samples.load(key)
        return {model: vector_from_text(text)[None, :] for model, text in doc.embeddings.items()}

    def forget(self, class_id: str) -> None:
        """Drop everything cached for a class (after the class is deleted)."""
        class_prefix = keys.CLASS.prefix(class_id=class_id)
        with self._lock:
            self._snapshots.pop(class_id, None)
            drop_unlisted(self._arrays, class_prefix, ())
            drop_unlisted(self._sample_arrays, class_prefix, ())


def _keys_of(snapshot: ClassGallery) -> tuple[tuple[str, ...], ...]:
    return (snapshot.embedding_keys, snapshot.secondary_keys, snapshot.sample_keys)


def load_new(keys: Sequence[str], known: Container[str], load: Callable[[str], T]) -> dict[str, T]:
    """``load`` of each listed key not ``known`` yet (immutable objects, read once). One deleted
    since the listing is left out (the next listing will not show it either); one unreadable is
    logged and left out."""
    loaded: dict[str, T] = {}
    for key in keys:
        if key in known:
            continue
        try:
            loaded[key] = load(key)
        except ObjectNotFoundError:
            continue
        except ValueError:
            logger.exception("ignoring unreadable object %s", key)
            continue
    return loaded


def drop_unlisted(cache: dict[str, T], prefix: str, listed: Container[str]) -> None:
    """Drop what ``cache`` holds under ``prefix`` that the latest listing no longer shows."""
    for key in [k for k in cache if k.startswith(prefix) and k not in listed]:
        del cache[key]
