"""How long the retention purge takes for one class, on the disk store and on S3 (SeaweedFS on
loopback): ``uv run python -m bench.retention [--students 30] [--sessions 60] [--photos 2]``.

The class is written straight through the repositories (no face model runs): each student has
``student.json``, one registration photo and its embedding; each session ``session.json``, its
photos (a 400 kB original, a 200 kB annotated copy, ``result.json`` naming every student) and one
attendance record per student. The purge then runs as the cron command does
(:func:`app.purge.run`), 31 days later: every photo loses its images; a second run at the same
time finds nothing to do. Prints one line per backend and run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from app import purge
from app.core.ids import utc_now
from app.records import Repositories, documents, keys
from app.records.base import JPEG
from app.records.cleanup import PendingCleanup
from app.settings import Settings
from app.storage import DiskObjectStore, ObjectStore
from harness.s3server import SeaweedS3Server

CLASS_ID = "bench-retention"


def fill(store: ObjectStore, students: int, sessions: int, photos: int) -> None:
    records = Repositories(store, PendingCleanup())
    now = utc_now()
    records.classes.create(documents.ClassDoc(id=CLASS_ID, name="Bench", created_at=now))
    rng = np.random.default_rng(0)
    student_ids = [f"s{i:02d}" for i in range(students)]
    for student_id in student_ids:
        records.students.claim(
            CLASS_ID, documents.StudentDoc(id=student_id, name=student_id, created_at=now)
        )
        store.put(
            keys.STUDENT_PHOTO.key(class_id=CLASS_ID, student_id=student_id, photo_id="p"),
            os.urandom(30_000),
        )
        views = rng.normal(size=(15, 512)).astype(np.float32)
        store.put(
            keys.embedding_key(CLASS_ID, student_id, "p"), documents.embeddings_to_bytes(views)
        )
    faces = [
        documents.FaceDoc(
            box=(10.0 * i, 10.0, 10.0 * i + 40, 50.0),
            detection_score=0.99,
            student_id=student_id,
            similarity=0.8,
        )
        for i, student_id in enumerate(student_ids)
    ]
    for s in range(sessions):
        session_id = f"w{s:03d}"
        records.sessions.create(
            CLASS_ID,
            documents.SessionDoc(id=session_id, label=session_id, date=now.date(), created_at=now),
        )
        for p in range(photos):
            photo_id = f"{session_id}-{p}"
            for name, size in ((keys.ORIGINAL, 400_000), (keys.ANNOTATED, 200_000)):
                key = keys.SESSION_PHOTO.key(
                    class_id=CLASS_ID, session_id=session_id, photo_id=photo_id, name=name
                )
                store.put(key, os.urandom(size), content_type=JPEG)
            doc = documents.SessionPhotoDoc(
                id=photo_id,
                created_at=now,
                width=4000,
                height=3000,
                unknown_threshold=0.4,
                faces=faces,
            )
            key = keys.SESSION_PHOTO.key(
                class_id=CLASS_ID, session_id=session_id, photo_id=photo_id, name=keys.RESULT
            )
            store.put(key, doc.to_json_bytes())
        for student_id in student_ids:
            record = documents.RecordDoc(
                student_id=student_id, photo_id=f"{session_id}-0", recorded_at=now, similarity=0.8
            )
            store.put(
                keys.RECORD.key(class_id=CLASS_ID, session_id=session_id, student_id=student_id),
                record.to_json_bytes(),
            )


def measure(name: str, store: ObjectStore, args: argparse.Namespace) -> None:
    fill(store, args.students, args.sessions, args.photos)
    settings = Settings(_env_file=None)
    later = utc_now() + dt.timedelta(days=31)
    for run in ("first run", "second run"):
        started = time.perf_counter()
        report = purge.run(settings, store, class_id=CLASS_ID, out=io.StringIO(), now=later)
        seconds = time.perf_counter() - started
        print(
            f"{name}: {run}: {report.photos_purged} photos purged in {seconds:.2f} s "
            f"({args.students} students, {args.sessions} sessions x {args.photos} photos)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retention")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--photos", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measure("disk", DiskObjectStore(Path(folder)), args)
    with SeaweedS3Server() as server:
        info = server.info
        info.client().create_bucket(Bucket="bench-retention")
        store = info.object_store("bench-retention")
        measure("s3 (SeaweedFS on loopback)", store, args)


if __name__ == "__main__":
    main()
