"""Registration photos: the quality report's warnings, and a background face that is ignored."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ml.eval.photos import load_rgb
from ml.pipeline import (
    ADD_PHOTO_ADVICE,
    FacePipeline,
    MultipleFacesError,
    dominant_face,
    is_cut_by_border,
    is_grayscale,
)
from ml.types import DetectedFace

# registration reports measured on real photos, 15 views each
pytestmark = pytest.mark.slow


CAST = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")


def _face(box: tuple[float, float, float, float]) -> DetectedFace:
    return DetectedFace(box=box, score=0.99, landmarks=np.zeros((5, 2), np.float32))


def _people_photo(shared_dir: Path, folder: str) -> np.ndarray:
    return load_rgb(sorted((shared_dir / "faces/people" / folder).iterdir())[0])


def test_the_casts_tight_grey_crops_are_flagged(
    face_pipeline: FacePipeline, shared_dir: Path
) -> None:
    """The face-api.js cast (150 px greyscale crops cut at the chin) used to get "Good photo";
    these registrations are the ones later missed in group photos."""
    for name in CAST:
        quality = face_pipeline.enrol(_people_photo(shared_dir, f"face_api_js__{name}")).quality
        assert quality.grayscale, name
        assert quality.cut_by_border, name
        text = " ".join(quality.warnings)
        assert "black and white" in text, name
        assert "edge of the photo" in text, name
        assert quality.warnings[-1] == ADD_PHOTO_ADVICE, name


def test_a_good_colour_portrait_has_no_warning(
    face_pipeline: FacePipeline, shared_dir: Path
) -> None:
    quality = face_pipeline.enrol(_people_photo(shared_dir, "deepface__Jack_Dorsey")).quality
    assert not quality.grayscale and not quality.cut_by_border
    assert quality.warnings == ()
    assert quality.ignored_faces == 0


def test_grayscale_and_border_rules() -> None:
    grey = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    assert is_grayscale(np.repeat(grey, 40, axis=0))
    colour = np.zeros((40, 256, 3), np.uint8)
    colour[..., 0] = 200
    assert not is_grayscale(colour)
    assert is_cut_by_border(_face((0, 20, 100, 120)), (200, 200, 3))
    assert is_cut_by_border(_face((50, 50, 150, 198)), (200, 200, 3))
    assert not is_cut_by_border(_face((50, 40, 150, 140)), (200, 200, 3))


def test_dominant_face_rules() -> None:
    shape = (600, 800, 3)
    main = _face((300, 200, 500, 400))  # 200 px, centred
    bystander = _face((20, 20, 80, 80))  # 60 px in a corner
    assert dominant_face([main, bystander], shape) == (main, 1)
    # Two comparable faces: whose photo is it? Refused.
    with pytest.raises(MultipleFacesError):
        dominant_face([main, _face((560, 200, 700, 340))], shape)
    # A smaller face nearer the centre than the largest one: ambiguous too.
    off_centre = _face((600, 350, 780, 530))
    centred_small = _face((370, 270, 430, 330))
    with pytest.raises(MultipleFacesError):
        dominant_face([off_centre, centred_small], shape)


def _paste(canvas: np.ndarray, photo: np.ndarray, top: int, left: int, width: int) -> None:
    height = round(photo.shape[0] * width / photo.shape[1])
    canvas[top : top + height, left : left + width] = cv2.resize(
        photo, (width, height), interpolation=cv2.INTER_AREA
    )


def test_a_child_far_behind_is_ignored_and_reported(
    face_pipeline: FacePipeline, shared_dir: Path
) -> None:
    """A classroom registration photo: the student in front, another child small in a corner."""
    student = _people_photo(shared_dir, "deepface__Jack_Dorsey")  # 740x418, face ~200 px
    other = load_rgb(shared_dir / "faces/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")
    canvas = np.full((560, 960, 3), 235, np.uint8)
    _paste(canvas, student, 71, 110, 740)
    _paste(canvas, other, 5, 5, 150)  # its face ~60 px, in the top-left corner
    enrolment = face_pipeline.enrol(canvas)
    assert enrolment.quality.ignored_faces == 1
    assert any("ignored" in w for w in enrolment.quality.warnings)
    # The student's face was the one registered.
    x1, _, x2, _ = enrolment.face.box
    assert x1 > 200 and x2 - x1 > 150
    # The same child as large as the student makes the photo ambiguous.
    _paste(canvas, other, 5, 5, 400)
    with pytest.raises(MultipleFacesError):
        face_pipeline.enrol(canvas)
