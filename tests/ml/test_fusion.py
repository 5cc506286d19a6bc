"""Score-level fusion of FaceNet with a second embedder (unit tests, synthetic embeddings)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.fusion import (
    DLIB,
    FACENET,
    SCORE_SCALES,
    default_unknown_threshold,
    fuse,
    open_set_threshold,
    to_facenet_scale,
)
from ml.matching import Gallery, cohort_scores, l2_normalize, match_faces


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return l2_normalize(rng.normal(size=(n, dim)).astype(np.float32))


def _towards(target: np.ndarray, rng: np.random.Generator, cosine: float) -> np.ndarray:
    """A unit vector with the given cosine to the unit vector ``target``."""
    noise = rng.normal(size=target.shape).astype(np.float32)
    noise -= np.dot(noise, target) * target
    noise /= np.linalg.norm(noise)
    result: np.ndarray = (cosine * target + np.sqrt(1 - cosine**2) * noise).astype(np.float32)
    return result


def test_facenet_scale_is_identity_for_facenet_and_maps_dlib_moments() -> None:
    values = np.array([-0.2, 0.3, 0.9])
    assert np.allclose(to_facenet_scale(FACENET, values), values)
    dlib, facenet = SCORE_SCALES[DLIB], SCORE_SCALES[FACENET]
    mapped = to_facenet_scale(DLIB, [dlib.mean, dlib.mean + dlib.std])
    assert mapped == pytest.approx([facenet.mean, facenet.mean + facenet.std])


def test_fuse_averages_only_the_models_a_student_has() -> None:
    facenet = np.array([[0.5, 0.5]], np.float32)
    dlib_mean = SCORE_SCALES[DLIB].mean
    dlib = np.array([[dlib_mean, 0.99]], np.float32)
    fused = fuse(
        {FACENET: facenet, DLIB: dlib},
        {FACENET: np.array([True, True]), DLIB: np.array([True, False])},
    )
    # Student 0: mean of 0.5 and dlib's mean mapped to FaceNet's mean. Student 1 has no dlib
    # embedding yet: FaceNet's cosine alone, whatever dlib's column holds.
    assert fused[0, 0] == pytest.approx((0.5 + SCORE_SCALES[FACENET].mean) / 2, abs=1e-6)
    assert fused[0, 1] == pytest.approx(0.5)


def test_fuse_needs_facenet() -> None:
    with pytest.raises(ValueError, match="FaceNet"):
        fuse({DLIB: np.zeros((1, 1), np.float32)}, {DLIB: np.ones(1, bool)})


def test_gallery_keeps_facenet_behaviour_for_plain_probes() -> None:
    rng = np.random.default_rng(0)
    facenet = {f"s{i}": _unit(rng, 3, 512) for i in range(4)}
    dlib = {f"s{i}": _unit(rng, 1, 128) for i in range(4)}
    plain = Gallery.from_views(facenet)
    fused = Gallery.from_views(facenet, {DLIB: dlib})
    probes = _unit(rng, 2, 512)
    # A probe with FaceNet's embedding only is compared on FaceNet alone, in both galleries.
    assert np.allclose(plain.similarities(probes), fused.similarities(probes))
    assert fused.models == (FACENET, DLIB)
    assert fused.models_for(probes) == (FACENET,)
    assert plain.models_for({FACENET: probes, DLIB: _unit(rng, 2, 128)}) == (FACENET,)


def test_secondary_model_partly_filled() -> None:
    rng = np.random.default_rng(1)
    facenet = {f"s{i}": _unit(rng, 2, 512) for i in range(3)}
    gallery = Gallery.from_views(facenet, {DLIB: {"s1": _unit(rng, 1, 128)}})
    assert gallery.secondary[DLIB].available.tolist() == [False, True, False]
    probes = {FACENET: _unit(rng, 1, 512), DLIB: _unit(rng, 1, 128)}
    cosines = gallery.model_similarities(probes)
    fused = gallery.similarities(probes)
    assert fused[0, 0] == pytest.approx(cosines[FACENET][0, 0])
    expected = (cosines[FACENET][0, 1] + to_facenet_scale(DLIB, cosines[DLIB][0, 1])) / 2
    assert fused[0, 1] == pytest.approx(expected, abs=1e-6)


def test_an_empty_secondary_model_is_dropped() -> None:
    rng = np.random.default_rng(2)
    gallery = Gallery.from_views({"a": _unit(rng, 1, 512)}, {DLIB: {}})
    assert gallery.models == (FACENET,)


def test_second_model_names_a_student_facenet_alone_misses() -> None:
    """FaceNet is unsure (cosine 0.40, a stranger-like score); dlib is sure: fused, the face is
    named; FaceNet alone, it is not."""
    rng = np.random.default_rng(3)
    ids = [f"s{i}" for i in range(6)]
    facenet = {sid: _unit(rng, 1, 512) for sid in ids}
    dlib = {sid: _unit(rng, 1, 128) for sid in ids}
    target = "s2"
    probe_f = _towards(facenet[target][0], rng, 0.40)
    probe_d = _towards(dlib[target][0], rng, 0.97)
    fused_gallery = Gallery.from_views(facenet, {DLIB: dlib})
    plain_gallery = Gallery.from_views(facenet)
    probes = {FACENET: probe_f[None], DLIB: probe_d[None]}

    fused_decisions, fused_threshold = match_faces(probes, fused_gallery)
    plain_decisions, plain_threshold = match_faces(probes, plain_gallery)

    # The thresholds calibrated for those models and a class of six without a school cohort.
    assert fused_threshold == open_set_threshold((FACENET, DLIB), class_size=6)
    assert plain_threshold == open_set_threshold((FACENET,), class_size=6)
    assert fused_decisions[0].student_id == target
    assert plain_decisions[0].student_id is None
    assert plain_decisions[0].candidate_id == target
    decision = fused_decisions[0]
    assert set(decision.model_similarities) == {FACENET, DLIB}
    assert decision.model_similarities[FACENET] == pytest.approx(0.40, abs=1e-3)
    assert decision.model_similarities[DLIB] == pytest.approx(0.97, abs=1e-3)
    # The reported score is exactly what was compared with the threshold.
    raw = fused_gallery.similarities(probes)
    assert decision.score == pytest.approx(float(cohort_scores(raw)[0, 2]), abs=1e-5)
    assert decision.similarity == pytest.approx(float(raw[0, 2]), abs=1e-5)
    assert decision.score >= fused_threshold


def test_rejected_face_reports_its_best_candidates_score() -> None:
    rng = np.random.default_rng(4)
    ids = [f"s{i}" for i in range(5)]
    gallery = Gallery.from_views({sid: _unit(rng, 1, 512) for sid in ids})
    stranger = _unit(rng, 1, 512)
    (decision,), threshold = match_faces(stranger, gallery)
    assert decision.student_id is None
    assert decision.score < threshold
    best = int(np.argmax(gallery.similarities(stranger)[0]))
    assert decision.candidate_id == ids[best]
    assert decision.model_similarities == {FACENET: pytest.approx(decision.similarity, abs=1e-4)}


def test_unknown_model_set_has_no_threshold() -> None:
    with pytest.raises(ValueError, match="no calibrated threshold"):
        default_unknown_threshold(("dlib",))
