"""Attendance: recognising a class photo (:mod:`.recognise`), sessions and their photos
(:mod:`.sessions`, :mod:`.photos`), the roster derived from them (:mod:`.roster`), the teacher's
corrections (:mod:`.corrections`) and the reports (:mod:`.reports`)."""

from app.services.attendance.corrections import assign_face, clear_status, set_status
from app.services.attendance.models import (
    AttendanceEntry,
    AttendanceStatus,
    CsvFile,
    Face,
    Recognised,
    RosterEntry,
    Session,
    SessionDetail,
    SessionPhotoAdded,
    SessionPhotoDetail,
    SessionSummary,
    StudentAttendance,
    TermReport,
    TermRow,
    TermSession,
)
from app.services.attendance.photos import (
    add_session_photo,
    annotated_photo,
    face_crop,
    photo_doc,
    session_photo,
)
from app.services.attendance.recognise import (
    RecognitionResult,
    recognise,
    recognise_image,
    recognise_upload,
)
from app.services.attendance.reports import (
    attendance_csv,
    csv_cell,
    report_filename,
    term_csv,
    term_report,
)
from app.services.attendance.roster import ATTENDED, SessionState
from app.services.attendance.sessions import (
    attendance_entries,
    create_session,
    delete_session,
    get_session,
    list_sessions,
    require_session,
    session_states,
    student_attendance,
)

__all__ = [
    "ATTENDED",
    "AttendanceEntry",
    "AttendanceStatus",
    "CsvFile",
    "Face",
    "Recognised",
    "RecognitionResult",
    "RosterEntry",
    "Session",
    "SessionDetail",
    "SessionPhotoAdded",
    "SessionPhotoDetail",
    "SessionState",
    "SessionSummary",
    "StudentAttendance",
    "TermReport",
    "TermRow",
    "TermSession",
    "add_session_photo",
    "annotated_photo",
    "assign_face",
    "attendance_csv",
    "attendance_entries",
    "clear_status",
    "create_session",
    "csv_cell",
    "delete_session",
    "face_crop",
    "get_session",
    "list_sessions",
    "photo_doc",
    "recognise",
    "recognise_image",
    "recognise_upload",
    "report_filename",
    "require_session",
    "session_photo",
    "session_states",
    "set_status",
    "student_attendance",
    "term_csv",
    "term_report",
]
