"""Classes: create, list, show (with the head's state), delete."""

from __future__ import annotations

import contextlib

from app import schemas
from app.services import layout
from app.services.context import Context
from app.services.errors import ConflictError, NotFoundError
from app.services.gallery import parse_student_keys
from app.services.ids import utc_now
from app.storage import ObjectExistsError

DEFAULT_CLASS_ID = "default"
"""The class the mobile client's two calls act on."""


def create_class(ctx: Context, class_id: str, name: str) -> schemas.ClassOut:
    doc = layout.ClassDoc(id=class_id, name=name, created_at=utc_now())
    try:
        ctx.write(layout.class_key(class_id), doc, if_absent=True)
    except ObjectExistsError:
        raise ConflictError(f"class {class_id!r} already exists") from None
    return schemas.ClassOut(id=doc.id, name=doc.name, created_at=doc.created_at, student_count=0)


def ensure_default_class(ctx: Context, class_id: str = DEFAULT_CLASS_ID) -> layout.ClassDoc:
    """The mobile client's class (``ROLLCALL_LEGACY_CLASS``, ``default`` unless configured),
    created on first use (safe when two requests race to create it)."""
    existing = ctx.read(layout.class_key(class_id), layout.ClassDoc)
    if existing is not None:
        return existing
    name = "Default class" if class_id == DEFAULT_CLASS_ID else class_id
    doc = layout.ClassDoc(id=class_id, name=name, created_at=utc_now())
    with contextlib.suppress(ObjectExistsError):
        ctx.write(layout.class_key(class_id), doc, if_absent=True)
    return ctx.require_class(class_id)


def _student_count(ctx: Context, class_id: str) -> int:
    """Enrolled students, as listed: ``student.json`` and at least one embedding."""
    prefix = layout.students_prefix(class_id)
    _, embedding_keys = parse_student_keys(class_id, ctx.store.list(prefix))
    return len({key[len(prefix) :].split("/", 1)[0] for key in embedding_keys})


def list_classes(ctx: Context) -> list[schemas.ClassOut]:
    result = []
    for class_id in ctx.store.list_children("classes/"):
        doc = ctx.read(layout.class_key(class_id), layout.ClassDoc)
        if doc is None:
            continue  # being created or deleted right now
        result.append(
            schemas.ClassOut(
                id=doc.id,
                name=doc.name,
                created_at=doc.created_at,
                student_count=_student_count(ctx, class_id),
            )
        )
    return result


def get_class(ctx: Context, class_id: str) -> schemas.ClassOut:
    doc = ctx.require_class(class_id)
    snapshot = ctx.galleries.get(class_id)
    status = ctx.trainer.status(class_id, snapshot)
    ctx.backfill_if_needed(class_id, snapshot)
    models = []
    for model in ctx.backfill.models:
        done, total = snapshot.model_progress(model)
        models.append(
            schemas.ModelProgress(
                model=model,
                photos_done=done,
                photos_total=total,
                state="ready" if done >= total else "filling",
            )
        )
    return schemas.ClassOut(
        id=doc.id,
        name=doc.name,
        created_at=doc.created_at,
        student_count=_student_count(ctx, class_id),
        head=schemas.HeadInfo(
            state=status.state,
            version=status.version,
            trained_at=status.trained_at,
            student_count=status.student_count,
            error=status.error,
        ),
        models=models,
    )


def delete_class(ctx: Context, class_id: str) -> None:
    if not ctx.store.exists(layout.class_key(class_id)):
        raise NotFoundError(f"class {class_id!r} not found")
    # class.json first: from then on every request sees the class as gone.
    ctx.store.delete(layout.class_key(class_id))
    ctx.store.delete_prefix(layout.class_prefix(class_id))
    ctx.galleries.forget(class_id)
    ctx.heads.forget(class_id)


def train_head(ctx: Context, class_id: str) -> schemas.ClassOut:
    """Queue a head training now (normally automatic after every change)."""
    ctx.require_class(class_id)
    ctx.trainer.request(class_id)
    return get_class(ctx, class_id)
