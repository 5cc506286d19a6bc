"""Enrolment, merging by name, rollback and erasure, with an in-memory store and no model."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from app.core.errors import ConflictError, NameAmbiguousError, NameTakenError, NotFoundError
from app.core.ids import utc_now
from app.core.images import encode_jpeg
from app.core.uploads import Upload
from app.records import documents, keys
from app.services import attendance, classes, enrolment, privacy
from app.services.enrolment import Existing
from app.storage import StorageUnavailableError
from tests.app.services.fakes import (
    CLASS_ID,
    FailingStore,
    MemoryStore,
    image,
    prepared,
    scripted,
    service_context,
)


def test_enrolment_stores_every_photo_and_facenet_last() -> None:
    store = MemoryStore()
    with service_context(store) as ctx:
        result = enrolment.enrol_prepared(
            ctx, CLASS_ID, "ada", "Ada", [prepared(1, "a.jpg"), prepared(2)], Existing.REFUSE
        )
        assert result.student.photo_count == 2
        assert [p.filename for p in result.photos] == ["a.jpg", None]
        assert [s.id for s in enrolment.list_students(ctx, CLASS_ID)] == ["ada"]
        assert len(enrolment.get_student(ctx, CLASS_ID, "ada").photos) == 2
        with pytest.raises(ConflictError, match="already exists"):
            enrolment.enrol_prepared(ctx, CLASS_ID, "ada", "Ada", [prepared(3)], Existing.REFUSE)


def test_a_failing_write_leaves_nothing_of_a_new_student() -> None:
    store = FailingStore()
    with service_context(store) as ctx:
        before = store.keys()
        second_photo = prepared(2)
        # The second photo's FaceNet embedding cannot be written: the first photo, complete by
        # then, goes too, and so does the student.json this registration created.
        store.fail_put = lambda key: (
            key == keys.embedding_key(CLASS_ID, "ada", second_photo.photo_id)
        )
        with pytest.raises(OSError, match="disk full"):
            enrolment.enrol_prepared(
                ctx, CLASS_ID, "ada", "Ada", [prepared(1), second_photo], Existing.REFUSE
            )
        assert store.keys() == before


def test_a_failing_write_keeps_the_photos_an_enrolled_student_already_had() -> None:
    store = FailingStore()
    with service_context(store) as ctx:
        enrolment.enrol_prepared(ctx, CLASS_ID, "ada", "Ada", [prepared(1)], Existing.REFUSE)
        before = store.keys()
        store.fail_put = lambda key: key.endswith(".jpg")
        with pytest.raises(OSError):
            enrolment.enrol_prepared(ctx, CLASS_ID, "ada", None, [prepared(2)], Existing.REQUIRE)
        assert store.keys() == before
        assert enrolment.get_student(ctx, CLASS_ID, "ada").photo_count == 1


def test_the_same_name_adds_photos_and_another_name_gets_another_id() -> None:
    with service_context() as ctx:
        first = enrolment.enrol_by_name(ctx, CLASS_ID, "Zoë", [prepared(1)], add=True)
        again = enrolment.enrol_by_name(ctx, CLASS_ID, "ZOË", [prepared(2)], add=True)
        other = enrolment.enrol_by_name(ctx, CLASS_ID, "Zoe", [prepared(3)], add=True)
        assert first.student.id == again.student.id == "zoe"
        assert again.student.photo_count == 2
        assert again.student.name == "Zoë"  # the first name is kept
        assert other.student.id.startswith("zoe-") and other.student.name == "Zoe"
        with pytest.raises(NameTakenError) as taken:
            enrolment.enrol_by_name(ctx, CLASS_ID, "zoë", [prepared(4)], add=False)
        assert taken.value.student_id == "zoe"


def test_two_students_of_one_name_must_be_told_apart_by_id() -> None:
    with service_context() as ctx:
        for student_id in ("kim-1", "kim-2"):
            enrolment.enrol_prepared(
                ctx, CLASS_ID, student_id, "Kim", [prepared(1)], Existing.REFUSE
            )
        with pytest.raises(NameAmbiguousError) as ambiguous:
            enrolment.enrol_by_name(ctx, CLASS_ID, "Kim", [prepared(2)], add=True)
        assert ambiguous.value.student_ids == ["kim-1", "kim-2"]


def test_deleting_a_student_erases_records_and_names_in_class_photos() -> None:
    with service_context() as ctx:
        for student_id, name, seed in (("ada", "Ada", 1), ("bob", "Bob", 2)):
            enrolment.enrol_prepared(
                ctx, CLASS_ID, student_id, name, [prepared(seed)], Existing.REFUSE
            )
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", date(2026, 11, 30))
        scripted(ctx).script = ["ada", "bob"]
        added = attendance.add_session_photo(ctx, CLASS_ID, "mon", Upload("c.jpg", _jpeg()))
        privacy.erase_student(ctx, CLASS_ID, "ada")

        assert ctx.records.students.has_objects(CLASS_ID, "ada") is False
        assert ctx.records.attendance.get(CLASS_ID, "mon", "ada") is None
        assert ctx.records.attendance.get(CLASS_ID, "mon", "bob") is not None
        photo = attendance.session_photo(ctx, CLASS_ID, "mon", added.photo_id)
        assert [f.student_id for f in photo.faces] == [None, "bob"]
        stored = ctx.records.session_photos.result(CLASS_ID, "mon", added.photo_id)
        assert stored is not None
        assert "ada" not in {f.student_id for f in stored.faces} | {
            f.candidate_id for f in stored.faces
        }
        with pytest.raises(NotFoundError):
            privacy.erase_student(ctx, CLASS_ID, "ada")


def test_an_erasure_cut_off_by_the_store_is_finished_when_it_is_back() -> None:
    store = FailingStore()
    with service_context(store) as ctx:
        enrolment.enrol_prepared(ctx, CLASS_ID, "ada", "Ada", [prepared(1)], Existing.REFUSE)
        store.fail_delete = lambda key: key != keys.STUDENT.key(class_id=CLASS_ID, student_id="ada")
        with pytest.raises(StorageUnavailableError):
            privacy.erase_student(ctx, CLASS_ID, "ada")
        assert enrolment.list_students(ctx, CLASS_ID) == []  # out of every listing at once
        store.heal()
        assert ctx.cleanup.run_now() == 0
        assert not ctx.records.students.has_objects(CLASS_ID, "ada")


def test_a_claim_without_photos_is_reported_as_a_registration_in_flight() -> None:
    with service_context() as ctx:
        doc = documents.StudentDoc(id="ada", name="Ada", created_at=utc_now())
        assert ctx.records.students.claim(CLASS_ID, doc)
        with pytest.raises(ConflictError, match="being registered by another request"):
            enrolment.enrol_prepared(ctx, CLASS_ID, "ada", "Ada", [prepared(1)], Existing.REFUSE)
        assert enrolment.list_students(ctx, CLASS_ID) == []


def _jpeg() -> bytes:
    return encode_jpeg(image(7))


@pytest.mark.parametrize("use_head", [False, True])
def test_the_head_is_trained_only_where_it_is_used(use_head: bool) -> None:
    with service_context() as ctx:
        pipeline = ctx.inference.pipeline
        ctx.inference.pipeline = pipeline.with_config(
            dataclasses.replace(pipeline.config, use_head=use_head)
        )
        for seed, student_id in enumerate(("ada", "bob", "cy"), start=1):
            enrolment.enrol_prepared(
                ctx, CLASS_ID, student_id, student_id.title(), [prepared(seed)], Existing.REFUSE
            )
        assert ctx.trainer.wait_idle(timeout=60)
        trained = ctx.heads.pointer(CLASS_ID)
        state = classes.get_class(ctx, CLASS_ID).head
        if use_head:
            assert trained is not None and trained.student_ids == ["ada", "bob", "cy"]
            assert state is not None and state.state == "ready"
        else:
            assert trained is None and ctx.heads.versions(CLASS_ID) == []
            assert state is not None and state.state == "none"
        privacy.erase_student(ctx, CLASS_ID, "cy")
        assert ctx.trainer.wait_idle(timeout=60)
        kept = ctx.heads.pointer(CLASS_ID)
        assert kept is None or "cy" not in kept.student_ids
