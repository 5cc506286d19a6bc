"""Students: enrolment from photos (validated completely before anything is stored), listing,
renaming, more photos, deletion (with the head retrained without them)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from app.images import ImageError, ImageTooLargeError, decode_image, encode_jpeg
from app.services import layout, thumbnails
from app.services.context import Context
from app.services.erasure import forget_student_in_photos, forget_student_in_sessions
from app.services.errors import (
    ConflictError,
    InvalidInputError,
    NameAmbiguousError,
    NameTakenError,
    NotFoundError,
    PayloadTooLargeError,
    StudentWithoutPhotosError,
)
from app.services.gallery import ClassGallery
from app.services.ids import clean_name, name_key, new_id, student_id_candidates, utc_now
from app.services.results import (
    Enrolment,
    ErasureReport,
    PhotoCheck,
    PhotoReport,
    SimilarStudent,
    Student,
    StudentDetail,
    StudentPhoto,
    rounded_box,
)
from app.services.samples import list_samples
from app.services.staged import StagedWrites
from app.storage import ObjectNotFoundError, StorageUnavailableError
from ml.fusion import FACENET
from ml.pipeline import FaceEnrolment, MultipleFacesError, NoFaceError
from ml.types import RGBImage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """One uploaded file, already read (and size-checked) by the router."""

    filename: str | None
    data: bytes


@dataclass(frozen=True)
class PreparedPhoto:
    photo_id: str
    filename: str | None
    image: RGBImage
    enrolment: FaceEnrolment


class Existing(Enum):
    """What to do when the student id is already taken."""

    REFUSE = "refuse"  # a new student: the id must be free
    REQUIRE = "require"  # more photos of an enrolled student: it must exist
    ADD_PHOTOS = "add"  # the mobile client's register call: the same name adds photos
    """Add the photos if the stored student has the same name (:func:`ids.name_key`); a student of
    another name under this id raises :class:`StudentIdTakenError` (the caller tries another id)."""


class StudentIdTakenError(ConflictError):
    """The id belongs to a student of another name (``Existing.ADD_PHOTOS``)."""


def upload_label(index: int, filename: str | None) -> str:
    return f"photo {index + 1} ({filename})" if filename else f"photo {index + 1}"


def decode_upload(ctx: Context, upload: Upload, label: str) -> RGBImage:
    """Decode once; an unreadable image is invalid input, too many pixels too large."""
    try:
        return decode_image(upload.data, max_pixels=ctx.settings.max_image_pixels, name=label)
    except ImageTooLargeError as error:
        raise PayloadTooLargeError(str(error)) from error
    except ImageError as error:
        raise InvalidInputError(str(error)) from error


def prepare_photos(ctx: Context, uploads: Sequence[Upload]) -> list[PreparedPhoto]:
    """Decode and embed every registration photo; raise on the first bad one, storing nothing."""
    if not uploads:
        raise InvalidInputError("no photo uploaded")
    limit = ctx.settings.max_photos_per_request
    if len(uploads) > limit:
        raise InvalidInputError(f"{len(uploads)} photos uploaded; at most {limit} per request")
    labels = [upload_label(i, u.filename) for i, u in enumerate(uploads)]
    # Decode everything before any model runs: a bad file fails fast and cheaply.
    images = [decode_upload(ctx, u, label) for u, label in zip(uploads, labels, strict=True)]
    prepared = []
    for upload, label, image in zip(uploads, labels, images, strict=True):
        try:
            enrolment = ctx.inference.enrol(image)
        except NoFaceError as error:
            raise InvalidInputError(f"{label}: {error}") from error
        except MultipleFacesError as error:
            raise InvalidInputError(f"{label}: {error}") from error
        prepared.append(PreparedPhoto(new_id(), upload.filename, image, enrolment))
    return prepared


def _photo_report(photo: PreparedPhoto) -> PhotoReport:
    return PhotoReport(
        photo_id=photo.photo_id,
        filename=photo.filename,
        box=rounded_box(photo.enrolment.face.box),
        quality=photo.enrolment.quality.to_dict(),
    )


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


def _store_photos(
    ctx: Context,
    class_id: str,
    student_id: str,
    staged: StagedWrites,
    photos: Sequence[PreparedPhoto],
) -> None:
    """Write photo, quality report and embeddings of each photo; FaceNet's embedding goes last,
    because its presence is what makes the photo count (``staged`` removes all on failure)."""
    for photo in photos:
        info = layout.StudentPhotoDoc(
            id=photo.photo_id,
            created_at=utc_now(),
            filename=photo.filename,
            box=rounded_box(photo.enrolment.face.box),
            quality=photo.enrolment.quality.to_dict(),
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


def _student(doc: layout.StudentDoc, photo_count: int) -> Student:
    return Student(id=doc.id, name=doc.name, created_at=doc.created_at, photo_count=photo_count)


def _photo_count(ctx: Context, class_id: str, student_id: str) -> int:
    return ctx.records.embeddings.count(class_id, student_id)


def enrol(
    ctx: Context,
    class_id: str,
    student_id: str,
    name: str | None,
    uploads: Sequence[Upload],
    existing: Existing,
) -> Enrolment:
    """Create a student from photos, or add photos to one, per ``existing``.

    Every photo is decoded and embedded before anything is written; a bad photo stores nothing.
    Returns once the photos are stored: the student is matchable by raw cosine from then on, and
    the head is retrained in the background.
    """
    ctx.require_class(class_id)
    display_name = validated_name(name) if name is not None else None
    current = ctx.records.students.get(class_id, student_id)
    if current is not None and existing is Existing.REFUSE:
        raise _taken(ctx, class_id, student_id)
    if current is None and existing is Existing.REQUIRE:
        raise NotFoundError(f"student {student_id!r} not found in class {class_id!r}")
    photos = prepare_photos(ctx, uploads)
    return enrol_prepared(ctx, class_id, student_id, display_name, photos, existing)


def enrol_named(ctx: Context, class_id: str, name: str, uploads: Sequence[Upload]) -> Enrolment:
    """A new student called ``name``, with an id made from the name (:func:`enrol_by_name`);
    refused when a student of that name is already enrolled."""
    ctx.require_class(class_id)
    display_name = validated_name(name)
    photos = prepare_photos(ctx, uploads)
    return enrol_by_name(ctx, class_id, display_name, photos, add=False)


def enrol_prepared(
    ctx: Context,
    class_id: str,
    student_id: str,
    display_name: str | None,
    photos: Sequence[PreparedPhoto],
    existing: Existing,
) -> Enrolment:
    """Store validated photos (see :func:`enrol`); the class must exist."""
    students = ctx.records.students
    current = students.get(class_id, student_id)
    if current is not None and existing is Existing.REFUSE:
        raise _taken(ctx, class_id, student_id)
    if current is None and existing is Existing.REQUIRE:
        raise NotFoundError(f"student {student_id!r} not found in class {class_id!r}")
    if current is not None and existing is Existing.ADD_PHOTOS:
        _require_same_name(current, display_name)
    snapshot = ctx.galleries.get(class_id)
    similar = similar_students(ctx, class_id, student_id, photos, snapshot)

    created = False
    if current is None:
        if display_name is None:
            raise InvalidInputError("name is required to create a student")
        current = _claim_student(ctx, class_id, student_id, display_name, existing)
        created = current is not None
        if current is None:  # lost a creation race, and adding photos is allowed
            current = students.get(class_id, student_id)
            if current is None:
                raise ConflictError(f"student {student_id!r} is being changed; try again")
            _require_same_name(current, display_name)
    staged = ctx.records.staged("an aborted write")
    try:
        with staged:
            _store_photos(ctx, class_id, student_id, staged, photos)
    except BaseException:
        if created:
            students.abandon(class_id, student_id)
        raise
    if not created and not students.exists(class_id, student_id):
        # The student was deleted while we stored the photos: do not leave orphans.
        staged.roll_back()
        raise NotFoundError(f"student {student_id!r} was deleted")
    ctx.trainer.request(class_id)

    reports = [_photo_report(p) for p in photos]
    warnings = [f"{r.filename or r.photo_id}: {w}" for r in reports for w in r.warnings]
    warnings += look_alike_warnings(similar)
    return Enrolment(
        student=_student(current, _photo_count(ctx, class_id, student_id)),
        photos=reports,
        warnings=warnings,
        similar_students=similar,
    )


def _require_same_name(current: layout.StudentDoc, name: str | None) -> None:
    if name is not None and name_key(current.name) != name_key(name):
        raise StudentIdTakenError(
            f"student id {current.id!r} belongs to {current.name!r}, not to {name!r}"
        )


def student_docs(ctx: Context, class_id: str) -> list[layout.StudentDoc]:
    """Every ``student.json`` of the class (registrations in flight included), by id.

    One read per student: fine for a class (tens of students); it is how a name is found
    whatever id it was stored under (ids derived by older versions included)."""
    return ctx.records.students.documented(class_id)


def students_named(ctx: Context, class_id: str, name: str) -> list[layout.StudentDoc]:
    """The students of the class whose name is ``name`` (:func:`ids.name_key`: NFC, blanks
    collapsed, case-insensitive)."""
    key = name_key(name)
    return [doc for doc in student_docs(ctx, class_id) if name_key(doc.name) == key]


def enrol_by_name(
    ctx: Context, class_id: str, name: str, photos: Sequence[PreparedPhoto], *, add: bool
) -> Enrolment:
    """Enrol validated photos under the student called ``name``: students are keyed by name.

    An enrolled student of that name gets the photos when ``add`` (the mobile call), else the
    registration is refused (:class:`NameTakenError`). A new name gets a new student with a
    readable, unique id (:func:`ids.student_id_candidates`): a different name is a different
    student, always, even when both transliterate to the same slug.
    """
    named = students_named(ctx, class_id, name)
    if len(named) > 1:
        raise NameAmbiguousError(class_id, name, [doc.id for doc in named])
    if named and not add:
        raise NameTakenError(class_id, named[0].name, named[0].id)
    mode = Existing.ADD_PHOTOS if add else Existing.REFUSE
    for student_id in [doc.id for doc in named] + list(student_id_candidates(name)):
        try:
            return enrol_prepared(ctx, class_id, student_id, name, photos, mode)
        except StudentIdTakenError:
            continue  # another name holds this id: try the next one
        except ConflictError:
            if add:
                raise
            holder = ctx.records.students.get(class_id, student_id)
            if holder is None or name_key(holder.name) == name_key(name):
                raise  # the same name was registered meanwhile, or the id is in flux
            continue  # the id belongs to another name: try the next one
    raise ConflictError(f"no free student id for {name!r}; register with an explicit student_id")


def look_alike_warnings(similar: Sequence[SimilarStudent]) -> list[str]:
    return [
        f"{s.filename or 'photo'}: very similar to student {s.student_id!r} ({s.name}), "
        f"similarity {s.similarity:.2f}; is this the same person?"
        for s in similar
    ]


def check_photo(ctx: Context, class_id: str, upload: Upload, student_id: str | None) -> PhotoCheck:
    """Everything enrolment would say about one photo (quality, look-alikes), storing nothing.

    ``student_id``: the student the photo is meant for, if already enrolled (their own photos are
    no look-alike). No face or several faces is invalid input, exactly as at enrolment.
    """
    ctx.require_class(class_id)
    (photo,) = prepare_photos(ctx, [upload])
    snapshot = ctx.galleries.get(class_id)
    similar = similar_students(ctx, class_id, student_id or "", [photo], snapshot)
    report = _photo_report(photo)
    return PhotoCheck(
        filename=upload.filename,
        width=int(photo.image.shape[1]),
        height=int(photo.image.shape[0]),
        box=report.box,
        quality=report.quality,
        warnings=[*report.warnings, *look_alike_warnings(similar)],
        similar_students=similar,
    )


def _taken(ctx: Context, class_id: str, student_id: str) -> ConflictError:
    if _photo_count(ctx, class_id, student_id) == 0:
        return StudentWithoutPhotosError(class_id, student_id)
    return ConflictError(f"student {student_id!r} already exists in class {class_id!r}")


def validated_name(name: str) -> str:
    try:
        return clean_name(name)
    except ValueError as error:
        raise InvalidInputError(str(error)) from error


def _claim_student(
    ctx: Context, class_id: str, student_id: str, name: str, existing: Existing
) -> layout.StudentDoc | None:
    """Create ``student.json`` atomically. ``None`` when someone else just created it (and adding
    photos to it is allowed)."""
    doc = layout.StudentDoc(id=student_id, name=name, created_at=utc_now())
    if ctx.records.students.claim(class_id, doc):
        return doc
    if existing is Existing.ADD_PHOTOS:
        return None
    raise ConflictError(f"student {student_id!r} already exists in class {class_id!r}")


def list_students(ctx: Context, class_id: str) -> list[Student]:
    ctx.require_class(class_id)
    counts = ctx.records.embeddings.listing(class_id).photo_counts(class_id)
    result = []
    # A student without any stored embedding is a registration in flight, or one that was cut off
    # (process killed, store down) before its first photo was stored: not enrolled, not listed.
    for student_id in sorted(counts):
        doc = ctx.records.students.get(class_id, student_id)
        if doc is not None:
            result.append(_student(doc, counts[student_id]))
    return result


def enrolled_student(ctx: Context, class_id: str, student_id: str) -> Student | None:
    """The student as :func:`list_students` lists them, or ``None`` when not enrolled (no
    ``student.json``, or no registration photo that counts yet): without listing the class."""
    doc = ctx.records.students.get(class_id, student_id)
    if doc is None:
        return None
    count = _photo_count(ctx, class_id, student_id)
    return _student(doc, count) if count else None


def require_student(ctx: Context, class_id: str, student_id: str) -> layout.StudentDoc:
    ctx.require_class(class_id)
    doc = ctx.records.students.get(class_id, student_id)
    if doc is None:
        raise NotFoundError(f"student {student_id!r} not found in class {class_id!r}")
    return doc


def get_student(ctx: Context, class_id: str, student_id: str) -> StudentDetail:
    doc = require_student(ctx, class_id, student_id)
    photos = [
        StudentPhoto(
            photo_id=info.id,
            created_at=info.created_at,
            filename=info.filename,
            box=info.box,
            quality=info.quality,
        )
        for info in _enrolled_photos(ctx, class_id, student_id)
    ]
    return StudentDetail(
        id=doc.id,
        name=doc.name,
        created_at=doc.created_at,
        photo_count=len(photos),
        photos=photos,
        samples=list_samples(ctx, class_id, student_id),
    )


def _enrolled_photos(ctx: Context, class_id: str, student_id: str) -> list[layout.StudentPhotoDoc]:
    """The student's photos that count (their embedding is stored), oldest first."""
    return ctx.records.student_photos.counted(class_id, student_id)


