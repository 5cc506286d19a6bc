"""A teacher correcting a session: a student's status by hand, and naming a face.

Each correction is a new object (``StatusCorrectionDoc``, ``FaceAssignmentDoc``), never a
rewrite; :mod:`app.services.attendance.roster` derives the attendance from them on every read. A
face the teacher names becomes a sample of that student (:mod:`app.services.enrolment.samples`);
samples taken from that face for anyone else are removed. A face the teacher says is nobody of
the class becomes one of its known strangers (:mod:`.strangers`) until it is named again.
"""

from __future__ import annotations

import logging

from app.core.errors import ConflictError, NotFoundError
from app.core.ids import new_id, new_id_after
from app.records.documents import (
    FaceAssignmentDoc,
    SessionPhotoDoc,
    Status,
    StatusCorrectionDoc,
)
from app.services import enrolment
from app.services.attendance import roster, strangers
from app.services.attendance.models import RosterEntry, SessionPhotoDetail
from app.services.attendance.photos import photo_doc, session_photo, stored_face
from app.services.attendance.sessions import require_session, session_state
from app.services.context import Context
from app.services.enrolment import Student

logger = logging.getLogger(__name__)

MAX_NOTE_LENGTH = 500


def _entry_now(ctx: Context, class_id: str, session_id: str, student: Student) -> RosterEntry:
    """The student's roster entry in the session now."""
    state = session_state(ctx, class_id, session_id)
    return roster.roster_entry(
        student, state.sightings().get(student.id), state.manual_status(student.id)
    )


def _require_enrolled(ctx: Context, class_id: str, student_id: str) -> Student:
    ctx.require_class(class_id)
    student = enrolment.enrolled_student(ctx, class_id, student_id)
    if student is None:
        # No student.json, or one without a photo that counts: a registration in flight or cut
        # off.
        raise NotFoundError(f"student {student_id!r} not found in class {class_id!r}")
    return student


def set_status(
    ctx: Context,
    class_id: str,
    session_id: str,
    student_id: str,
    status: Status,
    note: str,
    by: str,
) -> RosterEntry:
    """Set a student's status by hand; it wins over recognition, also over later photos."""
    return _correct(ctx, class_id, session_id, student_id, status, note, by)


def clear_status(
    ctx: Context, class_id: str, session_id: str, student_id: str, by: str
) -> RosterEntry:
    """Remove the manual status: recognition's applies again. 404 when there is none."""
    return _correct(ctx, class_id, session_id, student_id, None, "", by)


def _correct(
    ctx: Context,
    class_id: str,
    session_id: str,
    student_id: str,
    status: Status | None,
    note: str,
    by: str,
) -> RosterEntry:
    """Write one correction (``status`` ``None``: the removal of the manual one) and return the
    student's roster entry as it is now."""
    require_session(ctx, class_id, session_id)
    student = _require_enrolled(ctx, class_id, student_id)
    if status is None:
        latest = ctx.records.corrections.latest_of(class_id, session_id, student_id)
        if latest is None or latest.status is None:
            raise NotFoundError(
                f"student {student_id!r} has no status set by hand in session {session_id!r}"
            )
    ctx.records.corrections.add(
        class_id,
        session_id,
        StatusCorrectionDoc(
            id=new_id(),
            student_id=student_id,
            status=status,
            note=note,
            corrected_at=ctx.now(),
            corrected_by=by,
        ),
    )
    return _entry_now(ctx, class_id, session_id, student)


def assign_face(
    ctx: Context,
    class_id: str,
    session_id: str,
    photo_id: str,
    face_index: int,
    student_id: str | None,
    by: str,
) -> SessionPhotoDetail:
    """Name a face of a session photo (``None``: nobody of this class).

    The student is then present from this photo; whoever the face named before loses what it gave
    them (another face or photo may still show them); a student may be on one face per photo.
    """
    photo, faces, newest = _named_faces(ctx, class_id, session_id, photo_id, face_index)
    if student_id is not None:
        _require_enrolled(ctx, class_id, student_id)
    current = faces[face_index]
    if student_id is not None:
        for face in faces:
            if (
                face.index != face_index
                and face.source == enrolment.TEACHER
                and face.student_id == student_id
            ):
                raise ConflictError(
                    f"student {student_id!r} is already assigned to face {face.index} of this "
                    "photo; assign that face to someone else (or to nobody) first"
                )
    if current.source == enrolment.TEACHER and current.student_id == student_id:
        return session_photo(ctx, class_id, session_id, photo_id)  # already so: nothing to do
    _record(ctx, class_id, session_id, photo_id, face_index, student_id, by, after=newest)
    # Samples follow the names: none of the face for whoever it named before, none of another
    # face for the student now named here (recognition had put them there).
    if current.student_id is not None and current.student_id != student_id:
        enrolment.forget_face(ctx, class_id, current.student_id, session_id, photo_id, face_index)
    if student_id is not None:
        for face in faces:
            if face.index != face_index and face.student_id == student_id:
                enrolment.forget_face(ctx, class_id, student_id, session_id, photo_id, face.index)
        strangers.forget_face(ctx, class_id, session_id, photo_id, face_index)
        _learn_face(ctx, class_id, session_id, photo, face_index, student_id, by)
    else:
        strangers.remember_face(ctx, class_id, session_id, photo, face_index, by)
    return session_photo(ctx, class_id, session_id, photo_id)


