"""Recognition and attendance sessions.

Merge rule for several photos of one session: a student is recorded once, by the first photo that
recognises them (``put(..., if_absent=True)`` on their record object). That keeps the time they were
first seen, needs no read-modify-write, and so concurrent uploads to one session never lose a record.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import logging
from dataclasses import dataclass
from datetime import date

from app import schemas
from app.images import encode_jpeg
from app.services import layout, thumbnails
from app.services.cleanup import delete_in_order
from app.services.context import Context
from app.services.erasure import complete_photo_ids
from app.services.errors import ConflictError, NotFoundError
from app.services.gallery import ClassGallery
from app.services.heads import usable_head
from app.services.ids import new_id, utc_now
from app.services.students import Upload, decode_upload, list_students, require_student
from app.storage import ObjectExistsError, ObjectNotFoundError, StorageUnavailableError
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

    def faces(self) -> list[schemas.FaceOut]:
        return [
            schemas.FaceOut(
                box=_box(match.face.box),
                detection_score=round(float(match.face.score), 4),
                known=match.student_id is not None,
                student_id=match.student_id,
                name=self.names.get(match.student_id) if match.student_id else None,
                score=round(float(match.score), 4),
                similarity=round(float(match.similarity), 4),
                similarities=dict(match.model_similarities),
                head_similarity=(
                    round(float(match.head_similarity), 4)
                    if match.head_similarity is not None
                    else None
                ),
                candidate_id=match.candidate_id,
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

    def annotated(self) -> RGBImage:
        labels = [
            self.names[m.student_id] if m.student_id else "unknown" for m in self.recognition.faces
        ]
        return annotate(self.image, self.recognition.faces, labels)

    def annotated_base64(self) -> str:
        return base64.b64encode(encode_jpeg(self.annotated())).decode("ascii")


def _box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return (round(float(x1), 1), round(float(y1), 1), round(float(x2), 1), round(float(y2), 1))


def recognize_image(ctx: Context, class_id: str, image: RGBImage) -> RecognitionResult:
    """Match every face of ``image`` against the class, using the head where it is valid."""
    snapshot = ctx.galleries.get(class_id)
    # The head is always trained (and shown); the pipeline uses it only when configured to.
    current = ctx.heads.current(class_id) if ctx.inference.pipeline.config.use_head else None
    head = usable_head(current[1] if current else None, snapshot)
    if ctx.inference.pipeline.config.use_head:
        _retrain_if_stale(ctx, class_id, snapshot, current[0] if current else None)
    ctx.backfill_if_needed(class_id, snapshot)
    recognition = ctx.inference.recognize(image, snapshot.gallery, head)
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


def recognize(
    ctx: Context, class_id: str, upload: Upload, *, with_image: bool
) -> schemas.RecognitionOut:
    ctx.require_class(class_id)
    image = decode_upload(ctx, upload, upload.filename or "photo")
    result = recognize_image(ctx, class_id, image)
    return schemas.RecognitionOut(
        faces=result.faces(),
        names=result.recognised_names(),
        unknown_threshold=round(result.recognition.unknown_threshold, 4),
        message=result.message(),
        image=result.annotated_base64() if with_image else None,
    )


# --- sessions ---------------------------------------------------------------------------------


def _session_out(doc: layout.SessionDoc) -> schemas.SessionOut:
    return schemas.SessionOut(id=doc.id, label=doc.label, date=doc.date, created_at=doc.created_at)


def create_session(
    ctx: Context, class_id: str, session_id: str | None, label: str, day: date | None
) -> schemas.SessionOut:
    ctx.require_class(class_id)
    now = utc_now()
    doc = layout.SessionDoc(
        id=session_id or new_id(), label=label, date=day or now.date(), created_at=now
    )
    try:
        ctx.write(layout.session_key(class_id, doc.id), doc, if_absent=True)
    except ObjectExistsError:
        raise ConflictError(f"session {doc.id!r} already exists in class {class_id!r}") from None
    return _session_out(doc)


def require_session(ctx: Context, class_id: str, session_id: str) -> layout.SessionDoc:
    ctx.require_class(class_id)
    doc = ctx.read(layout.session_key(class_id, session_id), layout.SessionDoc)
    if doc is None:
        raise NotFoundError(f"session {session_id!r} not found in class {class_id!r}")
    return doc


def _session_docs(ctx: Context, class_id: str) -> list[layout.SessionDoc]:
    """Every session of the class, by date."""
    ctx.require_class(class_id)
    docs = []
    for session_id in ctx.store.list_children(layout.sessions_prefix(class_id)):
        doc = ctx.read(layout.session_key(class_id, session_id), layout.SessionDoc)
        if doc is not None:
            docs.append(doc)
    docs.sort(key=lambda d: (d.date, d.created_at, d.id))
    return docs


def list_sessions(ctx: Context, class_id: str) -> list[schemas.SessionSummary]:
    """Sessions by date, with how many students are present and how many photos were taken
    (one listing per session)."""
    summaries = []
    for doc in _session_docs(ctx, class_id):
        keys = ctx.store.list(layout.session_prefix(class_id, doc.id))
        records_prefix = layout.records_prefix(class_id, doc.id)
        photos_prefix = layout.session_photos_prefix(class_id, doc.id)
        summaries.append(
            schemas.SessionSummary(
                **_session_out(doc).model_dump(),
                present_count=sum(
                    1 for k in keys if k.startswith(records_prefix) and k.endswith(".json")
                ),
                photo_count=sum(
                    1 for k in keys if k.startswith(photos_prefix) and k.endswith("/result.json")
                ),
            )
        )
    return summaries


def delete_session(ctx: Context, class_id: str, session_id: str) -> None:
    require_session(ctx, class_id, session_id)
    ctx.store.delete(layout.session_key(class_id, session_id))
    ctx.store.delete_prefix(layout.session_prefix(class_id, session_id))


def add_session_photo(
    ctx: Context, class_id: str, session_id: str, upload: Upload
) -> schemas.SessionPhotoOut:
    """Recognise a photo and record every recognised student as present (first photo wins)."""
    require_session(ctx, class_id, session_id)
    image = decode_upload(ctx, upload, upload.filename or "photo")
    result = recognize_image(ctx, class_id, image)
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
            )
            for f in faces
        ],
    )
    # Photo objects before records: a record always points at a stored photo. If any write
    # fails, what this request wrote is removed again (the client can simply retry).
    written: list[str] = []
    recorded: list[str] = []
    already: list[str] = []
    try:
        for name, data, content_type in (
            ("original.jpg", encode_jpeg(image), "image/jpeg"),
            ("annotated.jpg", encode_jpeg(result.annotated()), "image/jpeg"),
            ("result.json", photo_doc.to_json_bytes(), "application/json"),
        ):
            key = layout.session_photo_key(class_id, session_id, photo_id, name)
            ctx.store.put(key, data, content_type=content_type)
            written.append(key)
        for face in faces:
            if face.student_id is None or face.student_id in recorded + already:
                continue
            record = layout.RecordDoc(
                student_id=face.student_id,
                photo_id=photo_id,
                recorded_at=now,
                similarity=face.similarity,
            )
            key = layout.record_key(class_id, session_id, face.student_id)
            try:
                ctx.write(key, record, if_absent=True)
            except ObjectExistsError:
                already.append(face.student_id)  # an earlier photo recorded them: keep that
                continue
            written.append(key)
            recorded.append(face.student_id)
    except BaseException:
        _roll_back_photo(ctx, written)
        raise
    return schemas.SessionPhotoOut(
        session_id=session_id,
        photo_id=photo_id,
        faces=faces,
        names=result.recognised_names(),
        recorded=recorded,
        already_present=already,
        unknown_threshold=round(result.recognition.unknown_threshold, 4),
        message=result.message(),
        annotated_url=_photo_url(class_id, session_id, photo_id, "annotated.jpg"),
        face_urls=_face_urls(class_id, session_id, photo_id, len(faces)),
    )


def _photo_url(class_id: str, session_id: str, photo_id: str, name: str) -> str:
    return f"/v1/classes/{class_id}/sessions/{session_id}/photos/{photo_id}/{name}"


def _face_urls(class_id: str, session_id: str, photo_id: str, count: int) -> list[str]:
    return [_photo_url(class_id, session_id, photo_id, f"faces/{i}.jpg") for i in range(count)]


def _roll_back_photo(ctx: Context, written: list[str]) -> None:
    """Remove what a failed photo upload wrote: its records first, then the photo they point at.

    When the store is down, the records that could not be removed stay, and so does their photo
    (it is complete: records are written only after all its objects). A concurrent upload may
    already have answered "already present" on the strength of such a record, so it must not be
    removed later, when nobody can tell any more. Photo objects that no record points at are
    removed once the store is back.
    """
    for index, key in enumerate(reversed(written)):
        try:
            ctx.store.delete(key)
        except StorageUnavailableError:
            left = written[: len(written) - index]
            if any("/records/" in k for k in left):
                logger.warning("storage down: keeping %d records and their photo", len(left))
            else:
                ctx.cleanup.defer(
                    f"remove the objects of a failed photo upload, e.g. {left[0]}",
                    functools.partial(delete_in_order, ctx.store, left[::-1]),
                )
            return
        except Exception:
            logger.exception("could not remove %s while rolling back", key)


def _stored_photo_ids(ctx: Context, class_id: str, session_id: str) -> list[str]:
    return complete_photo_ids(ctx, class_id, session_id)


def get_session(ctx: Context, class_id: str, session_id: str) -> schemas.SessionDetail:
    """The roster: every enrolled student, present (when, how sure, which photo) or absent."""
    doc = require_session(ctx, class_id, session_id)
    records: dict[str, layout.RecordDoc] = {}
    for key in ctx.store.list(layout.records_prefix(class_id, session_id)):
        record = ctx.read(key, layout.RecordDoc)
        if record is not None:
            records[record.student_id] = record
    roster = []
    for student in list_students(ctx, class_id):
        record = records.get(student.id)
        roster.append(
            schemas.RosterEntry(
                student_id=student.id,
                name=student.name,
                present=record is not None,
                recorded_at=record.recorded_at if record else None,
                similarity=round(record.similarity, 4) if record else None,
                photo_id=record.photo_id if record else None,
            )
        )
    photo_ids = _stored_photo_ids(ctx, class_id, session_id)
    present = sum(1 for entry in roster if entry.present)
    return schemas.SessionDetail(
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
        return ctx.store.get(
            layout.session_photo_key(class_id, session_id, photo_id, "annotated.jpg")
        )
    except ObjectNotFoundError:
        raise NotFoundError(f"photo {photo_id!r} not found in session {session_id!r}") from None


def _photo_doc(
    ctx: Context, class_id: str, session_id: str, photo_id: str
) -> layout.SessionPhotoDoc:
    require_session(ctx, class_id, session_id)
    doc = ctx.read(
        layout.session_photo_key(class_id, session_id, photo_id, "result.json"),
        layout.SessionPhotoDoc,
    )
    if doc is None:
        raise NotFoundError(f"photo {photo_id!r} not found in session {session_id!r}")
    return doc


def session_photo(
    ctx: Context, class_id: str, session_id: str, photo_id: str
) -> schemas.SessionPhotoDetail:
    """A stored session photo's faces, named as the students are called now."""
    doc = _photo_doc(ctx, class_id, session_id, photo_id)
    names: dict[str, str] = {}
    for student_id in sorted({f.student_id for f in doc.faces if f.student_id}):
        student = ctx.read(layout.student_key(class_id, student_id), layout.StudentDoc)
        if student is not None:  # a student deleted since is unknown now
            names[student_id] = student.name
    faces = [
        schemas.FaceOut(
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
        )
        for face in doc.faces
    ]
    return schemas.SessionPhotoDetail(
        session_id=session_id,
        photo_id=photo_id,
        created_at=doc.created_at,
        filename=doc.filename,
        width=doc.width,
        height=doc.height,
        faces=faces,
        unknown_threshold=round(doc.unknown_threshold, 4),
        annotated_url=_photo_url(class_id, session_id, photo_id, "annotated.jpg"),
        face_urls=_face_urls(class_id, session_id, photo_id, len(faces)),
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
        data = ctx.store.get(
            layout.session_photo_key(class_id, session_id, photo_id, "original.jpg")
        )
    except ObjectNotFoundError:
        raise NotFoundError(f"photo {photo_id!r} not found in session {session_id!r}") from None
    return thumbnails.face_crop_jpeg(
        data,
        doc.faces[face_index].box,
        context=thumbnails.FACE_CROP_CONTEXT,
        max_side=thumbnails.FACE_CROP_PX,
    )


def student_attendance(ctx: Context, class_id: str, student_id: str) -> schemas.StudentAttendance:
    """The student's attendance in every session of the class (one read per session)."""
    student = require_student(ctx, class_id, student_id)
    entries = []
    for doc in _session_docs(ctx, class_id):
        record = ctx.read(layout.record_key(class_id, doc.id, student_id), layout.RecordDoc)
        entries.append(
            schemas.AttendanceEntry(
                session_id=doc.id,
                label=doc.label,
                date=doc.date,
                present=record is not None,
                recorded_at=record.recorded_at if record else None,
                similarity=round(record.similarity, 4) if record else None,
                photo_id=record.photo_id if record else None,
            )
        )
    return schemas.StudentAttendance(
        student_id=student.id,
        name=student.name,
        present_count=sum(1 for e in entries if e.present),
        session_count=len(entries),
        sessions=entries,
    )
