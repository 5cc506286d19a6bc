"""``/v1/imports``: a school's roster and ID photos in one import, and its progress.

Only an API key that is not limited to some classes may import (an import spans the school):
``app/security.py`` refuses the others (403) on these routes, as on every route that spans
classes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from app.deps import Actor, Audit, ContextDep, Slug
from app.routers.errors import errors
from app.services import imports
from app.services.audit import Action, AuditSubject
from app.services.imports import ImportJob, ImportOptions

Roster = Annotated[UploadFile, File(description="The roster export.")]
PhotosZip = Annotated[
    UploadFile | None,
    File(description="A zip of one photo per student, named by `photo_key` (`{key}.jpg`)."),
]
DryRun = Annotated[bool, Form(description="Check everything, faces included, and store nothing.")]
EraseRemoved = Annotated[
    bool,
    Form(
        description="Erase the imported students the roster no longer holds (or marks to "
        "be deleted); without it they are reported and left alone."
    ),
]


ROSTER_OVERHEAD_BYTES = imports.ROSTER_LIMITS.max_total_bytes + 44 * 1024**2
"""The roster's zip (no larger than what it may hold uncompressed, stored entries and their
headers included) and the rest of the form: 300 MiB."""


def build_router(max_photos_bytes: int) -> APIRouter:
    """The routes, with the request size they accept (the photos archive is far larger than
    any other upload: ``ROLLCALL_IMPORT_MAX_ARCHIVE_BYTES``)."""
    router = APIRouter(prefix="/v1/imports", tags=["imports"])
    limit = max_photos_bytes + ROSTER_OVERHEAD_BYTES

    def start(
        ctx: ContextDep,
        actor: Actor,
        audit: Audit,
        response: Response,
        kind: str,
        roster: UploadFile,
        photos: UploadFile | None,
        *,
        photo_key: str,
        dry_run: bool,
        erase_removed: bool,
    ) -> ImportJob:
        options = ImportOptions(imports.check_photo_key(photo_key), dry_run, erase_removed)
        read = imports.read_roster_upload(kind, roster.file, roster.filename)
        job = imports.begin_upload_import(
            ctx, read, photos.file if photos is not None else None, options, actor
        )
        audit(Action.IMPORT_START, AuditSubject())
        response.headers["Location"] = f"/v1/imports/{job.id}"
        return job

    @router.post(
        "/oneroster",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=ImportJob,
        summary="Import a OneRoster 1.2 (or 1.1) CSV export with a photo per student",
        description=(
            "Checks the roster whole (a missing file or column, a duplicate `sourcedId`, a row "
            "naming an unknown class or user, text that is not UTF-8: 422 naming the file, row "
            "and column; nothing is stored) and the photos' zip, then imports in the background: "
            "follow it at `Location` (`GET /v1/imports/{id}`). Classes and students keep their "
            "`sourcedId` as `source_id`; their ids are made from it, never from a name."
        ),
        responses=errors(409, 413, 422, 503),
        max_body_size=limit,
    )
    def import_oneroster(
        ctx: ContextDep,
        actor: Actor,
        audit: Audit,
        response: Response,
        roster: Roster,
        photos: PhotosZip = None,
        photo_key: Annotated[
            str,
            Form(description="What the photos are named by: sourcedId, identifier or username."),
        ] = "sourcedId",
        dry_run: DryRun = False,
        erase_removed: EraseRemoved = False,
    ) -> ImportJob:
        return start(
            ctx,
            actor,
            audit,
            response,
            "oneroster",
            roster,
            photos,
            photo_key=photo_key,
            dry_run=dry_run,
            erase_removed=erase_removed,
        )

    @router.post(
        "/csv",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=ImportJob,
        summary="Import a school's own list: class, student name, photo file, student number",
        description=(
            "A CSV (UTF-8) with the columns `class`, `student name`, `photo file` and, optionally, "
            "`student number`, and the photos' zip. A student number is kept as the student's "
            "`source_id` (their id is made from it); a student without one is known by name."
        ),
        responses=errors(409, 413, 422, 503),
        max_body_size=limit,
    )
    def import_csv(
        ctx: ContextDep,
        actor: Actor,
        audit: Audit,
        response: Response,
        roster: Roster,
        photos: PhotosZip = None,
        dry_run: DryRun = False,
        erase_removed: EraseRemoved = False,
    ) -> ImportJob:
        return start(
            ctx,
            actor,
            audit,
            response,
            "csv",
            roster,
            photos,
            photo_key="sourcedId",
            dry_run=dry_run,
            erase_removed=erase_removed,
        )

    @router.get("", response_model=list[ImportJob], summary="The latest imports, newest first")
    def list_imports(ctx: ContextDep) -> list[ImportJob]:
        return imports.list_imports(ctx)

    @router.get(
        "/{import_id}",
        response_model=ImportJob,
        summary="Where an import is: its state, counts and every refusal with the reason",
        responses=errors(404, 422),
    )
    def get_import(ctx: ContextDep, import_id: Slug) -> ImportJob:
        return imports.get_import(ctx, import_id)

    return router
