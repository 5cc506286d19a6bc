"""The retention purge: remove what the retention policy (:mod:`app.core.policy`) no longer
allows to be kept.

- **Class photos.** A complete session photo (``result.json`` present) uploaded before the
  cut-off loses its original and its annotated copy; face crops are cut from the original on
  request, so they go with it. ``result.json`` (boxes, who was named, scores), the attendance
  records, the teacher's corrections and assignments stay: rosters, reports and CSV exports are
  unchanged. A photo still being uploaded has no ``result.json`` and is never touched.
- **Known strangers.** A face a teacher said is nobody of the class lives no longer than the
  class photo it came from: it goes with the photos' retention.
- **Inactive students.** A student enrolled before the cut-off who attended (present or late, in
  the roster's sense) no session dated on or after the cut-off day, and got no registration photo
  since, is erased exactly as ``DELETE .../students/{id}`` erases (``students.delete_student``).
  The student's folder is listed before the rosters are read and again just before erasing:
  a student whose folder changed meanwhile (a registration in flight) is left for the next run.

Every step is idempotent (deletes of absent objects succeed, the purge note is created if
absent), so several replicas may purge one bucket at the same time, and a purge cut off half-way
(store down, process killed) is finished by the next run. Time comes from the caller (``now``),
so tests never sleep.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from app.core.errors import NotFoundError
from app.core.ids import utc_now
from app.records import keys
from app.records.documents import PhotoPurgedDoc
from app.services import attendance
from app.services.attendance import session_states
from app.services.audit import SYSTEM_ACTOR, Action, AuditSubject
from app.services.context import Context
from app.services.privacy.erasure import erase_student
from app.services.privacy.models import ClassPurge, PurgeReport
from app.services.recognition.jobs import ClassJobQueue
from app.storage import StorageUnavailableError

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def _check_aware(now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("the purge's clock must give timezone-aware times (UTC)")


def purge_class(ctx: Context, class_id: str, now: dt.datetime) -> ClassPurge:
    """Purge one class as of ``now``; :class:`NotFoundError` if the class does not exist."""
    _check_aware(now)
    doc = ctx.require_class(class_id)
    policy = ctx.retention_policy(doc)
    photos = strangers = 0
    if policy.session_photo_days > 0:
        photos = purge_photos(ctx, class_id, now, policy.session_photo_days)
        strangers = attendance.purge_known_strangers(
            ctx, class_id, now - dt.timedelta(days=policy.session_photo_days)
        )
    erased: list[str] = []
    skipped = 0
    if policy.student_inactive_days > 0:
        erased, skipped = erase_inactive_students(ctx, class_id, now, policy.student_inactive_days)
    return ClassPurge(
        class_id=class_id,
        session_photo_days=policy.session_photo_days,
        student_inactive_days=policy.student_inactive_days,
        photos_purged=photos,
        students_erased=erased,
        students_skipped=skipped,
        known_strangers_purged=strangers,
    )


def purge_all(ctx: Context, now: dt.datetime) -> PurgeReport:
    """Purge every class as of ``now`` (a class created or deleted meanwhile is passed over),
    and the reports of old roster imports."""
    _check_aware(now)
    reports = []
    for class_id in ctx.records.classes.ids():
        try:
            reports.append(purge_class(ctx, class_id, now))
        except NotFoundError:
            continue  # no class.json: being created or deleted right now
    return PurgeReport(now=now, classes=reports, imports_purged=purge_import_reports(ctx, now))


IMPORT_REPORTS_KEPT_DAYS = 30
"""A roster import's report lists the students it could not give a photo, by name: kept a month,
long enough for the school to add the missing photos, then removed."""


def purge_import_reports(ctx: Context, now: dt.datetime) -> int:
    """Remove the reports of imports that ended over :data:`IMPORT_REPORTS_KEPT_DAYS` ago (or
    started so long ago: cut off); returns how many."""
    cutoff = now - dt.timedelta(days=IMPORT_REPORTS_KEPT_DAYS)
    removed = 0
    for import_id in ctx.records.imports.ids():
        found = ctx.records.imports.get(import_id)
        ended = (found[1].finished_at or found[0].created_at) if found else None
        if ended is None or ended < cutoff:  # unreadable leftovers go too
            ctx.records.imports.delete(import_id)
            removed += 1
    return removed


def purge_photos(ctx: Context, class_id: str, now: dt.datetime, days: int) -> int:
    """Remove the images of the class's complete session photos uploaded before ``now - days``;
    returns how many photos lost images in this run."""
    cutoff = now - dt.timedelta(days=days)
    photos = ctx.records.session_photos
    purged = 0
    for folder in ctx.records.sessions.folders(class_id):
        session_id = folder.session_id
        with_images = set(folder.photos_with_images())
        for result in photos.results(folder):
            photo_id = result.id
            if photo_id not in with_images or result.created_at >= cutoff:
                continue
            note = PhotoPurgedDoc(photo_id=photo_id, purged_at=now, retention_days=days)
            photos.purge(class_id, session_id, note)
            purged += 1
            ctx.audit.record(
                Action.PHOTO_PURGE,
                SYSTEM_ACTOR,
                AuditSubject(class_id=class_id, session_id=session_id, photo_id=photo_id),
            )
    if purged:
        # Copies drawn again after a correction, kept in memory, show the faces too.
        ctx.annotated.forget(keys.CLASS.prefix(class_id=class_id))
    return purged


def erase_inactive_students(
    ctx: Context, class_id: str, now: dt.datetime, days: int
) -> tuple[list[str], int]:
    """Erase the class's students inactive for ``days`` (see the module); returns the ids erased
    and how many inactive students were left because they changed during the run."""
    cutoff = now - dt.timedelta(days=days)
    students = ctx.records.students
    before = students.keys_by_student(class_id)
    candidates = [doc.id for doc in students.documented(class_id) if doc.created_at < cutoff]
    if not candidates:
        return [], 0
    active: set[str] = set()
    for state in session_states(ctx, class_id, date_from=cutoff.date()):
        active |= state.attendees()
    inactive = []
    for student_id in candidates:
        if student_id in active:
            continue
        infos = ctx.records.student_photos.infos(before.get(student_id, ()))
        if any(info.created_at >= cutoff for info in infos):
            continue  # a registration photo added within the window
        inactive.append(student_id)
    if not inactive:
        return [], 0
    after = students.keys_by_student(class_id)
    erased, skipped = [], 0
    for student_id in inactive:
        if after.get(student_id) != before.get(student_id):
            skipped += 1  # something was written to (or removed from) them meanwhile
            continue
        try:
            erase_student(ctx, class_id, student_id)
        except NotFoundError:
            continue  # erased meanwhile (by a teacher, or by another replica's purge)
        erased.append(student_id)
        ctx.audit.record(
            Action.STUDENT_PURGE,
            SYSTEM_ACTOR,
            AuditSubject(class_id=class_id, student_id=student_id),
        )
    return erased, skipped


def log_report(report: ClassPurge) -> None:
    logger.info(
        "retention purge of class %s: %d photos purged (kept %s), %d known strangers, "
        "%d students erased (%s)%s",
        report.class_id,
        report.photos_purged,
        f"{report.session_photo_days} days" if report.session_photo_days else "forever",
        report.known_strangers_purged,
        len(report.students_erased),
        f"inactive {report.student_inactive_days} days" if report.student_inactive_days else "off",
        f", {report.students_skipped} left for the next run" if report.students_skipped else "",
    )


class RetentionPurger(ClassJobQueue):
    """The purge in the service: every class at start-up, then every ``interval_s``, one class
    at a time on a background thread (replicas may overlap: the purge is idempotent)."""

    def __init__(self, ctx: Context, interval_s: float, clock: Clock = utc_now) -> None:
        super().__init__("retention")
        self._ctx = ctx
        self._interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.last: dict[str, ClassPurge] = {}
        """The last report of each class (tests, logs)."""

    def start(self) -> None:
        """Queue every class now, and again every interval, until :meth:`close`."""
        self._timer = threading.Thread(target=self._schedule, name="retention-timer", daemon=True)
        self._timer.start()

    def request_all(self) -> None:
        try:
            class_ids = self._ctx.records.classes.ids()
            purge_import_reports(self._ctx, self._clock())
        except StorageUnavailableError as error:
            logger.warning("retention purge postponed, storage unavailable: %s", error)
            return
        for class_id in class_ids:
            self.request(class_id)

    def _schedule(self) -> None:
        while not self._stop.is_set():
            self.request_all()
            self._stop.wait(self._interval_s)

    def _job(self, class_id: str) -> None:
        try:
            report = purge_class(self._ctx, class_id, self._clock())
        except NotFoundError:
            return
        except StorageUnavailableError as error:
            logger.warning("retention purge of class %s postponed: %s", class_id, error)
            return
        self.last[class_id] = report
        if report.photos_purged or report.students_erased or report.students_skipped:
            log_report(report)

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        super().close()
