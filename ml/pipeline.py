"""The face pipeline: detect, then enrich each face (align, segment, embed), then match.

``FacePipeline`` is what the service talks to. It holds one instance of every model, built by
:func:`ml.factory.build_pipeline`, and is safe to call from several threads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ml.align import crop_face
from ml.augment import augment_views
from ml.config import PipelineConfig
from ml.detection.geometry import box_iou
from ml.embedder import embed_plain_and_mirrored
from ml.fusion import FACENET
from ml.head import HeadTrainingConfig, ProjectionHead, train_head
from ml.matching import (
    Cohort,
    Gallery,
    ImpostorKind,
    KnownStrangers,
    MatchDecision,
    l2_normalize,
    match_faces,
)
from ml.protocols import FaceCropper, FaceDetector, FaceEmbedder, HeadSegmenter
from ml.segmentation import apply_head_mask
from ml.types import DetectedFace, Embeddings, RGBImage, check_rgb_image

logger = logging.getLogger(__name__)

SECOND_FACE_RATIO = 0.5
"""At registration, another face at least this fraction of the main face's size is a second person
(the photo is refused); smaller ones are bystanders further back and are ignored, if the main face is
also the one nearest the centre (see :func:`dominant_face`)."""
# Warning limits, measured 2026-11-29 on which one-shot registrations later fail (LFW, the
# benchmark's 747 registrations and 2,606 genuine probes, fused at the default threshold: 85.6 % of
# probes named right overall). Registered from a face under 80 px: 65.9 % (13 students); sharpness
# under 40: 81.6 % (59), under 20: 60 % (4); head pitch over 30 degrees: 80.5 % (48), over 40: 71.4 %
# (10); yaw over 30: 83.8 % (63); a black-and-white photo: 55.6 % (3). LFW has no face cut by the
# border; on faces/people the whole face-api.js cast is cut at the chin and greyscale, and it is
# the cast that group photos missed before the fusion.
SMALL_FACE_PX = 80.0
BLURRY_SHARPNESS = 40.0
TURNED_DEGREES = 30.0
BORDER_CUT_FRACTION = 0.05
"""A face box closer to the photo's edge than this fraction of its own size is cut by the border:
the chin or forehead the embedders expect is missing."""
GRAYSCALE_SPREAD = 4.0
"""Mean absolute difference between colour channels (0-255) under which a photo is black and white."""

ADD_PHOTO_ADVICE = "Add another photo of this student to help recognition."


class NoFaceError(ValueError):
    """The registration photo contains no face."""


class MultipleFacesError(ValueError):
    """The registration photo contains more than one face and none is clearly the student's:
    ``faces`` are every face found, largest first (choose one with ``FacePipeline.enrol(...,
    face=...)``)."""

    def __init__(self, count: int, faces: Sequence[DetectedFace] = ()):
        super().__init__(
            f"the photo shows {count} faces; a registration photo must show exactly one person"
        )
        self.count = count
        self.faces = tuple(faces)


FaceChoice = int | tuple[float, float, float, float]
"""Which face of a registration photo is the student's: an index into the faces found, largest
first, or a box ``(x1, y1, x2, y2)`` drawn around it."""
CHOSEN_BOX_MIN_OVERLAP = 0.3
"""A box chosen by hand names the detected face it overlaps most, at this intersection over
union at least (a box drawn loosely around a head still overlaps its face by 0.4-0.6)."""


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
    grayscale: bool = False
    cut_by_border: bool = False
    ignored_faces: int = 0
    """Smaller faces in the background that were not registered."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "face_size": round(self.face_size, 1),
            "sharpness": round(self.sharpness, 1),
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 1),
            "roll": round(self.roll, 1),
            "detection_score": round(self.detection_score, 4),
            "grayscale": self.grayscale,
            "cut_by_border": self.cut_by_border,
            "ignored_faces": self.ignored_faces,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class FaceEnrolment:
    face: DetectedFace
    quality: FaceQuality
    crop: RGBImage = field(repr=False)
    views: Embeddings = field(repr=False)
    """``(n_views, 512)`` raw FaceNet embeddings of the augmented views; row 0 is the crop itself."""
    secondary_views: Mapping[str, Embeddings] = field(default_factory=dict, repr=False)
    """Per secondary model (e.g. ``dlib``), the raw embeddings of its registration views."""
    faces_found: tuple[DetectedFace, ...] = ()
    """Every face of the photo, largest first (``face`` is one of them)."""


