"""The object-store interface every backend implements, its errors, and key validation.

Keys are ``/``-separated relative paths such as ``classes/abc/students/zoe/student.json``. Each
segment is lower-case ASCII (``[a-z0-9][a-z0-9._-]*``), so a key can never be ``..``, absolute, or
hidden, and it means the same thing on a case-insensitive disk as in a bucket. A prefix names a
*folder*: ``classes/abc`` and ``classes/abc/`` are the same prefix and neither matches
``classes/abcd/...``, so :meth:`ObjectStore.delete_prefix` can never reach a sibling folder.
"""

from __future__ import annotations

import builtins
import re
from typing import Protocol, runtime_checkable

MAX_KEY_LENGTH = 1024
"""S3's limit, in bytes; keys are ASCII so characters and bytes agree."""
MAX_SEGMENT_LENGTH = 255
"""Most file systems' limit for one file name."""

_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]*")


class ObjectNotFoundError(KeyError):
    """``get`` of a key that holds no object."""


class ObjectExistsError(Exception):
    """``put(..., if_absent=True)`` lost: an object with that key already exists."""


class ObjectUnreadableError(ValueError):
    """``get`` found an object it cannot open: encrypted with a data key that is not configured, or
    altered since it was written (see :mod:`app.storage.encryption`).

    ``why`` is safe to show to a client: it names neither the object's key nor a data key.
    """

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


class StorageUnavailableError(RuntimeError):
    """The store cannot be used: unreachable, missing bucket or folder, refused credentials, full.

    ``reason`` is a short cause that is safe to show to a client (``"storage server unreachable"``):
    unlike the message, it names no bucket, endpoint or key.
    """

    def __init__(self, message: str, *, reason: str = "storage error") -> None:
        super().__init__(message)
        self.reason = reason


@runtime_checkable
class ObjectStore(Protocol):
    """Whole-object storage addressed by ``/``-separated keys; thread-safe in every backend."""

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        """Store ``data`` under ``key`` atomically: readers see the old or the new object, never part.

        With ``if_absent`` the object is created only if the key is free; otherwise
        :class:`ObjectExistsError`. Of several racing creators exactly one succeeds.
        """
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; :class:`ObjectNotFoundError` if there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Every key under the folder ``prefix`` (``""`` = everything), full keys, sorted."""
        ...

    def list_versions(self, prefix: str) -> dict[str, str]:
        """:meth:`list` with a version tag of each object: a tag changes whenever the object is
        written again, so a reader may cache what it parsed from an object by ``(key, tag)``
        (S3: the ETag and the time of the write; disk: the modification time and the size)."""
        ...

    def list_children(self, prefix: str) -> builtins.list[str]:
        """Names of the non-empty sub-folders directly under ``prefix``, sorted (objects excluded)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove everything under the folder ``prefix``; returns how many objects were removed."""
        ...

    def ping(self) -> None:
        """Cheap health check; :class:`StorageUnavailableError` when the store cannot be used."""
        ...

    @property
    def description(self) -> str:
        """Where the data lives, for logs and readiness output (never contains secrets)."""
        ...


def is_valid_segment(segment: str) -> bool:
    return len(segment) <= MAX_SEGMENT_LENGTH and _SEGMENT.fullmatch(segment) is not None


def is_valid_key(key: str) -> bool:
    return (
        isinstance(key, str)
        and 0 < len(key) <= MAX_KEY_LENGTH
        and all(is_valid_segment(segment) for segment in key.split("/"))
    )


def validate_key(key: str) -> str:
    """``key`` unchanged, or :class:`ValueError` saying why it is not a valid object key."""
    if not isinstance(key, str):
        raise ValueError(f"object key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("object key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"object key longer than {MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not is_valid_segment(segment):
            raise ValueError(
                f"invalid object key {key!r}: segment {segment!r} is not "
                f"[a-z0-9][a-z0-9._-]* of at most {MAX_SEGMENT_LENGTH} characters"
            )
    return key


def normalize_prefix(prefix: str) -> str:
    """A folder prefix as S3 wants it: ``""`` (everything) or ``"a/b/"``; :class:`ValueError` if bad.

    Accepts ``"a/b"`` and ``"a/b/"`` alike; a prefix is always whole segments.
    """
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a str, not {type(prefix).__name__}")
    if prefix == "":
        return ""
    folder = prefix[:-1] if prefix.endswith("/") else prefix
    try:
        validate_key(folder)
    except ValueError as error:
        raise ValueError(f"invalid prefix {prefix!r}: {error}") from None
    return folder + "/"
