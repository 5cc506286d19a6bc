"""Storage-backed domain logic with hand-made embeddings: gallery cache and head store/trainer.

No face model runs here: students are written as the enrolment code writes them (``student.json``
plus one ``.npy`` per photo), with clustered random embeddings. The head is trained by the real
``ml.head`` code through a :class:`FacePipeline` whose detector and embedder are never called.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from app.core.ids import utc_now
from app.records import documents, keys
from app.records.heads import HeadStore
from app.services.context import Context
from app.services.recognition.gallery import GalleryCache
from app.services.recognition.heads import usable_head
from app.settings import Settings
from app.storage import ObjectStore
from ml.config import PipelineConfig
from ml.head import ProjectionHead
from ml.matching import Gallery
from ml.pipeline import FacePipeline
from ml.types import DetectedFace, Embeddings, RGBImage

CLASS_ID = "physics"
DIM = 512


class _UnusedModel:
    """Detector and embedder stand-in: these tests only exercise storage and head training."""

    dim = DIM
    input_size = 160

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        raise AssertionError("no detection in these tests")

    def embed(self, crops: Sequence[RGBImage]) -> Embeddings:
        raise AssertionError("no embedding in these tests")


class CountingPipeline(FacePipeline):
    """The real head training, counted."""

    def __init__(self, config: PipelineConfig | None = None):
        super().__init__(config or PipelineConfig(), _UnusedModel(), _UnusedModel())
        self.trainings = 0
        self.release = threading.Event()
        self.release.set()

    def train_head(
        self, gallery: Gallery, previous: ProjectionHead | None = None
    ) -> ProjectionHead | None:
        self.release.wait(timeout=30)
        self.trainings += 1
        return super().train_head(gallery, previous)


def student_views(seed: int, n_photos: int = 1, n_views: int = 4) -> list[Embeddings]:
    """Views of ``n_photos`` photos of one synthetic person: a random centre plus noise."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=DIM)
    photos = []
    for _ in range(n_photos):
        views = centre + 0.6 * rng.normal(size=(n_views, DIM))
        photos.append((views / np.linalg.norm(views, axis=1, keepdims=True)).astype(np.float32))
    return photos


def put_student(store: ObjectStore, student_id: str, seed: int, n_photos: int = 1) -> list[str]:
    doc = documents.StudentDoc(id=student_id, name=student_id.title(), created_at=utc_now())
    store.put(
        keys.STUDENT.key(class_id=CLASS_ID, student_id=student_id),
        doc.to_json_bytes(),
        if_absent=True,
    )
    listed = []
    for index, views in enumerate(student_views(seed, n_photos)):
        key = keys.embedding_key(CLASS_ID, student_id, f"p{index}")
        store.put(key, documents.embeddings_to_bytes(views))
        listed.append(key)
    return listed


@pytest.fixture
def store(object_store: ObjectStore) -> ObjectStore:
    doc = documents.ClassDoc(id=CLASS_ID, name="Physics", created_at=utc_now())
    object_store.put(keys.CLASS.key(class_id=CLASS_ID), doc.to_json_bytes())
    return object_store


def test_gallery_follows_the_bucket_across_workers(store: ObjectStore) -> None:
    worker_a, worker_b = GalleryCache(store), GalleryCache(store)
    assert worker_a.get(CLASS_ID).student_ids == ()
    put_student(store, "ada", seed=1)
    put_student(store, "bob", seed=2, n_photos=2)
    first = worker_a.get(CLASS_ID)
    assert first.student_ids == ("ada", "bob")
    assert first.views["bob"].shape == (8, DIM)
    assert worker_a.get(CLASS_ID) is first  # unchanged bucket: the cached snapshot

    # Another worker enrols a student: this worker's next lookup sees them.
    put_student(store, "cyd", seed=3)
    assert worker_b.get(CLASS_ID).student_ids == ("ada", "bob", "cyd")
    second = worker_a.get(CLASS_ID)
    assert second.student_ids == ("ada", "bob", "cyd")
    assert second.signature != first.signature

    # Deleting student.json takes a student out at once, before the rest of their objects go.
    store.delete(keys.STUDENT.key(class_id=CLASS_ID, student_id="bob"))
    assert worker_a.get(CLASS_ID).student_ids == ("ada", "cyd")
    assert worker_b.get(CLASS_ID).student_ids == ("ada", "cyd")