@dataclass(frozen=True)
class FaceMatch:
    face: DetectedFace
    student_id: str | None
    similarity: float
    head_similarity: float | None
    candidate_id: str | None
    score: float = 0.0
    """What the unknown threshold is compared with (see ``ml.matching.MatchDecision``)."""
    model_similarities: Mapping[str, float] = field(default_factory=dict)
    too_small: bool = False
    """Found, but smaller than ``PipelineConfig.min_recognisable_face``: neither embedded nor
    named (``student_id`` is ``None`` and the scores are 0)."""
    runner_up_similarity: float | None = None
    """Best fused similarity with anybody else it could be (see ``ml.matching.MatchDecision``)."""
    embeddings: Mapping[str, npt.NDArray[np.float32]] = field(default_factory=dict, repr=False)
    """Each model's embedding of the face, ``(D,)`` (empty for a face too small to embed): what a
    confirmed face adds to the student's gallery (``ml.samples``)."""

    impostor_similarity: float | None = None
    """Best fused similarity with a student of another class or a known stranger (``None`` when
    neither was given; see ``ml.matching.MatchDecision``)."""
    closer_to: ImpostorKind | None = None
    """Set when a student of another class or a known stranger matches the face at least as well
    as its best student (the face is then unknown)."""

    @classmethod
    def too_small_face(cls, face: DetectedFace) -> FaceMatch:
        return cls(face, None, 0.0, None, None, too_small=True)


@dataclass(frozen=True)
class SecondaryModel:
    """An embedder fused with FaceNet, with the cropper that cuts its input from the image."""

    name: str
    cropper: FaceCropper
    embedder: FaceEmbedder


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


