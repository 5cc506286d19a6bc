"""``/v1/classes``: create, list, show (student count, head state, retention), change, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from app import schemas
from app.deps import Audit, ClassId, ContextDep
from app.routers.errors import errors
from app.security import ClassScopeDep
from app.services import classes
from app.services.audit import Action
from app.services.results import ClassInfo

router = APIRouter(prefix="/v1/classes", tags=["classes"])


def _class_out(info: ClassInfo) -> schemas.ClassOut:
    return schemas.ClassOut.model_validate(info, from_attributes=True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.ClassOut,
    summary="Create a class",
    responses=errors(409, 422, 503),
)
async def create_class(
    ctx: ContextDep, audit: Audit, body: schemas.ClassCreate, scope: ClassScopeDep
) -> schemas.ClassOut:
    # A key limited to some classes may create only those (an operator lists the ids ahead).
    await scope.require(body.id)
    created = await run_in_threadpool(classes.create_class, ctx, body.id, body.name)
    await audit(Action.CLASS_CREATE, class_id=created.id)
    return _class_out(created)


@router.get("", response_model=list[schemas.ClassOut], summary="List classes")
async def list_classes(ctx: ContextDep, scope: ClassScopeDep) -> list[schemas.ClassOut]:
    listed = await run_in_threadpool(classes.list_classes, ctx)
    # A key limited to some classes sees only those.
    return [_class_out(c) for c in listed if scope.allows(c.id)]


@router.get(
    "/{class_id}",
    response_model=schemas.ClassOut,
    summary="Show a class with its student count and head state",
    responses=errors(404, 422),
)
async def get_class(ctx: ContextDep, class_id: ClassId) -> schemas.ClassOut:
    return _class_out(await run_in_threadpool(classes.get_class, ctx, class_id))


@router.patch(
    "/{class_id}",
    response_model=schemas.ClassOut,
    summary="Rename a class or set its retention (only the fields given change)",
    responses=errors(404, 422, 503),
)
async def update_class(
    ctx: ContextDep, class_id: ClassId, body: schemas.ClassUpdate
) -> schemas.ClassOut:
    given = body.model_fields_set
    changes = classes.ClassChanges(
        name=body.name,
        retention={name: getattr(body, name) for name in classes.RETENTION_FIELDS if name in given},
    )
    return _class_out(await run_in_threadpool(classes.update_class, ctx, class_id, changes))


@router.delete(
    "/{class_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a class and everything in it",
    responses=errors(404, 422),
)
async def delete_class(ctx: ContextDep, audit: Audit, class_id: ClassId) -> Response:
    await run_in_threadpool(classes.delete_class, ctx, class_id)
    await audit(Action.CLASS_DELETE, class_id=class_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{class_id}/head/train",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.ClassOut,
    summary="Queue a head training now (normally automatic after every change)",
    responses=errors(404, 422),
)
async def train_head(ctx: ContextDep, audit: Audit, class_id: ClassId) -> schemas.ClassOut:
    queued = await run_in_threadpool(classes.train_head, ctx, class_id)
    await audit(Action.HEAD_TRAIN, class_id=class_id)
    return _class_out(queued)
