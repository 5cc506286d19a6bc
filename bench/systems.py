"""The systems measured side by side, behind one small interface.

* **Rollcall**, in two settings measured from the same computation:

  - *fused* (the default, ``PipelineConfig()``): MTCNN, then FaceNet CASIA-WebFace (margin crop,
    crop and mirror averaged, 512-D) and dlib's ResNet (its 5-point chip of the MTCNN box, 128-D),
    their cosines fused on FaceNet's scale by ``ml.fusion``;
  - *FaceNet alone* (``PipelineConfig(embedders=("facenet",))``, the previous default).

  Each photo is embedded once by every model of the fused pipeline; a row holds the models'
  embeddings side by side (FaceNet's 512 columns, then dlib's 128) and each setting reads the
  columns of its models (:func:`split_models`), so FaceNet alone is exactly the fused run's FaceNet
  part.
* **face_recognition** (dlib): ``face_locations(img, model="hog")`` (upsample 1, its default), then
  ``face_encodings`` with its defaults (5-point landmarks, ``num_jitters=1``); 128-D encodings
  compared by euclidean distance, a match at ``distance <= 0.6`` (``compare_faces``).

LFW policy, the same for both (see :func:`embed_images`): the face nearest the image centre is used
when several are found; when none is found the image is embedded from a fixed central box
(:data:`CENTRAL_BOX`) and flagged, so that each evaluation can either score it as a failure or use
the fallback, never silently drop it.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from bench.common import unit_rows
from ml.dlib_embedder import DLIB_EMBEDDING_DIM
from ml.embedder import EMBEDDING_DIM
from ml.eval.lfw import central_face
from ml.eval.photos import load_rgb
from ml.types import DetectedFace, RGBImage

if TYPE_CHECKING:
    from ml.config import EmbedderName, PipelineConfig
    from ml.eval.oneshot import EmbeddingCache
    from ml.pipeline import FacePipeline

logger = logging.getLogger(__name__)

CENTRAL_BOX = (0.3, 0.3, 0.7, 0.7)
"""Fallback face box as fractions of the image (x1, y1, x2, y2): LFW images are centred on the
labelled face, which is about 0.4 of the 250 px image wide (both detectors' median box)."""

FACE_RECOGNITION_TOLERANCE = 0.6
"""face_recognition's default ``compare_faces`` tolerance (euclidean distance)."""

_NO_LANDMARKS = np.zeros((5, 2), np.float32)

MODEL_DIMS = {"facenet": EMBEDDING_DIM, "dlib": DLIB_EMBEDDING_DIM}
"""Embedding width of each model of the pipeline."""
FACENET_ALONE = ("facenet",)
REGISTRATION_VERSION = 2
"""Part of the registration caches' key: bump it when ``ml`` changes what a registration embeds
(2: dlib registers its chip and the chip's mirror, ``FacePipeline.secondary_views``)."""
MODEL_LABELS = {"facenet": "FaceNet", "dlib": "dlib"}


def default_models() -> tuple[str, ...]:
    """The embedders of the default pipeline (``PipelineConfig().embedders``)."""
    from ml.config import PipelineConfig

    return tuple(PipelineConfig().embedders)


def embedder_names(models: Sequence[str]) -> tuple[EmbedderName, ...]:
    """``models`` as ``PipelineConfig.embedders`` (which validates them)."""
    return cast("tuple[EmbedderName, ...]", tuple(models))


def variant_name(models: Sequence[str]) -> str:
    """``rollcall`` for the default models (the system every comparison is about), else
    ``rollcall_<models>`` (``rollcall_facenet``: FaceNet alone)."""
    return "rollcall" if tuple(models) == default_models() else "rollcall_" + "_".join(models)


def variant_label(models: Sequence[str]) -> str:
    names = " + ".join(MODEL_LABELS.get(m, m) for m in models)
    if len(models) == 1:
        names += " alone"
    else:
        names = "fused " + names
    return f"Rollcall {names}" + (" (default)" if tuple(models) == default_models() else "")


def split_models(
    rows: npt.NDArray[np.float32], layout: Sequence[str], models: Sequence[str] | None = None
) -> dict[str, npt.NDArray[np.float32]]:
    """The columns of each model in ``models`` (default: all of ``layout``) of rows laid out as
    ``layout`` (the models' embeddings side by side, in that order)."""
    widths = [MODEL_DIMS[m] for m in layout]
    if rows.shape[-1] != sum(widths):
        raise ValueError(f"rows of width {rows.shape[-1]} do not hold models {list(layout)}")
    starts = np.cumsum([0, *widths])
    blocks = {m: rows[..., starts[i] : starts[i + 1]] for i, m in enumerate(layout)}
    wanted = layout if models is None else models
    return {m: blocks[m] for m in wanted}


def join_models(
    by_model: Mapping[str, npt.NDArray[np.float32]], layout: Sequence[str]
) -> npt.NDArray[np.float32]:
    """The inverse of :func:`split_models`."""
    return np.concatenate([np.asarray(by_model[m], np.float32) for m in layout], axis=-1)


def central_box_face(shape: tuple[int, ...]) -> DetectedFace:
    height, width = shape[:2]
    x1, y1, x2, y2 = CENTRAL_BOX
    return DetectedFace(
        box=(x1 * width, y1 * height, x2 * width, y2 * height), score=0.0, landmarks=_NO_LANDMARKS
    )


class FaceSystem(Protocol):
    """What the sections need from a system."""

    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str: ...

    metric: str
    """``cosine`` (higher is more alike) or ``euclidean`` (lower is more alike)."""
    models: tuple[str, ...]
    """The models whose embeddings a row holds side by side (empty: one embedding, no fusion)."""

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
    """A Rollcall pipeline with ``models`` (default: the default pipeline's); the pipeline is built
    lazily (model loading takes seconds). :meth:`variant` shares the loaded models."""

    metric = "cosine"

    def __init__(
        self, pipeline: FacePipeline | None = None, models: Sequence[str] | None = None
    ) -> None:
        self._pipeline = pipeline
        if models is None:
            models = pipeline.models if pipeline is not None else default_models()
        self.models: tuple[str, ...] = tuple(models)
        if pipeline is not None and pipeline.models != self.models:
            raise ValueError(f"pipeline runs {pipeline.models}, not {self.models}")

    @property
    def name(self) -> str:
        return variant_name(self.models)

    @property
    def label(self) -> str:
        return variant_label(self.models)

    def _config(self) -> PipelineConfig:
        from ml.config import PipelineConfig

        if self._pipeline is not None:
            return self._pipeline.config
        return PipelineConfig(embedders=embedder_names(self.models))

    @property
    def pipeline(self) -> FacePipeline:
        if self._pipeline is None:
            from ml.factory import build_pipeline

            self._pipeline = build_pipeline(self._config())
        return self._pipeline

    def variant(self, models: Sequence[str]) -> RollcallSystem:
        """The same loaded models, deciding with ``models`` only (e.g. FaceNet alone)."""
        config = dataclasses.replace(self.pipeline.config, embedders=embedder_names(models))
        return RollcallSystem(self.pipeline.with_config(config), models)

    @property
    def default_threshold(self) -> float:
        """The configured threshold, else the one ``ml.fusion`` calibrated for these models in a
        class of ``ml.fusion.REFERENCE_CLASS_SIZE`` without other classes (the decisions apply
        :meth:`default_threshold_for` their class)."""
        from ml.fusion import default_unknown_threshold

        configured = self._config().unknown_threshold
        return default_unknown_threshold(self.models) if configured is None else configured

    @property
    def calibrated(self) -> bool:
        """Whether the default threshold depends on the class and the school (``ml.fusion``)."""
        from ml.fusion import OPEN_SET_CALIBRATIONS

        return (
            self._config().unknown_threshold is None
            and frozenset(self.models) in OPEN_SET_CALIBRATIONS
        )

    def default_threshold_for(self, class_size: int, cohort_size: int = 0) -> float:
        """The threshold a decision in a class of ``class_size`` students with ``cohort_size``
        other students of the school applies: the configured one, else ``ml.fusion``'s."""
        from ml.fusion import open_set_threshold

        configured = self._config().unknown_threshold
        if configured is not None:
            return configured
        return open_set_threshold(self.models, class_size=class_size, cohort_size=cohort_size)

    def config(self) -> dict[str, Any]:
        cfg = self._config()
        result: dict[str, Any] = {
            "detector": cfg.detector,
            "alignment": cfg.alignment,
            "segmentation": cfg.segmentation,
            "min_face_size": cfg.min_face_size,
            "n_views": cfg.n_views,
            "seed": cfg.seed,
            "embedder_weights": str(cfg.embedder_weights),
            # FaceNet alone keeps the key it always had (FaceNet's crop and mirror averaged); the
            # fused rows average every model's crop with its mirror since 2026-12-06, and hold
            # the crops alone too (``ImageEmbeddings.plain``).
            "mirror": True if self.models == FACENET_ALONE else list(self.models),
        }
        if self.models != FACENET_ALONE:
            from ml.dlib_embedder import DLIB_CHIP_PADDING, DLIB_CHIP_SIZE

            result["embedders"] = list(self.models)
            result["dlib_chip"] = [DLIB_CHIP_SIZE, DLIB_CHIP_PADDING]
        return result

    def registration_config(self) -> dict[str, Any]:
        """The key of registration caches: :meth:`config` and what a registration embeds."""
        return {**self.config(), "registration_version": REGISTRATION_VERSION}

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        return self.pipeline.detect(image)

    def embed_by_model(
        self, image: RGBImage, faces: Sequence[DetectedFace]
    ) -> dict[str, npt.NDArray[np.float32]]:
        """Each model's embeddings of ``faces``, every crop averaged with its mirror image (what
        ``FacePipeline.recognise`` matches for a face it is unsure of; its decisions on the other
        faces are the same, see ``PipelineConfig.mirror_band``)."""
        return self.pipeline.embed_faces_by_model(image, faces, mirrored=True)

    def embed(self, image: RGBImage, faces: Sequence[DetectedFace]) -> npt.NDArray[np.float32]:
        """One row per face: the models' embeddings side by side (:func:`split_models`)."""
        return join_models(self.embed_by_model(image, faces), self.models)

    def embed_many(self, items: Sequence[tuple[RGBImage, DetectedFace]]) -> npt.NDArray[np.float32]:
        return self.embed_many_both(items)[0]

    def embed_many_both(
        self, items: Sequence[tuple[RGBImage, DetectedFace]]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """One row per face, the models side by side: every crop averaged with its mirror image,
        and the crops alone (the service's first pass, ``PipelineConfig.mirror_band``)."""
        pipeline = self.pipeline
        averaged: dict[str, npt.NDArray[np.float32]] = {}
        plain: dict[str, npt.NDArray[np.float32]] = {}
        for model in self.models:
            if model == FACENET_ALONE[0]:
                crops = [pipeline.crop(image, face) for image, face in items]
            else:
                cropper = next(m.cropper for m in pipeline.secondary if m.name == model)
                crops = [cropper.crop(image, face) for image, face in items]
            mirrors = [np.ascontiguousarray(crop[:, ::-1]) for crop in crops]
            both = pipeline.embed_model_crops(model, [*crops, *mirrors], mirrored=False)
            plain[model] = both[: len(crops)]
            averaged[model] = unit_rows(both[: len(crops)] + both[len(crops) :])
        return join_models(averaged, self.models), join_models(plain, self.models)

    def enrol_views(
        self, image: RGBImage, face: DetectedFace
    ) -> dict[str, npt.NDArray[np.float32]]:
        """What ``FacePipeline.enrol`` embeds, for a given face: the crop's augmented FaceNet
        views, and each secondary model's registration embeddings (``secondary_views``)."""
        from ml.augment import augment_views

        pipeline = self.pipeline
        crop = pipeline.crop(image, face)
        views = augment_views(crop, n_views=pipeline.config.n_views, seed=pipeline.config.seed)
        return {"facenet": pipeline.embedder.embed(views), **pipeline.secondary_views(image, face)}


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
    label = "face_recognition"
    metric = "euclidean"
    models: tuple[str, ...] = ()
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
    models: tuple[str, ...] = ()
    """The models whose embeddings a row holds side by side (empty: one embedding)."""
    plain: npt.NDArray[np.float32] | None = None
    """Rollcall: the same rows embedded from the crops alone, without their mirror images."""

    def row(self, path: str) -> int:
        return self.paths.index(path)

    def by_model(self, indices: Sequence[int] | None = None) -> dict[str, npt.NDArray[np.float32]]:
        """Each model's unit embeddings of the rows ``indices`` (all rows by default); ``""`` is
        the whole row when the rows hold one embedding."""
        rows = self.embeddings if indices is None else self.embeddings[list(indices)]
        if not self.models:
            return {"": unit_rows(rows)}
        return {m: unit_rows(v) for m, v in split_models(rows, self.models).items()}

    def select(self, models: Sequence[str]) -> ImageEmbeddings:
        """The same photos seen by ``models`` only (a subset of :attr:`models`)."""
        parts = split_models(self.embeddings, self.models, models)
        plain = (
            join_models(split_models(self.plain, self.models, models), models)
            if self.plain is not None
            else None
        )
        return dataclasses.replace(
            self, embeddings=join_models(parts, models), models=tuple(models), plain=plain
        )

    def plain_by_model(self, indices: Sequence[int]) -> dict[str, npt.NDArray[np.float32]]:
        """Each model's unit embeddings of the crops alone (no mirror) of the rows ``indices``."""
        if self.plain is None:
            raise ValueError("these embeddings hold no crops-alone rows")
        rows = self.plain[list(indices)]
        return {m: unit_rows(v) for m, v in split_models(rows, self.models).items()}

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
    both = isinstance(system, RollcallSystem)
    missing = [
        p
        for p in relative_paths
        if cache.get("emb:" + p) is None or (both and cache.get("plain:" + p) is None)
    ]
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
        items = [(image, face) for _, image, face, _ in pending]
        if isinstance(system, RollcallSystem):
            rows, plain = system.embed_many_both(items)
        else:
            rows, plain = system.embed_many(items), None
        for k, (path, _, _, count) in enumerate(pending):
            cache.put("emb:" + path, rows[k].astype(np.float32))
            if plain is not None:
                cache.put("plain:" + path, plain[k].astype(np.float32))
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
    plain_rows = (
        np.stack([np.asarray(cache.get("plain:" + p)) for p in relative_paths]).astype(np.float32)
        if both
        else None
    )
    found = np.array(
        [int(np.asarray(cache.get("faces:" + p))[0]) for p in relative_paths], np.int32
    )
    return ImageEmbeddings(
        tuple(relative_paths),
        embeddings.astype(np.float32),
        found,
        len(missing),
        time.perf_counter() - started,
        tuple(system.models),
        plain_rows,
    )
