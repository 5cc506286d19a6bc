"""The bench's scoring of the fused pipeline (FaceNet + dlib) and of FaceNet alone from one row.

Synthetic embeddings only: no model is loaded. The fusion constants are always read from
``ml.fusion`` (patched here to prove the bench does not copy them).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import ml.fusion
from bench.oneshot import (
    NO_SCORE,
    ClassSplit,
    cohort_accepts,
    distance_accepts,
    false_accept_by_class_size,
    rollcall_class,
    rollcall_outcome,
    stage1_scores,
)
from bench.render import comparisons, render_markdown
from bench.render_common import ALT, PEER
from bench.systems import (
    FACENET_ALONE,
    ImageEmbeddings,
    RollcallSystem,
    join_models,
    split_models,
    variant_label,
    variant_name,
)
from bench.verification import fused_pair_scores, pair_scores
from ml.eval.lfw import LfwPair
from ml.eval.oneshot import decide
from ml.fusion import ScoreScale, fuse
from ml.matching import l2_normalize

FUSED = ("facenet", "dlib")
FIXTURE = Path(__file__).parent / "fixtures" / "benchmarks_quick.json"


def unit(rng: np.random.Generator, n: int, dim: int) -> npt.NDArray[np.float32]:
    return l2_normalize(rng.normal(size=(n, dim)).astype(np.float32))


def near(
    target: npt.NDArray[np.float32], rng: np.random.Generator, noise: float
) -> npt.NDArray[np.float32]:
    return l2_normalize(target + noise * rng.normal(size=target.shape).astype(np.float32))


def photo_rows(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    """``n`` rows laid out as the fused pipeline's cache: FaceNet 512 then dlib 128."""
    return join_models({"facenet": unit(rng, n, 512), "dlib": unit(rng, n, 128)}, FUSED)


