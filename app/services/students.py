"""Students: enrolment from photos (validated completely before anything is stored), listing,
renaming, more photos, deletion (with the head retrained without them)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from app import schemas
from app.images import ImageError, ImageTooLargeError, decode_image, encode_jpeg
from app.services import layout, thumbnails
from app.services.cleanup import delete_in_order
from app.services.context import Context
from app.services.erasure import forget_student_in_photos
from app.services.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)
from app.services.gallery import ClassGallery, parse_student_keys
from app.services.ids import clean_name, name_key, new_id, student_id_candidates, utc_now
from app.storage import ObjectExistsError, ObjectNotFoundError, StorageUnavailableError
from ml.fusion import FACENET
from ml.pipeline import Enrollment, MultipleFacesError, NoFaceError
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
    enrollment: Enrollment


class Existing(Enum):
    """What to do when the student id is already taken."""

    REFUSE = "refuse"  # POST /v1/.../students: 409
    REQUIRE = "require"  # POST /v1/.../students/{id}/photos: 404 if absent
    ADD_PHOTOS = "add"  # the mobile client's register call: the same name adds photos
    """Add the photos if the stored student has the same name (:func:`ids.name_key`); a student of
    another name under this id raises :class:`StudentIdTakenError` (the caller tries another id)."""


class StudentIdTakenError(ConflictError):
    """The id belongs to a student of another name (``Existing.ADD_PHOTOS``)."""


def upload_label(index: int, filename: str | None) -> str:
    return f"photo {index + 1} ({filename})" if filename else f"photo {index + 1}"


def decode_upload(ctx: Context, upload: Upload, label: str) -> RGBImage:
    """Decode once; image errors become 422, too many pixels 413."""
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
            enrollment = ctx.inference.enroll(image)
        except NoFaceError as error:
            raise InvalidInputError(f"{label}: {error}") from error
        except MultipleFacesError as error:
            raise InvalidInputError(f"{label}: {error}") from error
        prepared.append(PreparedPhoto(new_id(), upload.filename, image, enrollment))
    return prepared


def _photo_report(photo: PreparedPhoto) -> schemas.PhotoReport:
    quality = photo.enrollment.quality
    return schemas.PhotoReport(
        photo_id=photo.photo_id,
        filename=photo.filename,
        box=_box(photo.enrollment.face.box),
        quality=schemas.Quality.model_validate(quality.to_dict()),
    )


def _box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return (round(float(x1), 1), round(float(y1), 1), round(float(x2), 1), round(float(y2), 1))


def similar_students(
    ctx: Context,
    class_id: str,
    student_id: str,
    photos: Sequence[PreparedPhoto],
    snapshot: ClassGallery,
) -> list[schemas.SimilarStudent]:
    """Other enrolled students that a new photo looks very much like (a likely duplicate)."""
    others = snapshot.without(student_id)
    threshold = ctx.settings.duplicate_warning_similarity
    found: list[tuple[str, float, str | None]] = []
    for photo in photos:
        probe = {FACENET: photo.enrollment.views[:1]}
        probe.update({m: v[:1] for m, v in photo.enrollment.secondary_views.items()})
        best = others.most_similar(probe)
        if best is not None and best[1] >= threshold:
            found.append((best[0], best[1], photo.filename))
    names = ctx.student_names(class_id, {sid for sid, _, _ in found})
    return [
        schemas.SimilarStudent(
            student_id=sid, name=names[sid], similarity=round(sim, 4), filename=filename
        )
        for sid, sim, filename in found
    ]


def _store_photos(
    ctx: Context, class_id: str, student_id: str, photos: Sequence[PreparedPhoto]
) -> list[str]:
    """Write photo, quality report and embeddings of each photo; the embedding goes last, because
    its presence is what makes the photo count. On failure, remove what was written and re-raise."""
    written: list[str] = []
    try:
        for photo in photos:
            info = layout.StudentPhotoDoc(
                id=photo.photo_id,
                created_at=utc_now(),
                filename=photo.filename,
                box=_box(photo.enrollment.face.box),
                quality=photo.enrollment.quality.to_dict(),
            )
            key = layout.student_photo_key(class_id, student_id, photo.photo_id)
            ctx.store.put(key, encode_jpeg(photo.image), content_type="image/jpeg")
            written.append(key)
            key = layout.student_photo_info_key(class_id, student_id, photo.photo_id)
            ctx.write(key, info)
            written.append(key)
            # Secondary models first: FaceNet's embedding, written last, makes the photo count.
            for model, views in photo.enrollment.secondary_views.items():
                key = layout.embedding_key(class_id, student_id, photo.photo_id, model)
                ctx.store.put(
                    key, layout.embeddings_to_bytes(views), content_type="application/octet-stream"
                )
                written.append(key)
            key = layout.embedding_key(class_id, student_id, photo.photo_id)
            ctx.store.put(
                key,
                layout.embeddings_to_bytes(photo.enrollment.views),
                content_type="application/octet-stream",
            )
            written.append(key)
    except BaseException:
        _delete_keys(ctx, written)
        raise
    return written


def _delete_keys(ctx: Context, keys: Sequence[str]) -> None:
    # FaceNet's embeddings first (they make a photo count), then the other models', then the rest.
    def rank(key: str) -> int:
        if not key.endswith(".npy"):
            return 2
        return 0 if key.rsplit("/", 2)[-2] == "embeddings" else 1

    ordered = sorted(keys, key=rank)
    for index, key in enumerate(ordered):
        try:
            ctx.store.delete(key)
        except StorageUnavailableError:
            # The store is down (likely why we roll back): retry, in the same order, once it is back.
            left = ordered[index:]
            ctx.cleanup.defer(
                f"remove {len(left)} objects of an aborted write, e.g. {left[0]}",
                functools.partial(delete_in_order, ctx.store, left),
            )
            return
        except Exception:
            logger.exception("could not remove %s while rolling back", key)


def _student_out(doc: layout.StudentDoc, photo_count: int) -> schemas.StudentOut:
    return schemas.StudentOut(
        id=doc.id, name=doc.name, created_at=doc.created_at, photo_count=photo_count
    )


def _photo_count(ctx: Context, class_id: str, student_id: str) -> int:
    prefix = layout.student_prefix(class_id, student_id) + "embeddings/"
    refs = (layout.parse_embedding_key(class_id, key) for key in ctx.store.list(prefix))
    return sum(1 for ref in refs if ref is not None and ref.model == FACENET)


def enroll(
    ctx: Context,
    class_id: str,
    student_id: str,
    name: str | None,
    uploads: Sequence[Upload],
    existing: Existing,
) -> schemas.EnrollmentOut:
    """Create a student from photos, or add photos to one, per ``existing``.

    Every photo is decoded and embedded before anything is written; a bad photo stores nothing.
    Returns once the photos are stored: the student is matchable by raw cosine from then on, and
    the head is retrained in the background.
    """
    ctx.require_class(class_id)
    display_name = validated_name(name) if name is not None else None
    current = ctx.read(layout.student_key(class_id, student_id), layout.StudentDoc)
    if current is not None and existing is Existing.REFUSE:
        raise _taken(ctx, class_id, student_id)
    if current is None and existing is Existing.REQUIRE:
        raise NotFoundError(f"student {student_id!r} not found in class {class_id!r}")
    photos = prepare_photos(ctx, uploads)
    return enroll_prepared(ctx, class_id, student_id, display_name, photos, existing)


def enroll_named(
    ctx: Context, class_id: str, name: str, uploads: Sequence[Upload]
) -> schemas.EnrollmentOut:
    """A new student called ``name``, with an id made from the name (:func:`enroll_by_name`);
    409 when a student of that name is already enrolled."""
    ctx.require_class(class_id)
    display_name = validated_name(name)
    photos = prepare_photos(ctx, uploads)
    return enroll_by_name(ctx, class_id, display_name, photos, add=False)


def enroll_prepared(
    ctx: Context,
    class_id: str,
    student_id: str,
    display_name: str | None,
    photos: Sequence[PreparedPhoto],
    existing: Existing,
) -> schemas.EnrollmentOut:
    """Store validated photos (see :func:`enroll`); the class must exist."""
    student_key = layout.student_key(class_id, student_id)
    current = ctx.read(student_key, layout.StudentDoc)
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
            current = ctx.read(student_key, layout.StudentDoc)
            if current is None:
                raise ConflictError(f"student {student_id!r} is being changed; try again")
            _require_same_name(current, display_name)
    try:
        written = _store_photos(ctx, class_id, student_id, photos)
    except BaseException:
        if created:
            _abandon_student(ctx, class_id, student_id)
        raise
    if not created and not ctx.store.exists(student_key):
        # The student was deleted while we stored the photos: do not leave orphans.
        _delete_keys(ctx, written)
        raise NotFoundError(f"student {student_id!r} was deleted")
    ctx.trainer.request(class_id)

    reports = [_photo_report(p) for p in photos]
    warnings = [f"{r.filename or r.photo_id}: {w}" for r in reports for w in r.quality.warnings]
    warnings += look_alike_warnings(similar)
    return schemas.EnrollmentOut(
        student=_student_out(current, _photo_count(ctx, class_id, student_id)),
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
    documented, _ = parse_student_keys(class_id, ctx.store.list(layout.students_prefix(class_id)))
    docs = (ctx.read(layout.student_key(class_id, sid), layout.StudentDoc) for sid in documented)
    return sorted((doc for doc in docs if doc is not None), key=lambda doc: doc.id)


def students_named(ctx: Context, class_id: str, name: str) -> list[layout.StudentDoc]:
    """The students of the class whose name is ``name`` (:func:`ids.name_key`: NFC, blanks
    collapsed, case-insensitive)."""
    key = name_key(name)
    return [doc for doc in student_docs(ctx, class_id) if name_key(doc.name) == key]


def enroll_by_name(
    ctx: Context, class_id: str, name: str, photos: Sequence[PreparedPhoto], *, add: bool
) -> schemas.EnrollmentOut:
    """Enrol validated photos under the student called ``name``: students are keyed by name.

    An enrolled student of that name gets the photos when ``add`` (the mobile call), else 409
    (``POST /v1/.../students`` without ``student_id``). A new name gets a new student with a
    readable, unique id (:func:`ids.student_id_candidates`): a different name is a different
    student, always, even when both transliterate to the same slug.
    """
    named = students_named(ctx, class_id, name)
    if len(named) > 1:
        ids = ", ".join(repr(doc.id) for doc in named)
        raise ConflictError(
            f"{len(named)} students of class {class_id!r} are called {name!r} ({ids}); "
            f"add photos to one of them by id with POST /v1/classes/{class_id}/students/ID/photos"
        )
    if named and not add:
        raise ConflictError(
            f"a student called {named[0].name!r} already exists in class {class_id!r} "
            f"(id {named[0].id!r}); add photos with POST "
            f"/v1/classes/{class_id}/students/{named[0].id}/photos, or give another name"
        )
    mode = Existing.ADD_PHOTOS if add else Existing.REFUSE
    for student_id in [doc.id for doc in named] + list(student_id_candidates(name)):
        try:
            return enroll_prepared(ctx, class_id, student_id, name, photos, mode)
        except StudentIdTakenError:
            continue  # another name holds this id: try the next one
        except ConflictError:
            if add:
                raise
            holder = ctx.read(layout.student_key(class_id, student_id), layout.StudentDoc)
            if holder is None or name_key(holder.name) == name_key(name):
                raise  # the same name was registered meanwhile, or the id is in flux
            continue  # the id belongs to another name: try the next one
    raise ConflictError(f"no free student id for {name!r}; register with an explicit student_id")


def look_alike_warnings(similar: Sequence[schemas.SimilarStudent]) -> list[str]:
    return [
        f"{s.filename or 'photo'}: very similar to student {s.student_id!r} ({s.name}), "
        f"similarity {s.similarity:.2f}; is this the same person?"
        for s in similar
    ]


def check_photo(
    ctx: Context, class_id: str, upload: Upload, student_id: str | None
) -> schemas.PhotoCheckOut:
    """Everything enrolment would say about one photo (quality, look-alikes), storing nothing.

    ``student_id``: the student the photo is meant for, if already enrolled (their own photos are
    no look-alike). No face or several faces is a 422, exactly as at enrolment.
    """
    ctx.require_class(class_id)
    (photo,) = prepare_photos(ctx, [upload])
    snapshot = ctx.galleries.get(class_id)
    similar = similar_students(ctx, class_id, student_id or "", [photo], snapshot)
    report = _photo_report(photo)
    return schemas.PhotoCheckOut(
        filename=upload.filename,
        width=int(photo.image.shape[1]),
        height=int(photo.image.shape[0]),
        box=report.box,
        quality=report.quality,
        warnings=[*report.quality.warnings, *look_alike_warnings(similar)],
        similar_students=similar,
    )


def _taken(ctx: Context, class_id: str, student_id: str) -> ConflictError:
    if _photo_count(ctx, class_id, student_id) == 0:
        return ConflictError(
            f"student {student_id!r} is being registered by another request, or an earlier "
            f"registration was cut off before storing a photo: add photos to it with POST "
            f"/v1/classes/{class_id}/students/{student_id}/photos, or delete it"
        )
    return ConflictError(f"student {student_id!r} already exists in class {class_id!r}")


def _abandon_student(ctx: Context, class_id: str, student_id: str) -> None:
    """Undo a creation whose photos could not be stored (they were already rolled back).

    ``student.json`` stays if a concurrent registration of the same name has meanwhile added its
    own photos to this student: removing it would lose them.
    """
    prefix = layout.student_prefix(class_id, student_id)

    def undo() -> None:
        if not any(key.endswith(".npy") for key in ctx.store.list(prefix)):
            ctx.store.delete(layout.student_key(class_id, student_id))

    try:
        undo()
    except StorageUnavailableError:
        ctx.cleanup.defer(f"undo the creation of {prefix}", undo)
    except Exception:
        logger.exception("could not undo the creation of %s", prefix)


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
    prefix = layout.student_prefix(class_id, student_id)
    student_key = layout.student_key(class_id, student_id)
    leftovers = ctx.store.list(prefix)
    if leftovers and student_key not in leftovers:
        # Objects without student.json: an interrupted deletion. They must not join the new
        # student. Only the keys listed here go: a concurrent creator's new objects are not
        # in this listing, so they can never be removed by it.
        logger.warning("removing %d leftover objects under %s", len(leftovers), prefix)
        _delete_keys(ctx, leftovers)
    doc = layout.StudentDoc(id=student_id, name=name, created_at=utc_now())
    try:
        ctx.write(student_key, doc, if_absent=True)
    except ObjectExistsError:
        if existing is Existing.ADD_PHOTOS:
            return None
        raise ConflictError(
            f"student {student_id!r} already exists in class {class_id!r}"
        ) from None
    return doc


def list_students(ctx: Context, class_id: str) -> list[schemas.StudentOut]:
    ctx.require_class(class_id)
    documented, embedding_keys = parse_student_keys(
        class_id, ctx.store.list(layout.students_prefix(class_id))
    )
    prefix = layout.students_prefix(class_id)
    counts: dict[str, int] = {}
    for key in embedding_keys:
        student_id = key[len(prefix) :].split("/", 1)[0]
        counts[student_id] = counts.get(student_id, 0) + 1
    result = []
    # A student without any stored embedding is a registration in flight, or one that was cut off
    # (process killed, store down) before its first photo was stored: not enrolled, not listed.
    for student_id in sorted(sid for sid in documented if counts.get(sid, 0) > 0):
        doc = ctx.read(layout.student_key(class_id, student_id), layout.StudentDoc)
        if doc is not None:
            result.append(_student_out(doc, counts.get(student_id, 0)))
    return result


def require_student(ctx: Context, class_id: str, student_id: str) -> layout.StudentDoc:
    ctx.require_class(class_id)
    doc = ctx.read(layout.student_key(class_id, student_id), layout.StudentDoc)
    if doc is None:
        raise NotFoundError(f"student {student_id!r} not found in class {class_id!r}")
    return doc


def get_student(ctx: Context, class_id: str, student_id: str) -> schemas.StudentDetail:
    doc = require_student(ctx, class_id, student_id)
    photos = [
        schemas.StudentPhotoOut(
            photo_id=info.id,
            created_at=info.created_at,
            filename=info.filename,
            box=info.box,
            quality=schemas.Quality.model_validate(info.quality),
        )
        for info in _enrolled_photos(ctx, class_id, student_id)
    ]
    return schemas.StudentDetail(
        id=doc.id,
        name=doc.name,
        created_at=doc.created_at,
        photo_count=len(photos),
        photos=photos,
    )


def _enrolled_photos(ctx: Context, class_id: str, student_id: str) -> list[layout.StudentPhotoDoc]:
    """The student's photos that count (their embedding is stored), oldest first."""
    prefix = layout.student_prefix(class_id, student_id)
    keys = ctx.store.list(prefix)
    refs = (layout.parse_embedding_key(class_id, k) for k in keys)
    embedded = {ref.photo_id for ref in refs if ref is not None and ref.model == FACENET}
    photos = []
    for key in keys:
        if not (key.startswith(prefix + "photos/") and key.endswith(".json")):
            continue
        info = ctx.read(key, layout.StudentPhotoDoc)
        if info is not None and info.id in embedded:
            photos.append(info)
    photos.sort(key=lambda info: (info.created_at, info.id))
    return photos


