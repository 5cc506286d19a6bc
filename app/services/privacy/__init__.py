"""Data protection: erasing a student (:mod:`.erasure`), the retention purge (:mod:`.retention`)
and a student's data as a zip (:mod:`.export`). The audit log is :mod:`app.services.audit`."""

from app.services.privacy.erasure import erase_student
from app.services.privacy.export import StudentExport, student_export
from app.services.privacy.models import ClassPurge, ErasureReport, PurgeReport
from app.services.privacy.retention import (
    RetentionPurger,
    erase_inactive_students,
    log_report,
    purge_all,
    purge_class,
    purge_photos,
)

__all__ = [
    "ClassPurge",
    "ErasureReport",
    "PurgeReport",
    "RetentionPurger",
    "StudentExport",
    "erase_inactive_students",
    "erase_student",
    "log_report",
    "purge_all",
    "purge_class",
    "purge_photos",
    "student_export",
]
