"""A school's roster, read from its export: OneRoster 1.2 CSV (and 1.1, which differs only in
columns), or a plain CSV for schools without a student information system.

Reading checks everything before anything is stored: a missing file or column, a duplicate
``sourcedId``, a row that names a class or user the export does not hold, text that is not UTF-8
(a byte-order mark is fine) are refused with the file, the row (as a spreadsheet numbers it: the
header is row 1) and the column.

What is kept of the export: classes (``sourcedId``, ``title``, ``classCode``), the users with an
active enrolment of role ``student`` in one of them (``sourcedId``, their name: the preferred
first name where given, else ``givenName``, then ``familyName``; ``identifier``, ``username``),
and what the export says is gone (``status`` ``tobedeleted``). Nothing else: no e-mail, no
password, no teacher.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from anyascii import anyascii

from app.core.errors import InvalidInputError
from app.core.ids import clean_name, is_slug

PhotoKey = Literal["sourcedId", "identifier", "username"]
PHOTO_KEYS: tuple[PhotoKey, ...] = ("sourcedId", "identifier", "username")

ACTIVE = ("", "active")
"""``status`` of a row that counts: empty in a bulk export, ``active`` in a delta."""
TO_BE_DELETED = "tobedeleted"
MAX_ROWS = 200_000
"""Rows of one file: a large district's users; more is a mistake (or a bomb)."""


class RosterError(InvalidInputError):
    """The export cannot be read: the message names the file, row and column."""


@dataclass(frozen=True)
class RosterClass:
    source_id: str
    title: str
    class_code: str = ""


@dataclass(frozen=True)
class RosterStudent:
    source_id: str
    """The ``sourcedId`` (OneRoster), or the student number of a plain CSV (their name when it
    has none: such a student is known by name, as when registered from the mobile app)."""
    name: str
    identifier: str = ""
    username: str = ""
    photo_file: str = ""
    """The plain CSV's ``photo file`` column (a OneRoster export names photos by ``photo_key``)."""

    def photo_key(self, key: PhotoKey) -> str:
        return {"sourcedId": self.source_id, "identifier": self.identifier}.get(key, self.username)


@dataclass(frozen=True)
class Removal:
    """An enrolment the export says is gone (``tobedeleted``), of a user or of the enrolment."""

    class_source_id: str
    user_source_id: str
    reason: str


@dataclass
class Roster:
    kind: str
    """``OneRoster 1.2``, ``OneRoster 1.1`` or ``CSV``."""
    delta: bool
    """A delta export lists changes only: what it does not list is unchanged (a bulk export is
    the whole roster: what it does not list is gone)."""
    classes: dict[str, RosterClass] = field(default_factory=dict)
    students: dict[str, RosterStudent] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    """``class sourcedId -> student sourcedIds`` of the active student enrolments."""
    removals: list[Removal] = field(default_factory=list)


# --- ids ------------------------------------------------------------------------------------


def source_slug(source_id: str) -> str:
    """The Rollcall id of a class or student imported with this ``sourcedId`` (never made from
    a name): the ``sourcedId`` itself when it is already an id (a lower-case GUID is), else its
    readable part and a hash of it (distinct ``sourcedId`` values give distinct ids)."""
    if is_slug(source_id):
        return source_id
    base = re.sub(r"[^a-z0-9]+", "-", anyascii(source_id).lower()).strip("-")[:40].strip("-")
    digest = hashlib.sha256(source_id.encode("utf-8")).hexdigest()[:10]
    return f"{base or 'id'}-{digest}"


# --- CSV files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One CSV file: its rows as ``column -> value`` (values stripped), with their row numbers."""

    name: str
    rows: list[tuple[int, dict[str, str]]]
    columns: tuple[str, ...]

    def require(self, *columns: str) -> None:
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise RosterError(
                f"{self.name}: column {missing[0]!r} is missing (it has: "
                f"{', '.join(self.columns) or 'no header'})"
            )


