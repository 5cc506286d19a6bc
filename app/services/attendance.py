"""Recognition and attendance sessions.

Merge rule for several photos of one session: a student is recorded once, by the first photo that
recognises them (``put(..., if_absent=True)`` on their record object). That keeps the time they were
first seen, needs no read-modify-write, and so concurrent uploads to one session never lose a record.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import date

from app.images import encode_jpeg
from app.services import layout, thumbnails
from app.services.context import Context
from app.services.errors import ConflictError, NotFoundError
from app.services.gallery import ClassGallery
from app.services.heads import usable_head
from app.services.ids import new_id, utc_now
from app.services.results import (
    AttendanceEntry,
    Face,
    Recognised,
    RosterEntry,
    Session,
    SessionDetail,
    SessionPhotoAdded,
    SessionPhotoDetail,
    SessionSummary,
    StudentAttendance,
    face_label,
    rounded_box,
)
from app.services.students import Upload, decode_upload, list_students, require_student
from app.storage import ObjectNotFoundError
from ml.annotate import annotate
from ml.pipeline import Recognition
from ml.types import RGBImage

logger = logging.getLogger(__name__)

NO_FACE_MESSAGE = "no face found in the photo"


@dataclass(frozen=True)
class RecognitionResult:
    image: RGBImage
    recognition: Recognition
    names: dict[str, str]
    """Display names of the recognised students."""

    def faces(self) -> list[Face]:
        return [
            Face(
                box=rounded_box(match.face.box),
                detection_score=round(float(match.face.score), 4),
                known=match.student_id is not None,
                student_id=match.student_id,
                name=self.names.get(match.student_id) if match.student_id else None,
                score=None if match.too_small else round(float(match.score), 4),
                similarity=round(float(match.similarity), 4),
                similarities=dict(match.model_similarities),
                head_similarity=(
                    round(float(match.head_similarity), 4)
                    if match.head_similarity is not None
                    else None
                ),
                candidate_id=match.candidate_id,
                too_small=match.too_small,
            )
            for match in self.recognition.faces
        ]

    def recognised_names(self) -> list[str]:
        return [self.names[m.student_id] for m in self.recognition.faces if m.student_id]

    def message(self) -> str | None:
        if not self.recognition.faces:
            return NO_FACE_MESSAGE
        if not any(m.student_id for m in self.recognition.faces):
            return "no enrolled student recognised"
        return None

    def annotated(self, max_side: int | None = None) -> RGBImage:
        """The photo with every face boxed and labelled (too small ones: a grey box, no label),
        shrunk to ``max_side`` pixels at most."""
        labels = [face_label(m.student_id, self.names, m.too_small) for m in self.recognition.faces]
        return annotate(self.image, self.recognition.faces, labels, max_side=max_side)

    def annotated_jpeg(self, max_side: int | None = None) -> bytes:
        return encode_jpeg(self.annotated(max_side))


def recognise_image(ctx: Context, class_id: str, image: RGBImage) -> RecognitionResult:
    """Match every face of ``image`` against the class, using the head where it is valid."""
    snapshot = ctx.galleries.get(class_id)
    # The head is always trained (and shown); the pipeline uses it only when configured to.
    current = ctx.heads.current(class_id) if ctx.inference.pipeline.config.use_head else None
    head = usable_head(current[1] if current else None, snapshot)
    if ctx.inference.pipeline.config.use_head:
        _retrain_if_stale(ctx, class_id, snapshot, current[0] if current else None)
    ctx.backfill_if_needed(class_id, snapshot)
    recognition = ctx.inference.recognise(image, snapshot.gallery, head)
    ids = {m.student_id for m in recognition.faces if m.student_id}
    return RecognitionResult(image, recognition, ctx.student_names(class_id, ids))


def _retrain_if_stale(
    ctx: Context,
    class_id: str,
    snapshot: ClassGallery,
    pointer: layout.HeadPointerDoc | None,
) -> None:
    """Ask for a training when the head does not match the students (the process that was told
    to train it was killed, or another process enrolled them); the trainer debounces."""
    if len(snapshot.student_ids) < 2 or ctx.trainer.is_busy(class_id):
        return
    if pointer is not None and pointer.gallery_signature == snapshot.signature:
        return
    failure = ctx.heads.failure(class_id)
    if failure is not None and failure.gallery_signature == snapshot.signature:
        return  # this very gallery failed to train: do not retry on every photo
    ctx.trainer.request(class_id)


def recognise(ctx: Context, class_id: str, upload: Upload, *, with_image: bool) -> Recognised:
    ctx.require_class(class_id)
    image = decode_upload(ctx, upload, upload.filename or "photo")
    result = recognise_image(ctx, class_id, image)
    return Recognised(
        faces=result.faces(),
        names=result.recognised_names(),
        unknown_threshold=round(result.recognition.unknown_threshold, 4),
        message=result.message(),
        annotated_jpeg=(
            result.annotated_jpeg(ctx.settings.annotated_max_side) if with_image else None
        ),
    )


# --- sessions ---------------------------------------------------------------------------------


def _session(doc: layout.SessionDoc) -> Session:
    return Session(id=doc.id, label=doc.label, date=doc.date, created_at=doc.created_at)


def create_session(
    ctx: Context, class_id: str, session_id: str | None, label: str, day: date | None
) -> Session:
    ctx.require_class(class_id)
    now = utc_now()
    doc = layout.SessionDoc(
        id=session_id or new_id(), label=label, date=day or now.date(), created_at=now
    )
    if not ctx.records.sessions.create(class_id, doc):
        raise ConflictError(f"session {doc.id!r} already exists in class {class_id!r}")
    return _session(doc)


def require_session(ctx: Context, class_id: str, session_id: str) -> layout.SessionDoc:
    ctx.require_class(class_id)
    doc = ctx.records.sessions.get(class_id, session_id)
    if doc is None:
        raise NotFoundError(f"session {session_id!r} not found in class {class_id!r}")
    return doc


def _session_docs(ctx: Context, class_id: str) -> list[layout.SessionDoc]:
    """Every session of the class, by date."""
    ctx.require_class(class_id)
    docs = []
    for session_id in ctx.records.sessions.ids(class_id):
        doc = ctx.records.sessions.get(class_id, session_id)
        if doc is not None:
            docs.append(doc)
    docs.sort(key=lambda d: (d.date, d.created_at, d.id))
    return docs


def list_sessions(ctx: Context, class_id: str) -> list[SessionSummary]:
    """Sessions by date, with how many students are present and how many photos were taken
    (one listing per session)."""
    summaries = []
    for doc in _session_docs(ctx, class_id):
        counts = ctx.records.sessions.counts(class_id, doc.id)
        summaries.append(
            SessionSummary(
                id=doc.id,
                label=doc.label,
                date=doc.date,
                created_at=doc.created_at,
                present_count=counts.present,
                photo_count=counts.photos,
            )
        )
    return summaries


def delete_session(ctx: Context, class_id: str, session_id: str) -> None:
    require_session(ctx, class_id, session_id)
    ctx.records.sessions.delete(class_id, session_id)


def add_session_photo(
    ctx: Context, class_id: str, session_id: str, upload: Upload
) -> SessionPhotoAdded:
    """Recognise a photo and record every recognised student as present (first photo wins)."""
    require_session(ctx, class_id, session_id)
    image = decode_upload(ctx, upload, upload.filename or "photo")
    result = recognise_image(ctx, class_id, image)
    photo_id = new_id()
    now = utc_now()
    faces = result.faces()
    photo_doc = layout.SessionPhotoDoc(
        id=photo_id,
        created_at=now,
        filename=upload.filename,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        unknown_threshold=result.recognition.unknown_threshold,
        faces=[
            layout.FaceDoc(
                box=f.box,
                detection_score=f.detection_score,
                student_id=f.student_id,
                similarity=f.similarity,
                score=f.score,
                similarities=f.similarities,
                head_similarity=f.head_similarity,
                candidate_id=f.candidate_id,
                too_small=f.too_small,
            )
            for f in faces
        ],
    )
    # Photo objects before records: a record always points at a stored photo. If any write
    # fails, what this request wrote is removed again (the client can simply retry).
    recorded: list[str] = []
    already: list[str] = []
    with ctx.records.staged("a failed photo upload") as staged:
        ctx.records.session_photos.stage(
            staged,
            class_id,
            session_id,
            photo_doc,
            encode_jpeg(image),
            encode_jpeg(result.annotated(ctx.settings.annotated_max_side)),
        )
        for face in faces:
            if face.student_id is None or face.student_id in recorded + already:
                continue
            record = layout.RecordDoc(
                student_id=face.student_id,
                photo_id=photo_id,
                recorded_at=now,
                similarity=face.similarity,
            )
            if ctx.records.attendance.stage(staged, class_id, session_id, record):
                recorded.append(face.student_id)
            else:
                already.append(face.student_id)  # an earlier photo recorded them: keep that
    return SessionPhotoAdded(
        session_id=session_id,
        photo_id=photo_id,
        faces=faces,
        names=result.recognised_names(),
        recorded=recorded,
        already_present=already,
        unknown_threshold=round(result.recognition.unknown_threshold, 4),
        message=result.message(),
    )


def get_session(ctx: Context, class_id: str, session_id: str) -> SessionDetail:
    """The roster: every enrolled student, present (when, how sure, which photo) or absent."""
    doc = require_session(ctx, class_id, session_id)
    records = ctx.records.attendance.of_session(class_id, session_id)
    roster = []
    for student in list_students(ctx, class_id):
        record = records.get(student.id)
        roster.append(
            RosterEntry(
                student_id=student.id,
                name=student.name,
                present=record is not None,
                recorded_at=record.recorded_at if record else None,
                similarity=round(record.similarity, 4) if record else None,
                photo_id=record.photo_id if record else None,
            )
        )
    photo_ids = ctx.records.session_photos.complete_ids(class_id, session_id)
    present = sum(1 for entry in roster if entry.present)
    return SessionDetail(
        id=doc.id,
        label=doc.label,
        date=doc.date,
        created_at=doc.created_at,
        photo_ids=photo_ids,
        present_count=present,
        absent_count=len(roster) - present,
        roster=roster,
    )


CSV_COLUMNS = ("student_id", "name", "status", "recorded_at", "similarity", "photo_id")


def _csv_cell(value: str) -> str:
    # A cell starting with = + - @ is a formula in spreadsheet programs (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def attendance_csv(ctx: Context, class_id: str, session_id: str) -> str:
    detail = get_session(ctx, class_id, session_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in detail.roster:
        writer.writerow(
            [
                entry.student_id,
                _csv_cell(entry.name),
                "present" if entry.present else "absent",
                entry.recorded_at.isoformat() if entry.recorded_at else "",
                f"{entry.similarity:.4f}" if entry.similarity is not None else "",
                entry.photo_id or "",
            ]
        )
    return buffer.getvalue()


def annotated_photo(ctx: Context, class_id: str, session_id: str, photo_id: str) -> bytes:
    require_session(ctx, class_id, session_id)
    try:
        return ctx.records.session_photos.image(class_id, session_id, photo_id, layout.ANNOTATED)
    except ObjectNotFoundError:
        raise NotFoundError(f"photo {photo_id!r} not found in session {session_id!r}") from None


def _photo_doc(
    ctx: Context, class_id: str, session_id: str, photo_id: str
) -> layout.SessionPhotoDoc:
    require_session(ctx, class_id, session_id)
    doc = ctx.records.session_photos.result(class_id, session_id, photo_id)
    if doc is None:
        raise NotFoundError(f"photo {photo_id!r} not found in session {session_id!r}")
    return doc


def session_photo(
    ctx: Context, class_id: str, session_id: str, photo_id: str
) -> SessionPhotoDetail:
    """A stored session photo's faces, named as the students are called now."""
    doc = _photo_doc(ctx, class_id, session_id, photo_id)
    names: dict[str, str] = {}
    for student_id in sorted({f.student_id for f in doc.faces if f.student_id}):
        student = ctx.records.students.get(class_id, student_id)
        if student is not None:  # a student deleted since is unknown now
            names[student_id] = student.name
    faces = [
        Face(
            box=face.box,
            detection_score=face.detection_score,
            known=face.student_id in names,
            student_id=face.student_id if face.student_id in names else None,
            name=names.get(face.student_id) if face.student_id else None,
            score=face.score,
            similarity=face.similarity,
            similarities=face.similarities,
            head_similarity=face.head_similarity,
            candidate_id=face.candidate_id if face.candidate_id in names else None,
            too_small=face.too_small,
        )
        for face in doc.faces
    ]
    return SessionPhotoDetail(
        session_id=session_id,
        photo_id=photo_id,
        created_at=doc.created_at,
        filename=doc.filename,
        width=doc.width,
        height=doc.height,
        faces=faces,
        unknown_threshold=round(doc.unknown_threshold, 4),
    )


