"""How small a face can be and still be recognised: LFW View-2 pairs with the second face shrunk.

For a seeded sample of same-person and different-person pairs, the second photo is shrunk so that
its face measures N pixels (the shorter side of its MTCNN box, as ``PipelineConfig.min_face_size``
and ``min_recognisable_face`` count), and both faces are embedded as the service embeds a class
photo's faces (FaceNet crop + mirror, one dlib chip), cut from the shrunk photo with the box found
at full size (so detection misses do not mix into the figure). Reported per size: the share of
same-person pairs accepted and of different-person pairs accepted at the threshold that accepts
1 % of different-person pairs at full size, per model and fused (``ml.fusion``).

    python -m ml.eval face-size --pairs 80 --sizes 20,28,36,48
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from ml.eval.lfw import DEFAULT_DATA, LfwPair, central_face, read_pairs
from ml.eval.photos import load_rgb
from ml.fusion import FACENET, to_facenet_scale
from ml.pipeline import FacePipeline
from ml.types import DetectedFace, Embeddings, RGBImage

logger = logging.getLogger(__name__)

FULL_SIZE = 0
"""Stands for the photo as it is in the results."""
FALSE_ACCEPTS_AT_FULL_SIZE = 0.01


def shrink_to_face_size(
    image: RGBImage, face: DetectedFace, size: int
) -> tuple[RGBImage, DetectedFace]:
    """``image`` scaled so that ``face`` measures ``size`` pixels, and the face scaled with it."""
    scale = size / face.size
    height, width = image.shape[:2]
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, shape, interpolation=cv2.INTER_AREA).astype(np.uint8, copy=False)
    scaled = dataclasses.replace(
        face,
        box=(face.box[0] * scale, face.box[1] * scale, face.box[2] * scale, face.box[3] * scale),
        landmarks=(face.landmarks * scale).astype(np.float32),
    )
    return small, scaled


def sample_pairs(pairs: Sequence[LfwPair], count: int, seed: int) -> list[LfwPair]:
    """``count`` same-person then ``count`` different-person pairs, drawn without replacement."""
    rng = np.random.default_rng(seed)
    same = [p for p in pairs if p.same]
    different = [p for p in pairs if not p.same]
    return [same[i] for i in rng.choice(len(same), count, replace=False)] + [
        different[i] for i in rng.choice(len(different), count, replace=False)
    ]


def face_scores(
    pipeline: FacePipeline,
    first: Mapping[str, Embeddings],
    second: RGBImage,
    second_face: DetectedFace,
) -> dict[str, float]:
    """Each model's cosine between the first face (its embeddings by model) and ``second_face``,
    and the fused score (FaceNet's scale)."""
    other = pipeline.embed_faces_by_model(second, [second_face])
    cosines = {model: float(first[model][0] @ other[model][0]) for model in pipeline.models}
    fused = np.mean([float(to_facenet_scale(m, c)) for m, c in cosines.items()])
    return {**cosines, "fused": float(fused)}


def evaluate(
    pipeline: FacePipeline, data_dir: Path, pairs: Sequence[LfwPair], sizes: Sequence[int]
) -> dict[str, dict[int, tuple[float, float]]]:
    """Per score (each model, ``fused``) and size: (same-person accepted, different accepted)."""
    scores: dict[int, list[tuple[bool, dict[str, float]]]] = {s: [] for s in (*sizes, FULL_SIZE)}
    for index, pair in enumerate(pairs):
        images = [load_rgb(data_dir / pair.first), load_rgb(data_dir / pair.second)]
        faces = [central_face(pipeline.detect(image), image.shape) for image in images]
        if faces[0] is None or faces[1] is None:
            continue
        first = pipeline.embed_faces_by_model(images[0], [faces[0]])
        for size in scores:
            second, second_face = images[1], faces[1]
            if size != FULL_SIZE:
                second, second_face = shrink_to_face_size(images[1], faces[1], size)
            scores[size].append((pair.same, face_scores(pipeline, first, second, second_face)))
        if (index + 1) % 20 == 0:
            logger.info("%d of %d pairs", index + 1, len(pairs))
    result: dict[str, dict[int, tuple[float, float]]] = {}
    for name in (*pipeline.models, "fused"):
        full_different = [s[name] for same, s in scores[FULL_SIZE] if not same]
        threshold = float(np.quantile(full_different, 1 - FALSE_ACCEPTS_AT_FULL_SIZE))
        result[name] = {}
        for size, rows in scores.items():
            same = np.array([s[name] >= threshold for is_same, s in rows if is_same])
            different = np.array([s[name] >= threshold for is_same, s in rows if not is_same])
            result[name][size] = (float(same.mean()), float(different.mean()))
    return result


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "face-size",
        help="recognition of faces shrunk to N pixels (LFW pairs)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LFW folder with pairs.txt")
    parser.add_argument(
        "--pairs", type=int, default=80, help="same-person pairs (and as many different)"
    )
    parser.add_argument(
        "--sizes", default="20,28,36,48", help="face sizes in pixels, comma separated"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ml.config import PipelineConfig
    from ml.factory import build_pipeline

    sizes = [int(v) for v in args.sizes.split(",")]
    pipeline = build_pipeline(PipelineConfig())
    pairs = sample_pairs(read_pairs(args.data), args.pairs, args.seed)
    result = evaluate(pipeline, args.data, pairs, sizes)
    for name, by_size in result.items():
        for size, (same, different) in sorted(by_size.items(), key=lambda kv: kv[0] or 10**6):
            label = "full" if size == FULL_SIZE else f"{size} px"
            logger.info(
                "%-8s %-8s same person accepted %5.1f %%, different people accepted %4.1f %%",
                name if name != FACENET else "facenet",
                label,
                100 * same,
                100 * different,
            )
    return 0
