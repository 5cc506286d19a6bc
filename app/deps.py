"""Dependency aliases shared by the routers (``Annotated``, FastAPI style)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from app.security import actor_label, legacy_actor_label
from app.services.audit import Action, AuditEvent, AuditLog
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


@dataclass(frozen=True)
class AuditRecorder:
    """Records an event of the audit log as the caller (``await audit(Action.X, class_id=...)``).

    Endpoints call it after their service returned: the outcome is known (a change that failed is
    no event) and the ids are the ones the service used (a student id made from a name). A
    dependency that records around the endpoint would see neither. The write runs in the thread
    pool and never raises (:meth:`AuditLog.record`)."""

    log: AuditLog
    actor: str

    async def __call__(
        self,
        action: Action,
        *,
        class_id: str | None,
        student_id: str | None = None,
        session_id: str | None = None,
        photo_id: str | None = None,
        photo_ids: Sequence[str] = (),
        face_index: int | None = None,
        sample_id: str | None = None,
    ) -> None:
        event = AuditEvent(
            action=action,
            actor=self.actor,
            class_id=class_id,
            student_id=student_id,
            session_id=session_id,
            photo_id=photo_id,
            photo_ids=tuple(photo_ids),
            face_index=face_index,
            sample_id=sample_id,
        )
        await run_in_threadpool(self.log.record, event)


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
