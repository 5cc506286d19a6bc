"""Bringing students in from elsewhere: a school's roster with its ID photos (:mod:`.school`,
read by :mod:`.roster` from what :mod:`.intake` receives), and the original server's bucket
(:mod:`.original`)."""

from app.services.imports.intake import (
    ROSTER_LIMITS,
    begin_upload_import,
    photos_from_archive,
    photos_from_folder,
    read_roster_upload,
    roster_from_path,
)
from app.services.imports.jobs import check_photo_key, get_import, list_imports
from app.services.imports.models import Counts, ImportIssue, ImportJob
from app.services.imports.roster import PHOTO_KEYS, PhotoKey, Roster, RosterError
from app.services.imports.school import (
    ImportOptions,
    Photos,
    queue_import,
    run_import,
    start_import,
)

__all__ = [
    "PHOTO_KEYS",
    "ROSTER_LIMITS",
    "Counts",
    "ImportIssue",
    "ImportJob",
    "ImportOptions",
    "PhotoKey",
    "Photos",
    "Roster",
    "RosterError",
    "begin_upload_import",
    "check_photo_key",
    "get_import",
    "list_imports",
    "photos_from_archive",
    "photos_from_folder",
    "queue_import",
    "read_roster_upload",
    "roster_from_path",
    "run_import",
    "start_import",
]
