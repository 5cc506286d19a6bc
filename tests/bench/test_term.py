"""The simulated term (``bench.term``) on hand-made embeddings: classes, sessions, corrections."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bench.render import render_markdown
from bench.systems import ImageEmbeddings
from bench.term import (
    MIN_PHOTOS,
    NamedFace,
    Policy,
    TermClass,
    TermData,
    auto_confirm_grid,
    merged_images,
    policies,
    simulate,
    term_classes,
)
from ml.matching import l2_normalize
from ml.samples import DEFAULT_MAX_SAMPLES


def fake_identities() -> dict[str, list[str]]:
    counts = {f"person_{i:02d}": 1 + i % 9 for i in range(90)}
    return {name: [f"{name}/{name}_{k:04d}.jpg" for k in range(n)] for name, n in counts.items()}


def test_classes_hold_each_student_once_and_strangers_once() -> None:
    identities = fake_identities()
    classes = term_classes(identities, seed=3, class_size=10)
    students = [n for c in classes for n in c.students]
    assert len(students) == len(set(students))
    assert set(students) == {n for n, p in identities.items() if len(p) >= MIN_PHOTOS}
    assert all(len(c.students) >= 10 for c in classes)
    strangers = [p for c in classes for week in c.strangers for p in week]
    assert len(strangers) == len(set(strangers))
    assert all(len(identities[p.split("/")[0]]) < 3 for p in strangers)
    for c in classes:
        assert len(c.strangers) == c.weeks == max(len(p) for p in c.students.values()) - 1
    assert term_classes(identities, seed=3, class_size=10) == classes
    (whole,) = term_classes(identities, seed=3, class_size=None)
    assert set(whole.students) == set(students)


def synthetic_term(
    n_students: int = 8, weeks: int = 5, seed: int = 0
) -> tuple[TermClass, TermData]:
    """Students whose registration photo is poor (about half their later photos fall below the
    threshold against it) and whose later photos are alike; strangers unlike anybody."""
    rng = np.random.default_rng(seed)
    dim = 512
    centres = l2_normalize(rng.normal(size=(n_students, dim)))
    students: dict[str, list[str]] = {}
    rows: dict[str, np.ndarray] = {}
    registration: dict[str, np.ndarray] = {}
    for i in range(n_students):
        name = f"s{i}"
        photos = [f"{name}/{k}.jpg" for k in range(weeks + 1)]
        students[name] = photos
        off = l2_normalize(rng.normal(size=dim))
        registration[photos[0]] = l2_normalize(centres[i] + 2.0 * off)[None, :].repeat(3, axis=0)
        for p in photos[1:]:
            rows[p] = l2_normalize(centres[i] + 0.5 * l2_normalize(rng.normal(size=dim)))
    strangers = [[f"x{w}_{k}/0.jpg" for k in range(2)] for w in range(weeks)]
    for week in strangers:
        for p in week:
            rows[p] = l2_normalize(rng.normal(size=dim))
    paths = tuple(rows)
    images = ImageEmbeddings(
        paths,
        np.stack([rows[p] for p in paths]).astype(np.float32),
        np.ones(len(paths), np.int32),
        0,
        0.0,
        ("facenet",),
    )
    return TermClass(students, strangers), TermData(images, {"facenet": registration})


def test_the_teacher_s_corrections_teach_the_class() -> None:
    term, data = synthetic_term()
    chosen = policies()
    without, _, _ = simulate(term, chosen["none"], data, ("facenet",))
    learning, named, _ = simulate(term, chosen["teacher_mean"], data, ("facenet",))
    assert without[0].named_right < len(term.students)  # a poor start
    assert learning[0].named_right == without[0].named_right  # week 1: nothing learnt yet
    assert sum(w.named_right for w in learning[1:]) > sum(w.named_right for w in without[1:])
    assert learning[-1].named_right == len(term.students)
    assert sum(w.wrong_name + w.strangers_accepted for w in learning) == 0
    # Every face missed in week 1 is assigned by the teacher.
    assert learning[0].samples_teacher == len(term.students) - without[0].named_right
    assert all(w.samples_kept <= DEFAULT_MAX_SAMPLES * len(term.students) for w in learning)
    assert all(n.right for n in named)
    # No learning keeps no samples.
    assert all(w.samples_kept == 0 and w.samples_teacher == 0 for w in without)


def test_a_recurring_stranger_the_teacher_cleared_is_not_named_again() -> None:
    """A visitor who looks like student s0 comes every week; named in week 1, cleared by the
    teacher: with known strangers never named again, without them named again (whenever s0's
    own face does not take the name first: a student is named on one face at most)."""
    term, data = synthetic_term(weeks=5)
    rng = np.random.default_rng(9)
    s0 = data.registration["facenet"][term.students["s0"][0]].mean(axis=0)
    look = l2_normalize(s0 + 0.35 * l2_normalize(rng.normal(size=s0.shape)))
    visits = [f"visitor/{k}.jpg" for k in range(5)]
    rows = [l2_normalize(look + 0.08 * l2_normalize(rng.normal(size=s0.shape))) for _ in visits]
    images = dataclasses.replace(
        data.images,
        paths=data.images.paths + tuple(visits),
        embeddings=np.concatenate([data.images.embeddings, np.stack(rows).astype(np.float32)]),
        faces_found=np.concatenate([data.images.faces_found, np.ones(5, np.int32)]),
    )
    term = dataclasses.replace(term, recurring=tuple(visits))
    data = TermData(images, data.registration)
    chosen = policies()
    alone = dataclasses.replace(chosen["teacher_mean"], threshold=0.3)
    known = dataclasses.replace(chosen["school"], threshold=0.3)
    without, _, _ = simulate(term, alone, data, ("facenet",))
    with_known, _, _ = simulate(term, known, data, ("facenet",))
    assert [w.recurring_faces for w in with_known] == [1] * 5
    assert without[0].recurring_accepted == with_known[0].recurring_accepted == 1
    assert sum(w.recurring_accepted for w in without[1:]) >= 1
    assert sum(w.recurring_accepted for w in with_known[1:]) == 0
    assert with_known[-1].known_strangers == 1
    # The class's students are named at least as often (the visitor no longer takes s0's name).
    assert sum(w.named_right for w in with_known) >= sum(w.named_right for w in without)


def test_the_sample_bound_holds() -> None:
    term, data = synthetic_term(weeks=6)
    bounded = dataclasses.replace(policies()["teacher_mean"], max_samples=2)
    weeks, _, _ = simulate(term, bounded, data, ("facenet",))
    assert max(w.samples_kept for w in weeks) <= 2 * len(term.students)
    assert weeks[-1].samples_kept == 2 * len(term.students)


def test_auto_confirm_only_learns_only_from_sure_faces() -> None:
    term, data = synthetic_term()
    auto: Policy = policies()["auto_mean"]
    weeks, _, _ = simulate(term, auto, data, ("facenet",))
    assert sum(w.samples_teacher for w in weeks) == 0
    assert sum(w.wrong_samples_auto for w in weeks) == 0
    assert weeks[-1].samples_kept == sum(w.samples_auto for w in weeks)


def test_grid_counts_what_each_rule_would_confirm() -> None:
    named = [NamedFace(0.3, 0.4, True), NamedFace(0.08, 0.3, False), NamedFace(0.12, 0.1, True)]
    rows = {(r["min_score_margin"], r["min_runner_up_gap"]): r for r in auto_confirm_grid(named)}
    assert rows[(0.0, 0.0)]["wrong_confirmed"] == 1
    assert rows[(0.1, 0.0)]["wrong_confirmed"] == 0
    assert rows[(0.1, 0.0)]["right_confirmed"] == 2
    assert rows[(0.1, 0.15)]["right_confirmed"] == 1


def test_the_section_renders_every_week_and_the_head_verdict() -> None:
    """Rendered from a real ``python -m bench --quick --sections term`` run."""
    data = json.loads((Path(__file__).parent / "fixtures" / "term_quick.json").read_text("utf-8"))
    text = render_markdown(data)
    assert "Learning from confirmed faces" in text
    section = text.split("Learning from confirmed faces", 1)[1]
    term = data["sections"]["term"]["results"]
    for scenario in term["scenarios"].values():
        for policy in scenario["policies"].values():
            assert policy["label"] in section
        weeks = next(iter(scenario["policies"].values()))["weeks"]
        for week in weeks:
            assert (
                f"| {week['week']} | {week['student_faces']} | {week['stranger_faces']} |"
                in section
            )
    assert "**The head:**" in section
    assert "Choosing the auto-confirm rule" in section


def test_merged_images_keep_every_row_and_refuse_collisions() -> None:
    _, data = synthetic_term(n_students=2, weeks=1)
    images = data.images
    half = len(images.paths) // 2
    first = dataclasses.replace(
        images,
        paths=images.paths[:half],
        embeddings=images.embeddings[:half],
        faces_found=images.faces_found[:half],
    )
    second = dataclasses.replace(
        images,
        paths=images.paths[half:],
        embeddings=images.embeddings[half:],
        faces_found=images.faces_found[half:],
    )
    merged = merged_images(first, second)
    assert merged.paths == images.paths
    np.testing.assert_array_equal(merged.embeddings, images.embeddings)
    with pytest.raises(ValueError, match="cannot merge"):
        merged_images(first, first)
