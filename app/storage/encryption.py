"""Encryption at rest: an :class:`~app.storage.base.ObjectStore` that encrypts every object body.

:class:`EncryptingObjectStore` wraps the real store (disk or S3), so services and repositories do
not know it is there. Every body it writes is sealed with AES-256-GCM under the current data key
(``ROLLCALL_DATA_KEY``); keys, listings, ``exists``, deletes and ``if_absent`` pass through
unchanged (an object's key is never encrypted: listing by prefix needs it).

Every body, not only photos and embeddings: JSON documents hold students' names, attendance and
face boxes, a sample holds a face crop and its embedding; one rule for every object leaves no list
of "sensitive" keys to keep in step with the layout. The cost is measured in docs/data-protection.md
("Encryption at rest").

The envelope is in the body, not in S3 metadata, so that it works the same on disk (which keeps no
metadata) and on any S3 server, and an object copied with its bytes keeps what it needs::

    magic  b"\\x89RCE" (4 bytes)   no stored format starts so (JPEG FF D8, PNG 89 50, JSON {,
                                   .npy 93 NUMPY, safetensors a little-endian header length)
    version 1         (1 byte)
    key id            (8 bytes)    which data key sealed it: keys rotate (see below)
    nonce             (12 bytes)   fresh and random for every write (AES-GCM's 96-bit nonce)
    ciphertext + tag  (16-byte GCM tag at the end)

The associated data is the 25-byte header followed by the object key, so an envelope copied to
another key, or with its key id or version changed, fails to decrypt instead of being read as
another object.

Rotation: a key's id is derived from the key (HMAC-SHA-256 of a fixed label, first 8 bytes), so it
can never be mislabelled. New writes use the current key; objects sealed under an older key stay
readable while that key is listed in ``ROLLCALL_DATA_KEYS_OLD``. :func:`reseal_all` (``python -m
app.reseal``) rewrites every object under the current key, after which the old key can go. An object whose key id is not
configured raises :class:`ObjectUnreadableError` naming the id, never a key.

Objects written before encryption was turned on have no envelope and are returned as they are:
an existing store keeps working, and its objects are sealed as they are rewritten.

A wrong key is refused at start-up (:meth:`EncryptingObjectStore.verify_data_key`): the first start
with a key writes a small sealed object, :data:`KEY_CHECK_KEY`; every later start must open it.
A server without any key refuses a store that holds that sealed object (:func:`verify_data_key`).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import hmac
import logging
import os
import re
import threading
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.storage.base import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    ObjectUnreadableError,
    StorageUnavailableError,
    validate_key,
)

logger = logging.getLogger(__name__)

MAGIC = b"\x89RCE"
VERSION = 1
KEY_BYTES = 32
"""AES-256."""
KEY_ID_BYTES = 8
NONCE_BYTES = 12
"""GCM's standard 96-bit nonce. Random nonces stay safe for about 2**32 writes under one key (NIST
SP 800-38D); a school writes tens of thousands of objects a year, and rotation starts a new key."""
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + 1 + KEY_ID_BYTES + NONCE_BYTES
OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES

KEY_CHECK_KEY = "rollcall/data-key-check.bin"
"""The sealed object that tells a wrong key at start-up; outside ``classes/``, so no service
lists it."""
KEY_CHECK_PLAINTEXT = b"rollcall data key check, version 1"

_KEY_ID_LABEL = b"rollcall data key id"
_KEY_SEPARATORS = re.compile(r"[;,\s]+")


class DataKeyError(StorageUnavailableError):
    """The configured data key cannot open the stored data (wrong key, or a key is missing).

    The service refuses to start on it; raised later only when the store was unreachable at
    start-up (then every request answers 503 with :attr:`reason` until the key is fixed).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="data key does not match the stored data")


