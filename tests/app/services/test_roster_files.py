"""Reading a roster export and a photos archive: every bad input is refused with the file, row and
column, and a hostile zip is refused before anything of it is used."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from app.core.errors import InvalidInputError, PayloadTooLargeError
from app.services.imports.archives import Archive, ArchiveLimits
from app.services.imports.intake import roster_from_zip
from app.services.imports.roster import RosterError, read_oneroster, read_plain_csv, source_slug
from harness.rosters import Pupil, SchoolClass, oneroster_files, zip_bytes

ADA = Pupil("a1", "Ada", "Lovelace", None, identifier="S1", username="ada")
BOB = Pupil("b2", "Bob", "Marley", None, identifier="S2", username="bob")
SCHOOL = [SchoolClass("c1", "Physics", [ADA, BOB])]
LIMITS = ArchiveLimits(max_entries=10, max_entry_bytes=10_000, max_total_bytes=20_000)


def _files(**changes: bytes | None) -> dict[str, bytes]:
    files = oneroster_files(SCHOOL)
    for name, data in changes.items():
        if data is None:
            del files[f"{name}.csv"]
        else:
            files[f"{name}.csv"] = data
    return files


def _read(files: dict[str, bytes]) -> None:
    read_oneroster(files.get)


def _replace(name: str, old: bytes, new: bytes) -> dict[str, bytes]:
    files = oneroster_files(SCHOOL)
    assert old in files[f"{name}.csv"]
    files[f"{name}.csv"] = files[f"{name}.csv"].replace(old, new)
    return files


def test_an_export_in_a_zip_with_or_without_its_folder() -> None:
    for folder in ("", "export-2026/"):
        roster = roster_from_zip(io.BytesIO(zip_bytes(oneroster_files(SCHOOL), folder)))
        assert roster.kind == "OneRoster 1.2"
        assert [s.name for s in roster.students.values()] == ["Ada Lovelace", "Bob Marley"]
        assert roster.members == {"c1": ["a1", "b2"]}


def test_oneroster_1_1_and_a_byte_order_mark() -> None:
    files = oneroster_files(SCHOOL, version="1.1")
    files["users.csv"] = b"\xef\xbb\xbf" + files["users.csv"]
    roster = read_oneroster(files.get)
    assert roster.kind == "OneRoster 1.1" and len(roster.students) == 2


def test_the_preferred_first_name_wins() -> None:
    files = oneroster_files(
        [SchoolClass("c1", "Physics", [Pupil("a1", "Ada", "L", None, preferred="Augusta")])]
    )
    assert read_oneroster(files.get).students["a1"].name == "Augusta L"
    aliased = files["users.csv"].replace(b"preferredGivenName", b"preferredFirstName")
    assert read_oneroster({**files, "users.csv": aliased}.get).students["a1"].name == "Augusta L"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (_files(users=None), "users.csv is missing"),
        (_files(manifest=None), "manifest.csv is missing"),
        (_replace("users", b"givenName", b"firstName"), "users.csv: column 'givenName' is missing"),
        (_replace("classes", b"title", b"name"), "classes.csv: column 'title' is missing"),
        (
            _replace("users", b"b2,", b"a1,"),
            "users.csv row 3, column sourcedId: 'a1' again (first on row 2)",
        ),
        (
            _replace("enrollments", b",c1,school-1,b2,", b",c9,school-1,b2,"),
            "enrollments.csv row 3, column classSourcedId: no class 'c9' in classes.csv",
        ),
        (
            _replace("enrollments", b",c1,school-1,b2,", b",c1,school-1,zz,"),
            "enrollments.csv row 3, column userSourcedId: no user 'zz' in users.csv",
        ),
        (
            _replace("users", b"Lovelace", "Lovelace".encode("latin-1") + b"\xe9"),
            "users.csv: not UTF-8",
        ),
        (
            _replace("users", b"Lovelace", b"Love\x07lace"),
            "users.csv row 2: the name contains control",
        ),
        (_replace("manifest", b"file.users,bulk", b"file.users,absent"), "file.users is 'absent'"),
    ],
)
def test_a_bad_export_is_refused_naming_where(files: dict[str, bytes], message: str) -> None:
    with pytest.raises(RosterError) as refused:
        _read(files)
    assert message in refused.value.message


def test_a_plain_csv_is_checked_too() -> None:
    good = b"class,student name,photo file,student number\r\nPhysics,Ada L,a.jpg,S1\r\n"
    assert read_plain_csv(good).students["S1"].photo_file == "a.jpg"
    with pytest.raises(RosterError, match="column 'photo file' is missing"):
        read_plain_csv(b"class,student name\r\nPhysics,Ada\r\n")
    twice = good + b"Physics,Ada L,a.jpg,S1\r\n"
    with pytest.raises(RosterError, match="row 3: 'Ada L' is in 'Physics' twice"):
        read_plain_csv(twice)
    with pytest.raises(RosterError, match="row 3: student 'S1' is on row 2 with another name"):
        read_plain_csv(good + b"Maths,Ada Byron,a.jpg,S1\r\n")


def test_ids_come_from_the_sourced_id_never_from_the_name() -> None:
    assert (
        source_slug("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
        == "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    )
    upper = source_slug("3F2504E0-4F89")
    assert upper.startswith("3f2504e0-4f89-") and upper != source_slug("3f2504e0-4f89")
    assert source_slug("a b") != source_slug("a-b")  # distinct sourcedIds, distinct ids


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("entries", "error", "message"),
    [
        ([("/etc/passwd", b"x")], InvalidInputError, "outside the archive"),
        ([("photos/../../x.jpg", b"x")], InvalidInputError, "outside the archive"),
        ([(_symlink("photos/link.jpg"), b"/etc/passwd")], InvalidInputError, "not a plain file"),
        ([("bomb.jpg", b"\0" * 9_000)], InvalidInputError, "zip bomb"),
        ([("big.jpg", bytes(range(256)) * 50)], PayloadTooLargeError, "at most 0.0 MB"),
        ([(f"{n}.jpg", b"x") for n in range(11)], PayloadTooLargeError, "11 entries"),
    ],
)
def test_a_hostile_archive_is_refused(
    entries: list[tuple[zipfile.ZipInfo | str, bytes]], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Archive(io.BytesIO(_zip(entries)), "the photos", LIMITS)


def test_an_archive_is_read_entry_by_entry() -> None:
    data = _zip([("photos/a1.jpg", b"one"), ("__MACOSX/._a1.jpg", b"junk")])
    with Archive(io.BytesIO(data), "the photos", LIMITS) as archive:
        assert archive.names == ["photos/a1.jpg"]
        assert archive.read("photos/a1.jpg") == b"one"
    with pytest.raises(InvalidInputError, match="not a zip archive"):
        Archive(io.BytesIO(b"not a zip"), "the photos", LIMITS)
