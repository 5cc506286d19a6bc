"""The model cache: where exported models live, written atomically and verified by checksum on load.

The service checks its ONNX files with :func:`check_file` before onnxruntime reads them; the
exporter (:mod:`ml.export`) writes them with :func:`save_checked_file`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_DIR_ENV = "ROLLCALL_MODEL_CACHE"

CHECKSUM_SUFFIX = ".sha256.json"
"""A checked file ``model.onnx`` has its record in ``model.onnx.sha256.json`` beside it."""


class WeightsChecksumError(ValueError):
    """A cached weights file is unreadable or its contents do not match its recorded checksum."""


class OutdatedExportError(WeightsChecksumError):
    """A cached file is intact but was written by another version of its exporter (an upgrade,
    not damage: it is simply exported again)."""


def default_cache_dir() -> Path:
    """``$ROLLCALL_MODEL_CACHE`` if set, else ``~/.cache/rollcall``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "rollcall"


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Let ``write`` fill a temp file beside ``path``, then rename it onto ``path``.

    Concurrent writers each fill their own temp file and the last rename wins with a complete file, so a reader
    never sees a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    file_descriptor, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(file_descriptor)
    temp_path = Path(temp_name)
    try:
        write(temp_path)
        with temp_path.open("rb") as written:
            os.fsync(written.fileno())
        # mkstemp creates 0600; the cache is baked in at image build time and read by another user at run time.
        temp_path.chmod(0o644)
        temp_path.replace(path)
    finally:
        temp_path.unlink(missing_ok=True)


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def recorded_version(path: Path) -> str | None:
    """The exporter version in ``path``'s checksum record, ``None`` when the file or its record is
    missing or unreadable. A cheap look (no hashing) at whether a file needs exporting at all."""
    if not path.is_file():
        return None
    try:
        record = json.loads(checksum_path(path).read_text())
    except (OSError, ValueError):
        return None
    version = record.get("version") if isinstance(record, dict) else None
    return version if isinstance(version, str) else None


def save_checked_file(data: bytes, path: Path, *, version: str, source: str) -> None:
    """Write ``data`` to ``path`` and its SHA-256, ``version`` and ``source`` to :func:`checksum_path`.

    The data is written first: a reader that finds a record not matching the data (a crash or a concurrent writer
    between the two renames) gets :class:`WeightsChecksumError`, never a silently wrong model.
    """
    record = {"sha256": hashlib.sha256(data).hexdigest(), "version": version, "source": source}
    write_atomically(path, lambda temp: temp.write_bytes(data))
    write_atomically(
        checksum_path(path), lambda temp: temp.write_text(json.dumps(record, indent=2) + "\n")
    )


def check_file(path: Path, *, version: str) -> Path:
    """``path``, once its contents are checked against the record :func:`save_checked_file` wrote
    (hashed as a stream: the service hands onnxruntime the path, not a copy of the bytes, which
    kept FaceNet's session 80 MiB smaller, 2026-11-29).

    Raises:
        FileNotFoundError: the file or its checksum record is missing.
        WeightsChecksumError: damaged (:class:`OutdatedExportError`: intact but written by
            another ``version`` of the writer).
    """
    _check_record(path, file_sha256(path), version)
    return path


def _check_record(path: Path, actual: str, version: str) -> None:
    record_path = checksum_path(path)
    try:
        record = json.loads(record_path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:
        raise WeightsChecksumError(
            f"{record_path}: unreadable checksum record ({error})"
        ) from error
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        raise WeightsChecksumError(f"{record_path}: no checksum recorded")
    if actual != record["sha256"]:
        raise WeightsChecksumError(
            f"{path}: checksum mismatch (recorded {record['sha256'][:12]}..., got {actual[:12]}...)"
        )
    if record.get("version") != version:
        raise OutdatedExportError(
            f"{path}: written by version {record.get('version')!r} of its exporter, expected {version}"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
