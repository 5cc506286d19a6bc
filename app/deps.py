"""Dependency aliases shared by the routers (``Annotated``, FastAPI style)."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import Depends, Path, Request, UploadFile

from app.security import actor_label
from app.services.context import Context
from app.services.errors import PayloadTooLargeError
from app.services.ids import BIDI_CONTROLS, SLUG_PATTERN
from app.services.students import Upload


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]
Actor = Annotated[str, Depends(actor_label)]
"""Who makes a change: the API key's label, or ``console``."""

_SLUG_HELP = "URL-safe id: `[a-z0-9][a-z0-9_-]{0,63}`"
ClassId = Annotated[str, Path(pattern=SLUG_PATTERN, description=_SLUG_HELP)]
StudentId = Annotated[str, Path(pattern=SLUG_PATTERN, description=_SLUG_HELP)]
SessionId = Annotated[str, Path(pattern=SLUG_PATTERN, description=_SLUG_HELP)]
PhotoId = Annotated[str, Path(pattern=SLUG_PATTERN, description=_SLUG_HELP)]
SampleId = Annotated[str, Path(pattern=SLUG_PATTERN, description=_SLUG_HELP)]


MAX_FILENAME_LENGTH = 255


def display_filename(filename: str | None) -> str | None:
    """The client's file name reduced to something safe to store and show: no folders (``../``,
    ``C:\\``), no control or bidi-override characters (``photo<U+202E>gpj.exe``), at most 255
    characters. It is display metadata only: storage keys never contain it."""
    if not filename:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(
        ch
        for ch in unicodedata.normalize("NFC", base)
        if unicodedata.category(ch) != "Cc" and ch not in BIDI_CONTROLS
    ).strip()
    if cleaned in ("", ".", ".."):
        return None
    return cleaned[:MAX_FILENAME_LENGTH]


async def read_upload(upload: UploadFile, max_bytes: int) -> Upload:
    """Read one uploaded file, refusing (413) anything over ``max_bytes``."""
    filename = display_filename(upload.filename)
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        name = filename or "file"
        raise PayloadTooLargeError(
            f"{name}: the file is larger than {max_bytes / 1e6:.1f} MB; send a smaller photo"
        )
    return Upload(filename=filename, data=data)


async def read_uploads(uploads: list[UploadFile], max_bytes: int) -> list[Upload]:
    return [await read_upload(upload, max_bytes) for upload in uploads]
