"""The repositories' rules and the one rollback mechanism, on an in-memory store."""

from __future__ import annotations

import pytest

from app.core.ids import utc_now
from app.records import Repositories, documents, keys
from app.records.cleanup import PendingCleanup
from app.records.staged import StagedWrites
from app.records.students import parse_listing
from tests.app.services.fakes import CLASS_ID, FailingStore, MemoryStore, views


def test_staged_writes_are_removed_newest_first_when_the_operation_fails() -> None:
    store = FailingStore()
    deleted: list[str] = []
    original_delete = store.delete

    def recording_delete(key: str) -> None:
        deleted.append(key)
        original_delete(key)

    store.delete = recording_delete  # type: ignore[method-assign]
    with pytest.raises(RuntimeError), StagedWrites(store, PendingCleanup(), "a test") as staged:
        staged.put("a/1", b"1", content_type="text/plain")
        staged.put("a/2", b"2", content_type="text/plain")
        raise RuntimeError("the operation fails after two writes")
    assert deleted == ["a/2", "a/1"]
    assert store.keys() == []


def test_a_taken_key_is_not_rolled_back_by_whoever_lost_the_race() -> None:
    store = MemoryStore()
    store.put("a/taken", b"theirs")
    with pytest.raises(RuntimeError), StagedWrites(store, PendingCleanup(), "a test") as staged:
        staged.put("a/mine", b"mine", content_type="text/plain")
        with pytest.raises(Exception, match="a/taken"):
            staged.put("a/taken", b"mine", content_type="text/plain", if_absent=True)
        raise RuntimeError("fails")
    assert store.keys() == ["a/taken"]
    assert store.get("a/taken") == b"theirs"


def test_rollback_with_the_store_down_is_finished_when_it_is_back() -> None:
    store = FailingStore()
    cleanup = PendingCleanup()
    staged = StagedWrites(store, cleanup, "a test")
    for key in ("a/1", "a/2", "a/3"):
        staged.put(key, b"x", content_type="text/plain")
    store.fail_delete = lambda key: key == "a/2"
    staged.roll_back()
    assert store.keys() == ["a/1", "a/2"]  # a/3 went, then the store went down
    assert cleanup.pending == 1
    assert cleanup.run_now() == 1  # still down: kept, in order
    store.heal()
    assert cleanup.run_now() == 0
    assert store.keys() == []
    cleanup.close()


def test_shared_writes_stay_with_what_they_point_at_when_they_cannot_be_removed() -> None:
    store = FailingStore()
    cleanup = PendingCleanup()
    staged = StagedWrites(store, cleanup, "a test")
    staged.put("s/photo", b"p", content_type="text/plain")
    staged.put("s/record", b"r", content_type="text/plain", shared=True)
    store.fail_delete = lambda key: key == "s/record"
    staged.roll_back()
    assert store.keys() == ["s/photo", "s/record"]
    assert cleanup.pending == 0  # never removed later: someone may have acted on the record


def test_claiming_a_student_removes_the_leftovers_of_an_interrupted_erasure_first() -> None:
    store = MemoryStore()
    records = Repositories(store, PendingCleanup())
    leftover_photo = keys.STUDENT_PHOTO.key(class_id=CLASS_ID, student_id="ada", photo_id="old")
    leftover_embedding = keys.embedding_key(CLASS_ID, "ada", "old")
    store.put(leftover_photo, b"jpeg")
    store.put(leftover_embedding, documents.embeddings_to_bytes(views(1)))
    doc = documents.StudentDoc(id="ada", name="Ada", created_at=utc_now())
    assert records.students.claim(CLASS_ID, doc)
    assert store.keys() == [keys.STUDENT.key(class_id=CLASS_ID, student_id="ada")]
    assert not records.students.claim(CLASS_ID, doc)  # taken now


def test_abandoning_a_claim_keeps_a_student_who_got_photos_meanwhile() -> None:
    store = MemoryStore()
    records = Repositories(store, PendingCleanup())
    for student_id in ("ada", "bob"):
        doc = documents.StudentDoc(id=student_id, name=student_id, created_at=utc_now())
        assert records.students.claim(CLASS_ID, doc)
    store.put(keys.embedding_key(CLASS_ID, "bob", "p1"), documents.embeddings_to_bytes(views(2)))
    records.students.abandon(CLASS_ID, "ada")
    records.students.abandon(CLASS_ID, "bob")
    assert records.students.get(CLASS_ID, "ada") is None
    assert records.students.get(CLASS_ID, "bob") is not None


