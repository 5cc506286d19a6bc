"""Bad input gets a clear 4xx with a reason, never a 500, and changes nothing that is stored.

Each case runs against a store that already holds a class, a student and a session (on disk and on
S3); the complete list of stored keys must be the same before and after the refused request.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.storage import ObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import running_app

MAX_UPLOAD = 2_000_000
MAX_PHOTOS = 3


@dataclass
class Upload:
    name: str
    data: bytes
    content_type: str = "image/jpeg"


@dataclass
class Case:
    method: str
    url: str
    status: int
    reason: str
    """Part of the ``detail`` the client gets (case-insensitive)."""
    files: list[tuple[str, Upload]] = field(default_factory=list)
    data: dict[str, str] | None = None
    json: dict[str, Any] | None = None


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def samples(people_dir: Path, groups_dir: Path) -> dict[str, Upload]:
    group = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
    return {
        "face": Upload(
            "sheldon1.png", (people_dir / "face_api_js__sheldon/sheldon1.png").read_bytes()
        ),
        "other_face": Upload("raj1.png", (people_dir / "face_api_js__raj/raj1.png").read_bytes()),
        "two_faces": Upload(
            "two.jpg", (groups_dir / "face_recognition__two_people.jpg").read_bytes()
        ),
        "not_image": Upload("notes.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n"),
        "empty": Upload("empty.jpg", b""),
        "truncated": Upload("cut.jpg", group[: len(group) // 2]),
        # 8000 x 6250 = 50 megapixels in a few kilobytes of PNG.
        "bomb": Upload("bomb.png", _png(Image.new("1", (8000, 6250))), "image/png"),
        "too_big": Upload("huge.jpg", b"\xff\xd8\xff\xe0" + bytes(MAX_UPLOAD + 10)),
        "no_face": Upload("wall.png", _png(Image.new("RGB", (400, 300), (180, 170, 150)))),
    }


@dataclass
class Seeded:
    client: TestClient
    store: ObjectStore


@pytest.fixture(scope="module", params=["disk", "s3"])
def seeded(
    request: pytest.FixtureRequest,
    module_store: Callable[[str], ObjectStore],
    fast_face_pipeline: FacePipeline,
    samples: dict[str, Upload],
) -> Iterator[Seeded]:
    store = module_store(request.param)
    with running_app(
        fast_face_pipeline,
        store,
        max_upload_bytes=MAX_UPLOAD,
        max_photos_per_request=MAX_PHOTOS,
    ) as client:
        assert client.post("/v1/classes", json={"id": "room", "name": "Room"}).status_code == 201
        face = samples["face"]
        response = client.post(
            "/v1/classes/room/students",
            data={"student_id": "sheldon", "name": "Sheldon"},
            files={"photos": (face.name, face.data, face.content_type)},
        )
        assert response.status_code == 201, response.text
        response = client.post("/v1/classes/room/sessions", json={"id": "monday", "label": "Mon"})
        assert response.status_code == 201, response.text
        yield Seeded(client, store)


def _register(*names: str, student_id: str = "newbie", class_id: str = "room") -> dict[str, Any]:
    return {
        "method": "POST",
        "url": f"/v1/classes/{class_id}/students",
        "data": {"student_id": student_id, "name": "New Student"},
        "files": [("photos", name) for name in names],
    }


def _legacy(*names: str, student_name: str = "Newbie") -> dict[str, Any]:
    return {
        "method": "POST",
        "url": "/register/register-student",
        "data": {"student_name": student_name},
        "files": [("files", name) for name in names],
    }


def _one(url: str, field_name: str, name: str) -> dict[str, Any]:
    return {"method": "POST", "url": url, "files": [(field_name, name)]}


SESSION_PHOTO = "/v1/classes/room/sessions/monday/photos"

CASES: dict[str, tuple[dict[str, Any], int, str]] = {
    # registration through /v1
    "register: not an image": (_register("not_image"), 422, "not an image"),
    "register: empty file": (_register("empty"), 422, "empty"),
    "register: truncated jpeg": (_register("truncated"), 422, "truncated"),
    "register: 50 MP image": (_register("bomb"), 413, "megapixels"),
    "register: upload too large": (_register("too_big"), 413, "larger than"),
    "register: no face": (_register("no_face"), 422, "no face"),
    "register: two faces": (_register("two_faces"), 422, "2 faces"),
    "register: good then bad photo": (_register("other_face", "not_image"), 422, "photo 2"),
    "register: good then two faces": (_register("other_face", "two_faces"), 422, "photo 2"),
    "register: too many photos": (_register(*["other_face"] * (MAX_PHOTOS + 1)), 422, "at most"),
    "register: unknown class": (_register("other_face", class_id="nowhere"), 404, "nowhere"),
    "register: bad student slug": (_register("other_face", student_id="Bad Id!"), 422, ""),
    "register: bad class slug": (_register("other_face", class_id="Room"), 422, ""),
    "register: id taken": (_register("other_face", student_id="sheldon"), 409, "already exists"),
    "register: no photo": ({**_register(), "files": []}, 422, ""),
    "add photos: unknown student": (
        _one("/v1/classes/room/students/nobody/photos", "photos", "other_face"),
        404,
        "nobody",
    ),
    "add photos: two faces": (
        _one("/v1/classes/room/students/sheldon/photos", "photos", "two_faces"),
        422,
        "2 faces",
    ),
    # the mobile client's registration
    "mobile register: empty name": (_legacy("other_face", student_name="   "), 422, ""),
    "mobile register: not an image": (_legacy("not_image"), 422, "not an image"),
    "mobile register: no face": (_legacy("no_face"), 422, "no face"),
    "mobile register: two faces": (_legacy("two_faces"), 422, "2 faces"),
    "mobile register: truncated": (_legacy("truncated"), 422, "truncated"),
    "mobile detect: not an image": (_one("/mark/detect", "file", "not_image"), 422, "not an image"),
    "mobile detect: empty": (_one("/mark/detect", "file", "empty"), 422, "empty"),
    "mobile detect: 50 MP": (_one("/mark/detect", "file", "bomb"), 413, "megapixels"),
    # attendance
    "session photo: not an image": (_one(SESSION_PHOTO, "photo", "not_image"), 422, "not an image"),
    "session photo: truncated": (_one(SESSION_PHOTO, "photo", "truncated"), 422, "truncated"),
    "session photo: too large": (_one(SESSION_PHOTO, "photo", "too_big"), 413, "larger than"),
    "session photo: unknown session": (
        _one("/v1/classes/room/sessions/tuesday/photos", "photo", "other_face"),
        404,
        "tuesday",
    ),
    "recognise: 50 MP": (_one("/v1/classes/room/recognise", "photo", "bomb"), 413, "megapixels"),
    "recognise: unknown class": (
        _one("/v1/classes/nowhere/recognise", "photo", "other_face"),
        404,
        "nowhere",
    ),
    # JSON endpoints
    "class: bad slug": (
        {"method": "POST", "url": "/v1/classes", "json": {"id": "-x", "name": "X"}},
        422,
        "",
    ),
    "class: empty name": (
        {"method": "POST", "url": "/v1/classes", "json": {"id": "x", "name": " "}},
        422,
        "",
    ),
    "class: exists": (
        {"method": "POST", "url": "/v1/classes", "json": {"id": "room", "name": "R"}},
        409,
        "already exists",
    ),
    "session: exists": (
        {
            "method": "POST",
            "url": "/v1/classes/room/sessions",
            "json": {"id": "monday", "label": "x"},
        },
        409,
        "already exists",
    ),
    "session: bad date": (
        {
            "method": "POST",
            "url": "/v1/classes/room/sessions",
            "json": {"label": "x", "date": "soon"},
        },
        422,
        "",
    ),
    "get: unknown class": ({"method": "GET", "url": "/v1/classes/nowhere"}, 404, "nowhere"),
    "get: unknown student": ({"method": "GET", "url": "/v1/classes/room/students/x"}, 404, ""),
    "get: unknown photo": (
        {"method": "GET", "url": "/v1/classes/room/sessions/monday/photos/x/annotated.jpg"},
        404,
        "",
    ),
    "delete: unknown student": (
        {"method": "DELETE", "url": "/v1/classes/room/students/x"},
        404,
        "",
    ),
}


@pytest.mark.parametrize("case_name", list(CASES))
def test_bad_input_is_refused_and_changes_nothing(
    seeded: Seeded, samples: dict[str, Upload], case_name: str
) -> None:
    request, status, reason = CASES[case_name]
    files = [
        (field_name, (samples[key].name, samples[key].data, samples[key].content_type))
        for field_name, key in request.get("files", [])
    ]
    before = seeded.store.list("")
    response = seeded.client.request(
        request["method"],
        request["url"],
        data=request.get("data"),
        json=request.get("json"),
        files=files or None,
    )
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail, "a refusal must say why, in words"
    if reason:
        assert reason.lower() in str(detail).lower()
    assert seeded.store.list("") == before


def test_request_body_over_the_total_limit_is_refused(
    seeded: Seeded, samples: dict[str, Upload]
) -> None:
    # Every file is under the per-file limit, but together they exceed the request limit.
    part = samples["too_big"].data[: MAX_UPLOAD - 1000]
    files = [("photos", (f"p{i}.jpg", part, "image/jpeg")) for i in range(MAX_PHOTOS + 1)]
    before = seeded.store.list("")
    response = seeded.client.post(
        "/v1/classes/room/students",
        data={"student_id": "bulk", "name": "Bulk"},
        files=files,
    )
    assert response.status_code == 413
    assert seeded.store.list("") == before


def test_the_good_photo_still_works_afterwards(seeded: Seeded, samples: dict[str, Upload]) -> None:
    """The refusals above did not hide a service that refuses everything."""
    face = samples["other_face"]
    response = seeded.client.post(
        "/v1/classes/room/students",
        data={"student_id": "raj", "name": "Raj"},
        files={"photos": (face.name, face.data, face.content_type)},
    )
    assert response.status_code == 201, response.text
    students = seeded.client.get("/v1/classes/room/students").json()
    assert [s["id"] for s in students] == ["raj", "sheldon"]
