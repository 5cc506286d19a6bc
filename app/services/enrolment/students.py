"""Students: enrolment from photos (validated completely before anything is stored), listing,
renaming, more photos. Erasing one is :mod:`app.services.privacy.erasure`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import Enum

from app.core.errors import (
    ConflictError,
    InvalidInputError,
    NameAmbiguousError,
    NameTakenError,
    NotFoundError,
    StudentWithoutPhotosError,
)
from app.core.ids import clean_name, name_key, student_id_candidates
from app.core.uploads import Upload
from app.records.documents import StudentDoc, StudentPhotoDoc
from app.records.students import is_enrolled
from app.services.context import Context
from app.services.enrolment.models import (
    Enrolment,
    Quality,
    Student,
    StudentDetail,
    StudentPhoto,
)
from app.services.enrolment.photos import (
    PreparedPhoto,
    forget_strangers_like,
    look_alike_warnings,
    prepare_photos,
    similar_students,
    stage_photos,
    thumbnail,
)
from app.services.enrolment.samples import list_samples
from ml.pipeline import FaceChoice

logger = logging.getLogger(__name__)


class Existing(Enum):
    """What to do when the student id is already taken."""

    REFUSE = "refuse"  # a new student: the id must be free
    REQUIRE = "require"  # more photos of an enrolled student: it must exist
    ADD_PHOTOS = "add"  # the mobile client's register call: the same name adds photos
    """Add the photos if the stored student has the same name (:func:`ids.name_key`); a student of
    another name under this id raises :class:`StudentIdTakenError` (the caller tries another id)."""


class StudentIdTakenError(ConflictError):
    """The id belongs to a student of another name (``Existing.ADD_PHOTOS``)."""


def _student(doc: StudentDoc, photo_count: int) -> Student:
    return Student(
        id=doc.id,
        name=doc.name,
        created_at=doc.created_at,
        photo_count=photo_count,
        source_id=doc.source_id,
    )


def _photo_count(ctx: Context, class_id: str, student_id: str) -> int:
    return ctx.records.embeddings.count(class_id, student_id)


def enrol(
    ctx: Context,
    class_id: str,
    student_id: str,
    name: str | None,
    uploads: Sequence[Upload],
    existing: Existing,
    faces: Sequence[FaceChoice | None] | None = None,
) -> Enrolment:
    """Create a student from photos, or add photos to one, per ``existing``.

    Every photo is decoded and embedded before anything is written; a bad photo stores nothing.
    Returns once the photos are stored: the student is recognisable from then on (where the head
    is used, it is retrained in the background).
    """
    ctx.require_class(class_id)
    display_name = validated_name(name) if name is not None else None
    current = ctx.records.students.get(class_id, student_id)
    if current is not None and existing is Existing.REFUSE:
        raise _taken(ctx, class_id, student_id)
    if current is None and existing is Existing.REQUIRE:
        raise NotFoundError(f"student {student_id!r} not found in class {class_id!r}")
    photos = prepare_photos(ctx, uploads, faces)
    return enrol_prepared(ctx, class_id, student_id, display_name, photos, existing)


def enrol_named(
    ctx: Context,
    class_id: str,
    name: str,
    uploads: Sequence[Upload],
    faces: Sequence[FaceChoice | None] | None = None,
) -> Enrolment:
    """A new student called ``name``, with an id made from the name (:func:`enrol_by_name`);
    refused when a student of that name is already enrolled."""
    ctx.require_class(class_id)
    display_name = validated_name(name)
    photos = prepare_photos(ctx, uploads, faces)
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
            stage_photos(ctx, class_id, student_id, staged, photos)
    except BaseException:
        if created:
            students.abandon(class_id, student_id)
        raise
    if not created and not students.exists(class_id, student_id):
        # The student was deleted while we stored the photos: do not leave orphans.
        staged.roll_back()
        raise NotFoundError(f"student {student_id!r} was deleted")
    ctx.gallery_changed(class_id)
    strangers = forget_strangers_like(ctx, class_id, student_id, photos)

    reports = [photo.report() for photo in photos]
    warnings = [f"{r.filename or r.photo_id}: {w}" for r in reports for w in r.quality.warnings]
    warnings += look_alike_warnings(similar)
    if strangers:
        warnings.append(
            f"{current.name} was marked “not in this class” on a class photo before; that mark "
            "is removed, so they are recognised from now on."
        )
    return Enrolment(
        student=_student(current, _photo_count(ctx, class_id, student_id)),
        photos=reports,
        warnings=warnings,
        similar_students=similar,
    )


def _require_same_name(current: StudentDoc, name: str | None) -> None:
    if name is not None and name_key(current.name) != name_key(name):
        raise StudentIdTakenError(
            f"student id {current.id!r} belongs to {current.name!r}, not to {name!r}"
        )


def student_docs(ctx: Context, class_id: str) -> list[StudentDoc]:
    """Every ``student.json`` of the class (registrations in flight included), by id.

    One read per student: fine for a class (tens of students); it is how a name is found
    whatever id it was stored under (ids derived by older versions included)."""
    return ctx.records.students.documented(class_id)


def students_named(ctx: Context, class_id: str, name: str) -> list[StudentDoc]:
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
) -> StudentDoc | None:
    """Create ``student.json`` atomically. ``None`` when someone else just created it (and adding
    photos to it is allowed)."""
    doc = StudentDoc(id=student_id, name=name, created_at=ctx.now())
    if ctx.records.students.claim(class_id, doc):
        return doc
    if existing is Existing.ADD_PHOTOS:
        return None
    raise ConflictError(f"student {student_id!r} already exists in class {class_id!r}")


def list_students(ctx: Context, class_id: str) -> list[Student]:
    ctx.require_class(class_id)
    return [_student(doc, count) for doc, count in ctx.records.students.enrolled(class_id)]


def enrolled_student(ctx: Context, class_id: str, student_id: str) -> Student | None:
    """The student as :func:`list_students` lists them, or ``None`` when not enrolled (no
    ``student.json``, or a registration in flight): without listing the class."""
    doc = ctx.records.students.get(class_id, student_id)
    if doc is None:
        return None
    count = _photo_count(ctx, class_id, student_id)
    return _student(doc, count) if is_enrolled(doc, count) else None


def require_student(ctx: Context, class_id: str, student_id: str) -> StudentDoc:
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
            quality=Quality.of(info.quality),
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


def _enrolled_photos(ctx: Context, class_id: str, student_id: str) -> list[StudentPhotoDoc]:
    """The student's photos that count (their embedding is stored), oldest first."""
    return ctx.records.student_photos.counted(class_id, student_id)


def photo_thumbnail(ctx: Context, class_id: str, student_id: str, photo_id: str) -> bytes:
    """A small JPEG of one registration photo, cut around the face."""
    require_student(ctx, class_id, student_id)
    for info in _enrolled_photos(ctx, class_id, student_id):
        if info.id == photo_id:
            return thumbnail(ctx, class_id, student_id, info)
    raise NotFoundError(f"photo {photo_id!r} of student {student_id!r} not found")


def student_thumbnail(ctx: Context, class_id: str, student_id: str) -> bytes:
    """The thumbnail of the student's first registration photo."""
    require_student(ctx, class_id, student_id)
    photos = _enrolled_photos(ctx, class_id, student_id)
    if not photos:
        raise NotFoundError(f"student {student_id!r} has no photo")
    return thumbnail(ctx, class_id, student_id, photos[0])


def rename_student(ctx: Context, class_id: str, student_id: str, name: str) -> Student:
    doc = require_student(ctx, class_id, student_id)
    renamed = doc.model_copy(update={"name": validated_name(name)})
    ctx.records.students.save(class_id, renamed)
    return _student(renamed, _photo_count(ctx, class_id, student_id))