def test_a_student_counts_only_with_student_json_and_a_facenet_embedding() -> None:
    listed = [
        keys.STUDENT.key(class_id=CLASS_ID, student_id="ada"),
        keys.embedding_key(CLASS_ID, "ada", "p1"),
        keys.embedding_key(CLASS_ID, "ada", "p1", "dlib"),
        keys.embedding_key(CLASS_ID, "ada", "p2", "dlib"),  # FaceNet's not written yet
        keys.embedding_key(CLASS_ID, "ghost", "p1"),  # no student.json: being deleted
        keys.STUDENT.key(class_id=CLASS_ID, student_id="new"),  # no photo yet
    ]
    parsed = parse_listing(CLASS_ID, listed)
    assert parsed.documented == {"ada", "new"}
    assert parsed.embeddings == [keys.embedding_key(CLASS_ID, "ada", "p1")]
    assert parsed.secondary == [keys.embedding_key(CLASS_ID, "ada", "p1", "dlib")]
    assert parsed.photo_counts(CLASS_ID) == {"ada": 1}


def test_a_session_photo_counts_once_complete() -> None:
    store = MemoryStore()
    records = Repositories(store, PendingCleanup())
    store.put(
        keys.SESSION_PHOTO.key(
            class_id=CLASS_ID, session_id="mon", photo_id="p1", name=keys.ORIGINAL
        ),
        b"j",
    )
    store.put(
        keys.SESSION_PHOTO.key(
            class_id=CLASS_ID, session_id="mon", photo_id="p1", name=keys.RESULT
        ),
        b"{}",
    )
    store.put(
        keys.SESSION_PHOTO.key(
            class_id=CLASS_ID, session_id="mon", photo_id="p2", name=keys.ORIGINAL
        ),
        b"j",
    )  # cut off
    store.put(keys.RECORD.key(class_id=CLASS_ID, session_id="mon", student_id="ada"), b"{}")
    folder = records.sessions.folder(CLASS_ID, "mon")
    assert folder.complete_photo_ids() == ["p1"]
    assert len(folder.objects) == 4


def test_every_key_parses_back_to_what_built_it() -> None:
    student = keys.STUDENT.key(class_id=CLASS_ID, student_id="ada")
    assert keys.STUDENT.parse(student) == keys.StudentRef(CLASS_ID, "ada")
    info = keys.STUDENT_PHOTO_INFO.key(class_id=CLASS_ID, student_id="ada", photo_id="p1")
    assert keys.STUDENT_PHOTO_INFO.parse(info) == keys.StudentPhotoRef(CLASS_ID, "ada", "p1")
    head = keys.HEAD.key(class_id=CLASS_ID, version=12)
    assert keys.HEAD.parse(head) == keys.HeadRef(CLASS_ID, 12)
    assert keys.HEAD.parse(keys.HEAD_POINTER.key(class_id=CLASS_ID)) is None
    record = keys.RECORD.key(class_id=CLASS_ID, session_id="mon", student_id="ada")
    assert keys.RECORD.parse(record) == keys.RecordRef(CLASS_ID, "mon", "ada")
    photo = keys.SESSION_PHOTO.key(
        class_id=CLASS_ID, session_id="mon", photo_id="p1", name=keys.RESULT
    )
    assert keys.SESSION_PHOTO.parse(photo) == keys.SessionPhotoRef(
        CLASS_ID, "mon", "p1", keys.RESULT
    )
    purged = keys.SESSION_PHOTO.key(
        class_id=CLASS_ID, session_id="mon", photo_id="p1", name=keys.PURGED
    )
    assert keys.SESSION_PHOTO.parse(purged) == keys.SessionPhotoRef(
        CLASS_ID, "mon", "p1", keys.PURGED
    )
    assert keys.STUDENT.parse(info) is None
    sample = keys.SAMPLE.key(class_id=CLASS_ID, student_id="ada", sample_id="s1")
    assert keys.SAMPLE.parse(sample) == keys.SampleRef(CLASS_ID, "ada", "s1")
    assert keys.parse_embedding_key(CLASS_ID, sample) is None
    assert keys.SAMPLE.parse(info) is None
    correction = keys.CORRECTION.key(
        class_id=CLASS_ID, session_id="mon", student_id="ada", correction_id="c1"
    )
    assert keys.CORRECTION.parse(correction) == keys.CorrectionRef(CLASS_ID, "mon", "ada", "c1")
    assert keys.RECORD.parse(correction) is None
    assignment = keys.ASSIGNMENT.key(
        class_id=CLASS_ID, session_id="mon", photo_id="p1", face_index=3, assignment_id="a1"
    )
    assert keys.ASSIGNMENT.parse(assignment) == keys.AssignmentRef(CLASS_ID, "mon", "p1", 3, "a1")
    assert keys.SESSION_PHOTO.parse(assignment) is None
    assert keys.ASSIGNMENT.parse(correction) is None
