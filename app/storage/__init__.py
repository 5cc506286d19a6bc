"""Where the service keeps its data: an S3 bucket, or a local folder with the same layout."""

from __future__ import annotations

import logging
from pathlib import Path

from app.storage.base import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    ObjectUnreadableError,
    StorageUnavailableError,
    is_valid_key,
    normalize_prefix,
    validate_key,
)
from app.storage.disk import DiskObjectStore
from app.storage.encryption import (
    DataKeyError,
    EncryptingObjectStore,
    Keyring,
    encrypt_at_rest,
    verify_data_key,
)
from app.storage.s3 import S3ObjectStore, ServerSideEncryption

__all__ = [
    "DataKeyError",
    "DiskObjectStore",
    "EncryptingObjectStore",
    "Keyring",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "ObjectStore",
    "ObjectUnreadableError",
    "S3ObjectStore",
    "ServerSideEncryption",
    "StorageUnavailableError",
    "create_object_store",
    "encrypt_at_rest",
    "is_valid_key",
    "normalize_prefix",
    "validate_key",
    "verify_data_key",
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
    data_keys: Keyring | None = None,
    server_side_encryption: ServerSideEncryption | None = None,
    sse_kms_key_id: str | None = None,
) -> ObjectStore:
    """The S3 store when ``bucket`` is set (non-empty), else a :class:`DiskObjectStore` at ``data_dir``;
    sealed with ``data_keys`` when given (:func:`encrypt_at_rest`). The S3 server-side encryption
    options apply to the bucket only."""
    store: ObjectStore
    if bucket:
        store = S3ObjectStore(
            bucket,
            endpoint_url=endpoint_url or None,
            region=region or None,
            access_key_id=access_key_id or None,
            secret_access_key=secret_access_key or None,
            create_bucket=create_bucket,
            server_side_encryption=server_side_encryption,
            sse_kms_key_id=sse_kms_key_id,
        )
    elif data_dir is not None and str(data_dir):
        store = DiskObjectStore(Path(data_dir))
    else:
        raise ValueError("no storage configured: give a bucket or a data_dir")
    store = encrypt_at_rest(store, data_keys)
    logger.info("object store: %s", store.description)
    return store