def read_table(name: str, data: bytes, aliases: Mapping[str, str] | None = None) -> Table:
    """A CSV file as UTF-8 (a byte-order mark allowed); headers matched whatever their case and
    surrounding blanks, ``aliases`` mapping other spellings onto the names used here."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RosterError(
            f"{name}: not UTF-8 text (byte {error.start} is {data[error.start]:#04x}); export or "
            "save it as UTF-8"
        ) from error
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
        known = {alias.lower(): target for alias, target in (aliases or {}).items()}
        columns = tuple(known.get(h.strip().lower(), h.strip()) for h in header)
        rows = []
        for number, values in enumerate(reader, start=2):
            if number > MAX_ROWS + 1:
                raise RosterError(f"{name}: more than {MAX_ROWS} rows")
            if not any(value.strip() for value in values):
                continue  # a blank line
            if len(values) > len(columns):
                raise RosterError(
                    f"{name} row {number}: {len(values)} values for {len(columns)} columns"
                )
            rows.append((number, {c: v.strip() for c, v in zip(columns, values, strict=False)}))
    except csv.Error as error:
        raise RosterError(f"{name} row {reader.line_num}: not valid CSV ({error})") from error
    return Table(name, rows, columns)


def _unique(table: Table, column: str) -> dict[str, tuple[int, dict[str, str]]]:
    found: dict[str, tuple[int, dict[str, str]]] = {}
    for number, row in table.rows:
        value = row.get(column, "")
        if not value:
            raise RosterError(f"{table.name} row {number}, column {column}: empty")
        if value in found:
            raise RosterError(
                f"{table.name} row {number}, column {column}: {value!r} again (first on row "
                f"{found[value][0]})"
            )
        found[value] = (number, row)
    return found


def _name(table: Table, number: int, *parts: str) -> str:
    try:
        return clean_name(" ".join(part for part in parts if part), what="the name")
    except ValueError as error:
        raise RosterError(f"{table.name} row {number}: {error}") from error


# --- OneRoster -------------------------------------------------------------------------------

ONEROSTER_FILES = ("manifest.csv", "classes.csv", "users.csv", "enrollments.csv")
"""The files an import needs (``orgs.csv``, ``academicSessions.csv``, ``courses.csv``... are
read by nobody here, and may be there or not)."""
USER_ALIASES = {"preferredGivenName": "preferredFirstName"}
"""OneRoster 1.2 calls the preferred first name ``preferredGivenName``; some exports
``preferredFirstName``."""


def read_oneroster(read: Callable[[str], bytes | None]) -> Roster:
    """The roster of a OneRoster CSV export; ``read(name)`` gives a file of the export (``None``
    when it has none)."""
    tables: dict[str, Table] = {}
    for name in ONEROSTER_FILES:
        data = read(name)
        if data is None:
            raise RosterError(
                f"{name} is missing: a OneRoster export holds {', '.join(ONEROSTER_FILES)}"
            )
        tables[name] = read_table(name, data, USER_ALIASES if name == "users.csv" else None)
    manifest = tables["manifest.csv"]
    manifest.require("propertyName", "value")
    properties = {row["propertyName"]: row.get("value", "") for _, row in manifest.rows}
    version = properties.get("oneroster.version", "1.2") or "1.2"
    modes = {
        name: properties.get(f"file.{name.removesuffix('.csv')}", "bulk").lower() or "bulk"
        for name in ("classes.csv", "users.csv", "enrollments.csv")
    }
    for name, mode in modes.items():
        if mode not in ("bulk", "delta"):
            raise RosterError(
                f"manifest.csv: file.{name.removesuffix('.csv')} is {mode!r}; an import needs "
                "the file, as bulk or delta"
            )
    roster = Roster(kind=f"OneRoster {version}", delta="delta" in modes.values())
    classes, users, enrollments = (tables[n] for n in ONEROSTER_FILES[1:])
    classes.require("sourcedId", "title")
    users.require("sourcedId", "givenName", "familyName")
    enrollments.require("sourcedId", "classSourcedId", "userSourcedId", "role")
    class_rows = _unique(classes, "sourcedId")
    user_rows = _unique(users, "sourcedId")
    _unique(enrollments, "sourcedId")
    for source_id, (number, row) in class_rows.items():
        if row.get("status", "").lower() == TO_BE_DELETED:
            continue
        title = _name(classes, number, row.get("title", ""))
        roster.classes[source_id] = RosterClass(source_id, title, row.get("classCode", ""))
    gone_users = {
        sid for sid, (_, row) in user_rows.items() if row.get("status", "").lower() == TO_BE_DELETED
    }
    for number, row in enrollments.rows:
        class_id, user_id = row.get("classSourcedId", ""), row.get("userSourcedId", "")
        for column, value, known, what, where in (
            ("classSourcedId", class_id, class_rows, "class", "classes.csv"),
            ("userSourcedId", user_id, user_rows, "user", "users.csv"),
        ):
            if value not in known and not roster.delta:
                raise RosterError(
                    f"enrollments.csv row {number}, column {column}: no {what} {value!r} in {where}"
                )
        if row.get("role", "").lower() != "student":
            continue
        status = row.get("status", "").lower()
        if status == TO_BE_DELETED or user_id in gone_users:
            reason = (
                "the user is to be deleted"
                if user_id in gone_users
                else ("the enrolment is to be deleted")
            )
            roster.removals.append(Removal(class_id, user_id, reason))
            continue
        if status not in ACTIVE or class_id not in roster.classes or user_id not in user_rows:
            continue  # a delta naming a class or user it does not carry: handled when imported
        members = roster.members.setdefault(class_id, [])
        if user_id not in members:
            members.append(user_id)
        if user_id not in roster.students:
            user_number, user = user_rows[user_id]
            first = user.get("preferredFirstName", "") or user.get("givenName", "")
            roster.students[user_id] = RosterStudent(
                user_id,
                _name(users, user_number, first, user.get("familyName", "")),
                identifier=user.get("identifier", ""),
                username=user.get("username", ""),
            )
    return roster


# --- the plain CSV -----------------------------------------------------------------------------

PLAIN_ALIASES = {
    "student_name": "student name",
    "name": "student name",
    "photo_file": "photo file",
    "photo": "photo file",
    "student_number": "student number",
}


def read_plain_csv(data: bytes, name: str = "roster.csv") -> Roster:
    """A school's own list: one row per student and class (``class``, ``student name``,
    ``photo file``, optional ``student number``). The class's name stands for its ``sourcedId``
    here, a student's number for theirs (a student without one is known by name, as when
    registered from the mobile app)."""
    table = read_table(name, data, PLAIN_ALIASES)
    table.require("class", "student name", "photo file")
    roster = Roster(kind="CSV", delta=False)
    first_row: dict[str, int] = {}
    for number, row in table.rows:
        title = _name(table, number, row.get("class", ""))
        student_name = _name(table, number, row.get("student name", ""))
        source_id = row.get("student number", "") or student_name
        roster.classes.setdefault(title, RosterClass(title, title))
        known = roster.students.get(source_id)
        student = RosterStudent(source_id, student_name, photo_file=row.get("photo file", ""))
        if known is not None and known != student:
            raise RosterError(
                f"{name} row {number}: student {source_id!r} is on row {first_row[source_id]} "
                "with another name or photo"
            )
        roster.students[source_id] = student
        first_row.setdefault(source_id, number)
        members = roster.members.setdefault(title, [])
        if source_id in members:
            raise RosterError(f"{name} row {number}: {student_name!r} is in {title!r} twice")
        members.append(source_id)
    return roster
