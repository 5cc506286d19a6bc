"""Speed on this machine: per-stage latency, embedding throughput, class growth, the HTTP service.

Every time is a median of repeated runs after a warm-up, taken in this process one system after the
other on the same photos; the ratios compare figures of the same run. The machine's load average is
recorded before and after (the section's header), since other processes share the CPU.

* **Stages** per photo (a 1-face photo, a 6-face photo, the HTTP photo and the group photo with the
  most faces): decode (JPEG bytes to RGB), detect, align (crop every face; for face_recognition its
  5-point landmarks), segment (GrabCut, off by default, not in the total), embed (Rollcall: crop and
  mirror of every face; face_recognition: its ResNet), match (against a 50-student class). Rollcall
  in both settings: FaceNet alone, and the fused default, whose align and embed add dlib's chip and
  ResNet pass per face (timed on their own, ``secondary_ms``; the shared stages are timed once).
  The end-to-end row times the whole photo as one call (``FacePipeline.recognise`` of each setting;
  face_recognition: ``face_locations`` + ``face_encodings`` + ``face_distance``).
* **Embedding throughput**: network passes per second at batch 1, 8 and 32 (one pass per face for
  face_recognition and for Rollcall's dlib; Rollcall's FaceNet makes two per face, crop and mirror).
* **Class growth** (LFW identities): registration compute with the default (fused) pipeline
  (enrolment of one photo + rebuilding the class gallery + the duplicate check) and head training,
  from scratch and warm-started after one more student (what the service does), at 10/50/200/1000
  students.
* **HTTP**: the real service (``uvicorn app.main:app``) on loopback with a temporary data folder;
  a class is registered through ``/register/register-student``, then a bounded number of
  ``/mark/detect`` requests is sent by 1, 4 and 16 concurrent clients; throughput, p50/p95 latency
  and the service's peak RSS (``VmHWM``).
"""

from __future__ import annotations

import base64
import copy
import importlib
import io
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.images import ANNOTATED_MAX_SIDE
from bench.class_photo import tiled_class_photo_file
from bench.common import REPO_DIR, BenchContext, JsonDict, load_average, rounded, unit_rows
from bench.groups import class_identities, read_group_photos
from bench.systems import (
    FACENET_ALONE,
    MODEL_DIMS,
    FaceRecognitionSystem,
    RollcallSystem,
    central_box_face,
    face_recognition_available,
)
from ml.annotate import annotate
from ml.eval.oneshot import collect_identities
from ml.eval.photos import load_rgb
from ml.eval.timing import median_seconds
from ml.matching import Gallery, match_faces
from ml.pipeline import FacePipeline, Recognition
from ml.protocols import FaceCropper
from ml.types import DetectedFace, RGBImage

logger = logging.getLogger(__name__)

CLASS_FOR_MATCHING = 50
BATCH_SIZES = (1, 8, 32)
CLASS_SIZES = (10, 50, 200, 1000)
QUICK_CLASS_SIZES = (10, 50)
CONCURRENCY = (1, 4, 16)
REQUESTS = {1: 16, 4: 32, 16: 64}
QUICK_REQUESTS = {1: 4, 4: 8, 16: 16}
MAX_SEGMENTED_FACES = 10
HTTP_PHOTO = "face_api_js__bbt3.jpg"
ONE_FACE_PHOTO = ("face_recognition__obama", "obama.jpg")


