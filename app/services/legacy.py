"""The mobile client's two calls, on the class ``ROLLCALL_LEGACY_CLASS`` (``default`` unless
configured; created on first use).

Registration derives the student id from the name (:func:`app.services.ids.slugify`). Registering a
name whose id already exists adds the photos to that student and keeps the first name: nothing that
is already stored is ever replaced. ``/mark/detect`` only recognises; it records no attendance.
"""

from __future__ import annotations

from collections.abc import Sequence

from app import schemas
from app.services.attendance import recognize_image
from app.services.classes import ensure_default_class
from app.services.context import Context
from app.services.errors import InvalidInputError
from app.services.ids import clean_name, slugify
from app.services.students import (
    Existing,
    Upload,
    decode_upload,
    enroll_prepared,
    prepare_photos,
)


def register_student(
    ctx: Context, student_name: str, uploads: Sequence[Upload]
) -> schemas.LegacyRegisterOut:
    try:
        name = clean_name(student_name, what="student_name")
    except ValueError as error:
        raise InvalidInputError(str(error)) from error
    # Validate every photo before anything is written (not even the default class).
    photos = prepare_photos(ctx, uploads)
    class_id = ctx.settings.legacy_class
    ensure_default_class(ctx, class_id)
    result = enroll_prepared(ctx, class_id, slugify(name), name, photos, Existing.ADD_PHOTOS)
    return schemas.LegacyRegisterOut(
        message="Student registered",
        student_id=result.student.id,
        name=result.student.name,
        photos_added=len(result.photos),
        quality=result.photos,
        warnings=result.warnings,
    )


def detect(ctx: Context, upload: Upload) -> schemas.LegacyDetectOut:
    image = decode_upload(ctx, upload, upload.filename or "file")
    # No class yet means nobody is enrolled: every face is unknown (and nothing is written).
    result = recognize_image(ctx, ctx.settings.legacy_class, image)
    return schemas.LegacyDetectOut(
        names=result.recognised_names(),
        image=result.annotated_base64(),
        message=result.message(),
        faces=result.faces(),
    )
