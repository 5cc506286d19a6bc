"""End-to-end cost of the two things a teacher does: register a student, take attendance.

Run: ``uv run python -m bench.bench_pipeline [--runs N]``; writes a markdown table to stdout.
Needs ``../shared`` (or ``$ROLLCALL_SHARED_DIR``). Registration = detect + crop + 15 augmented views
+ embed (``FacePipeline.enroll``); attendance = detect + embed every face (crop and mirror) + match
against the face-api.js cast (``FacePipeline.recognize``). Medians of ``--runs`` after a warm-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ml.config import PipelineConfig
from ml.eval.photos import load_rgb
from ml.factory import build_pipeline
from ml.matching import Gallery

SHARED_DIR = Path(
    os.environ.get("ROLLCALL_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared")
)
CAST = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")
PHOTOS = ("face_api_js__bbt3.jpg", "retinaface__img3.jpg", "deepface__couple.jpg")


def median_ms(action: Callable[[], object], runs: int) -> float:
    action()
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        durations.append(time.perf_counter() - started)
    return 1000 * statistics.median(durations)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_pipeline", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    pipeline = build_pipeline(PipelineConfig())
    people = SHARED_DIR / "faces" / "people"
    registration = {
        name: load_rgb(sorted((people / f"face_api_js__{name}").iterdir())[0]) for name in CAST
    }
    gallery = Gallery.from_views(
        {name: pipeline.enroll(image).views for name, image in registration.items()}
    )
    out = sys.stdout
    out.write(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads default; "
        f"median of {args.runs} runs\n\n| operation | faces | median ms |\n|---|---:|---:|\n"
    )
    sheldon = registration["sheldon"]
    out.write(
        f"| register one student (150 px photo, 15 views) | 1 | "
        f"{median_ms(lambda: pipeline.enroll(sheldon), args.runs):.0f} |\n"
    )
    for name in PHOTOS:
        image = load_rgb(SHARED_DIR / "faces" / "groups" / name)
        faces = len(pipeline.detect(image))
        cost = median_ms(lambda: pipeline.recognize(image, gallery), args.runs)  # noqa: B023
        out.write(
            f"| attendance: {name} ({image.shape[1]}x{image.shape[0]}) | {faces} | {cost:.0f} |\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
