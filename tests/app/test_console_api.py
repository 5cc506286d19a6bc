"""The API the web console needs, on disk and on S3, with the real models on real photos: the
registration-photo check that stores nothing, thumbnails, face crops of session photos, sessions
with their counts, a student's attendance history; and how the console's files are served.

One class is enrolled per backend (module-scoped) and the tests run in file order on it; the
destructive one comes last.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageChops, ImageStat

from app.core import thumbnails
from app.storage import ObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import CAST, api_settings, running_app, trainer_of
from tests.conftest import CAST_UNKNOWN_THRESHOLD

CLASS_ID = "bbt"
CLASS = f"/v1/classes/{CLASS_ID}"


@dataclasses.dataclass
class Enrolled:
    client: TestClient
    store: ObjectStore
    enrolments: dict[str, dict[str, Any]]


@pytest.fixture(scope="module", params=["disk", "s3"])
def enrolled(
    request: pytest.FixtureRequest,
    module_store: Callable[[str], ObjectStore],
    fast_cast_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
) -> Iterator[Enrolled]:
    store = module_store(request.param)
    with running_app(fast_cast_pipeline, store) as client:
        assert client.post("/v1/classes", json={"id": CLASS_ID, "name": "BBT"}).status_code == 201
        enrolments = {}
        for name in CAST:
            response = client.post(
                f"{CLASS}/students",
                data={"student_id": name, "name": name.title()},
                files={"photos": (f"{name}1.png", cast_photos[name], "image/png")},
            )
            assert response.status_code == 201, response.text
            enrolments[name] = response.json()
        yield Enrolled(client, store, enrolments)


@pytest.fixture(scope="module")
def bbt3(groups_dir: Path) -> bytes:
    return (groups_dir / "face_api_js__bbt3.jpg").read_bytes()


def _jpeg(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- the registration check --------------------------------------------------------------------


def test_check_reports_quality_and_stores_nothing(enrolled: Enrolled, people_dir: Path) -> None:
    client, store = enrolled.client, enrolled.store

    def stored() -> list[str]:
        # Heads change in the background; everything else must stay exactly as it was.
        return [key for key in store.list("classes/") if "/head/" not in key]

    before = stored()
    sheldon2 = (people_dir / "face_api_js__sheldon" / "sheldon2.png").read_bytes()
    response = client.post(
        f"{CLASS}/students/check", files={"photo": ("sheldon2.png", sheldon2, "image/png")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    width, height = Image.open(io.BytesIO(sheldon2)).size
    assert (body["filename"], body["width"], body["height"]) == ("sheldon2.png", width, height)
    x1, y1, x2, y2 = body["box"]
    assert 0 <= x1 < x2 <= width + 1 and 0 <= y1 < y2 <= height + 1
    assert body["quality"]["face_size"] > 60 and body["quality"]["detection_score"] > 0.5
    # Another photo of an enrolled student, checked as a new student: a likely duplicate.
    assert [s["student_id"] for s in body["similar_students"]] == ["sheldon"]
    assert any("'sheldon'" in warning for warning in body["warnings"])
    # Checked for Sheldon himself, his own photos are no look-alike.
    response = client.post(
        f"{CLASS}/students/check",
        data={"student_id": "sheldon"},
        files={"photo": ("sheldon2.png", sheldon2, "image/png")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["similar_students"] == []
    assert stored() == before


def test_check_says_why_a_photo_is_refused(enrolled: Enrolled, bbt3: bytes) -> None:
    client = enrolled.client
    response = client.post(f"{CLASS}/students/check", files={"photo": ("g.jpg", bbt3)})
    assert response.status_code == 422
    assert "5 faces" in response.json()["detail"]
    blank = _png(Image.new("RGB", (200, 200), (128, 128, 128)))
    response = client.post(f"{CLASS}/students/check", files={"photo": ("blank.png", blank)})
    assert response.status_code == 422
    assert "no face" in response.json()["detail"]
    response = client.post(f"{CLASS}/students/check", files={"photo": ("x.jpg", b"not an image")})
    assert response.status_code == 422 and "not an image" in response.json()["detail"]
    response = client.post("/v1/classes/nope/students/check", files={"photo": ("g.jpg", bbt3)})
    assert response.status_code == 404
    response = client.post(
        f"{CLASS}/students/check", data={"student_id": "Bad Id"}, files={"photo": ("g.jpg", bbt3)}
    )
    assert response.status_code == 422


# --- thumbnails ----------------------------------------------------------------------------------


def test_thumbnails_are_small_jpegs_of_the_face(
    enrolled: Enrolled, cast_photos: dict[str, bytes]
) -> None:
    client = enrolled.client
    response = client.get(f"{CLASS}/students/raj/thumbnail.jpg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert max(_jpeg(response.content).size) <= thumbnails.THUMBNAIL_PX
    photo_id = enrolled.enrolments["raj"]["photos"][0]["photo_id"]
    per_photo = client.get(f"{CLASS}/students/raj/photos/{photo_id}/thumbnail.jpg")
    assert per_photo.status_code == 200 and per_photo.content == response.content
    assert "max-age" in per_photo.headers["cache-control"]

    # A big photo is shrunk to the thumbnail size, cut around the face (a square here).
    big = Image.open(io.BytesIO(cast_photos["leonard"])).convert("RGB").resize((900, 1200))
    canvas = Image.new("RGB", (2400, 1600), (250, 250, 250))
    canvas.paste(big, (1300, 200))
    jpeg = io.BytesIO()
    canvas.save(jpeg, format="JPEG", quality=92)
    response = client.post(
        f"{CLASS}/students",
        data={"student_id": "big-leonard", "name": "Big Leonard"},
        files={"photos": ("big.jpg", jpeg.getvalue(), "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    x1, y1, x2, y2 = response.json()["photos"][0]["box"]
    thumb = _jpeg(client.get(f"{CLASS}/students/big-leonard/thumbnail.jpg").content)
    assert max(thumb.size) == thumbnails.THUMBNAIL_PX
    expected = thumbnails.face_square((x1, y1, x2, y2), thumbnails.THUMBNAIL_CONTEXT, 2400, 1600)
    expected_ratio = (expected[2] - expected[0]) / (expected[3] - expected[1])
    assert abs(thumb.size[0] / thumb.size[1] - expected_ratio) < 0.05
    # The pixels of that square, shrunk: compare with the same cut made here.
    reference = canvas.crop(expected).resize(thumb.size).convert("L")
    difference = ImageChops.difference(thumb.convert("L"), reference)
    assert ImageStat.Stat(difference).mean[0] < 8
    assert (
        ImageStat.Stat(ImageChops.difference(thumb.convert("L"), reference.rotate(180))).mean[0]
        > 2 * ImageStat.Stat(difference).mean[0]
    )
    assert client.delete(f"{CLASS}/students/big-leonard").status_code == 204

    assert client.get(f"{CLASS}/students/raj/photos/nope/thumbnail.jpg").status_code == 404
    assert client.get(f"{CLASS}/students/nobody/thumbnail.jpg").status_code == 404
    assert client.get("/v1/classes/nope/students/raj/thumbnail.jpg").status_code == 404


# --- sessions, photos, history -------------------------------------------------------------------


def test_sessions_are_listed_with_counts(enrolled: Enrolled, bbt3: bytes) -> None:
    client = enrolled.client
    # "second" is held today, after the enrolment: its roster has everyone (absent). A session
    # dated before a student's enrolment lists them only if it saw them ("first").
    today = dt.date.today().isoformat()
    for session_id, day in (("first", "2024-01-08"), ("second", today)):
        response = client.post(
            f"{CLASS}/sessions", json={"id": session_id, "label": session_id.title(), "date": day}
        )
        assert response.status_code == 201, response.text
    upload = client.post(
        f"{CLASS}/sessions/first/photos", files={"photo": ("bbt3.jpg", bbt3, "image/jpeg")}
    )
    assert upload.status_code == 201, upload.text
    assert sorted(upload.json()["recorded"]) == sorted(CAST)
    assert len(upload.json()["face_urls"]) == len(upload.json()["faces"]) == 5
    listed = client.get(f"{CLASS}/sessions").json()
    assert [(s["id"], s["present_count"], s["photo_count"]) for s in listed] == [
        ("first", 5, 1),
        ("second", 0, 0),
    ]


def test_session_photo_and_face_crops(enrolled: Enrolled) -> None:
    client = enrolled.client
    session = client.get(f"{CLASS}/sessions/first").json()
    (photo_id,) = session["photo_ids"]
    response = client.get(f"{CLASS}/sessions/first/photos/{photo_id}")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert sorted(f["name"] for f in detail["faces"]) == sorted(n.title() for n in CAST)
    assert all(f["known"] for f in detail["faces"])
    assert detail["annotated_url"].endswith(f"/photos/{photo_id}/annotated.jpg")
    assert len(detail["face_urls"]) == 5
    for face, url in zip(detail["faces"], detail["face_urls"], strict=True):
        crop = client.get(url)
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        x1, y1, x2, y2 = face["box"]
        side = max(x2 - x1, y2 - y1) * thumbnails.FACE_CROP_CONTEXT
        # bbt3's faces are small: the crop is cut at full resolution, never enlarged.
        assert max(_jpeg(crop.content).size) <= min(round(side) + 2, thumbnails.FACE_CROP_PX)
    base = f"{CLASS}/sessions/first/photos"
    assert client.get(f"{base}/{photo_id}/faces/5.jpg").status_code == 404
    assert client.get(f"{base}/{photo_id}/faces/-1.jpg").status_code == 422
    assert client.get(f"{base}/{photo_id}/faces/x.jpg").status_code == 422
    assert client.get(f"{base}/nope/faces/0.jpg").status_code == 404
    assert client.get(f"{base}/nope").status_code == 404
    assert client.get(f"{CLASS}/sessions/nope/photos/{photo_id}").status_code == 404


def test_student_attendance_history(enrolled: Enrolled) -> None:
    client = enrolled.client
    response = client.get(f"{CLASS}/students/penny/attendance")
    assert response.status_code == 200, response.text
    history = response.json()
    assert (history["student_id"], history["name"]) == ("penny", "Penny")
    assert (history["present_count"], history["session_count"]) == (1, 2)
    first, second = history["sessions"]
    assert (first["session_id"], first["present"], first["date"]) == ("first", True, "2024-01-08")
    assert first["similarity"] >= CAST_UNKNOWN_THRESHOLD and first["recorded_at"]
    assert (second["session_id"], second["present"], second["recorded_at"]) == (
        "second",
        False,
        None,
    )
    assert client.get(f"{CLASS}/students/nobody/attendance").status_code == 404
    assert client.get("/v1/classes/nope/students/penny/attendance").status_code == 404


def test_a_deleted_student_is_unknown_on_old_photos(enrolled: Enrolled) -> None:
    client = enrolled.client
    (photo_id,) = client.get(f"{CLASS}/sessions/first").json()["photo_ids"]
    prefix = f"classes/{CLASS_ID}/sessions/first/photos/{photo_id}/"
    annotated_before = enrolled.store.get(prefix + "annotated.jpg")
    original_before = enrolled.store.get(prefix + "original.jpg")
    assert b'"howard"' in enrolled.store.get(prefix + "result.json")

    assert client.delete(f"{CLASS}/students/howard").status_code == 204
    # Erased from what is stored too, not only hidden by the API: the stored result no longer
    # names him and the annotated photo is drawn again (his face now labelled unknown, in red).
    assert b"howard" not in enrolled.store.get(prefix + "result.json")
    annotated_after = enrolled.store.get(prefix + "annotated.jpg")
    assert annotated_after != annotated_before
    assert enrolled.store.get(prefix + "original.jpg") == original_before
    reds = [_red_pixels(_jpeg(data).convert("RGB")) for data in (annotated_before, annotated_after)]
    assert reds[1] > reds[0] + 100
    faces = client.get(f"{CLASS}/sessions/first/photos/{photo_id}").json()["faces"]
    assert "howard" not in [f["student_id"] for f in faces]
    assert "howard" not in [f["candidate_id"] for f in faces]
    assert sum(1 for f in faces if not f["known"]) == 1
    listed = client.get(f"{CLASS}/sessions").json()
    assert [s["present_count"] for s in listed] == [4, 0]
    assert trainer_of(client).wait_idle(timeout=300)


def _red_pixels(image: Image.Image) -> int:
    """Pixels of the annotation's "unknown" red (220, 40, 40), give or take JPEG noise."""
    red = image.getchannel("R").point(lambda v: 255 if v > 180 else 0)
    green = image.getchannel("G").point(lambda v: 255 if v < 80 else 0)
    blue = image.getchannel("B").point(lambda v: 255 if v < 80 else 0)
    both = ImageChops.multiply(ImageChops.multiply(red, green), blue)
    return int(ImageStat.Stat(both).sum[0] / 255)