@dataclass(frozen=True)
class DataKey:
    """One AES-256 key and its id. ``repr`` shows only the id."""

    key: bytes = field(repr=False)
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a data key is {KEY_BYTES} bytes, not {len(self.key)}")
        key_id = hmac.new(self.key, _KEY_ID_LABEL, hashlib.sha256).digest()[:KEY_ID_BYTES]
        object.__setattr__(self, "key_id", key_id)

    @property
    def id_hex(self) -> str:
        return self.key_id.hex()

    @classmethod
    def from_base64(cls, text: str, *, what: str = "ROLLCALL_DATA_KEY") -> DataKey:
        """A key written as base64 of 32 random bytes; :class:`ValueError` (never quoting it)."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{what}: not base64 (make a key as .env.example shows)") from None
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"{what}: a key is {KEY_BYTES} random bytes in base64 (44 characters), this one "
                f"decodes to {len(key)} bytes"
            )
        return cls(key)


@dataclass(frozen=True)
class Keyring:
    """The current data key (every write) and older ones still accepted for reading."""

    current: DataKey
    old: tuple[DataKey, ...] = ()

    def __post_init__(self) -> None:
        ids = [self.current.key_id, *(key.key_id for key in self.old)]
        if len(set(ids)) != len(ids):
            raise ValueError("ROLLCALL_DATA_KEYS_OLD repeats a key (or holds ROLLCALL_DATA_KEY)")

    @classmethod
    def parse(cls, current: str, old: str | None = None) -> Keyring:
        """``ROLLCALL_DATA_KEY`` and ``ROLLCALL_DATA_KEYS_OLD`` (base64 keys separated by ``;``)."""
        return cls(DataKey.from_base64(current), parse_old_keys(old or ""))

    def find(self, key_id: bytes) -> DataKey | None:
        for key in (self.current, *self.old):
            if hmac.compare_digest(key.key_id, key_id):
                return key
        return None

    @property
    def ids_hex(self) -> list[str]:
        return [key.id_hex for key in (self.current, *self.old)]


def parse_old_keys(text: str) -> tuple[DataKey, ...]:
    """``ROLLCALL_DATA_KEYS_OLD``: base64 keys separated by ``;`` (or commas, or spaces)."""
    return tuple(
        DataKey.from_base64(part, what=f"ROLLCALL_DATA_KEYS_OLD (key {number})")
        for number, part in enumerate((p for p in _KEY_SEPARATORS.split(text) if p), start=1)
    )


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` is an envelope written by :class:`EncryptingObjectStore`."""
    return data[: len(MAGIC)] == MAGIC


def sealed_key_id(data: bytes) -> bytes:
    """The key id in an envelope's header."""
    return data[len(MAGIC) + 1 : len(MAGIC) + 1 + KEY_ID_BYTES]


