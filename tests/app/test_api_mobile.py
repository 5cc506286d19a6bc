"""The mobile client's two calls, end to end with the real models on real photos."""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.records import keys
from app.storage import DiskObjectStore, ObjectStore
from ml.annotate import KNOWN_COLOUR, TOO_SMALL_COLOUR, UNKNOWN_COLOUR
from ml.pipeline import FacePipeline
from tests.app.conftest import CAST, is_photo_embedding, running_app


@pytest.fixture(scope="module")
def mobile_store(tmp_path_factory: pytest.TempPathFactory) -> ObjectStore:
    return DiskObjectStore(tmp_path_factory.mktemp("mobile"))


@pytest.fixture(scope="module")
def mobile_client(
    cast_pipeline: FacePipeline, mobile_store: ObjectStore, cast_photos: dict[str, bytes]
) -> Iterator[TestClient]:
    """The cast registered through the mobile call, each from their first photo.

    The app runs at the operator threshold for such poor registration photos (see
    ``tests.conftest.CAST_UNKNOWN_THRESHOLD``)."""
    with running_app(cast_pipeline, mobile_store) as client:
        for name in CAST:
            response = client.post(
                "/register/register-student",
                files={"files": (f"{name}1.png", cast_photos[name], "image/png")},
                data={"student_name": name.title()},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["message"] == "Student registered"
            assert body["student_id"] == name
        yield client


def _decode_jpeg(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def _near(pixel: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(colour)).max() < 60)


def test_mark_detect_names_the_whole_cast(mobile_client: TestClient, groups_dir: Path) -> None:
    photo = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
    response = mobile_client.post("/mark/detect", files={"file": ("bbt3.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["names"]) == sorted(name.title() for name in CAST)
    assert len(body["faces"]) == 5
    annotated = _decode_jpeg(body["image"])
    original = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    assert annotated.shape == original.shape
    # Every face has a box in its colour: the middle of its left edge is green (known).
    for face in body["faces"]:
        x1, y1, _, y2 = (round(v) for v in face["box"])
        edge = annotated[(y1 + y2) // 2, max(x1, 0)]
        assert _near(edge, KNOWN_COLOUR if face["known"] else UNKNOWN_COLOUR), face


def test_unknown_faces_are_red_and_not_named(mobile_client: TestClient, groups_dir: Path) -> None:
    photo = (groups_dir / "face_recognition__two_people.jpg").read_bytes()
    response = mobile_client.post("/mark/detect", files={"file": ("two.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["names"] == []
    assert len(body["faces"]) == 2
    annotated = _decode_jpeg(body["image"])
    for face in body["faces"]:
        assert face["known"] is False and face["student_id"] is None
        x1, y1, _, y2 = (round(v) for v in face["box"])
        assert _near(annotated[(y1 + y2) // 2, max(x1, 0)], UNKNOWN_COLOUR)


def test_no_face_gives_empty_names_and_a_message(mobile_client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 200)).save(buffer, format="JPEG")
    response = mobile_client.post(
        "/mark/detect", files={"file": ("sky.jpg", buffer.getvalue(), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["names"] == []
    assert "no face" in body["message"]
    assert _decode_jpeg(body["image"]).shape == (240, 320, 3)


def test_registering_a_known_name_again_adds_photos(
    mobile_client: TestClient, mobile_store: ObjectStore, people_dir: Path
) -> None:
    extra = (people_dir / "face_api_js__sheldon" / "sheldon2.png").read_bytes()
    before = [
        k for k in mobile_store.list("classes/default/students/sheldon/") if is_photo_embedding(k)
    ]
    response = mobile_client.post(
        "/register/register-student",
        files={"files": ("sheldon2.png", extra, "image/png")},
        data={"student_name": "  sheldon "},  # same slug, other spelling: same student
    )
    assert response.status_code == 200, response.text
    assert response.json()["student_id"] == "sheldon"
    after = [
        k for k in mobile_store.list("classes/default/students/sheldon/") if is_photo_embedding(k)
    ]
    assert len(after) == len(before) + 1 and set(before) < set(after)
    student = mobile_client.get("/v1/classes/default/students/sheldon").json()
    assert student["name"] == "Sheldon"  # the first name is kept
    assert student["photo_count"] == len(after)


def test_registration_with_several_photos(mobile_client: TestClient, people_dir: Path) -> None:
    files = [
        ("files", (f"amy{i}.png", (people_dir / "face_api_js__amy" / f"amy{i}.png").read_bytes()))
        for i in (1, 2)
    ]
    response = mobile_client.post(
        "/register/register-student", files=files, data={"student_name": "Amy Farrah Fowler"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["student_id"] == "amy-farrah-fowler"
    assert body["photos_added"] == 2
    assert len(body["quality"]) == 2
    for report in body["quality"]:
        assert report["quality"]["face_size"] > 50
        assert 0 < report["quality"]["detection_score"] <= 1


def test_detect_before_any_registration_stores_only_its_audit_event(
    fast_face_pipeline: FacePipeline, tmp_path: Path, groups_dir: Path
) -> None:
    store = DiskObjectStore(tmp_path)
    photo = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
    with running_app(fast_face_pipeline, store) as client:
        response = client.post("/mark/detect", files={"file": ("g.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["names"] == [] and len(body["faces"]) == 5
    assert all(face["known"] is False for face in body["faces"])
    # Nothing but the call's event in the audit log (not even the class).
    [event] = store.list("")
    assert event.startswith(keys.AUDIT_PREFIX)


def test_big_photos_come_back_capped_and_small_faces_grey(
    mobile_client: TestClient,
    mobile_store: ObjectStore,
    cast_pipeline: FacePipeline,
    groups_dir: Path,
) -> None:
    """The annotated photo is shrunk to ``ROLLCALL_ANNOTATED_MAX_SIDE``; faces under the
    recognisable size come back as too small (not named, no score) in a grey box."""
    photo = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
    original = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    sizes = sorted(f.size for f in cast_pipeline.detect(original))
    limited = cast_pipeline.with_config(
        dataclasses.replace(cast_pipeline.config, min_recognisable_face=round(sum(sizes[1:3]) / 2))
    )
    with running_app(limited, mobile_store, annotated_max_side=300) as client:
        response = client.post("/mark/detect", files={"file": ("bbt3.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    small = [f for f in body["faces"] if f["too_small"]]
    assert len(body["faces"]) == 5 and len(small) == 2
    assert all(not f["known"] and f["score"] is None and f["student_id"] is None for f in small)
    assert len(body["names"]) == 3
    annotated = _decode_jpeg(body["image"])
    scale = 300 / max(original.shape[:2])
    assert max(annotated.shape[:2]) == 300
    for face in body["faces"]:
        x1, y1, _, y2 = (round(v * scale) for v in face["box"])
        colour = TOO_SMALL_COLOUR if face["too_small"] else KNOWN_COLOUR
        assert _near(annotated[(y1 + y2) // 2, max(x1, 0)], colour), face
