"""Erasing a student from what attendance stored about them.

Deleting a student removes their record, photos, embeddings and samples (their folder,
``students.delete_student``), their attendance records and the teacher's corrections of them;
the class photos of past sessions stay, but must stop naming them.
"""

from __future__ import annotations

from collections import Counter

from app.images import decode_image, encode_jpeg
from app.services import layout
from app.services.context import Context
from app.services.drawing import draw_faces
from app.services.ids import new_id, utc_now
from app.services.results import face_label
from app.storage import ObjectNotFoundError

ERASURE = "erasure"
"""``assigned_by`` of the assignment that replaces one naming an erased student."""


def forget_student_in_sessions(ctx: Context, class_id: str, student_id: str) -> Counter[str]:
    """Remove the student's attendance records and corrections from every session, and every
    face assignment naming them. A face whose newest assignment named them is first assigned to
    nobody, so it does not fall back to what recognition said before the teacher corrected it.
    Returns how many objects of each kind went."""
    removed: Counter[str] = Counter()
    for session_id in ctx.records.sessions.ids(class_id):
        removed["attendance_record"] += ctx.records.attendance.delete(
            class_id, session_id, student_id
        )
        removed["status_correction"] += ctx.records.corrections.delete_student(
            class_id, session_id, student_id
        )
        naming = ctx.records.assignments.naming(class_id, session_id, student_id)
        if not naming:
            continue
        latest = ctx.records.assignments.latest(class_id, session_id)
        for _, doc in naming:
            if latest.get((doc.photo_id, doc.face_index)) == doc:
                ctx.records.assignments.add(
                    class_id,
                    session_id,
                    layout.FaceAssignmentDoc(
                        id=new_id(),
                        photo_id=doc.photo_id,
                        face_index=doc.face_index,
                        student_id=None,
                        assigned_at=utc_now(),
                        assigned_by=ERASURE,
                    ),
                )
        for key, _ in naming:
            ctx.records.assignments.delete_key(key)
        removed["face_assignment"] += len(naming)
    ctx.annotated.forget(layout.class_prefix(class_id))
    return removed


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
            names = ctx.student_names(class_id, {f.student_id for f in faces if f.student_id})
            labels = [face_label(f.student_id, names, f.too_small) for f in faces]
            faces = [
                f.model_copy(update={"label": label})
                for f, label in zip(faces, labels, strict=True)
            ]
            drawn = draw_faces(
                original,
                [(face, face.student_id) for face in faces],
                labels,
                ctx.settings.annotated_max_side,
            )
            annotated = encode_jpeg(drawn)
            updated = doc.model_copy(update={"faces": faces})
            photos.rewrite(class_id, session_id, photo_id, updated, annotated)
            rewritten += 1
    return rewritten
