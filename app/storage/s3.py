"""Object store in an S3 bucket (AWS, SeaweedFS, other S3-compatible servers) via boto3.

One boto3 client per store, shared by all threads (boto3 clients are thread-safe). Behaviour that
differs between S3 servers, and what this module does about it:

* ``put(..., if_absent=True)`` is a conditional write (``If-None-Match: *``). AWS (since 2024-08)
  and SeaweedFS (checked on 4.48, one gateway) answer 412 when the key exists, atomically: of
  racing creators exactly one gets 200. That 412 becomes :class:`ObjectExistsError`. AWS documents
  409 ``ConditionalRequestConflict`` for a creator racing another; it is retried. A server that
  ignores the header would silently overwrite: such a server is not supported.
* SeaweedFS keeps an emptied folder in delimiter listings until its background cleanup (minutes),
  so :meth:`S3ObjectStore.list_children` confirms every candidate folder still holds an object.
* SeaweedFS, like AWS, lets ``a/b`` and ``a/b/c`` coexist; the disk backend cannot, so the
  service's key layout never uses a key as a folder.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from app.storage.base import (
    ObjectExistsError,
    ObjectNotFoundError,
    StorageUnavailableError,
    is_valid_key,
    is_valid_segment,
    normalize_prefix,
    validate_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
"""S3's cap on keys per ListObjectsV2 page and per DeleteObjects call."""
DEFAULT_REGION = "us-east-1"
# Fail fast while the server is down, so a request answers 503 in seconds instead of hanging:
# a refused connection costs 3 attempts and at most ~3 s of back-off; a server that accepts but
# never answers costs at most 3 x (connect or read timeout). Measured in docs/reliability.md.
DEFAULT_CONNECT_TIMEOUT_S = 3.0
DEFAULT_READ_TIMEOUT_S = 10.0
DEFAULT_MAX_ATTEMPTS = 3
_CONFLICT_RETRIES = 5
ServerSideEncryption = Literal["AES256", "aws:kms"]
SERVER_SIDE_ENCRYPTIONS: tuple[ServerSideEncryption, ...] = ("AES256", "aws:kms")
_CHILD_CHECK_THREADS = 8

_session_lock = threading.Lock()
_shared_session: boto3.session.Session | None = None


def _make_client(**options: Any) -> S3Client:
    """An S3 client from one shared session: the S3 service model is loaded once, not per client.

    Creating clients from one session is not thread-safe, hence the lock; using them is.
    """
    global _shared_session
    with _session_lock:
        if _shared_session is None:
            _shared_session = boto3.session.Session()
        client: S3Client = _shared_session.client("s3", **options)
        return client


