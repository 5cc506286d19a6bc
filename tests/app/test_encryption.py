"""Encryption at rest (app/storage/encryption.py) and S3 server-side encryption headers.

The store tests run on disk and on a real SeaweedFS S3 server; the service tests start the app on
both, with the real models on the face-api.js cast and a real class photo.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.records import keys
from app.storage import (
    DataKeyError,
    EncryptingObjectStore,
    Keyring,
    ObjectExistsError,
    ObjectStore,
    ObjectUnreadableError,
    S3ObjectStore,
    StorageUnavailableError,
    verify_data_key,
)
from app.storage.encryption import (
    HEADER_BYTES,
    KEY_CHECK_KEY,
    MAGIC,
    NONCE_BYTES,
    OVERHEAD_BYTES,
    ResealReport,
    is_sealed,
    reseal_all,
    sealed_key_id,
)
from ml.pipeline import FacePipeline
from tests.app.conftest import CAST, MakeObjectStore, api_settings, running_app

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG"
PHOTO_KEY = "classes/c1/sessions/s1/photos/p1/original.jpg"
DOC_KEY = "classes/c1/students/penny/student.json"
DOC = json.dumps({"id": "penny", "name": "Penny Hofstadter"}).encode()


def new_key() -> str:
    """A fresh data key, made as .env.example tells operators to make one."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def ring(current: str, *old: str) -> Keyring:
    return Keyring.parse(current, ";".join(old))


@pytest.fixture(scope="module")
def class_photo(groups_dir: Path) -> bytes:
    return (groups_dir / "face_api_js__bbt3.jpg").read_bytes()


# --- the sealed store, on both backends ------------------------------------------------------


def test_round_trip_and_the_stored_bytes_are_not_the_plaintext(
    object_store: ObjectStore, class_photo: bytes
) -> None:
    sealed = EncryptingObjectStore(object_store, ring(new_key()))
    sealed.put(PHOTO_KEY, class_photo, content_type="image/jpeg")
    sealed.put(DOC_KEY, DOC, content_type="application/json")
    assert sealed.get(PHOTO_KEY) == class_photo
    assert sealed.get(DOC_KEY) == DOC

    raw_photo, raw_doc = object_store.get(PHOTO_KEY), object_store.get(DOC_KEY)
    assert raw_photo.startswith(MAGIC) and raw_doc.startswith(MAGIC)
    assert not raw_photo.startswith(JPEG_MAGIC)
    assert JPEG_MAGIC not in raw_photo[: HEADER_BYTES + 16]
    assert class_photo[1000:1064] not in raw_photo
    assert len(raw_photo) == len(class_photo) + OVERHEAD_BYTES
    assert b"Penny" not in raw_doc and b'"name"' not in raw_doc
    with pytest.raises(ValueError):
        json.loads(raw_doc)


def test_every_write_gets_a_fresh_nonce(object_store: ObjectStore) -> None:
    sealed = EncryptingObjectStore(object_store, ring(new_key()))
    raws = []
    for key in (DOC_KEY, DOC_KEY, "classes/c1/students/penny/copy.json"):
        sealed.put(key, DOC)
        raws.append(object_store.get(key))
    nonces = {raw[HEADER_BYTES - NONCE_BYTES : HEADER_BYTES] for raw in raws}
    assert len(nonces) == 3
    assert len({raw[HEADER_BYTES:] for raw in raws}) == 3


def test_listing_exists_deletes_and_conditional_puts_are_unchanged(
    object_store: ObjectStore,
) -> None:
    sealed = EncryptingObjectStore(object_store, ring(new_key()))
    keys = ["a/b.json", "a/c/d.jpg", "a/c/e.npy", "x/y.json"]
    for key in keys:
        sealed.put(key, key.encode())
    assert sealed.list("a") == object_store.list("a") == keys[:3]
    assert sealed.list_children("a") == ["c"]
    assert sealed.exists("a/b.json") and not sealed.exists("a/zz.json")
    sealed.put("a/new.json", b"first", if_absent=True)
    with pytest.raises(ObjectExistsError):
        sealed.put("a/new.json", b"second", if_absent=True)
    assert sealed.get("a/new.json") == b"first"
    sealed.delete("a/b.json")
    assert not object_store.exists("a/b.json")
    assert sealed.delete_prefix("a/c") == 2
    assert sealed.list("") == ["a/new.json", KEY_CHECK_KEY, "x/y.json"]


