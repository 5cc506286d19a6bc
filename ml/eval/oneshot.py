"""One-shot open-set identification: register one photo per identity, recognise the rest.

``python -m ml.eval oneshot --data ../shared/faces/people`` (any folder of ``<identity>/<photos>``).
The first photo (sorted by name) of each enrolled identity is registered through the real
enrolment path (detect, align, augment, embed); every other photo is a genuine probe. A share of
the identities (and every identity with a single photo) is held out as strangers whose photos must
come back unknown. Reported for raw cosine and for the two-stage matcher (head re-ranking), at the
calibrated threshold and at the threshold that gives 1% false accepts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ml.config import PipelineConfig
from ml.eval.photos import load_rgb
from ml.fusion import FACENET
from ml.head import ProjectionHead
from ml.matching import (
    DEFAULT_UNKNOWN_THRESHOLD,
    Cohort,
    Gallery,
    ProbeEmbeddings,
    cohort_scores,
    match_faces,
    probes_by_model,
)
from ml.pipeline import FacePipeline, MultipleFacesError, NoFaceError
from ml.types import Embeddings, RGBImage

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def identity_key(folder: str) -> str:
    """``source__Some_Name`` and ``Some_Name`` are one person: drop the source, fold case."""
    return folder.split("__", 1)[-1].lower()


def collect_identities(data: Path) -> dict[str, list[Path]]:
    identities: dict[str, list[Path]] = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if photos:
            identities.setdefault(identity_key(folder.name), []).extend(photos)
    return identities


@dataclass(frozen=True)
class Split:
    enrolled: dict[str, list[Path]]
    strangers: dict[str, list[Path]]


def split_identities(
    identities: Mapping[str, list[Path]],
    *,
    stranger_fraction: float,
    max_enrolled: int | None,
    max_strangers: int | None,
    seed: int,
) -> Split:
    rng = np.random.default_rng(seed)
    names = sorted(identities)
    order = rng.permutation(len(names))
    enrolled: dict[str, list[Path]] = {}
    strangers: dict[str, list[Path]] = {}
    multi = [names[i] for i in order if len(identities[names[i]]) >= 2]
    single = [names[i] for i in order if len(identities[names[i]]) < 2]
    n_held = round(stranger_fraction * len(multi))
    for name in multi[:n_held] + single:
        strangers[name] = identities[name]
    for name in multi[n_held:]:
        enrolled[name] = identities[name]
    if max_enrolled is not None:
        enrolled = dict(list(enrolled.items())[:max_enrolled])
    if max_strangers is not None:
        strangers = dict(list(strangers.items())[:max_strangers])
    return Split(enrolled, strangers)


class EmbeddingCache:
    """Per-photo embeddings on disk (``.npz``, no pickle) so repeated runs skip the models."""

    def __init__(self, path: Path | None, signature: str):
        self.path = path
        self.signature = signature
        self.entries: dict[str, npt.NDArray[np.float32]] = {}
        self.dirty = False
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as data:
                if str(data.get("__signature__", "")) == signature:
                    self.entries = {k: data[k] for k in data.files if k != "__signature__"}
                else:
                    logger.info("embedding cache %s was made with other settings; ignored", path)

    def get(self, key: str) -> npt.NDArray[np.float32] | None:
        return self.entries.get(key)

    def put(self, key: str, value: npt.NDArray[np.float32]) -> None:
        self.entries[key] = value
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        tmp = self.path.with_suffix(".tmp.npz")
        arrays: dict[str, npt.NDArray[Any]] = {"__signature__": np.array(self.signature)}
        arrays.update(self.entries)
        np.savez(tmp, allow_pickle=False, **arrays)
        tmp.replace(self.path)


def probe_embedding(pipeline: FacePipeline, image: RGBImage) -> Embeddings | None:
    """Embedding of the main (largest) face of a probe photo, or None when no face is found."""
    faces = pipeline.detect(image)
    if not faces:
        return None
    main = max(faces, key=lambda f: f.size)
    return pipeline.embed_faces(image, [main])


@dataclass(frozen=True)
class Outcome:
    """Decisions for every probe: predicted id (None = unknown) and the truth (None = stranger)."""

    predicted: list[str | None]
    truth: list[str | None]
    top1: list[str | None]
    best_score: list[float]

    def rates(self) -> dict[str, float]:
        genuine = [i for i, t in enumerate(self.truth) if t is not None]
        strangers = [i for i, t in enumerate(self.truth) if t is None]
        n_g, n_s = max(1, len(genuine)), max(1, len(strangers))
        return {
            "rank1": sum(self.top1[i] == self.truth[i] for i in genuine) / n_g,
            "named_right": sum(self.predicted[i] == self.truth[i] for i in genuine) / n_g,
            "wrong_name": sum(
                self.predicted[i] is not None and self.predicted[i] != self.truth[i]
                for i in genuine
            )
            / n_g,
            "false_accept": sum(self.predicted[i] is not None for i in strangers) / n_s,
        }


def decide(
    probes: ProbeEmbeddings,
    truth: Sequence[str | None],
    gallery: Gallery,
    threshold: float | None,
    head: ProjectionHead | None,
    *,
    cohort: Cohort | None = None,
) -> Outcome:
    """Each probe decided by ``match_faces`` on its own (as a one-face photo); ``probes`` are
    FaceNet's embeddings or one matrix per model. ``threshold=None``: the calibrated default for
    the class and the school ``cohort`` (the other classes' students), if any."""
    by_model = probes_by_model(probes)
    predicted: list[str | None] = []
    top1: list[str | None] = []
    best: list[float] = []
    for i in range(by_model[FACENET].shape[0]):
        one = {model: matrix[i : i + 1] for model, matrix in by_model.items()}
        decisions, _ = match_faces(one, gallery, threshold=threshold, head=head, cohort=cohort)
        predicted.append(decisions[0].student_id)
        top1.append(decisions[0].candidate_id)
        best.append(decisions[0].similarity)
    # rank-1 with the head: the head's choice when it accepted, else the raw best candidate
    if head is not None:
        top1 = [p if p is not None else t for p, t in zip(predicted, top1, strict=True)]
    return Outcome(predicted, list(truth), top1, best)


def threshold_at_false_accept(stranger_best: Sequence[float], rate: float) -> float:
    """Smallest threshold whose false-accept rate on these strangers is <= ``rate``."""
    if not stranger_best:
        return 1.0
    ordered = np.sort(np.asarray(stranger_best))[::-1]
    allowed = int(np.floor(rate * len(ordered)))
    return float(ordered[allowed]) + 1e-6 if allowed < len(ordered) else float(ordered[-1])


def false_accept_by_gallery_size(
    gallery_templates: Embeddings,
    stranger_probes: Embeddings,
    sizes: Sequence[int],
    threshold: float,
    seed: int,
    repeats: int = 20,
) -> dict[int, dict[str, float]]:
    """Stranger false-accept rate at ``threshold`` for random classes of each size.

    Also reports the raw-cosine threshold that would have been needed for 1% false accepts, to show
    how it drifts with the class size while the cohort-normalised one does not.
    """
    rng = np.random.default_rng(seed)
    result: dict[int, dict[str, float]] = {}
    sims_all = stranger_probes @ gallery_templates.T
    for size in sizes:
        if size > gallery_templates.shape[0] or len(stranger_probes) == 0:
            continue
        rates, raw_needed = [], []
        for _ in range(repeats):
            cols = rng.choice(gallery_templates.shape[0], size=size, replace=False)
            sims = sims_all[:, cols]
            rates.append(float((cohort_scores(sims).max(axis=1) >= threshold).mean()))
            raw_needed.append(float(np.quantile(sims.max(axis=1), 0.99)))
        result[size] = {
            "false_accept": float(np.mean(rates)),
            "raw_threshold_for_1pct": float(np.median(raw_needed)),
        }
    return result


def run(args: argparse.Namespace) -> int:
    from ml.factory import build_pipeline

    # FaceNet alone: this evaluation predates the fusion and stays comparable with its published
    # figures; the fused default's one-shot figures come from `python -m bench --sections oneshot`.
    config = PipelineConfig(
        embedders=("facenet",),
        detector=args.detector,
        yolo_weights=args.yolo_weights,
        alignment=args.alignment,
        segmentation=args.segment,
        n_views=args.views,
        seed=args.seed,
    )
    started = time.perf_counter()
    pipeline = build_pipeline(config)
    identities = collect_identities(args.data)
    split = split_identities(
        identities,
        stranger_fraction=args.stranger_fraction,
        max_enrolled=args.max_enrolled,
        max_strangers=args.max_strangers,
        seed=args.seed,
    )
    signature = json.dumps(
        {
            "alignment": config.alignment,
            "segmentation": config.segmentation,
            "views": config.n_views,
            "detector": config.detector,
            "seed": config.seed,
        },
        sort_keys=True,
    )
    cache = EmbeddingCache(args.cache, signature)

    def cached(key: str, compute: Any) -> npt.NDArray[np.float32] | None:
        value = cache.get(key)
        if value is None:
            value = compute()
            if value is None:
                return None
            cache.put(key, value)
        return None if value.size == 0 else value

    enrolled_views: dict[str, Embeddings] = {}
    failed_enrolment = 0
    n_images = 0
    for name, photos in split.enrolled.items():

        def enrol(path: Path = photos[0]) -> npt.NDArray[np.float32]:
            try:
                return pipeline.enrol(load_rgb(path)).views
            except (NoFaceError, MultipleFacesError):
                return np.zeros((0, 512), np.float32)

        views = cached("enrol:" + str(photos[0].relative_to(args.data)), enrol)
        n_images += 1
        if views is None:
            failed_enrolment += 1
            continue
        enrolled_views[name] = views

    probe_rows: list[Embeddings] = []
    truth: list[str | None] = []
    no_face = 0
    probe_sets: list[tuple[str | None, list[Path]]] = [
        (name, photos[1:]) for name, photos in split.enrolled.items() if name in enrolled_views
    ]
    probe_sets += [(None, photos) for photos in split.strangers.values()]
    for identity, probe_photos in probe_sets:
        for path in probe_photos[: args.max_probes_per_identity]:

            def embed(path: Path = path) -> npt.NDArray[np.float32]:
                emb = probe_embedding(pipeline, load_rgb(path))
                return np.zeros((0, 512), np.float32) if emb is None else emb

            emb = cached("probe:" + str(path.relative_to(args.data)), embed)
            n_images += 1
            if emb is None:
                no_face += 1
                continue
            probe_rows.append(emb.reshape(1, -1))
            truth.append(identity)
    cache.save()
    embed_seconds = time.perf_counter() - started

    gallery = Gallery.from_views(enrolled_views)
    probes = np.concatenate(probe_rows) if probe_rows else np.zeros((0, 512), np.float32)
    calibrated = DEFAULT_UNKNOWN_THRESHOLD if args.threshold is None else args.threshold
    head_started = time.perf_counter()
    head = pipeline.train_head(gallery)
    head_seconds = time.perf_counter() - head_started

    stranger_mask = np.array([t is None for t in truth])
    best_score = (
        cohort_scores(probes @ gallery.templates.T).max(axis=1)
        if len(gallery)
        else np.zeros(len(probes))
    )
    at_1pct = threshold_at_false_accept(best_score[stranger_mask].tolist(), 0.01)

    results: dict[str, Any] = {}
    for label, threshold in (("calibrated", calibrated), ("far1pct", at_1pct)):
        for method, use in (("raw", None), ("two_stage", head)):
            outcome = decide(probes, truth, gallery, threshold, use)
            results[f"{method}@{label}"] = outcome.rates()

    impostor = probes[~stranger_mask] @ gallery.templates.T if len(gallery) else np.zeros((0, 0))
    genuine_idx = [gallery.index(t) for t in truth if t is not None]
    if impostor.size:
        mask = np.ones_like(impostor, dtype=bool)
        mask[np.arange(len(genuine_idx)), genuine_idx] = False
        impostor_scores = np.concatenate(
            [impostor[mask], (probes[stranger_mask] @ gallery.templates.T).ravel()]
        )
    else:
        impostor_scores = np.zeros(0)
    by_size = false_accept_by_gallery_size(
        gallery.templates, probes[stranger_mask], (5, 25, 50, 100, 250, 500), calibrated, args.seed
    )

    out = sys.stdout
    out.write(
        f"one-shot identification on {args.data}\n"
        f"  enrolled {len(gallery)} identities ({failed_enrolment} failed enrolment), "
        f"{int((~stranger_mask).sum())} genuine probes, {int(stranger_mask.sum())} stranger probes "
        f"({len(split.strangers)} stranger identities), {no_face} probes without a face\n"
        f"  {n_images} images in {embed_seconds:.1f}s; head trained in {head_seconds:.2f}s "
        f"({head.steps if head else 0} steps)\n"
        f"  impostor cosine: mean {impostor_scores.mean() if impostor_scores.size else float('nan'):.4f} "
        f"std {impostor_scores.std() if impostor_scores.size else float('nan'):.4f}\n"
        f"  cohort-score thresholds: default {calibrated:.4f}, 1% false accepts {at_1pct:.4f}\n\n"
        f"  {'method@threshold':<24} {'rank1':>7} {'named':>7} {'wrong':>7} {'FA':>7}\n"
    )
    for key, rates in results.items():
        out.write(
            f"  {key:<24} {rates['rank1']:7.3f} {rates['named_right']:7.3f} "
            f"{rates['wrong_name']:7.3f} {rates['false_accept']:7.3f}\n"
        )
    if by_size:
        out.write(
            f"\n  class size -> stranger false accepts at {calibrated:.3f}"
            " (raw cosine needed for 1%)\n"
        )
        for size, row in by_size.items():
            out.write(
                f"  {size:>5} {row['false_accept']:.4f} ({row['raw_threshold_for_1pct']:.3f})\n"
            )
    summary = {
        "enrolled": len(gallery),
        "genuine_probes": int((~stranger_mask).sum()),
        "stranger_probes": int(stranger_mask.sum()),
        "threshold": calibrated,
        "threshold_far1pct": at_1pct,
        "impostor_mean": float(impostor_scores.mean()) if impostor_scores.size else None,
        "impostor_std": float(impostor_scores.std()) if impostor_scores.size else None,
        **{k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()},
        "false_accept_by_class_size": {str(k): v for k, v in by_size.items()},
    }
    out.write(json.dumps(summary) + "\n")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "oneshot", help="one-shot open-set identification (FaceNet alone; fused: python -m bench)"
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of <identity>/<photos>")
    parser.add_argument("--stranger-fraction", type=float, default=0.2)
    parser.add_argument("--max-enrolled", type=int, default=None)
    parser.add_argument("--max-strangers", type=int, default=None)
    parser.add_argument("--max-probes-per-identity", type=int, default=10)
    parser.add_argument("--threshold", type=float, default=None, help="override the calibrated one")
    parser.add_argument("--detector", choices=("mtcnn", "yolo"), default="mtcnn")
    parser.add_argument("--yolo-weights", type=Path, default=None)
    parser.add_argument(
        "--alignment", choices=("similarity", "margin"), default=PipelineConfig.alignment
    )
    parser.add_argument("--segment", action="store_true", help="mask the background")
    parser.add_argument("--views", type=int, default=PipelineConfig.n_views)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help=".npz embedding cache")
    parser.set_defaults(func=run)
