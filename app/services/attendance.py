"""Recognition and attendance sessions.

Merge rule for several photos of one session: a student is seen once, by the first photo that
names them. Each upload also writes a record object per student it recognised, created only if
absent (``already_present`` in the reply); the roster itself is derived from the photos and the
teacher's corrections on every read (:mod:`app.services.roster`), so that concurrent uploads and
corrections never lose each other.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

from app.images import decode_image, encode_jpeg
from app.services import layout, roster, samples, thumbnails
from app.services.context import Context
from app.services.drawing import draw_faces
from app.services.errors import ConflictError, NotFoundError, PhotoPurgedError
from app.services.gallery import ClassGallery
from app.services.heads import usable_head
from app.services.ids import new_id, utc_now
from app.services.results import (
    AttendanceEntry,
    Face,
    Recognised,
    Session,
    SessionCsv,
    SessionDetail,
    SessionPhotoAdded,
    SessionPhotoDetail,
    SessionSummary,
    Student,
    StudentAttendance,
    face_label,
    rounded_box,
)
from app.services.students import (
    Upload,
    decode_upload,
    enrolled_student,
    list_students,
    require_student,
)
from app.storage import ObjectNotFoundError
from ml.annotate import annotate
from ml.pipeline import Recognition
from ml.types import RGBImage

logger = logging.getLogger(__name__)

NO_FACE_MESSAGE = "no face found in the photo"

SESSION_READERS = 8
"""Sessions read at the same time for a list or a report (small objects: on S3 the requests'
latency, not the CPU, is what adds up)."""


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
    ids = ctx.records.sessions.ids(class_id)
    with ThreadPoolExecutor(max_workers=SESSION_READERS) as pool:
        found = pool.map(lambda session_id: ctx.records.sessions.get(class_id, session_id), ids)
        docs = [doc for doc in found if doc is not None]
    docs.sort(key=lambda d: (d.date, d.created_at, d.id))
    return docs


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
    matches = result.recognition.faces
    labels = [face_label(m.student_id, result.names, m.too_small) for m in matches]
    new_photo = layout.SessionPhotoDoc(
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
                landmarks=[(round(float(x), 2), round(float(y), 2)) for x, y in m.face.landmarks],
                label=label,
            )
            for f, m, label in zip(faces, matches, labels, strict=True)
        ],
    )
    learned = _confirmed_faces(ctx, class_id, session_id, new_photo, result)
    # Photo objects before records: a record always points at a stored photo. If any write
    # fails, what this request wrote is removed again (the client can simply retry).
    recorded: list[str] = []
    already: list[str] = []
    with ctx.records.staged("a failed photo upload") as staged:
        ctx.records.session_photos.stage(
            staged,
            class_id,
            session_id,
            new_photo,
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
        for sample in learned:
            ctx.records.samples.stage(staged, class_id, sample)
    for student_id in sorted({sample.student_id for sample in learned}):
        samples.keep_bounded(ctx, class_id, student_id)
    if learned:
        ctx.trainer.request(class_id)
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


def _confirmed_faces(
    ctx: Context,
    class_id: str,
    session_id: str,
    photo: layout.SessionPhotoDoc,
    result: RecognitionResult,
) -> list[layout.SampleDoc]:
    """Faces recognised so surely that they become samples without a teacher
    (``ml.samples.AutoConfirmRule``), except of a student the teacher has marked absent or
    excused in this session (their recognition here is doubtful)."""
    if not ctx.settings.learn_from_photos or ctx.settings.max_samples_per_student == 0:
        return []
    rule = ctx.settings.auto_confirm_rule()
    threshold = result.recognition.unknown_threshold
    sure = [
        (index, match)
        for index, match in enumerate(result.recognition.faces)
        if match.student_id is not None
        and not match.too_small
        and match.embeddings
        and rule.confirms(match, threshold)
    ]
    if not sure:
        return []
    corrections = ctx.records.corrections.latest(class_id, session_id)
    learned = []
    for index, match in sure:
        assert match.student_id is not None  # for mypy: filtered above
        correction = corrections.get(match.student_id)
        if correction is not None and correction.status in ("absent", "excused"):
            continue
        learned.append(
            samples.new_sample(
                student_id=match.student_id,
                session_id=session_id,
                photo=photo,
                face_index=index,
                embeddings=match.embeddings,
                crop_jpeg=samples.crop_of(result.image, photo.faces[index]),
                confirmed_by=samples.RECOGNITION,
                label=samples.RECOGNITION,
            )
        )
    return learned


def _state(ctx: Context, class_id: str, doc: layout.SessionDoc) -> roster.SessionState:
    return roster.load_state(ctx, class_id, doc)


def get_session(ctx: Context, class_id: str, session_id: str) -> SessionDetail:
    """The roster: every student enrolled at the time, with their status, how it was decided
    (recognised: which photo and how sure; teacher: when, by whom, with a note)."""
    doc = require_session(ctx, class_id, session_id)
    state = _state(ctx, class_id, doc)
    entries = state.roster(list_students(ctx, class_id))
    present = sum(1 for entry in entries if entry.present)
    return SessionDetail(
        id=doc.id,
        label=doc.label,
        date=doc.date,
        created_at=doc.created_at,
        photo_ids=[photo.id for photo in state.photos],
        present_count=present,
        absent_count=len(entries) - present,
        roster=entries,
    )


CSV_COLUMNS = (
    "student_id",
    "name",
    "status",
    "recorded_at",
    "similarity",
    "photo_id",
    "source",
    "note",
    "corrected_at",
    "corrected_by",
    "session",
    "date",
)
"""The first six are the columns of the CSV before corrections existed, in their order."""


def csv_cell(value: str) -> str:
    # A cell starting with = + - @ is a formula in spreadsheet programs (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def attendance_csv(ctx: Context, class_id: str, session_id: str) -> SessionCsv:
    detail = get_session(ctx, class_id, session_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in detail.roster:
        writer.writerow(
            [
                entry.student_id,
                csv_cell(entry.name),
                entry.status,
                entry.recorded_at.isoformat() if entry.recorded_at else "",
                f"{entry.similarity:.4f}" if entry.similarity is not None else "",
                entry.photo_id or "",
                entry.source or "",
                csv_cell(entry.note or ""),
                entry.corrected_at.isoformat() if entry.corrected_at else "",
                csv_cell(entry.corrected_by or ""),
                csv_cell(detail.label),
                detail.date.isoformat(),
            ]
        )
    class_doc = ctx.require_class(class_id)
    return SessionCsv(
        text=buffer.getvalue(),
        filename=f"{class_doc.name} {detail.date.isoformat()} {detail.label}",
    )


def photo_doc(
    ctx: Context, class_id: str, session_id: str, photo_id: str
) -> layout.SessionPhotoDoc:
    """A complete session photo's ``result.json``; :class:`NotFoundError` if there is none."""
    require_session(ctx, class_id, session_id)
    doc = ctx.records.session_photos.result(class_id, session_id, photo_id)
    if doc is None:
        raise NotFoundError(f"photo {photo_id!r} not found in session {session_id!r}")
    return doc


