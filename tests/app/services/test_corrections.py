"""The roster's rules (assignments, manual statuses) and learning from confirmed faces, on an
in-memory store with scripted recognition; the API tests (tests/app/test_corrections.py) run the
same rules with the real models on disk and S3."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.core.errors import NotFoundError
from app.core.ids import new_id, new_id_after, utc_now
from app.core.images import encode_jpeg
from app.core.uploads import Upload
from app.records import documents
from app.services import attendance, enrolment
from app.services.attendance import roster
from app.services.context import Context
from app.services.enrolment import Existing
from app.settings import Settings
from ml.samples import DEFAULT_AUTO_CONFIRM, DEFAULT_MAX_SAMPLES, AutoConfirmRule
from tests.app.services.fakes import (
    CLASS_ID,
    FailingStore,
    image,
    prepared,
    scripted,
    service_context,
)


def _enrol(ctx: Context, *student_ids: str) -> None:
    for seed, student_id in enumerate(student_ids, start=1):
        enrolment.enrol_prepared(
            ctx, CLASS_ID, student_id, student_id.title(), [prepared(seed)], Existing.REFUSE
        )


def _photo(seed: int = 7) -> Upload:
    return Upload("class.jpg", encode_jpeg(image(seed)))


def _face(student_id: str | None) -> documents.FaceDoc:
    return documents.FaceDoc(
        box=(0, 0, 10, 10), detection_score=0.9, student_id=student_id, similarity=0.8
    )


def _assignment(face: int, student_id: str | None, minutes: int) -> documents.FaceAssignmentDoc:
    return documents.FaceAssignmentDoc(
        id=new_id(),
        photo_id="p",
        face_index=face,
        student_id=student_id,
        assigned_at=utc_now() + timedelta(minutes=minutes),
        assigned_by="console",
    )


PHOTO = documents.SessionPhotoDoc(
    id="p",
    created_at=utc_now(),
    width=64,
    height=48,
    unknown_threshold=0.5,
    faces=[_face("ada"), _face("bob"), _face(None)],
)


def test_an_assignment_moves_the_name_within_the_photo() -> None:
    faces = roster.name_faces(PHOTO, {2: _assignment(2, "ada", 0)})
    assert [(f.student_id, f.source) for f in faces] == [
        (None, None),  # recognition's Ada: the teacher put her on face 2
        ("bob", roster.RECOGNISED),
        ("ada", enrolment.TEACHER),
    ]


def test_nobody_of_the_class() -> None:
    faces = roster.name_faces(PHOTO, {0: _assignment(0, None, 0)})
    assert (faces[0].student_id, faces[0].source, faces[0].not_in_class) == (
        None,
        enrolment.TEACHER,
        True,
    )


def test_two_racing_assignments_of_one_student_the_newer_wins() -> None:
    faces = roster.name_faces(PHOTO, {1: _assignment(1, "cy", 0), 2: _assignment(2, "cy", 1)})
    assert [f.student_id for f in faces] == ["ada", None, "cy"]


def test_statuses_and_sources() -> None:
    with service_context() as ctx:
        _enrol(ctx, "ada", "bob", "cy")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", date.today())
        scripted(ctx).script = ["ada", "bob", None]
        photo = attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        attendance.set_status(ctx, CLASS_ID, "mon", "bob", "excused", "dentist", "key 1")
        attendance.assign_face(ctx, CLASS_ID, "mon", photo.photo_id, 2, "cy", "console")
        entries = {e.student_id: e for e in attendance.get_session(ctx, CLASS_ID, "mon").roster}
        assert (entries["ada"].status, entries["ada"].source) == ("present", "recognised")
        assert (entries["bob"].status, entries["bob"].present, entries["bob"].note) == (
            "excused",
            False,
            "dentist",
        )
        assert entries["bob"].corrected_by == "key 1"
        assert (entries["cy"].status, entries["cy"].source, entries["cy"].face_index) == (
            "present",
            "teacher",
            2,
        )


def test_sure_faces_become_samples_bounded_per_student() -> None:
    with service_context() as ctx:
        ctx.settings = ctx.settings.model_copy(update={"max_samples_per_student": 2})
        _enrol(ctx, "ada", "bob")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", date.today())
        scripted(ctx).embed = True
        for seed in range(4):
            scripted(ctx).script = ["ada", "bob"]
            attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo(seed))
        for student_id in ("ada", "bob"):
            kept = ctx.records.samples.of_student(CLASS_ID, student_id)
            assert len(kept) == 2
            assert {s.confirmed_by for s in kept} == {"recognition"}
        gallery = ctx.galleries.get(CLASS_ID)
        assert len(gallery.sample_keys) == 4
        assert [len(arrays) for arrays in gallery.photos.values()] == [3, 3]  # 1 photo + 2


def test_no_sample_of_a_student_marked_absent_nor_when_learning_is_off() -> None:
    with service_context() as ctx:
        _enrol(ctx, "ada", "bob")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", date.today())
        attendance.set_status(ctx, CLASS_ID, "mon", "ada", "absent", "", "console")
        scripted(ctx).embed = True
        scripted(ctx).script = ["ada", "bob"]
        attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        assert ctx.records.samples.of_student(CLASS_ID, "ada") == []
        assert len(ctx.records.samples.of_student(CLASS_ID, "bob")) == 1

        ctx.settings = ctx.settings.model_copy(update={"learn_from_photos": False})
        attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo(2))
        assert len(ctx.records.samples.of_student(CLASS_ID, "bob")) == 1


def test_a_failed_upload_leaves_no_sample() -> None:
    store = FailingStore()
    with service_context(store) as ctx:
        _enrol(ctx, "ada")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", date.today())
        scripted(ctx).embed = True
        scripted(ctx).script = ["ada"]
        store.fail_put = lambda key: "/records/" in key  # after the photo and before the sample
        try:
            attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo())
        except Exception:
            pass
        else:
            raise AssertionError("the upload should have failed")
        store.heal()
        assert ctx.records.samples.of_student(CLASS_ID, "ada") == []
        assert ctx.records.sessions.folder(CLASS_ID, "mon").complete_photo_ids() == []


def test_the_service_confirms_faces_by_the_measured_rule() -> None:
    settings = Settings(_env_file=None)
    assert settings.auto_confirm_rule() == DEFAULT_AUTO_CONFIRM
    assert settings.max_samples_per_student == DEFAULT_MAX_SAMPLES
    custom = Settings(_env_file=None, auto_confirm_margin=0.3, auto_confirm_gap=0.0)
    assert custom.auto_confirm_rule() == AutoConfirmRule(0.3, 0.0)


def test_withdrawing_a_naming_gives_recognition_its_name_back() -> None:
    with service_context() as ctx:
        _enrol(ctx, "ada", "bob", "cy")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", date(2026, 3, 2))
        scripted(ctx).script = ["ada", "bob", None]
        photo = attendance.add_session_photo(ctx, CLASS_ID, "mon", _photo()).photo_id
        with pytest.raises(NotFoundError):  # recognition's name: nothing to take back
            attendance.withdraw_assignment(ctx, CLASS_ID, "mon", photo, 0, "console")

        # Ada moved to the unknown face by mistake; then Cy named on her own face.
        attendance.assign_face(ctx, CLASS_ID, "mon", photo, 2, "ada", "console")
        attendance.assign_face(ctx, CLASS_ID, "mon", photo, 0, "cy", "console")
        assert len(ctx.records.samples.of_student(CLASS_ID, "ada")) == 1
        detail = attendance.withdraw_assignment(ctx, CLASS_ID, "mon", photo, 2, "console")
        # Face 2 is unknown again (recognition had nobody there); Cy stays where the teacher put
        # her, so face 0 does not get Ada back; Ada's sample of face 2 is gone.
        assert [(f.student_id, f.source) for f in detail.faces] == [
            ("cy", "teacher"),
            ("bob", "recognised"),
            (None, None),
        ]
        assert ctx.records.samples.of_student(CLASS_ID, "ada") == []
        detail = attendance.withdraw_assignment(ctx, CLASS_ID, "mon", photo, 0, "console")
        assert [f.student_id for f in detail.faces] == ["ada", "bob", None]
        with pytest.raises(NotFoundError):
            attendance.withdraw_assignment(ctx, CLASS_ID, "mon", photo, 0, "console")
        with pytest.raises(NotFoundError):
            attendance.withdraw_assignment(ctx, CLASS_ID, "mon", photo, 9, "console")

        # "Nobody of the class", taken back: the known stranger goes with it.
        attendance.assign_face(ctx, CLASS_ID, "mon", photo, 2, None, "console")
        assert len(attendance.list_known_strangers(ctx, CLASS_ID)) == 1
        attendance.withdraw_assignment(ctx, CLASS_ID, "mon", photo, 2, "console")
        assert attendance.list_known_strangers(ctx, CLASS_ID) == []


def test_a_newer_assignment_sorts_after_the_one_it_replaces_within_a_millisecond() -> None:
    first = new_id()
    later = [new_id_after(first)]
    for _ in range(50):
        later.append(new_id_after(later[-1]))
    assert sorted([first, *later]) == [first, *later]
    assert len(set(later)) == len(later)
    assert new_id_after(None) > first
