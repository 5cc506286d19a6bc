"""Registration photos: each one decoded and embedded before anything is stored, checked for
look-alikes among the class, and cut into thumbnails on request."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.core import thumbnails
from app.core.errors import InvalidInputError, NotFoundError, SeveralFacesError
from app.core.ids import new_id
from app.core.images import encode_jpeg
from app.core.uploads import Upload, decode_upload, upload_label
from app.records.documents import StudentPhotoDoc, rounded_box
from app.records.staged import StagedWrites
from app.services.context import Context
from app.services.enrolment.models import (
    FoundFace,
    PhotoCheck,
    PhotoReport,
    Quality,
    SimilarStudent,
)
from app.services.recognition.gallery import ClassGallery
from app.storage import ObjectNotFoundError
from ml.fusion import FACENET
from ml.pipeline import FaceChoice, FaceEnrolment, MultipleFacesError, NoFaceError
from ml.types import RGBImage
from ml.vectors import l2_normalize

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedPhoto:
    photo_id: str
    filename: str | None
    image: RGBImage
    enrolment: FaceEnrolment
    content_sha256: str | None = None
    """Of the file as uploaded (an import finds the photos it stored before by it)."""

    def report(self) -> PhotoReport:
        return PhotoReport(
            photo_id=self.photo_id,
            filename=self.filename,
            box=rounded_box(self.enrolment.face.box),
            quality=Quality.of(self.enrolment.quality.to_dict()),
        )


def prepare_photos(
    ctx: Context,
    uploads: Sequence[Upload],
    faces: Sequence[FaceChoice | None] | None = None,
    *,
    background: bool = False,
) -> list[PreparedPhoto]:
    """Decode and embed every registration photo (of the face ``faces`` names for it, else the
    dominant one); raise on the first bad one, storing nothing. ``background``: an import's
    work, which waits for the class photos being recognised (:meth:`Inference.enrol`)."""
    if not uploads:
        raise InvalidInputError("no photo uploaded")
    limit = ctx.settings.max_photos_per_request
    if len(uploads) > limit:
        raise InvalidInputError(f"{len(uploads)} photos uploaded; at most {limit} per request")
    choices = list(faces) if faces else [None] * len(uploads)
    if len(choices) != len(uploads):
        raise InvalidInputError(
            f"{len(choices)} face choices for {len(uploads)} photos; give one per photo "
            "(empty for the photo's only or dominant face)"
        )
    labels = [upload_label(i, u.filename) for i, u in enumerate(uploads)]
    # Decode everything before any model runs: a bad file fails fast and cheaply.
    images = [
        decode_upload(u, label, ctx.settings.max_image_pixels)
        for u, label in zip(uploads, labels, strict=True)
    ]
    prepared = []
    for index, (upload, label, image) in enumerate(zip(uploads, labels, images, strict=True)):
        prepared.append(
            PreparedPhoto(
                new_id(),
                upload.filename,
                image,
                embed_registration(ctx, image, label, index, choices[index], background),
                hashlib.sha256(upload.data).hexdigest(),
            )
        )
    return prepared


def embed_registration(
    ctx: Context,
    image: RGBImage,
    label: str,
    index: int,
    face: FaceChoice | None,
    background: bool = False,
) -> FaceEnrolment:
    """One registration photo's face embedded; the refusal says why in the photo's name."""
    try:
        return ctx.inference.enrol(image, face, background=background)
    except MultipleFacesError as error:
        found = [(rounded_box(f.box), float(f.score)) for f in error.faces]
        raise SeveralFacesError(f"{label}: {error}", index, found) from error
    except (NoFaceError, ValueError) as error:
        raise InvalidInputError(f"{label}: {error}") from error


def similar_students(
    ctx: Context,
    class_id: str,
    student_id: str,
    photos: Sequence[PreparedPhoto],
    snapshot: ClassGallery,
) -> list[SimilarStudent]:
    """Other enrolled students that a new photo looks very much like (a likely duplicate)."""
    others = snapshot.without(student_id)
    threshold = ctx.settings.duplicate_warning_similarity
    found: list[tuple[str, float, str | None]] = []
    for photo in photos:
        probe = {FACENET: photo.enrolment.views[:1]}
        probe.update({m: v[:1] for m, v in photo.enrolment.secondary_views.items()})
        best = others.most_similar(probe)
        if best is not None and best[1] >= threshold:
            found.append((best[0], best[1], photo.filename))
    names = ctx.student_names(class_id, {sid for sid, _, _ in found})
    return [
        SimilarStudent(student_id=sid, name=names[sid], similarity=round(sim, 4), filename=filename)
        for sid, sim, filename in found
    ]


def look_alike_warnings(similar: Sequence[SimilarStudent]) -> list[str]:
    return [
        f"{s.filename or 'photo'}: very similar to student {s.student_id!r} ({s.name}), "
        f"similarity {s.similarity:.2f}; is this the same person?"
        for s in similar
    ]


def stage_photos(
    ctx: Context,
    class_id: str,
    student_id: str,
    staged: StagedWrites,
    photos: Sequence[PreparedPhoto],
) -> None:
    """Write photo, quality report and embeddings of each photo; FaceNet's embedding goes last,
    because its presence is what makes the photo count (``staged`` removes all on failure)."""
    for photo in photos:
        info = StudentPhotoDoc(
            id=photo.photo_id,
            created_at=ctx.now(),
            filename=photo.filename,
            box=rounded_box(photo.enrolment.face.box),
            quality=photo.enrolment.quality.to_dict(),
            content_sha256=photo.content_sha256,
        )
        ctx.records.student_photos.stage(
            staged, class_id, student_id, info, encode_jpeg(photo.image)
        )
        ctx.records.embeddings.stage(
            staged,
            class_id,
            student_id,
            photo.photo_id,
            photo.enrolment.views,
            dict(photo.enrolment.secondary_views),
        )


def check_photo(
    ctx: Context,
    class_id: str,
    upload: Upload,
    student_id: str | None,
    face: FaceChoice | None = None,
) -> PhotoCheck:
    """Everything enrolment would say about one photo (quality, look-alikes), storing nothing.

    ``student_id``: the student the photo is meant for, if already enrolled (their own photos are
    no look-alike). No face, or several faces with none dominant and none chosen (``face``), is
    invalid input, exactly as at enrolment; the refusal lists the faces to choose from.
    """
    ctx.require_class(class_id)
    (photo,) = prepare_photos(ctx, [upload], [face])
    snapshot = ctx.galleries.get(class_id)
    similar = similar_students(ctx, class_id, student_id or "", [photo], snapshot)
    report = photo.report()
    found = photo.enrolment.faces_found or (photo.enrolment.face,)
    return PhotoCheck(
        filename=upload.filename,
        width=int(photo.image.shape[1]),
        height=int(photo.image.shape[0]),
        box=report.box,
        quality=report.quality,
        warnings=[*report.quality.warnings, *look_alike_warnings(similar)],
        similar_students=similar,
        faces=[
            FoundFace(index=i, box=rounded_box(f.box), detection_score=round(float(f.score), 4))
            for i, f in enumerate(found)
        ],
        face=found.index(photo.enrolment.face),
    )


def thumbnail(ctx: Context, class_id: str, student_id: str, info: StudentPhotoDoc) -> bytes:
    """A small JPEG of a registration photo, cut around the face."""
    try:
        data = ctx.records.student_photos.jpeg(class_id, student_id, info.id)
    except ObjectNotFoundError:
        raise NotFoundError(f"photo {info.id!r} of student {student_id!r} not found") from None
    return thumbnails.face_crop_jpeg(
        data, info.box, context=thumbnails.THUMBNAIL_CONTEXT, max_side=thumbnails.THUMBNAIL_PX
    )


def forget_strangers_like(
    ctx: Context, class_id: str, student_id: str, photos: Sequence[PreparedPhoto]
) -> int:
    """Remove the class's known strangers who are this student (``ml.matching``'s
    ``SAME_PERSON_SIMILARITY`` with one of the new registration photos): a face marked "not in
    this class" before the student joined it would keep them from being named. Returns how many."""
    if not photos:
        return 0
    probes: dict[str, list[npt.NDArray[np.float32]]] = {}
    for photo in photos:
        views = {FACENET: photo.enrolment.views, **photo.enrolment.secondary_views}
        for model, rows in views.items():
            probes.setdefault(model, []).append(np.asarray(rows, np.float32).mean(axis=0))
    if FACENET not in probes:
        return 0
    unit = {model: l2_normalize(np.stack(rows)) for model, rows in probes.items()}
    if any(len(rows) != len(photos) for rows in probes.values()):
        unit = {FACENET: unit[FACENET]}  # a model missing on some photo: FaceNet alone
    gone = ctx.impostors.strangers_like(class_id, unit)
    for stranger_id in gone:
        ctx.records.strangers.delete(class_id, stranger_id)
        logger.info(
            "class %s: known stranger %s is student %s: removed", class_id, stranger_id, student_id
        )
    return len(gone)
