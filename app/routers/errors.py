"""OpenAPI descriptions of the error responses: every 4xx body has a human-readable ``detail``
string; request-validation errors add the field-by-field list under ``errors``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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