def median_ms(action: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls after one untimed call."""
    return rounded(1000 * median_seconds(action, repeats, warmup=1), 2)


# -- stages ---------------------------------------------------------------------------------------


CLASS_PHOTO_LABEL = "5334 px class photo (tiled, 73 faces)"
"""The big photo of :mod:`bench.class_photo` (built from the shared group photos, not in ``../shared``)."""


def stage_photos(ctx: BenchContext) -> dict[str, Path]:
    groups = read_group_photos(ctx.groups_dir)
    six = next(p for p in groups if p.faces == 6 and p.count_exact)
    largest = max(groups, key=lambda p: p.faces)
    return {
        "1 face": ctx.people_dir / ONE_FACE_PHOTO[0] / ONE_FACE_PHOTO[1],
        "6 faces": ctx.groups_dir / six.name,
        "HTTP photo (5 faces)": ctx.groups_dir / HTTP_PHOTO,
        f"most faces (~{largest.faces} + crowd)": ctx.groups_dir / largest.name,
        CLASS_PHOTO_LABEL: tiled_class_photo_file(ctx.groups_dir, ctx.cache_dir),
    }


def draw_and_encode(image: RGBImage, recognition: Recognition, max_side: int | None) -> int:
    """What the service adds after recognition for the phone: the annotated copy (``max_side``:
    ``ROLLCALL_ANNOTATED_MAX_SIDE``), JPEG-encoded, base64'd; returns the base64 length."""
    from app.core.images import encode_jpeg
    from app.services.recognition.drawing import face_label

    labels = [face_label(m.student_id, {}, m.too_small) for m in recognition.faces]
    annotated = annotate(image, recognition.faces, labels, max_side=max_side)
    return len(base64.b64encode(encode_jpeg(annotated)))


def synthetic_gallery(students: int, models: Sequence[str], seed: int) -> Gallery:
    """Random unit views for every student and model (15 FaceNet views, one per other model)."""
    rng = np.random.default_rng(seed)
    ids = [f"s{i:04d}" for i in range(students)]
    views = {
        sid: unit_rows(rng.standard_normal((15, MODEL_DIMS["facenet"]), np.float32)) for sid in ids
    }
    secondary = {
        model: {
            sid: unit_rows(rng.standard_normal((1, MODEL_DIMS[model]), np.float32)) for sid in ids
        }
        for model in models[1:]
    }
    return Gallery.from_views(views, secondary)


def crop_all(
    cropper: FaceCropper, image: RGBImage, faces: Sequence[DetectedFace]
) -> list[RGBImage]:
    return [cropper.crop(image, face) for face in faces]


def recognise_bytes(
    pipeline: FacePipeline, data: bytes, max_pixels: int, gallery: Gallery
) -> object:
    """What the service does with an uploaded photo: decode, then ``FacePipeline.recognise``."""
    from app.core.images import decode_image

    return pipeline.recognise(decode_image(data, max_pixels=max_pixels), gallery)


def rollcall_stages(
    ours: RollcallSystem, data: bytes, repeats: int, galleries: Mapping[str, Gallery]
) -> dict[str, JsonDict]:
    """Per Rollcall setting, its stages and end to end on one photo.

    ``ours`` is the fused pipeline; the stages FaceNet alone shares with it (decode, detect,
    segment, FaceNet's crop and embedding) are timed once. The fused setting adds each secondary
    model's crop (``align``) and embedding (``embed``), timed separately (``secondary_ms``), and
    matches on the fused similarity. End to end is ``FacePipeline.recognise`` of each setting,
    timed on its own.
    """
    from app.core.images import decode_image
    from ml.segmentation import GrabCutHeadSegmenter, apply_head_mask

    pipeline = ours.pipeline
    alone = ours.variant(FACENET_ALONE)
    max_pixels = 40_000_000
    image = decode_image(data, max_pixels=max_pixels)
    found = pipeline.detect(image)
    # Align, embed and match time the faces recognition embeds: those too small to recognise are
    # only reported (``FacePipeline.recognize``), as in the end-to-end figure.
    faces = [f for f in found if f.size >= pipeline.config.min_recognisable_face]
    crops = [pipeline.crop(image, f) for f in faces]
    embeddings = pipeline.embed_faces_by_model(image, faces, mirrored=False)
    # The faces recognition mirrors (``FacePipeline.unsure``) against the matching class.
    decisions, applied = match_faces(embeddings, galleries[ours.name])
    unsure = [i for i, d in enumerate(decisions) if pipeline.unsure(d, applied)]
    all_crops = pipeline.face_crops(image, faces)

    def mirror() -> None:
        for model, rows in all_crops.items():
            pipeline.embed_model_crops(
                model, [np.ascontiguousarray(rows[i][:, ::-1]) for i in unsure], mirrored=False
            )

    segmenter = GrabCutHeadSegmenter()

    def segment() -> None:
        for face in faces:
            apply_head_mask(image, segmenter.segment(image, face))

    shared: JsonDict = {
        "decode": median_ms(lambda: decode_image(data, max_pixels=max_pixels), repeats),
        "detect": median_ms(lambda: pipeline.detect(image), repeats),
        "align": median_ms(lambda: [pipeline.crop(image, f) for f in faces], repeats),
        # GrabCut costs ~0.4 s a face: timed on photos of a few faces only.
        "segment": median_ms(segment, max(1, repeats // 2))
        if 0 < len(faces) <= MAX_SEGMENTED_FACES
        else None,
        "embed": median_ms(
            lambda: pipeline.embed_model_crops("facenet", crops, mirrored=False), repeats
        ),
    }
    recognition = pipeline.recognise(image, galleries[ours.name])
    shared["draw"] = median_ms(
        partial(draw_and_encode, image, recognition, ANNOTATED_MAX_SIDE), repeats
    )
    image_sizes = {
        "annotated_base64_bytes": draw_and_encode(image, recognition, ANNOTATED_MAX_SIDE),
        "annotated_base64_bytes_uncapped": draw_and_encode(image, recognition, None),
        "annotated_max_side": ANNOTATED_MAX_SIDE,
        "too_small_faces": sum(m.too_small for m in recognition.faces),
        "faces_mirrored": len(unsure),
    }
    mirror_ms = median_ms(mirror, repeats) if unsure else 0.0
    previous_ms = median_ms(
        partial(previous_recognise, pipeline, data, max_pixels, galleries[ours.name]), repeats
    )
    secondary: dict[str, JsonDict] = {}
    for model in pipeline.secondary:
        chips = [model.cropper.crop(image, f) for f in faces]
        embed_ms = median_ms(
            partial(pipeline.embed_model_crops, model.name, chips, mirrored=False), repeats
        )
        secondary[model.name] = {
            "align": median_ms(partial(crop_all, model.cropper, image, faces), repeats),
            "embed": embed_ms,
            "embed_per_face": rounded(embed_ms / len(faces), 2) if faces else None,
        }
    result: dict[str, JsonDict] = {}
    for system in (ours, alone):
        probes = {m: embeddings[m] for m in system.models}
        gallery = galleries[system.name]
        extra = [secondary[m] for m in system.models[1:]]
        stages = {
            **shared,
            "align": rounded(shared["align"] + sum(e["align"] for e in extra), 2),
            "embed": rounded(
                shared["embed"]
                + sum(e["embed"] for e in extra)
                + (mirror_ms if system is ours else 0.0),
                2,
            ),
            "match": median_ms(partial(match_faces, probes, gallery), repeats),
        }
        end_to_end = median_ms(
            partial(recognise_bytes, system.pipeline, data, max_pixels, gallery), repeats
        )
        result[system.name] = {
            "label": system.label,
            "models": list(system.models),
            "faces": len(found),
            "faces_embedded": len(faces),
            "stages_ms": stages,
            "secondary_ms": {m: secondary[m] for m in system.models[1:]},
            "end_to_end_ms": end_to_end,
            "image": image_sizes,
        }
        if system is ours:
            result[system.name]["mirror_ms"] = mirror_ms
            result[system.name]["previous_end_to_end_ms"] = previous_ms
    return result


PREVIOUS_THRESHOLD = 0.36


def previous_recognise(
    pipeline: FacePipeline, data: bytes, max_pixels: int, gallery: Gallery
) -> object:
    """The previous commit's path for an uploaded photo, timed in the same run: decode, MTCNN
    cutting every crop from the photo, FaceNet's crop and mirror for every face, dlib's chip
    alone, the class's own cohort at 0.36."""
    from app.core.images import decode_image
    from ml.embedder import embed_plain_and_mirrored

    image = decode_image(data, max_pixels=max_pixels)
    detector = copy.copy(pipeline.detector)
    detector.halved_crops = False  # type: ignore[attr-defined]
    faces = [f for f in detector.detect(image) if f.size >= pipeline.config.min_recognisable_face]
    embedded = {
        "facenet": embed_plain_and_mirrored(
            pipeline.embedder, [pipeline.crop(image, f) for f in faces]
        )[1]
    }
    for model in pipeline.secondary:
        crops = [model.cropper.crop(image, f) for f in faces]
        embedded[model.name] = pipeline.embed_model_crops(model.name, crops, mirrored=False)
    return match_faces(embedded, gallery, threshold=PREVIOUS_THRESHOLD)


def face_recognition_stages(
    peer: FaceRecognitionSystem, data: bytes, repeats: int, known: npt.NDArray[np.float64]
) -> JsonDict:
    api = peer.api
    image = api.load_image_file(io.BytesIO(data))
    locations = api.face_locations(image, model="hog")
    rects = [peer.internal._css_to_rect(loc) for loc in locations]
    shapes = [peer.internal.pose_predictor_5_point(image, r) for r in rects]
    encodings = api.face_encodings(image, locations)

    def match() -> None:
        for encoding in encodings:
            int(np.argmin(api.face_distance(known, encoding)))

    def end_to_end() -> None:
        img = api.load_image_file(io.BytesIO(data))
        for encoding in api.face_encodings(img, api.face_locations(img, model="hog")):
            int(np.argmin(api.face_distance(known, encoding)))

    stages = {
        "decode": median_ms(lambda: api.load_image_file(io.BytesIO(data)), repeats),
        "detect": median_ms(lambda: api.face_locations(image, model="hog"), repeats),
        "align": median_ms(
            lambda: [peer.internal.pose_predictor_5_point(image, r) for r in rects], repeats
        ),
        "segment": None,
        "embed": median_ms(
            lambda: [
                peer.internal.face_encoder.compute_face_descriptor(image, s, 1) for s in shapes
            ],
            repeats,
        ),
        "match": median_ms(match, repeats),
    }
    return {
        "faces": len(locations),
        "stages_ms": stages,
        "end_to_end_ms": median_ms(end_to_end, repeats),
    }


def stages(ctx: BenchContext, ours: RollcallSystem, peer: FaceRecognitionSystem | None) -> JsonDict:
    repeats = 1 if ctx.quick else 5
    crowd_repeats = 1 if ctx.quick else 3
    galleries = {
        system.name: synthetic_gallery(CLASS_FOR_MATCHING, system.models, ctx.seed)
        for system in (ours, ours.variant(FACENET_ALONE))
    }
    known = unit_rows(np.random.default_rng(ctx.seed).standard_normal((CLASS_FOR_MATCHING, 128)))
    photos: JsonDict = {}
    for label, path in stage_photos(ctx).items():
        data = path.read_bytes()
        height, width = load_rgb(path).shape[:2]
        # The crowd photo takes seconds per run: fewer repeats keep the section within minutes.
        runs = (
            crowd_repeats
            if label.startswith("most faces") or label == CLASS_PHOTO_LABEL
            else repeats
        )
        entry: JsonDict = {
            "file": (
                str(path.relative_to(ctx.shared_dir))
                if path.is_relative_to(ctx.shared_dir)
                else f"bench.class_photo: {path.name}"
            ),
            "size": f"{width}x{height}",
            **rollcall_stages(ours, data, runs, galleries),
            "repeats": runs,
        }
        if peer is not None:
            entry["face_recognition"] = face_recognition_stages(
                peer, data, runs, known.astype(np.float64)
            )
        logger.info("stages %s: %s", label, entry)
        photos[label] = entry
    return {"repeats": repeats, "class_size": CLASS_FOR_MATCHING, "photos": photos}


# -- embedding throughput ---------------------------------------------------------------------------


def embedding_throughput(
    ctx: BenchContext, ours: RollcallSystem, peer: FaceRecognitionSystem | None
) -> JsonDict:
    from ml.embedder import FaceNetEmbedder

    repeats = 2 if ctx.quick else 5
    photos = sorted(ctx.lfw_dir.glob("*/*.jpg"))[: max(BATCH_SIZES)]
    images = [load_rgb(p) for p in photos]
    crops = [ours.pipeline.crop(img, central_box_face(img.shape)) for img in images]
    secondary = {model.name: model for model in ours.pipeline.secondary}
    dlib_model = secondary.get("dlib")
    dlib_chips = (
        [dlib_model.cropper.crop(img, central_box_face(img.shape)) for img in images]
        if dlib_model is not None
        else []
    )
    chips: list[npt.NDArray[np.uint8]] = []
    if peer is not None:
        dlib = importlib.import_module("dlib")

        for img in images:
            face = central_box_face(img.shape)
            rect = peer.internal._css_to_rect(peer.css(face))
            chips.append(dlib.get_face_chip(img, peer.internal.pose_predictor_5_point(img, rect)))
    rows = []
    for batch in BATCH_SIZES:
        # One call of exactly one batch, so the figure measures that batch size alone.
        embedder = FaceNetEmbedder(batch_size=batch)
        ms = median_ms(partial(embedder.embed, crops[:batch]), repeats)
        row: JsonDict = {"batch": batch, "rollcall_per_second": rounded(1000 * batch / ms, 2)}
        if dlib_model is not None:
            ms = median_ms(partial(dlib_model.embedder.embed, dlib_chips[:batch]), repeats)
            row["rollcall_dlib_per_second"] = rounded(1000 * batch / ms, 2)
        if peer is not None:
            ms = median_ms(
                partial(peer.internal.face_encoder.compute_face_descriptor, chips[:batch], 1),
                repeats,
            )
            row["face_recognition_per_second"] = rounded(1000 * batch / ms, 2)
        rows.append(row)
    return {"repeats": repeats, "rows": rows}


# -- class growth -----------------------------------------------------------------------------------


def class_growth(ctx: BenchContext, ours: RollcallSystem) -> JsonDict:
    from bench.oneshot import MIN_PHOTOS, rollcall_views
    from ml.head import HeadTrainingConfig, train_head

    sizes = QUICK_CLASS_SIZES if ctx.quick else CLASS_SIZES
    repeats = 2 if ctx.quick else 5
    identities = {
        name: [str(p.relative_to(ctx.lfw_dir)) for p in photos]
        for name, photos in collect_identities(ctx.lfw_dir).items()
    }
    # Students with several photos first: their registration views are already cached by oneshot.
    order = sorted(identities, key=lambda n: (len(identities[n]) < MIN_PHOTOS, n))
    needed = max(sizes) + 1
    chosen = order[:needed]
    cache = ctx.cache("enrol", ours.name, ours.registration_config())
    views, computed = rollcall_views(ours, ctx.lfw_dir, [identities[n][0] for n in chosen], cache)
    student_views = {n: views["facenet"][identities[n][0]] for n in chosen}
    secondary_views = {
        model: {n: views[model][identities[n][0]] for n in chosen} for model in ours.models[1:]
    }
    newcomer = chosen[-1]
    newcomer_image = load_rgb(ctx.lfw_dir / identities[newcomer][0])
    pipeline = ours.pipeline
    seed_config = HeadTrainingConfig(seed=pipeline.config.seed)
    rows = []
    for size in sizes:
        class_views = {n: student_views[n] for n in chosen[:size]}
        class_secondary = {
            model: {n: per_student[n] for n in chosen[:size]}
            for model, per_student in secondary_views.items()
        }
        gallery = Gallery.from_views(class_views, class_secondary)

        def register(
            cv: dict[str, npt.NDArray[np.float32]] = class_views,
            cs: dict[str, dict[str, npt.NDArray[np.float32]]] = class_secondary,
        ) -> None:
            # What a registration computes in the service: the class gallery rebuilt from every
            # student's embeddings, the new photo enrolled (every model), and compared with
            # everybody (duplicates).
            current = Gallery.from_views(cv, cs)
            enrolled = pipeline.enrol(newcomer_image)
            current.similarities(
                {
                    "facenet": enrolled.views.mean(axis=0, keepdims=True),
                    **{
                        m: v.mean(axis=0, keepdims=True)
                        for m, v in enrolled.secondary_views.items()
                    },
                }
            )

        register_ms = median_ms(register, repeats)
        enrol_ms = median_ms(lambda: pipeline.enrol(newcomer_image), repeats)
        started = time.perf_counter()
        head = train_head(class_views, config=seed_config)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        train_head(
            {**class_views, newcomer: student_views[newcomer]}, previous=head, config=seed_config
        )
        warm = time.perf_counter() - started
        rows.append(
            {
                "students": size,
                "registration_ms": register_ms,
                "enrolment_ms": enrol_ms,
                "head_training_s": rounded(cold, 3),
                "head_steps": head.steps if head is not None else 0,
                "head_retraining_warm_s": rounded(warm, 3),
                "gallery_rows": int(gallery.templates.shape[0]),
            }
        )
        logger.info("class growth: %s", rows[-1])
    return {"repeats": repeats, "registration_views_computed": computed, "rows": rows}


# -- HTTP ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def peak_rss_bytes(pid: int) -> int | None:
    """``VmHWM``: the process's peak resident set size since it started."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class RssSampler:
    pid: int
    peak: int = 0
    running: bool = True

    def loop(self) -> None:
        import psutil  # type: ignore[import-untyped]

        process = psutil.Process(self.pid)
        while self.running:
            try:
                self.peak = max(self.peak, int(process.memory_info().rss))
            except psutil.Error:
                return
            time.sleep(0.05)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def http_service(ctx: BenchContext) -> JsonDict:
    import httpx

    requests = QUICK_REQUESTS if ctx.quick else REQUESTS
    workdir = Path(tempfile.mkdtemp(prefix="rollcall-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "AWS_", "ROLLCALL_"))}
    env.update(
        {
            "ROLLCALL_DATA_DIR": str(workdir / "data"),
            "ROLLCALL_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO_DIR),
        }
    )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    base = f"http://127.0.0.1:{port}"
    # cwd is the temporary folder so that no .env of the checkout is read.
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    sampler = RssSampler(process.pid)
    thread = threading.Thread(target=sampler.loop, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            started = time.perf_counter()
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"service exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > 180:
                    raise RuntimeError("service not ready after 180 s")
                time.sleep(0.3)
            startup_s = time.perf_counter() - started
            idle_rss = sampler.peak
            registered, registration_ms = register_class(client, ctx)
            head_state = wait_for_head(client)
            photo = (ctx.groups_dir / HTTP_PHOTO).read_bytes()
            levels = []
            for concurrency in CONCURRENCY:
                levels.append(fire(base, photo, concurrency, requests[concurrency], HTTP_PHOTO))
                logger.info("http: %s", levels[-1])
        peak = peak_rss_bytes(process.pid)
    finally:
        sampler.running = False
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "photo": HTTP_PHOTO,
        "startup_s": rounded(startup_s, 2),
        "students_registered": registered,
        "registration_ms_median": rounded(statistics.median(registration_ms), 1),
        "registration_ms_p95": rounded(percentile(registration_ms, 95), 1),
        "head_state_before_load": head_state,
        "levels": levels,
        "rss_idle_bytes": idle_rss,
        "rss_peak_bytes": peak if peak is not None else sampler.peak,
        "rss_peak_source": "VmHWM" if peak is not None else "sampled every 50 ms",
    }


def register_class(client: Any, ctx: BenchContext) -> tuple[int, list[float]]:
    """Every ``faces/people`` identity, from the first photo the service accepts."""
    latencies: list[float] = []
    registered = 0
    for name, photos in class_identities(ctx).items():
        for path in photos:
            started = time.perf_counter()
            response = client.post(
                "/register/register-student",
                files=[("files", (path.name, path.read_bytes(), "image/jpeg"))],
                data={"student_name": name},
            )
            if response.status_code == 200:
                latencies.append(1000 * (time.perf_counter() - started))
                registered += 1
                break
            if response.status_code != 422:
                raise RuntimeError(f"registration failed: {response.status_code} {response.text}")
    return registered, latencies


def wait_for_head(client: Any, timeout: float = 300) -> str:
    """Let the background head training finish, so it does not compete with the measured load."""
    started = time.perf_counter()
    state = "unknown"
    while time.perf_counter() - started < timeout:
        head = client.get("/v1/classes/default").json().get("head") or {}
        state = str(head.get("state", "none"))
        if state in ("ready", "none", "failed"):
            return state
        time.sleep(0.5)
    return state


def fire(base: str, photo: bytes, concurrency: int, total: int, name: str) -> JsonDict:
    import httpx

    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def one(client: httpx.Client) -> None:
        nonlocal failures
        started = time.perf_counter()
        response = client.post("/mark/detect", files={"file": (name, photo, "image/jpeg")})
        elapsed = 1000 * (time.perf_counter() - started)
        with lock:
            if response.status_code == 200:
                latencies.append(elapsed)
            else:
                failures += 1

    with httpx.Client(base_url=base, timeout=600) as warm:
        one(warm)  # warm-up, not counted
        latencies.clear()
    clients = [httpx.Client(base_url=base, timeout=600) for _ in range(concurrency)]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for i in range(total):
            pool.submit(one, clients[i % concurrency])
    wall = time.perf_counter() - started
    for client in clients:
        client.close()
    return {
        "concurrency": concurrency,
        "requests": total,
        "failures": failures,
        "seconds": rounded(wall, 2),
        "requests_per_second": rounded(len(latencies) / wall, 3),
        "p50_ms": rounded(percentile(latencies, 50), 1) if latencies else None,
        "p95_ms": rounded(percentile(latencies, 95), 1) if latencies else None,
    }


def run(ctx: BenchContext) -> JsonDict:
    ours = RollcallSystem()
    peer = FaceRecognitionSystem() if face_recognition_available() else None
    result: JsonDict = {}
    parts: tuple[tuple[str, Callable[[], JsonDict]], ...] = (
        ("stages", lambda: stages(ctx, ours, peer)),
        ("embedding", lambda: embedding_throughput(ctx, ours, peer)),
        ("class_growth", lambda: class_growth(ctx, ours)),
        ("http", lambda: http_service(ctx)),
    )
    for part, action in parts:
        before = load_average()
        started = time.perf_counter()
        result[part] = action()
        result[part]["load_average_before"] = before
        result[part]["load_average_after"] = load_average()
        result[part]["seconds"] = rounded(time.perf_counter() - started, 1)
    result["peer_available"] = peer is not None
    result["cores"] = os.cpu_count()
    return result
