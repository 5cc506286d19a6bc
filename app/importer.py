"""Import the students of the original server's bucket:
``uv run python -m app.importer --bucket NAME [--prefix P] [--class default] [--dry-run]``.

Reads the original layout (``registration/{name}/{name}_initial.jpg``, ...) from ``--bucket`` with
the same ``AWS_*`` / ``S3_ENDPOINT_URL`` settings as the service, and enrols every student into
Rollcall's own storage (``S3_BUCKET_NAME``, else ``ROLLCALL_DATA_DIR``; it may be the same bucket:
Rollcall's keys are all under ``classes/``). Prints one line per student (imported, already
present, refused with the reason) and a summary; a progress bar goes to stderr. Safe to run twice,
also while the service runs; the original objects are only listed and read, never changed.
See :mod:`app.services.imports.original`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from tqdm import tqdm

from app.commands import class_id_is_valid, configure_logging
from app.services.context import Context
from app.services.imports.original import (
    OriginalSource,
    Outcome,
    StudentReport,
    import_student,
    scan,
    summary,
)
from app.settings import Settings
from app.storage import (
    ObjectStore,
    S3ObjectStore,
    StorageUnavailableError,
    create_object_store,
)

logger = logging.getLogger("app.importer")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.importer",
        description="Re-enrol the students of the original server's bucket from their stored "
        "photos (the original's embeddings and model.pth are never read).",
    )
    parser.add_argument("--bucket", required=True, help="the original server's bucket")
    parser.add_argument("--prefix", default="", help="folder of the original layout in it")
    parser.add_argument(
        "--class",
        dest="class_id",
        default=None,
        help="Rollcall class to enrol into (default: ROLLCALL_LEGACY_CLASS, i.e. the mobile app's)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every photo (faces included) and report, storing nothing",
    )
    return parser.parse_args(argv)


def run(
    settings: Settings,
    source: OriginalSource,
    target: ObjectStore,
    *,
    prefix: str,
    class_id: str,
    dry_run: bool,
    out: TextIO,
    progress: bool = True,
) -> list[StudentReport]:
    from ml.factory import build_pipeline

    bucket = scan(source, prefix)
    out.write(
        f"{len(bucket.students)} students in {source.description} under "
        f"{prefix or '(no prefix)'}; importing into class {class_id!r} of "
        f"{target.description}{' (dry run: nothing is stored)' if dry_run else ''}\n"
    )
    if bucket.ignored_keys:
        out.write(
            f"not read: {len(bucket.ignored_keys)} other objects "
            f"({', '.join(bucket.ignored_keys[:3])}{', ...' if len(bucket.ignored_keys) > 3 else ''}); "
            "the stored embeddings come from other weights and cannot be reused\n"
        )
    ctx = Context.build(settings, target, build_pipeline(settings.pipeline_config()))
    reports: list[StudentReport] = []
    try:
        bar = tqdm(bucket.students, unit="student", file=sys.stderr, disable=not progress)
        for student in bar:
            bar.set_postfix_str(student.folder[:30])
            report = import_student(ctx, source, student, class_id, dry_run=dry_run)
            reports.append(report)
            tqdm.write(report.line(), file=out)
        counts = summary(reports)
        out.write(
            ", ".join(
                f"{outcome.value}: {counts[outcome]}" for outcome in Outcome if counts[outcome]
            )
            + "\n"
            if reports
            else "nothing to import\n"
        )
        if counts[Outcome.IMPORTED] and ctx.uses_head:
            out.write("training the class's recognition head...\n")
            ctx.trainer.wait_idle(timeout=600)
    finally:
        ctx.trainer.close()
        ctx.cleanup.close()
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    class_id = args.class_id or settings.legacy_class
    if not class_id_is_valid(class_id):
        return 2
    storage = settings.storage_kwargs()
    try:
        source = S3ObjectStore(
            args.bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.aws_region or None,
            access_key_id=storage["access_key_id"],
            secret_access_key=storage["secret_access_key"],
        )
        target = create_object_store(**storage, create_bucket=settings.create_bucket)
        run(
            settings,
            source,
            target,
            prefix=args.prefix,
            class_id=class_id,
            dry_run=args.dry_run,
            out=sys.stdout,
        )
    except StorageUnavailableError as error:
        sys.stderr.write(f"storage unavailable ({error.reason}); nothing more was done\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
