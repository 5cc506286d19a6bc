"""Session photos: the merge rule (first photo wins), rollback, the roster; no model, no bucket."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from app.core.errors import ConflictError, InvalidInputError, NotFoundError
from app.core.images import encode_jpeg
from app.core.uploads import Upload
from app.records import keys
from app.services import attendance, enrolment
from app.services.context import Context
from app.services.enrolment import Existing
from tests.app.services.fakes import (
    CLASS_ID,
    FailingStore,
    image,
    prepared,
    scripted,
    service_context,
)


def _photo(seed: int = 7) -> Upload:
    return Upload("class.jpg", encode_jpeg(image(seed)))


def _enrol(ctx: Context, *student_ids: str) -> None:
    for seed, student_id in enumerate(student_ids, start=1):
        enrolment.enrol_prepared(
            ctx, CLASS_ID, student_id, student_id.title(), [prepared(seed)], Existing.REFUSE
        )


def test_a_student_is_recorded_once_by_the_first_photo_that_recognises_them() -> None:
    with service_context() as ctx:
        # The students are enrolled the morning of the session (a past date, whatever today is).
        ctx.clock = lambda: datetime(2026, 11, 30, 8, tzinfo=UTC)
        _enrol(ctx, "ada", "bob", "cy")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", date(2026, 11, 30))
        scripted(ctx).script = ["ada", None, "ada"]
        first = attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        scripted(ctx).script = ["bob", "ada"]
        second = attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo(8))

        assert (first.recorded, first.already_present) == (["ada"], [])
        assert (second.recorded, second.already_present) == (["bob"], ["ada"])
        assert first.names == ["Ada", "Ada"]
        record = ctx.records.attendance.get(CLASS_ID, "mon", "ada")
        assert record is not None and record.photo_id == first.photo_id  # the first one kept

        roster = attendance.get_session(ctx, CLASS_ID, "mon")
        assert [(e.student_id, e.present) for e in roster.roster] == [
            ("ada", True),
            ("bob", True),
            ("cy", False),
        ]
        assert roster.photo_ids == sorted([first.photo_id, second.photo_id])
        (summary,) = attendance.list_sessions(ctx, CLASS_ID)
        assert (summary.present_count, summary.photo_count) == (2, 2)
        history = attendance.student_attendance(ctx, CLASS_ID, "cy")
        assert (history.present_count, history.session_count) == (0, 1)


def test_a_failing_record_write_removes_the_photo_and_the_records_of_that_upload() -> None:
    store = FailingStore()
    with service_context(store) as ctx:
        _enrol(ctx, "ada", "bob")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", None)
        before = store.keys()
        store.fail_put = lambda key: (
            key == keys.RECORD.key(class_id=CLASS_ID, session_id="mon", student_id="bob")
        )
        scripted(ctx).script = ["ada", "bob"]
        with pytest.raises(OSError):
            attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        assert store.keys() == before
        store.heal()
        retried = attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        assert retried.recorded == ["ada", "bob"]


def test_records_that_cannot_be_removed_keep_their_photo() -> None:
    store = FailingStore()
    with service_context(store) as ctx:
        _enrol(ctx, "ada", "bob")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", None)
        scripted(ctx).script = ["ada", "bob"]
        store.fail_put = lambda key: (
            key == keys.RECORD.key(class_id=CLASS_ID, session_id="mon", student_id="bob")
        )
        store.fail_delete = lambda key: (
            key == keys.RECORD.key(class_id=CLASS_ID, session_id="mon", student_id="ada")
        )
        with pytest.raises(OSError):
            attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        # Another upload may already have answered "already present" on the strength of Ada's
        # record: it stays, with the complete photo it points at, and nothing is retried.
        record = ctx.records.attendance.get(CLASS_ID, "mon", "ada")
        assert record is not None
        assert ctx.records.sessions.folder(CLASS_ID, "mon").complete_photo_ids() == [
            record.photo_id
        ]
        assert ctx.cleanup.pending == 0


def test_session_photo_names_students_as_they_are_called_now() -> None:
    with service_context() as ctx:
        _enrol(ctx, "ada")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", None)
        scripted(ctx).script = ["ada", None]
        added = attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        enrolment.rename_student(ctx, CLASS_ID, "ada", "Ada Lovelace")
        photo = attendance.session_photo(ctx, CLASS_ID, "mon", added.photo_id)
        assert [f.name for f in photo.faces] == ["Ada Lovelace", None]
        assert attendance.face_crop(ctx, CLASS_ID, "mon", added.photo_id, 1)[:2] == b"\xff\xd8"
        with pytest.raises(NotFoundError, match="no face number 2"):
            attendance.face_crop(ctx, CLASS_ID, "mon", added.photo_id, 2)


def test_session_ids_are_claimed_once_and_deleting_removes_everything() -> None:
    with service_context() as ctx:
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", None)
        with pytest.raises(ConflictError, match="already exists"):
            attendance.create_session(ctx, CLASS_ID, "mon", "Again", None)
        scripted(ctx).script = [None]
        attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        attendance.delete_session(ctx, CLASS_ID, "mon")
        assert attendance.list_sessions(ctx, CLASS_ID) == []
        assert ctx.records.sessions.folder(CLASS_ID, "mon").objects == {}


def test_recognition_without_recording_writes_nothing() -> None:
    store = FailingStore()
    with service_context(store) as ctx:
        _enrol(ctx, "ada")
        before = store.keys()
        scripted(ctx).script = ["ada", None]
        result = attendance.recognise(ctx, CLASS_ID, _photo(), with_image=True)
        assert result.names == ["Ada"]
        assert [f.known for f in result.faces] == [True, False]
        assert result.annotated_jpeg is not None and result.annotated_jpeg[:2] == b"\xff\xd8"
        assert store.keys() == before


def test_attendance_events_for_the_schools_system() -> None:
    with service_context() as ctx:
        ctx.clock = lambda: datetime(2026, 11, 30, 8, tzinfo=UTC)
        _enrol(ctx, "ada", "bob", "cy", "dee")
        doc = ctx.records.students.get(CLASS_ID, "ada")
        assert doc is not None
        ctx.records.students.save(CLASS_ID, doc.model_copy(update={"source_id": "SIS-ADA"}))
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", date(2026, 11, 30))
        scripted(ctx).script = ["ada", "bob"]
        attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        attendance.set_status(ctx, CLASS_ID, "mon", "bob", "late", "", "console")
        attendance.set_status(ctx, CLASS_ID, "mon", "cy", "excused", "ill", "console")
        attendance.create_session(ctx, CLASS_ID, "tue", "Tuesday", date(2026, 12, 1))
        found = attendance.attendance_events_csv(ctx, CLASS_ID, date(2026, 11, 30), None)
        rows = list(csv.reader(io.StringIO(found.text)))
        assert rows[0] == [
            "class_id",
            "student_id",
            "event_date",
            "session",
            "attendance_event_category",
            "arrival_time",
            "status",
        ]
        monday = {row[1]: (row[4], bool(row[5]), row[6]) for row in rows[1:] if row[3] == "Monday"}
        assert monday == {
            "SIS-ADA": ("In Attendance", True, "present"),  # the roster's id when imported
            "bob": ("Tardy", True, "late"),
            "cy": ("Excused Absence", False, "excused"),
            "dee": ("Unexcused Absence", False, "absent"),
        }
        assert len(rows) == 1 + 4 + 4  # a row per student per session
        assert found.filename == "Physics attendance events 2026-11-30 to today"
        with pytest.raises(InvalidInputError, match="after"):
            attendance.attendance_events_csv(ctx, CLASS_ID, date(2026, 12, 2), date(2026, 12, 1))