def is_grayscale(image: RGBImage) -> bool:
    """True for a black-and-white photo (colour channels nearly equal everywhere)."""
    sample = image[:: max(1, image.shape[0] // 128), :: max(1, image.shape[1] // 128)].astype(
        np.int16
    )
    spread = np.abs(sample[..., 0] - sample[..., 1]) + np.abs(sample[..., 1] - sample[..., 2])
    return float(spread.mean()) / 2.0 < GRAYSCALE_SPREAD


def is_cut_by_border(face: DetectedFace, shape: tuple[int, ...]) -> bool:
    """True when the face box touches (or nearly touches) an edge of the photo."""
    height, width = shape[:2]
    x1, y1, x2, y2 = face.box
    pad = BORDER_CUT_FRACTION * face.size
    return x1 < pad or y1 < pad or x2 > width - pad or y2 > height - pad


def assess_quality(
    face: DetectedFace,
    crop: RGBImage,
    image: RGBImage | None = None,
    ignored_faces: int = 0,
    *,
    chosen: bool = False,
) -> FaceQuality:
    """The registration report: measurements, and warnings in a teacher's words for what
    measurably leads to missed students later (docs/accuracy.md, "Registration photos").
    ``chosen``: the teacher pointed at the face (``FaceChoice``), it was not picked as the
    dominant one."""
    yaw, pitch, roll = estimate_pose(face.landmarks)
    sharp = sharpness(crop)
    grayscale = image is not None and is_grayscale(image)
    cut = image is not None and is_cut_by_border(face, image.shape)
    warnings = []
    if face.size < SMALL_FACE_PX:
        warnings.append(
            f"The face is small ({face.size:.0f} pixels); take the photo closer to the student."
        )
    if sharp < BLURRY_SHARPNESS:
        warnings.append("The photo looks blurred; hold the camera still and retake it.")
    if abs(yaw) > TURNED_DEGREES or abs(pitch) > TURNED_DEGREES:
        warnings.append("The head is turned; a photo facing the camera works better.")
    if grayscale:
        warnings.append("The photo is black and white; a colour photo works better.")
    if cut:
        warnings.append("The face touches the edge of the photo; leave some space around the head.")
    if warnings:
        warnings.append(ADD_PHOTO_ADVICE)
    if ignored_faces:
        people = "face" if ignored_faces == 1 else "faces"
        verb = "was" if ignored_faces == 1 else "were"
        warnings.append(
            f"{ignored_faces} other {people} on the photo {verb} ignored; the face you chose was "
            "registered."
            if chosen
            else f"{ignored_faces} smaller {people} in the background {verb} ignored; the "
            "largest face in the middle was registered."
        )
    return FaceQuality(
        face.size,
        sharp,
        yaw,
        pitch,
        roll,
        face.score,
        tuple(warnings),
        grayscale,
        cut,
        ignored_faces,
    )


def chosen_face(faces: Sequence[DetectedFace], choice: FaceChoice) -> DetectedFace:
    """The face ``choice`` names among ``faces`` (largest first); ``ValueError`` if none."""
    if isinstance(choice, int):
        if not 0 <= choice < len(faces):
            raise ValueError(f"the photo shows {len(faces)} faces; there is no face {choice}")
        return faces[choice]
    overlaps = [box_iou(face.box, choice) for face in faces]
    best = max(range(len(faces)), key=overlaps.__getitem__, default=None)
    if best is None or overlaps[best] < CHOSEN_BOX_MIN_OVERLAP:
        raise ValueError("no face found in the box given; draw it around the student's face")
    return faces[best]


def dominant_face(
    faces: Sequence[DetectedFace], shape: tuple[int, ...]
) -> tuple[DetectedFace, int]:
    """The face a registration photo is of, and how many smaller background faces were ignored.

    The largest face wins if every other face is smaller than ``SECOND_FACE_RATIO`` of it and none
    of those is nearer the photo's centre; otherwise the photo is ambiguous
    (:class:`MultipleFacesError`).
    """
    main = max(faces, key=lambda f: f.size)
    others = [f for f in faces if f is not main]
    comparable = [f for f in others if f.size >= SECOND_FACE_RATIO * main.size]
    if comparable:
        raise MultipleFacesError(1 + len(comparable), largest_first(faces))
    height, width = shape[:2]

    def off_centre(face: DetectedFace) -> float:
        x1, y1, x2, y2 = face.box
        return math.hypot((x1 + x2) / 2 - width / 2, (y1 + y2) / 2 - height / 2)

    if any(off_centre(f) < off_centre(main) for f in others):
        raise MultipleFacesError(len(faces), largest_first(faces))
    return main, len(others)


def largest_first(faces: Sequence[DetectedFace]) -> list[DetectedFace]:
    """The order in which a registration photo's faces are numbered."""
    return sorted(faces, key=lambda face: face.size, reverse=True)


VIEWS_PER_STEP = 4
"""Registration views embedded between two checkpoints of a background enrolment: about 100 ms of
FaceNet on the 2-core machine (24 ms a view), the longest a class photo waits for an import."""


class FacePipeline:
    """Detection, alignment, optional head segmentation, augmentation, embedding and matching."""

    def __init__(
        self,
        config: PipelineConfig,
        detector: FaceDetector,
        embedder: FaceEmbedder,
        segmenter: HeadSegmenter | None = None,
        secondary: Sequence[SecondaryModel] = (),
    ):
        if config.segmentation and segmenter is None:
            raise ValueError("segmentation is enabled but no segmenter was given")
        names = [model.name for model in secondary]
        if FACENET in names or len(set(names)) != len(names):
            raise ValueError(f"secondary models must be distinct and not FaceNet: {names}")
        self.config = config
        self.detector = detector
        self.embedder = embedder
        self.segmenter = segmenter
        self.secondary: tuple[SecondaryModel, ...] = tuple(secondary)

    def with_config(self, config: PipelineConfig) -> FacePipeline:
        """The same loaded models under another configuration (a threshold, the head); secondary
        models not in ``config.embedders`` are left out."""
        secondary = [m for m in self.secondary if m.name in config.embedders]
        return FacePipeline(config, self.detector, self.embedder, self.segmenter, secondary)

    @property
    def models(self) -> tuple[str, ...]:
        """FaceNet, then the secondary models whose scores are fused with it."""
        return (FACENET, *(model.name for model in self.secondary))

    # -- stages -------------------------------------------------------------------------------

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        return self.detector.detect(check_rgb_image(image))

    def crop(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        """The aligned crop that goes into the embedder (background masked when segmentation is on)."""
        if self.segmenter is not None and self.config.segmentation:
            image = apply_head_mask(image, self.segmenter.segment(image, face))
        return crop_face(image, face, self.config.alignment, size=self.embedder.input_size)

    def embed_faces(self, image: RGBImage, faces: Sequence[DetectedFace]) -> Embeddings:
        """FaceNet's embedding of each face: the crop and its mirror image averaged."""
        crops = [self.crop(image, face) for face in faces]
        return self.embed_model_crops(FACENET, crops, mirrored=True)

    def face_crops(
        self, image: RGBImage, faces: Sequence[DetectedFace]
    ) -> dict[str, list[RGBImage]]:
        """Each model's input crop of every face (FaceNet's margin crop, dlib's chip)."""
        crops = {FACENET: [self.crop(image, face) for face in faces]}
        for model in self.secondary:
            crops[model.name] = [model.cropper.crop(image, face) for face in faces]
        return crops

    def _embedder(self, model: str) -> FaceEmbedder:
        if model == FACENET:
            return self.embedder
        return next(m.embedder for m in self.secondary if m.name == model)

    def embed_model_crops(
        self, model: str, crops: Sequence[RGBImage], *, mirrored: bool
    ) -> Embeddings:
        """``model``'s unit embedding of each crop: the crop alone (one pass), or averaged with its
        mirror image (two passes)."""
        embedder = self._embedder(model)
        if not crops:
            return np.zeros((0, embedder.dim), np.float32)
        if mirrored:
            return embed_plain_and_mirrored(embedder, crops)[1]
        return l2_normalize(embedder.embed(list(crops)))

    def embed_faces_by_model(
        self, image: RGBImage, faces: Sequence[DetectedFace], *, mirrored: bool = True
    ) -> dict[str, Embeddings]:
        """Every model's unit embedding of every face, each crop averaged with its mirror image
        (``mirrored``), or the crops alone (one pass per model and face)."""
        crops = self.face_crops(image, faces)
        return {
            model: self.embed_model_crops(model, rows, mirrored=mirrored)
            for model, rows in crops.items()
        }

    def embed_face(self, image: RGBImage, face: DetectedFace) -> dict[str, Embeddings]:
        """Every model's embedding of one face of a class photo, ``(1, D)`` each, as
        :meth:`recognise` embeds a face it is unsure of (each crop averaged with its mirror
        image): a face a teacher names later becomes a gallery sample."""
        return self.embed_faces_by_model(check_rgb_image(image), [face], mirrored=True)

    def secondary_views(self, image: RGBImage, face: DetectedFace) -> dict[str, Embeddings]:
        """Registration embeddings of ``face`` for every secondary model: its crop and the crop's
        mirror image, ``(2, D)`` (also used to back-fill students registered before a model was
        added, from their stored photo and box).

        The mirror costs one more pass per registration, not per class photo: on the one-shot
        LFW test class it raised named-right at the default threshold from 85.8 % to 86.6 % and
        took wrong names from 0.08 % to 0 (2026-11-29, same data as ``ml.fusion``).
        """
        image = check_rgb_image(image)
        views = {}
        for model in self.secondary:
            crop = model.cropper.crop(image, face)
            views[model.name] = model.embedder.embed([crop, np.ascontiguousarray(crop[:, ::-1])])
        return views

    # -- registration ---------------------------------------------------------------------------

    def registration_face(
        self, image: RGBImage, choice: FaceChoice | None = None
    ) -> tuple[DetectedFace, list[DetectedFace]]:
        """The registered face and the other faces, ignored: the one ``choice`` names, else the
        dominant one (see :func:`dominant_face`)."""
        faces = self.detect(image)
        if not faces:
            raise NoFaceError("no face found in the photo")
        if choice is None:
            found, _ = dominant_face(faces, image.shape)
        else:
            found = chosen_face(largest_first(faces), choice)
        return found, [face for face in faces if face is not found]

    def enrol(
        self,
        image: RGBImage,
        face: FaceChoice | None = None,
        *,
        checkpoint: Callable[[], None] | None = None,
    ) -> FaceEnrolment:
        """Embed one registration photo: ``n_views`` augmented FaceNet views of its face (the
        one ``face`` names, else the dominant one), and each secondary model's embedding of it.

        ``checkpoint`` is called between the steps (detection, every
        :data:`VIEWS_PER_STEP` views, the secondary models): a caller running this in the
        background may pause there for more urgent work (the views embedded in steps give the
        same embeddings as in one batch)."""
        pause = checkpoint or (lambda: None)
        image = check_rgb_image(image)
        found, ignored = self.registration_face(image, face)
        crop = self.crop(image, found)
        views = augment_views(crop, n_views=self.config.n_views, seed=self.config.seed)
        step = len(views) if checkpoint is None else VIEWS_PER_STEP
        parts = []
        for start in range(0, len(views), step):
            pause()
            parts.append(self.embedder.embed(views[start : start + step]))
        embeddings = np.concatenate(parts) if len(parts) > 1 else parts[0]
        quality = assess_quality(found, crop, image, len(ignored), chosen=face is not None)
        pause()
        secondary = self.secondary_views(image, found)
        faces = tuple(largest_first([found, *ignored]))
        return FaceEnrolment(found, quality, crop, embeddings, secondary, faces)

    def train_head(
        self, gallery: Gallery, previous: ProjectionHead | None = None
    ) -> ProjectionHead | None:
        views = dict(zip(gallery.student_ids, gallery.views, strict=True))
        return train_head(
            views, previous=previous, config=HeadTrainingConfig(seed=self.config.seed)
        )

    # -- attendance ------------------------------------------------------------------------------

    def unsure(self, decision: MatchDecision | FaceMatch, threshold: float) -> bool:
        """Whether averaging the face's crops with their mirror images could change
        ``decision``: its score is within ``config.mirror_band`` of the threshold, or the named
        student leads the runner-up, or a student of another class or a known stranger is behind
        or ahead of the best student, by less than that."""
        band = self.config.mirror_band
        if abs(decision.score - threshold) < band:
            return True
        if (
            decision.student_id is not None
            and decision.runner_up_similarity is not None
            and decision.similarity - decision.runner_up_similarity < band
        ):
            return True
        return (
            decision.impostor_similarity is not None
            and abs(decision.impostor_similarity - decision.similarity) < band
        )

    def recognise(
        self,
        image: RGBImage,
        gallery: Gallery,
        head: ProjectionHead | None = None,
        *,
        cohort: Cohort | None = None,
        strangers: KnownStrangers | None = None,
        max_faces: int | None = None,
    ) -> Recognition:
        """Match every face big enough to recognise; raises :class:`TooManyFacesError` before
        embedding anything when more than ``max_faces`` such faces are found.

        ``cohort``: the school's other students (every class's but this one's,
        ``Cohort.from_galleries``); ``strangers``: this class's known strangers
        (``KnownStrangers.from_faces``). See ``ml.matching.match_faces``; without them the class
        is matched on its own.

        Faces under ``config.min_recognisable_face`` pixels are returned as ``too_small`` without
        being embedded: a crowd in the background of a class photo costs a FaceNet and a dlib pass
        per face and names nobody.
        """
        image = check_rgb_image(image)
        faces = self.detect(image)
        recognisable = [f for f in faces if f.size >= self.config.min_recognisable_face]
        if max_faces is not None and len(recognisable) > max_faces:
            raise TooManyFacesError(len(recognisable), max_faces)
        crops = self.face_crops(image, recognisable)
        mirror_all = math.isinf(self.config.mirror_band)
        embeddings = {
            model: self.embed_model_crops(model, rows, mirrored=mirror_all)
            for model, rows in crops.items()
        }

        def decide() -> tuple[list[MatchDecision], float]:
            return match_faces(
                embeddings,
                gallery,
                threshold=self.config.unknown_threshold,
                head=head if self.config.use_head else None,
                cohort=cohort,
                strangers=strangers,
            )

        decisions, threshold = decide()
        unsure = (
            [] if mirror_all else [i for i, d in enumerate(decisions) if self.unsure(d, threshold)]
        )
        if unsure:
            # The mirror passes, only for the faces whose decision they could change.
            for model, rows in crops.items():
                mirrors = [np.ascontiguousarray(rows[i][:, ::-1]) for i in unsure]
                embedded = self.embed_model_crops(model, mirrors, mirrored=False)
                updated = embeddings[model].copy()
                updated[unsure] = l2_normalize(updated[unsure] + embedded)
                embeddings[model] = updated
            decisions, threshold = decide()
        by_face = {
            id(face): FaceMatch(
                face,
                d.student_id,
                d.similarity,
                d.head_similarity,
                d.candidate_id,
                d.score,
                d.model_similarities,
                runner_up_similarity=d.runner_up_similarity,
                embeddings={model: rows[i] for model, rows in embeddings.items()},
                impostor_similarity=d.impostor_similarity,
                closer_to=d.closer_to,
            )
            for i, (face, d) in enumerate(zip(recognisable, decisions, strict=True))
        }
        matches = tuple(by_face.get(id(face)) or FaceMatch.too_small_face(face) for face in faces)
        return Recognition(matches, threshold)
