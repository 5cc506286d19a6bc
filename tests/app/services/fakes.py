"""What the service unit tests run on instead of a bucket and face models.

:class:`MemoryStore` is a complete :class:`app.storage.ObjectStore` in a dict (same key rules, same
``if_absent`` and listing semantics as the real backends); :class:`FailingStore` breaks the writes
or deletions the test picks. The pipeline is the real :class:`ml.pipeline.FacePipeline` (its head
training and matching are numpy) with a detector and an embedder that must never be called:
enrolment tests hand the services :class:`PreparedPhoto` objects built here, and recognition
returns what the test scripts (:class:`ScriptedInference`).
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from app.core.ids import new_id, utc_now
from app.records import documents
from app.services.context import Context
from app.services.enrolment import PreparedPhoto
from app.services.recognition.inference import Inference
from app.settings import Settings
from app.storage import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    StorageUnavailableError,
    normalize_prefix,
    validate_key,
)
from ml.config import PipelineConfig
from ml.head import ProjectionHead
from ml.matching import Cohort, Gallery, KnownStrangers
from ml.pipeline import (
    FaceEnrolment,
    FaceMatch,
    FacePipeline,
    FaceQuality,
    NoFaceError,
    Recognition,
)
from ml.types import DetectedFace, Embeddings, RGBImage

DIM = 512
CLASS_ID = "physics"


class MemoryStore:
    """An :class:`ObjectStore` in memory, thread-safe."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._versions: dict[str, int] = {}
        self._writes = 0
        self._lock = threading.Lock()

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        validate_key(key)
        with self._lock:
            if if_absent and key in self._objects:
                raise ObjectExistsError(key)
            self._objects[key] = bytes(data)
            self._writes += 1
            self._versions[key] = self._writes

    def get(self, key: str) -> bytes:
        with self._lock:
            if key not in self._objects:
                raise ObjectNotFoundError(key)
            return self._objects[key]

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def list(self, prefix: str) -> builtins.list[str]:
        folder = normalize_prefix(prefix)
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(folder))

    def list_versions(self, prefix: str) -> dict[str, str]:
        folder = normalize_prefix(prefix)
        with self._lock:
            return {
                key: str(self._versions[key])
                for key in sorted(self._objects)
                if key.startswith(folder)
            }

    def list_children(self, prefix: str) -> builtins.list[str]:
        folder = normalize_prefix(prefix)
        children = {k[len(folder) :].split("/", 1)[0] for k in self.list(folder)}
        return sorted(
            c for c in children if any(k.startswith(f"{folder}{c}/") for k in self._objects)
        )

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def ping(self) -> None:
        return None

    @property
    def description(self) -> str:
        return "memory"

    def keys(self) -> builtins.list[str]:
        return self.list("")


KeyTest = Callable[[str], bool]


