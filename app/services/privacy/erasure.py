"""Erasing a student: their record, photos, embeddings and samples (their folder), their
attendance records and the teacher's corrections of them; the class photos of past sessions stay,
but stop naming them.
"""

from __future__ import annotations

from collections import Counter

from app.core.errors import NotFoundError
from app.core.ids import new_id
from app.core.images import decode_image, encode_jpeg
from app.records import keys
from app.records.documents import FaceAssignmentDoc
from app.records.sessions import SessionFolder
from app.services.context import Context
from app.services.privacy.models import ErasureReport
from app.services.recognition.drawing import draw_faces, face_label
from app.storage import ObjectNotFoundError

ERASURE = "erasure"
"""``assigned_by`` of the assignment that replaces one naming an erased student."""


def erase_student(ctx: Context, class_id: str, student_id: str) -> ErasureReport:
    """Erase the student: record, photos, embeddings, samples, attendance records and the
    teacher's corrections of them; past class photos stop naming them; retrain the head.

    An erasure cut off half-way (store down) is finished by a retried deletion, which finds the
    leftovers although ``student.json`` is gone, and in the background once the store is back.
    Returns what this call removed, by kind.
    """
    ctx.require_class(class_id)
    students = ctx.records.students
    if not students.has_objects(class_id, student_id):
        raise NotFoundError(f"student {student_id!r} not found in class {class_id!r}")
    removed: Counter[str] = Counter()
    # student.json first: from then on the student is out of every gallery and listing.
    if students.exists(class_id, student_id):
        students.delete_doc(class_id, student_id)
        removed["record"] += 1

    def erase_rest() -> None:
        if students.exists(class_id, student_id):
            return  # registered again meanwhile: its creation already removed the leftovers
        for key in students.delete_objects(class_id, student_id):
            removed[keys.student_object_kind(class_id, key) or "other"] += 1
        folders = ctx.records.sessions.folders(class_id)
        removed.update(forget_student_in_sessions(ctx, folders, student_id))
        # Past class photos keep the face but stop naming the student.
        removed["class_photo_relabelled"] += forget_student_in_photos(ctx, folders, student_id)
        # Copies drawn again after a correction, kept in memory, may show their name.
        ctx.annotated.forget(keys.CLASS.prefix(class_id=class_id))

    ctx.cleanup.attempt(
        f"finish erasing student {class_id}/{student_id}", erase_rest, raise_errors=True
    )
    ctx.student_erased(class_id)
    return ErasureReport(
        student_id=student_id, removed={kind: n for kind, n in sorted(removed.items()) if n}
    )


def forget_student_in_sessions(
    ctx: Context, folders: list[SessionFolder], student_id: str
) -> Counter[str]:
    """Remove the student's attendance records and corrections from every session, and every
    face assignment naming them. A face whose newest assignment named them is first assigned to
    nobody, so it does not fall back to what recognition said before the teacher corrected it.
    Returns how many objects of each kind went. (No new one can appear: ``student.json`` is gone,
    and recognition, corrections and assignments all need it.)"""
    removed: Counter[str] = Counter()
    records = ctx.records
    for folder in folders:
        class_id, session_id = folder.class_id, folder.session_id
        record = keys.RECORD.key(class_id=class_id, session_id=session_id, student_id=student_id)
        if record in folder.objects:
            removed["attendance_record"] += records.attendance.delete(
                class_id, session_id, student_id
            )
        if student_id in folder.corrections():
            removed["status_correction"] += records.corrections.delete_student(
                class_id, session_id, student_id
            )
        naming = records.assignments.naming(folder, student_id)
        if not naming:
            continue
        latest = records.assignments.latest(folder)
        for _, doc in naming:
            if latest.get((doc.photo_id, doc.face_index)) == doc:
                records.assignments.add(
                    class_id,
                    session_id,
                    FaceAssignmentDoc(
                        id=new_id(),
                        photo_id=doc.photo_id,
                        face_index=doc.face_index,
                        student_id=None,
                        assigned_at=ctx.now(),
                        assigned_by=ERASURE,
                    ),
                )
        for key, _ in naming:
            records.assignments.delete_key(key)
        removed["face_assignment"] += len(naming)
    return removed


def forget_student_in_photos(ctx: Context, folders: list[SessionFolder], student_id: str) -> int:
    """Remove an erased student's identity from every stored session photo of the class.

    The face stays in the class photo (it is a record of the lesson, like any unknown face), but
    ``result.json`` no longer names the student (nor as the runner-up candidate) and
    ``annotated.jpg`` is drawn again with that face labelled unknown. The annotated image is
    rewritten before ``result.json``, so an erasure cut off half-way is found and finished by the
    next attempt (which looks for the id in ``result.json``). Returns the photos rewritten.
    """
    rewritten = 0
    photos = ctx.records.session_photos
    for folder in folders:
        class_id, session_id = folder.class_id, folder.session_id
        for doc in photos.results(folder):
            if not any(student_id in (face.student_id, face.candidate_id) for face in doc.faces):
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
            names = ctx.student_names(class_id, {f.student_id for f in faces if f.student_id})
            labels = [face_label(f.student_id, names, f.too_small) for f in faces]
            faces = [
                f.model_copy(update={"label": label})
                for f, label in zip(faces, labels, strict=True)
            ]
            updated = doc.model_copy(update={"faces": faces})
            try:
                original = decode_image(
                    photos.image(class_id, session_id, doc.id, keys.ORIGINAL),
                    max_pixels=ctx.settings.max_image_pixels,
                )
            except ObjectNotFoundError:
                if photos.purged(class_id, session_id, doc.id) is not None:
                    # The retention purge removed the images: only the facts name them.
                    photos.rewrite_result(class_id, session_id, doc.id, updated)
                    rewritten += 1
                continue  # else the photo is being deleted with its session
            drawn = draw_faces(
                original,
                [(face, face.student_id) for face in faces],
                labels,
                ctx.settings.annotated_max_side,
            )
            photos.rewrite(class_id, session_id, doc.id, updated, encode_jpeg(drawn))
            rewritten += 1
    return rewritten
