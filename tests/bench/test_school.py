"""The school section (``bench.school``) and its bookkeeping, on hand-made embeddings."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.__main__ import merge_results
from bench.oneshot import decide_columns
from bench.render import comparisons, render_before_after, render_markdown
from bench.school import (
    SCHOOL_SIZES,
    THRESHOLDS,
    features,
    fit_calibration,
    lazy_mirror,
    school_classes,
    threshold_at,
)
from ml.fusion import OpenSetCalibration
from ml.matching import (
    SAME_PERSON_SIMILARITY,
    Cohort,
    Gallery,
    l2_normalize,
    match_faces,
)

FIXTURE = Path(__file__).parent / "fixtures" / "benchmarks_quick.json"


def unit(rng: np.random.Generator, n: int, dim: int = 64) -> np.ndarray:
    return l2_normalize(rng.normal(size=(n, dim)).astype(np.float32))


def test_the_vectorised_decision_is_match_faces_for_one_face() -> None:
    rng = np.random.default_rng(0)
    people = unit(rng, 12)
    # Person 11 is person 0 enrolled again (another class): the look-alike rule drops them.
    people[11] = l2_normalize(people[0] + 0.05 * unit(rng, 1)[0])
    gallery = Gallery.from_views({f"p{i:02d}": people[i : i + 1] for i in range(12)})
    members = np.array([0, 3, 5, 7])
    cohort = np.setdiff1d(np.arange(12), members)
    cls = Gallery.from_views({f"p{i:02d}": people[i : i + 1] for i in members})
    school = Cohort.from_galleries(
        [Gallery.from_views({f"p{i:02d}": people[i : i + 1] for i in cohort})]
    )
    everyone = Cohort.from_galleries([gallery])
    same = everyone.similarities_with(gallery) >= SAME_PERSON_SIMILARITY
    np.fill_diagonal(same, False)
    faces = l2_normalize(people[rng.integers(0, 12, 40)] + 0.6 * unit(rng, 40))
    scores = gallery.similarities(faces)
    decided, kept = decide_columns(scores, members, cohort, same)
    assert kept == len(cohort) - 1
    for threshold in (0.05, 0.2, 0.4):
        named = decided.named(threshold)
        for f in range(len(faces)):
            (decision,), _ = match_faces(faces[f : f + 1], cls, threshold=threshold, cohort=school)
            expected = decision.student_id
            got = f"p{members[decided.best[f]]:02d}" if named[f] else None
            assert got == expected
            assert decided.score[f] == pytest.approx(decision.score, abs=1e-5)


def test_the_fit_recovers_the_calibration_and_ml_fusion_reads_it_the_same_way() -> None:
    truth = (0.43, -0.018, -0.07, 0.0045, 0.0075, 0.0014)
    calibration = OpenSetCalibration(
        truth, max_class_size=1000, max_school_ratio=1000.0, target=0.0
    )
    points = [
        (float(n), float(n + m), calibration.threshold(n, m))
        for n in (5, 10, 20, 40, 80, 160, 300)
        for m in (0, 20, 50, 100, 200, 400)
    ]
    fitted = fit_calibration(points)
    np.testing.assert_allclose(fitted, truth, atol=1e-9)
    assert float(np.dot(truth, features(30, 530))) == pytest.approx(calibration.threshold(30, 500))


def test_the_threshold_at_a_share_is_interpolated_on_the_grid() -> None:
    curve = np.linspace(0.05, 0.0, len(THRESHOLDS))  # falls as the threshold rises
    t = threshold_at(curve, 0.02)
    assert THRESHOLDS[0] < t < THRESHOLDS[-1]
    assert float(np.interp(t, THRESHOLDS, curve)) == pytest.approx(0.02, abs=1e-9)
    assert threshold_at(np.full(len(THRESHOLDS), 0.5), 0.01) == THRESHOLDS[-1]


def test_the_school_is_cut_into_classes_of_the_sizes_asked() -> None:
    classes = school_classes(373, np.random.default_rng(3))
    members = np.concatenate(classes)
    assert sorted(members.tolist()) == list(range(373))
    low, high = SCHOOL_SIZES
    assert all(low <= len(c) for c in classes)
    assert all(len(c) <= high for c in classes[:-1])
    assert len(classes[-1]) < high + low


def test_the_lazy_mirror_keeps_the_decisions_of_mirroring_every_face() -> None:
    rng = np.random.default_rng(5)
    people = unit(rng, 20)
    gallery = Gallery.from_views({f"p{i:02d}": people[i : i + 1] for i in range(20)})
    faces = l2_normalize(people[rng.integers(0, 20, 60)] + 0.7 * unit(rng, 60))
    full = gallery.similarities(faces)
    noise = 0.01 * rng.normal(size=full.shape).astype(np.float32)
    members, cohort = np.arange(8), np.arange(8, 20)
    same = np.zeros((20, 20), dtype=bool)
    decided, _ = decide_columns(full, members, cohort, same)
    threshold = float(np.median(decided.score[~decided.vetoed]))  # many faces near it
    a, b, unsure = lazy_mirror(full, full + noise, members, cohort, same, threshold, 0.05)
    assert (a == b).all()
    assert 0 < unsure.sum() < len(faces)
    # Without a band every face keeps its crops-alone decision, which noise may change.
    _, plain, unsure = lazy_mirror(full, full + 20 * noise, members, cohort, same, threshold, 0.0)
    assert not unsure.any() and (plain != a).any()


def school_results() -> dict[str, Any]:
    row = {
        "students": "all",
        "classes": 3,
        "student_photos": 100,
        "named_right": 0.95,
        "wrong_names": 0,
        "wrong_name": 0.0,
        "outside_photos": 1000,
        "outside_accepted": 0.007,
        "inside_photos": 500,
        "inside_accepted": 0.001,
    }
    peer = {**row, "named_right": 0.97, "outside_accepted": 0.09, "inside_accepted": 0.1}
    point = {
        "offset": 0.0,
        "threshold": 0.38,
        "strangers_accepted": 0.007,
        "strangers_accepted_max": 0.01,
        "named_right": 0.9,
    }
    held = {
        "students": 5,
        "cohort": 0,
        "threshold": 0.4,
        "strangers_accepted": 0.007,
        "strangers_accepted_sd": 0.002,
        "strangers_accepted_max": 0.011,
        "named_right": 0.95,
        "named_right_at_previous": 0.97,
        "strangers_at_previous": 0.019,
    }
    return {
        "protocol": {
            "dataset": "LFW",
            "splits": 2,
            "seed": 0,
            "models": ["facenet", "dlib"],
            "students_per_half": [25, 25],
            "stranger_photos_per_half": [50, 50],
            "same_person_similarity": SAME_PERSON_SIMILARITY,
        },
        "calibration": {
            "target": 0.007,
            "draws": 8,
            "class_sizes": [5],
            "cohort_sizes": [0],
            "fitted": [0.43, 0, 0, 0, 0, 0],
            "committed": [0.43, 0, 0, 0, 0, 0],
            "fit_residual_sd": 0.001,
            "fit_residual_max": 0.002,
            "points": [],
            "held_out": [held],
            "curves": [{"students": 5, "cohort": 0, "points": [point]}],
        },
        "school": {
            "class_sizes": [5, 40],
            "classes": 3,
            "systems": {
                "school": {"label": "Rollcall, the school as cohort (default)", "rows": [row]},
                "alone": {"label": "Rollcall, each class alone (default)", "rows": [row]},
                "face_recognition": {"label": "face_recognition", "rows": [peer]},
            },
        },
        "mirror": {
            "band": 0.05,
            "rows": [{"setting": "alone", "faces": 10, "same_decision": 1.0, "mirrored": 0.1}],
        },
        "known_strangers": {
            "returning_strangers": 10,
            "named_again": 3,
            "named_again_with_known_stranger": 0,
            "student_photos": 100,
            "named_right": 0.95,
            "named_right_with_known_strangers": 0.94,
            "known_strangers_per_class": 2.0,
        },
    }


def test_the_school_section_renders_and_is_compared() -> None:
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    data["sections"]["school"] = {
        **copy.deepcopy(data["sections"]["oneshot"]),
        "results": school_results(),
    }
    text = render_markdown(data)
    assert "### Threshold with a margin" in text
    assert "### A simulated school" in text
    assert "### Known strangers" in text
    found = [c for c in comparisons(data) if c.section == "school"]
    assert {c.winner for c in found if "outside" in c.what} == {"Rollcall"}
    assert all(c.what in text for c in found)


def test_a_section_run_again_the_same_day_keeps_the_figures_before_that_day() -> None:
    def oneshot(named: float, date: str) -> dict[str, Any]:
        rates = {"rank1": 1.0, "named_right": named, "wrong_name": 0.0, "false_accept": 0.01}
        method = {"label": "stage 1", "default_threshold": 0.36, "at_default": rates}
        return {
            "date": date,
            "command": "python -m bench --sections oneshot",
            "seconds": 1.0,
            "load_average_before": [0.1],
            "load_average_after": [0.1],
            "machine": {"git_commit": "0123456789ab"},
            "results": {"systems": {"rollcall": {"methods": {"stage1": method}}}},
        }

    first = merge_results(
        {"sections": {"oneshot": oneshot(0.8, "2026-11-29T10:00:00Z")}},
        {"oneshot": oneshot(0.85, "2026-12-06T10:00:00Z")},
        {},
    )
    again = merge_results(first, {"oneshot": oneshot(0.86, "2026-12-06T12:00:00Z")}, {})
    previous = again["sections"]["oneshot"]["previous"]
    assert previous["date"] == "2026-11-29T10:00:00Z"
    assert previous["methods"]["stage1"]["at_default"]["named_right"] == 0.8
    text = "\n".join(render_before_after(again))
    assert "one-shot test class at the default" in text and "80.00 %" in text
