"""Attendance sessions: open, list, show the roster, delete; a student's attendance over them.

Merge rule for several photos of one session: a student is seen once, by the first photo that
names them. Each upload also writes a record object per student it recognised, created only if
absent (``already_present`` in the reply); the roster itself is derived from the photos and the
teacher's corrections on every read (:mod:`app.services.attendance.roster`), so that concurrent
uploads and corrections never lose each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from app.core.errors import ConflictError, NotFoundError
from app.core.ids import new_id
from app.records.documents import SessionDoc
from app.records.sessions import SessionFolder
from app.services.attendance import roster
from app.services.attendance.models import (
    AttendanceEntry,
    Session,
    SessionDetail,
    SessionSummary,
    StudentAttendance,
)
from app.services.context import Context
from app.services.enrolment import Student, enrolled_student, list_students, require_student

SESSION_READERS = 8
"""Sessions whose uncached documents are read at the same time for a list or a report (small
objects: on S3 the requests' latency, not the CPU, is what adds up)."""


def _session(doc: SessionDoc) -> Session:
    return Session(id=doc.id, label=doc.label, date=doc.date, created_at=doc.created_at)


def create_session(
    ctx: Context, class_id: str, session_id: str | None, label: str, day: date | None
) -> Session:
    ctx.require_class(class_id)
    now = ctx.now()
    doc = SessionDoc(id=session_id or new_id(), label=label, date=day or now.date(), created_at=now)
    if not ctx.records.sessions.create(class_id, doc):
        raise ConflictError(f"session {doc.id!r} already exists in class {class_id!r}")
    return _session(doc)


def require_session(ctx: Context, class_id: str, session_id: str) -> SessionDoc:
    ctx.require_class(class_id)
    doc = ctx.records.sessions.get(class_id, session_id)
    if doc is None:
        raise NotFoundError(f"session {session_id!r} not found in class {class_id!r}")
    return doc


def delete_session(ctx: Context, class_id: str, session_id: str) -> None:
    require_session(ctx, class_id, session_id)
    ctx.records.sessions.delete(class_id, session_id)


def session_state(ctx: Context, class_id: str, session_id: str) -> roster.SessionState:
    """One session's state now (:class:`NotFoundError` if there is no such session)."""
    doc = require_session(ctx, class_id, session_id)
    return roster.load_state(ctx, ctx.records.sessions.folder(class_id, session_id), doc)


def session_states(
    ctx: Context, class_id: str, date_from: date | None = None, date_to: date | None = None
) -> list[roster.SessionState]:
    """Every session of the class in the date range (inclusive), by date, with its state: one
    listing of all the class's sessions, then the documents it names that are not cached yet,
    a few sessions at a time."""
    ctx.require_class(class_id)
    sessions = ctx.records.sessions

    def load(folder: SessionFolder) -> roster.SessionState | None:
        doc = sessions.doc_of(folder)
        if doc is None:  # being created or deleted right now
            return None
        if (date_from is not None and doc.date < date_from) or (
            date_to is not None and doc.date > date_to
        ):
            return None
        return roster.load_state(ctx, folder, doc)

    with ThreadPoolExecutor(max_workers=SESSION_READERS) as pool:
        found = pool.map(load, sessions.folders(class_id))
        states = [state for state in found if state is not None]
    states.sort(key=lambda s: (s.doc.date, s.doc.created_at, s.doc.id))
    return states


def get_session(ctx: Context, class_id: str, session_id: str) -> SessionDetail:
    """The roster: every student enrolled at the time, with their status, how it was decided
    (recognised: which photo and how sure; teacher: when, by whom, with a note)."""
    state = session_state(ctx, class_id, session_id)
    entries = state.roster(list_students(ctx, class_id))
    present = sum(1 for entry in entries if entry.present)
    doc = state.doc
    return SessionDetail(
        id=doc.id,
        label=doc.label,
        date=doc.date,
        created_at=doc.created_at,
        photo_ids=[photo.id for photo in state.photos],
        present_count=present,
        absent_count=len(entries) - present,
        roster=entries,
    )


def list_sessions(ctx: Context, class_id: str) -> list[SessionSummary]:
    """Sessions by date, with how many students attended and how many photos were taken."""
    enrolled = list_students(ctx, class_id)
    return [
        SessionSummary(
            id=state.doc.id,
            label=state.doc.label,
            date=state.doc.date,
            created_at=state.doc.created_at,
            present_count=sum(1 for entry in state.roster(enrolled) if entry.present),
            photo_count=len(state.photos),
        )
        for state in session_states(ctx, class_id)
    ]


def student_attendance(ctx: Context, class_id: str, student_id: str) -> StudentAttendance:
    """The student's attendance in every session whose roster has them."""
    doc = require_student(ctx, class_id, student_id)
    student = enrolled_student(ctx, class_id, student_id)
    entries = (
        attendance_entries(session_states(ctx, class_id), student) if student is not None else []
    )
    return StudentAttendance(
        student_id=doc.id,
        name=doc.name,
        present_count=sum(1 for e in entries if e.present),
        session_count=len(entries),
        sessions=entries,
    )


def attendance_entries(
    states: Sequence[roster.SessionState], student: Student
) -> list[AttendanceEntry]:
    """The student's entry in each of ``states`` whose roster has them, in their order."""
    return [
        AttendanceEntry(
            session_id=state.doc.id,
            label=state.doc.label,
            date=state.doc.date,
            present=entry.present,
            status=entry.status,
            source=entry.source,
            recorded_at=entry.recorded_at,
            similarity=entry.similarity,
            photo_id=entry.photo_id,
            note=entry.note,
        )
        for state in states
        for entry in state.roster([student])
    ]
