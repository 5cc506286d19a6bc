"""The whole pipeline with real models on real photos: register the cast, take attendance."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from ml.eval.photos import load_rgb
from ml.matching import Gallery
from ml.pipeline import (
    VIEWS_PER_STEP,
    FacePipeline,
    MultipleFacesError,
    NoFaceError,
    estimate_pose,
)

logger = logging.getLogger(__name__)

CAST = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")
BBT3 = {"howard", "leonard", "penny", "raj", "sheldon"}


@pytest.fixture(scope="module")
def cast_gallery(face_pipeline: FacePipeline, shared_dir: Path) -> Gallery:
    """The face-api.js cast, each registered from its first photo (grayscale 150 px crops)."""
    views = {}
    secondary: dict[str, dict[str, np.ndarray]] = {}
    for name in CAST:
        photo = sorted((shared_dir / "faces/people" / f"face_api_js__{name}").iterdir())[0]
        enrolment = face_pipeline.enrol(load_rgb(photo))
        assert enrolment.views.shape == (face_pipeline.config.n_views, 512)
        views[name] = enrolment.views
        for model, model_views in enrolment.secondary_views.items():
            secondary.setdefault(model, {})[name] = model_views
    return Gallery.from_views(views, secondary)


def _group(shared_dir: Path, name: str) -> np.ndarray:
    return load_rgb(shared_dir / "faces/groups" / name)


def test_registration_photos_have_one_face(face_pipeline: FacePipeline, shared_dir: Path) -> None:
    people = shared_dir / "faces/people"
    folders = [p for p in sorted(people.iterdir()) if p.is_dir()]
    for folder in folders[::4]:
        photo = sorted(folder.iterdir())[0]
        face, _ = face_pipeline.registration_face(load_rgb(photo))
        assert face.score > 0.9, photo


def test_an_enrolment_in_steps_embeds_what_one_batch_does(
    face_pipeline: FacePipeline, shared_dir: Path
) -> None:
    """A background registration (a roster import) pauses at checkpoints between a few views at a
    time; its embeddings are those of the same photo in one go."""
    photo = load_rgb(shared_dir / "faces/people/face_api_js__raj/raj1.png")
    whole = face_pipeline.enrol(photo)
    calls: list[int] = []
    stepped = face_pipeline.enrol(photo, checkpoint=lambda: calls.append(1))
    n_views = face_pipeline.config.n_views
    assert len(calls) == -(-n_views // VIEWS_PER_STEP) + 1  # the views' steps, then dlib's
    assert stepped.views.shape == whole.views.shape
    assert float(np.abs(stepped.views - whole.views).max()) < 1e-4
    for model, views in whole.secondary_views.items():
        assert np.array_equal(stepped.secondary_views[model], views)


def test_enrolment_rejects_no_face_and_two_faces(
    face_pipeline: FacePipeline, shared_dir: Path
) -> None:
    blank = np.full((300, 300, 3), 127, np.uint8)
    with pytest.raises(NoFaceError):
        face_pipeline.enrol(blank)
    with pytest.raises(MultipleFacesError) as info:
        face_pipeline.enrol(_group(shared_dir, "face_recognition__two_people.jpg"))
    assert info.value.count == 2


def test_bbt3_at_the_calibrated_threshold(
    face_pipeline: FacePipeline, cast_gallery: Gallery, shared_dir: Path
) -> None:
    """FaceNet fused with dlib names all five at the default threshold, from one 150 px grey crop
    each (FaceNet alone named four: Penny scored 0.36 < 0.41); never a wrong student."""
    result = face_pipeline.recognise(_group(shared_dir, "face_api_js__bbt3.jpg"), cast_gallery)
    assert face_pipeline.models == ("facenet", "dlib")
    assert len(result.faces) == 5
    named = sorted(m.student_id for m in result.faces if m.student_id)
    assert named == sorted(BBT3)
    for match in result.faces:
        assert match.score >= result.unknown_threshold
        assert set(match.model_similarities) == {"facenet", "dlib"}


def test_facenet_alone_misses_penny_in_bbt3(
    face_pipeline: FacePipeline, cast_gallery: Gallery, shared_dir: Path
) -> None:
    """The previous default, still a setting: four of five, Penny unknown but ranked first."""
    facenet_only = face_pipeline.with_config(
        dataclasses.replace(face_pipeline.config, embedders=("facenet",))
    )
    result = facenet_only.recognise(_group(shared_dir, "face_api_js__bbt3.jpg"), cast_gallery)
    named = {m.student_id for m in result.faces if m.student_id}
    assert named <= BBT3
    assert len(named) >= 4
    # Unknown faces still carry their best candidate: the right one.
    assert {m.candidate_id for m in result.faces} == BBT3


def test_recognises_all_five_in_bbt3(
    cast_pipeline: FacePipeline, cast_gallery: Gallery, shared_dir: Path
) -> None:
    result = cast_pipeline.recognise(_group(shared_dir, "face_api_js__bbt3.jpg"), cast_gallery)
    names = sorted(m.student_id for m in result.faces if m.student_id)
    assert len(result.faces) == 5
    assert names == sorted(BBT3)


def test_bearded_bbt1_is_reported(
    cast_pipeline: FacePipeline, cast_gallery: Gallery, shared_dir: Path
) -> None:
    """Everyone in bbt1 wears a fake beard: report how many are named; wrong names are not allowed."""
    present = {"raj", "leonard", "howard", "sheldon"}
    result = cast_pipeline.recognise(_group(shared_dir, "face_api_js__bbt1.jpg"), cast_gallery)
    named = [m.student_id for m in result.faces if m.student_id]
    logger.warning("bbt1 (fake beards): %d of 4 named: %s", len(set(named) & present), named)
    assert set(named) <= present
    assert len(named) == len(set(named))


def test_strangers_in_bbt2_are_unknown(
    cast_pipeline: FacePipeline, cast_gallery: Gallery, shared_dir: Path
) -> None:
    """bbt2: Leonard and Sheldon at a table; a stranger at the left edge, the rest turned away."""
    result = cast_pipeline.recognise(_group(shared_dir, "face_api_js__bbt2.jpg"), cast_gallery)
    named = [m.student_id for m in result.faces if m.student_id]
    assert sorted(named) == ["leonard", "sheldon"]
    strangers = [m for m in result.faces if m.student_id is None]
    assert strangers, "the man at the left edge is not enrolled and must come back unknown"
    assert all(m.face.box[0] < 100 for m in strangers)


def test_recognition_with_head_names_the_same_cast(
    cast_pipeline: FacePipeline, cast_gallery: Gallery, shared_dir: Path
) -> None:
    head = cast_pipeline.train_head(cast_gallery)
    assert head is not None and set(head.student_ids) == set(CAST)
    with_head = cast_pipeline.with_config(dataclasses.replace(cast_pipeline.config, use_head=True))
    result = with_head.recognise(_group(shared_dir, "face_api_js__bbt3.jpg"), cast_gallery, head)
    assert sorted(m.student_id for m in result.faces if m.student_id) == sorted(BBT3)


def test_pose_of_a_frontal_face_is_small() -> None:
    frontal = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float32)
    yaw, pitch, roll = estimate_pose(frontal)
    assert abs(yaw) < 1 and abs(roll) < 1 and abs(pitch) < 15
    turned = frontal.copy()
    turned[2, 0] = 66  # nose far toward the right eye: head turned
    assert abs(estimate_pose(turned)[0]) > 30


def test_faces_too_small_to_recognise_are_reported_not_embedded(
    face_pipeline: FacePipeline, cast_gallery: Gallery, shared_dir: Path
) -> None:
    """bbt3's faces measure 43-59 px: with the limit raised above two of them, those two come
    back as too small (no name, no score, same boxes), the others are still named, and a photo
    whose faces are all too small embeds nothing and counts none against ``max_faces``."""
    image = _group(shared_dir, "face_api_js__bbt3.jpg")
    sizes = sorted(f.size for f in face_pipeline.detect(image))
    limit = (sizes[1] + sizes[2]) / 2
    limited = face_pipeline.with_config(
        dataclasses.replace(face_pipeline.config, min_recognisable_face=round(limit))
    )
    result = limited.recognise(image, cast_gallery)
    small = [m for m in result.faces if m.too_small]
    assert len(result.faces) == 5 and len(small) == 2
    assert all(m.student_id is None and m.score == 0.0 and m.face.size < limit for m in small)
    named = {m.student_id for m in result.faces if not m.too_small}
    assert None not in named and named < BBT3
    everything_small = face_pipeline.with_config(
        dataclasses.replace(face_pipeline.config, min_recognisable_face=1000)
    )
    result = everything_small.recognise(image, cast_gallery, max_faces=0)
    assert [m.too_small for m in result.faces] == [True] * 5


def test_the_mirror_pass_only_where_unsure_names_as_mirroring_every_face(
    face_pipeline: FacePipeline, cast_gallery: Gallery, shared_dir: Path
) -> None:
    """The lazy mirror (``PipelineConfig.mirror_band``) and mirroring every face give the same
    names on the cast's photos; the faces it is sure of keep their crops-alone embeddings."""
    import math

    every = face_pipeline.with_config(
        dataclasses.replace(face_pipeline.config, mirror_band=math.inf)
    )
    for photo in ("face_api_js__bbt1.jpg", "face_api_js__bbt2.jpg", "face_api_js__bbt3.jpg"):
        image = _group(shared_dir, photo)
        lazy = face_pipeline.recognise(image, cast_gallery)
        full = every.recognise(image, cast_gallery)
        assert [m.student_id for m in lazy.faces] == [m.student_id for m in full.faces], photo
        for match in lazy.faces:
            if not face_pipeline.unsure(match, lazy.unknown_threshold):
                plain = face_pipeline.embed_faces_by_model(image, [match.face], mirrored=False)
                np.testing.assert_allclose(
                    match.embeddings["facenet"], plain["facenet"][0], atol=1e-5
                )


