"""Group photos: face detection, then attendance end to end, on ``faces/groups``.

Detection: precision and recall of Rollcall's MTCNN, the YOLOv8-lite-t ONNX model and dlib's HOG
detector (face_recognition's default) on the hand-annotated photos, with the matching rules of
``ml.eval.detection`` (dlib boxes: IoU >= 0.4 or the detection's centre inside the box; CompreFace
noses: nose inside the detection; one-to-one). Count-only photos give found vs expected.

Attendance: every identity of ``faces/people`` (folders merged by name) is registered from one
photo, the first one the system accepts (Rollcall fused and FaceNet alone share that registration
and each group photo's detection and embeddings, one computation) (Rollcall's registration refuses photos with no face or
with two similar-sized faces; face_recognition takes the largest face found). Each group photo whose
people are enrolable (``groups.tsv``) is then recognised at each system's default threshold. A name
is right when that person is in the photo (each person counted once); precision = right names /
names given, recall = right names / enrolable people in the photos.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.common import BenchContext, JsonDict, rounded
from bench.systems import (
    FACENET_ALONE,
    MODEL_DIMS,
    FaceRecognitionSystem,
    RollcallSystem,
    face_recognition_available,
)
from ml.detection import create_detector
from ml.eval.detection import GROUPS_FILE, evaluate_photo, load_ground_truth, summarise
from ml.eval.oneshot import EmbeddingCache, collect_identities, identity_key
from ml.eval.photos import load_rgb
from ml.matching import Gallery, match_faces
from ml.pipeline import MultipleFacesError, NoFaceError
from ml.protocols import FaceDetector

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupPhoto:
    name: str
    faces: int
    count_exact: bool
    people: frozenset[str]
    """Identity keys (``ml.eval.oneshot.identity_key``) of the enrolable people in it."""


def read_group_photos(groups_dir: Path) -> list[GroupPhoto]:
    photos = []
    for line in (groups_dir / GROUPS_FILE).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        columns = line.split("\t")
        people = columns[3].strip() if len(columns) > 3 else ""
        photos.append(
            GroupPhoto(
                columns[0],
                int(columns[1]),
                columns[2].strip() == "1",
                frozenset(identity_key(p) for p in people.split(",") if p.strip()),
            )
        )
    return photos


# -- detection ----------------------------------------------------------------------------------


def detection(ctx: BenchContext) -> JsonDict:
    detectors: dict[str, tuple[str, FaceDetector]] = {
        "mtcnn": ("Rollcall MTCNN (default)", create_detector("mtcnn", min_face_size=20))
    }
    if ctx.yolo_weights.is_file():
        detectors["yolo"] = (
            f"YOLO ONNX ({ctx.yolo_weights.name})",
            create_detector("yolo", yolo_weights=ctx.yolo_weights, min_face_size=20),
        )
    if face_recognition_available():
        detectors["dlib_hog"] = (
            "face_recognition / dlib HOG (upsample 1)",
            FaceRecognitionSystem(),
        )
    truths = load_ground_truth(ctx.groups_dir)
    if ctx.quick:
        truths = [t for t in truths if t.kind != "count"]
    images = {t.name: load_rgb(ctx.groups_dir / t.name) for t in truths}
    result: JsonDict = {}
    for key, (label, detector) in detectors.items():
        per_photo = [evaluate_photo(detector, t, images[t.name], runs=1) for t in truths]
        totals = summarise(per_photo)
        # Timings of a single cold run are not reported here (the speed section times stages).
        totals = {k: v for k, v in totals.items() if not k.startswith("ms_")}
        result[key] = {
            "label": label,
            "totals": totals,
            "photos": [
                {
                    "name": r.name,
                    "truth": r.kind,
                    "expected": r.expected,
                    "detected": r.detected,
                    "matched": r.matched,
                }
                for r in per_photo
            ],
        }
        logger.info("detection %s: %s", key, totals)
    return result


# -- attendance ---------------------------------------------------------------------------------


def class_identities(ctx: BenchContext) -> dict[str, list[Path]]:
    """Everybody in ``faces/people``; with ``--quick`` only the people seen in the group photos."""
    identities = collect_identities(ctx.people_dir)
    if ctx.quick:
        seen = {p for photo in read_group_photos(ctx.groups_dir) for p in photo.people}
        identities = {name: photos for name, photos in identities.items() if name in seen}
    return identities


def score_names(named: Sequence[str], people: frozenset[str]) -> tuple[int, int, int]:
    """(right, names given, people expected); a person named on several faces is right once."""
    right = len(set(named) & people)
    return right, len(named), len(people)


def rollcall_register(
    system: RollcallSystem, people_dir: Path, photos: Sequence[Path], cache: EmbeddingCache
) -> tuple[dict[str, npt.NDArray[np.float32]] | None, int]:
    """Each model's registration embeddings (``FaceEnrolment.views``, ``.secondary_views``) of the
    first photo the real registration accepts; (None, tried) if none does. Cache entries are
    ``<model>:<photo>`` (an empty matrix for a refused photo)."""
    for tried, path in enumerate(photos, start=1):
        key = str(path.relative_to(people_dir))
        views = {model: cache.get(f"{model}:{key}") for model in system.models}
        if any(v is None for v in views.values()):
            try:
                enrolment = system.pipeline.enrol(load_rgb(path))
                fresh = {"facenet": enrolment.views, **enrolment.secondary_views}
            except (NoFaceError, MultipleFacesError):
                fresh = {m: np.zeros((0, MODEL_DIMS[m]), np.float32) for m in system.models}
            for model in system.models:
                cache.put(f"{model}:{key}", fresh[model])
            views = {model: fresh[model] for model in system.models}
        if all(v is not None and v.size for v in views.values()):
            return {m: v for m, v in views.items() if v is not None}, tried
    return None, len(photos)


def attendance(ctx: BenchContext) -> JsonDict:
    group_photos = [p for p in read_group_photos(ctx.groups_dir) if p.people]
    identities = class_identities(ctx)
    # Registered and embedded once by the fused pipeline; FaceNet alone uses the FaceNet part.
    ours = RollcallSystem()
    variants = (ours, ours.variant(FACENET_ALONE))
    cache = ctx.cache("people-enrol", ours.name, ours.registration_config())
    views: dict[str, dict[str, npt.NDArray[np.float32]]] = {}
    ours_extra_tries = 0
    for name, photos in identities.items():
        registered, tried = rollcall_register(ours, ctx.people_dir, photos, cache)
        ours_extra_tries += tried - 1
        if registered is not None:
            views[name] = registered
    cache.save()
    galleries = {
        system.name: Gallery.from_views(
            {n: v["facenet"] for n, v in views.items()},
            {m: {n: v[m] for n, v in views.items()} for m in system.models[1:]},
        )
        for system in variants
    }
    # The head is trained on FaceNet's views: the same for every setting.
    head = ours.pipeline.train_head(galleries[ours.name])
    systems: dict[str, Any] = {
        system.name: {
            "label": system.label,
            "models": list(system.models),
            "default_threshold": system.default_threshold,
            "registered": len(galleries[system.name]),
            "not_registrable": sorted(set(identities) - set(views)),
            "registration_photos_refused": ours_extra_tries,
            "methods": {"stage1": {"photos": []}, "two_stage": {"photos": []}},
        }
        for system in variants
    }
    for photo in group_photos:
        image = load_rgb(ctx.groups_dir / photo.name)
        faces = ours.detect(image)
        embeddings = ours.embed_by_model(image, faces)
        for system in variants:
            probes = {m: embeddings[m] for m in system.models}
            for method, use_head in (("stage1", None), ("two_stage", head)):
                decisions, applied = match_faces(
                    probes,
                    galleries[system.name],
                    threshold=system.default_threshold_for(len(galleries[system.name])),
                    head=use_head,
                )
                systems[system.name]["default_threshold"] = applied
                named = [d.student_id for d in decisions if d.student_id is not None]
                systems[system.name]["methods"][method]["photos"].append(
                    _photo_entry(photo, len(faces), named)
                )

    if face_recognition_available():
        peer = FaceRecognitionSystem()
        names: list[str] = []
        known: list[npt.NDArray[np.float32]] = []
        refused = 0
        for name, photos in identities.items():
            for path in photos:
                image = load_rgb(path)
                found = peer.detect(image)
                if found:
                    largest = max(found, key=lambda f: f.size)
                    known.append(peer.embed(image, [largest])[0])
                    names.append(name)
                    break
                refused += 1
        known_matrix = np.stack(known).astype(np.float64)
        entries = []
        for photo in group_photos:
            image = load_rgb(ctx.groups_dir / photo.name)
            faces = peer.detect(image)
            encodings = peer.embed(image, faces).astype(np.float64)
            named = []
            for row in encodings:
                distances = np.linalg.norm(known_matrix - row, axis=1)
                best = int(distances.argmin())
                if distances[best] <= peer.default_threshold:
                    named.append(names[best])
            entries.append(_photo_entry(photo, len(faces), named))
        systems["face_recognition"] = {
            "label": peer.label,
            "models": [],
            "default_threshold": peer.default_threshold,
            "registered": len(names),
            "not_registrable": sorted(set(identities) - set(names)),
            "registration_photos_refused": refused,
            "methods": {"nearest": {"photos": entries}},
        }
    for system in systems.values():
        for method in system["methods"].values():
            method["totals"] = _totals(method["photos"])
    return {"class_size": len(identities), "photos": len(group_photos), "systems": systems}


def _photo_entry(photo: GroupPhoto, faces: int, named: Sequence[str]) -> JsonDict:
    right, given, expected = score_names(named, photo.people)
    return {
        "name": photo.name,
        "faces_found": faces,
        "expected": sorted(photo.people),
        "named": sorted(named),
        "right": right,
        "given": given,
        "people": expected,
    }


def _totals(photos: Sequence[JsonDict]) -> JsonDict:
    right = sum(p["right"] for p in photos)
    given = sum(p["given"] for p in photos)
    people = sum(p["people"] for p in photos)
    return {
        "right": right,
        "given": given,
        "people": people,
        "precision": rounded(right / given, 4) if given else None,
        "recall": rounded(right / people, 4) if people else None,
    }


def run(ctx: BenchContext) -> JsonDict:
    return {"detection": detection(ctx), "attendance": attendance(ctx)}
