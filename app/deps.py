"""Dependency aliases shared by the routers (``Annotated``, FastAPI style).

Endpoints are plain ``def`` functions: FastAPI runs them in its thread pool, where they call the
services (blocking: models, storage) directly and return the service's result, which
``response_model`` validates and serialises.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Path, Request, UploadFile

from app.core.errors import InvalidInputError, PayloadTooLargeError
from app.core.ids import BIDI_CONTROLS, SLUG_PATTERN
from app.core.uploads import Upload
from app.security import actor_label, legacy_actor_label
from app.services.audit import Action, AuditLog, AuditSubject
from app.services.context import Context
from ml.pipeline import FaceChoice


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]
Actor = Annotated[str, Depends(actor_label)]
"""Who makes a change: the API key's label, or ``console``."""


@dataclass(frozen=True)
class AuditRecorder:
    """Records an event of the audit log as the caller: ``audit(Action.X, AuditSubject(...))``.

    Endpoints call it after their service returned: the outcome is known (a change that failed is
    no event) and the ids are the ones the service used (a student id made from a name). A
    dependency that records around the endpoint would see neither. It never raises
    (:meth:`AuditLog.record`)."""

    log: AuditLog
    actor: str

    def __call__(self, action: Action, subject: AuditSubject) -> None:
        self.log.record(action, self.actor, subject)


def audit_recorder(ctx: ContextDep, actor: Actor) -> AuditRecorder:
    return AuditRecorder(ctx.audit, actor)


def legacy_audit_recorder(
    ctx: ContextDep, actor: Annotated[str, Depends(legacy_actor_label)]
) -> AuditRecorder:
    return AuditRecorder(ctx.audit, actor)


Audit = Annotated[AuditRecorder, Depends(audit_recorder)]
"""The audit log, as the caller of a ``/v1`` endpoint."""
LegacyAudit = Annotated[AuditRecorder, Depends(legacy_audit_recorder)]
"""The audit log, as the caller of the mobile client's calls (``mobile app`` without a key)."""

_SLUG_HELP = "URL-safe id: `[a-z0-9][a-z0-9_-]{0,63}`"
Slug = Annotated[str, Path(pattern=SLUG_PATTERN, description=_SLUG_HELP)]
ClassId = Slug
StudentId = Slug
SessionId = Slug
PhotoId = Slug
SampleId = Slug
StrangerId = Slug
FaceIndex = Annotated[int, Path(ge=0, le=10_000)]


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


def read_upload(upload: UploadFile, max_bytes: int) -> Upload:
    """Read one uploaded file (already spooled by the form parser), refusing (413) anything over
    ``max_bytes``."""
    filename = display_filename(upload.filename)
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        name = filename or "file"
        raise PayloadTooLargeError(
            f"{name}: the file is larger than {max_bytes / 1e6:.1f} MB; send a smaller photo"
        )
    return Upload(filename=filename, data=data)


def read_uploads(uploads: list[UploadFile], max_bytes: int) -> list[Upload]:
    return [read_upload(upload, max_bytes) for upload in uploads]


FACE_HELP = (
    "Which face is the student's when the photo shows several: its number in the `faces` a check "
    "(or a refusal) lists, largest first, or a box `x1,y1,x2,y2` around it. One value per photo, "
    "in order; empty for the photo's only or dominant face."
)
FaceForm = Annotated[list[str] | None, Form(description=FACE_HELP)]


def face_choices(values: list[str] | None) -> list[FaceChoice | None] | None:
    """The ``face`` form values, read (422 when one is neither a number nor a box)."""
    if not values:
        return None
    return [_face_choice(value) for value in values]


def _face_choice(value: str) -> FaceChoice | None:
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    parts = text.split(",")
    try:
        if len(parts) == 4:
            x1, y1, x2, y2 = (float(part) for part in parts)
            if x2 > x1 and y2 > y1:
                return (x1, y1, x2, y2)
    except ValueError:
        pass
    raise InvalidInputError(
        f"face: {text[:40]!r} is neither a face number nor a box x1,y1,x2,y2 (x2 > x1, y2 > y1)"
    )