def test_gallery_ignores_embeddings_of_a_student_without_record(store: ObjectStore) -> None:
    put_student(store, "ada", seed=1)
    orphan = keys.embedding_key(CLASS_ID, "ghost", "p0")
    store.put(orphan, documents.embeddings_to_bytes(student_views(9)[0]))
    snapshot = GalleryCache(store).get(CLASS_ID)
    assert snapshot.student_ids == ("ada",)
    assert orphan not in snapshot.embedding_keys


def test_gallery_matches_the_right_student(store: ObjectStore) -> None:
    for index, student in enumerate(("ada", "bob", "cyd", "dan")):
        put_student(store, student, seed=index)
    gallery = GalleryCache(store).get(CLASS_ID).gallery
    probe = student_views(2, n_views=1)[0][0]  # a fresh view of "cyd"
    best = gallery.most_similar(probe)
    assert best is not None and best[0] == "cyd"


def _current(ctx: Context) -> tuple[documents.HeadPointerDoc, ProjectionHead]:
    current = ctx.heads.current(CLASS_ID)
    assert current is not None, "no head"
    return current


def _context(store: ObjectStore, pipeline: FacePipeline) -> Context:
    return Context.build(Settings(_env_file=None), store, pipeline)


def test_head_versions_replace_each_other_and_forget_deleted_students(store: ObjectStore) -> None:
    pipeline = CountingPipeline()
    ctx = _context(store, pipeline)
    try:
        put_student(store, "ada", seed=1)
        ctx.trainer.train_now(CLASS_ID)
        assert ctx.heads.pointer(CLASS_ID) is None  # one student: no head
        assert ctx.trainer.status(CLASS_ID, ctx.galleries.get(CLASS_ID)).state == "none"

        put_student(store, "bob", seed=2)
        put_student(store, "cyd", seed=3)
        assert ctx.trainer.status(CLASS_ID, ctx.galleries.get(CLASS_ID)).state == "none"
        ctx.trainer.train_now(CLASS_ID)
        pointer, head = _current(ctx)
        assert (pointer.version, head.version) == (1, 1)
        assert head.student_ids == ("ada", "bob", "cyd")
        snapshot = ctx.galleries.get(CLASS_ID)
        assert ctx.trainer.status(CLASS_ID, snapshot).state == "ready"

        ctx.trainer.train_now(CLASS_ID)  # nothing changed: no new training
        assert pipeline.trainings == 1

        put_student(store, "dan", seed=4)
        snapshot = ctx.galleries.get(CLASS_ID)
        assert ctx.trainer.status(CLASS_ID, snapshot).state == "stale"
        # A stale head that lacks a new student is still usable (the matcher scores "dan" raw).
        assert usable_head(head, snapshot) is head
        ctx.trainer.train_now(CLASS_ID)
        pointer, head = _current(ctx)
        assert pointer.version == 2 and "dan" in head.student_ids
        # The previous version is kept (another worker may be switching to it right now).
        assert ctx.heads.versions(CLASS_ID) == [1, 2]

        # Deleting a student makes the head that knew them unusable at once ...
        store.delete_prefix(keys.STUDENT.prefix(class_id=CLASS_ID, student_id="bob"))
        snapshot = ctx.galleries.get(CLASS_ID)
        assert usable_head(head, snapshot) is None
        # ... and the next head is trained without them, from scratch, replacing every older one.
        ctx.trainer.train_now(CLASS_ID)
        pointer, head = _current(ctx)
        assert head.student_ids == ("ada", "cyd", "dan")
        assert ctx.heads.versions(CLASS_ID) == [3]
        for version in ctx.heads.versions(CLASS_ID):
            stored = ProjectionHead.from_bytes(
                store.get(keys.HEAD.key(class_id=CLASS_ID, version=version))
            )
            assert "bob" not in stored.student_ids

        # Down to one student: no head at all.
        for student in ("cyd", "dan"):
            store.delete_prefix(keys.STUDENT.prefix(class_id=CLASS_ID, student_id=student))
        ctx.trainer.train_now(CLASS_ID)
        assert store.list(keys.HEAD.prefix(class_id=CLASS_ID)) == []
    finally:
        ctx.trainer.close()


class FailingPipeline(CountingPipeline):
    """Head training that fails (out of memory, killed) once the trainer has started."""

    def train_head(
        self, gallery: Gallery, previous: ProjectionHead | None = None
    ) -> ProjectionHead | None:
        raise RuntimeError("training failed")