def _thumbnail(ctx: Context, class_id: str, student_id: str, info: layout.StudentPhotoDoc) -> bytes:
    try:
        data = ctx.records.student_photos.jpeg(class_id, student_id, info.id)
    except ObjectNotFoundError:
        raise NotFoundError(f"photo {info.id!r} of student {student_id!r} not found") from None
    return thumbnails.face_crop_jpeg(
        data,
        info.box,
        context=thumbnails.THUMBNAIL_CONTEXT,
        max_side=thumbnails.THUMBNAIL_PX,
    )


def photo_thumbnail(ctx: Context, class_id: str, student_id: str, photo_id: str) -> bytes:
    """A small JPEG of one registration photo, cut around the face."""
    require_student(ctx, class_id, student_id)
    for info in _enrolled_photos(ctx, class_id, student_id):
        if info.id == photo_id:
            return _thumbnail(ctx, class_id, student_id, info)
    raise NotFoundError(f"photo {photo_id!r} of student {student_id!r} not found")


def student_thumbnail(ctx: Context, class_id: str, student_id: str) -> bytes:
    """The thumbnail of the student's first registration photo."""
    require_student(ctx, class_id, student_id)
    photos = _enrolled_photos(ctx, class_id, student_id)
    if not photos:
        raise NotFoundError(f"student {student_id!r} has no photo")
    return _thumbnail(ctx, class_id, student_id, photos[0])


def rename_student(ctx: Context, class_id: str, student_id: str, name: str) -> Student:
    doc = require_student(ctx, class_id, student_id)
    renamed = doc.model_copy(update={"name": validated_name(name)})
    ctx.records.students.save(class_id, renamed)
    return _student(renamed, _photo_count(ctx, class_id, student_id))


def delete_student(ctx: Context, class_id: str, student_id: str) -> ErasureReport:
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
            removed[layout.student_object_kind(class_id, key) or "other"] += 1
        removed.update(forget_student_in_sessions(ctx, class_id, student_id))
        # Past class photos keep the face but stop naming the student.
        removed["class_photo_relabelled"] += forget_student_in_photos(ctx, class_id, student_id)

    try:
        erase_rest()
    except StorageUnavailableError:
        ctx.cleanup.defer(f"finish erasing student {class_id}/{student_id}", erase_rest)
        raise
    # The current head may have been trained with this student: stop using it at once (the
    # matcher drops a head that knows a student who is not enrolled) and train a new one.
    ctx.trainer.request(class_id)
    return ErasureReport(
        student_id=student_id, removed={kind: n for kind, n in sorted(removed.items()) if n}
    )
