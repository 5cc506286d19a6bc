"""``/v1/classes/{class_id}/strangers``: the class's known strangers (faces a teacher said are
nobody of the class): list, see, remove."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Response, status

from app import schemas
from app.deps import Audit, ClassId, ContextDep, StrangerId
from app.routers.downloads import CACHE_AN_HOUR, JPEG_RESPONSES, audited_jpeg
from app.routers.errors import errors
from app.services import attendance
from app.services.audit import Action, AuditSubject

router = APIRouter(prefix="/v1/classes/{class_id}/strangers", tags=["known strangers"])


def crop_url(class_id: str, stranger_id: str) -> str:
    return f"/v1/classes/{class_id}/strangers/{stranger_id}.jpg"


@router.get(
    "",
    response_model=list[schemas.KnownStrangerOut],
    summary="List the class's known strangers, newest first",
    description=(
        "Faces of class photos a teacher assigned to nobody (`student_id: null`). A later face "
        "that one of them matches at least as well as its best student is not named "
        "(`closer_to: known_stranger`). A class keeps its newest `ROLLCALL_MAX_KNOWN_STRANGERS`; "
        "they go with the class photos' retention, when the face is named again, or here."
    ),
    responses=errors(404, 422),
)
def list_known_strangers(ctx: ContextDep, class_id: ClassId) -> list[schemas.KnownStrangerOut]:
    return [
        schemas.KnownStrangerOut(**dict(found), crop_url=crop_url(class_id, found.stranger_id))
        for found in attendance.list_known_strangers(ctx, class_id)
    ]


@router.get(
    "/{stranger_id}.jpg",
    response_class=Response,
    summary="A small JPEG of a known stranger's face",
    responses={**JPEG_RESPONSES, **errors(404, 422)},
)
def known_stranger_crop(
    ctx: ContextDep, audit: Audit, class_id: ClassId, stranger_id: StrangerId
) -> Response:
    return audited_jpeg(
        partial(attendance.known_stranger_crop, ctx, class_id, stranger_id),
        audit,
        Action.STRANGER_CROP_READ,
        AuditSubject(class_id=class_id, stranger_id=stranger_id),
        CACHE_AN_HOUR,
    )


@router.delete(
    "/{stranger_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a known stranger (a face marked nobody by mistake)",
    responses=errors(404, 422),
)
def delete_known_stranger(
    ctx: ContextDep, audit: Audit, class_id: ClassId, stranger_id: StrangerId
) -> Response:
    attendance.delete_known_stranger(ctx, class_id, stranger_id)
    audit(Action.STRANGER_DELETE, AuditSubject(class_id=class_id, stranger_id=stranger_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
