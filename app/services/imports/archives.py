"""Zip archives uploaded for an import, read safely: every entry checked before anything is
used, one entry read at a time from the file on disk.

Refused, with the entry's name: absolute paths and ``..``, links and other special files,
encrypted entries, an entry or a total over the limits, and an entry that inflates more than
:data:`MAX_RATIO` times (a zip bomb: real photos and CSVs compress 1-10 times).
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from app.core.errors import InvalidInputError, PayloadTooLargeError

MAX_RATIO = 100
"""Largest uncompressed/compressed ratio of one entry: CSVs compress about 5-10 times, JPEGs about
1; zip bombs tens of thousands of times."""
IGNORED_PREFIXES = ("__MACOSX/",)
"""Folders that archivers add beside the files (macOS resource forks): skipped, not refused."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int
    max_entry_bytes: int
    max_total_bytes: int


class Archive:
    """An uploaded zip, checked whole when opened (:class:`InvalidInputError` naming the entry),
    then read entry by entry."""

    def __init__(self, source: Path | BinaryIO, what: str, limits: ArchiveLimits) -> None:
        self.what = what
        try:
            self._zip = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise InvalidInputError(f"{what}: not a zip archive ({error})") from error
        self.names = self._check(limits)

    def _check(self, limits: ArchiveLimits) -> list[str]:
        names = []
        total = 0
        infos = self._zip.infolist()
        if len(infos) > limits.max_entries:
            raise PayloadTooLargeError(
                f"{self.what}: {len(infos)} entries; at most {limits.max_entries}"
            )
        for info in infos:
            name = info.filename
            if info.is_dir() or name.startswith(IGNORED_PREFIXES):
                continue
            path = PurePosixPath(name.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
                raise InvalidInputError(f"{self.what}: entry {name!r} is outside the archive")
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: an archiver that sets no type
            if kind and kind != stat.S_IFREG:
                raise InvalidInputError(f"{self.what}: entry {name!r} is not a plain file")
            if info.flag_bits & 0x1:
                raise InvalidInputError(f"{self.what}: entry {name!r} is encrypted")
            if info.file_size > limits.max_entry_bytes:
                raise PayloadTooLargeError(
                    f"{self.what}: entry {name!r} is {info.file_size / 1e6:.1f} MB; at most "
                    f"{limits.max_entry_bytes / 1e6:.1f} MB"
                )
            if info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise InvalidInputError(
                    f"{self.what}: entry {name!r} inflates {info.file_size // max(info.compress_size, 1)}"
                    f" times; refused as a zip bomb"
                )
            total += info.file_size
            if total > limits.max_total_bytes:
                raise PayloadTooLargeError(
                    f"{self.what}: more than {limits.max_total_bytes / 1e6:.0f} MB uncompressed"
                )
            names.append(name)
        return names

    def read(self, name: str) -> bytes:
        """One checked entry's bytes (its size was checked; the reader stops at it)."""
        info = self._zip.getinfo(name)
        with self._zip.open(info) as entry:
            data = entry.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise InvalidInputError(f"{self.what}: entry {name!r} is not the size it declares")
        return data

    def by_basename(self) -> dict[str, str]:
        """``file name (no folder) -> entry``, for files wherever they are in the archive (an
        export zipped with its folder)."""
        return {PurePosixPath(name).name: name for name in self.names}

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def files_in_folder(folder: Path) -> Iterator[tuple[str, Path]]:
    """``(file name, path)`` of the plain files of a folder and its sub-folders (the command's
    photos given as a folder); links are not followed."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path.name, path
