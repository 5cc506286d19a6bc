"""Similarity alignment and margin crops: geometry on synthetic images, round trip on real photos."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from PIL import Image

from ml.align import (
    ARCFACE_TEMPLATE_112,
    DEFAULT_TEMPLATE,
    FaceTemplate,
    align_face,
    centre_crop,
    crop_face,
    margin_bounds,
    margin_box,
    margin_crop,
    umeyama_similarity,
)
from ml.protocols import FaceDetector
from ml.types import DetectedFace

DOT_COLOURS = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], dtype=np.uint8
)


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    angle = math.radians(angle_deg)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.hstack([scale * rotation, [[tx], [ty]]])


def _dotted_image(landmarks: np.ndarray, height: int, width: int, radius: int) -> np.ndarray:
    """Grey image with one coloured disc per landmark."""
    image = np.full((height, width, 3), 90, np.uint8)
    for point, colour in zip(landmarks, DOT_COLOURS, strict=True):
        # Sub-pixel centre (4 fractional bits); pixel centres are at integer coordinates.
        centre = (round(float(point[0]) * 16), round(float(point[1]) * 16))
        colour_tuple = tuple(int(c) for c in colour)
        cv2.circle(image, centre, radius * 16, colour_tuple, thickness=-1, shift=4)
    return image


def _dot_centres(image: np.ndarray) -> np.ndarray:
    """Centroid of each coloured disc (pixels within 60 of its colour)."""
    centres = []
    for colour in DOT_COLOURS:
        close = np.abs(image.astype(int) - colour.astype(int)).sum(axis=2) < 60
        ys, xs = np.nonzero(close)
        assert len(xs) > 0, f"dot {colour} vanished"
        centres.append([xs.mean(), ys.mean()])
    return np.array(centres)


def test_umeyama_recovers_an_exact_similarity() -> None:
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 200, (5, 2))
    expected = _similarity(1.7, 23.0, 12.0, -40.0)
    target = source @ expected[:, :2].T + expected[:, 2]
    np.testing.assert_allclose(umeyama_similarity(source, target), expected, atol=1e-9)


def test_umeyama_never_reflects() -> None:
    source = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [3.0, 7.0]])
    mirrored = source * np.array([-1.0, 1.0])
    matrix = umeyama_similarity(source, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_umeyama_rejects_degenerate_points() -> None:
    with pytest.raises(ValueError):
        umeyama_similarity(np.ones((5, 2)), np.zeros((5, 2)))


@pytest.mark.parametrize("face_template", [DEFAULT_TEMPLATE, FaceTemplate(0.7, 0.05, 1.3)])
def test_template_is_centred_and_symmetric(face_template: FaceTemplate) -> None:
    template = face_template.points(160)
    assert template.shape == (5, 2)
    assert abs(template[:, 0].mean() - 80.0) < 0.5
    eyes_mid = template[:2].mean(axis=0)
    mouth_mid = template[3:].mean(axis=0)
    assert abs(eyes_mid[0] - mouth_mid[0]) < 0.5
    assert template[0, 0] < template[1, 0]
    assert eyes_mid[1] < template[2, 1] < mouth_mid[1]
    # Scales with the output side.
    np.testing.assert_allclose(face_template.points(320), 2 * template)
    # The stretch widens the layout horizontally only.
    canonical = face_template.canonical_points(160)
    np.testing.assert_allclose(canonical[:, 1], template[:, 1])
    np.testing.assert_allclose(
        (template[:, 0] - 80) / (canonical[:, 0] - 80), face_template.stretch_x
    )


@pytest.mark.parametrize(
    ("scale", "angle", "image_size"),
    [(3.0, 0.0, 600), (1.2, 25.0, 400), (0.6, -12.0, 200), (9.0, 8.0, 1800)],
)
def test_align_face_puts_landmarks_on_the_template(
    scale: float, angle: float, image_size: int
) -> None:
    """A face drawn at any scale/rotation comes out with its landmarks on the template."""
    template = DEFAULT_TEMPLATE.points(160)
    placed = _similarity(scale, angle, 0.0, 0.0)
    landmarks = DEFAULT_TEMPLATE.canonical_points(160) @ placed[:, :2].T
    landmarks += np.array([image_size / 2, image_size / 2]) - landmarks.mean(axis=0)
    image = _dotted_image(landmarks, image_size, image_size, radius=max(4, round(2.5 * scale)))
    crop = align_face(image, landmarks.astype(np.float32))
    assert crop.shape == (160, 160, 3)
    assert crop.dtype == np.uint8
    np.testing.assert_allclose(_dot_centres(crop), template, atol=1.0)


def test_align_face_accepts_a_custom_template_and_size() -> None:
    landmarks = ARCFACE_TEMPLATE_112 * 2 + 30
    image = _dotted_image(landmarks, 300, 300, radius=3)
    crop = align_face(image, landmarks.astype(np.float32), size=112, template=ARCFACE_TEMPLATE_112)
    assert crop.shape == (112, 112, 3)
    np.testing.assert_allclose(_dot_centres(crop), ARCFACE_TEMPLATE_112, atol=1.0)


def test_align_face_near_the_border_fills_the_whole_crop() -> None:
    landmarks = (
        DEFAULT_TEMPLATE.canonical_points(160) * 0.5 - 20
    )  # partly outside the image, top-left
    image = np.full((120, 120, 3), 200, np.uint8)
    crop = align_face(image, landmarks.astype(np.float32))
    # Replicated border: no black pixels although the crop reaches outside the image.
    assert crop.min() == 200


def test_align_face_rejects_bad_landmarks() -> None:
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError):
        align_face(image, np.zeros((4, 2), np.float32))


def test_margin_box_follows_facenet_pytorch() -> None:
    # Box 128 wide: margin 32 at 160 px output adds 32 * 128 / 128 = 32 px, 16 on each side.
    assert margin_box((100.0, 50.0, 228.0, 178.0), (400, 400), 160, 32) == (84, 34, 244, 194)
    # Clipped to the image.
    assert margin_box((0.0, 0.0, 128.0, 128.0), (100, 100), 160, 32) == (0, 0, 100, 100)


def test_margin_crop_matches_facenet_pytorch_extract_face(torch_module: ModuleType) -> None:
    from facenet_pytorch.models.utils.detect_face import extract_face

    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    image = np.asarray(cv2.GaussianBlur(noise, (0, 0), 2), dtype=np.uint8)
    box = (60.3, 40.8, 171.9, 180.2)
    expected = extract_face(image, np.array(box), image_size=160, margin=32)
    expected_rgb = expected.permute(1, 2, 0).numpy().astype(np.uint8)
    np.testing.assert_array_equal(margin_crop(image, box), expected_rgb)


def test_margin_crop_at_the_border_repeats_edge_pixels() -> None:
    """Past the photo's edge the crop is padded (face keeps its scale), never clipped."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (200, 260, 3), dtype=np.uint8)
    for box in [
        (-30.0, -10.0, 90.0, 140.0),
        (180.5, 120.2, 275.0, 230.0),
        (-5.0, 60.0, 40.0, 95.0),
    ]:
        bounds = margin_bounds(box)
        assert bounds[0] < 0 or bounds[1] < 0 or bounds[2] > 260 or bounds[3] > 200
        # Reference: pad the whole photo with its edge pixels, then crop without clipping.
        pad = 200
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        left, top, right, bottom = (v + pad for v in bounds)
        expected = cv2.resize(
            padded[top:bottom, left:right], (160, 160), interpolation=cv2.INTER_AREA
        )
        np.testing.assert_array_equal(margin_crop(image, box), expected)
    # A box entirely outside the photo still gives a crop.
    assert margin_crop(image, (400.0, 400.0, 450.0, 460.0)).shape == (160, 160, 3)