def seal(key: DataKey, object_key: str, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    header = MAGIC + bytes([VERSION]) + key.key_id + nonce
    return header + AESGCM(key.key).encrypt(nonce, plaintext, header + object_key.encode())


def open_sealed(keyring: Keyring, object_key: str, data: bytes) -> bytes:
    """The plaintext of an envelope; :class:`ObjectUnreadableError` saying why it cannot be read."""
    if len(data) < OVERHEAD_BYTES:
        raise ObjectUnreadableError(object_key, "encrypted object is truncated")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise ObjectUnreadableError(object_key, f"unknown encryption format version {version}")
    key_id = sealed_key_id(data)
    key = keyring.find(key_id)
    if key is None:
        raise ObjectUnreadableError(
            object_key,
            f"encrypted with data key id {key_id.hex()}, which is not configured "
            "(ROLLCALL_DATA_KEY, ROLLCALL_DATA_KEYS_OLD)",
        )
    header = data[:HEADER_BYTES]
    nonce = header[-NONCE_BYTES:]
    try:
        return AESGCM(key.key).decrypt(nonce, data[HEADER_BYTES:], header + object_key.encode())
    except InvalidTag:
        raise ObjectUnreadableError(
            object_key,
            "encrypted object failed its integrity check (altered, or moved from another key)",
        ) from None


class EncryptingObjectStore:
    """:class:`~app.storage.base.ObjectStore` that seals every body written to ``inner``.

    Until :meth:`verify_data_key` has succeeded once, every read and write first runs it, so a
    server that could not reach its store at start-up still never writes under a wrong key.
    """

    def __init__(self, inner: ObjectStore, keyring: Keyring) -> None:
        self._inner = inner
        self._keyring = keyring
        self._verified = threading.Event()
        self._verify_lock = threading.Lock()

    @property
    def inner(self) -> ObjectStore:
        return self._inner

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    @property
    def description(self) -> str:
        return f"{self._inner.description}, encrypted (data key id {self._keyring.current.id_hex})"

    def __repr__(self) -> str:
        return f"EncryptingObjectStore({self._inner!r}, key id {self._keyring.current.id_hex})"

    # --- the data key check -------------------------------------------------------------------

    def verify_data_key(self) -> None:
        """Check that the data key opens this store's data, writing the key check on first use.

        :class:`DataKeyError` when it does not; :class:`StorageUnavailableError` when the store
        cannot be reached (checked again on the next call).
        """
        if self._verified.is_set():
            return
        with self._verify_lock:
            if self._verified.is_set():
                return
            try:
                self._inner.put(
                    KEY_CHECK_KEY,
                    seal(self._keyring.current, KEY_CHECK_KEY, KEY_CHECK_PLAINTEXT),
                    if_absent=True,
                )
                logger.info(
                    "encryption at rest: first start with data key id %s, key check written",
                    self._keyring.current.id_hex,
                )
            except ObjectExistsError:
                self._check_existing_key_check()
            self._verified.set()

    def _check_existing_key_check(self) -> None:
        where = self._inner.description
        try:
            data = self._inner.get(KEY_CHECK_KEY)
        except ObjectNotFoundError:
            # Deleted between the two calls (an operator resetting the store): check again later.
            raise StorageUnavailableError(
                f"{where}: the data key check vanished while being read",
                reason="data key check vanished, retry",
            ) from None
        if not is_sealed(data):
            raise DataKeyError(f"{where}: {KEY_CHECK_KEY} is not an encrypted object")
        key_id = sealed_key_id(data)
        if self._keyring.find(key_id) is None:
            raise DataKeyError(
                f"{where} holds data encrypted with data key id {key_id.hex()}; the configured "
                f"keys have ids {', '.join(self._keyring.ids_hex)} (ROLLCALL_DATA_KEY, then "
                "ROLLCALL_DATA_KEYS_OLD): set the key the data was written with, or add it to "
                "ROLLCALL_DATA_KEYS_OLD"
            )
        try:
            plaintext = open_sealed(self._keyring, KEY_CHECK_KEY, data)
        except ObjectUnreadableError as error:
            raise DataKeyError(
                f"{where}: the data key check does not open with data key id {key_id.hex()} "
                f"({error.why}): the store's data key check was altered"
            ) from None
        if plaintext != KEY_CHECK_PLAINTEXT:
            raise DataKeyError(f"{where}: the data key check holds unexpected content")

    # --- the ObjectStore calls ----------------------------------------------------------------

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        self.verify_data_key()
        sealed = seal(self._keyring.current, validate_key(key), data)
        # The content type stays what the object holds once opened; the body is opaque anyway.
        self._inner.put(key, sealed, content_type=content_type, if_absent=if_absent)

    def get(self, key: str) -> bytes:
        self.verify_data_key()
        data = self._inner.get(key)
        if not is_sealed(data):
            return data  # written before encryption was turned on
        return open_sealed(self._keyring, key, data)

    def exists(self, key: str) -> bool:
        return self._inner.exists(key)

    def list(self, prefix: str) -> builtins.list[str]:
        return self._inner.list(prefix)

    def list_versions(self, prefix: str) -> dict[str, str]:
        return self._inner.list_versions(prefix)

    def list_children(self, prefix: str) -> builtins.list[str]:
        return self._inner.list_children(prefix)

    def delete(self, key: str) -> None:
        self._inner.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        return self._inner.delete_prefix(prefix)

    def ping(self) -> None:
        self._inner.ping()
        # Readiness says "not ready" while the key has not been checked (or is wrong).
        self.verify_data_key()


def encrypt_at_rest(store: ObjectStore, keyring: Keyring | None) -> ObjectStore:
    """``store`` sealed with ``keyring``, or ``store`` itself when no data key is configured."""
    if keyring is None:
        return store
    return EncryptingObjectStore(store, keyring)


def verify_data_key(store: ObjectStore) -> None:
    """The start-up check: the data key opens the store's data, or no key and no sealed data.

    :class:`DataKeyError` (the service must not start), or :class:`StorageUnavailableError` when
    the store cannot be reached now.
    """
    if isinstance(store, EncryptingObjectStore):
        store.verify_data_key()
        logger.info("encryption at rest: data key id %s", store.keyring.current.id_hex)
        return
    try:
        data = store.get(KEY_CHECK_KEY)
    except ObjectNotFoundError:
        return
    if is_sealed(data):
        raise DataKeyError(
            f"{store.description} holds data encrypted at rest (data key id "
            f"{sealed_key_id(data).hex()}) and ROLLCALL_DATA_KEY is not set"
        )


@dataclass(frozen=True)
class ResealReport:
    examined: int
    sealed_plaintext: int
    """Objects stored before encryption was turned on, now sealed."""
    rekeyed: int
    """Objects sealed under an older key, now under the current one."""


def reseal_all(store: EncryptingObjectStore) -> ResealReport:
    """Rewrite every object that is not sealed under the current key (plaintext, or an old key).

    Run it with the service stopped: an object rewritten by the service between this function's
    read and its write would go back to the version read. The key check is rewritten last, so an
    interrupted run leaves a store that still needs the old key at start-up (run it again).
    """
    store.verify_data_key()
    inner, keyring = store.inner, store.keyring
    keys = [key for key in inner.list("") if key != KEY_CHECK_KEY] + [KEY_CHECK_KEY]
    sealed_plaintext = rekeyed = 0
    for key in keys:
        try:
            raw = inner.get(key)
        except ObjectNotFoundError:
            continue
        if is_sealed(raw) and sealed_key_id(raw) == keyring.current.key_id:
            continue
        inner.put(key, seal(keyring.current, key, store.get(key)))
        if is_sealed(raw):
            rekeyed += 1
        else:
            sealed_plaintext += 1
    return ResealReport(len(keys), sealed_plaintext, rekeyed)
