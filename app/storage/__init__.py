"""Where the service keeps its data: an S3 bucket, or a local folder with the same layout."""

from __future__ import annotations

import logging
from pathlib import Path

from app.storage.base import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    StorageUnavailableError,
    is_valid_key,
    normalize_prefix,
    validate_key,
)
from app.storage.disk import DiskObjectStore
from app.storage.s3 import S3ObjectStore

__all__ = [
    "DiskObjectStore",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "ObjectStore",
    "S3ObjectStore",
    "StorageUnavailableError",
    "create_object_store",
    "is_valid_key",
    "normalize_prefix",
    "validate_key",
]

logger = logging.getLogger(__name__)


def create_object_store(
    *,
    bucket: str | None,
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    data_dir: Path | str | None,
    create_bucket: bool = False,
) -> ObjectStore:
    """The S3 store when ``bucket`` is set (non-empty), else a :class:`DiskObjectStore` at ``data_dir``."""
    store: ObjectStore
    if bucket:
        store = S3ObjectStore(
            bucket,
            endpoint_url=endpoint_url or None,
            region=region or None,
            access_key_id=access_key_id or None,
            secret_access_key=secret_access_key or None,
            create_bucket=create_bucket,
        )
    elif data_dir is not None and str(data_dir):
        store = DiskObjectStore(Path(data_dir))
    else:
        raise ValueError("no storage configured: give a bucket or a data_dir")
    logger.info("object store: %s", store.description)
    return store