def test_crop_face_dispatches_and_rejects_unknown_methods() -> None:
    landmarks = DEFAULT_TEMPLATE.canonical_points(160) + 20
    image = _dotted_image(landmarks, 200, 200, radius=3)
    face = DetectedFace((30.0, 30.0, 170.0, 190.0), 0.99, landmarks.astype(np.float32))
    np.testing.assert_array_equal(
        crop_face(image, face, "similarity"), align_face(image, face.landmarks)
    )
    np.testing.assert_array_equal(crop_face(image, face, "margin"), margin_crop(image, face.box))
    assert crop_face(image, face, "margin", size=96).shape == (96, 96, 3)
    with pytest.raises(ValueError):
        crop_face(image, face, "tight")  # type: ignore[arg-type]


def test_centre_crop_shape() -> None:
    image = np.zeros((250, 300, 3), np.uint8)
    assert centre_crop(image).shape == (160, 160, 3)


# -- real photos -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtcnn() -> FaceDetector:
    from ml.detection import create_detector

    return create_detector("mtcnn", yolo_weights=None, min_face_size=20)


LFW_SAMPLES = (
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
    "George_W_Bush/George_W_Bush_0007.jpg",
    "Serena_Williams/Serena_Williams_0003.jpg",
    "Tony_Blair/Tony_Blair_0018.jpg",
)


def test_aligned_real_faces_land_where_the_transform_puts_them(
    mtcnn: FaceDetector, shared_dir: Path
) -> None:
    """Detecting again on the aligned crop finds the landmarks where the warp moved them, upright."""
    for relative in LFW_SAMPLES:
        image = np.asarray(Image.open(shared_dir / "faces/lfw" / relative).convert("RGB"))
        faces = mtcnn.detect(image)
        assert faces, relative
        landmarks = faces[0].landmarks.astype(np.float64)
        crop = align_face(image, landmarks)
        matrix = DEFAULT_TEMPLATE.transform(landmarks, 160)
        expected = landmarks @ matrix[:, :2].T + matrix[:, 2]
        # Pad so the detector sees the whole loose crop as a normal photo.
        padded = np.asarray(
            cv2.copyMakeBorder(crop, 40, 40, 40, 40, cv2.BORDER_REPLICATE), dtype=np.uint8
        )
        again = mtcnn.detect(padded)
        assert again, relative
        found = again[0].landmarks - 40
        error = np.linalg.norm(found - expected, axis=1)
        # Eye distance in the crop is ~50 px; MTCNN's eyes are stable to a few pixels, its nose
        # and mouth corners move more when the face is stretched.
        assert error[:2].max() < 6.0, (relative, error)
        assert error.max() < 10.0, (relative, error)
        eye_line = found[1] - found[0]
        assert abs(np.degrees(np.arctan2(eye_line[1], eye_line[0]))) < 5.0, relative
