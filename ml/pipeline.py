"""The face pipeline: detect, then enrich each face (align, segment, embed), then match.

``FacePipeline`` is what the service talks to. It holds one instance of every model, built by
:func:`ml.factory.build_pipeline`, and is safe to call from several threads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ml.align import crop_face
from ml.augment import augment_views
from ml.config import PipelineConfig
from ml.embedder import embed_plain_and_mirrored
from ml.head import HeadTrainingConfig, ProjectionHead, train_head
from ml.matching import Gallery, match_faces
from ml.protocols import FaceDetector, FaceEmbedder, HeadSegmenter
from ml.segmentation import apply_head_mask
from ml.types import DetectedFace, Embeddings, RGBImage, check_rgb_image

logger = logging.getLogger(__name__)

SECOND_FACE_RATIO = 0.5
"""At registration, another face at least this fraction of the main face's size is a second person;
smaller ones are bystanders far behind and are ignored."""
SMALL_FACE_PX = 60.0
BLURRY_SHARPNESS = 40.0
TURNED_DEGREES = 30.0


class NoFaceError(ValueError):
    """The registration photo contains no face."""


class MultipleFacesError(ValueError):
    """The registration photo contains more than one face."""

    def __init__(self, count: int):
        super().__init__(
            f"the photo shows {count} faces; a registration photo must show exactly one person"
        )
        self.count = count


class TooManyFacesError(ValueError):
    """A photo to recognise holds more faces than the caller allows (embedding is per face, so
    a mosaic of thousands of faces would otherwise take minutes)."""

    def __init__(self, count: int, limit: int):
        super().__init__(f"the photo shows {count} faces; at most {limit} are recognised per photo")
        self.count = count
        self.limit = limit


@dataclass(frozen=True)
class FaceQuality:
    face_size: float
    sharpness: float
    yaw: float
    pitch: float
    roll: float
    detection_score: float
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "face_size": round(self.face_size, 1),
            "sharpness": round(self.sharpness, 1),
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 1),
            "roll": round(self.roll, 1),
            "detection_score": round(self.detection_score, 4),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Enrollment:
    face: DetectedFace
    quality: FaceQuality
    crop: RGBImage = field(repr=False)
    views: Embeddings = field(repr=False)
    """``(n_views, 512)`` raw embeddings of the augmented views; row 0 is the crop itself."""


@dataclass(frozen=True)
class FaceMatch:
    face: DetectedFace
    student_id: str | None
    similarity: float
    head_similarity: float | None
    candidate_id: str | None


@dataclass(frozen=True)
class Recognition:
    faces: tuple[FaceMatch, ...]
    unknown_threshold: float


def estimate_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Rough (yaw, pitch, roll) in degrees from the five landmarks; good enough to flag a turned head."""
    left_eye, right_eye, nose, mouth_left, mouth_right = (landmarks[i] for i in range(5))
    eye_vec = right_eye - left_eye
    roll = math.degrees(math.atan2(float(eye_vec[1]), float(eye_vec[0])))
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (mouth_left + mouth_right) / 2
    eye_dist = max(float(np.linalg.norm(eye_vec)), 1e-6)
    # The nose sits half-way between the eyes on a frontal face; its sideways offset relative to
    # the eye distance maps to yaw (arcsin of twice the relative offset, clipped).
    axis = eye_vec / eye_dist
    offset = float(np.dot(nose - eye_mid, axis)) / eye_dist
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * offset))))
    # Frontal faces put the nose tip ~45% of the way from eyes to mouth; more is head down.
    normal = np.array([-axis[1], axis[0]])
    eye_to_mouth = max(float(np.dot(mouth_mid - eye_mid, normal)), 1e-6)
    ratio = float(np.dot(nose - eye_mid, normal)) / eye_to_mouth
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * (ratio - 0.45)))))
    return yaw, pitch, roll


