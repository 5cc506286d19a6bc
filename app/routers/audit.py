"""``/v1/audit``: the audit log, newest first; a key limited to classes sees only theirs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.ids import SLUG_PATTERN
from app.deps import ContextDep
from app.routers.errors import errors
from app.security import ClassScopeDep
from app.services.audit import DEFAULT_DAYS, MAX_DAYS, MAX_EVENTS, AuditEntry, default_range

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "",
    response_model=list[AuditEntry],
    summary="The audit log: who changed or looked at what, when (ids only), newest first",
    description=(
        "Events from `from` to `to` (UTC dates, inclusive; `to` defaults to today, `from` to "
        f"{DEFAULT_DAYS} days before `to`; at most {MAX_DAYS} days at once), newest first, at "
        "most `limit`: when the list is that long there may be more, so narrow the range. An API "
        "key limited to some classes sees only their events and gets 403 for another class."
    ),
    responses=errors(422, 503),
)
def audit_events(
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
) -> list[AuditEntry]:
    if class_id is not None:
        scope.require(class_id)
    first, last = default_range(date_from, date_to)
    return ctx.audit.events(first, last, class_id=class_id, visible=scope.classes, limit=limit)