class FailingStore(MemoryStore):
    """A :class:`MemoryStore` whose writes of ``fail_put`` keys raise ``put_error`` and whose
    deletions of ``fail_delete`` keys raise :class:`StorageUnavailableError` (the store down)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_put: KeyTest = lambda key: False
        self.put_error: Exception = OSError("disk full")
        self.fail_delete: KeyTest = lambda key: False

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        if self.fail_put(key):
            raise self.put_error
        super().put(key, data, content_type=content_type, if_absent=if_absent)

    def delete(self, key: str) -> None:
        if self.fail_delete(key):
            raise StorageUnavailableError(
                f"cannot delete {key}", reason="storage server unreachable"
            )
        super().delete(key)

    def heal(self) -> None:
        self.fail_put = lambda key: False
        self.fail_delete = lambda key: False


class _UnusedModel:
    """Detector and embedder stand-in: the services under test never run them."""

    dim = DIM
    input_size = 160

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        raise AssertionError("no detection in service unit tests")

    def embed(self, crops: Sequence[RGBImage]) -> Embeddings:
        raise AssertionError("no embedding in service unit tests")


class ScriptedInference(Inference):
    """Recognition answers ``script``: the student ids of the faces of the next photo
    (``None``: an unknown face). Enrolment (an import's photos) finds one face on any photo but
    a plain one (:func:`no_face`), and gives each photo its own synthetic person."""

    def __init__(self, pipeline: FacePipeline) -> None:
        super().__init__(pipeline, concurrency=2)
        self.script: list[str | None] = []
        self.impostors: tuple[Cohort | None, KnownStrangers | None] = (None, None)
        """The school's other students and the known strangers the last photo was matched with."""
        self.embed = False
        """Give each named face an embedding (its student's, from :func:`views`), as the real
        pipeline does: what a face confirmed as a sample keeps."""

    def enrol(
        self, image: RGBImage, face_choice: object = None, *, background: bool = False
    ) -> FaceEnrolment:
        if int(np.ptp(image)) == 0:
            raise NoFaceError("no face found in the photo")
        return FaceEnrolment(face(), QUALITY, image[:20, :20], views(int(image.sum()) % 9973))

    def embed_face(self, image: RGBImage, face: DetectedFace) -> dict[str, Embeddings]:
        """A teacher named a face: the embedding of a new synthetic person."""
        return {"facenet": views(int(face.box[0]) + 1000)[:1]}

    def recognise(
        self,
        image: RGBImage,
        gallery: Gallery,
        head: ProjectionHead | None,
        *,
        cohort: Cohort | None = None,
        strangers: KnownStrangers | None = None,
    ) -> Recognition:
        self.impostors = (cohort, strangers)
        faces = tuple(
            FaceMatch(
                face=face(10.0 * index),
                student_id=student_id,
                similarity=0.8 if student_id else 0.2,
                head_similarity=None,
                candidate_id=student_id,
                score=0.7 if student_id else 0.1,
                model_similarities={"facenet": 0.8 if student_id else 0.2},
                embeddings=(
                    {"facenet": views(sum(map(ord, student_id)) + index)[0]}
                    if self.embed and student_id
                    else {}
                ),
            )
            for index, student_id in enumerate(self.script)
        )
        return Recognition(faces, unknown_threshold=0.5)


def face(offset: float = 0.0) -> DetectedFace:
    return DetectedFace(
        box=(4.0 + offset, 4.0, 24.0 + offset, 28.0),
        score=0.99,
        landmarks=np.zeros((5, 2), np.float32),
    )


def image(seed: int = 0) -> RGBImage:
    rng = np.random.default_rng(seed)
    pixels: RGBImage = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    return pixels


def views(seed: int, n_views: int = 2) -> Embeddings:
    """Unit vectors around a centre chosen by ``seed``: one synthetic person."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=DIM)
    raw = centre + 0.3 * rng.normal(size=(n_views, DIM))
    result: Embeddings = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    return result


QUALITY = FaceQuality(
    face_size=40.0,
    sharpness=150.0,
    yaw=1.0,
    pitch=2.0,
    roll=0.5,
    detection_score=0.99,
    warnings=(),
)


def no_face(size: int = 32) -> RGBImage:
    """A plain grey photo: enrolment finds no face on it."""
    return np.full((size, size, 3), 128, dtype=np.uint8)


def prepared(seed: int, filename: str | None = None) -> PreparedPhoto:
    """A registration photo as :func:`app.services.enrolment.prepare_photos` returns it."""
    enrolment = FaceEnrolment(face(), QUALITY, image(seed)[:20, :20], views(seed))
    return PreparedPhoto(new_id(), filename, image(seed), enrolment)


@contextmanager
def service_context(store: ObjectStore | None = None) -> Iterator[Context]:
    """A :class:`Context` on ``store`` (a new :class:`MemoryStore` by default) with the class
    :data:`CLASS_ID`; background workers are closed at exit."""
    pipeline = FacePipeline(PipelineConfig(), _UnusedModel(), _UnusedModel())
    ctx = Context.build(Settings(_env_file=None), store or MemoryStore(), pipeline)
    ctx.inference = ScriptedInference(pipeline)
    doc = documents.ClassDoc(id=CLASS_ID, name="Physics", created_at=utc_now())
    assert ctx.records.classes.create(doc)
    try:
        yield ctx
    finally:
        ctx.close()


def scripted(ctx: Context) -> ScriptedInference:
    assert isinstance(ctx.inference, ScriptedInference)
    return ctx.inference
