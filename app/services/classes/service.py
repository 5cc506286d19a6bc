"""Classes: create, list, show (with the head's state and retention), change, delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.core.errors import ConflictError, InvalidInputError, NotFoundError
from app.core.ids import clean_name
from app.core.policy import MAX_RETENTION_DAYS
from app.records.documents import ClassDoc
from app.services.classes.models import ClassInfo, ClassRetention, ModelProgress
from app.services.context import Context
from app.services.recognition.heads import HeadStatus

DEFAULT_CLASS_ID = "default"
"""The class the mobile client's two calls act on."""


def create_class(ctx: Context, class_id: str, name: str) -> ClassInfo:
    doc = ClassDoc(id=class_id, name=name, created_at=ctx.now())
    if not ctx.records.classes.create(doc):
        raise ConflictError(f"class {class_id!r} already exists")
    return ClassInfo(
        id=doc.id, name=doc.name, created_at=doc.created_at, student_count=0, source_id=None
    )


def ensure_default_class(ctx: Context, class_id: str = DEFAULT_CLASS_ID) -> ClassDoc:
    """The mobile client's class (``ROLLCALL_LEGACY_CLASS``, ``default`` unless configured),
    created on first use (safe when two requests race to create it)."""
    existing = ctx.records.classes.get(class_id)
    if existing is not None:
        return existing
    name = "Default class" if class_id == DEFAULT_CLASS_ID else class_id
    ctx.records.classes.create(ClassDoc(id=class_id, name=name, created_at=ctx.now()))
    return ctx.require_class(class_id)


def _student_count(ctx: Context, class_id: str) -> int:
    """Enrolled students, as listed (``student.json`` from the cache when unchanged)."""
    return len(ctx.records.students.enrolled(class_id))


def list_classes(ctx: Context) -> list[ClassInfo]:
    result = []
    for class_id in ctx.records.classes.ids():
        doc = ctx.records.classes.get(class_id)
        if doc is None:
            continue  # being created or deleted right now
        result.append(
            ClassInfo(
                id=doc.id,
                name=doc.name,
                created_at=doc.created_at,
                student_count=_student_count(ctx, class_id),
                source_id=doc.source_id,
            )
        )
    return result


def get_class(ctx: Context, class_id: str) -> ClassInfo:
    doc = ctx.require_class(class_id)
    snapshot = ctx.galleries.get(class_id)
    status = ctx.trainer.status(class_id, snapshot) if ctx.uses_head else HeadStatus(state="none")
    ctx.backfill_if_needed(class_id, snapshot)
    models = []
    for model in ctx.backfill.models:
        done, total = snapshot.model_progress(model)
        models.append(
            ModelProgress(
                model=model,
                photos_done=done,
                photos_total=total,
                state="ready" if done >= total else "filling",
            )
        )
    return ClassInfo(
        id=doc.id,
        name=doc.name,
        created_at=doc.created_at,
        student_count=_student_count(ctx, class_id),
        source_id=doc.source_id,
        head=status,
        models=models,
        retention=class_retention(ctx, doc),
    )


def class_retention(ctx: Context, doc: ClassDoc) -> ClassRetention:
    policy = ctx.retention_policy(doc)
    return ClassRetention(
        session_photo_retention_days=doc.session_photo_retention_days,
        student_inactive_retention_days=doc.student_inactive_retention_days,
        effective_session_photo_retention_days=policy.session_photo_days,
        effective_student_inactive_retention_days=policy.student_inactive_days,
    )


RETENTION_FIELDS = ("session_photo_retention_days", "student_inactive_retention_days")


@dataclass(frozen=True)
class ClassChanges:
    """A change of a class: only the fields given change."""

    name: str | None = None
    """``None``: unchanged."""
    retention: dict[str, int | None] = field(default_factory=dict)
    """Of :data:`RETENTION_FIELDS`: days (0: forever/never), or ``None`` for the default."""


def update_class(ctx: Context, class_id: str, changes: ClassChanges) -> ClassInfo:
    """Rename the class or set its retention overrides (``class.json`` is rewritten; the last
    writer wins)."""
    update: dict[str, Any] = {}
    if changes.name is not None:
        try:
            update["name"] = clean_name(changes.name)
        except ValueError as error:
            raise InvalidInputError(str(error)) from error
    for name, days in changes.retention.items():
        if name not in RETENTION_FIELDS:
            raise InvalidInputError(f"{name}: not a retention setting")
        if days is not None and not 0 <= days <= MAX_RETENTION_DAYS:
            raise InvalidInputError(f"{name}: {days} days; give 0 to {MAX_RETENTION_DAYS}")
        update[name] = days
    doc = ctx.require_class(class_id)
    if update:
        ctx.records.classes.save(doc.model_copy(update=update))
    return get_class(ctx, class_id)


def delete_class(ctx: Context, class_id: str) -> None:
    if not ctx.records.classes.exists(class_id):
        raise NotFoundError(f"class {class_id!r} not found")
    ctx.records.classes.delete(class_id)
    ctx.galleries.forget(class_id)
    ctx.impostors.forget(class_id)
    ctx.heads.forget(class_id)


def train_head(ctx: Context, class_id: str) -> ClassInfo:
    """Queue a head training now (normally automatic after every change), where the head is
    used; without it (the default) there is nothing to train, and the head's state says so."""
    ctx.require_class(class_id)
    ctx.gallery_changed(class_id)
    return get_class(ctx, class_id)
