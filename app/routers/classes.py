"""``/v1/classes``: create, list, show (student count, head state, retention), change, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app import schemas
from app.deps import Audit, ClassId, ContextDep
from app.routers.errors import errors
from app.security import ClassScopeDep
from app.services import classes
from app.services.audit import Action, AuditSubject
from app.services.classes import ClassInfo

router = APIRouter(prefix="/v1/classes", tags=["classes"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ClassInfo,
    summary="Create a class",
    responses=errors(409, 422, 503),
)
def create_class(
    ctx: ContextDep, audit: Audit, body: schemas.ClassCreate, scope: ClassScopeDep
) -> ClassInfo:
    # A key limited to some classes may create only those (an operator lists the ids ahead).
    scope.require(body.id)
    created = classes.create_class(ctx, body.id, body.name)
    audit(Action.CLASS_CREATE, AuditSubject(class_id=created.id))
    return created


@router.get("", response_model=list[ClassInfo], summary="List classes")
def list_classes(ctx: ContextDep, scope: ClassScopeDep) -> list[ClassInfo]:
    # A key limited to some classes sees only those.
    return [c for c in classes.list_classes(ctx) if scope.allows(c.id)]


@router.get(
    "/{class_id}",
    response_model=ClassInfo,
    summary="Show a class with its student count and head state",
    responses=errors(404, 422),
)
def get_class(ctx: ContextDep, class_id: ClassId) -> ClassInfo:
    return classes.get_class(ctx, class_id)


@router.patch(
    "/{class_id}",
    response_model=ClassInfo,
    summary="Rename a class or set its retention (only the fields given change)",
    responses=errors(404, 422, 503),
)
def update_class(ctx: ContextDep, class_id: ClassId, body: schemas.ClassUpdate) -> ClassInfo:
    given = body.model_fields_set
    changes = classes.ClassChanges(
        name=body.name,
        retention={name: getattr(body, name) for name in classes.RETENTION_FIELDS if name in given},
    )
    return classes.update_class(ctx, class_id, changes)


@router.delete(
    "/{class_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a class and everything in it",
    responses=errors(404, 422),
)
def delete_class(ctx: ContextDep, audit: Audit, class_id: ClassId) -> Response:
    classes.delete_class(ctx, class_id)
    audit(Action.CLASS_DELETE, AuditSubject(class_id=class_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{class_id}/head/train",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ClassInfo,
    summary="Queue a head training now (normally automatic after every change)",
    responses=errors(404, 422),
)
def train_head(ctx: ContextDep, audit: Audit, class_id: ClassId) -> ClassInfo:
    queued = classes.train_head(ctx, class_id)
    audit(Action.HEAD_TRAIN, AuditSubject(class_id=class_id))
    return queued
