"""A simulated term through the real service: uploads, teacher corrections and learning over HTTP.

``bench.term`` simulates learning on cached embeddings; this section runs the same idea through
the application itself (``app.main.create_app`` with the default pipeline, in-process with
FastAPI's ``TestClient``, on a fresh folder store per run), so what it measures is what a teacher
gets: the stored photos, the assignments, the samples and the gallery the service rebuilds.

One class of :data:`CLASS_SIZE` LFW identities with at least :data:`MIN_PHOTOS` photos (seeded,
``bench.term.term_classes``), each enrolled with ``POST /students`` from their first photo (the
next one when the service refuses it, e.g. two faces). Week ``w`` is one class photo: every
student's next unseen photo and :data:`STRANGERS_PER_SESSION` strangers (LFW identities with 1-2
photos, new each week), 250 x 250 px tiles in a seeded order on a grid of :data:`GRID_COLUMNS`
columns, uploaded as a JPEG to a new session. A detected face belongs to the tile its box centre
lies in; the one nearest the tile's centre is that tile's person, any other is a background face
of the LFW photo. Then the teacher corrects it: every missed or wrongly named student's face is
assigned to the right student, every named stranger or background face to nobody. Whether the
corrections took effect is read back (the photo's faces and the session's roster).

The class is enrolled once; each run starts the app on a fresh copy of that store. Two runs on the
same photos: learning on (the defaults) and off (``learn_from_photos=False``).
"""

from __future__ import annotations

import io
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from bench.common import BenchContext, CpuSnapshot, JsonDict, load_average, rounded
from bench.term import TermClass, term_classes
from ml.eval.oneshot import collect_identities

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from ml.pipeline import FacePipeline

logger = logging.getLogger(__name__)

MIN_PHOTOS = 7
"""Registration photo + six weeks."""
CLASS_SIZE = 30
WEEKS = 6
STRANGERS_PER_SESSION = 3
QUICK_CLASS_SIZE = 8
QUICK_WEEKS = 2
TILE_PX = 250
"""LFW's photo size: tiles are never scaled."""
GRID_COLUMNS = 6
"""33 tiles (30 students, 3 strangers) make a 6 x 6 grid: a 1,500 x 1,500 px class photo."""
JPEG_QUALITY = 92
CLASS_ID = "term"
BACKGROUND = "background"
"""The truth of a face that is not the person of its tile (someone behind them in the LFW photo)."""

Box = Sequence[float]


# -- the class photo -----------------------------------------------------------------------------


