"""Downloads: files the browser saves (``Content-Disposition``), CSVs, and the JPEGs of faces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import Response

from app.deps import AuditRecorder
from app.services.audit import Action, AuditSubject


def attachment(filename: str, fallback: str) -> str:
    """``attachment`` with an ASCII ``filename`` (other characters, quotes, slashes, ``;`` and
    ``%`` become ``_``; ``fallback`` if nothing is left) and the UTF-8 ``filename*`` (RFC 6266), so "Zoë's class.csv" keeps its name
    in browsers and old clients get something safe."""
    readable = " ".join(filename.split())
    stem, dot, extension = readable.rpartition(".")
    if not dot:  # no extension
        stem, extension = readable, ""
    suffix = f".{extension}" if extension else ""
    ascii_stem = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\/;%' else "_" for c in stem
    ).strip()
    plain = f"{ascii_stem}{suffix}" if ascii_stem.strip("_") else fallback
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(readable, safe='')}"


JPEG_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}}}
CACHE_AN_HOUR = "private, max-age=3600"
"""A photo or face crop never changes under its id, so it may be cached; an hour at most, so
that an erased student's face does not linger in browsers."""
REVALIDATE = "private, no-cache"
"""An image that may change under the same URL (a student's current thumbnail)."""


def audited_jpeg(
    read: Callable[[], bytes],
    audit: AuditRecorder,
    action: Action,
    subject: AuditSubject,
    cache_control: str | None = None,
) -> Response:
    """A JPEG of a child's face or photo: read, recorded in the audit log as read, sent."""
    data = read()
    audit(action, subject)
    headers = {"Cache-Control": cache_control} if cache_control is not None else None
    return Response(content=data, media_type="image/jpeg", headers=headers)


def csv_download(text: str, name: str, fallback: str = "attendance.csv") -> Response:
    """A CSV attachment named ``name.csv``."""
    return Response(
        content=text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(f"{name}.csv", fallback)},
    )