def test_a_cast_member_of_another_class_is_not_named_here(
    face_pipeline: FacePipeline, cast_gallery: Gallery, shared_dir: Path
) -> None:
    """Penny and Raj enrolled in another class of the school: in a class of the other six,
    their faces in bbt3 are not given a name of this class, and the others still are."""
    from ml.matching import Cohort, ImpostorKind

    others = ("penny", "raj")
    index = {sid: i for i, sid in enumerate(cast_gallery.student_ids)}

    def part(names: tuple[str, ...]) -> Gallery:
        rows = [index[n] for n in names]
        return Gallery(
            names,
            cast_gallery.templates[rows],
            [cast_gallery.views[i] for i in rows],
            {
                model: dataclasses.replace(
                    extra, templates=extra.templates[rows], available=extra.available[rows]
                )
                for model, extra in cast_gallery.secondary.items()
            },
        )

    here = part(tuple(n for n in CAST if n not in others))
    school = Cohort.from_galleries([part(others)])
    result = face_pipeline.recognise(
        _group(shared_dir, "face_api_js__bbt3.jpg"), here, cohort=school
    )
    named = sorted(m.student_id for m in result.faces if m.student_id)
    assert named == sorted(BBT3 - set(others))
    vetoed = [m for m in result.faces if m.closer_to is ImpostorKind.COHORT]
    assert len(vetoed) >= 1