def sharpness(crop: RGBImage) -> float:
    """Variance of the Laplacian of the aligned crop: low means blurred."""
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def assess_quality(face: DetectedFace, crop: RGBImage) -> FaceQuality:
    yaw, pitch, roll = estimate_pose(face.landmarks)
    sharp = sharpness(crop)
    warnings = []
    if face.size < SMALL_FACE_PX:
        warnings.append(f"face is small ({face.size:.0f} px); use a closer photo")
    if sharp < BLURRY_SHARPNESS:
        warnings.append(f"photo looks blurred (sharpness {sharp:.0f})")
    if abs(yaw) > TURNED_DEGREES or abs(pitch) > TURNED_DEGREES:
        warnings.append("head is turned; a frontal photo matches better")
    return FaceQuality(face.size, sharp, yaw, pitch, roll, face.score, tuple(warnings))


class FacePipeline:
    """Detection, alignment, optional head segmentation, augmentation, embedding and matching."""

    def __init__(
        self,
        config: PipelineConfig,
        detector: FaceDetector,
        embedder: FaceEmbedder,
        segmenter: HeadSegmenter | None = None,
    ):
        if config.segmentation and segmenter is None:
            raise ValueError("segmentation is enabled but no segmenter was given")
        self.config = config
        self.detector = detector
        self.embedder = embedder
        self.segmenter = segmenter

    # -- stages -------------------------------------------------------------------------------

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        return self.detector.detect(check_rgb_image(image))

    def crop(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        """The aligned crop that goes into the embedder (background masked when segmentation is on)."""
        if self.segmenter is not None and self.config.segmentation:
            image = apply_head_mask(image, self.segmenter.segment(image, face))
        return crop_face(image, face, self.config.alignment, size=self.embedder.input_size)

    def embed_faces(self, image: RGBImage, faces: Sequence[DetectedFace]) -> Embeddings:
        """One embedding per face: the crop and its mirror image averaged (more stable than either)."""
        crops = [self.crop(image, face) for face in faces]
        return self.embed_crops(crops)

    def embed_crops(self, crops: Sequence[RGBImage]) -> Embeddings:
        return embed_plain_and_mirrored(self.embedder, crops)[1]

    # -- registration ---------------------------------------------------------------------------

    def registration_face(self, image: RGBImage) -> DetectedFace:
        faces = self.detect(image)
        if not faces:
            raise NoFaceError("no face found in the photo")
        main = max(faces, key=lambda f: f.size)
        others = [f for f in faces if f is not main and f.size >= SECOND_FACE_RATIO * main.size]
        if others:
            raise MultipleFacesError(1 + len(others))
        return main

    def enroll(self, image: RGBImage) -> Enrollment:
        """Embed one registration photo into ``n_views`` augmented views of its single face."""
        image = check_rgb_image(image)
        face = self.registration_face(image)
        crop = self.crop(image, face)
        views = augment_views(crop, n_views=self.config.n_views, seed=self.config.seed)
        embeddings = self.embedder.embed(views)
        return Enrollment(face, assess_quality(face, crop), crop, embeddings)

    def train_head(
        self, gallery: Gallery, previous: ProjectionHead | None = None
    ) -> ProjectionHead | None:
        views = dict(zip(gallery.student_ids, gallery.views, strict=True))
        return train_head(
            views, previous=previous, config=HeadTrainingConfig(seed=self.config.seed)
        )

    # -- attendance ------------------------------------------------------------------------------

    def recognize(
        self,
        image: RGBImage,
        gallery: Gallery,
        head: ProjectionHead | None = None,
        *,
        max_faces: int | None = None,
    ) -> Recognition:
        """Match every face; raises :class:`TooManyFacesError` before embedding anything when
        more than ``max_faces`` faces are found."""
        image = check_rgb_image(image)
        faces = self.detect(image)
        if max_faces is not None and len(faces) > max_faces:
            raise TooManyFacesError(len(faces), max_faces)
        embeddings = self.embed_faces(image, faces)
        decisions, threshold = match_faces(
            embeddings,
            gallery,
            threshold=self.config.unknown_threshold,
            head=head if self.config.use_head else None,
        )
        matches = tuple(
            FaceMatch(face, d.student_id, d.similarity, d.head_similarity, d.candidate_id)
            for face, d in zip(faces, decisions, strict=True)
        )
        return Recognition(matches, threshold)
