"""The repositories' rules and the one rollback mechanism, on an in-memory store."""

from __future__ import annotations

import pytest

from app.services import layout
from app.services.cleanup import PendingCleanup
from app.services.ids import utc_now
from app.services.records import Repositories, parse_listing
from app.services.staged import StagedWrites
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
    leftover_photo = layout.student_photo_key(CLASS_ID, "ada", "old")
    leftover_embedding = layout.embedding_key(CLASS_ID, "ada", "old")
    store.put(leftover_photo, b"jpeg")
    store.put(leftover_embedding, layout.embeddings_to_bytes(views(1)))
    doc = layout.StudentDoc(id="ada", name="Ada", created_at=utc_now())
    assert records.students.claim(CLASS_ID, doc)
    assert store.keys() == [layout.student_key(CLASS_ID, "ada")]
    assert not records.students.claim(CLASS_ID, doc)  # taken now


def test_abandoning_a_claim_keeps_a_student_who_got_photos_meanwhile() -> None:
    store = MemoryStore()
    records = Repositories(store, PendingCleanup())
    for student_id in ("ada", "bob"):
        doc = layout.StudentDoc(id=student_id, name=student_id, created_at=utc_now())
        assert records.students.claim(CLASS_ID, doc)
    store.put(layout.embedding_key(CLASS_ID, "bob", "p1"), layout.embeddings_to_bytes(views(2)))
    records.students.abandon(CLASS_ID, "ada")
    records.students.abandon(CLASS_ID, "bob")
    assert records.students.get(CLASS_ID, "ada") is None
    assert records.students.get(CLASS_ID, "bob") is not None


def test_a_student_counts_only_with_student_json_and_a_facenet_embedding() -> None:
    keys = [
        layout.student_key(CLASS_ID, "ada"),
        layout.embedding_key(CLASS_ID, "ada", "p1"),
        layout.embedding_key(CLASS_ID, "ada", "p1", "dlib"),
        layout.embedding_key(CLASS_ID, "ada", "p2", "dlib"),  # FaceNet's not written yet
        layout.embedding_key(CLASS_ID, "ghost", "p1"),  # no student.json: being deleted
        layout.student_key(CLASS_ID, "new"),  # no photo yet
    ]
    parsed = parse_listing(CLASS_ID, keys)
    assert parsed.documented == {"ada", "new"}
    assert parsed.embeddings == [layout.embedding_key(CLASS_ID, "ada", "p1")]
    assert parsed.secondary == [layout.embedding_key(CLASS_ID, "ada", "p1", "dlib")]
    assert parsed.photo_counts(CLASS_ID) == {"ada": 1}


def test_a_session_photo_counts_once_complete() -> None:
    store = MemoryStore()
    records = Repositories(store, PendingCleanup())
    store.put(layout.session_photo_key(CLASS_ID, "mon", "p1", layout.ORIGINAL), b"j")
    store.put(layout.session_photo_key(CLASS_ID, "mon", "p1", layout.RESULT), b"{}")
    store.put(layout.session_photo_key(CLASS_ID, "mon", "p2", layout.ORIGINAL), b"j")  # cut off
    store.put(layout.record_key(CLASS_ID, "mon", "ada"), b"{}")
    assert records.session_photos.complete_ids(CLASS_ID, "mon") == ["p1"]
    listing = records.sessions.listing(CLASS_ID, "mon")
    assert len(listing) == 4
    assert records.session_photos.complete_ids(CLASS_ID, "mon", listing) == ["p1"]


def test_every_key_parses_back_to_what_built_it() -> None:
    assert layout.parse_student_key(CLASS_ID, layout.student_key(CLASS_ID, "ada")) == "ada"
    info = layout.student_photo_info_key(CLASS_ID, "ada", "p1")
    assert layout.parse_student_photo_info_key(CLASS_ID, "ada", info) == "p1"
    assert layout.parse_head_key(CLASS_ID, layout.head_key(CLASS_ID, 12)) == 12
    assert layout.parse_head_key(CLASS_ID, layout.head_pointer_key(CLASS_ID)) is None
    assert layout.parse_record_key(CLASS_ID, "mon", layout.record_key(CLASS_ID, "mon", "ada")) == (
        "ada"
    )
    photo = layout.session_photo_key(CLASS_ID, "mon", "p1", layout.RESULT)
    assert layout.parse_session_photo_key(CLASS_ID, "mon", photo) == ("p1", layout.RESULT)
    purged = layout.session_photo_key(CLASS_ID, "mon", "p1", layout.PURGED)
    assert layout.parse_session_photo_key(CLASS_ID, "mon", purged) == ("p1", layout.PURGED)
    assert layout.parse_student_key(CLASS_ID, info) is None
    sample = layout.sample_key(CLASS_ID, "ada", "s1")
    assert layout.parse_sample_key(CLASS_ID, sample) == layout.SampleRef("ada", "s1")
    assert layout.parse_embedding_key(CLASS_ID, sample) is None
    assert layout.parse_sample_key(CLASS_ID, info) is None
    correction = layout.correction_key(CLASS_ID, "mon", "ada", "c1")
    assert layout.parse_correction_key(CLASS_ID, "mon", correction) == "ada"
    assert layout.parse_record_key(CLASS_ID, "mon", correction) is None
    assignment = layout.assignment_key(CLASS_ID, "mon", "p1", 3, "a1")
    assert layout.parse_assignment_key(CLASS_ID, "mon", assignment) == ("p1", 3)
    assert layout.parse_session_photo_key(CLASS_ID, "mon", assignment) is None
    assert layout.parse_assignment_key(CLASS_ID, "mon", correction) is None
