"""The two systems measured side by side, behind one small interface.

* **Rollcall**: the default pipeline (``PipelineConfig()``): MTCNN, margin crop, FaceNet
  CASIA-WebFace, crop and mirror averaged; unit 512-D embeddings compared by cosine.
* **face_recognition** (dlib): ``face_locations(img, model="hog")`` (upsample 1, its default), then
  ``face_encodings`` with its defaults (5-point landmarks, ``num_jitters=1``); 128-D encodings
  compared by euclidean distance, a match at ``distance <= 0.6`` (``compare_faces``).

LFW policy, the same for both (see :func:`embed_images`): the face nearest the image centre is used
when several are found; when none is found the image is embedded from a fixed central box
(:data:`CENTRAL_BOX`) and flagged, so that each evaluation can either score it as a failure or use
the fallback, never silently drop it.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from ml.eval.lfw import central_face
from ml.eval.photos import load_rgb
from ml.types import DetectedFace, RGBImage

if TYPE_CHECKING:
    from ml.eval.oneshot import EmbeddingCache
    from ml.pipeline import FacePipeline

logger = logging.getLogger(__name__)

CENTRAL_BOX = (0.3, 0.3, 0.7, 0.7)
"""Fallback face box as fractions of the image (x1, y1, x2, y2): LFW images are centred on the
labelled face, which is about 0.4 of the 250 px image wide (both detectors' median box)."""

FACE_RECOGNITION_TOLERANCE = 0.6
"""face_recognition's default ``compare_faces`` tolerance (euclidean distance)."""

_NO_LANDMARKS = np.zeros((5, 2), np.float32)


def central_box_face(shape: tuple[int, ...]) -> DetectedFace:
    height, width = shape[:2]
    x1, y1, x2, y2 = CENTRAL_BOX
    return DetectedFace(
        box=(x1 * width, y1 * height, x2 * width, y2 * height), score=0.0, landmarks=_NO_LANDMARKS
    )


class FaceSystem(Protocol):
    """What the sections need from a system."""

    name: str
    metric: str
    """``cosine`` (higher is more alike) or ``euclidean`` (lower is more alike)."""

    @property
    def default_threshold(self) -> float: ...

    def config(self) -> dict[str, Any]: ...

    def detect(self, image: RGBImage) -> list[DetectedFace]: ...

    def embed(self, image: RGBImage, faces: Sequence[DetectedFace]) -> npt.NDArray[np.float32]:
        """One row per face."""
        ...

    def embed_many(
        self, items: Sequence[tuple[RGBImage, DetectedFace]]
    ) -> npt.NDArray[np.float32]: ...


class RollcallSystem:
    """The default pipeline; ``pipeline`` is built lazily (model loading takes seconds)."""

    name = "rollcall"
    metric = "cosine"

    def __init__(self, pipeline: FacePipeline | None = None) -> None:
        self._pipeline = pipeline

    @property
    def pipeline(self) -> FacePipeline:
        if self._pipeline is None:
            from ml.config import PipelineConfig
            from ml.factory import build_pipeline

            self._pipeline = build_pipeline(PipelineConfig())
        return self._pipeline

    @property
    def default_threshold(self) -> float:
        from ml.matching import DEFAULT_UNKNOWN_THRESHOLD

        configured = self.pipeline.config.unknown_threshold
        return DEFAULT_UNKNOWN_THRESHOLD if configured is None else configured

    def config(self) -> dict[str, Any]:
        from ml.config import PipelineConfig

        cfg = self._pipeline.config if self._pipeline is not None else PipelineConfig()
        return {
            "detector": cfg.detector,
            "alignment": cfg.alignment,
            "segmentation": cfg.segmentation,
            "min_face_size": cfg.min_face_size,
            "n_views": cfg.n_views,
            "seed": cfg.seed,
            "embedder_weights": str(cfg.embedder_weights),
            "mirror": True,
        }

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        return self.pipeline.detect(image)

    def embed(self, image: RGBImage, faces: Sequence[DetectedFace]) -> npt.NDArray[np.float32]:
        return self.pipeline.embed_faces(image, faces)

    def embed_many(self, items: Sequence[tuple[RGBImage, DetectedFace]]) -> npt.NDArray[np.float32]:
        crops = [self.pipeline.crop(image, face) for image, face in items]
        return self.pipeline.embed_crops(crops)

    def enrol_views(self, image: RGBImage, face: DetectedFace) -> npt.NDArray[np.float32]:
        """What ``FacePipeline.enroll`` embeds, for a given face: the crop's augmented views."""
        from ml.augment import augment_views

        pipeline = self.pipeline
        crop = pipeline.crop(image, face)
        views = augment_views(crop, n_views=pipeline.config.n_views, seed=pipeline.config.seed)
        return pipeline.embedder.embed(views)


def face_recognition_available() -> bool:
    # Imported by name: the peer is an optional dependency group, absent when CI type-checks.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models still imports pkg_resources
        try:
            importlib.import_module("face_recognition")
        except ImportError:
            return False
    return True


class FaceRecognitionSystem:
    """face_recognition 1.x with its defaults (dlib HOG + ResNet), as a :class:`FaceSystem`."""

    name = "face_recognition"
    metric = "euclidean"
    default_threshold = FACE_RECOGNITION_TOLERANCE

    def __init__(self) -> None:
        import warnings

        with warnings.catch_warnings():
            # face_recognition_models still imports pkg_resources.
            warnings.simplefilter("ignore")
            self.api = importlib.import_module("face_recognition")
        # Its internals (dlib models, box conversion), for timing the stages one by one.
        self.internal = importlib.import_module("face_recognition.api")

    def config(self) -> dict[str, Any]:
        from importlib import metadata

        return {
            "model": "hog",
            "upsample": 1,
            "num_jitters": 1,
            "landmarks": "small",
            "face_recognition": metadata.version("face-recognition"),
            "dlib": metadata.version("dlib-bin"),
        }

    def locations(self, image: RGBImage) -> list[tuple[int, int, int, int]]:
        """``(top, right, bottom, left)`` boxes, face_recognition's own format."""
        return list(self.api.face_locations(image, model="hog"))

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        return [
            DetectedFace(
                box=(float(left), float(top), float(right), float(bottom)),
                score=1.0,
                landmarks=_NO_LANDMARKS,
            )
            for top, right, bottom, left in self.locations(image)
        ]

    @staticmethod
    def css(face: DetectedFace) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = face.box
        return round(y1), round(x2), round(y2), round(x1)

    def embed(self, image: RGBImage, faces: Sequence[DetectedFace]) -> npt.NDArray[np.float32]:
        if not faces:
            return np.zeros((0, 128), np.float32)
        encodings = self.api.face_encodings(image, [self.css(face) for face in faces])
        return np.asarray(encodings, dtype=np.float32).reshape(len(faces), 128)

    def embed_many(self, items: Sequence[tuple[RGBImage, DetectedFace]]) -> npt.NDArray[np.float32]:
        rows = [self.embed(image, [face]) for image, face in items]
        return np.concatenate(rows) if rows else np.zeros((0, 128), np.float32)


# -- per-image embeddings of LFW-style photos (one labelled face near the centre), cached ----------


@dataclass(frozen=True)
class ImageEmbeddings:
    """Embeddings of a list of photos, one row each, and how many faces the detector found."""

    paths: tuple[str, ...]
    embeddings: npt.NDArray[np.float32]
    """Central face; for photos without a face, the :data:`CENTRAL_BOX` fallback."""
    faces_found: npt.NDArray[np.int32]
    computed: int
    """How many were computed in this run (the rest came from the cache)."""
    seconds: float

    def row(self, path: str) -> int:
        return self.paths.index(path)

    def as_dict(self) -> dict[str, npt.NDArray[np.float32]]:
        return {p: self.embeddings[i] for i, p in enumerate(self.paths)}

    def found(self) -> dict[str, bool]:
        return {p: bool(self.faces_found[i] > 0) for i, p in enumerate(self.paths)}


CHUNK = 32
SAVE_EVERY = 512


def embed_images(
    system: FaceSystem, root: Path, relative_paths: Sequence[str], cache: EmbeddingCache
) -> ImageEmbeddings:
    """Embed the central face of every photo (fallback box when none is found), using ``cache``."""
    started = time.perf_counter()
    missing = [p for p in relative_paths if cache.get("emb:" + p) is None]
    logger.info(
        "%s: %d photos, %d cached, %d to compute",
        system.name,
        len(relative_paths),
        len(relative_paths) - len(missing),
        len(missing),
    )
    pending: list[tuple[str, RGBImage, DetectedFace, int]] = []

    def flush() -> None:
        if not pending:
            return
        rows = system.embed_many([(image, face) for _, image, face, _ in pending])
        for (path, _, _, count), row in zip(pending, rows, strict=True):
            cache.put("emb:" + path, row.astype(np.float32))
            cache.put("faces:" + path, np.array([count], np.float32))
        pending.clear()

    for done, path in enumerate(missing, start=1):
        image = load_rgb(root / path)
        faces = system.detect(image)
        face = central_face(faces, image.shape) or central_box_face(image.shape)
        pending.append((path, image, face, len(faces)))
        if len(pending) >= CHUNK:
            flush()
        if done % SAVE_EVERY == 0:
            flush()
            cache.save()
            elapsed = time.perf_counter() - started
            logger.info(
                "%s: %d/%d computed, %.1f photos/s", system.name, done, len(missing), done / elapsed
            )
    flush()
    cache.save()
    embeddings = np.stack([np.asarray(cache.get("emb:" + p)) for p in relative_paths])
    found = np.array(
        [int(np.asarray(cache.get("faces:" + p))[0]) for p in relative_paths], np.int32
    )
    return ImageEmbeddings(
        tuple(relative_paths),
        embeddings.astype(np.float32),
        found,
        len(missing),
        time.perf_counter() - started,
    )
