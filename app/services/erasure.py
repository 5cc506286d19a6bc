"""Erasing a student from what attendance stored about them.

Deleting a student removes their record, photos and embeddings (``students.delete_student``);
the class photos of past sessions stay, but must stop naming them.
"""

from __future__ import annotations

import numpy as np

from app.images import decode_image, encode_jpeg
from app.services import layout
from app.services.context import Context
from app.services.results import face_label
from app.storage import ObjectNotFoundError
from ml.annotate import annotate
from ml.pipeline import FaceMatch
from ml.types import DetectedFace, RGBImage


def forget_student_in_photos(ctx: Context, class_id: str, student_id: str) -> int:
    """Remove an erased student's identity from every stored session photo of the class.

    The face stays in the class photo (it is a record of the lesson, like any unknown face), but
    ``result.json`` no longer names the student (nor as the runner-up candidate) and
    ``annotated.jpg`` is drawn again with that face labelled unknown. The annotated image is
    rewritten before ``result.json``, so an erasure cut off half-way is found and finished by the
    next attempt (which looks for the id in ``result.json``). Returns the photos rewritten.
    """
    rewritten = 0
    photos = ctx.records.session_photos
    for session_id in ctx.records.sessions.ids(class_id):
        for photo_id in photos.complete_ids(class_id, session_id):
            doc = photos.result(class_id, session_id, photo_id)
            if doc is None or not any(
                student_id in (face.student_id, face.candidate_id) for face in doc.faces
            ):
                continue
            faces = [
                face.model_copy(
                    update={
                        "student_id": None if face.student_id == student_id else face.student_id,
                        "candidate_id": (
                            None if face.candidate_id == student_id else face.candidate_id
                        ),
                    }
                )
                for face in doc.faces
            ]
            try:
                original = decode_image(
                    photos.image(class_id, session_id, photo_id, layout.ORIGINAL),
                    max_pixels=ctx.settings.max_image_pixels,
                )
            except ObjectNotFoundError:
                continue  # the photo is being deleted with its session
            annotated = encode_jpeg(_annotate_stored(ctx, class_id, original, faces))
            updated = doc.model_copy(update={"faces": faces})
            photos.rewrite(class_id, session_id, photo_id, updated, annotated)
            rewritten += 1
    return rewritten


def _annotate_stored(
    ctx: Context, class_id: str, image: RGBImage, faces: list[layout.FaceDoc]
) -> RGBImage:
    """Draw stored faces again, labelled with the students' current names."""
    names: dict[str, str] = {}
    for student_id in {face.student_id for face in faces if face.student_id}:
        student = ctx.records.students.get(class_id, student_id)
        names[student_id] = student.name if student is not None else student_id
    matches = [
        FaceMatch(
            face=DetectedFace(
                box=face.box,
                score=face.detection_score,
                landmarks=np.zeros((5, 2), dtype=np.float32),  # not stored, not drawn
            ),
            student_id=face.student_id,
            similarity=face.similarity,
            head_similarity=face.head_similarity,
            candidate_id=face.candidate_id,
            too_small=face.too_small,
        )
        for face in faces
    ]
    labels = [face_label(m.student_id, names, m.too_small) for m in matches]
    return annotate(image, matches, labels, max_side=ctx.settings.annotated_max_side)
