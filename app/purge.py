"""Purge what the retention policy no longer allows to be kept, once, for a cron job:
``uv run python -m app.purge [--class CLASS_ID]``.

The same settings and storage as the service (``.env``, ``S3_BUCKET_NAME`` or
``ROLLCALL_DATA_DIR``); safe while the service runs, also beside its own background purge (every
step is idempotent, see :mod:`app.services.privacy.retention`). Prints one line per class (photos
purged, students erased) and a total; exit status 1 when the storage is unavailable. No face
model is loaded: the purge only lists, reads and deletes objects, and the service retrains a
class's head when it finds a student erased.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from app.commands import class_id_is_valid, configure_logging
from app.core.errors import NotFoundError
from app.core.ids import utc_now
from app.services.context import Context
from app.services.privacy import ClassPurge, PurgeReport, purge_all, purge_class
from app.settings import Settings
from app.storage import ObjectStore, StorageUnavailableError, create_object_store
from ml.config import PipelineConfig
from ml.pipeline import FacePipeline
from ml.types import DetectedFace, Embeddings, RGBImage

logger = logging.getLogger("app.purge")


class _NoFaceModel:
    """Stands in for the detector and the embedder: the purge never runs a face model."""

    dim = 512
    input_size = 160

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        raise RuntimeError("the purge runs no face model")

    def embed(self, crops: Sequence[RGBImage]) -> Embeddings:
        raise RuntimeError("the purge runs no face model")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.purge",
        description="Remove class photos past their retention and erase inactive students "
        "(ROLLCALL_SESSION_PHOTO_RETENTION_DAYS, ROLLCALL_STUDENT_INACTIVE_RETENTION_DAYS and "
        "each class's overrides).",
    )
    parser.add_argument(
        "--class", dest="class_id", default=None, help="purge this class only (default: all)"
    )
    return parser.parse_args(argv)


def report_line(report: ClassPurge) -> str:
    kept = f"{report.session_photo_days} days" if report.session_photo_days else "forever"
    inactive = (
        f"after {report.student_inactive_days} days inactive"
        if report.student_inactive_days
        else "off"
    )
    line = (
        f"{report.class_id}: {report.photos_purged} photos purged (kept {kept}), "
        f"{len(report.students_erased)} students erased ({inactive})"
    )
    if report.students_skipped:
        line += f", {report.students_skipped} left for the next run (changed meanwhile)"
    return line


def run(
    settings: Settings,
    store: ObjectStore,
    *,
    class_id: str | None,
    out: TextIO,
    now: dt.datetime | None = None,
) -> PurgeReport:
    """One purge as of ``now`` (default: the current time); writes the report to ``out``."""
    pipeline = FacePipeline(PipelineConfig(), _NoFaceModel(), _NoFaceModel())
    ctx = Context.build(settings, store, pipeline)
    # Nothing trains here: where the head is used, the service retrains one that knows an erased
    # student (the matcher drops it meanwhile).
    ctx.trainer.close()
    ctx.backfill.close()
    now = now if now is not None else utc_now()
    try:
        if class_id is None:
            report = purge_all(ctx, now)
        else:
            report = PurgeReport(now=now, classes=[purge_class(ctx, class_id, now)])
    finally:
        ctx.cleanup.close()
    for purged in report.classes:
        out.write(report_line(purged) + "\n")
    out.write(
        f"retention purge at {now.isoformat(timespec='seconds')}: {len(report.classes)} classes, "
        f"{report.photos_purged} photos purged, {report.students_erased} students erased"
        + (f", {report.imports_purged} import reports removed" if report.imports_purged else "")
        + "\n"
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    if args.class_id is not None and not class_id_is_valid(args.class_id):
        return 2
    try:
        store = create_object_store(**settings.storage_kwargs())
        run(settings, store, class_id=args.class_id, out=sys.stdout)
    except NotFoundError as error:
        sys.stderr.write(f"{error.message}\n")
        return 2
    except StorageUnavailableError as error:
        sys.stderr.write(f"storage unavailable ({error.reason}); run the purge again later\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
