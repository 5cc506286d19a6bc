"""CORS (closed unless configured) and upload limits on every upload route, the mobile client's
included: bytes per file (413), pixels per image (413), photos per request (422)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

from app.storage import DiskObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import api_settings, running_app, trainer_of

# CORS checked in Chromium, limits with real photos
pytestmark = pytest.mark.slow


CONSOLE_ORIGIN = "https://console.school.example"
KEY = "cors-test-key-0123456789"

# =============================================================================================
# CORS
# =============================================================================================


def _preflight(client: TestClient, origin: str, path: str = "/v1/classes") -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )


def test_cors_is_closed_by_default(fast_face_pipeline: FacePipeline, tmp_path: Any) -> None:
    with running_app(fast_face_pipeline, DiskObjectStore(tmp_path)) as client:
        for origin in (CONSOLE_ORIGIN, "https://evil.example", "null"):
            response = _preflight(client, origin)
            assert response.status_code >= 400
            assert "access-control-allow-origin" not in response.headers
            response = client.get("/v1/classes", headers={"Origin": origin})
            assert response.status_code == 200
            assert "access-control-allow-origin" not in response.headers


def test_cors_opens_to_configured_origins_only(
    fast_face_pipeline: FacePipeline, tmp_path: Any
) -> None:
    with running_app(
        fast_face_pipeline,
        DiskObjectStore(tmp_path),
        cors_origins=f"{CONSOLE_ORIGIN}, http://localhost:5173",
        api_keys=KEY,
    ) as client:
        # The browser's preflight carries no key: it is answered before authentication.
        response = _preflight(client, CONSOLE_ORIGIN)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
        assert "x-api-key" in response.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in response.headers
        response = _preflight(client, "https://evil.example")
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers
        # Real calls: allowed origin gets the header, on success and on 401 alike.
        ok = client.get("/v1/classes", headers={"Origin": CONSOLE_ORIGIN, "X-API-Key": KEY})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
        refused = client.get("/v1/classes", headers={"Origin": CONSOLE_ORIGIN})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
        other = client.get(
            "/v1/classes", headers={"Origin": "https://evil.example", "X-API-Key": KEY}
        )
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    "origins", ["https://x.example/path", "ftp://x.example", "x.example", "https://x.example/"]
)
def test_malformed_origins_are_refused_at_start_up(origins: str) -> None:
    with pytest.raises(ValidationError, match="ROLLCALL_CORS_ORIGINS"):
        api_settings(cors_origins=origins)


def test_origin_list_parsing() -> None:
    settings = api_settings(cors_origins=" https://a.example:8443 ,http://[::1]:8000 *")
    assert settings.cors_origins == ("https://a.example:8443", "http://[::1]:8000", "*")
    assert api_settings().cors_origins == ()


# =============================================================================================
# Upload limits on every upload route
# =============================================================================================

MAX_UPLOAD = 200_000
MAX_PIXELS = 1_000_000
MAX_PHOTOS = 2


@dataclass
class Limited:
    client: TestClient
    store: DiskObjectStore
    face: bytes


@pytest.fixture(scope="module")
def limited(
    fast_face_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Limited]:
    store = DiskObjectStore(tmp_path_factory.mktemp("limits"))
    with running_app(
        fast_face_pipeline,
        store,
        max_upload_bytes=MAX_UPLOAD,
        max_image_pixels=MAX_PIXELS,
        max_photos_per_request=MAX_PHOTOS,
    ) as client:
        assert client.post("/v1/classes", json={"id": "room", "name": "R"}).status_code == 201
        response = client.post(
            "/v1/classes/room/students",
            data={"student_id": "sheldon", "name": "Sheldon"},
            files={"photos": ("s.png", cast_photos["sheldon"], "image/png")},
        )
        assert response.status_code == 201, response.text
        assert client.post("/v1/classes/room/sessions", json={"id": "mon", "label": "M"}).is_success
        # The mobile client's class exists too, so that its refusals are checked on real data.
        response = client.post(
            "/register/register-student",
            data={"student_name": "Penny"},
            files={"files": ("p.png", cast_photos["penny"], "image/png")},
        )
        assert response.status_code == 200, response.text
        trainer_of(client).wait_idle(timeout=120)
        yield Limited(client, store, cast_photos["raj"])


def _too_many_bytes() -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes(MAX_UPLOAD)


def _too_many_pixels() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (1250, 1000)).save(buffer, format="PNG")  # 1.25 MP in a few kB
    assert len(buffer.getvalue()) < MAX_UPLOAD
    return buffer.getvalue()


# (url, file field, extra form fields, accepts several files)
UPLOAD_ROUTES: dict[str, tuple[str, str, dict[str, str], bool]] = {
    "v1 enrol": ("/v1/classes/room/students", "photos", {"student_id": "new", "name": "N"}, True),
    "v1 add photos": ("/v1/classes/room/students/sheldon/photos", "photos", {}, True),
    "v1 session photo": ("/v1/classes/room/sessions/mon/photos", "photo", {}, False),
    "v1 recognise": ("/v1/classes/room/recognise", "photo", {}, False),
    "mobile register": ("/register/register-student", "files", {"student_name": "Raj"}, True),
    "mobile detect": ("/mark/detect", "file", {}, False),
}

LIMITS: dict[str, tuple[int, str]] = {
    "bytes": (413, "larger than 0.2 MB"),
    "pixels": (413, "the limit is 1.0 megapixels"),
    "photos": (422, f"at most {MAX_PHOTOS} per request"),
}


CASES = [
    (route, limit)
    for route, (_, _, _, several) in UPLOAD_ROUTES.items()
    for limit in LIMITS
    if several or limit != "photos"  # a one-photo route has no photo count to exceed
]


@pytest.mark.parametrize(("route", "limit"), CASES)
def test_upload_limits(limited: Limited, route: str, limit: str) -> None:
    url, field, form, _ = UPLOAD_ROUTES[route]
    if limit == "bytes":
        files = [(field, ("big.jpg", _too_many_bytes(), "image/jpeg"))]
    elif limit == "pixels":
        files = [(field, ("wide.png", _too_many_pixels(), "image/png"))]
    else:
        files = [(field, (f"{i}.png", limited.face, "image/png")) for i in range(MAX_PHOTOS + 1)]
    status, reason = LIMITS[limit]
    before = limited.store.list("")
    response = limited.client.post(url, data=form, files=files)
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]
    assert limited.store.list("") == before


def test_single_photo_routes_use_one_photo(limited: Limited) -> None:
    """Two files where one is expected: one is used, not both (and nothing fails)."""
    files = [("photo", (f"{i}.png", limited.face, "image/png")) for i in range(2)]
    response = limited.client.post("/v1/classes/room/recognise", files=files)
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == 1


def test_limits_at_the_edge_are_accepted(limited: Limited, cast_photos: dict[str, bytes]) -> None:
    """Exactly the maximum number of photos, each under the byte and pixel limits: enrolled."""
    files = [("photos", (f"{name}.png", cast_photos[name], "image/png")) for name in ("raj", "raj")]
    response = limited.client.post(
        "/v1/classes/room/students", data={"student_id": "raj", "name": "Raj"}, files=files
    )
    assert response.status_code == 201, response.text
    assert response.json()["student"]["photo_count"] == MAX_PHOTOS