def test_a_head_erased_before_a_failed_training_is_never_used_again(store: ObjectStore) -> None:
    ctx = _context(store, CountingPipeline())
    try:
        for index, student in enumerate(("ada", "bob", "cyd")):
            put_student(store, student, seed=index)
        ctx.trainer.train_now(CLASS_ID)
        assert _current(ctx)[0].version == 1
        # "bob" is erased; the next training removes the head that knew him first, then fails.
        store.delete_prefix(keys.STUDENT.prefix(class_id=CLASS_ID, student_id="bob"))
        failing = _context(store, FailingPipeline())
        try:
            with pytest.raises(RuntimeError):
                failing.trainer.train_now(CLASS_ID)
        finally:
            failing.trainer.close()
        assert ctx.heads.versions(CLASS_ID) == []
        # The pointer may still name the erased version (it is the version counter): a reader
        # finds no head, and one that had it in memory may not use it (it knows bob).
        assert failing.heads.current(CLASS_ID) is None
        cached = ctx.heads.current(CLASS_ID)
        assert cached is None or usable_head(cached[1], ctx.galleries.get(CLASS_ID)) is None
        assert ctx.trainer.status(CLASS_ID, ctx.galleries.get(CLASS_ID)).state == "failed"
        # The next head takes a new number: a process holding v1 in memory cannot mistake it.
        ctx.trainer.train_now(CLASS_ID)
        pointer, head = _current(ctx)
        assert pointer.version == 2 and head.student_ids == ("ada", "cyd")
    finally:
        ctx.trainer.close()


def test_trainer_debounces_a_burst_of_changes(store: ObjectStore) -> None:
    pipeline = CountingPipeline()
    ctx = _context(store, pipeline)
    try:
        put_student(store, "ada", seed=1)
        put_student(store, "bob", seed=2)
        pipeline.release.clear()  # hold the first training while the burst arrives
        ctx.trainer.request(CLASS_ID)
        for index, student in enumerate(("cyd", "dan", "eve", "fay")):
            put_student(store, student, seed=10 + index)
            ctx.trainer.request(CLASS_ID)
        assert ctx.trainer.status(CLASS_ID, ctx.galleries.get(CLASS_ID)).state == "training"
        pipeline.release.set()
        assert ctx.trainer.wait_idle(timeout=120)
        # The first training plus one more for everything that arrived during it.
        assert pipeline.trainings == 2
        current = ctx.heads.current(CLASS_ID)
        assert current is not None
        assert current[1].student_ids == ("ada", "bob", "cyd", "dan", "eve", "fay")
        assert ctx.trainer.status(CLASS_ID, ctx.galleries.get(CLASS_ID)).state == "ready"
    finally:
        ctx.trainer.close()


def test_failed_training_is_reported(store: ObjectStore) -> None:
    class FailingPipeline(CountingPipeline):
        def train_head(
            self, gallery: Gallery, previous: ProjectionHead | None = None
        ) -> ProjectionHead | None:
            raise RuntimeError("out of memory")

    ctx = _context(store, FailingPipeline())
    try:
        put_student(store, "ada", seed=1)
        put_student(store, "bob", seed=2)
        ctx.trainer.request(CLASS_ID)
        assert ctx.trainer.wait_idle(timeout=60)
        status = ctx.trainer.status(CLASS_ID, ctx.galleries.get(CLASS_ID))
        assert status.state == "failed"
        assert status.error is not None and "out of memory" in status.error
    finally:
        ctx.trainer.close()


def test_concurrent_head_saves_get_distinct_versions(store: ObjectStore) -> None:
    put_student(store, "ada", seed=1)
    put_student(store, "bob", seed=2)
    rng = np.random.default_rng(0)
    shapes = {
        "linear.weight": (64, 512),
        "linear.bias": (64,),
        "hidden.weight": (128, 512),
        "hidden.bias": (128,),
        "residual.weight": (64, 128),
        "residual.bias": (64,),
    }
    weights = {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}
    head = ProjectionHead(weights, version=1, student_ids=("ada", "bob"))
    # Two workers saving at once (separate HeadStores on one bucket) never overwrite a version.
    stores = [HeadStore(store) for _ in range(4)]
    versions: list[int] = []
    threads = [
        threading.Thread(target=lambda s=s: versions.append(s.save(CLASS_ID, head, "sig")))
        for s in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == [1, 2, 3, 4]
    pointer = HeadStore(store).pointer(CLASS_ID)
    assert pointer is not None
    loaded = HeadStore(store).current(CLASS_ID)
    assert loaded is not None and loaded[1].version == pointer.version
