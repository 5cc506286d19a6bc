"""The original server's operators' upgrade path (issue 14, point 2): ``python -m app.importer``
against a real SeaweedFS bucket seeded in the original layout with real photos.

The bucket holds, under ``old-server/``: three students with a head crop each (``Stüart Blöom``
with a non-ASCII folder name), one whose crop is cut too tight to show a face (the centre of
``leonard3.png``: refused, nothing stored, the operator registers them again), one with only an
embedding (refused), the original's embeddings, its dictionary and a ``model.pth``; and an object
outside the prefix. A dry run stores nothing; the import enrols the three; a second run finds them
present and stores nothing; the original objects are byte-for-byte unchanged and the embeddings
and ``model.pth`` are never read; the service then recognises the imported students.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image

from app import importer
from app.storage import S3ObjectStore
from harness.s3server import S3ServerInfo
from ml.pipeline import FacePipeline
from tests.app.conftest import running_app
from tests.app.dart_http import DartFile, json_body, multipart_request

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.slow  # the importer run three times as a process on a seeded bucket


logger = logging.getLogger(__name__)
PREFIX = "old-server"
STUDENTS = {"Sheldon Cooper": "sheldon", "Stüart Blöom": "stuart", "Raj": "raj"}


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _seed(client: S3Client, bucket: str, people_dir: Path) -> None:
    """The original server's layout, with real photos (its head crops are tight, like these)."""
    rng = np.random.default_rng(0)

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"{PREFIX}/{key}", Body=data)

    def folder(name: str, crop: bytes | None) -> None:
        if crop is not None:
            put(f"registration/{name}/{name}_initial.jpg", crop)
        embedding = rng.standard_normal(128).astype(np.float32)
        put(f"registration/{name}/{name}_embedding/{name}.npy", _npy(embedding))

    for name, who in STUDENTS.items():
        folder(name, _jpeg(Image.open(people_dir / f"face_api_js__{who}" / f"{who}1.png")))
    tight = Image.open(people_dir / "face_api_js__leonard" / "leonard3.png")
    width, height = tight.size
    box = (width * 28 // 100, height * 28 // 100, width * 72 // 100, height * 72 // 100)
    folder("Leonard Hofstadter", _jpeg(tight.crop(box)))  # eyes to mouth: no face found
    folder("Penny", None)  # an embedding and no photo
    dictionary = io.BytesIO()
    np.savez(dictionary, names=np.array(["Raj"]), embeddings=np.zeros((1, 128), np.float32))
    put("embedding_dictionary/student_embeddings_dict.npz", dictionary.getvalue())
    put("model/model.pth", b"PK\x03\x04 a torch pickle the importer must never open")
    client.put_object(Bucket=bucket, Key="unrelated/notes.txt", Body=b"keep me")


def _snapshot(client: S3Client, bucket: str, prefix: str = "") -> dict[str, tuple[bytes, str]]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    snapshot = {}
    for key in keys:
        response = client.get_object(Bucket=bucket, Key=key)
        snapshot[key] = (response["Body"].read(), response["ETag"])
    return snapshot


def _rollcall_keys(client: S3Client, bucket: str) -> list[str]:
    return sorted(_snapshot(client, bucket, "classes/"))


def test_import_from_the_original_bucket(
    s3_server: S3ServerInfo,
    s3_admin_client: S3Client,
    new_s3_bucket: Callable[[], str],
    people_dir: Path,
    groups_dir: Path,
    fast_cast_pipeline: FacePipeline,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = new_s3_bucket()
    _seed(s3_admin_client, bucket, people_dir)
    original = _snapshot(s3_admin_client, bucket)
    # The operator's settings: Rollcall on the same bucket (its keys are under classes/).
    for name, value in {
        "S3_BUCKET_NAME": bucket,
        "S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_REGION": s3_server.region,
        "AWS_ACCESS_KEY_ID": s3_server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_access_key,
        "ROLLCALL_N_VIEWS": "1",  # one view per photo keeps the test fast
    }.items():
        monkeypatch.setenv(name, value)
    read: list[str] = []
    real_get = S3ObjectStore.get_foreign

    def recording_get(self: S3ObjectStore, key: str) -> bytes:
        read.append(key)
        return real_get(self, key)

    monkeypatch.setattr(S3ObjectStore, "get_foreign", recording_get)
    args = ["--bucket", bucket, "--prefix", PREFIX]

    # A dry run checks every photo and stores nothing.
    assert importer.main([*args, "--dry-run"]) == 0
    report = capsys.readouterr().out
    assert "5 students" in report and "would import: 3, refused: 2" in report
    assert _rollcall_keys(s3_admin_client, bucket) == []

    # The import.
    assert importer.main(args) == 0
    report = capsys.readouterr().out
    logger.info("import report:\n%s", report)
    lines = {line.split(" -> ")[0].split(":")[0].strip(): line for line in report.splitlines()}
    assert "-> sheldon-cooper: 1 photo(s)" in lines["imported        Sheldon Cooper"]
    assert "-> stuart-bloom" in lines["imported        Stüart Blöom"]
    assert "-> raj" in lines["imported        Raj"]
    assert "no face found on the stored crop" in lines["refused         Leonard Hofstadter"]
    assert "no photo in its folder" in lines["refused         Penny"]
    assert "imported: 3, refused: 2" in report
    imported = _rollcall_keys(s3_admin_client, bucket)
    assert not any("leonard" in key or "penny" in key for key in imported)

    # Safe to run twice: all present, nothing stored.
    assert importer.main(args) == 0
    report = capsys.readouterr().out
    assert "already present: 3, refused: 2" in report
    assert _rollcall_keys(s3_admin_client, bucket) == imported

    # The original objects are untouched, and only the photos were ever read from them.
    after = _snapshot(s3_admin_client, bucket)
    assert {key: after[key] for key in original} == original
    originals_read = {key for key in read if key.startswith(f"{PREFIX}/")}
    assert originals_read and all(key.endswith("_initial.jpg") for key in originals_read)

    # The service recognises them, as the app sees it.
    store = S3ObjectStore(
        bucket,
        endpoint_url=s3_server.endpoint_url,
        region=s3_server.region,
        access_key_id=s3_server.access_key_id,
        secret_access_key=s3_server.secret_access_key,
    )
    with running_app(fast_cast_pipeline, store) as client:
        photo = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
        body, headers = multipart_request({}, [DartFile("file", "bbt3.jpg", photo)])
        response = client.post("/mark/detect", content=body, headers=headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = json_body(response)
        assert {"Sheldon Cooper", "Raj"} <= set(result["names"])
        assert "Stüart Blöom" not in result["names"]  # not in that photo
        listed = client.get("/v1/classes/default/students").json()
        assert {s["name"] for s in listed} == set(STUDENTS)
