"""Registration photos that show several faces: how many the dominant-face rule refuses, and how
many can be registered once the teacher chooses the face (``face`` on the API, a tap in the
console).

``uv run python -m bench.face_choice [--lfw 500]``: every photo of ``../shared/faces/people``
(and of the first ``--lfw`` people of LFW with two photos or more) is enrolled as a registration
photo. Of those refused for showing several faces with none dominant, each face
is enrolled in turn (the teacher's choice) and compared with the person's other photos (their
FaceNet embeddings); the chosen face is the person's when it is the most similar face of the
photo to them and that similarity (FaceNet cosine) reaches :data:`SAME_PERSON`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ml.config import PipelineConfig
from ml.eval.photos import load_rgb
from ml.eval.shared_data import shared_dir
from ml.factory import build_pipeline
from ml.pipeline import FacePipeline, MultipleFacesError, NoFaceError

SAME_PERSON = 0.5
"""FaceNet cosine of two photos of one person in ``faces/people`` (another person scores at most
about 0.4: docs/accuracy.md, "Telling strangers apart")."""
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
PHOTOS_PER_PERSON = 6
"""At most (LFW has 530 photos of one person)."""


def _embedding(pipeline: FacePipeline, path: Path, face: int | None = None) -> np.ndarray | None:
    try:
        views = pipeline.enrol(load_rgb(path), face).views
    except (NoFaceError, MultipleFacesError, ValueError):
        return None
    row: np.ndarray = views[0] / np.linalg.norm(views[0])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.face_choice")
    parser.add_argument("--lfw", type=int, default=500, help="LFW people to add (0: none)")
    args = parser.parse_args()
    pipeline = build_pipeline(PipelineConfig(n_views=1))
    people = shared_dir() / "faces" / "people"
    lfw = shared_dir() / "faces" / "lfw"
    folders = sorted(p for p in people.iterdir() if p.is_dir())
    folders += [p for p in sorted(lfw.iterdir()) if p.is_dir() and len(list(p.iterdir())) >= 2][
        : args.lfw
    ]
    several = registrable = photos = people_with = crowded = 0
    for folder in folders:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        paths = paths[:PHOTOS_PER_PERSON]
        photos += len(paths)
        refused: list[tuple[Path, int]] = []
        others = []
        for path in paths:
            try:
                crowded += len(pipeline.enrol(load_rgb(path)).faces_found) > 1
            except MultipleFacesError as error:
                crowded += 1
                refused.append((path, len(error.faces)))
                continue
            except NoFaceError:
                continue
            row = _embedding(pipeline, path)
            if row is not None:
                others.append(row)
        if not refused:
            continue
        people_with += 1
        several += len(refused)
        if not others:
            continue  # nothing to tell the person's face by
        reference = np.mean(others, axis=0)
        reference /= np.linalg.norm(reference)
        for path, count in refused:
            scores = [
                float(row @ reference)
                for index in range(count)
                if (row := _embedding(pipeline, path, index)) is not None
            ]
            if scores and max(scores) >= SAME_PERSON:
                registrable += 1
    print(
        f"{time.strftime('%Y-%m-%d', time.gmtime())}: {photos} photos of {len(folders)} people "
        f"(faces/people and {args.lfw} of LFW); {crowded} show more than one face; {several} of "
        f"them (of {people_with} people) refused for several faces with none dominant"
        f"; {registrable} of those registrable with the "
        f"person's face chosen (FaceNet cosine >= {SAME_PERSON} with their other photos)"
    )


if __name__ == "__main__":
    main()
