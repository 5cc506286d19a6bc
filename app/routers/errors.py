"""OpenAPI descriptions of the error responses (every error body is ``{"detail": ...}``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    detail: str


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        404: "Class, student, session or photo not found",
        409: "The id is already taken",
        413: "Upload too large (bytes or pixels)",
        422: "Invalid input: bad id, not an image, no face / several faces at registration, ...",
        503: "Storage unavailable",
    }
    # 422 keeps FastAPI's own schema: request validation errors give a list as ``detail``.
    return {
        code: {"description": descriptions[code]}
        if code == 422
        else {"model": ErrorOut, "description": descriptions[code]}
        for code in codes
    }