class S3ObjectStore:
    """:class:`~app.storage.base.ObjectStore` in one bucket; key ``a/b.json`` is object ``a/b.json``."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        create_bucket: bool = False,
        page_size: int = MAX_PAGE_SIZE,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        verify_child_folders: bool = True,
        server_side_encryption: ServerSideEncryption | None = None,
        sse_kms_key_id: str | None = None,
    ) -> None:
        """Credentials left as ``None`` come from boto3's usual chain (environment, profile, role).

        ``create_bucket`` creates a missing bucket now, or in a later :meth:`ping` when the server
        cannot be reached yet (construction never fails for an unreachable server).

        ``page_size`` (1..1000) is the keys per list page and per batched delete; tests lower it to
        exercise pagination. ``verify_child_folders=False`` skips the emptied-folder check of
        :meth:`list_children` on servers that drop empty prefixes themselves (AWS).

        ``server_side_encryption`` (``"AES256"``: SSE-S3, ``"aws:kms"``: SSE-KMS, with
        ``sse_kms_key_id`` or the bucket's default KMS key) is asked for on every put.
        """
        if not bucket:
            raise ValueError("bucket name is empty")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}, got {page_size}")
        if server_side_encryption not in (None, *SERVER_SIDE_ENCRYPTIONS):
            raise ValueError(
                f"server_side_encryption must be one of {SERVER_SIDE_ENCRYPTIONS}, "
                f"not {server_side_encryption!r}"
            )
        if sse_kms_key_id and server_side_encryption != "aws:kms":
            raise ValueError("sse_kms_key_id needs server_side_encryption='aws:kms'")
        self._sse: dict[str, Any] = {}
        if server_side_encryption:
            self._sse["ServerSideEncryption"] = server_side_encryption
        if sse_kms_key_id:
            self._sse["SSEKMSKeyId"] = sse_kms_key_id
        self._bucket = bucket
        self._endpoint_url = endpoint_url
        self._region = region or (DEFAULT_REGION if endpoint_url else None)
        self._page_size = page_size
        self._verify_child_folders = verify_child_folders
        identity: dict[str, Any] = {
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "region_name": self._region,
            "endpoint_url": endpoint_url,
        }
        s3_options: dict[str, Any] = {"addressing_style": "path"} if endpoint_url else {}
        common: dict[str, Any] = {
            "s3": s3_options,
            "signature_version": "s3v4",
            # Checksums only where S3 requires them: S3-compatible servers vary in what they accept.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        self._client = _make_client(
            **identity,
            config=Config(
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout_s,
                retries={"max_attempts": max_attempts, "mode": "standard"},
                # Request threads plus list_children's checks share the pool without waiting.
                max_pool_connections=32,
                **common,
            ),
        )
        # ping() answers readiness probes: one attempt, short timeouts, never a retry storm.
        self._probe_client = _make_client(
            **identity,
            config=Config(
                connect_timeout=min(connect_timeout_s, 2.0),
                read_timeout=min(read_timeout_s, 5.0),
                retries={"max_attempts": 1, "mode": "standard"},
                max_pool_connections=2,
                **common,
            ),
        )
        self._create_bucket = create_bucket
        if create_bucket:
            try:
                self._ensure_bucket()
            except StorageUnavailableError as error:
                # Not fatal: the server may come up later; ping() creates the bucket then.
                logger.warning("cannot create bucket yet: %s", error)

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def description(self) -> str:
        where = self._endpoint_url or f"AWS {self._region or 'default region'}"
        sse = self._sse.get("ServerSideEncryption")
        # The KMS key id is not secret, but it names an account: it stays out of logs.
        return f"s3://{self._bucket} ({where}" + (f", SSE {sse})" if sse else ")")

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.description!r})"

    # --- writes ----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        validate_key(key)
        request: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": key,
            "Body": data,
            "ContentType": content_type,
            **self._sse,
        }
        if if_absent:
            request["IfNoneMatch"] = "*"
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._client.put_object(**request)
                return
            except ClientError as error:
                code, status = _error_code(error), _http_status(error)
                if if_absent and (status == 412 or code == "PreconditionFailed"):
                    raise ObjectExistsError(key) from None
                if if_absent and (status == 409 or code == "ConditionalRequestConflict"):
                    # AWS: another conditional write to this key is in flight; its outcome decides.
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise self._unavailable(f"put {key!r}", error) from error
            except BotoCoreError as error:
                raise self._unavailable(f"put {key!r}", error) from error
        raise StorageUnavailableError(
            f"put {key!r} in {self.description}: conditional write kept conflicting",
            reason="storage write conflict, retry",
        )

    def delete(self, key: str) -> None:
        validate_key(key)
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if _error_code(error) == "NoSuchKey":
                return
            raise self._unavailable(f"delete {key!r}", error) from error
        except BotoCoreError as error:
            raise self._unavailable(f"delete {key!r}", error) from error

    def delete_prefix(self, prefix: str) -> int:
        folder = normalize_prefix(prefix)
        removed = 0
        # Each listed page is at most 1000 keys, which is what one DeleteObjects call accepts.
        # Deleting while paginating is safe: the continuation token is a position, not an index.
        for page in self._pages(Prefix=folder):
            keys = [item["Key"] for item in page.get("Contents", []) if "Key" in item]
            if not keys:
                continue
            try:
                response = self._client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as error:
                raise self._unavailable(f"delete under {prefix!r}", error) from error
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageUnavailableError(
                    f"delete under {prefix!r} in {self.description}: {len(errors)} objects not "
                    f"deleted, e.g. {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                )
            removed += len(keys)
        return removed

    # --- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        validate_key(key)
        return self._get(key)

    # Read-only access to objects outside Rollcall's key rules (upper case, spaces, any script):
    # the original server's layout (``registration/{student_name}/...``), read by app.importer.

    def list_foreign(self, prefix: str) -> builtins.list[str]:
        """Every key under ``prefix``, whatever its characters (folder markers excepted)."""
        keys = [
            item.get("Key", "")
            for page in self._pages(Prefix=prefix)
            for item in page.get("Contents", [])
        ]
        return sorted(key for key in keys if key and not key.endswith("/"))

    def get_foreign(self, key: str) -> bytes:
        """The object at ``key``, whatever its characters (a key from :meth:`list_foreign`)."""
        if not key or len(key.encode("utf-8")) > 1024:
            raise ValueError("not an S3 object key")
        return self._get(key)

    def _get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
            with response["Body"] as body:
                return body.read()
        except ClientError as error:
            if _error_code(error) in ("NoSuchKey", "NotFound") or (
                _http_status(error) == 404 and _error_code(error) != "NoSuchBucket"
            ):
                raise ObjectNotFoundError(key) from None
            raise self._unavailable(f"get {key!r}", error) from error
        except BotoCoreError as error:
            raise self._unavailable(f"get {key!r}", error) from error

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            # HEAD has no body, so a missing bucket also looks like 404 here; ping() tells them apart.
            if _http_status(error) == 404:
                return False
            raise self._unavailable(f"exists {key!r}", error) from error
        except BotoCoreError as error:
            raise self._unavailable(f"exists {key!r}", error) from error
        return True

    def list(self, prefix: str) -> list[str]:
        return sorted(self.list_versions(prefix))

    def list_versions(self, prefix: str) -> dict[str, str]:
        versions: dict[str, str] = {}
        for page in self._pages(Prefix=normalize_prefix(prefix)):
            for item in page.get("Contents", []):
                key = item.get("Key", "")
                # Foreign objects (folder markers "a/", names with upper case...) are not ours.
                if is_valid_key(key):
                    modified = item.get("LastModified")
                    stamp = modified.isoformat() if modified is not None else ""
                    versions[key] = f"{item.get('ETag', '')}@{stamp}"
                else:
                    logger.debug("list %s: skipping foreign key %r", self.description, key)
        return dict(sorted(versions.items()))

    def list_children(self, prefix: str) -> builtins.list[str]:
        folder = normalize_prefix(prefix)
        names: builtins.list[str] = []
        for page in self._pages(Prefix=folder, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common.get("Prefix", "")[len(folder) :].removesuffix("/")
                if is_valid_segment(name):
                    names.append(name)
        if self._verify_child_folders and names:
            with ThreadPoolExecutor(max_workers=min(_CHILD_CHECK_THREADS, len(names))) as pool:
                holds = list(
                    pool.map(lambda name: self._holds_an_object(folder + name + "/"), names)
                )
            names = [name for name, held in zip(names, holds, strict=True) if held]
        names.sort()
        return names

    def _holds_an_object(self, folder: str) -> bool:
        try:
            response = self._client.list_objects_v2(Bucket=self._bucket, Prefix=folder, MaxKeys=1)
        except (ClientError, BotoCoreError) as error:
            raise self._unavailable(f"list {folder!r}", error) from error
        return bool(response.get("Contents"))

    def _pages(self, **request: Any) -> Iterator[Any]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._bucket, PaginationConfig={"PageSize": self._page_size}, **request
        )
        try:
            yield from pages
        except (ClientError, BotoCoreError) as error:
            raise self._unavailable(f"list {request.get('Prefix')!r}", error) from error

    # --- health ----------------------------------------------------------------------------

    def ping(self) -> None:
        try:
            self._probe_client.head_bucket(Bucket=self._bucket)
        except ClientError as error:
            status = _http_status(error)
            if status == 404 and self._create_bucket:
                self._ensure_bucket()
                return
            if status == 404:
                raise StorageUnavailableError(
                    f"{self.description}: bucket does not exist", reason="bucket does not exist"
                ) from error
            if status in (401, 403):
                raise StorageUnavailableError(
                    f"{self.description}: access denied (check the credentials)",
                    reason="storage access denied",
                ) from error
            raise self._unavailable("ping", error) from error
        except BotoCoreError as error:
            raise StorageUnavailableError(
                f"{self.description}: unreachable: {error}", reason=_reason(error)
            ) from error

    def _ensure_bucket(self) -> None:
        try:
            self._probe_client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as error:
            if _http_status(error) != 404:
                raise self._unavailable("check bucket", error) from error
        except BotoCoreError as error:
            raise self._unavailable("check bucket", error) from error
        try:
            if self._region and self._region != DEFAULT_REGION:
                self._client.create_bucket(
                    Bucket=self._bucket,
                    CreateBucketConfiguration={"LocationConstraint": self._region},  # type: ignore[typeddict-item]
                )
            else:
                self._client.create_bucket(Bucket=self._bucket)
            logger.info("created bucket %s", self.description)
        except ClientError as error:
            if _error_code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._unavailable("create bucket", error) from error
        except BotoCoreError as error:
            raise self._unavailable("create bucket", error) from error

    def _unavailable(self, action: str, error: Exception) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"{action} in {self.description}: {error}", reason=_reason(error)
        )


def _reason(error: Exception) -> str:
    """What went wrong, in words a client may see (no bucket, endpoint or key)."""
    if isinstance(error, ClientError):
        code, status = _error_code(error), _http_status(error)
        if code == "NoSuchBucket":
            return "bucket does not exist"
        if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId"):
            return "storage access denied"
        if status == 503 or code == "SlowDown":
            return "storage server overloaded"
        if status >= 500:
            return f"storage server error (HTTP {status})"
        return f"storage request refused (HTTP {status} {code})".replace(" )", ")")
    if isinstance(error, ConnectTimeoutError):
        return "storage server unreachable (connect timed out)"
    if isinstance(error, ReadTimeoutError):
        return "storage server timed out"
    if isinstance(error, EndpointConnectionError):
        return "storage server unreachable"
    if isinstance(error, ConnectionClosedError):
        return "storage server closed the connection"
    if isinstance(error, NoCredentialsError):
        return "storage credentials missing"
    return "storage error"


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
