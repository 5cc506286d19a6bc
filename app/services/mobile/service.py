"""The mobile client's two calls, on the class ``ROLLCALL_LEGACY_CLASS`` (``default`` unless
configured; created on first use).

Registration keys students by their name as typed (:func:`app.core.ids.name_key`: Unicode NFC,
blanks trimmed and collapsed, case-insensitive): the same name adds photos to that student, whatever
id it was stored under (ids derived by older versions included); a different name is a different
student, with a readable id transliterated from the name and made unique
(:func:`app.services.enrolment.enrol_by_name`). Nothing already stored is replaced; the first name
is kept. ``/mark/detect`` only recognises; it records no attendance.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.errors import InvalidInputError
from app.core.ids import clean_name
from app.core.uploads import Upload, decode_upload
from app.services.attendance import Recognised, recognise_image
from app.services.classes import ensure_default_class
from app.services.context import Context
from app.services.enrolment import Enrolment, enrol_by_name, prepare_photos


def register_student(ctx: Context, student_name: str, uploads: Sequence[Upload]) -> Enrolment:
    try:
        name = clean_name(student_name, what="student_name")
    except ValueError as error:
        raise InvalidInputError(str(error)) from error
    # Validate every photo before anything is written (not even the default class).
    photos = prepare_photos(ctx, uploads)
    class_id = ctx.settings.legacy_class
    ensure_default_class(ctx, class_id)
    return enrol_by_name(ctx, class_id, name, photos, add=True)


def detect(ctx: Context, upload: Upload) -> Recognised:
    image = decode_upload(upload, upload.filename or "file", ctx.settings.max_image_pixels)
    # No class yet means nobody is enrolled: every face is unknown (and nothing is written).
    result = recognise_image(ctx, ctx.settings.legacy_class, image)
    return result.report(ctx.settings.annotated_max_side, with_image=True)