def withdraw_assignment(
    ctx: Context,
    class_id: str,
    session_id: str,
    photo_id: str,
    face_index: int,
    by: str,
) -> SessionPhotoDetail:
    """Take back the teacher's naming of a face (a student, or nobody of the class): recognition's
    name applies again, unless the teacher put that student on another face. What the naming
    kept (the student's sample of the face, or the known stranger) goes. 404 when no teacher
    named the face."""
    _, faces, newest = _named_faces(ctx, class_id, session_id, photo_id, face_index)
    current = faces[face_index]
    if current.assignment is None:
        raise NotFoundError(f"face {face_index} of photo {photo_id!r} was not named by a teacher")
    _record(ctx, class_id, session_id, photo_id, face_index, None, by, after=newest, withdrawn=True)
    if current.student_id is not None:
        enrolment.forget_face(ctx, class_id, current.student_id, session_id, photo_id, face_index)
        ctx.gallery_changed(class_id)
    strangers.forget_face(ctx, class_id, session_id, photo_id, face_index)
    return session_photo(ctx, class_id, session_id, photo_id)


def _named_faces(
    ctx: Context, class_id: str, session_id: str, photo_id: str, face_index: int
) -> tuple[SessionPhotoDoc, list[roster.NamedFace], FaceAssignmentDoc | None]:
    """The stored photo, its faces as named now, and the face's newest assignment (a withdrawn
    one too); 404 when the photo has no face ``face_index``."""
    photo = photo_doc(ctx, class_id, session_id, photo_id)
    if not 0 <= face_index < len(photo.faces):
        raise NotFoundError(
            f"photo {photo_id!r} has {len(photo.faces)} faces; no face number {face_index}"
        )
    assignments = ctx.records.assignments.of_photo(class_id, session_id, photo_id)
    return photo, roster.name_faces(photo, assignments), assignments.get(face_index)


def _record(
    ctx: Context,
    class_id: str,
    session_id: str,
    photo_id: str,
    face_index: int,
    student_id: str | None,
    by: str,
    *,
    after: FaceAssignmentDoc | None,
    withdrawn: bool = False,
) -> None:
    """Write an assignment of the face that sorts after its newest one (``after``), which it
    replaces, even within the same millisecond."""
    ctx.records.assignments.add(
        class_id,
        session_id,
        FaceAssignmentDoc(
            id=new_id_after(after.id if after else None),
            photo_id=photo_id,
            face_index=face_index,
            student_id=student_id,
            assigned_at=ctx.now(),
            assigned_by=by,
            withdrawn=withdrawn,
        ),
    )


def _learn_face(
    ctx: Context,
    class_id: str,
    session_id: str,
    photo: SessionPhotoDoc,
    face_index: int,
    student_id: str,
    by: str,
) -> None:
    """Keep the face the teacher named as a sample of the student (not a face too small to
    recognise, nor one that cannot be found again on the photo)."""
    face_doc = photo.faces[face_index]
    if not ctx.settings.learn_from_photos or face_doc.too_small:
        return
    found = stored_face(ctx, class_id, session_id, photo, face_index)
    if found is None:
        return
    enrolment.forget_face(ctx, class_id, student_id, session_id, photo.id, face_index)
    doc = enrolment.new_sample(
        student_id=student_id,
        session_id=session_id,
        photo=photo,
        face_index=face_index,
        embeddings={m: e[0] for m, e in found.embeddings.items()},
        crop_jpeg=enrolment.crop_of(found.image, face_doc),
        confirmed_by=enrolment.TEACHER,
        label=by,
        confirmed_at=ctx.now(),
    )
    ctx.records.samples.create(class_id, doc)
    enrolment.keep_bounded(ctx, class_id, student_id)
    ctx.gallery_changed(class_id)