def test_objects_written_before_the_key_stay_readable(object_store: ObjectStore) -> None:
    object_store.put(DOC_KEY, DOC)  # a store filled before encryption was turned on
    sealed = EncryptingObjectStore(object_store, ring(new_key()))
    assert sealed.get(DOC_KEY) == DOC
    sealed.put(DOC_KEY, DOC)  # rewritten: sealed from now on
    assert is_sealed(object_store.get(DOC_KEY))
    assert sealed.get(DOC_KEY) == DOC


def test_without_the_key_the_objects_are_unreadable(
    object_store: ObjectStore, class_photo: bytes
) -> None:
    key = new_key()
    EncryptingObjectStore(object_store, ring(key)).put(PHOTO_KEY, class_photo)
    raw = object_store.get(PHOTO_KEY)  # the store alone: the envelope, not the photo
    assert raw != class_photo and not raw.startswith(JPEG_MAGIC)

    other_key = new_key()
    other = EncryptingObjectStore(object_store, ring(other_key))
    with pytest.raises(DataKeyError) as wrong_read:
        other.get(PHOTO_KEY)
    with pytest.raises(DataKeyError):
        other.put("classes/c1/new.json", DOC)
    assert not object_store.exists("classes/c1/new.json")  # nothing written under a wrong key
    with pytest.raises(DataKeyError, match="ROLLCALL_DATA_KEY is not set") as no_key:
        verify_data_key(object_store)
    for error in (wrong_read.value, no_key.value):
        assert key not in str(error) and other_key not in str(error)


def test_rotation_reads_old_keys_and_writes_with_the_new_one(object_store: ObjectStore) -> None:
    old_key, new = new_key(), new_key()
    EncryptingObjectStore(object_store, ring(old_key)).put(DOC_KEY, DOC)

    rotated = EncryptingObjectStore(object_store, ring(new, old_key))
    rotated.verify_data_key()  # the key check was written with the old key: still accepted
    assert rotated.get(DOC_KEY) == DOC
    rotated.put("classes/c1/students/raj/student.json", b"{}")
    new_id = rotated.keyring.current.key_id
    assert sealed_key_id(object_store.get("classes/c1/students/raj/student.json")) == new_id
    assert sealed_key_id(object_store.get(DOC_KEY)) != new_id

    # The old key dropped while data still uses it: refused at the key check, naming both ids.
    dropped = EncryptingObjectStore(object_store, ring(new))
    with pytest.raises(DataKeyError, match="ROLLCALL_DATA_KEYS_OLD") as refused:
        dropped.verify_data_key()
    assert sealed_key_id(object_store.get(KEY_CHECK_KEY)).hex() in str(refused.value)
    assert new_id.hex() in str(refused.value)


def test_an_object_under_a_key_no_longer_configured_names_its_key_id(
    object_store: ObjectStore,
) -> None:
    first, second = new_key(), new_key()
    # The key check under `second`, one object under `first` (e.g. copied from a store that
    # used it): a server with `second` alone starts, and that object says which key it needs.
    EncryptingObjectStore(object_store, ring(second)).verify_data_key()
    both = EncryptingObjectStore(object_store, ring(first, second))
    both.put(DOC_KEY, DOC)
    only_second = EncryptingObjectStore(object_store, ring(second))
    with pytest.raises(ObjectUnreadableError, match="not configured") as raised:
        only_second.get(DOC_KEY)
    assert both.keyring.current.id_hex in raised.value.why
    assert first not in str(raised.value) and second not in str(raised.value)


def test_altered_or_moved_objects_fail_their_integrity_check(object_store: ObjectStore) -> None:
    sealed = EncryptingObjectStore(object_store, ring(new_key()))
    sealed.put(DOC_KEY, DOC)
    raw = object_store.get(DOC_KEY)

    flipped = bytearray(raw)
    flipped[HEADER_BYTES + 3] ^= 0x01
    object_store.put(DOC_KEY, bytes(flipped))
    with pytest.raises(ObjectUnreadableError, match="integrity"):
        sealed.get(DOC_KEY)

    other_key = "classes/c1/students/amy/student.json"
    object_store.put(other_key, raw)  # a valid envelope, copied to another object
    with pytest.raises(ObjectUnreadableError, match="integrity"):
        sealed.get(other_key)

    object_store.put(DOC_KEY, raw[: OVERHEAD_BYTES - 1])
    with pytest.raises(ObjectUnreadableError, match="truncated"):
        sealed.get(DOC_KEY)
    object_store.put(DOC_KEY, raw[:4] + bytes([9]) + raw[5:])
    with pytest.raises(ObjectUnreadableError, match="version 9"):
        sealed.get(DOC_KEY)


