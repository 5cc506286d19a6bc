"""Pure helpers of ``python -m bench``: the LFW split, scoring rules, merging and the renderer.

No model runs here; the full benchmark is never part of the test run. The renderer is fed a JSON
written by a real ``--quick`` run (``fixtures/benchmarks_quick.json``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.__main__ import merge_results, parse_sections
from bench.groups import score_names
from bench.oneshot import split_lfw
from bench.render import comparisons, render_markdown
from bench.render_common import PEER
from bench.systems import ImageEmbeddings
from bench.verification import FAILED, pair_scores
from ml.eval.lfw import LfwPair, cross_validated_accuracy

FIXTURE = Path(__file__).parent / "fixtures" / "benchmarks_quick.json"


@pytest.fixture
def quick_results() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


def fake_identities() -> dict[str, list[str]]:
    counts = {f"person_{i:02d}": 1 + i % 5 for i in range(40)}
    return {name: [f"{name}/{name}_{k:04d}.jpg" for k in range(n)] for name, n in counts.items()}


def test_split_keeps_calibration_and_test_apart() -> None:
    identities = fake_identities()
    calibration, test = split_lfw(identities, seed=3)
    for half in (calibration, test):
        assert all(len(photos) >= 3 for photos in half.students.values())
        assert all(len(photos) < 3 for photos in half.strangers.values())
    names = [set(h.students) | set(h.strangers) for h in (calibration, test)]
    assert not names[0] & names[1]
    assert names[0] | names[1] == set(identities)
    cal_photos = {p for _, p in calibration.probes()} | {
        ps[0] for ps in calibration.students.values()
    }
    test_photos = {p for _, p in test.probes()} | {ps[0] for ps in test.students.values()}
    assert not cal_photos & test_photos


def test_split_is_seeded_and_capped() -> None:
    identities = fake_identities()
    assert split_lfw(identities, seed=1) == split_lfw(identities, seed=1)
    assert split_lfw(identities, seed=1) != split_lfw(identities, seed=2)
    calibration, test = split_lfw(identities, seed=1, max_students=2, max_strangers=3)
    assert len(calibration.students) == len(test.students) == 2
    assert len(calibration.strangers) == len(test.strangers) == 3


def test_probes_exclude_the_registered_photo() -> None:
    calibration, _ = split_lfw(fake_identities(), seed=0)
    probes = calibration.probes()
    for name, photos in calibration.students.items():
        assert (name, photos[0]) not in probes
        assert all((name, p) in probes for p in photos[1:])
    assert sum(1 for truth, _ in probes if truth is None) == sum(
        len(p) for p in calibration.strangers.values()
    )


def test_a_person_named_twice_counts_once_as_right() -> None:
    people = frozenset({"ann", "bob"})
    assert score_names(["ann", "ann", "eve"], people) == (1, 3, 2)
    assert score_names([], people) == (0, 0, 2)


def test_strict_policy_calls_pairs_with_a_faceless_photo_different() -> None:
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
    run = ImageEmbeddings(
        ("a", "b", "c", "d"), embeddings, np.array([1, 1, 1, 0], np.int32), 0, 0.0
    )
    pairs = [
        LfwPair("a", "b", True, 0),
        LfwPair("a", "d", True, 0),
        LfwPair("a", "c", False, 1),
        LfwPair("b", "d", True, 1),
    ]
    strict = pair_scores(pairs, run, "cosine", strict=True)
    fallback = pair_scores(pairs, run, "cosine", strict=False)
    assert strict[1] == FAILED and strict[3] == FAILED
    assert fallback[1] == pytest.approx(1.0)
    distances = pair_scores(pairs, run, "euclidean", strict=False)
    assert distances[2] == pytest.approx(-np.sqrt(2))
    result = cross_validated_accuracy(strict, [p.same for p in pairs], [p.fold for p in pairs])
    assert result.accuracy < 1.0  # the failed same-person pairs are errors, not dropped


def test_merge_replaces_only_the_sections_run() -> None:
    existing = {"sections": {"verification": {"results": 1}, "speed": {"results": 2}}}
    merged = merge_results(existing, {"speed": {"results": 3}}, {"cpu": "x"})
    assert merged["sections"] == {"verification": {"results": 1}, "speed": {"results": 3}}
    assert merged["machine"] == {"cpu": "x"}


def test_a_new_speed_run_keeps_the_figures_of_the_run_it_replaces() -> None:
    def run(ms: float, date: str) -> dict[str, Any]:
        photo = {"rollcall": {"faces": 5, "end_to_end_ms": ms}}
        return {
            "date": date,
            "results": {
                "stages": {"photos": {"HTTP photo": photo}},
                "embedding": {"rows": [{"batch": 8, "rollcall_per_second": 1000 / ms}]},
                "http": {"rss_idle_bytes": 2**30, "rss_peak_bytes": 2**31},
            },
        }

    merged = merge_results(
        {"sections": {"speed": run(800, "then")}}, {"speed": run(400, "now")}, {}
    )
    speed = merged["sections"]["speed"]
    assert speed["results"]["stages"]["photos"]["HTTP photo"]["rollcall"]["end_to_end_ms"] == 400
    previous = speed["previous"]
    assert previous["date"] == "then"
    assert previous["photos"]["HTTP photo"]["rollcall"] == {"faces": 5, "end_to_end_ms": 800}
    assert previous["embedding"] == [{"batch": 8, "rollcall_per_second": 1.25}]
    assert previous["rss_idle_bytes"] == 2**30
    # Only one run back: the summary of the summary is not kept.
    again = merge_results(merged, {"speed": run(300, "later")}, {})
    assert again["sections"]["speed"]["previous"]["date"] == "now"
    assert "previous" not in again["sections"]["speed"]["previous"]


def test_sections_are_validated_and_ordered() -> None:
    assert parse_sections("speed,verification") == ["verification", "speed"]
    with pytest.raises(Exception, match="unknown section"):
        parse_sections("verification,lfw")


def test_renderer_shows_every_section_and_every_figure(quick_results: dict[str, Any]) -> None:
    text = render_markdown(quick_results)
    for title in ("Verification", "One-shot", "Group photos", "Speed", "gallery grows"):
        assert title in text
    assert "Quick run" in text
    found = comparisons(quick_results)
    assert found
    for comparison in found:
        assert comparison.what in text


def test_every_loss_is_listed(quick_results: dict[str, Any]) -> None:
    data = copy.deepcopy(quick_results)
    verification = data["sections"]["verification"]["results"]["systems"]
    verification["rollcall"]["strict"]["accuracy"] = 0.5
    verification[PEER]["strict"]["accuracy"] = 0.9
    text = render_markdown(data)
    losses = text.split("## Where Rollcall loses to face_recognition", 1)[1].split("##", 1)[0]
    assert "LFW accuracy, threshold from the other folds (strict)" in losses
    assert "50.00 %" in losses and "90.00 %" in losses
    verification["rollcall"]["strict"]["accuracy"] = 0.95
    text = render_markdown(data)
    losses = text.split("## Where Rollcall loses to face_recognition", 1)[1].split("##", 1)[0]
    assert "LFW accuracy, threshold from the other folds (strict)" not in losses
