"""Students registered before dlib joined FaceNet get dlib's embeddings in the background, from
their stored registration photos, on disk and on S3; until then they are matched on FaceNet."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.records import keys
from app.records.students import parse_listing
from app.services.recognition.gallery import GalleryCache
from app.storage import ObjectStore
from ml.fusion import DLIB, FACENET
from ml.pipeline import FacePipeline
from tests.app.conftest import CAST, context_of, running_app

# dlib's back-fill over real registrations
pytestmark = pytest.mark.slow


CLASS_ID = "physics"


def _dlib_keys(store: ObjectStore) -> list[str]:
    return [
        k for k in store.list(keys.STUDENT.prefix(class_id=CLASS_ID)) if "/embeddings/dlib/" in k
    ]


def test_students_enrolled_before_dlib_are_back_filled(
    fast_face_pipeline: FacePipeline,
    object_store: ObjectStore,
    cast_photos: dict[str, bytes],
    groups_dir: Path,
) -> None:
    facenet_only = fast_face_pipeline.with_config(
        dataclasses.replace(fast_face_pipeline.config, embedders=("facenet",))
    )
    assert facenet_only.models == (FACENET,)
    with running_app(facenet_only, object_store) as client:
        assert client.post("/v1/classes", json={"id": CLASS_ID, "name": "P"}).status_code == 201
        for name in CAST:
            reply = client.post(
                f"/v1/classes/{CLASS_ID}/students",
                data={"student_id": name, "name": name.title()},
                files={"photos": (f"{name}.png", cast_photos[name], "image/png")},
            )
            assert reply.status_code == 201, reply.text
        # The FaceNet-only service has no secondary model to report or fill.
        assert client.get(f"/v1/classes/{CLASS_ID}").json()["models"] == []
    assert _dlib_keys(object_store) == []
    before = GalleryCache(object_store).get(CLASS_ID)
    assert before.model_progress(DLIB) == (0, len(CAST))
    assert before.gallery.models == (FACENET,)

    with running_app(fast_face_pipeline, object_store) as client:
        assert context_of(client).backfill.wait_idle(timeout=300)
        info = client.get(f"/v1/classes/{CLASS_ID}").json()
        assert info["models"] == [
            {
                "model": "dlib",
                "photos_done": len(CAST),
                "photos_total": len(CAST),
                "state": "ready",
            }
        ]
        photo = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
        reply = client.post(
            f"/v1/classes/{CLASS_ID}/recognise",
            files={"photo": ("bbt3.jpg", photo, "image/jpeg")},
        )
        assert reply.status_code == 200, reply.text
        faces = reply.json()["faces"]
        assert len(faces) == 5
        # Every face is now compared with both models, and reports the score it was decided on.
        assert all(set(face["similarities"]) == {"facenet", "dlib"} for face in faces)
        threshold = reply.json()["unknown_threshold"]
        for face in faces:
            assert face["known"] == (face["score"] >= threshold)
    listed = _dlib_keys(object_store)
    assert len(listed) == len(CAST)
    parsed = parse_listing(CLASS_ID, object_store.list(keys.STUDENT.prefix(class_id=CLASS_ID)))
    assert sorted(listed) == parsed.secondary
    after = GalleryCache(object_store).get(CLASS_ID)
    assert after.model_progress(DLIB) == (len(CAST), len(CAST))
    assert after.gallery.models == (FACENET, DLIB)
    # The head is trained on FaceNet's views alone: the back-fill does not make it stale.
    assert after.signature == before.signature


def test_back_fill_is_idempotent_and_skips_erased_photos(
    fast_face_pipeline: FacePipeline, object_store: ObjectStore, cast_photos: dict[str, bytes]
) -> None:
    facenet_only = fast_face_pipeline.with_config(
        dataclasses.replace(fast_face_pipeline.config, embedders=("facenet",))
    )
    with running_app(facenet_only, object_store) as client:
        client.post("/v1/classes", json={"id": CLASS_ID, "name": "P"})
        for name in ("penny", "raj"):
            client.post(
                f"/v1/classes/{CLASS_ID}/students",
                data={"student_id": name, "name": name},
                files={"photos": (f"{name}.png", cast_photos[name], "image/png")},
            )
    # A registration photo lost its image (e.g. removed by hand): that photo keeps FaceNet alone.
    (raj_photo,) = [
        k
        for k in object_store.list(keys.STUDENT.prefix(class_id=CLASS_ID, student_id="raj"))
        if k.endswith(".jpg")
    ]
    object_store.delete(raj_photo)
    with running_app(fast_face_pipeline, object_store) as client:
        backfill = context_of(client).backfill
        assert backfill.wait_idle(timeout=300)
        assert len(_dlib_keys(object_store)) == 1
        again = backfill.fill_class(CLASS_ID)
        assert (again.written, again.failed) == (0, 1)
        listing = object_store.list(keys.STUDENT.prefix(class_id=CLASS_ID))
        assert any("/penny/embeddings/dlib/" in k for k in listing)
        # Erasing the student removes the back-filled embeddings with everything else.
        assert client.delete(f"/v1/classes/{CLASS_ID}/students/penny").status_code == 204
        assert _dlib_keys(object_store) == []
