"""The audit log: who changed or looked at what, when (ids only, never names or images).

Routers record an event after the service call returned, when the outcome is known: a change that
failed changed nothing and is not an event (its error is in the service's log). Each event is one
new object (:class:`app.records.AuditEvents`); nothing shared is rewritten, so concurrent
requests and processes on one bucket never lose each other's events.

An event that cannot be written must not turn a change that succeeded into an error, and must not
be lost quietly either: when the store is down, its write is retried by :class:`PendingCleanup`
until the store is back (the event keeps its id and time, and is written only if absent, so a
retry never doubles it); any other failure, and an event still pending at shutdown, is logged at
ERROR with the event's JSON, which holds ids only and is safe in a log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

from pydantic import ConfigDict

from app.core.errors import InvalidInputError
from app.core.ids import new_id, utc_now
from app.records.audit import AuditEvents
from app.records.cleanup import PendingCleanup
from app.records.documents import AuditEventDoc, AuditOutcome, AuditSubject

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"
"""Who acts in background jobs (a purge)."""
MOBILE_APP_ACTOR = "mobile app"
"""Who calls ``/register/register-student`` and ``/mark/detect`` when they need no API key."""

MAX_DAYS = 366
"""Longest date range of one query: a school year; older years are queried one by one."""
DEFAULT_DAYS = 30
"""Days before ``to`` that a query without ``from`` covers."""
MAX_EVENTS = 10_000
READERS = 8
"""Events read at once (one small GET each; S3 answers in parallel)."""


class Action(StrEnum):
    """What happened. Changes, then reads of photos and exports, then refusals."""

    CLASS_CREATE = "class.create"
    CLASS_DELETE = "class.delete"
    HEAD_TRAIN = "class.head_train"
    STUDENT_ENROL = "student.enrol"
    STUDENT_PHOTOS_ADD = "student.photos_add"
    STUDENT_RENAME = "student.rename"
    STUDENT_DELETE = "student.delete"
    SAMPLE_DELETE = "sample.delete"
    STRANGER_DELETE = "stranger.delete"
    SESSION_CREATE = "session.create"
    SESSION_DELETE = "session.delete"
    SESSION_PHOTO_ADD = "session.photo_add"
    STATUS_SET = "status.set"
    STATUS_CLEAR = "status.clear"
    FACE_ASSIGN = "face.assign"
    FACE_UNASSIGN = "face.unassign"
    MOBILE_REGISTER = "mobile.register_student"
    IMPORT_START = "import.start"
    PHOTO_PURGE = "retention.photo_purge"
    STUDENT_PURGE = "retention.student_erase"
    STUDENT_EXPORT = "student.export"
    STUDENT_THUMBNAIL_READ = "student.thumbnail_read"
    PHOTO_THUMBNAIL_READ = "student.photo_thumbnail_read"
    SAMPLE_CROP_READ = "sample.crop_read"
    STRANGER_CROP_READ = "stranger.crop_read"
    SESSION_PHOTO_READ = "session.photo_read"
    FACE_CROP_READ = "session.face_crop_read"
    RECOGNISE = "class.recognise"
    MOBILE_DETECT = "mobile.detect"
    ACCESS_DENIED = "access.denied"


class AuditEntry(AuditEventDoc):
    """An event as ``GET /v1/audit`` shows it: the stored fields this version knows (a newer
    version's extra fields stay in the store)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class AuditLog:
    """``ctx.audit``: record events and read them back."""

    def __init__(
        self,
        events: AuditEvents,
        cleanup: PendingCleanup,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._events = events
        self._cleanup = cleanup
        self._clock = clock

    def record(
        self,
        action: Action,
        actor: str,
        subject: AuditSubject | None = None,
        *,
        outcome: AuditOutcome = "ok",
    ) -> None:
        """Store the event now, or retry it until the store is back; never raises."""
        at = self._clock().astimezone(dt.UTC)
        ids = subject if subject is not None else AuditSubject()
        doc = AuditEventDoc(
            id=new_id(at), at=at, actor=actor, action=str(action), outcome=outcome, **dict(ids)
        )

        def write() -> None:
            self._events.add(doc)  # if absent: a retry of a write that landed changes nothing

        self._cleanup.attempt(f"write audit event {doc.model_dump_json()}", write)

    def events(
        self,
        first: dt.date,
        last: dt.date,
        *,
        class_id: str | None = None,
        visible: frozenset[str] | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Events from ``first`` to ``last`` (UTC days, inclusive), newest first, at most
        ``limit``: of ``class_id`` only when given, of the classes in ``visible`` only unless it is
        ``None`` (an unrestricted caller also sees the events of no class)."""
        if last < first:
            raise InvalidInputError(f"from ({first}) is after to ({last})")
        if (last - first).days + 1 > MAX_DAYS:
            raise InvalidInputError(
                f"at most {MAX_DAYS} days at once ({first} to {last} is "
                f"{(last - first).days + 1}); query one year after the other"
            )
        keys = [
            key
            for key, ref in reversed(self._events.listed(first, last))
            if (class_id is None or ref.class_id == class_id)
            and (visible is None or ref.class_id in visible)
        ][:limit]
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            docs = list(pool.map(self._events.get, keys))
        return [AuditEntry.model_validate(dict(doc)) for doc in docs if doc is not None]


def default_range(first: dt.date | None, last: dt.date | None) -> tuple[dt.date, dt.date]:
    """``to`` defaults to today (UTC), ``from`` to :data:`DEFAULT_DAYS` days before ``to``."""
    end = last if last is not None else utc_now().date()
    if first is not None:
        return first, end
    days_before = min(DEFAULT_DAYS - 1, (end - dt.date.min).days)  # 0001-01-01 has no before
    return end - dt.timedelta(days=days_before), end
