"""Roster imports as the API shows them: stored by the process that runs each (a running one
whose process stopped writing is reported as cut off), read by any replica."""

from __future__ import annotations

import datetime as dt

from app.core.errors import InvalidInputError, NotFoundError
from app.records.documents import ImportJobDoc, ImportStateDoc
from app.services.context import Context
from app.services.imports.models import Counts, ImportIssue, ImportJob
from app.services.imports.roster import PhotoKey

INTERRUPTED_AFTER = dt.timedelta(minutes=5)
"""A running import that has not written its state for this long was cut off (its process
stopped): one student takes about a second."""
INTERRUPTED = (
    "the import was cut off (the service stopped); run it again: what it did is kept and the "
    "rest is done"
)


def report(job: ImportJobDoc, state: ImportStateDoc, now: dt.datetime) -> ImportJob:
    """The import as the API shows it: a running one whose process stopped writing is failed."""
    cut_off = state.state in ("queued", "running") and now - state.updated_at > INTERRUPTED_AFTER
    return ImportJob(
        id=job.id,
        kind=job.kind,
        state="failed" if cut_off else state.state,
        created_at=job.created_at,
        finished_at=state.finished_at,
        dry_run=job.dry_run,
        erase_removed=job.erase_removed,
        photo_key=job.photo_key,
        done=state.done,
        total=job.total,
        classes=Counts(**state.classes),
        students=Counts(**state.students),
        photos_added=state.photos_added,
        class_ids=list(state.class_ids),
        refusals=[ImportIssue(**dict(issue)) for issue in state.refusals],
        removed=[ImportIssue(**dict(issue)) for issue in state.removed],
        error=INTERRUPTED if cut_off else state.error,
    )


def get_import(ctx: Context, import_id: str) -> ImportJob:
    found = ctx.records.imports.get(import_id)
    if found is None:
        raise NotFoundError(f"import {import_id!r} not found")
    return report(*found, ctx.now())


def list_imports(ctx: Context, limit: int = 20) -> list[ImportJob]:
    """The newest imports first."""
    found = []
    for import_id in reversed(ctx.records.imports.ids()):
        stored = ctx.records.imports.get(import_id)
        if stored is not None:
            found.append(report(*stored, ctx.now()))
        if len(found) >= limit:
            break
    return found


def check_photo_key(key: str) -> PhotoKey:
    for known in ("sourcedId", "identifier", "username"):
        if key == known:
            return known
    raise InvalidInputError(f"photo_key: {key!r}; give sourcedId, identifier or username")