# --- the console's files -------------------------------------------------------------------------


def _app_client(**settings: Any) -> TestClient:
    """The app without its lifespan (no models): enough for the static console."""
    from app.main import create_app

    return TestClient(create_app(api_settings(**settings)), follow_redirects=False)


def test_console_is_served_from_its_folder_only() -> None:
    client = _app_client()
    for path in ("/", "/console"):
        response = client.get(path)
        assert response.status_code == 307 and response.headers["location"] == "/console/"
    index = client.get("/console/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert index.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="app.js">' in index.text
    for name, media_type in (("app.js", "text/javascript"), ("style.css", "text/css")):
        response = client.get(f"/console/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type)
    for path in ("/console/missing.js", "/console/..%2Fmain.py", "/console/%2e%2e%2fschemas.py"):
        assert client.get(path).status_code == 404, path
    assert "/console/" not in client.get("/openapi.json").json()["paths"]


def test_console_stays_open_when_keys_are_required() -> None:
    from app.settings import Settings

    if "api_keys" not in Settings.model_fields:
        pytest.skip("this version has no API keys (ROLLCALL_API_KEYS)")
    client = _app_client(api_keys="console-test-key-0123456789")
    assert client.get("/console/").status_code == 200
    assert client.get("/console/api.js").status_code == 200
    assert client.get("/").status_code == 307
    assert client.get("/v1/classes").status_code == 401


def test_console_modules_are_served_with_their_imports() -> None:
    """Every ES module of the console (app.js, views/, widgets/) is served as JavaScript with the
    console's headers, and every relative import in them names a served file: a module left out
    of the served set would stop the console with nothing but a console error in the browser."""
    from app.routers.console import CONSOLE_DIR

    client = _app_client()
    modules = sorted(CONSOLE_DIR.rglob("*.js"))
    names = {path.relative_to(CONSOLE_DIR).as_posix() for path in modules}
    assert {"app.js", "router.js", "views/register.js", "widgets/ids.js"} <= names
    imported: set[str] = set()
    for path in modules:
        name = path.relative_to(CONSOLE_DIR).as_posix()
        response = client.get(f"/console/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript"), name
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.text == path.read_text(encoding="utf-8")
        for specifier in re.findall(
            r'^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"', response.text, re.M
        ):
            assert specifier.startswith("./") or specifier.startswith("../"), (name, specifier)
            target = (path.parent / specifier).resolve()
            assert target.is_relative_to(CONSOLE_DIR), (name, specifier)
            imported.add(target.relative_to(CONSOLE_DIR).as_posix())
    assert imported <= names, imported - names
    # Every module but the entry is imported by another: no file is left behind unused.
    assert names - imported == {"app.js"}
    for outside in (
        "/console/views/",
        "/console/views",
        "/console/views/..%2Fapp.js",
        "/console/widgets/missing.js",
        "/console/views/%2e%2e/%2e%2e/main.py",
    ):
        assert client.get(outside).status_code == 404, outside
