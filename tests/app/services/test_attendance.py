"""Session photos: the merge rule (first photo wins), rollback, the roster; no model, no bucket."""

from __future__ import annotations

from datetime import date

import pytest

from app.images import encode_jpeg
from app.services import attendance, layout, students
from app.services.context import Context
from app.services.errors import ConflictError, NotFoundError
from app.services.students import Existing, Upload
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
        students.enrol_prepared(
            ctx, CLASS_ID, student_id, student_id.title(), [prepared(seed)], Existing.REFUSE
        )


def test_a_student_is_recorded_once_by_the_first_photo_that_recognises_them() -> None:
    with service_context() as ctx:
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
        store.fail_put = lambda key: key == layout.record_key(CLASS_ID, "mon", "bob")
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
        store.fail_put = lambda key: key == layout.record_key(CLASS_ID, "mon", "bob")
        store.fail_delete = lambda key: key == layout.record_key(CLASS_ID, "mon", "ada")
        with pytest.raises(OSError):
            attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        # Another upload may already have answered "already present" on the strength of Ada's
        # record: it stays, with the complete photo it points at, and nothing is retried.
        record = ctx.records.attendance.get(CLASS_ID, "mon", "ada")
        assert record is not None
        assert ctx.records.session_photos.complete_ids(CLASS_ID, "mon") == [record.photo_id]
        assert ctx.cleanup.pending == 0


def test_session_photo_names_students_as_they_are_called_now() -> None:
    with service_context() as ctx:
        _enrol(ctx, "ada")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", None)
        scripted(ctx).script = ["ada", None]
        added = attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        students.rename_student(ctx, CLASS_ID, "ada", "Ada Lovelace")
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
        assert ctx.records.sessions.listing(CLASS_ID, "mon") == []


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
