"""Labels on an annotated photo: inside the image, clear of each other, readable; and drawn where
the layout says, in the face's colour."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from ml.annotate import (
    KNOWN_COLOUR,
    UNKNOWN_COLOUR,
    Label,
    Rect,
    annotate,
    label_rectangles,
    layout_labels,
)
from ml.pipeline import FaceMatch
from ml.types import DetectedFace

Box = tuple[float, float, float, float]

NAMES = ("Sheldon Cooper", "Leonard Hofstadter", "Penny", "Howard Wolowitz", "Raj", "unknown")


def _assert_clear(rects: list[Rect | None] | list[Rect], width: int, height: int) -> None:
    placed = [r for r in rects if r is not None]
    for rect in placed:
        assert rect.inside(width, height), (rect, width, height)
        assert rect.x2 > rect.x1 and rect.y2 > rect.y1, rect
    for a, b in itertools.combinations(placed, 2):
        assert not a.overlaps(b), (a, b)


def _rects(labels: list[Label | None]) -> list[Rect]:
    return [label.rect for label in labels if label is not None]


def _crowd(columns: int, rows: int, side: float, x0: float = 0, y0: float = 0) -> list[Box]:
    """Faces side by side in rows, each touching its neighbours."""
    return [
        (x0 + c * side, y0 + r * side, x0 + (c + 1) * side, y0 + (r + 1) * side)
        for r in range(rows)
        for c in range(columns)
    ]


def test_a_crowd_filling_the_photo_gets_every_label_inside_and_apart() -> None:
    # 8 x 5 faces of 100 px fill an 800 x 500 photo to its edges: no room above the top row,
    # below the bottom row or beside the outer columns.
    width, height = 800, 500
    boxes = _crowd(8, 5, 100)
    labels = layout_labels(boxes, [NAMES[i % len(NAMES)] for i in range(len(boxes))], width, height)
    assert all(label is not None for label in labels)
    _assert_clear(_rects(labels), width, height)


def test_faces_cut_by_every_edge_keep_their_labels_inside() -> None:
    width, height = 640, 480
    boxes: list[Box] = [
        (-30, -20, 60, 90),  # top-left corner, partly outside
        (590, -10, 700, 80),  # top-right corner, partly outside
        (-40, 400, 50, 520),  # bottom-left corner
        (600, 420, 660, 490),  # bottom-right corner
        (300, -50, 360, 10),  # mostly above the photo
        (300, 470, 360, 530),  # mostly below the photo
        (610, 200, 700, 290),  # the right edge, middle
    ]
    labels = layout_labels(boxes, ["Leonard Hofstadter"] * len(boxes), width, height)
    assert all(label is not None for label in labels)
    _assert_clear(_rects(labels), width, height)


def test_labels_of_a_row_of_small_faces_do_not_cover_each_other() -> None:
    # Faces far narrower than their names, in a row: each label is wider than its face, so
    # side by side they would overlap; some move up or down.
    width, height = 1200, 400
    boxes = _crowd(20, 1, 40, x0=200, y0=180)
    labels = layout_labels(boxes, ["Howard Wolowitz"] * len(boxes), width, height)
    _assert_clear(_rects(labels), width, height)
    # The first (leftmost) label is above its face, where it was preferred.
    first = labels[0]
    assert first is not None and first.rect.y2 <= 180


def test_the_preferred_places_above_else_below_else_inside() -> None:
    width, height = 400, 300
    size = (80, 20)
    above, below, inside = label_rectangles(
        [(100, 100, 160, 160), (200, 5, 260, 60), (20, 0, 80, 300)], [size] * 3, width, height
    )
    assert above == Rect(100, 80, 180, 100)
    assert below == Rect(200, 60, 280, 80)  # no room above: below
    assert inside == Rect(20, 0, 100, 20)  # the face is as tall as the photo: inside its top
    # A face at the right edge: its label moves left to stay inside.
    (right,) = label_rectangles([(380, 100, 400, 140)], [size], width, height)
    assert right == Rect(320, 80, 400, 100)


def test_duplicate_faces_are_labelled_apart_and_empty_labels_take_no_room() -> None:
    width, height = 300, 300
    box: Box = (100, 100, 180, 180)
    rects = label_rectangles([box] * 4 + [box], [(90, 18)] * 4 + [None], width, height)
    assert rects[4] is None
    _assert_clear(rects, width, height)


def test_a_label_wider_than_the_photo_is_shortened_to_fit() -> None:
    width, height = 120, 90
    (label,) = layout_labels([(10, 10, 50, 50)], ["Leonard Hofstadter-Wolowitz"], width, height)
    assert label is not None
    assert label.text.endswith("..") and label.text.startswith("Leo")
    _assert_clear([label.rect], width, height)


@pytest.mark.parametrize("seed", range(25))
def test_random_crowds_stay_inside_and_apart(seed: int) -> None:
    rng = random.Random(seed)
    width, height = rng.choice([(640, 480), (1600, 900), (300, 400)])
    faces = []
    for _ in range(rng.randint(2, 14)):
        side = rng.uniform(0.06, 0.25) * min(width, height)
        x, y = rng.uniform(-side / 2, width - side / 2), rng.uniform(-side / 2, height - side / 2)
        faces.append((x, y, x + side, y + side))
    names = [rng.choice(NAMES) for _ in faces]
    _assert_clear(_rects(layout_labels(faces, names, width, height)), width, height)


def _match(box: Box, student_id: str | None) -> FaceMatch:
    face = DetectedFace(box=box, score=0.99, landmarks=np.zeros((5, 2), dtype=np.float32))
    return FaceMatch(
        face=face, student_id=student_id, similarity=0.8, head_similarity=None, candidate_id=None
    )


def test_annotate_draws_each_label_where_the_layout_puts_it() -> None:
    width, height = 600, 400
    image = np.full((height, width, 3), 30, dtype=np.uint8)
    boxes = _crowd(6, 4, 100)  # the whole photo, edge to edge
    known = [i % 3 != 0 for i in range(len(boxes))]
    names = [NAMES[i % 5] if k else "unknown" for i, k in enumerate(known)]
    matches = [_match(b, "s" if k else None) for b, k in zip(boxes, known, strict=True)]
    drawn = annotate(image, matches, names)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (image == 30).all()  # the original is left as it was
    labels = layout_labels(boxes, names, width, height)
    _assert_clear(_rects(labels), width, height)
    for label, is_known in zip(labels, known, strict=True):
        assert label is not None
        # The label's background (its top-left pixel, outside the text) is the face's colour.
        colour = KNOWN_COLOUR if is_known else UNKNOWN_COLOUR
        assert tuple(drawn[label.rect.y1, label.rect.x1]) == colour
        # White text inside it.
        inside = drawn[label.rect.y1 : label.rect.y2, label.rect.x1 : label.rect.x2]
        assert (inside.min(axis=2) > 200).any()


def test_annotate_scales_the_font_with_the_photo_and_shrinks_large_photos() -> None:
    small = layout_labels([(100, 100, 200, 200)], ["Penny"], 640, 480)[0]
    large = layout_labels([(1000, 1000, 2000, 2000)], ["Penny"], 6400, 4800)[0]
    assert small is not None and large is not None
    assert small.text_height >= 9  # readable on a small photo
    assert large.text_height > 5 * small.text_height  # and as readable on a large one
    image = np.zeros((3000, 4000, 3), dtype=np.uint8)
    drawn = annotate(image, [_match((3900, 2900, 4100, 3100), "s")], ["Penny"], max_side=1600)
    assert drawn.shape == (1200, 1600, 3)
