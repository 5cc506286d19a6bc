"""Matching cost as the gallery grows, up to 100k stored embeddings (synthetic unit vectors).

Rollcall: ``ml.matching.match_faces`` (cohort-normalised stage 1 + joint assignment) of 1 and of 30
faces against N 512-D float32 templates. face_recognition: ``face_distance`` (euclidean, 128-D
float64, its own dtype) of each face against N encodings, then the nearest. The vectors are random
unit vectors: the cost does not depend on their values. Times are medians of repeated calls;
memory is the stored matrix and the peak of the allocations made during one call (tracemalloc,
which sees numpy's buffers).
"""

from __future__ import annotations

import importlib
import logging
import tracemalloc
from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt

from bench.common import BenchContext, JsonDict, rounded, unit_rows
from ml.eval.timing import median_seconds
from ml.matching import (
    MAX_KNOWN_STRANGERS,
    Cohort,
    Gallery,
    KnownStrangers,
    match_faces,
)

logger = logging.getLogger(__name__)

SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
FACES = (1, 30)
VIEWS_PER_STUDENT = 15
"""What the service keeps per student besides the template (``ml.config.PipelineConfig.n_views``)."""


def timed(action: Callable[[], object], repeats: int) -> tuple[float, int]:
    """(median seconds, peak bytes allocated during one call)."""
    seconds = median_seconds(action, repeats, warmup=1)
    tracemalloc.start()
    action()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak


def nearest_by_distance(
    known: npt.NDArray[np.float64], faces: npt.NDArray[np.float64]
) -> list[int]:
    """face_recognition's loop: ``face_distance(known, face)`` per face, then the nearest."""
    face_distance = importlib.import_module("face_recognition").face_distance
    return [int(np.argmin(face_distance(known, face))) for face in faces]


def run(ctx: BenchContext) -> JsonDict:
    from bench.systems import face_recognition_available

    rng = np.random.default_rng(ctx.seed)
    sizes = QUICK_SIZES if ctx.quick else SIZES
    repeats = 3 if ctx.quick else 7
    peer = face_recognition_available()
    rows = []
    for size in sizes:
        templates = unit_rows(rng.standard_normal((size, 512), dtype=np.float32))
        ids = [f"s{i:06d}" for i in range(size)]
        gallery = Gallery(ids, templates, [templates[i : i + 1] for i in range(size)])
        known = unit_rows(rng.standard_normal((size, 128))).astype(np.float64) * 0.6
        row: JsonDict = {
            "gallery": size,
            "rollcall_template_bytes": int(templates.nbytes),
            "rollcall_views_bytes": int(size * VIEWS_PER_STUDENT * 512 * 4),
            "face_recognition_encoding_bytes": int(known.nbytes) if peer else None,
        }
        for faces in FACES:
            probes = unit_rows(rng.standard_normal((faces, 512), dtype=np.float32))
            seconds, peak = timed(partial(match_faces, probes, gallery), repeats)
            row[f"rollcall_ms_{faces}"] = rounded(seconds * 1000, 3)
            row[f"rollcall_peak_bytes_{faces}"] = int(peak)
            if peer:
                peer_faces = unit_rows(rng.standard_normal((faces, 128))).astype(np.float64)
                seconds, peak = timed(partial(nearest_by_distance, known, peer_faces), repeats)
                row[f"face_recognition_ms_{faces}"] = rounded(seconds * 1000, 3)
                row[f"face_recognition_peak_bytes_{faces}"] = int(peak)
        logger.info("scale %d: %s", size, row)
        rows.append(row)
    return {
        "repeats": repeats,
        "faces_per_photo": list(FACES),
        "views_per_student": VIEWS_PER_STUDENT,
        "peer_available": peer,
        "rows": rows,
        "school": school_cost(rng, QUICK_SCHOOL_SIZES if ctx.quick else SCHOOL_SIZES, repeats),
    }


SCHOOL_CLASS = 40
SCHOOL_SIZES = (1_000, 5_000)
QUICK_SCHOOL_SIZES = (1_000,)
SCHOOL_FACES = 30


def school_cost(rng: np.random.Generator, sizes: tuple[int, ...], repeats: int) -> list[JsonDict]:
    """A class of :data:`SCHOOL_CLASS` (FaceNet and dlib templates) matched with a school cohort
    of the other students and :data:`~ml.matching.MAX_KNOWN_STRANGERS` known strangers: building
    the cohort from the other classes' galleries (classes of 40), the first match of a class
    against it (the look-alike rule, remembered afterwards), and each later photo."""

    def gallery(n: int, prefix: str) -> Gallery:
        return Gallery.from_views(
            {f"{prefix}{i}": unit_rows(rng.standard_normal((2, 512))) for i in range(n)},
            {"dlib": {f"{prefix}{i}": unit_rows(rng.standard_normal((2, 128))) for i in range(n)}},
        )

    cls = gallery(SCHOOL_CLASS, "c")
    probes = {
        "facenet": unit_rows(rng.standard_normal((SCHOOL_FACES, 512))),
        "dlib": unit_rows(rng.standard_normal((SCHOOL_FACES, 128))),
    }
    strangers = KnownStrangers.from_faces(
        [
            {
                "facenet": unit_rows(rng.standard_normal(512)),
                "dlib": unit_rows(rng.standard_normal(128)),
            }
            for _ in range(MAX_KNOWN_STRANGERS)
        ]
    )
    alone = median_seconds(partial(match_faces, probes, cls), repeats, warmup=1)
    rows = []
    for size in sizes:
        others = [gallery(SCHOOL_CLASS, f"o{k}_") for k in range(size // SCHOOL_CLASS)]
        build = median_seconds(partial(Cohort.from_galleries, others), repeats, warmup=1)
        cohort = Cohort.from_galleries(others)
        # The look-alike rule's work (``Impostors.for_class``, remembered afterwards).
        first = median_seconds(partial(cohort.similarities_with, cls), repeats, warmup=1)
        later = median_seconds(
            partial(match_faces, probes, cls, cohort=cohort, strangers=strangers),
            repeats,
            warmup=1,
        )
        rows.append(
            {
                "cohort": len(cohort),
                "class": SCHOOL_CLASS,
                "faces": SCHOOL_FACES,
                "known_strangers": len(strangers),
                "cohort_bytes": int(sum(v.nbytes for v in cohort.vectors.values())),
                "build_ms": rounded(build * 1000, 3),
                "first_match_extra_ms": rounded(first * 1000, 3),
                "match_ms": rounded(later * 1000, 3),
                "match_alone_ms": rounded(alone * 1000, 3),
            }
        )
        logger.info("school cost %d: %s", size, rows[-1])
    return rows
