"""Where an import's roster and photos come from: uploaded zips (the API), or files and folders
(the command). The roster is read and checked whole before anything is stored; the photos'
archive is checked entry by entry (:mod:`.archives`) and read one photo at a time."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from functools import partial
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from app.core.errors import InvalidInputError
from app.services.context import Context
from app.services.imports.archives import Archive, ArchiveLimits, files_in_folder
from app.services.imports.models import ImportJob
from app.services.imports.roster import Roster, read_oneroster, read_plain_csv
from app.services.imports.school import ImportOptions, Photos, start_import

ROSTER_LIMITS = ArchiveLimits(
    max_entries=1_000, max_entry_bytes=64 * 1024**2, max_total_bytes=256 * 1024**2
)
"""A roster export is a few CSV files of at most some MB (a district of 100,000 users)."""
COPY_CHUNK = 1024 * 1024


def photo_limits(ctx: Context) -> ArchiveLimits:
    return ArchiveLimits(
        max_entries=ctx.settings.import_max_photos,
        max_entry_bytes=ctx.settings.max_upload_bytes,
        max_total_bytes=4 * ctx.settings.import_max_archive_bytes,
    )


def roster_from_zip(source: Path | BinaryIO) -> Roster:
    """A OneRoster export as the zip a SIS makes (its files at the top, or in one folder)."""
    with Archive(source, "the roster", ROSTER_LIMITS) as archive:
        files = archive.by_basename()

        def read(name: str) -> bytes | None:
            entry = files.get(name)
            return archive.read(entry) if entry is not None else None

        return read_oneroster(read)


def roster_from_path(path: Path) -> Roster:
    """The command's roster: a OneRoster zip, a folder of its CSV files, or a plain CSV."""
    if path.is_dir():
        files = {name: file for name, file in files_in_folder(path)}
        return read_oneroster(lambda name: files[name].read_bytes() if name in files else None)
    if path.suffix.lower() == ".csv":
        return read_plain_csv(path.read_bytes(), path.name)
    return roster_from_zip(path)


def photos_from_archive(archive: Archive) -> Photos:
    return Photos({name: partial(archive.read, name) for name in archive.names})


def photos_from_folder(folder: Path) -> Photos:
    return Photos({name: path.read_bytes for name, path in files_in_folder(folder)})


def begin_upload_import(
    ctx: Context,
    roster: Roster,
    photos: BinaryIO | None,
    options: ImportOptions,
    actor: str,
) -> ImportJob:
    """Start an import from the API: the uploaded photos' archive is copied to a temporary file
    (the upload's own goes with the request) and checked, then the import runs in the
    background and removes the file when it ends."""
    if photos is None:
        return start_import(ctx, roster, None, options, actor)
    copy = tempfile.NamedTemporaryFile(prefix="rollcall-import-", suffix=".zip", delete=False)  # noqa: SIM115
    path = Path(copy.name)
    archive: Archive | None = None

    def release() -> None:
        if archive is not None:
            archive.close()
        path.unlink(missing_ok=True)

    try:
        with copy:
            shutil.copyfileobj(photos, copy, COPY_CHUNK)
        archive = Archive(path, "the photos", photo_limits(ctx))
        return start_import(
            ctx, roster, photos_from_archive(archive), options, actor, release=release
        )
    except BaseException:
        release()
        raise


def read_roster_upload(kind: str, data: BinaryIO, filename: str | None) -> Roster:
    """The roster of an upload: a OneRoster zip, or a plain CSV file."""
    if kind == "oneroster":
        return roster_from_zip(data)
    with contextlib.suppress(AttributeError):
        data.seek(0)
    text = data.read(ROSTER_LIMITS.max_entry_bytes + 1)
    if len(text) > ROSTER_LIMITS.max_entry_bytes:
        raise InvalidInputError("the roster CSV is over 64 MB")
    return read_plain_csv(text, PurePosixPath(filename or "roster.csv").name)
