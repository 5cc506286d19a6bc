"""Pure helpers of the service-term section (``bench.service_term``): the class photo's grid and
which tile a detected face belongs to, and the week totals."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from bench.render import render_markdown
from bench.render_service_term import outcome
from bench.service_term import (
    WeekCounts,
    faces_by_cell,
    grid_cell,
    grid_jpeg,
    grid_rows,
    weeks_total,
)


def test_grid_rows_round_up() -> None:
    assert grid_rows(33, 6) == 6
    assert grid_rows(36, 6) == 6
    assert grid_rows(37, 6) == 7
    assert grid_rows(0, 6) == 1


def test_a_box_belongs_to_the_cell_of_its_centre() -> None:
    # 3 columns, 2 rows of 100 px.
    assert grid_cell((10, 10, 90, 90), 100, 3, 2) == 0
    assert grid_cell((210, 110, 290, 190), 100, 3, 2) == 5
    # Mostly in cell 0, but its centre (105, 50) is in cell 1.
    assert grid_cell((60, 20, 150, 80), 100, 3, 2) == 1
    assert grid_cell((310, 10, 390, 90), 100, 3, 2) is None  # right of the grid
    assert grid_cell((10, 210, 90, 290), 100, 3, 2) is None  # below it
    assert grid_cell((-90, 10, -10, 90), 100, 3, 2) is None  # left of it


def test_each_cell_keeps_the_face_nearest_its_centre() -> None:
    boxes = [
        (0, 0, 20, 20),  # cell 0, a corner: background
        (30, 30, 70, 70),  # cell 0, centred: the tile's face
        (130, 20, 170, 60),  # cell 1
        (500, 500, 540, 540),  # outside a 2 x 1 grid
    ]
    chosen, others = faces_by_cell(boxes, 100, 2, 1)
    assert chosen == {0: 1, 1: 2}
    assert others == [0, 3]


def test_grid_jpeg_puts_each_photo_in_its_cell(tmp_path: Path) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    paths = []
    for i, colour in enumerate(colours):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (40, 40), colour).save(path)
        paths.append(path)
    with Image.open(io.BytesIO(grid_jpeg(paths, 2, tile_px=50))) as opened:
        assert opened.format == "JPEG"
        pixels = np.asarray(opened.convert("RGB"), dtype=int)
    assert pixels.shape == (100, 100, 3)
    for index, colour in enumerate([*colours, (255, 255, 255)]):
        row, column = divmod(index, 2)
        centre = pixels[row * 50 + 25, column * 50 + 25]
        assert np.abs(centre - np.array(colour)).max() < 40, (index, centre)


def test_totals_add_the_weeks_from_the_first_asked() -> None:
    weeks = [
        WeekCounts(1, student_tiles=10, not_detected=1, named_right=6, missed=2, wrong=1),
        WeekCounts(2, student_tiles=10, named_right=9, missed=1, strangers_accepted=1),
        WeekCounts(3, student_tiles=8, not_detected=2, named_right=6),
    ]
    total = weeks_total(weeks, 2)
    assert total["weeks"] == "2-3"
    assert total["student_tiles"] == 18 and total["not_detected"] == 2
    assert total["named_right"] == 15 and total["missed"] == 1 and total["wrong"] == 0
    assert total["strangers_accepted"] == 1
    assert total["named_right_rate"] == round(15 / 16, 4)
    assert weeks_total(weeks, 1)["named_right_rate"] == round(21 / 25, 4)


def test_the_section_renders_every_week_of_both_runs() -> None:
    """Rendered from a real ``python -m bench --sections service-term`` run."""
    fixture = Path(__file__).parent / "fixtures" / "service_term.json"
    data = json.loads(fixture.read_text("utf-8"))
    text = render_markdown(data)
    assert "Corrections and learning through the service" in text
    section = text.split("Corrections and learning through the service", 1)[1]
    runs = data["sections"]["service-term"]["results"]["runs"]
    for index, week in enumerate(runs["learning"]["weeks"]):
        other = runs["no_learning"]["weeks"][index]
        shown = week["student_tiles"] - week["not_detected"]
        row = (
            f"| {week['week']} | {shown} | {week['stranger_tiles']} | "
            f"{outcome(week)} | {week['samples']} | {outcome(other)} | {other['samples']} |"
        )
        assert row in section
    for label, name in (("learning on (defaults)", "learning"), ("learning off", "no_learning")):
        line = next(x for x in section.splitlines() if x.startswith(f"| {label} |"))
        for span in runs[name]["totals"]:
            assert outcome(span) in line
        assert f"{runs[name]['samples_at_end']} ({runs[name]['wrong_samples_at_end']})" in line