@dataclass(frozen=True)
class _NamedPhoto:
    doc: layout.SessionPhotoDoc
    faces: list[roster.NamedFace]
    names: dict[str, str]
    """Current names of the enrolled students the faces name (a student erased since is not)."""

    def student_of(self, face: roster.NamedFace) -> str | None:
        return face.student_id if face.student_id in self.names else None

    def labels(self) -> list[str]:
        return [
            face_label(self.student_of(face), self.names, face.doc.too_small) for face in self.faces
        ]


def _named_photo(ctx: Context, class_id: str, session_id: str, photo_id: str) -> _NamedPhoto:
    doc = photo_doc(ctx, class_id, session_id, photo_id)
    assignments = ctx.records.assignments.of_photo(class_id, session_id, photo_id)
    faces = roster.name_faces(doc, assignments)
    names: dict[str, str] = {}
    wanted = {f.student_id for f in faces if f.student_id} | {
        f.doc.candidate_id for f in faces if f.doc.candidate_id
    }
    for student_id in sorted(wanted):
        student = ctx.records.students.get(class_id, student_id)
        if student is not None:
            names[student_id] = student.name
    return _NamedPhoto(doc, faces, names)


def annotated_photo(ctx: Context, class_id: str, session_id: str, photo_id: str) -> bytes:
    """The annotated copy with the names as they are now: the stored copy while it still shows
    them, else drawn again from the original (after a correction, a rename or an erasure)."""
    named = _named_photo(ctx, class_id, session_id, photo_id)
    labels = named.labels()
    photos = ctx.records.session_photos
    try:
        if [face.label for face in named.doc.faces] == labels:
            return photos.image(class_id, session_id, photo_id, layout.ANNOTATED)
        key = layout.session_photo_key(class_id, session_id, photo_id, layout.ANNOTATED)
        cached = ctx.annotated.get(key, labels)
        if cached is not None:
            # Another replica may have purged it since it was drawn here.
            if photos.purged(class_id, session_id, photo_id) is not None:
                raise _image_gone(ctx, class_id, session_id, photo_id)
            return cached
        original = decode_image(
            photos.image(class_id, session_id, photo_id, layout.ORIGINAL),
            max_pixels=ctx.settings.max_image_pixels,
        )
    except ObjectNotFoundError:
        raise _image_gone(ctx, class_id, session_id, photo_id) from None
    drawn = draw_faces(
        original,
        [(face.doc, named.student_of(face)) for face in named.faces],
        labels,
        ctx.settings.annotated_max_side,
    )
    jpeg = encode_jpeg(drawn)
    ctx.annotated.put(key, labels, jpeg)
    return jpeg