def test_the_key_check_is_written_once_and_needs_no_key_when_encryption_is_off(
    object_store: ObjectStore,
) -> None:
    verify_data_key(object_store)  # no key, nothing sealed: fine, and nothing written
    assert object_store.list("") == []
    key = new_key()
    verify_data_key(EncryptingObjectStore(object_store, ring(key)))
    check = object_store.get(KEY_CHECK_KEY)
    assert is_sealed(check)
    verify_data_key(EncryptingObjectStore(object_store, ring(key)))  # a restart: same check
    assert object_store.get(KEY_CHECK_KEY) == check


# --- the service ---------------------------------------------------------------------------


def _start(pipeline: FacePipeline, store: ObjectStore, **settings: Any) -> None:
    """Start (and stop) the app on ``store``."""
    with TestClient(create_app(api_settings(**settings), pipeline=pipeline, store=store)):
        pass


def test_the_service_refuses_to_start_with_a_wrong_key_or_none(
    object_store: ObjectStore,
    fast_face_pipeline: FacePipeline,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key, wrong = new_key(), new_key()
    first = EncryptingObjectStore(object_store, ring(key))
    first.verify_data_key()  # what the first start with `key` leaves behind
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DataKeyError, match="set the key the data was written with") as refused:
        _start(fast_face_pipeline, object_store, data_key=wrong)
    assert first.keyring.current.id_hex in str(refused.value)
    with pytest.raises(DataKeyError, match="ROLLCALL_DATA_KEY is not set"):
        _start(fast_face_pipeline, object_store)
    assert "refusing to start" in caplog.text
    for secret in (key, wrong):
        assert secret not in caplog.text and secret not in str(refused.value)


def test_settings_refuse_malformed_keys_without_quoting_them() -> None:
    short = base64.b64encode(secrets.token_bytes(16)).decode()
    with pytest.raises(ValueError, match="decodes to 16 bytes") as raised:
        api_settings(data_key=short)
    assert short not in str(raised.value)
    with pytest.raises(ValueError, match="not base64"):
        api_settings(data_key="not a key at all!")
    key = new_key()
    with pytest.raises(ValueError, match="needs ROLLCALL_DATA_KEY"):
        api_settings(data_keys_old=key)
    with pytest.raises(ValueError, match="repeats a key"):
        api_settings(data_key=key, data_keys_old=key)
    with pytest.raises(ValueError, match="S3_BUCKET_NAME"):
        api_settings(s3_sse="AES256")
    with pytest.raises(ValueError, match="aws:kms"):
        api_settings(s3_bucket_name="b", s3_sse="AES256", s3_sse_kms_key_id="alias/x")
    settings = api_settings(data_key=key, data_keys_old=f"{new_key()}; {new_key()}")
    keyring = settings.data_keyring()
    assert keyring is not None and len(keyring.old) == 2
    assert key not in repr(settings) and key not in repr(keyring)


def test_the_service_encrypts_what_it_stores_and_reads_what_it_stored_before(
    make_object_store: MakeObjectStore,
    fast_cast_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
    class_photo: bytes,
) -> None:
    store = make_object_store()

    def add(client: TestClient, name: str) -> None:
        response = client.post(
            "/v1/classes/bbt/students",
            data={"student_id": name, "name": name.title()},
            files={"photos": (f"{name}1.png", cast_photos[name], "image/png")},
        )
        assert response.status_code == 201, response.text

    # Before encryption: one student, stored as is.
    with running_app(fast_cast_pipeline, store) as client:
        assert client.post("/v1/classes", json={"id": "bbt", "name": "BBT"}).status_code == 201
        add(client, CAST[0])
    legacy = set(store.list(""))

    key = new_key()
    with running_app(fast_cast_pipeline, store, data_key=key) as client:
        for name in CAST[1:]:
            add(client, name)
        assert client.get(f"/v1/classes/bbt/students/{CAST[0]}").status_code == 200
        assert (
            client.post("/v1/classes/bbt/sessions", json={"id": "s1", "label": "Pilot"}).status_code
            == 201
        )
        response = client.post(
            "/v1/classes/bbt/sessions/s1/photos",
            files={"photo": ("bbt3.jpg", class_photo, "image/jpeg")},
        )
        assert response.status_code == 201, response.text
        # The student stored before the key is recognised with the others.
        assert sorted(response.json()["recorded"]) == sorted(CAST)

        new_objects = [k for k in store.list("") if k not in legacy]
        kinds = {k.rsplit(".", 1)[-1] for k in new_objects}
        assert {"jpg", "json", "npy", "bin"} <= kinds, kinds
        for object_key in new_objects:
            raw = store.get(object_key)
            assert is_sealed(raw), object_key
            assert not raw.startswith((JPEG_MAGIC, PNG_MAGIC, b"{", b"\x93NUMPY")), object_key
            for name in CAST:
                # Stored as JSON, a name opens with a quote. Ciphertext matches four given bytes
                # once in 2**32 positions; the bare three of "Raj" (once in 2**24) failed a run.
                assert f'"{name.title()}'.encode() not in raw, object_key

        # An altered object: a clear 503, not a 500, and the rest of the class still answers.
        penny = keys.STUDENT.key(class_id="bbt", student_id="penny")
        altered = bytearray(store.get(penny))
        altered[-1] ^= 0x80
        store.put(penny, bytes(altered))
        response = client.get("/v1/classes/bbt/students/penny")
        assert response.status_code == 503
        assert "stored data unreadable" in response.json()["detail"]
        assert "integrity" in response.json()["detail"]
        assert client.get("/v1/classes/bbt/students/raj").status_code == 200

    with pytest.raises(DataKeyError):
        _start(fast_cast_pipeline, store)


