"""Names in any script (issue 14, point 1), through the app's own request bytes (Dart ``http``
0.13.6 multipart bodies, replies decoded as ``Response.body`` does) and through ``/v1``.

Students of the mobile call are keyed by their name as typed (NFC, blanks collapsed,
case-insensitive): the same name adds photos, a different name is a different student, whatever
the two names transliterate to. Ids stay readable (``anyascii``) and unique.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.ids import SLUG_PATTERN
from app.storage import DiskObjectStore, ObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import is_photo_embedding, running_app
from tests.app.dart_http import DartFile, json_body, multipart_request, response_body

NAMES = {
    "devanagari": "राहुल कुमार",
    "arabic": "محمد علي",
    "chinese": "李雷",
    "cyrillic": "Владимир Петров",
    "accented": "Stüart Blöom",
    "vietnamese": "Nguyễn Văn An",
    "punctuation": "!!! ???",
    "emoji": "😀🎉",
}


def _photo(people_dir: Path, who: str, number: int = 1) -> bytes:
    return (people_dir / f"face_api_js__{who}" / f"{who}{number}.png").read_bytes()


def dart_register(
    client: TestClient, name: str, photo: bytes, *, seed: int = 0
) -> tuple[int, dict[str, Any]]:
    """``POST /register/register-student`` exactly as the app sends it; the reply as it reads it."""
    body, headers = multipart_request(
        {"student_name": name}, [DartFile("files", "image_picker_1234.jpg", photo)], seed=seed
    )
    response = client.post("/register/register-student", content=body, headers=headers)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    return response.status_code, json_body(response)


def dart_detect(client: TestClient, photo: bytes) -> dict[str, Any]:
    body, headers = multipart_request({}, [DartFile("file", "group.jpg", photo)], seed=1)
    response = client.post("/mark/detect", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    result: dict[str, Any] = json_body(response)
    return result


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ObjectStore:
    return DiskObjectStore(tmp_path_factory.mktemp("names"))


@pytest.fixture(scope="module")
def client(fast_cast_pipeline: FacePipeline, store: ObjectStore) -> Iterator[TestClient]:
    with running_app(fast_cast_pipeline, store) as running:
        yield running


def _embeddings(store: ObjectStore, student_id: str) -> list[str]:
    prefix = f"classes/default/students/{student_id}/embeddings/"
    return [key for key in store.list(prefix) if is_photo_embedding(key)]


def test_latin1_is_what_the_app_would_show_without_a_charset() -> None:
    """The bug, as the app saw it: the same bytes without a charset read as mojibake."""
    import httpx

    content = '{"names": ["Stüart Blöom"]}'.encode()
    bare = httpx.Response(200, content=content, headers={"content-type": "application/json"})
    assert response_body(bare) == '{"names": ["StÃ¼art BlÃ¶om"]}'
    utf8 = httpx.Response(
        200, content=content, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert response_body(utf8) == '{"names": ["Stüart Blöom"]}'


def test_two_names_with_one_old_slug_are_two_students(
    client: TestClient, store: ObjectStore, people_dir: Path, groups_dir: Path
) -> None:
    """ "Rahul कुमार" and "Rahul शर्मा" both used to become ``rahul``: the second registration
    added its photo to the first student, and marking the second person showed the first name."""
    status, first = dart_register(client, "Rahul कुमार", _photo(people_dir, "sheldon"))
    assert status == 200, first
    status, second = dart_register(client, "Rahul शर्मा", _photo(people_dir, "leonard"), seed=2)
    assert status == 200, second
    assert first["student_id"] != second["student_id"]
    assert first["student_id"].startswith("rahul-k")
    assert (first["name"], second["name"]) == ("Rahul कुमार", "Rahul शर्मा")
    assert len(_embeddings(store, first["student_id"])) == 1
    assert len(_embeddings(store, second["student_id"])) == 1
    # Marking: each face is shown with its own name, in the bytes the app decodes.
    result = dart_detect(client, (groups_dir / "face_api_js__bbt3.jpg").read_bytes())
    assert {"Rahul कुमार", "Rahul शर्मा"} <= set(result["names"])
    by_id = {face["student_id"]: face["name"] for face in result["faces"] if face["known"]}
    assert by_id[first["student_id"]] == "Rahul कुमार"
    assert by_id[second["student_id"]] == "Rahul शर्मा"


@pytest.mark.parametrize("script", list(NAMES))
def test_names_in_any_script_through_the_mobile_call(
    client: TestClient, store: ObjectStore, people_dir: Path, script: str
) -> None:
    name = NAMES[script]
    photo = _photo(people_dir, "howard")
    status, body = dart_register(client, name, photo)
    assert status == 200, body
    assert body["name"] == name and body["message"] == "Student registered"
    student_id = body["student_id"]
    assert re.fullmatch(SLUG_PATTERN, student_id)
    if script in ("cyrillic", "accented", "vietnamese"):
        # Transliterated, not dropped: the id is readable.
        expected = {"cyrillic": "vladimir-petrov", "accented": "stuart-bloom"}
        assert student_id == expected.get(script, "nguyen-van-an")
    # The same name, typed otherwise (decomposed, other case, extra blanks), adds a photo.
    retyped = "  " + unicodedata.normalize("NFD", name).upper().replace(" ", "   ") + " "
    status, again = dart_register(client, retyped, _photo(people_dir, "howard", 2), seed=3)
    assert status == 200, again
    assert again["student_id"] == student_id and again["name"] == name
    assert len(_embeddings(store, student_id)) == 2
    shown = client.get(f"/v1/classes/default/students/{student_id}")
    assert shown.headers["content-type"] == "application/json; charset=utf-8"
    assert json_body(shown)["name"] == name and json_body(shown)["photo_count"] == 2


def test_names_with_one_slug_get_unique_ids(client: TestClient, people_dir: Path) -> None:
    photo = _photo(people_dir, "raj")
    ids = {}
    for name in ("Zoë Ng", "Zoe Ng", "ZOE-NG", "??", "!!"):
        status, body = dart_register(client, name, photo)
        assert status == 200, body
        ids[name] = body["student_id"]
    assert len(set(ids.values())) == 5, ids
    assert ids["Zoë Ng"] == "zoe-ng"
    for name in ("Zoe Ng", "ZOE-NG"):
        assert re.fullmatch(r"zoe-ng-[0-9a-f]{6}", ids[name]), ids
    for name in ("??", "!!"):  # nothing to transliterate: "student", made unique
        assert re.fullmatch(r"student(-[0-9a-f]{6})?", ids[name]), ids
    listed = {s["id"]: s["name"] for s in client.get("/v1/classes/default/students").json()}
    assert all(listed[student_id] == name for name, student_id in ids.items())


def test_a_student_stored_under_an_old_id_is_found_by_name(
    fast_cast_pipeline: FacePipeline, tmp_path: Path, people_dir: Path
) -> None:
    """Before, "Rahul कुमार" was stored as ``rahul`` (non-ASCII letters dropped). The same name
    still adds photos there; the other Rahul is a new student, never ``rahul``."""
    store = DiskObjectStore(tmp_path)
    with running_app(fast_cast_pipeline, store) as client:
        created = client.post("/v1/classes", json={"id": "default", "name": "Default class"})
        assert created.status_code == 201, created.text
        old = client.post(
            "/v1/classes/default/students",
            data={"student_id": "rahul", "name": "Rahul कुमार"},
            files={"photos": ("s.png", _photo(people_dir, "sheldon"), "image/png")},
        )
        assert old.status_code == 201, old.text
        before = {key: store.get(key) for key in store.list("")}
        status, same = dart_register(client, "rahul कुमार", _photo(people_dir, "sheldon", 2))
        assert status == 200 and same["student_id"] == "rahul" and same["name"] == "Rahul कुमार"
        status, other = dart_register(client, "Rahul शर्मा", _photo(people_dir, "leonard"))
        assert status == 200 and other["student_id"] not in ("rahul", same["student_id"])
        # Nothing stored before was changed; only objects were added.
        assert all(store.get(key) == data for key, data in before.items())
        assert len(_embeddings(store, "rahul")) == 2


def test_names_through_v1(client: TestClient, people_dir: Path) -> None:
    """``/v1`` keeps every name as sent (and says charset=utf-8); without ``student_id`` it makes a
    readable unique id from the name, and refuses (409) a name already enrolled."""
    photo = ("p.png", _photo(people_dir, "penny"), "image/png")
    made = {}
    for script, name in NAMES.items():
        response = client.post(
            "/v1/classes/default/students", data={"name": f"{name} v1"}, files={"photos": photo}
        )
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        body = json_body(response)
        assert body["student"]["name"] == f"{name} v1"
        assert re.fullmatch(SLUG_PATTERN, body["student"]["id"])
        made[script] = body["student"]["id"]
    assert len(set(made.values())) == len(NAMES)
    assert made["cyrillic"] == "vladimir-petrov-v1"
    # Explicit ids keep working, with any name.
    explicit = client.post(
        "/v1/classes/default/students",
        data={"student_id": "li-lei", "name": "李雷 (v1)"},
        files={"photos": photo},
    )
    assert explicit.status_code == 201 and json_body(explicit)["student"]["name"] == "李雷 (v1)"
    # The same name again, without an id: 409 with the existing id, nothing stored.
    again = client.post(
        "/v1/classes/default/students",
        data={"name": "  " + NAMES["accented"].upper() + " V1"},
        files={"photos": photo},
    )
    assert again.status_code == 409, again.text
    assert made["accented"] in json_body(again)["detail"]
    listed = json_body(client.get("/v1/classes/default/students"))
    assert {s["name"] for s in listed} >= {f"{name} v1" for name in NAMES.values()}
