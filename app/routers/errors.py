"""Domain errors as HTTP: the one place that gives each :mod:`app.core.errors` type its status
code and its ``detail``, and the OpenAPI descriptions of the error responses (every 4xx body has a
human-readable ``detail`` string; request-validation errors add the field-by-field list under
``errors``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.core.errors import (
    ConflictError,
    InvalidInputError,
    NameAmbiguousError,
    NameTakenError,
    NotFoundError,
    PayloadTooLargeError,
    PhotoPurgedError,
    ServiceError,
    SeveralFacesError,
    StudentWithoutPhotosError,
)

STATUS_CODES: dict[type[ServiceError], int] = {
    NotFoundError: 404,
    PhotoPurgedError: 410,
    ConflictError: 409,
    PayloadTooLargeError: 413,
    InvalidInputError: 422,
}
"""The status of each domain error type (a subclass gets its nearest base's); others are 400."""


def status_code(error: ServiceError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_CODES:
            return STATUS_CODES[kind]
    return 400


def add_photos_path(class_id: str, student_id: str) -> str:
    return f"/v1/classes/{class_id}/students/{student_id}/photos"


def detail(error: ServiceError) -> str:
    """The ``detail`` of the error's response: its message, plus the request that resolves it."""
    if isinstance(error, NameAmbiguousError):
        return (
            f"{error.message}; add photos to one of them by id with POST "
            f"{add_photos_path(error.class_id, 'ID')}"
        )
    if isinstance(error, NameTakenError):
        return (
            f"{error.message}; add photos with POST "
            f"{add_photos_path(error.class_id, error.student_id)}, or give another name"
        )
    if isinstance(error, StudentWithoutPhotosError):
        return (
            f"{error.message}: add photos to it with POST "
            f"{add_photos_path(error.class_id, error.student_id)}, or delete it"
        )
    return error.message


def extra_fields(error: ServiceError) -> dict[str, Any]:
    """What a ``/v1`` error body holds beside ``detail`` (the mobile client's calls get ``detail``
    alone): the faces of a registration photo that shows several, for the caller to choose."""
    if isinstance(error, SeveralFacesError):
        return {
            "photo": error.photo_index,
            "faces": [
                {"index": index, "box": list(box), "detection_score": round(score, 4)}
                for index, (box, score) in enumerate(error.faces)
            ],
        }
    return {}


class ErrorOut(BaseModel):
    detail: str


class FieldErrorOut(BaseModel):
    """One refused field, as pydantic reports it (the refused value cut to 100 characters)."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    detail: str = Field(description="What is wrong, in words (one clause per refused field).")
    errors: list[FieldErrorOut] | None = Field(
        default=None,
        description="Request-validation errors only (not on the mobile client's calls): one "
        "entry per refused field, for programs.",
    )


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        404: "Class, student, session or photo not found",
        409: "The id is already taken",
        410: "The photo's images were removed under the retention policy (its faces and the "
        "attendance they recorded are kept)",
        413: "Upload too large (bytes or pixels)",
        422: "Invalid input: bad id, not an image, no face / several faces at registration, ...",
        503: "Storage unavailable",
    }
    return {
        code: {
            "model": ValidationErrorOut if code == 422 else ErrorOut,
            "description": descriptions[code],
        }
        for code in codes
    }
