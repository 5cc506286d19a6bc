"""Hostile and broken input, end to end: every case gets a 4xx with a reason or the correct answer;
never a 500, never a partially written student, never a file outside the data folder.

Files are generated here from real photos (``faces/people``): broken and disguised files,
decompression bombs, unusual formats that must still be recognised, the 8 EXIF orientations,
path traversal and unicode in ids, names and file names, oversized form fields, and a mosaic of
two thousand faces. Test ids name the category (the module docstring of each group says which).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from app.core.images import decode_image
from app.storage import DiskObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import running_app, trainer_of

# every hostile file through the decoder and the API, decompression bombs included
pytestmark = pytest.mark.slow


logger = logging.getLogger(__name__)

MAX_UPLOAD = 6_000_000
MAX_PIXELS = 20_000_000
MAX_FACES = 100
PROBE_SIDE = 640


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _photo(path: Path) -> Image.Image:
    image = Image.open(path).convert("RGB")
    image.thumbnail((PROBE_SIDE, PROBE_SIDE))
    return image


@dataclass
class Room:
    client: TestClient
    store: DiskObjectStore
    root: Path
    """The data folder; it is alone in its parent, so anything written beside it is a escape."""
    matt: Image.Image
    """Another photo of the enrolled student ``matt`` (the probe)."""

    def snapshot(self) -> list[str]:
        # Head trainings queued by earlier tests write in the background: let them finish first.
        trainer_of(self.client).wait_idle(timeout=120)
        return self.store.list("")

    def nothing_outside(self) -> None:
        assert [p.name for p in self.root.parent.iterdir()] == [self.root.name]
        for path in self.root.rglob("*"):
            assert path.resolve().is_relative_to(self.root.resolve())


@pytest.fixture(scope="module")
def room(
    fast_face_pipeline: FacePipeline,
    people_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Room]:
    """Class ``room`` with two students, ``matt`` and ``leo``, and a session ``monday``."""
    root = tmp_path_factory.mktemp("hostile") / "data"
    store = DiskObjectStore(root)
    with running_app(
        fast_face_pipeline,
        store,
        max_upload_bytes=MAX_UPLOAD,
        max_image_pixels=MAX_PIXELS,
        max_photos_per_request=3,
        max_faces_per_photo=MAX_FACES,
    ) as client:
        assert client.post("/v1/classes", json={"id": "room", "name": "Room"}).status_code == 201
        for student, path in (
            ("matt", "deepface__Matt_Damon/img29.jpg"),
            ("leo", "deepface__Leonardo_DiCaprio/img34.jpg"),
        ):
            photo = _encode(_photo(people_dir / path), "JPEG", quality=92)
            response = client.post(
                "/v1/classes/room/students",
                data={"student_id": student, "name": student.title()},
                files={"photos": (f"{student}.jpg", photo, "image/jpeg")},
            )
            assert response.status_code == 201, response.text
        response = client.post("/v1/classes/room/sessions", json={"id": "monday", "label": "Mon"})
        assert response.status_code == 201
        yield Room(client, store, root, _photo(people_dir / "deepface__Matt_Damon" / "img30.jpg"))


# =============================================================================================
# Helpers: the four upload routes, each checked for "4xx with a reason, nothing changed"
# =============================================================================================

Route = Callable[[TestClient, str, bytes], Any]


def _v1_register(client: TestClient, filename: str, data: bytes) -> Any:
    return client.post(
        "/v1/classes/room/students",
        data={"student_id": "newbie", "name": "Newbie"},
        files={"photos": (filename, data, "image/jpeg")},
    )


def _mobile_register(client: TestClient, filename: str, data: bytes) -> Any:
    return client.post(
        "/register/register-student",
        data={"student_name": "Newbie"},
        files={"files": (filename, data, "image/jpeg")},
    )


def _session_photo(client: TestClient, filename: str, data: bytes) -> Any:
    return client.post(
        "/v1/classes/room/sessions/monday/photos", files={"photo": (filename, data, "image/jpeg")}
    )


def _mobile_detect(client: TestClient, filename: str, data: bytes) -> Any:
    return client.post("/mark/detect", files={"file": (filename, data, "image/jpeg")})


def _recognise(client: TestClient, filename: str, data: bytes) -> Any:
    return client.post(
        "/v1/classes/room/recognise", files={"photo": (filename, data, "image/jpeg")}
    )


ROUTES: dict[str, Route] = {
    "v1 register": _v1_register,
    "mobile register": _mobile_register,
    "session photo": _session_photo,
    "mobile detect": _mobile_detect,
}


def _refused(
    room: Room, route: Route, filename: str, data: bytes, status: int, reason: str
) -> None:
    before = room.snapshot()
    response = route(room.client, filename, data)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert reason.lower() in str(detail).lower(), detail
    assert room.snapshot() == before
    room.nothing_outside()


# =============================================================================================
# Broken and disguised files: 422 with a reason on every upload route
# =============================================================================================


def _truncated_png(room: Room) -> bytes:
    data = _encode(room.matt, "PNG")
    return data[: len(data) // 2]


def _corrupt_png(room: Room) -> bytes:
    # Flip bytes inside the compressed pixel data: the zlib stream or the CRC breaks.
    data = bytearray(_encode(room.matt, "PNG"))
    start = data.index(b"IDAT") + 200
    data[start : start + 64] = bytes(64)
    return bytes(data)


def _jpeg_header_only(room: Room) -> bytes:
    data = _encode(room.matt, "JPEG")
    return data[: data.index(b"\xff\xda")]  # everything up to the start of the scan


BROKEN: dict[str, tuple[str, Callable[[Room], bytes], str]] = {
    "html named .jpg": (
        "photo.jpg",
        lambda _: b"<!doctype html><script>1</script>",
        "not an image",
    ),
    "ELF binary named .png": (
        "face.png",
        lambda _: b"\x7fELF\x02\x01\x01" + bytes(200),
        "not an image",
    ),
    "zip named .jpg": ("face.jpg", lambda _: b"PK\x03\x04" + bytes(100), "not an image"),
    "zero bytes": ("empty.jpg", lambda _: b"", "empty"),
    "truncated PNG": ("cut.png", _truncated_png, "truncated"),
    "corrupt PNG data": ("bad.png", _corrupt_png, "corrupt"),
    "JPEG without scan data": ("head.jpg", _jpeg_header_only, "truncated"),
}


@pytest.mark.parametrize("route_name", list(ROUTES))
@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_file_is_refused(room: Room, case: str, route_name: str) -> None:
    filename, build, reason = BROKEN[case]
    _refused(room, ROUTES[route_name], filename, build(room), 422, reason)


def test_corrupt_bytes_mid_jpeg_give_a_4xx_or_a_correct_answer(room: Room) -> None:
    """JPEG decoders conceal damaged scan data; the answer is then about the pixels decoded."""
    data = bytearray(_encode(room.matt, "JPEG", quality=90))
    scan = data.index(b"\xff\xda") + 20
    middle = scan + (len(data) - scan) // 2
    data[middle : middle + 400] = bytes(range(256)) + bytes(144)
    for route in (_recognise, _v1_register):
        before = room.snapshot()
        response = route(room.client, "damaged.jpg", bytes(data))
        assert response.status_code in (200, 201, 422), response.text
        if response.status_code == 422:
            assert response.json()["detail"]
            assert room.snapshot() == before
        elif route is _recognise:
            assert response.json()["names"] in ([], ["Matt"])
        else:
            # Enrolled completely: the student, the photo and its embedding.
            assert room.client.get("/v1/classes/room/students/newbie").json()["photo_count"] == 1
            assert room.client.delete("/v1/classes/room/students/newbie").status_code == 204


# =============================================================================================
# Decompression bombs: huge declared dimensions, refused (413) from the header
# =============================================================================================


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_declaring(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # A real deflate stream of zeros: 1 MB of it decompresses to what the header promises, and more.
    idat = zlib.compress(bytes(1_000_000), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _jpeg_declaring(room: Room, width: int, height: int) -> bytes:
    data = bytearray(_encode(room.matt, "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif_declaring(room: Room, width: int, height: int) -> bytes:
    data = bytearray(_encode(room.matt.convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # the logical screen
    return bytes(data)


BOMBS: dict[str, Callable[[Room], bytes]] = {
    "PNG 100000x100000": lambda _: _png_declaring(100_000, 100_000),
    "PNG 2^31-1 x 2^31-1": lambda _: _png_declaring(2**31 - 1, 2**31 - 1),
    "JPEG 65000x65000": lambda room: _jpeg_declaring(room, 65_000, 65_000),
    "GIF 65535x65535": lambda room: _gif_declaring(room, 65_535, 65_535),
}


@pytest.mark.parametrize("route_name", list(ROUTES))
@pytest.mark.parametrize("case", list(BOMBS))
def test_decompression_bomb_is_refused_from_its_header(
    room: Room, case: str, route_name: str
) -> None:
    data = BOMBS[case](room)
    assert len(data) < MAX_UPLOAD
    _refused(room, ROUTES[route_name], "bomb.png", data, 413, "megapixels")


# =============================================================================================
# Unusual but valid formats: the correct answer (the probe is recognised as matt)
# =============================================================================================


def _rgba_cut_out(image: Image.Image) -> bytes:
    """The face opaque in the middle; a transparent border hiding random colours."""
    rgba = np.dstack([np.asarray(image), np.full(image.size[::-1], 255, np.uint8)])
    height, width = rgba.shape[:2]
    border_y, border_x = height // 8, width // 8
    noise = np.random.default_rng(0).integers(0, 256, rgba.shape, dtype=np.uint8)
    mask = np.ones((height, width), bool)
    mask[border_y:-border_y, border_x:-border_x] = False
    rgba[mask] = noise[mask]
    rgba[mask, 3] = 0
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def _grey16(image: Image.Image) -> bytes:
    grey = np.asarray(image.convert("L")).astype(np.uint16) * 257
    return _encode(Image.fromarray(grey), "PNG")


def _rgb48(image: Image.Image) -> bytes:
    bgr16 = np.asarray(image)[:, :, ::-1].astype(np.uint16) * 257
    ok, encoded = cv2.imencode(".png", bgr16)
    assert ok
    return encoded.tobytes()


def _animated(image: Image.Image, other: Image.Image) -> bytes:
    return _encode(image, "GIF", save_all=True, append_images=[other], duration=500, loop=0)


FORMATS: dict[str, tuple[str, Callable[[Image.Image], bytes]]] = {
    "baseline JPEG": ("p.jpg", lambda im: _encode(im, "JPEG", quality=90)),
    "progressive JPEG": ("p.jpg", lambda im: _encode(im, "JPEG", progressive=True)),
    "grey JPEG": ("p.jpg", lambda im: _encode(im.convert("L"), "JPEG")),
    "CMYK JPEG": ("p.jpg", lambda im: _encode(im.convert("CMYK"), "JPEG", quality=95)),
    "16-bit grey PNG": ("p.png", _grey16),
    "48-bit colour PNG": ("p.png", _rgb48),
    "RGBA PNG, transparent border": ("p.png", _rgba_cut_out),
    "palette PNG": ("p.png", lambda im: _encode(im.quantize(256), "PNG")),
    "animated GIF (first frame)": (
        "p.gif",
        lambda im: _animated(im, Image.new("RGB", im.size, (30, 200, 30))),
    ),
    "WebP named .jpg": ("p.jpg", lambda im: _encode(im, "WEBP", quality=90)),
    "TIFF": ("p.tif", lambda im: _encode(im, "TIFF")),
}


@pytest.mark.parametrize("case", list(FORMATS))
def test_unusual_format_is_recognised(room: Room, case: str) -> None:
    filename, build = FORMATS[case]
    data = build(room.matt)
    decoded = decode_image(data, max_pixels=MAX_PIXELS)
    assert decoded.shape == (room.matt.height, room.matt.width, 3)
    # The pixels are the photo (not white, black or noise): close to the original in grey.
    grey = np.asarray(room.matt.convert("L"), dtype=float)
    decoded_grey = np.asarray(Image.fromarray(decoded).convert("L"), dtype=float)
    height, width = grey.shape
    inner = (slice(height // 8, -height // 8), slice(width // 8, -width // 8))
    assert np.abs(grey[inner] - decoded_grey[inner]).mean() < 12
    response = _recognise(room.client, filename, data)
    assert response.status_code == 200, response.text
    assert response.json()["names"] == ["Matt"]


def test_animated_gif_registers_its_first_frame(room: Room, people_dir: Path) -> None:
    leo = _photo(people_dir / "deepface__Leonardo_DiCaprio" / "img35.jpg")
    first_matt = _animated(room.matt, leo)
    response = _v1_register(room.client, "anim.gif", first_matt)
    assert response.status_code == 201, response.text
    # The face registered is matt's (the first frame), not leo's (the second).
    similar = {s["student_id"] for s in response.json()["similar_students"]}
    assert similar == {"matt"}
    assert room.client.delete("/v1/classes/room/students/newbie").status_code == 204


# =============================================================================================
# EXIF orientation: the 8 orientations of one photo are one photo
# =============================================================================================

# What a viewer does for each EXIF orientation (ImageOps.exif_transpose); the stored pixels are
# the inverse transform of the photo, so that every file displays the same upright photo.
_DISPLAY = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}


def _oriented(image: Image.Image, orientation: int) -> bytes:
    stored = image
    if orientation != 1:
        display = _DISPLAY[orientation]
        stored = image.transpose(_INVERSE.get(display, display))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(stored, "JPEG", quality=95, exif=exif)
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert shown.size == image.size  # the file displays upright, whatever its pixels
    return data


def test_the_eight_exif_orientations_give_the_same_answer(room: Room) -> None:
    similarities = []
    boxes = []
    upright = np.asarray(room.matt, dtype=float)
    for orientation in range(1, 9):
        data = _oriented(room.matt, orientation)
        decoded = decode_image(data, max_pixels=MAX_PIXELS).astype(float)
        assert decoded.shape == upright.shape
        assert np.abs(decoded - upright).mean() < 3, orientation
        response = _recognise(room.client, f"o{orientation}.jpg", data)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["names"] == ["Matt"], orientation
        similarities.append(body["faces"][0]["similarity"])
        boxes.append(body["faces"][0]["box"])
    assert max(similarities) - min(similarities) < 0.02, similarities
    assert np.ptp(np.array(boxes), axis=0).max() < 6, boxes


def test_registration_from_any_orientation_finds_the_same_face(room: Room) -> None:
    boxes = []
    for orientation in (1, 3, 6, 8):
        before = room.snapshot()
        response = _v1_register(
            room.client, f"o{orientation}.jpg", _oriented(room.matt, orientation)
        )
        assert response.status_code == 201, response.text
        body = response.json()
        boxes.append(body["photos"][0]["box"])
        assert {s["student_id"] for s in body["similar_students"]} == {"matt"}
        assert room.client.delete("/v1/classes/room/students/newbie").status_code == 204
        # Everything of the student is gone again (the head is retrained, so its version moves;
        # the audit log has the enrolment and the erasure).
        assert _without_head(room.snapshot()) == _without_head(before)
    assert np.ptp(np.array(boxes), axis=0).max() < 6, boxes


def _without_head(keys: list[str]) -> list[str]:
    return [key for key in keys if "/head/" not in key and not key.startswith("audit/")]


# =============================================================================================
# Path traversal and unicode in ids, names and file names
# =============================================================================================

HOSTILE_IDS = [
    "../../etc/passwd",
    "..",
    "/etc/passwd",
    "..\\..\\windows",
    "a\x00b",
    "room\n",
    "Room",
    "ünïcödé",
    "\u202eevil",
    "😀",
    "a" * 65,
    # An empty student_id is no id at all: the id is made from the name (docs/api.md).
]


@pytest.mark.parametrize("bad_id", HOSTILE_IDS, ids=[repr(i)[:24] for i in HOSTILE_IDS])
def test_hostile_ids_are_refused(room: Room, bad_id: str) -> None:
    """Class, student and session ids in bodies and forms: 422 (or 404 for a path), never stored."""
    photo = _encode(room.matt, "JPEG")
    before = room.snapshot()
    responses = [
        room.client.post("/v1/classes", json={"id": bad_id, "name": "X"}),
        room.client.post("/v1/classes/room/sessions", json={"id": bad_id, "label": "X"}),
        room.client.post(
            "/v1/classes/room/students",
            data={"student_id": bad_id, "name": "X"},
            files={"photos": ("p.jpg", photo, "image/jpeg")},
        ),
    ]
    for response in responses:
        assert response.status_code == 422, response.text
        assert response.json()["detail"]
    assert room.snapshot() == before
    room.nothing_outside()


HOSTILE_PATHS = [
    "/v1/classes/..%2F..%2Fetc%2Fpasswd",
    "/v1/classes/%2e%2e/students",
    "/v1/classes/room/students/..%2Fmatt",
    "/v1/classes/room/sessions/%2e%2e%2f%2e%2e/attendance.csv",
    "/v1/classes/room%00/students",
    "/v1/classes/%E2%80%AEmoor/students",
    "/v1/classes/room/sessions/monday/photos/..%2F..%2Fstudents%2Fmatt%2Fstudent.json/annotated.jpg",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_path_segments_are_refused(room: Room, path: str) -> None:
    before = room.snapshot()
    for method in ("GET", "DELETE"):
        response = room.client.request(method, path)
        assert response.status_code in (404, 405, 422), (method, path, response.text)
    assert room.snapshot() == before
    room.nothing_outside()


HOSTILE_FILENAMES = {
    "../../../../tmp/evil.jpg": "evil.jpg",
    "/etc/passwd": "passwd",
    "C:\\Windows\\System32\\evil.jpg": "evil.jpg",
    "photo\u202egpj.exe": "photogpj.exe",
    "tab\there\x00nul\x1b[31m.jpg": "tabherenul[31m.jpg",
    "😀 class photo.jpg": "😀 class photo.jpg",
    "..": None,
    "x" * 400 + ".jpg": "x" * 255,
}


def _raw_multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart body with the file name as raw UTF-8 (httpx would percent-encode controls)."""
    boundary = "hostile-boundary-7f3a"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_hostile_upload_file_names_are_stored_as_safe_display_names(room: Room) -> None:
    photo = _encode(room.matt, "JPEG")
    for filename, shown in HOSTILE_FILENAMES.items():
        body, content_type = _raw_multipart("photo", filename, photo)
        response = room.client.post(
            "/v1/classes/room/sessions/monday/photos",
            content=body,
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 201, (filename, response.text)
        room.nothing_outside()
        photo_id = response.json()["photo_id"]
        stored = room.store.get(f"classes/room/sessions/monday/photos/{photo_id}/result.json")
        assert json.loads(stored).get("filename") == shown, filename
    assert not Path("/tmp/evil.jpg").exists()


@pytest.mark.parametrize(
    ("name", "expected_id"),
    [
        ("../../etc/passwd", "etc-passwd"),
        ("Zoë O'Neil", "zoe-o-neil"),
        # Transliterated (anyascii), never dropped: two such names never share an id.
        ("😀", "grinning"),
        ("李雷", "lilei"),
    ],
)
def test_hostile_mobile_names_become_safe_ids(
    room: Room, name: str, expected_id: str | None
) -> None:
    response = room.client.post(
        "/register/register-student",
        data={"student_name": name},
        files={"files": ("p.jpg", _encode(room.matt, "JPEG"), "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == name  # the display name is kept as typed
    if expected_id is not None:
        assert body["student_id"] == expected_id
    else:
        assert body["student_id"].startswith("student-")  # a stable hash of the name
    room.nothing_outside()


def test_bidi_override_names_are_refused(room: Room) -> None:
    """U+202E makes "Zoë <RLO>lieN'O" display as another name: refused on both routes."""
    photo = _encode(room.matt, "JPEG")
    spoofed = "Zoë \u202elieN'O"
    before = room.snapshot()
    mobile = room.client.post(
        "/register/register-student",
        data={"student_name": spoofed},
        files={"files": ("p.jpg", photo, "image/jpeg")},
    )
    v1 = room.client.post(
        "/v1/classes/room/students",
        data={"student_id": "zoe", "name": spoofed},
        files={"photos": ("p.jpg", photo, "image/jpeg")},
    )
    # The JSON names (class name, session label, rename) pass the same check.
    new_class = room.client.post("/v1/classes", json={"id": "spoof", "name": spoofed})
    session = room.client.post("/v1/classes/room/sessions", json={"label": spoofed})
    for response in (mobile, v1):
        assert response.status_code == 422, response.text
        assert "bidirectional" in response.json()["detail"]
    for response in (new_class, session):
        assert response.status_code == 422, response.text
        assert "bidirectional" in str(response.json()["detail"])
    assert room.snapshot() == before


def test_formula_names_are_neutralised_in_the_csv(room: Room, people_dir: Path) -> None:
    photo = _encode(_photo(people_dir / "deepface__Jennifer_Aniston" / "img3.jpg"), "JPEG")
    response = room.client.post(
        "/v1/classes/room/students",
        data={"student_id": "formula", "name": '=HYPERLINK("http://evil","x")'},
        files={"photos": ("p.jpg", photo, "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    text = room.client.get("/v1/classes/room/sessions/monday/attendance.csv").text
    rows = {row[0]: row for row in csv.reader(io.StringIO(text))}
    assert not rows["formula"][1].startswith(("=", "+", "-", "@"))
    assert room.client.delete("/v1/classes/room/students/formula").status_code == 204


# =============================================================================================
# Oversized form fields and JSON strings
# =============================================================================================

ONE_MB = "n" * 1_000_000


def test_oversized_form_fields_are_refused(room: Room) -> None:
    photo = _encode(room.matt, "JPEG")
    before = room.snapshot()
    cases = [
        (
            "/register/register-student",
            {"student_name": ONE_MB},
            {"files": ("p.jpg", photo, "image/jpeg")},
            422,
            "longer than 200",
        ),
        (
            "/v1/classes/room/students",
            {"student_id": "big", "name": ONE_MB},
            {"photos": ("p.jpg", photo, "image/jpeg")},
            422,
            "at most 200",
        ),
        (
            "/v1/classes/room/students",
            {"student_id": "x" * 1_000_000, "name": "X"},
            {"photos": ("p.jpg", photo, "image/jpeg")},
            422,
            "pattern",
        ),
        # Over the multipart parser's 1 MiB per text field: refused while parsing.
        (
            "/register/register-student",
            {"student_name": ONE_MB * 2},
            {"files": ("p.jpg", photo, "image/jpeg")},
            400,
            "maximum size",
        ),
    ]
    for url, data, files, status, reason in cases:
        response = room.client.post(url, data=data, files=files)
        assert response.status_code == status, response.text[:300]
        assert reason in str(response.json()["detail"])
        assert len(response.text) < 5000, "the refusal must not echo the field"
    for url, body in (
        ("/v1/classes", {"id": "big", "name": ONE_MB}),
        ("/v1/classes/room/sessions", {"label": ONE_MB}),
        ("/v1/classes/room/students/matt", {"name": ONE_MB}),
    ):
        method = "PATCH" if url.endswith("matt") else "POST"
        response = room.client.request(method, url, json=body)
        assert response.status_code == 422, response.text[:300]
    assert room.snapshot() == before


# =============================================================================================
# Thousands of tiny faces
# =============================================================================================


def _mosaic(people_dir: Path, side: int, grid: int) -> bytes:
    """``grid`` x ``grid`` face crops (the face-api.js cast and facenet-pytorch crops) in one photo."""
    paths = sorted(people_dir.glob("face_api_js__*/*.png")) + sorted(
        people_dir.glob("facenet_pytorch__*/*.png")
    )
    tiles = [Image.open(p).convert("RGB") for p in paths]
    cell = side // grid
    mosaic = Image.new("RGB", (side, side), (128, 128, 128))
    for index in range(grid * grid):
        tile = tiles[index % len(tiles)].resize((cell, cell))
        mosaic.paste(tile, ((index % grid) * cell, (index // grid) * cell))
    return _encode(mosaic, "JPEG", quality=85)


def test_a_mosaic_of_two_thousand_faces_is_refused_in_bounded_time(
    room: Room, people_dir: Path
) -> None:
    data = _mosaic(people_dir, 4000, 45)  # 2025 faces of 88 px in 16 megapixels
    assert len(data) < MAX_UPLOAD
    before = room.snapshot()
    started = time.perf_counter()
    response = _session_photo(room.client, "assembly.jpg", data)
    elapsed = time.perf_counter() - started
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert f"at most {MAX_FACES}" in detail
    # Detection found (nearly) all of them; none was embedded.
    assert int(detail.split("shows ")[1].split(" faces")[0]) > 1900
    assert room.snapshot() == before
    logger.info("2025-face mosaic refused in %.1f s", elapsed)


def test_smaller_mosaics_on_the_other_routes(room: Room, people_dir: Path) -> None:
    crowd = _mosaic(people_dir, 1400, 11)  # 121 faces: over the cap of 100
    before = room.snapshot()
    response = _mobile_detect(room.client, "crowd.jpg", crowd)
    assert response.status_code == 422, response.text
    assert f"at most {MAX_FACES}" in response.json()["detail"]
    response = _v1_register(room.client, "crowd.jpg", crowd)
    assert response.status_code == 422, response.text
    assert "faces" in response.json()["detail"]
    assert room.snapshot() == before
    # Under the cap, a crowd is simply recognised (nobody enrolled is in it).
    response = _recognise(room.client, "class.jpg", _mosaic(people_dir, 600, 5))
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) >= 20
    assert response.json()["names"] == []


def test_the_service_still_works_afterwards(room: Room) -> None:
    response = _recognise(room.client, "p.jpg", _encode(room.matt, "JPEG"))
    assert response.status_code == 200
    assert response.json()["names"] == ["Matt"]
    room.nothing_outside()
