"""Confirmed faces: a face from a class photo that a teacher named, or that recognition named
with a high margin (``ml.samples.AutoConfirmRule``), kept as an extra gallery sample of the student.

A sample is one object (``SampleDoc``) with its provenance, every model's embedding and a
small crop, so it stays meaningful after its class photo is deleted. Each student keeps at most
``max_samples_per_student`` (``ml.samples.select_samples``: the newest half, then the most diverse);
a teacher removes a wrong one by hand. The gallery (:mod:`app.services.recognition.gallery`) picks them up from
the class listing like registration photos.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from app.core import thumbnails
from app.core.errors import NotFoundError
from app.core.ids import new_id
from app.records.documents import (
    FaceDoc,
    SampleDoc,
    SessionPhotoDoc,
    vector_from_text,
    vector_to_text,
)
from app.services.context import Context
from app.services.enrolment.models import Sample
from app.storage import StorageUnavailableError
from ml.fusion import FACENET
from ml.samples import Sample as MlSample
from ml.samples import select_samples
from ml.types import RGBImage

logger = logging.getLogger(__name__)

RECOGNITION: Final = "recognition"
"""``confirmed_by`` (and label) of a sample that recognition confirmed on its own."""
TEACHER: Final = "teacher"
"""``confirmed_by`` of a face a teacher named (and the roster's source of what a teacher
decided)."""


def new_sample(
    *,
    student_id: str,
    session_id: str,
    photo: SessionPhotoDoc,
    face_index: int,
    embeddings: Mapping[str, npt.NDArray[np.float32]],
    crop_jpeg: bytes,
    confirmed_by: str,
    label: str,
    confirmed_at: dt.datetime,
) -> SampleDoc:
    """A sample of one face of a session photo; ``embeddings`` are ``model -> (D,)`` or ``(1, D)``."""
    return SampleDoc(
        id=new_id(),
        student_id=student_id,
        session_id=session_id,
        photo_id=photo.id,
        face_index=face_index,
        confirmed_by=TEACHER if confirmed_by == TEACHER else RECOGNITION,
        confirmed_label=label,
        confirmed_at=confirmed_at,
        taken_at=photo.created_at,
        box=photo.faces[face_index].box,
        embeddings={model: vector_to_text(np.ravel(v)) for model, v in embeddings.items()},
        crop_jpeg=base64.b64encode(crop_jpeg).decode("ascii"),
    )


def crop_of(image: RGBImage, face: FaceDoc) -> bytes:
    """The small JPEG a sample keeps of its face."""
    return thumbnails.face_crop_of_image(
        image, face.box, context=thumbnails.FACE_CROP_CONTEXT, max_side=thumbnails.FACE_CROP_PX
    )


def keep_bounded(ctx: Context, class_id: str, student_id: str) -> list[str]:
    """Drop the student's samples beyond the bound; returns the ids dropped. Best effort: a
    failure leaves one sample too many until the next confirmed face."""
    try:
        limit = ctx.settings.max_samples_per_student
        # Called after every confirmed face: the samples are read only when there are too many.
        if ctx.records.samples.count(class_id, student_id) <= limit:
            return []
        docs = ctx.records.samples.of_student(class_id, student_id)
        candidates = []
        for doc in docs:
            try:
                vector = vector_from_text(doc.embeddings[FACENET])
            except (KeyError, ValueError):
                continue  # unreadable: the gallery ignores it too
            candidates.append(MlSample(doc.id, vector, doc.taken_at.timestamp()))
        reference = ctx.galleries.get(class_id).registration_templates(student_id)
        selection = select_samples(candidates, limit, reference=reference)
        for sample_id in selection.dropped:
            ctx.records.samples.delete(class_id, student_id, sample_id)
        return list(selection.dropped)
    except StorageUnavailableError:
        logger.warning(
            "could not bound the samples of %s/%s: store unavailable", class_id, student_id
        )
        return []


def forget_face(
    ctx: Context, class_id: str, student_id: str, session_id: str, photo_id: str, face_index: int
) -> int:
    """Remove the student's samples taken from one face (the face was named again)."""
    removed = 0
    for doc in ctx.records.samples.of_student(class_id, student_id):
        if (doc.session_id, doc.photo_id, doc.face_index) == (session_id, photo_id, face_index):
            ctx.records.samples.delete(class_id, student_id, doc.id)
            removed += 1
    return removed


def to_result(doc: SampleDoc) -> Sample:
    return Sample(
        sample_id=doc.id,
        session_id=doc.session_id,
        photo_id=doc.photo_id,
        face_index=doc.face_index,
        confirmed_by=doc.confirmed_by,
        confirmed_label=doc.confirmed_label,
        confirmed_at=doc.confirmed_at,
        taken_at=doc.taken_at,
    )


def list_samples(ctx: Context, class_id: str, student_id: str) -> list[Sample]:
    """The student's samples, newest first."""
    docs = ctx.records.samples.of_student(class_id, student_id)
    return [to_result(doc) for doc in sorted(docs, key=_newest_first)]


def _newest_first(doc: SampleDoc) -> tuple[float, str]:
    return (-doc.taken_at.timestamp(), doc.id)


def _require_sample(ctx: Context, class_id: str, student_id: str, sample_id: str) -> SampleDoc:
    doc = ctx.records.samples.get(class_id, student_id, sample_id)
    if doc is None:
        raise NotFoundError(f"sample {sample_id!r} not found for student {student_id!r}")
    return doc


def delete_sample(ctx: Context, class_id: str, student_id: str, sample_id: str) -> None:
    """Remove one sample (a wrong face): the student is matched without it from the next photo."""
    _require_sample(ctx, class_id, student_id, sample_id)
    ctx.records.samples.delete(class_id, student_id, sample_id)
    ctx.gallery_changed(class_id)


def sample_crop(ctx: Context, class_id: str, student_id: str, sample_id: str) -> bytes:
    return base64.b64decode(_require_sample(ctx, class_id, student_id, sample_id).crop_jpeg)
