"""Synthetic school rosters for tests and benchmarks: OneRoster CSV exports (1.2 or 1.1, bulk or
delta) and plain CSVs, with one real photo per student from ``../shared`` in a zip.

Nothing here is committed data: the files are written where the caller asks, from the photos of
the shared folder (public figures) and made-up ids.
"""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLASS_COLUMNS_12 = (
    "sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId", "classCode",
    "classType", "location", "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes",
    "periods",
)  # fmt: skip
USER_COLUMNS_12 = (
    "sourcedId", "status", "dateLastModified", "enabledUser", "username", "userIds", "givenName",
    "familyName", "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds",
    "grades", "password", "userMasterIdentifier", "resourceSourcedIds", "preferredGivenName",
    "preferredMiddleName", "preferredFamilyName", "primaryOrgSourcedId", "pronouns",
)  # fmt: skip
USER_COLUMNS_11 = (
    "sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role", "username",
    "userIds", "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone",
    "agentSourcedIds", "grades", "password",
)  # fmt: skip
ENROLLMENT_COLUMNS = (
    "sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId",
    "userSourcedId", "role", "primary", "beginDate", "endDate",
)  # fmt: skip
SCHOOL = "school-1"


@dataclass
class Pupil:
    source_id: str
    given: str
    family: str
    photo: Path | None
    identifier: str = ""
    username: str = ""
    preferred: str = ""
    status: str = ""

    @property
    def name(self) -> str:
        return f"{self.preferred or self.given} {self.family}"


@dataclass
class SchoolClass:
    source_id: str
    title: str
    pupils: list[Pupil] = field(default_factory=list)
    code: str = ""
    status: str = ""


def pupils_from_folders(folders: Iterable[Path], first: int = 0) -> list[Pupil]:
    """A pupil per identity folder (``faces/people/<source>__<Name>``, or LFW's ``Name``), with
    its first photo; ids made up (lower-case GUIDs, as SIS exports hold)."""
    pupils = []
    for number, folder in enumerate(folders, start=first):
        name = folder.name.split("__")[-1].replace("_", " ").title().split()
        photos = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
        )
        pupils.append(
            Pupil(
                source_id=str(uuid.UUID(int=number + 1)),
                given=name[0],
                family=" ".join(name[1:]) or "Doe",
                photo=photos[0] if photos else None,
                identifier=f"S{number + 1:05d}",
                username=f"pupil{number + 1}",
            )
        )
    return pupils


def _csv(columns: Sequence[str], rows: Iterable[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row.get(column, "") for column in columns})
    return buffer.getvalue().encode("utf-8")


def oneroster_files(
    classes: Sequence[SchoolClass],
    *,
    version: str = "1.2",
    delta: bool = False,
    removed: Sequence[tuple[SchoolClass, Pupil]] = (),
) -> dict[str, bytes]:
    """The files of a OneRoster export of ``classes`` (a delta carries ``removed`` enrolments as
    ``tobedeleted``)."""
    mode = "delta" if delta else "bulk"
    manifest = [
        {"propertyName": "manifest.version", "value": "1.0"},
        {"propertyName": "oneroster.version", "value": version},
        {"propertyName": "file.academicSessions", "value": "absent"},
        {"propertyName": "file.orgs", "value": "absent"},
        {"propertyName": "file.courses", "value": "absent"},
        {"propertyName": "file.classes", "value": mode},
        {"propertyName": "file.users", "value": mode},
        {"propertyName": "file.enrollments", "value": mode},
    ]
    status = "active" if delta else ""
    users: dict[str, dict[str, str]] = {}
    enrollments = []
    for cls in classes:
        for pupil in cls.pupils:
            users[pupil.source_id] = {
                "sourcedId": pupil.source_id,
                "status": pupil.status or status,
                "enabledUser": "true",
                "username": pupil.username,
                "givenName": pupil.given,
                "familyName": pupil.family,
                "identifier": pupil.identifier,
                "preferredGivenName": pupil.preferred,
                "role": "student",
                "orgSourcedIds": SCHOOL,
            }
            enrollments.append(
                {
                    "sourcedId": f"{cls.source_id}-{pupil.source_id}",
                    "status": status,
                    "classSourcedId": cls.source_id,
                    "schoolSourcedId": SCHOOL,
                    "userSourcedId": pupil.source_id,
                    "role": "student",
                }
            )
        teacher = f"teacher-{cls.source_id}"
        users[teacher] = {
            "sourcedId": teacher,
            "status": status,
            "givenName": "Ms",
            "familyName": "Teacher",
            "role": "teacher",
        }
        enrollments.append(
            {
                "sourcedId": f"{cls.source_id}-{teacher}",
                "status": status,
                "classSourcedId": cls.source_id,
                "userSourcedId": teacher,
                "role": "teacher",
            }
        )
    for cls, pupil in removed:
        enrollments.append(
            {
                "sourcedId": f"{cls.source_id}-{pupil.source_id}",
                "status": "tobedeleted",
                "classSourcedId": cls.source_id,
                "userSourcedId": pupil.source_id,
                "role": "student",
            }
        )
    class_rows = [
        {
            "sourcedId": cls.source_id,
            "status": cls.status or status,
            "title": cls.title,
            "classCode": cls.code,
            "schoolSourcedId": SCHOOL,
        }
        for cls in classes
    ]
    return {
        "manifest.csv": _csv(("propertyName", "value"), manifest),
        "classes.csv": _csv(CLASS_COLUMNS_12, class_rows),
        "users.csv": _csv(USER_COLUMNS_12 if version == "1.2" else USER_COLUMNS_11, users.values()),
        "enrollments.csv": _csv(ENROLLMENT_COLUMNS, enrollments),
        "orgs.csv": _csv(
            ("sourcedId", "name", "type"),
            [{"sourcedId": SCHOOL, "name": "School", "type": "school"}],
        ),
    }


def zip_bytes(files: dict[str, bytes], folder: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(f"{folder}{name}", data)
    return buffer.getvalue()


def photos_zip(
    pupils: Iterable[Pupil], key: str = "sourcedId", path: Path | None = None
) -> bytes | Path:
    """A zip of each pupil's photo named ``{key}.jpg``; written to ``path`` when given (large)."""
    target: io.BytesIO | Path = path if path is not None else io.BytesIO()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for pupil in pupils:
            if pupil.photo is None:
                continue
            name = {"sourcedId": pupil.source_id, "identifier": pupil.identifier}.get(
                key, pupil.username
            )
            archive.write(pupil.photo, f"photos/{name}{pupil.photo.suffix.lower()}")
    return path if path is not None else target.getvalue()  # type: ignore[union-attr]


def plain_csv(classes: Sequence[SchoolClass], *, numbers: bool = True) -> bytes:
    """A school's own list (``class``, ``student name``, ``photo file``, ``student number``)."""
    rows = [
        {
            "class": cls.title,
            "student name": pupil.name,
            "photo file": f"{pupil.source_id}{pupil.photo.suffix.lower()}" if pupil.photo else "",
            "student number": pupil.identifier if numbers else "",
        }
        for cls in classes
        for pupil in cls.pupils
    ]
    return _csv(("class", "student name", "photo file", "student number"), rows)