def _thumbnail(ctx: Context, class_id: str, student_id: str, info: layout.StudentPhotoDoc) -> bytes:
    try:
        data = ctx.store.get(layout.student_photo_key(class_id, student_id, info.id))
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


def rename_student(ctx: Context, class_id: str, student_id: str, name: str) -> schemas.StudentOut:
    doc = require_student(ctx, class_id, student_id)
    renamed = doc.model_copy(update={"name": validated_name(name)})
    ctx.write(layout.student_key(class_id, student_id), renamed)
    return _student_out(renamed, _photo_count(ctx, class_id, student_id))


def delete_student(ctx: Context, class_id: str, student_id: str) -> None:
    """Erase the student: record, photos, embeddings, attendance records; retrain the head.

    An erasure cut off half-way (store down) is finished by a retried DELETE, which finds the
    leftovers although ``student.json`` is gone, and in the background once the store is back.
    """
    ctx.require_class(class_id)
    student_key = layout.student_key(class_id, student_id)
    if not ctx.store.exists(student_key) and not ctx.store.list(
        layout.student_prefix(class_id, student_id)
    ):
        raise NotFoundError(f"student {student_id!r} not found in class {class_id!r}")
    # student.json first: from then on the student is out of every gallery and listing.
    ctx.store.delete(student_key)

    def erase_rest() -> None:
        if ctx.store.exists(student_key):
            return  # registered again meanwhile: its creation already removed the leftovers
        ctx.store.delete_prefix(layout.student_prefix(class_id, student_id))
        for session_id in ctx.store.list_children(layout.sessions_prefix(class_id)):
            ctx.store.delete(layout.record_key(class_id, session_id, student_id))
        # Past class photos keep the face but stop naming the student.
        forget_student_in_photos(ctx, class_id, student_id)

    try:
        erase_rest()
    except StorageUnavailableError:
        ctx.cleanup.defer(f"finish erasing student {class_id}/{student_id}", erase_rest)
        raise
    # The current head may have been trained with this student: stop using it at once (the
    # matcher drops a head that knows a student who is not enrolled) and train a new one.
    ctx.trainer.request(class_id)
