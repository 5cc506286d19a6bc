"""``/v1/audit``: the audit log, newest first; a key limited to classes sees only theirs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from app import schemas
from app.deps import ContextDep
from app.routers.errors import errors
from app.security import ClassScopeDep
from app.services.audit import DEFAULT_DAYS, MAX_DAYS, MAX_EVENTS, default_range
from app.services.ids import SLUG_PATTERN

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "",
    response_model=list[schemas.AuditEventOut],
    summary="The audit log: who changed or looked at what, when (ids only), newest first",
    description=(
        "Events from `from` to `to` (UTC dates, inclusive; `to` defaults to today, `from` to "
        f"{DEFAULT_DAYS} days before `to`; at most {MAX_DAYS} days at once), newest first, at "
        "most `limit`: when the list is that long there may be more, so narrow the range. An API "
        "key limited to some classes sees only their events and gets 403 for another class."
    ),
    responses=errors(422, 503),
)
async def audit_events(
    ctx: ContextDep,
    scope: ClassScopeDep,
    class_id: Annotated[
        str | None, Query(pattern=SLUG_PATTERN, description="Only this class's events.")
    ] = None,
    date_from: Annotated[
        dt.date | None, Query(alias="from", description="First date included (YYYY-MM-DD).")
    ] = None,
    date_to: Annotated[dt.date | None, Query(alias="to", description="Last date included.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 1000,
) -> list[schemas.AuditEventOut]:
    if class_id is not None:
        await scope.require(class_id)
    first, last = default_range(date_from, date_to)
    found = await run_in_threadpool(
        lambda: ctx.audit.events(first, last, class_id=class_id, visible=scope.classes, limit=limit)
    )
    return [schemas.AuditEventOut.model_validate(e, from_attributes=True) for e in found]
