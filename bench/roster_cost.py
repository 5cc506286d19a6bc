"""What deriving attendance on every read costs, on the disk store and on S3 (SeaweedFS on
loopback): ``uv run python -m bench.roster_cost [--students 30] [--sessions 60] [--photos 2]``.

The roster is never stored: each read lists the class's sessions and reads their photos' results
and the newest correction of each student (``app/services/attendance/roster.py``), through the
per-process cache of parsed documents (``app/records/cache.py``). The class is written straight
through the repositories (no face model runs): every student enrolled a year ago with one
embedding; each session ``session.json``, its photos' ``result.json`` (half the class named on
each) and one teacher's correction. Prints, for one session's roster, the list of sessions with
their counts, the term report and one student's history: the median of 5 reads by a process that
has read them before (warm), and of 3 reads by a fresh one each (cold: just started, or another
replica).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.core.ids import new_id, utc_now
from app.records import documents, keys
from app.services import attendance
from app.services.context import Context
from app.settings import Settings
from app.storage import DiskObjectStore, ObjectStore
from harness.s3server import SeaweedS3Server
from ml.config import PipelineConfig
from ml.pipeline import FacePipeline
from ml.types import DetectedFace, Embeddings, RGBImage

CLASS_ID = "bench-roster"
REPEATS = 5


class _NoModel:
    """Nothing here runs a face model."""

    dim = 512
    input_size = 160

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        raise AssertionError("no face model in this benchmark")

    def embed(self, crops: object) -> Embeddings:
        raise AssertionError("no face model in this benchmark")


def _context(store: ObjectStore) -> Context:
    pipeline = FacePipeline(PipelineConfig(), _NoModel(), _NoModel())
    ctx = Context.build(Settings(_env_file=None), store, pipeline)
    ctx.trainer.close()
    ctx.backfill.close()
    return ctx


def fill(store: ObjectStore, students: int, sessions: int, photos: int) -> Context:
    ctx = _context(store)
    records = ctx.records
    now = utc_now()
    records.classes.create(documents.ClassDoc(id=CLASS_ID, name="Bench", created_at=now))
    ids = [f"s{i:03d}" for i in range(students)]
    enrolled = now - dt.timedelta(days=365)
    views = documents.embeddings_to_bytes(np.ones((2, 512), np.float32))
    for student_id in ids:
        records.students.claim(
            CLASS_ID, documents.StudentDoc(id=student_id, name=student_id, created_at=enrolled)
        )
        store.put(keys.embedding_key(CLASS_ID, student_id, "p1"), views)
    first = dt.date.today() - dt.timedelta(days=sessions)
    for n in range(sessions):
        session_id = f"d{n:03d}"
        records.sessions.create(
            CLASS_ID,
            documents.SessionDoc(
                id=session_id, label="Lesson", date=first + dt.timedelta(days=n), created_at=now
            ),
        )
        for p in range(photos):
            faces = [
                documents.FaceDoc(
                    box=(0, 0, 10, 10),
                    detection_score=0.9,
                    student_id=student_id,
                    similarity=0.7,
                    score=0.6,
                )
                for student_id in ids[p % 2 :: 2]
            ]
            doc = documents.SessionPhotoDoc(
                id=f"p{p}", created_at=now, width=10, height=10, unknown_threshold=0.4, faces=faces
            )
            key = keys.SESSION_PHOTO.key(
                class_id=CLASS_ID, session_id=session_id, photo_id=doc.id, name=keys.RESULT
            )
            store.put(key, doc.to_json_bytes())
        records.corrections.add(
            CLASS_ID,
            session_id,
            documents.StatusCorrectionDoc(
                id=new_id(),
                student_id=ids[0],
                status="late",
                corrected_at=now,
                corrected_by="bench",
            ),
        )
    return ctx


COLD_REPEATS = 3

READS: dict[str, Callable[[Context], object]] = {
    "one roster": lambda ctx: attendance.get_session(ctx, CLASS_ID, "d000"),
    "sessions list": lambda ctx: attendance.list_sessions(ctx, CLASS_ID),
    "term report": lambda ctx: attendance.term_report(ctx, CLASS_ID, None, None),
    "student history": lambda ctx: attendance.student_attendance(ctx, CLASS_ID, "s000"),
}


def median_ms(read: Callable[[Context], object], contexts: Callable[[], Context], n: int) -> float:
    """The median time of ``n`` reads, each by ``contexts()``'s context."""
    times = []
    for _ in range(n):
        ctx = contexts()
        start = time.perf_counter()
        read(ctx)
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


def measure(name: str, store: ObjectStore, args: argparse.Namespace) -> None:
    ctx = fill(store, args.students, args.sessions, args.photos)
    try:
        warm = {what: median_ms(read, lambda: ctx, REPEATS) for what, read in READS.items()}
        cold = {
            what: median_ms(read, lambda: _context(store), COLD_REPEATS)
            for what, read in READS.items()
        }
    finally:
        ctx.trainer.close()
        ctx.backfill.close()
        ctx.cleanup.close()
    load = os.getloadavg()
    for label, figures in (("warm", warm), ("cold", cold)):
        print(
            f"{name} {label}: "
            + ", ".join(f"{what} {ms:.0f} ms" for what, ms in figures.items())
            + f" (load average {load[0]:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.roster_cost")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--photos", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{args.students} students, {args.sessions} sessions of {args.photos} photos, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )
    with tempfile.TemporaryDirectory() as folder:
        measure("disk", DiskObjectStore(Path(folder)), args)
    with SeaweedS3Server() as server:
        info = server.info
        info.client().create_bucket(Bucket="bench-roster")
        store = info.object_store("bench-roster")
        measure("S3", store, args)


if __name__ == "__main__":
    main()
