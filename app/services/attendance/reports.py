"""Reports: a session's roster as CSV, and the term report (every student's status in every
session of a date range, and their rate) as JSON and CSV.

The rate counts what a school counts: sessions attended (present or late) out of the sessions
the student was on the roster for, less those they were excused from.
"""

from __future__ import annotations

import csv
import io
from datetime import date

from app.core.errors import InvalidInputError
from app.records.documents import Status
from app.services.attendance.models import CsvFile, TermReport, TermRow, TermSession
from app.services.attendance.roster import ATTENDED
from app.services.attendance.sessions import get_session, session_states
from app.services.context import Context
from app.services.enrolment import list_students

CSV_COLUMNS = (
    "student_id",
    "name",
    "status",
    "recorded_at",
    "similarity",
    "photo_id",
    "source",
    "note",
    "corrected_at",
    "corrected_by",
    "session",
    "date",
)
"""The first six are the columns of the CSV before corrections existed, in their order."""


def csv_cell(value: str) -> str:
    # A cell starting with = + - @ is a formula in spreadsheet programs (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def attendance_csv(ctx: Context, class_id: str, session_id: str) -> CsvFile:
    detail = get_session(ctx, class_id, session_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in detail.roster:
        writer.writerow(
            [
                entry.student_id,
                csv_cell(entry.name),
                entry.status,
                entry.recorded_at.isoformat() if entry.recorded_at else "",
                f"{entry.similarity:.4f}" if entry.similarity is not None else "",
                entry.photo_id or "",
                entry.source or "",
                csv_cell(entry.note or ""),
                entry.corrected_at.isoformat() if entry.corrected_at else "",
                csv_cell(entry.corrected_by or ""),
                csv_cell(detail.label),
                detail.date.isoformat(),
            ]
        )
    class_doc = ctx.require_class(class_id)
    return CsvFile(
        text=buffer.getvalue(),
        filename=f"{class_doc.name} {detail.date.isoformat()} {detail.label}",
    )


def _check_range(date_from: date | None, date_to: date | None) -> None:
    if date_from is not None and date_to is not None and date_from > date_to:
        raise InvalidInputError(f"from ({date_from}) is after to ({date_to})")


def term_report(
    ctx: Context, class_id: str, date_from: date | None, date_to: date | None
) -> TermReport:
    class_doc = ctx.require_class(class_id)
    _check_range(date_from, date_to)
    enrolled = list_students(ctx, class_id)
    states = session_states(ctx, class_id, date_from, date_to)
    statuses: dict[str, list[Status | None]] = {s.id: [None] * len(states) for s in enrolled}
    for column, state in enumerate(states):
        for entry in state.roster(enrolled):
            statuses[entry.student_id][column] = entry.status
    rows = []
    for student in sorted(enrolled, key=lambda s: (s.name.casefold(), s.id)):
        row = statuses[student.id]
        attended = sum(1 for status in row if status in ATTENDED)
        counted = sum(1 for status in row if status is not None and status != "excused")
        rows.append(
            TermRow(
                student_id=student.id,
                name=student.name,
                statuses=row,
                attended=attended,
                counted=counted,
                rate=round(attended / counted, 4) if counted else None,
            )
        )
    return TermReport(
        class_id=class_id,
        class_name=class_doc.name,
        date_from=date_from,
        date_to=date_to,
        sessions=[TermSession(id=s.doc.id, label=s.doc.label, date=s.doc.date) for s in states],
        students=rows,
    )


def term_csv(report: TermReport) -> str:
    """One row per student: id, name, one column per session (``date label``; empty when not on
    that session's roster), then attended, counted and the rate in percent."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        [
            "student_id",
            "name",
            *(csv_cell(f"{s.date.isoformat()} {s.label}") for s in report.sessions),
            "attended",
            "sessions",
            "rate_percent",
        ]
    )
    for row in report.students:
        writer.writerow(
            [
                row.student_id,
                csv_cell(row.name),
                *(status or "" for status in row.statuses),
                row.attended,
                row.counted,
                f"{100 * row.rate:.1f}" if row.rate is not None else "",
            ]
        )
    return buffer.getvalue()


def report_filename(report: TermReport) -> str:
    """``{class} attendance {from} to {to}`` (without extension)."""
    span = ""
    if report.date_from or report.date_to:
        span = f" {report.date_from or 'start'} to {report.date_to or 'today'}"
    return f"{report.class_name} attendance{span}"


EDFI_CATEGORIES: dict[Status, str] = {
    "present": "In Attendance",
    "late": "Tardy",
    "excused": "Excused Absence",
    "absent": "Unexcused Absence",
}
"""Ed-Fi's attendance event categories (``AttendanceEventCategoryDescriptor``) of each status."""
EVENT_COLUMNS = (
    "class_id",
    "student_id",
    "event_date",
    "session",
    "attendance_event_category",
    "arrival_time",
    "status",
)


def attendance_events_csv(
    ctx: Context, class_id: str, date_from: date | None, date_to: date | None
) -> CsvFile:
    """Attendance back to the school's system: a row per student per session in the range, the
    class and the student named by their roster ``source_id`` (their Rollcall id when not
    imported), the status as Ed-Fi's event category, and when the student was first seen (the
    upload of the first photo naming them; empty when not seen)."""
    class_doc = ctx.require_class(class_id)
    _check_range(date_from, date_to)
    enrolled = list_students(ctx, class_id)
    school_ids = {student.id: student.source_id or student.id for student in enrolled}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EVENT_COLUMNS)
    for state in session_states(ctx, class_id, date_from, date_to):
        for entry in sorted(state.roster(enrolled), key=lambda e: school_ids[e.student_id]):
            writer.writerow(
                [
                    csv_cell(class_doc.source_id or class_id),
                    csv_cell(school_ids[entry.student_id]),
                    state.doc.date.isoformat(),
                    csv_cell(state.doc.label),
                    EDFI_CATEGORIES[entry.status],
                    entry.recorded_at.isoformat() if entry.recorded_at else "",
                    entry.status,
                ]
            )
    span = f" {date_from or 'start'} to {date_to or 'today'}" if date_from or date_to else ""
    return CsvFile(text=buffer.getvalue(), filename=f"{class_doc.name} attendance events{span}")
