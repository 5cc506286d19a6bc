"""GrabCut head segmentation: a synthetic head with a known outline, and real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ml.align import FaceTemplate
from ml.protocols import FaceDetector
from ml.segmentation import GrabCutHeadSegmenter, apply_head_mask
from ml.types import DetectedFace

REAL_PHOTOS = (
    "deepface__Angelina_Jolie/img1.jpg",
    "deepface__Leonardo_DiCaprio/img34.jpg",
    "face_recognition__biden/biden.jpg",
    "deepface__Scarlett_Johansson/img47.jpg",
)


def _synthetic_head() -> tuple[np.ndarray, np.ndarray, DetectedFace]:
    """Skin-coloured face with a dark hair cap on a striped blue background, and its true mask."""
    height, width = 400, 360
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = (40, 90, 170)
    image[(xx // 12) % 2 == 0] = (70, 120, 200)
    head = np.zeros((height, width), np.uint8)
    cv2.ellipse(head, (180, 200), (70, 95), 0, 0, 360, 1, thickness=-1)
    hair = np.zeros_like(head)
    cv2.ellipse(hair, (180, 170), (78, 90), 0, 180, 360, 1, thickness=-1)
    image[hair > 0] = (50, 35, 25)
    image[(head > 0) & ~((hair > 0) & (yy < 150))] = (215, 170, 140)
    truth = (head > 0) | (hair > 0)
    rng = np.random.default_rng(0)
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    # Landmarks as a detector would give them: the face template placed in the face's box.
    box = (115.0, 140.0, 245.0, 295.0)
    landmarks = FaceTemplate(scale=1.0, shift_y=0.0, stretch_x=1.0).canonical_points(
        130
    ) + np.array([115.0, 160.0])
    face = DetectedFace(box, 0.99, landmarks.astype(np.float32))
    return image, truth, face


def test_synthetic_head_is_found() -> None:
    image, truth, face = _synthetic_head()
    mask = GrabCutHeadSegmenter().segment(image, face)
    assert mask.shape == truth.shape
    assert mask.dtype == np.bool_
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.85, iou


def test_segmenter_validates_parameters() -> None:
    with pytest.raises(ValueError):
        GrabCutHeadSegmenter(iterations=0)
    with pytest.raises(ValueError):
        GrabCutHeadSegmenter(working_size=8)


def test_apply_head_mask_grey_and_blur() -> None:
    image, truth, _ = _synthetic_head()
    grey = apply_head_mask(image, truth, fill="grey")
    assert grey.shape == image.shape
    assert grey.dtype == np.uint8
    # The 2 px feather reaches ~8 px (OpenCV Gaussian kernel radius 4 sigma).
    inside = cv2.erode(truth.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0
    outside = cv2.dilate(truth.astype(np.uint8), np.ones((21, 21), np.uint8)) == 0
    np.testing.assert_array_equal(grey[inside], image[inside])
    assert np.all(grey[outside] == 128)
    blurred = apply_head_mask(image, truth, fill="blur")
    np.testing.assert_array_equal(blurred[inside], image[inside])
    # The stripes behind the head are smoothed away: neighbouring columns differ much less.

    def stripe_contrast(picture: np.ndarray) -> float:
        steps = np.abs(np.diff(picture.astype(int), axis=1)).sum(axis=2)
        return float(steps[outside[:, 1:]].mean())

    assert stripe_contrast(blurred) < stripe_contrast(image) / 3
    with pytest.raises(ValueError):
        apply_head_mask(image, truth[:-1])
    with pytest.raises(ValueError):
        apply_head_mask(image, truth, fill="black")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def mtcnn() -> FaceDetector:
    from ml.detection import create_detector

    return create_detector("mtcnn", yolo_weights=None, min_face_size=20)


@pytest.mark.parametrize("relative", REAL_PHOTOS)
def test_real_head_masks(mtcnn: FaceDetector, shared_dir: Path, relative: str) -> None:
    image = np.asarray(Image.open(shared_dir / "faces/people" / relative).convert("RGB"))
    faces = mtcnn.detect(image)
    assert faces, relative
    face = max(faces, key=lambda f: f.size)
    segmenter = GrabCutHeadSegmenter()
    mask = segmenter.segment(image, face)
    assert mask.shape == image.shape[:2]
    # Every landmark is on the head.
    for x, y in face.landmarks:
        assert mask[int(y), int(x)], (relative, x, y)
    # The head fills a good part of the face box, and does not fill the box with its margins.
    x1, y1, x2, y2 = (int(v) for v in face.box)
    assert mask[y1:y2, x1:x2].mean() > 0.6, relative
    pad_x, pad_y = (x2 - x1) // 2, (y2 - y1) // 2
    window = mask[max(0, y1 - pad_y) : y2 + pad_y, max(0, x1 - pad_x) : x2 + pad_x]
    assert 0.2 < window.mean() < 0.85, (relative, window.mean())
    # Nothing far from the face.
    far = np.ones_like(mask)
    far[
        max(0, y1 - 2 * (y2 - y1)) : y2 + 2 * (y2 - y1),
        max(0, x1 - 2 * (x2 - x1)) : x2 + 2 * (x2 - x1),
    ] = False
    assert not (mask & far).any(), relative
    # Deterministic: the same call gives the same mask.
    np.testing.assert_array_equal(segmenter.segment(image, face), mask)