def face_crop(
    ctx: Context, class_id: str, session_id: str, photo_id: str, face_index: int
) -> bytes:
    """A JPEG of one face of a session photo (faces are numbered from 0, in result order)."""
    doc = _photo_doc(ctx, class_id, session_id, photo_id)
    if not 0 <= face_index < len(doc.faces):
        raise NotFoundError(
            f"photo {photo_id!r} has {len(doc.faces)} faces; no face number {face_index}"
        )
    try:
        data = ctx.records.session_photos.image(class_id, session_id, photo_id, layout.ORIGINAL)
    except ObjectNotFoundError:
        raise NotFoundError(f"photo {photo_id!r} not found in session {session_id!r}") from None
    return thumbnails.face_crop_jpeg(
        data,
        doc.faces[face_index].box,
        context=thumbnails.FACE_CROP_CONTEXT,
        max_side=thumbnails.FACE_CROP_PX,
    )


def student_attendance(ctx: Context, class_id: str, student_id: str) -> StudentAttendance:
    """The student's attendance in every session of the class (one read per session)."""
    student = require_student(ctx, class_id, student_id)
    entries = []
    for doc in _session_docs(ctx, class_id):
        record = ctx.records.attendance.get(class_id, doc.id, student_id)
        entries.append(
            AttendanceEntry(
                session_id=doc.id,
                label=doc.label,
                date=doc.date,
                present=record is not None,
                recorded_at=record.recorded_at if record else None,
                similarity=round(record.similarity, 4) if record else None,
                photo_id=record.photo_id if record else None,
            )
        )
    return StudentAttendance(
        student_id=student.id,
        name=student.name,
        present_count=sum(1 for e in entries if e.present),
        session_count=len(entries),
        sessions=entries,
    )
