"""Drawing a stored session photo's faces again: after a teacher's correction, a rename or an
erasure, the annotated copy must show the names as they are now."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np

from app.records.documents import FaceDoc
from ml.annotate import annotate
from ml.pipeline import FaceMatch
from ml.types import DetectedFace, RGBImage

UNKNOWN_LABEL = "unknown"


def face_label(student_id: str | None, names: Mapping[str, str], too_small: bool = False) -> str:
    """The label drawn on a face in an annotated photo: the student's name, ``unknown``, or none
    for a face too small to recognise (its grey box says enough)."""
    if too_small:
        return ""
    if student_id is None:
        return UNKNOWN_LABEL
    return names.get(student_id, student_id)


def draw_faces(
    image: RGBImage,
    faces: Sequence[tuple[FaceDoc, str | None]],
    labels: Sequence[str],
    max_side: int | None,
) -> RGBImage:
    """``faces``: each stored face with the student it names now (``None``: unknown)."""
    matches = [
        FaceMatch(
            face=DetectedFace(
                box=face.box,
                score=face.detection_score,
                landmarks=np.zeros((5, 2), dtype=np.float32),  # not drawn
            ),
            student_id=student_id,
            similarity=face.similarity,
            head_similarity=face.head_similarity,
            candidate_id=face.candidate_id,
            too_small=face.too_small,
        )
        for face, student_id in faces
    ]
    return annotate(image, matches, labels, max_side=max_side)


class AnnotatedCache:
    """The last few annotated copies drawn again, by photo and labels (a teacher correcting a
    photo views it several times; each drawing decodes the full-size original)."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, tuple[str, ...]], bytes] = OrderedDict()

    def get(self, key: str, labels: Sequence[str]) -> bytes | None:
        with self._lock:
            found = self._items.get((key, tuple(labels)))
            if found is not None:
                self._items.move_to_end((key, tuple(labels)))
            return found

    def put(self, key: str, labels: Sequence[str], jpeg: bytes) -> None:
        with self._lock:
            self._items[(key, tuple(labels))] = jpeg
            self._items.move_to_end((key, tuple(labels)))
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget(self, prefix: str) -> None:
        """Drop every copy under ``prefix`` (an erased student's name may be drawn on them)."""
        with self._lock:
            for item in [item for item in self._items if item[0].startswith(prefix)]:
                del self._items[item]