def grid_rows(n_tiles: int, columns: int) -> int:
    return max(1, -(-n_tiles // columns))


def grid_cell(box: Box, tile_px: int, columns: int, rows: int) -> int | None:
    """The tile (row-major index) that the centre of ``box`` (x1, y1, x2, y2) lies in; ``None``
    outside the grid."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    column, row = int(cx // tile_px), int(cy // tile_px)
    if cx < 0 or cy < 0 or not (0 <= column < columns and 0 <= row < rows):
        return None
    return row * columns + column


def faces_by_cell(
    boxes: Sequence[Box], tile_px: int, columns: int, rows: int
) -> tuple[dict[int, int], list[int]]:
    """Each tile's face (the index of the face whose centre is nearest the tile's centre, among
    those centred in it) and every other face (background faces, or outside the grid)."""
    nearest: dict[int, tuple[float, int]] = {}
    for index, box in enumerate(boxes):
        cell = grid_cell(box, tile_px, columns, rows)
        if cell is None:
            continue
        row, column = divmod(cell, columns)
        centre = ((column + 0.5) * tile_px, (row + 0.5) * tile_px)
        distance = float(
            np.hypot((box[0] + box[2]) / 2 - centre[0], (box[1] + box[3]) / 2 - centre[1])
        )
        if cell not in nearest or distance < nearest[cell][0]:
            nearest[cell] = (distance, index)
    chosen = {cell: index for cell, (_, index) in nearest.items()}
    others = sorted(set(range(len(boxes))) - set(chosen.values()))
    return chosen, others


def grid_jpeg(photos: Sequence[Path], columns: int, tile_px: int = TILE_PX) -> bytes:
    """The photos as tiles of a grid (row-major, white where the last row is short), as a JPEG."""
    rows = grid_rows(len(photos), columns)
    canvas = Image.new("RGB", (columns * tile_px, rows * tile_px), "white")
    for index, path in enumerate(photos):
        with Image.open(path) as opened:
            tile = opened.convert("RGB")
        if tile.size != (tile_px, tile_px):
            tile = tile.resize((tile_px, tile_px), Image.Resampling.BICUBIC)
        row, column = divmod(index, columns)
        canvas.paste(tile, (column * tile_px, row * tile_px))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


# -- counting ------------------------------------------------------------------------------------


@dataclass
class WeekCounts:
    week: int
    student_tiles: int = 0
    not_detected: int = 0
    """Students' tiles where no face was found: nothing to name or correct."""
    named_right: int = 0
    missed: int = 0
    wrong: int = 0
    stranger_tiles: int = 0
    strangers_accepted: int = 0
    background_faces: int = 0
    background_named: int = 0
    assignments: int = 0
    assignments_not_in_effect: int = 0
    """Assigned faces whose name read back (right after, and at the end of the week) is not the
    one assigned."""
    photo_faces_wrong_after: int = 0
    """Faces of the photo named otherwise than the truth after all corrections."""
    roster_wrong_after: int = 0
    """Students whose presence in the session's roster is not the truth after all corrections."""
    samples_teacher: int = 0
    samples_recognition: int = 0
    wrong_samples: int = 0
    """Samples (all weeks so far) of a face that is not the student's."""
    upload_ms: float = 0.0
    assign_ms: list[float] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return self.samples_teacher + self.samples_recognition

    def row(self) -> JsonDict:
        shown = self.student_tiles - self.not_detected
        row = {k: v for k, v in asdict(self).items() if k != "assign_ms"}
        return row | {
            "samples": self.samples,
            "named_right_rate": rounded(self.named_right / max(1, shown)),
            "assign_ms_median": rounded(statistics.median(self.assign_ms), 1)
            if self.assign_ms
            else None,
            "upload_ms": rounded(self.upload_ms, 1),
        }


SUMMED = (
    "student_tiles",
    "not_detected",
    "named_right",
    "missed",
    "wrong",
    "stranger_tiles",
    "strangers_accepted",
    "background_faces",
    "background_named",
    "assignments",
    "assignments_not_in_effect",
    "photo_faces_wrong_after",
    "roster_wrong_after",
)


def weeks_total(weeks: Sequence[WeekCounts], first: int) -> JsonDict:
    """The counts of weeks ``first``.. added up, with the named-right rate over the faces shown."""
    chosen = [w for w in weeks if w.week >= first]
    total = {name: sum(getattr(w, name) for w in chosen) for name in SUMMED}
    shown = total["student_tiles"] - total["not_detected"]
    return {
        "weeks": f"{first}-{chosen[-1].week}" if chosen else f"{first}-",
        **total,
        "named_right_rate": rounded(total["named_right"] / max(1, shown)),
    }


# -- the service ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    photo: Path
    truth: str | None
    """The student id, or ``None`` for a stranger."""


class ServiceClass:
    """The HTTP calls this section makes, each checked."""

    def __init__(self, client: TestClient):
        self.client = client

    def url(self, path: str = "") -> str:
        return f"/v1/classes/{CLASS_ID}{path}"

    def expect(self, response: Any, status: int) -> Any:
        if response.status_code != status:
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
        return response.json()

    def create(self) -> None:
        self.expect(self.client.post("/v1/classes", json={"id": CLASS_ID, "name": "Term"}), 201)

    def enrol(self, student_id: str, name: str, photos: Sequence[Path]) -> int | None:
        """Enrol from the first photo the service accepts; the number of photos used (``None``:
        none was accepted)."""
        for used, path in enumerate(photos, start=1):
            response = self.client.post(
                self.url("/students"),
                data={"student_id": student_id, "name": name},
                files={"photos": (path.name, path.read_bytes(), "image/jpeg")},
            )
            if response.status_code == 201:
                return used
            if response.status_code != 422:
                self.expect(response, 201)
        return None

    def upload(self, session_id: str, week: int, jpeg: bytes) -> tuple[JsonDict, float]:
        self.expect(
            self.client.post(
                self.url("/sessions"), json={"id": session_id, "label": f"Week {week}"}
            ),
            201,
        )
        started = time.perf_counter()
        response = self.client.post(
            self.url(f"/sessions/{session_id}/photos"),
            files={"photo": (f"week-{week}.jpg", jpeg, "image/jpeg")},
        )
        elapsed = (time.perf_counter() - started) * 1000
        body: JsonDict = self.expect(response, 201)
        return body, elapsed

    def assign(
        self, session_id: str, photo_id: str, face: int, student_id: str | None
    ) -> tuple[JsonDict, float]:
        started = time.perf_counter()
        response = self.client.post(
            self.url(f"/sessions/{session_id}/photos/{photo_id}/faces/{face}/assign"),
            json={"student_id": student_id},
        )
        elapsed = (time.perf_counter() - started) * 1000
        body: JsonDict = self.expect(response, 200)
        return body, elapsed

    def photo(self, session_id: str, photo_id: str) -> JsonDict:
        body: JsonDict = self.expect(
            self.client.get(self.url(f"/sessions/{session_id}/photos/{photo_id}")), 200
        )
        return body

    def present(self, session_id: str) -> set[str]:
        body = self.expect(self.client.get(self.url(f"/sessions/{session_id}")), 200)
        return {entry["student_id"] for entry in body["roster"] if entry["present"]}

    def samples(self, student_id: str) -> list[JsonDict]:
        body = self.expect(self.client.get(self.url(f"/students/{student_id}")), 200)
        found: list[JsonDict] = body["samples"]
        return found


@contextmanager
def running_service(pipeline: FacePipeline, data_dir: Path, learn: bool) -> Iterator[TestClient]:
    """The app on the folder store ``data_dir``; waits for its background work before it stops."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(_env_file=None, data_dir=data_dir, learn_from_photos=learn)
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        yield client
        assert isinstance(client.app, FastAPI)
        client.app.state.context.trainer.wait_idle(timeout=600)
        client.app.state.context.backfill.wait_idle(timeout=600)


def wait_background(client: TestClient) -> None:
    """Let head training (started by enrolments and samples) finish: a week passes between
    sessions, and a training running beside an upload would only slow the upload down."""
    from fastapi import FastAPI

    assert isinstance(client.app, FastAPI)
    client.app.state.context.trainer.wait_idle(timeout=600)


def student_ids(term: TermClass) -> dict[str, str]:
    """LFW name -> student id (the ids are URL slugs; the names are the LFW names)."""
    return {name: f"s{i:02d}" for i, name in enumerate(sorted(term.students))}


@dataclass(frozen=True)
class Enrolled:
    """The class enrolled once into a folder store that every run starts from a copy of."""

    data_dir: Path
    unseen: dict[str, list[Path]]
    """Student id -> the photos after the one enrolled (one per week, in order)."""
    later_photo: int
    """Students the service enrolled from a later photo than their first (it refused the first)."""
    seconds: float


def enrol_class(pipeline: FacePipeline, term: TermClass, lfw_dir: Path, folder: Path) -> Enrolled:
    ids = student_ids(term)
    started = time.perf_counter()
    unseen: dict[str, list[Path]] = {}
    later_photo = 0
    with running_service(pipeline, folder, learn=True) as client:
        service = ServiceClass(client)
        service.create()
        for name, photos in sorted(term.students.items()):
            paths = [lfw_dir / p for p in photos]
            used = service.enrol(ids[name], name.replace("_", " "), paths)
            if used is None:
                logger.warning("%s: no photo accepted for enrolment", name)
                continue
            later_photo += used > 1
            unseen[ids[name]] = paths[used:]
    return Enrolled(folder, unseen, later_photo, time.perf_counter() - started)


def run_term(
    pipeline: FacePipeline,
    term: TermClass,
    enrolled: Enrolled,
    lfw_dir: Path,
    *,
    learn: bool,
    weeks: int,
    seed: int,
) -> JsonDict:
    """The enrolled class (a fresh copy of its store) through ``weeks`` sessions with the
    teacher's corrections; per-week counts."""
    load_before, cpu_before, started = load_average(), CpuSnapshot.now(), time.perf_counter()
    unseen = {sid: list(photos) for sid, photos in enrolled.unseen.items()}
    with (
        tempfile.TemporaryDirectory(prefix="rollcall-service-term-") as folder,
        running_service(pipeline, copied(enrolled.data_dir, Path(folder)), learn) as client,
    ):
        service = ServiceClass(client)
        truth_of: dict[tuple[str, str, int], str | None] = {}
        results: list[WeekCounts] = []
        for week in range(1, weeks + 1):
            wait_background(client)
            tiles = [Tile(p.pop(0), sid) for sid, p in sorted(unseen.items()) if p]
            tiles += [Tile(lfw_dir / p, None) for p in term.strangers[week - 1]]
            order = np.random.default_rng([seed, week]).permutation(len(tiles))
            tiles = [tiles[i] for i in order]
            counts = one_week(service, week, tiles, truth_of, set(unseen))
            results.append(counts)
            logger.info(
                "service-term learn=%s week %d: right %d missed %d wrong %d strangers %d, "
                "samples %d",
                learn,
                week,
                counts.named_right,
                counts.missed,
                counts.wrong,
                counts.strangers_accepted,
                counts.samples,
            )
    assign_ms = [ms for w in results for ms in w.assign_ms]
    upload_ms = [w.upload_ms for w in results]
    return {
        "learn_from_photos": learn,
        "weeks": [w.row() for w in results],
        "totals": [weeks_total(results, 1), weeks_total(results, 2)],
        "samples_at_end": results[-1].samples if results else 0,
        "wrong_samples_at_end": results[-1].wrong_samples if results else 0,
        "assign_ms_median": rounded(statistics.median(assign_ms), 1) if assign_ms else None,
        "assignments": len(assign_ms),
        "upload_ms_median": rounded(statistics.median(upload_ms), 1) if upload_ms else None,
        "seconds": rounded(time.perf_counter() - started, 1),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cpu_used_by_other_processes": rounded(cpu_before.other_share(CpuSnapshot.now()), 3),
    }


def copied(source: Path, folder: Path) -> Path:
    """A copy of the folder store ``source`` inside ``folder``."""
    target = folder / "store"
    shutil.copytree(source, target)
    return target


def one_week(
    service: ServiceClass,
    week: int,
    tiles: Sequence[Tile],
    truth_of: dict[tuple[str, str, int], str | None],
    enrolled: set[str],
) -> WeekCounts:
    """Upload the week's photo, count, correct, read the corrections back, count the samples.
    ``truth_of`` (``(session, photo, face) -> student``, ``None`` for a stranger,
    :data:`BACKGROUND`) gains this photo's faces."""
    counts = WeekCounts(week)
    session_id = f"week-{week}"
    rows = grid_rows(len(tiles), GRID_COLUMNS)
    body, counts.upload_ms = service.upload(
        session_id, week, grid_jpeg([t.photo for t in tiles], GRID_COLUMNS)
    )
    photo_id: str = body["photo_id"]
    faces: list[JsonDict] = body["faces"]
    by_cell, others = faces_by_cell([f["box"] for f in faces], TILE_PX, GRID_COLUMNS, rows)
    wanted: dict[int, str | None] = {}
    """Face -> the name it must have after the corrections."""
    for cell, tile in enumerate(tiles):
        index = by_cell.get(cell)
        if tile.truth is None:
            counts.stranger_tiles += 1
        else:
            counts.student_tiles += 1
        if index is None or faces[index]["too_small"]:
            counts.not_detected += tile.truth is not None
            continue
        wanted[index] = tile.truth
        truth_of[(session_id, photo_id, index)] = tile.truth
        named = faces[index]["student_id"]
        if tile.truth is None:
            counts.strangers_accepted += named is not None
        elif named == tile.truth:
            counts.named_right += 1
        elif named is None:
            counts.missed += 1
        else:
            counts.wrong += 1
    for index in others:
        counts.background_faces += 1
        counts.background_named += faces[index]["student_id"] is not None
        truth_of[(session_id, photo_id, index)] = BACKGROUND
        if not faces[index]["too_small"]:
            wanted[index] = None
    # The teacher's corrections, in face order (as a teacher goes through the photo).
    for index in sorted(wanted):
        if faces[index]["student_id"] == wanted[index]:
            continue
        detail, elapsed = service.assign(session_id, photo_id, index, wanted[index])
        counts.assign_ms.append(elapsed)
        counts.assignments += 1
        counts.assignments_not_in_effect += detail["faces"][index]["student_id"] != wanted[index]
    after = service.photo(session_id, photo_id)["faces"]
    counts.photo_faces_wrong_after = sum(
        after[index]["student_id"] != name for index, name in wanted.items()
    )
    present = service.present(session_id)
    shown = {name for name in wanted.values() if name is not None}
    counts.roster_wrong_after = len(present ^ shown)
    for student_id in sorted(enrolled):
        for sample in service.samples(student_id):
            if sample["confirmed_by"] == "teacher":
                counts.samples_teacher += 1
            else:
                counts.samples_recognition += 1
            key = (sample["session_id"], sample["photo_id"], sample["face_index"])
            counts.wrong_samples += truth_of.get(key) != student_id
    return counts


# -- the section ---------------------------------------------------------------------------------


def choose_class(lfw_dir: Path, *, seed: int, class_size: int) -> TermClass:
    identities = {
        name: [str(p.relative_to(lfw_dir)) for p in photos]
        for name, photos in collect_identities(lfw_dir).items()
    }
    (term,) = term_classes(
        identities,
        seed=seed,
        min_photos=MIN_PHOTOS,
        class_size=class_size,
        strangers_per_session=STRANGERS_PER_SESSION,
        max_classes=1,
    )
    return term


def run(ctx: BenchContext) -> JsonDict:
    from app.settings import Settings
    from ml.factory import build_pipeline

    class_size = QUICK_CLASS_SIZE if ctx.quick else CLASS_SIZE
    weeks = QUICK_WEEKS if ctx.quick else WEEKS
    term = choose_class(ctx.lfw_dir, seed=ctx.seed, class_size=class_size)
    defaults = Settings(_env_file=None)
    started = time.perf_counter()
    pipeline = build_pipeline(defaults.pipeline_config())
    pipeline_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="rollcall-service-term-") as folder:
        enrolled = enrol_class(pipeline, term, ctx.lfw_dir, Path(folder) / "store")
        runs = {
            name: run_term(
                pipeline, term, enrolled, ctx.lfw_dir, learn=learn, weeks=weeks, seed=ctx.seed
            )
            for name, learn in (("learning", True), ("no_learning", False))
        }
    logger.info(
        "service-term weeks 2+ named right: %s",
        {name: r["totals"][-1]["named_right_rate"] for name, r in runs.items()},
    )
    return {
        "protocol": {
            "dataset": "LFW (the photos present under faces/lfw)",
            "class_size": len(term.students),
            "min_photos": MIN_PHOTOS,
            "weeks": weeks,
            "strangers_per_session": STRANGERS_PER_SESSION,
            "tile_px": TILE_PX,
            "grid_columns": GRID_COLUMNS,
            "jpeg_quality": JPEG_QUALITY,
            "models": list(pipeline.config.embedders),
            "n_views": pipeline.config.n_views,
            "auto_confirm_margin": defaults.auto_confirm_margin,
            "auto_confirm_gap": defaults.auto_confirm_gap,
            "max_samples_per_student": defaults.max_samples_per_student,
            "seed": ctx.seed,
        },
        "pipeline_build_seconds": rounded(pipeline_seconds, 1),
        "students_enrolled": len(enrolled.unseen),
        "enrolled_from_a_later_photo": enrolled.later_photo,
        "enrol_seconds": rounded(enrolled.seconds, 1),
        "runs": runs,
    }
