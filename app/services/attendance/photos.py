"""Class photos of a session: the upload that recognises and records, the photo's faces as
named now, its annotated copy and its face crops."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from app.core import thumbnails
from app.core.errors import NotFoundError, PhotoPurgedError
from app.core.ids import new_id
from app.core.images import decode_image, encode_jpeg
from app.core.uploads import Upload, decode_upload
from app.records import keys
from app.records.documents import FaceDoc, FaceScores, RecordDoc, SampleDoc, SessionPhotoDoc
from app.services import enrolment
from app.services.attendance import roster
from app.services.attendance.models import Face, SessionPhotoAdded, SessionPhotoDetail
from app.services.attendance.recognise import RecognitionResult, recognise_image
from app.services.attendance.sessions import require_session
from app.services.context import Context
from app.services.recognition.drawing import draw_faces, face_label
from app.storage import ObjectNotFoundError
from ml.detection.geometry import box_iou
from ml.types import DetectedFace, Embeddings, RGBImage

logger = logging.getLogger(__name__)


def add_session_photo(
    ctx: Context, class_id: str, session_id: str, upload: Upload
) -> SessionPhotoAdded:
    """Recognise a photo and record every recognised student as present (first photo wins)."""
    require_session(ctx, class_id, session_id)
    image = decode_upload(upload, upload.filename or "photo", ctx.settings.max_image_pixels)
    result = recognise_image(ctx, class_id, image)
    photo_id = new_id()
    now = ctx.now()
    faces = result.faces()
    matches = result.recognition.faces
    labels = result.labels()
    new_photo = SessionPhotoDoc(
        id=photo_id,
        created_at=now,
        filename=upload.filename,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        unknown_threshold=result.recognition.unknown_threshold,
        faces=[
            FaceDoc(
                **{name: getattr(f, name) for name in FaceScores.model_fields},
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
            record = RecordDoc(
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
        enrolment.keep_bounded(ctx, class_id, student_id)
    if learned:
        ctx.gallery_changed(class_id)
    return SessionPhotoAdded(
        session_id=session_id,
        photo_id=photo_id,
        faces=faces,
        names=result.recognised_names(),
        recorded=recorded,
        already_present=already,
        unknown_threshold=result.unknown_threshold,
        message=result.message(),
    )


def _confirmed_faces(
    ctx: Context,
    class_id: str,
    session_id: str,
    photo: SessionPhotoDoc,
    result: RecognitionResult,
) -> list[SampleDoc]:
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
    corrections = ctx.records.corrections.latest(ctx.records.sessions.folder(class_id, session_id))
    learned = []
    for index, match in sure:
        assert match.student_id is not None  # for mypy: filtered above
        correction = corrections.get(match.student_id)
        if correction is not None and correction.status in ("absent", "excused"):
            continue
        learned.append(
            enrolment.new_sample(
                student_id=match.student_id,
                session_id=session_id,
                photo=photo,
                face_index=index,
                embeddings=match.embeddings,
                crop_jpeg=enrolment.crop_of(result.image, photo.faces[index]),
                confirmed_by=enrolment.RECOGNITION,
                label=enrolment.RECOGNITION,
                confirmed_at=photo.created_at,
            )
        )
    return learned


def photo_doc(ctx: Context, class_id: str, session_id: str, photo_id: str) -> SessionPhotoDoc:
    """A complete session photo's ``result.json``; :class:`NotFoundError` if there is none."""
    require_session(ctx, class_id, session_id)
    doc = ctx.records.session_photos.result(class_id, session_id, photo_id)
    if doc is None:
        raise NotFoundError(f"photo {photo_id!r} not found in session {session_id!r}")
    return doc


@dataclass(frozen=True)
class _NamedPhoto:
    doc: SessionPhotoDoc
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
            return photos.image(class_id, session_id, photo_id, keys.ANNOTATED)
        key = photos.key(class_id, session_id, photo_id, keys.ANNOTATED)
        cached = ctx.annotated.get(key, labels)
        if cached is not None:
            # Another replica may have purged it since it was drawn here.
            if photos.purged(class_id, session_id, photo_id) is not None:
                raise _image_gone(ctx, class_id, session_id, photo_id)
            return cached
        original = decode_image(
            photos.image(class_id, session_id, photo_id, keys.ORIGINAL),
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
                closer_to=stored.closer_to,
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
        data = ctx.records.session_photos.image(class_id, session_id, photo_id, keys.ORIGINAL)
    except ObjectNotFoundError:
        raise _image_gone(ctx, class_id, session_id, photo_id) from None
    return thumbnails.session_face_jpeg(data, doc.faces[face_index].box)


@dataclass(frozen=True)
class StoredFace:
    """A face of a stored session photo found again on the original, with every model's
    embedding of it (what a sample or a known stranger keeps)."""

    image: RGBImage
    face: DetectedFace
    embeddings: dict[str, Embeddings]
    """``model -> (1, D)``."""


def stored_face(
    ctx: Context, class_id: str, session_id: str, photo: SessionPhotoDoc, face_index: int
) -> StoredFace | None:
    """Face ``face_index`` of the photo, embedded again from the original; ``None`` when the
    original is gone (the retention purge) or the face cannot be found on it again."""
    try:
        data = ctx.records.session_photos.image(class_id, session_id, photo.id, keys.ORIGINAL)
    except ObjectNotFoundError:
        return None
    image = decode_image(data, max_pixels=ctx.settings.max_image_pixels)
    face = _face_on(ctx, image, photo.faces[face_index])
    if face is None:
        logger.warning(
            "face %d of %s/%s/%s not found again", face_index, class_id, session_id, photo.id
        )
        return None
    return StoredFace(image, face, ctx.inference.embed_face(image, face))


def _face_on(ctx: Context, image: RGBImage, face_doc: FaceDoc) -> DetectedFace | None:
    """The detected face of a stored face: with its stored landmarks, or (a photo stored before
    they were kept) the detection on the photo that overlaps its box most."""
    if face_doc.landmarks is not None:
        return DetectedFace(
            box=face_doc.box,
            score=face_doc.detection_score,
            landmarks=np.asarray(face_doc.landmarks, dtype=np.float32),
        )
    best, best_overlap = None, 0.5
    for face in ctx.inference.detect(image):
        overlap = box_iou(face.box, face_doc.box)
        if overlap > best_overlap:
            best, best_overlap = face, overlap
    return best
