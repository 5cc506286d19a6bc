"""Object store in a local folder, laid out exactly like the bucket (key ``a/b.json`` -> ``root/a/b.json``).

Writes go to a hidden temp file in the target's directory, are fsynced, then renamed into place, so a
reader sees the old or the new file and a crash never leaves a partial object. ``if_absent`` uses
``os.link``, which fails atomically when the name is taken. Temp files start with ``.``, which no
valid key segment does, so listings never confuse them with objects.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from app.storage.base import (
    ObjectExistsError,
    ObjectNotFoundError,
    StorageUnavailableError,
    is_valid_key,
    is_valid_segment,
    normalize_prefix,
    validate_key,
)

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
_FILE_MODE = 0o644
_MAX_PUT_ATTEMPTS = 5
"""A concurrent delete may remove the (empty) directory between our mkdir and temp file; retry."""


class DiskObjectStore:
    """:class:`~app.storage.base.ObjectStore` in a folder; thread- and multi-process-safe on one host."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self._root = Path(root).absolute()
        if create:
            try:
                self._root.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StorageUnavailableError(
                    f"cannot create storage folder {self._root}: {error}", reason=_os_reason(error)
                ) from error

    @property
    def root(self) -> Path:
        return self._root

    @property
    def description(self) -> str:
        return f"disk:{self._root}"

    def __repr__(self) -> str:
        return f"DiskObjectStore({str(self._root)!r})"

    # --- paths -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*validate_key(key).split("/"))

    def _folder(self, prefix: str) -> Path:
        folder = normalize_prefix(prefix)
        return self._root.joinpath(*folder.split("/")[:-1]) if folder else self._root

    # --- writes ----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        # content_type is not stored: on disk the file extension is the type.
        path = self._path(key)
        temp_path = self._write_temp_file(key, path.parent, data)
        try:
            if if_absent:
                try:
                    # link() refuses an existing name atomically; the temp name is removed below.
                    path.hardlink_to(temp_path)
                except FileExistsError:
                    raise ObjectExistsError(key) from None
            else:
                try:
                    temp_path.replace(path)
                except IsADirectoryError:
                    raise ValueError(f"key {key!r} is a folder of other objects") from None
        except OSError as error:
            raise StorageUnavailableError(
                f"cannot write {key!r} in {self._root}: {error}", reason=_os_reason(error)
            ) from error
        finally:
            temp_path.unlink(missing_ok=True)
        _fsync_directory(path.parent)

    def _write_temp_file(self, key: str, directory: Path, data: bytes) -> Path:
        # Never recreate a vanished root: that would write into whatever lies beneath an
        # unmounted volume and lose the data on the next mount.
        if not self._root.is_dir():
            raise StorageUnavailableError(
                f"storage folder {self._root} is missing", reason="storage folder missing"
            )
        for _ in range(_MAX_PUT_ATTEMPTS):
            try:
                directory.mkdir(parents=True, exist_ok=True)
                fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
            except (FileExistsError, NotADirectoryError):
                raise ValueError(f"key {key!r} lies under an existing object") from None
            except FileNotFoundError:
                continue  # directory pruned by a concurrent delete; recreate it
            except OSError as error:
                raise StorageUnavailableError(
                    f"cannot write {key!r} in {self._root}: {error}", reason=_os_reason(error)
                ) from error
            temp_path = Path(temp_name)
            try:
                with os.fdopen(fd, "wb") as file:
                    os.fchmod(file.fileno(), _FILE_MODE)
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
            except OSError as error:
                with contextlib.suppress(OSError):
                    temp_path.unlink()
                raise StorageUnavailableError(
                    f"cannot write {key!r} in {self._root}: {error}", reason=_os_reason(error)
                ) from error
            return temp_path
        raise StorageUnavailableError(f"cannot create the folder for {key!r} in {self._root}")

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return  # no object with that key (a folder is not an object)
        except OSError as error:
            raise StorageUnavailableError(
                f"cannot delete {key!r} in {self._root}: {error}", reason=_os_reason(error)
            ) from error
        self._prune_empty_parents(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        base = self._folder(prefix)
        if not base.is_dir():
            return 0
        removed = 0
        for directory, _, file_names in os.walk(base, topdown=False):
            for name in file_names:
                if name.startswith(TEMP_PREFIX):
                    continue  # a write in flight; removing it would make that put fail
                try:
                    Path(directory, name).unlink()
                except FileNotFoundError:
                    continue  # deleted concurrently
                except OSError as error:
                    raise StorageUnavailableError(
                        f"cannot delete under {prefix!r} in {self._root}: {error}",
                        reason=_os_reason(error),
                    ) from error
                removed += 1
            if directory != str(self._root):
                with contextlib.suppress(OSError):
                    Path(directory).rmdir()  # fails while a concurrent put has a file there
        self._prune_empty_parents(base.parent)
        return removed

    def _prune_empty_parents(self, directory: Path) -> None:
        """Remove now-empty directories up to (not including) the root; stops at the first non-empty."""
        while directory != self._root and self._root in directory.parents:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass  # already removed by a concurrent delete; keep going up
            except OSError:
                return
            directory = directory.parent

    # --- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFoundError(key) from None
        except OSError as error:
            raise StorageUnavailableError(
                f"cannot read {key!r} in {self._root}: {error}", reason=_os_reason(error)
            ) from error

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        return sorted(key for key, _ in self._walk(prefix))

    def list_versions(self, prefix: str) -> dict[str, str]:
        versions: dict[str, str] = {}
        for key, path in self._walk(prefix):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # deleted since its folder was read
            # A write replaces the file (put renames a new file over it: a new inode).
            versions[key] = f"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}"
        return dict(sorted(versions.items()))

    def _walk(self, prefix: str) -> Iterator[tuple[str, Path]]:
        """``(key, file path)`` of every object under the folder ``prefix``."""
        base = self._folder(prefix)
        folder = normalize_prefix(prefix)
        # os.walk skips directories that vanish while it runs (concurrent deletes).
        for directory, dir_names, file_names in os.walk(base):
            dir_names[:] = [name for name in dir_names if is_valid_segment(name)]
            relative = os.path.relpath(directory, base)
            parent = folder if relative == "." else f"{folder}{relative.replace(os.sep, '/')}/"
            for name in file_names:
                if is_valid_key(parent + name):
                    yield parent + name, Path(directory, name)

    def list_children(self, prefix: str) -> builtins.list[str]:
        base = self._folder(prefix)
        try:
            entries = list(os.scandir(base))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as error:
            raise StorageUnavailableError(
                f"cannot list {prefix!r} in {self._root}: {error}", reason=_os_reason(error)
            ) from error
        return sorted(
            entry.name
            for entry in entries
            if is_valid_segment(entry.name)
            and entry.is_dir(follow_symlinks=False)
            and _holds_an_object(entry.path)
        )

    def ping(self) -> None:
        if not self._root.is_dir():
            raise StorageUnavailableError(
                f"storage folder {self._root} does not exist", reason="storage folder missing"
            )
        if not os.access(self._root, os.R_OK | os.W_OK | os.X_OK):
            raise StorageUnavailableError(
                f"storage folder {self._root} is not writable",
                reason="storage folder not writable",
            )


def _os_reason(error: OSError) -> str:
    """A client-safe cause for a failed file operation."""
    reasons = {
        errno.ENOSPC: "storage full",
        errno.EDQUOT: "storage quota exceeded",
        errno.EROFS: "storage is read-only",
        errno.EACCES: "storage permission denied",
        errno.EPERM: "storage permission denied",
    }
    return reasons.get(error.errno or 0, "storage I/O error")


def _holds_an_object(directory: str) -> bool:
    """Whether any object lies under ``directory`` (an emptied folder left by a race does not count)."""
    for _, dir_names, file_names in os.walk(directory):
        if any(is_valid_segment(name) for name in file_names):
            return True
        dir_names[:] = [name for name in dir_names if is_valid_segment(name)]
    return False


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable: the new directory entry survives a power cut."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # directory pruned by a concurrent delete of a sibling; nothing left to persist
    try:
        os.fsync(fd)
    except OSError as error:
        logger.warning("fsync of %s failed: %s", directory, error)
    finally:
        os.close(fd)