def _image_gone(ctx: Context, class_id: str, session_id: str, photo_id: str) -> NotFoundError:
    """Why a session photo's image is missing: purged under the retention policy (410), or the
    photo deleted meanwhile (404)."""
    note = ctx.records.session_photos.purged(class_id, session_id, photo_id)
    if note is None:
        return NotFoundError(f"photo {photo_id!r} not found in session {session_id!r}")
    return PhotoPurgedError(
        f"the images of photo {photo_id!r} were removed on {note.purged_at.date().isoformat()} "
        f"under the retention policy (class photos are kept {note.retention_days} days); its "
        "faces and the attendance they recorded are kept"
    )


def session_photo(
    ctx: Context, class_id: str, session_id: str, photo_id: str
) -> SessionPhotoDetail:
    """A stored session photo's faces, with the teacher's assignments applied and the students
    named as they are called now."""
    named = _named_photo(ctx, class_id, session_id, photo_id)
    faces = []
    for face in named.faces:
        student_id = named.student_of(face)
        stored = face.doc
        faces.append(
            Face(
                box=stored.box,
                detection_score=stored.detection_score,
                known=student_id is not None,
                student_id=student_id,
                name=named.names.get(student_id) if student_id else None,
                score=stored.score,
                similarity=stored.similarity,
                similarities=stored.similarities,
                head_similarity=stored.head_similarity,
                candidate_id=stored.candidate_id if stored.candidate_id in named.names else None,
                too_small=stored.too_small,
                source=face.source if student_id is not None or face.not_in_class else None,
                not_in_class=face.not_in_class,
            )
        )
    doc = named.doc
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
    doc = photo_doc(ctx, class_id, session_id, photo_id)
    if not 0 <= face_index < len(doc.faces):
        raise NotFoundError(
            f"photo {photo_id!r} has {len(doc.faces)} faces; no face number {face_index}"
        )
    try:
        data = ctx.records.session_photos.image(class_id, session_id, photo_id, layout.ORIGINAL)
    except ObjectNotFoundError:
        raise _image_gone(ctx, class_id, session_id, photo_id) from None
    return thumbnails.session_face_jpeg(data, doc.faces[face_index].box)


def session_states(
    ctx: Context, class_id: str, date_from: date | None = None, date_to: date | None = None
) -> list[roster.SessionState]:
    """Every session of the class in the date range (inclusive), by date, with its state; read
    a few sessions at a time (each is a listing and a few small reads: on S3, latency adds up)."""
    docs = [
        doc
        for doc in _session_docs(ctx, class_id)
        if (date_from is None or doc.date >= date_from) and (date_to is None or doc.date <= date_to)
    ]
    with ThreadPoolExecutor(max_workers=SESSION_READERS) as pool:
        return list(pool.map(lambda doc: _state(ctx, class_id, doc), docs))


def list_sessions(ctx: Context, class_id: str) -> list[SessionSummary]:
    """Sessions by date, with how many students attended and how many photos were taken."""
    enrolled = list_students(ctx, class_id)
    summaries = []
    for state in session_states(ctx, class_id):
        doc = state.doc
        summaries.append(
            SessionSummary(
                id=doc.id,
                label=doc.label,
                date=doc.date,
                created_at=doc.created_at,
                present_count=sum(1 for entry in state.roster(enrolled) if entry.present),
                photo_count=len(state.photos),
            )
        )
    return summaries


def student_attendance(ctx: Context, class_id: str, student_id: str) -> StudentAttendance:
    """The student's attendance in every session whose roster has them."""
    doc = require_student(ctx, class_id, student_id)
    student = enrolled_student(ctx, class_id, student_id)
    entries = (
        attendance_entries(session_states(ctx, class_id), student) if student is not None else []
    )
    return StudentAttendance(
        student_id=doc.id,
        name=doc.name,
        present_count=sum(1 for e in entries if e.present),
        session_count=len(entries),
        sessions=entries,
    )


def attendance_entries(
    states: Sequence[roster.SessionState], student: Student
) -> list[AttendanceEntry]:
    """The student's entry in each of ``states`` whose roster has them, in their order."""
    entries = []
    for state in states:
        for entry in state.roster([student]):
            entries.append(
                AttendanceEntry(
                    session_id=state.doc.id,
                    label=state.doc.label,
                    date=state.doc.date,
                    present=entry.present,
                    status=entry.status,
                    source=entry.source,
                    recorded_at=entry.recorded_at,
                    similarity=entry.similarity,
                    photo_id=entry.photo_id,
                    note=entry.note,
                )
            )
    return entries
