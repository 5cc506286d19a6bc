"""What deriving attendance on every read costs, on the disk store and on S3 (SeaweedFS on
loopback): ``uv run python -m bench.roster_cost [--students 30] [--sessions 60] [--photos 2]``.

The roster is never stored: each read lists the session's folder and reads its photos' results and
the newest correction of each student (``app/services/roster.py``). The class is written straight
through the repositories (no face model runs): every student enrolled a year ago with one
embedding; each session ``session.json``, its photos' ``result.json`` (half the class named on
each) and one teacher's correction. Prints the median of 5 reads of: one session's roster, the
list of sessions with their counts, the term report, and one student's history.
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

from app.services import attendance, layout, reports
from app.services.context import Context
from app.services.ids import new_id, utc_now
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


def fill(store: ObjectStore, students: int, sessions: int, photos: int) -> Context:
    pipeline = FacePipeline(PipelineConfig(), _NoModel(), _NoModel())
    ctx = Context.build(Settings(_env_file=None), store, pipeline)
    records = ctx.records
    now = utc_now()
    records.classes.create(layout.ClassDoc(id=CLASS_ID, name="Bench", created_at=now))
    ids = [f"s{i:03d}" for i in range(students)]
    enrolled = now - dt.timedelta(days=365)
    views = layout.embeddings_to_bytes(np.ones((2, 512), np.float32))
    for student_id in ids:
        records.students.claim(
            CLASS_ID, layout.StudentDoc(id=student_id, name=student_id, created_at=enrolled)
        )
        store.put(layout.embedding_key(CLASS_ID, student_id, "p1"), views)
    first = dt.date.today() - dt.timedelta(days=sessions)
    for n in range(sessions):
        session_id = f"d{n:03d}"
        records.sessions.create(
            CLASS_ID,
            layout.SessionDoc(
                id=session_id, label="Lesson", date=first + dt.timedelta(days=n), created_at=now
            ),
        )
        for p in range(photos):
            faces = [
                layout.FaceDoc(
                    box=(0, 0, 10, 10),
                    detection_score=0.9,
                    student_id=student_id,
                    similarity=0.7,
                    score=0.6,
                )
                for student_id in ids[p % 2 :: 2]
            ]
            doc = layout.SessionPhotoDoc(
                id=f"p{p}", created_at=now, width=10, height=10, unknown_threshold=0.4, faces=faces
            )
            key = layout.session_photo_key(CLASS_ID, session_id, doc.id, layout.RESULT)
            store.put(key, doc.to_json_bytes())
        records.corrections.add(
            CLASS_ID,
            session_id,
            layout.StatusCorrectionDoc(
                id=new_id(),
                student_id=ids[0],
                status="late",
                corrected_at=now,
                corrected_by="bench",
            ),
        )
    return ctx


def median_ms(read: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


def measure(name: str, store: ObjectStore, args: argparse.Namespace) -> None:
    ctx = fill(store, args.students, args.sessions, args.photos)
    try:
        figures = {
            "one roster": median_ms(lambda: attendance.get_session(ctx, CLASS_ID, "d000")),
            "sessions list": median_ms(lambda: attendance.list_sessions(ctx, CLASS_ID)),
            "term report": median_ms(lambda: reports.term_report(ctx, CLASS_ID, None, None)),
            "student history": median_ms(
                lambda: attendance.student_attendance(ctx, CLASS_ID, "s000")
            ),
        }
    finally:
        ctx.trainer.close()
        ctx.backfill.close()
        ctx.cleanup.close()
    load = os.getloadavg()
    print(
        f"{name}: "
        + ", ".join(f"{what} {ms:.0f} ms" for what, ms in figures.items())
        + f" (median of {REPEATS}; load average {load[0]:.2f})"
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