@pytest.fixture
def patched_scales(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other constants than the committed ones: the bench must follow ``ml.fusion``."""
    monkeypatch.setattr(
        ml.fusion,
        "SCORE_SCALES",
        {"facenet": ScoreScale(0.30, 0.25), "dlib": ScoreScale(0.70, 0.10)},
    )
    monkeypatch.setattr(
        ml.fusion,
        "OPEN_SET_CALIBRATIONS",
        {
            frozenset({"facenet", "dlib"}): ml.fusion.OpenSetCalibration(
                (0.37, 0.0, 0.0, 0.0, 0.0, 0.0),
                max_class_size=100,
                max_school_ratio=10.0,
                target=0.007,
            )
        },
    )


# -- one row per photo, sliced per setting ----------------------------------------------------------


def test_rows_split_into_models_and_back() -> None:
    rows = photo_rows(np.random.default_rng(0), 3)
    parts = split_models(rows, FUSED)
    assert parts["facenet"].shape == (3, 512) and parts["dlib"].shape == (3, 128)
    assert np.array_equal(join_models(parts, FUSED), rows)
    assert list(split_models(rows, FUSED, ["dlib"])) == ["dlib"]
    with pytest.raises(ValueError, match="width"):
        split_models(rows[:, :600], FUSED)


def test_facenet_alone_is_the_facenet_part_of_the_same_rows() -> None:
    rows = photo_rows(np.random.default_rng(1), 4)
    run = ImageEmbeddings(("a", "b", "c", "d"), rows, np.ones(4, np.int32), 4, 1.0, FUSED)
    alone = run.select(FACENET_ALONE)
    assert alone.models == FACENET_ALONE
    assert np.array_equal(alone.embeddings, rows[:, :512])
    assert alone.paths == run.paths and alone.computed == run.computed
    assert np.array_equal(alone.faces_found, run.faces_found)
    assert set(run.by_model([0, 2])) == {"facenet", "dlib"}
    assert np.allclose(run.by_model([0, 2])["dlib"], rows[[0, 2], 512:], atol=1e-6)


def test_variant_names_and_labels() -> None:
    assert variant_name(FUSED) == "rollcall"
    assert variant_name(FACENET_ALONE) == "rollcall_facenet"
    assert "(default)" in variant_label(FUSED) and "dlib" in variant_label(FUSED)
    assert variant_label(FACENET_ALONE) == "Rollcall FaceNet alone"
    fused, alone = RollcallSystem(), RollcallSystem(models=FACENET_ALONE)
    assert (fused.name, alone.name) == ("rollcall", "rollcall_facenet")
    # FaceNet alone keeps the cache key it always had; the fused rows have their own.
    assert "embedders" not in alone.config()
    assert fused.config()["embedders"] == list(FUSED)


def test_default_thresholds_come_from_ml_fusion(patched_scales: None) -> None:
    assert RollcallSystem().default_threshold == 0.37
    assert RollcallSystem().default_threshold_for(12, 40) == 0.37
    assert RollcallSystem().calibrated
    assert RollcallSystem(models=FACENET_ALONE).default_threshold == 0.41
    assert not RollcallSystem(models=FACENET_ALONE).calibrated


# -- verification -----------------------------------------------------------------------------------


def test_fused_pair_score_is_ml_fusion_for_two_photos(patched_scales: None) -> None:
    rng = np.random.default_rng(2)
    first = {"facenet": unit(rng, 5, 512), "dlib": unit(rng, 5, 128)}
    second = {"facenet": near(first["facenet"], rng, 0.05), "dlib": unit(rng, 5, 128)}
    scores = fused_pair_scores(first, second)
    for i in range(5):
        cosines = {m: np.array([[float(first[m][i] @ second[m][i])]], np.float32) for m in first}
        expected = fuse(cosines, {m: np.ones(1, bool) for m in first})[0, 0]
        assert scores[i] == pytest.approx(float(expected), abs=1e-6)
    # Patched scales are used: dlib's cosine 0.7 maps to FaceNet's mean 0.30.
    at_mean = fused_pair_scores(
        {"facenet": np.array([[1.0, 0.0]]), "dlib": np.array([[1.0, 0.0]])},
        {"facenet": np.array([[0.3, 0.0]]), "dlib": np.array([[0.7, 0.0]])},
    )
    assert at_mean[0] == pytest.approx(0.30)


def test_facenet_alone_pair_score_is_the_plain_cosine() -> None:
    rng = np.random.default_rng(3)
    rows = photo_rows(rng, 4)
    run = ImageEmbeddings(("a", "b", "c", "d"), rows, np.ones(4, np.int32), 0, 0.0, FUSED)
    pairs = [LfwPair("a", "b", True, 0), LfwPair("c", "d", False, 0)]
    alone = pair_scores(pairs, run.select(FACENET_ALONE), "cosine", strict=False)
    expected = [float(rows[0, :512] @ rows[1, :512]), float(rows[2, :512] @ rows[3, :512])]
    assert alone == pytest.approx(expected, abs=1e-6)
    fused = pair_scores(pairs, run, "cosine", strict=False)
    assert not np.allclose(fused, alone)


# -- one-shot -------------------------------------------------------------------------------------


def synthetic_class(
    rng: np.random.Generator, students: int, probes_each: int, strangers: int
) -> tuple[ClassSplit, ImageEmbeddings, dict[str, dict[str, npt.NDArray[np.float32]]]]:
    """A class whose genuine probes are noisy copies of the registered face in both models."""
    identity = {f"s{i:02d}": (unit(rng, 1, 512)[0], unit(rng, 1, 128)[0]) for i in range(students)}
    split = ClassSplit(
        {n: [f"{n}/{k}.jpg" for k in range(1 + probes_each)] for n in identity},
        {f"x{i:02d}": [f"x{i:02d}/0.jpg"] for i in range(strangers)},
    )
    paths: list[str] = []
    rows: list[npt.NDArray[np.float32]] = []
    for name, photos in split.students.items():
        for photo in photos:
            paths.append(photo)
            facenet, dlib = identity[name]
            parts = {"facenet": near(facenet, rng, 0.03), "dlib": near(dlib, rng, 0.04)}
            rows.append(join_models(parts, FUSED))
    for photos in split.strangers.values():
        paths += photos
        rows.append(photo_rows(rng, 1)[0])
    found = np.ones(len(paths), np.int32)
    found[-1] = 0  # the last stranger photo has no face: it is never accepted
    images = ImageEmbeddings(tuple(paths), np.stack(rows), found, 0, 0.0, FUSED)
    row = {p: i for i, p in enumerate(paths)}
    views: dict[str, dict[str, npt.NDArray[np.float32]]] = {"facenet": {}, "dlib": {}}
    for photos in split.students.values():
        parts = split_models(images.embeddings[row[photos[0]]][None, :], FUSED)
        views["facenet"][photos[0]] = np.repeat(parts["facenet"], 3, axis=0)
        views["dlib"][photos[0]] = parts["dlib"]
    return split, images, views


def test_fused_class_registers_both_models_and_facenet_alone_one(patched_scales: None) -> None:
    split, images, views = synthetic_class(np.random.default_rng(4), 6, 2, 5)
    fused = rollcall_class(split, views, images)
    alone = rollcall_class(split, views, images.select(FACENET_ALONE))
    assert fused.gallery.models == FUSED and set(fused.probes) == set(FUSED)
    assert alone.gallery.models == FACENET_ALONE and set(alone.probes) == {"facenet"}
    assert np.array_equal(fused.gallery.templates, alone.gallery.templates)
    assert np.array_equal(fused.has_face, alone.has_face)
    assert not fused.has_face[-1]
    outcome = rollcall_outcome(fused, 0.3, None)
    assert outcome.rates()["named_right"] == 1.0
    assert outcome.predicted[-1] is None and outcome.best_score[-1] == NO_SCORE


def test_decide_on_model_mappings_matches_decide_on_facenet_arrays() -> None:
    split, images, views = synthetic_class(np.random.default_rng(5), 5, 2, 6)
    cls = rollcall_class(split, views, images.select(FACENET_ALONE))
    for threshold in (0.2, 0.5):
        ours = decide(cls.probes, cls.truth, cls.gallery, threshold, None)
        reference = decide(cls.probes["facenet"], cls.truth, cls.gallery, threshold, None)
        assert ours.predicted == reference.predicted and ours.top1 == reference.top1
        assert ours.best_score == pytest.approx(reference.best_score)


def test_whole_class_false_accepts_equal_the_decisions(patched_scales: None) -> None:
    split, images, views = synthetic_class(np.random.default_rng(6), 8, 1, 40)
    for subset in (FUSED, FACENET_ALONE):
        cls = rollcall_class(split, views, images.select(subset))
        strangers = [i for i, t in enumerate(cls.truth) if t is None]
        scores = np.where(
            cls.has_face[strangers, None],
            cls.gallery.similarities(cls.probes)[strangers].astype(np.float64),
            NO_SCORE,
        )
        # A threshold that accepts some strangers and rejects others.
        threshold = float(np.median(stage1_scores(cls)[strangers][:-1]))
        rows = false_accept_by_class_size(scores, cohort_accepts(threshold, subset), (3,), seed=0)
        decided = rollcall_outcome(cls, threshold, None).rates()["false_accept"]
        assert [r["students"] for r in rows] == [3, 8]
        assert rows[-1]["classes"] == 1
        assert rows[-1]["false_accept"] == pytest.approx(decided, abs=1e-4)
        assert 0 < rows[-1]["false_accept"] < 1


def test_false_accepts_by_class_size_are_seeded_and_skip_faceless_probes() -> None:
    rng = np.random.default_rng(7)
    scores = rng.uniform(0.0, 1.0, size=(50, 30))
    scores[0] = NO_SCORE  # no face
    accept = cohort_accepts(0.5)
    first = false_accept_by_class_size(scores, accept, (5, 25, 100), seed=1, repeats=4)
    assert first == false_accept_by_class_size(scores, accept, (5, 25, 100), seed=1, repeats=4)
    # Classes drawn from the first columns only; the school cohort is every other column.
    school = cohort_accepts(0.5, school=True)
    drawn = false_accept_by_class_size(scores, school, (5,), seed=1, repeats=4, class_columns=20)
    assert [r["students"] for r in drawn] == [5, 20]
    # A school cohort can only take names away.
    alone = false_accept_by_class_size(scores, accept, (5,), seed=1, repeats=4, class_columns=20)
    assert all(s["false_accept"] <= a["false_accept"] for s, a in zip(drawn, alone, strict=True))
    assert [r["students"] for r in first] == [5, 25, 30]  # 100 > the class: the class itself
    assert all(r["min"] <= r["false_accept"] <= r["max"] for r in first)
    everybody = false_accept_by_class_size(scores, cohort_accepts(-10.0), (), seed=0)
    assert everybody[0]["false_accept"] == pytest.approx(49 / 50)


def test_distance_rule_accepts_within_the_tolerance() -> None:
    distances = np.array([[0.7, 0.55], [0.65, 0.61], [0.6, 0.9]])
    everyone = np.arange(2)
    assert distance_accepts(0.6)(-distances, everyone).tolist() == [True, False, True]
    assert distance_accepts(0.6)(-distances, everyone[1:]).tolist() == [True, False, False]


# -- rendering -----------------------------------------------------------------------------------


def with_facenet_alone(data: dict[str, Any]) -> dict[str, Any]:
    """The quick fixture as the fused bench writes it: FaceNet-alone entries beside ``rollcall``."""
    data = copy.deepcopy(data)
    sections = data["sections"]
    for name in ("verification", "oneshot"):
        systems = sections[name]["results"]["systems"]
        systems[ALT] = copy.deepcopy(systems["rollcall"])
        systems[ALT]["label"] = "Rollcall FaceNet alone"
        systems["rollcall"]["label"] = "Rollcall fused FaceNet + dlib (default)"
    oneshot = sections["oneshot"]["results"]["systems"]
    for name, value in (("rollcall", 0.004), (ALT, 0.002), (PEER, 0.6)):
        oneshot[name]["false_accept_by_class_size"] = {
            "threshold": 0.41,
            "rows": [
                {"students": 5, "classes": 20, "false_accept": value, "min": 0.0, "max": value},
                {"students": 25, "classes": 1, "false_accept": value, "min": value, "max": value},
            ],
        }
    attendance = sections["groups"]["results"]["attendance"]["systems"]
    attendance[ALT] = copy.deepcopy(attendance["rollcall"])
    for photo in sections["speed"]["results"]["stages"]["photos"].values():
        photo[ALT] = copy.deepcopy(photo["rollcall"])
        photo["rollcall"]["end_to_end_ms"] *= 1.5
        photo["rollcall"]["secondary_ms"] = {
            "dlib": {"align": 1.0, "embed": 30.0, "embed_per_face": 30.0}
        }
    for row in sections["speed"]["results"]["embedding"]["rows"]:
        row["rollcall_dlib_per_second"] = 20.0
    return data


def test_renderer_shows_facenet_alone_beside_the_default() -> None:
    data = with_facenet_alone(json.loads(FIXTURE.read_text(encoding="utf-8")))
    text = render_markdown(data)
    assert "Rollcall FaceNet alone (not compared)" in text
    assert "Rollcall fused FaceNet + dlib (default)" in text
    assert "Strangers accepted at the default threshold, by class size" in text
    assert "Rollcall dlib ResNet 150 px passes" in text
    assert "dlib 30.0 ms a face" in text
    assert "ratio Rollcall ÷ Rollcall FaceNet alone" in text
    found = comparisons(data)
    assert any("class of 25 students" in c.what for c in found)
    assert all(c.what in text for c in found)


def test_losses_are_those_of_the_default_not_of_facenet_alone() -> None:
    data = with_facenet_alone(json.loads(FIXTURE.read_text(encoding="utf-8")))
    systems = data["sections"]["verification"]["results"]["systems"]
    systems["rollcall"]["strict"]["accuracy"] = 0.99
    systems[ALT]["strict"]["accuracy"] = 0.5
    systems[PEER]["strict"]["accuracy"] = 0.9
    what = "LFW accuracy, threshold from the other folds (strict)"

    def losses() -> str:
        text = render_markdown(data)
        return text.split("## Where Rollcall loses to face_recognition", 1)[1].split("##", 1)[0]

    assert what not in losses()
    systems["rollcall"]["strict"]["accuracy"] = 0.8
    systems[ALT]["strict"]["accuracy"] = 0.99
    assert what in losses()
    assert "80.00 %" in losses() and "99.00 %" in losses()
