"""Attendance documents read through the cache: each at most once per version, on every
replica, and never stale after a rewrite."""

from __future__ import annotations

import datetime as dt

from app.records import Repositories, documents, keys
from app.records.cache import DocumentCache
from app.records.cleanup import PendingCleanup
from tests.app.services.fakes import CLASS_ID, MemoryStore

NOW = dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        return super().get(key)


def _photo(photo_id: str, student_id: str | None) -> documents.SessionPhotoDoc:
    face = documents.FaceDoc(
        box=(1, 2, 3, 4), detection_score=0.9, student_id=student_id, similarity=0.8
    )
    return documents.SessionPhotoDoc(
        id=photo_id, created_at=NOW, width=10, height=10, unknown_threshold=0.4, faces=[face]
    )


def _stored_session(store: MemoryStore) -> None:
    session = documents.SessionDoc(id="mon", label="Monday", date=NOW.date(), created_at=NOW)
    store.put(keys.SESSION.key(class_id=CLASS_ID, session_id="mon"), session.to_json_bytes())
    for photo_id in ("p1", "p2"):
        key = keys.SESSION_PHOTO.key(
            class_id=CLASS_ID, session_id="mon", photo_id=photo_id, name=keys.RESULT
        )
        store.put(key, _photo(photo_id, "ada").to_json_bytes())


def test_a_listed_document_is_read_once_until_it_is_written_again() -> None:
    store = CountingStore()
    _stored_session(store)
    records = Repositories(store, PendingCleanup())
    [folder] = records.sessions.folders(CLASS_ID)
    assert records.sessions.doc_of(folder) is not None
    assert [p.id for p in records.session_photos.results(folder)] == ["p1", "p2"]
    assert len(store.gets) == 3
    store.gets.clear()
    [folder] = records.sessions.folders(CLASS_ID)
    assert records.sessions.doc_of(folder) is not None
    assert len(records.session_photos.results(folder)) == 2
    assert store.gets == []  # every document from the cache
    # An erasure rewrites a photo's result: the new version is read, the other stays cached.
    rewritten = keys.SESSION_PHOTO.key(
        class_id=CLASS_ID, session_id="mon", photo_id="p1", name=keys.RESULT
    )
    store.put(rewritten, _photo("p1", None).to_json_bytes())
    [folder] = records.sessions.folders(CLASS_ID)
    results = records.session_photos.results(folder)
    assert [face.student_id for p in results for face in p.faces] == [None, "ada"]
    assert store.gets == [rewritten]


def test_a_replica_sees_what_another_wrote() -> None:
    store = MemoryStore()
    _stored_session(store)
    first, second = Repositories(store, PendingCleanup()), Repositories(store, PendingCleanup())
    for records in (first, second):
        [folder] = records.sessions.folders(CLASS_ID)
        assert len(records.session_photos.results(folder)) == 2
    key = keys.SESSION_PHOTO.key(
        class_id=CLASS_ID, session_id="mon", photo_id="p1", name=keys.RESULT
    )
    store.put(key, _photo("p1", "bob").to_json_bytes())  # written through "second"'s store
    [folder] = first.sessions.folders(CLASS_ID)
    assert [p.faces[0].student_id for p in first.session_photos.results(folder)] == ["bob", "ada"]


def test_the_cache_keeps_to_its_budget() -> None:
    cache = DocumentCache(budget_bytes=100)
    for number in range(10):
        cache.put(f"k{number}", "t", number, size=30)
    assert len(cache) == 3  # the newest three fit
    assert cache.get("k9", "t") == 9 and cache.get("k0", "t") is None
    assert cache.get("k9", "other tag") is None
    cache.put("big", "t", "too big", size=101)
    assert cache.get("big", "t") is None
