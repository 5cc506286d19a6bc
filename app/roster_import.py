"""``uv run python -m app.roster_import ROSTER [PHOTOS] [--photo-key sourcedId] [--dry-run]
[--erase-removed]``: a school's roster and ID photos imported into the service's storage (the
same settings as the service, which may be running).

``ROSTER`` is a OneRoster CSV export (its zip, or a folder of its files) or a plain CSV
(``class``, ``student name``, ``photo file``, ``student number``); ``PHOTOS`` a zip or a folder of
one photo per student. Prints a line per refusal and per student the roster no longer holds, a
progress bar (stderr), and the counts. See :mod:`app.services.imports.school`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from app.commands import configure_logging
from app.core.errors import ServiceError
from app.records.documents import ImportStateDoc
from app.services import imports
from app.services.context import Context
from app.services.imports.archives import Archive
from app.services.imports.intake import photo_limits
from app.settings import Settings
from app.storage import ObjectStore, StorageUnavailableError, create_object_store

logger = logging.getLogger("app.roster_import")
ACTOR = "roster import command"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.roster_import",
        description="Import a school's roster (OneRoster 1.2/1.1 CSV export, or a plain CSV) "
        "and a photo per student into Rollcall's storage.",
    )
    parser.add_argument("roster", type=Path, help="OneRoster zip or folder, or a plain .csv")
    parser.add_argument("photos", type=Path, nargs="?", help="a zip or folder of photos")
    parser.add_argument(
        "--photo-key",
        choices=imports.PHOTO_KEYS,
        default="sourcedId",
        help="what the photos are named by (default: sourcedId)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check everything, faces included; store nothing"
    )
    parser.add_argument(
        "--erase-removed",
        action="store_true",
        help="erase the imported students the roster no longer holds (default: report them)",
    )
    return parser.parse_args(argv)


def run(
    settings: Settings, store: ObjectStore, args: argparse.Namespace, out: TextIO
) -> ImportStateDoc:
    from ml.factory import build_pipeline

    roster = imports.roster_from_path(args.roster)
    ctx = Context.build(settings, store, build_pipeline(settings.pipeline_config()))
    options = imports.ImportOptions(args.photo_key, args.dry_run, args.erase_removed)
    with ExitStack() as stack:
        stack.callback(ctx.close)
        photos = None
        if args.photos is not None and args.photos.is_dir():
            photos = imports.photos_from_folder(args.photos)
        elif args.photos is not None:
            archive = stack.enter_context(Archive(args.photos, "the photos", photo_limits(ctx)))
            photos = imports.photos_from_archive(archive)
        job = imports.queue_import(ctx, roster, options, ACTOR)
        out.write(
            f"{roster.kind}: {len(roster.classes)} classes, {len(roster.students)} students; "
            f"importing into {store.description} as import {job.id}"
            f"{' (dry run: nothing is stored)' if options.dry_run else ''}\n"
        )
        with tqdm(total=len(roster.students), unit="student", file=sys.stderr) as bar:
            state = imports.run_import(
                ctx, job, roster, photos, options, ACTOR, on_student=bar.update
            )
    for issue in state.refusals:
        out.write(f"needs a photo  {issue.source_id} {issue.name}: {issue.reason}\n")
    for issue in state.removed:
        out.write(f"removed        {issue.source_id} {issue.name}: {issue.reason}\n")
    out.write(
        f"{state.state}: classes {_counts(state.classes)}; students {_counts(state.students)}; "
        f"{state.photos_added} photos stored, {len(state.refusals)} refused, "
        f"{len(state.removed)} no longer in the roster"
        + (f"; {state.error}" if state.error else "")
        + "\n"
    )
    return state


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in ("created", "updated", "unchanged"))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        store = create_object_store(**settings.storage_kwargs())
        state = run(settings, store, args, sys.stdout)
    except ServiceError as error:
        sys.stderr.write(f"{error.message}\n")
        return 2
    except StorageUnavailableError as error:
        sys.stderr.write(f"storage unavailable ({error.reason}); run the import again later\n")
        return 1
    return 0 if state.state == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