# --- S3 server-side encryption ----------------------------------------------------------------


def _sent_headers(store: S3ObjectStore) -> list[dict[str, str]]:
    """The headers of every PutObject the store sends from now on (a botocore event hook)."""
    sent: list[dict[str, str]] = []

    def remember(request: Any, **_: Any) -> None:
        sent.append({k.lower(): _text(v) for k, v in request.headers.items()})

    # The store's own client: the hook sees exactly what it sends.
    store._client.meta.events.register("before-send.s3.PutObject", remember)
    return sent


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_sse_s3_is_asked_for_on_every_put(
    s3_store_factory: Callable[..., S3ObjectStore], s3_admin_client: Any
) -> None:
    store = s3_store_factory(server_side_encryption="AES256")
    sent = _sent_headers(store)
    store.put("a/b.json", DOC)
    store.put("a/c.json", DOC, if_absent=True)
    EncryptingObjectStore(store, ring(new_key())).put("a/d.jpg", b"photo")
    assert len(sent) == 4  # the three puts and the data key check
    assert all(h.get("x-amz-server-side-encryption") == "AES256" for h in sent)
    # SeaweedFS (4.48) honours SSE-S3: the object says how it is stored.
    head = s3_admin_client.head_object(Bucket=store.bucket, Key="a/b.json")
    assert head["ServerSideEncryption"] == "AES256"
    assert store.get("a/b.json") == DOC

    plain = s3_store_factory()
    plain_sent = _sent_headers(plain)
    plain.put("a/b.json", DOC)
    assert "x-amz-server-side-encryption" not in plain_sent[0]


def test_sse_kms_sends_its_key_id(s3_store_factory: Callable[..., S3ObjectStore]) -> None:
    store = s3_store_factory(
        server_side_encryption="aws:kms", sse_kms_key_id="alias/rollcall-test", max_attempts=1
    )
    sent = _sent_headers(store)
    # SeaweedFS 4.48 has no KMS configured in the test server: it answers 500 InternalError, which
    # the store reports as unavailable storage. On AWS the same request is accepted.
    with pytest.raises(StorageUnavailableError):
        store.put("a/b.json", DOC)
    assert sent[0]["x-amz-server-side-encryption"] == "aws:kms"
    assert sent[0]["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/rollcall-test"


def test_settings_pass_sse_to_the_s3_store() -> None:
    settings = api_settings(
        s3_bucket_name="b",
        s3_endpoint_url="http://127.0.0.1:9",
        s3_sse="aws:kms",
        s3_sse_kms_key_id="alias/k",
    )
    kwargs = settings.storage_kwargs()
    assert kwargs["server_side_encryption"] == "aws:kms"
    assert kwargs["sse_kms_key_id"] == "alias/k"
    assert kwargs["data_keys"] is None


def test_reseal_moves_everything_to_the_current_key(object_store: ObjectStore) -> None:
    old_key, new = new_key(), new_key()
    object_store.put("classes/c1/legacy.json", DOC)  # before encryption
    EncryptingObjectStore(object_store, ring(old_key)).put(DOC_KEY, DOC)
    rotated = EncryptingObjectStore(object_store, ring(new, old_key))
    rotated.put("classes/c1/new.json", DOC)

    report = reseal_all(rotated)
    assert (report.examined, report.sealed_plaintext, report.rekeyed) == (4, 1, 2)
    assert reseal_all(rotated) == ResealReport(4, 0, 0)  # nothing left to do
    # The old key can go: the new one alone starts and reads everything.
    only_new = EncryptingObjectStore(object_store, ring(new))
    only_new.verify_data_key()
    for key in ("classes/c1/legacy.json", DOC_KEY, "classes/c1/new.json"):
        assert only_new.get(key) == DOC
        assert sealed_key_id(object_store.get(key)) == only_new.keyring.current.key_id
