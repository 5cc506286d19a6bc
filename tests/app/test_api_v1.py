"""The /v1 API end to end with the real models on real photos, on disk and on S3.

One class is enrolled per backend (module-scoped: enrolment is the slow part) and the tests below
run in file order on it; the destructive ones (rename, delete) come last.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.records import keys
from app.storage import ObjectStore
from ml.head import ProjectionHead
from ml.pipeline import FacePipeline
from tests.app.conftest import CAST, running_app, trainer_of

CLASS_ID = "bbt"


@dataclass
class Enrolled:
    client: TestClient
    store: ObjectStore
    enrolments: dict[str, dict[str, Any]]


@pytest.fixture(scope="module", params=["disk", "s3"])
def enrolled(
    request: pytest.FixtureRequest,
    module_store: Callable[[str], ObjectStore],
    cast_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
) -> Iterator[Enrolled]:
    store = module_store(request.param)
    # The head in use, as ROLLCALL_USE_HEAD=true makes it: it is trained (in the background)
    # only where it is used, and these tests follow its training and its erasure.
    pipeline = cast_pipeline.with_config(dataclasses.replace(cast_pipeline.config, use_head=True))
    with running_app(pipeline, store) as client:
        response = client.post("/v1/classes", json={"id": CLASS_ID, "name": "Big Bang Theory"})
        assert response.status_code == 201, response.text
        enrolments = {}
        for name in CAST:
            response = client.post(
                f"/v1/classes/{CLASS_ID}/students",
                data={"student_id": name, "name": name.title()},
                files={"photos": (f"{name}1.png", cast_photos[name], "image/png")},
            )
            assert response.status_code == 201, response.text
            enrolments[name] = response.json()
        yield Enrolled(client, store, enrolments)


@pytest.fixture(scope="module")
def bbt3(groups_dir: Path) -> bytes:
    return (groups_dir / "face_api_js__bbt3.jpg").read_bytes()


def _photo(data: bytes, name: str = "photo.jpg") -> dict[str, tuple[str, bytes, str]]:
    return {"photo": (name, data, "image/jpeg")}


def test_class_is_listed_and_a_second_create_conflicts(enrolled: Enrolled) -> None:
    client = enrolled.client
    classes = client.get("/v1/classes").json()
    assert [(c["id"], c["student_count"]) for c in classes] == [(CLASS_ID, len(CAST))]
    response = client.post("/v1/classes", json={"id": CLASS_ID, "name": "again"})
    assert response.status_code == 409
    assert CLASS_ID in response.json()["detail"]


def test_enrolment_reports_quality_per_photo(enrolled: Enrolled) -> None:
    for name, body in enrolled.enrolments.items():
        assert body["student"] == {
            "id": name,
            "name": name.title(),
            "created_at": body["student"]["created_at"],
            "photo_count": 1,
            "source_id": None,
        }
        (report,) = body["photos"]
        quality = report["quality"]
        assert report["filename"] == f"{name}1.png"
        assert 60 < quality["face_size"] <= 150  # 150 px crops
        assert quality["sharpness"] > 0
        assert 0.5 < quality["detection_score"] <= 1.0
        assert isinstance(quality["warnings"], list)
    students = enrolled.client.get(f"/v1/classes/{CLASS_ID}/students").json()
    assert sorted(s["id"] for s in students) == sorted(CAST)
    detail = enrolled.client.get(f"/v1/classes/{CLASS_ID}/students/penny").json()
    assert detail["photo_count"] == 1 and detail["photos"][0]["quality"]["face_size"] > 60


def test_head_is_trained_in_the_background(enrolled: Enrolled) -> None:
    assert trainer_of(enrolled.client).wait_idle(timeout=300)
    body = enrolled.client.get(f"/v1/classes/{CLASS_ID}").json()
    assert body["student_count"] == len(CAST)
    assert body["head"]["state"] == "ready", body
    assert body["head"]["student_count"] == len(CAST)
    assert body["head"]["version"] >= 1


def test_session_records_everyone_once(enrolled: Enrolled, bbt3: bytes) -> None:
    client = enrolled.client
    response = client.post(
        f"/v1/classes/{CLASS_ID}/sessions",
        json={"id": "s01e01", "label": "Pilot", "date": "2007-09-24"},
    )
    assert response.status_code == 201, response.text
    assert (
        client.post(
            f"/v1/classes/{CLASS_ID}/sessions", json={"id": "s01e01", "label": "dup"}
        ).status_code
        == 409
    )

    first = client.post(f"/v1/classes/{CLASS_ID}/sessions/s01e01/photos", files=_photo(bbt3))
    assert first.status_code == 201, first.text
    body = first.json()
    assert sorted(body["recorded"]) == sorted(CAST)
    assert body["already_present"] == []
    assert len(body["faces"]) == 5

    # A second photo merges: nobody is recorded twice, the first record is kept.
    second = client.post(f"/v1/classes/{CLASS_ID}/sessions/s01e01/photos", files=_photo(bbt3))
    assert second.status_code == 201
    assert second.json()["recorded"] == []
    assert sorted(second.json()["already_present"]) == sorted(CAST)

    session = client.get(f"/v1/classes/{CLASS_ID}/sessions/s01e01").json()
    assert session["label"] == "Pilot" and session["date"] == "2007-09-24"
    assert session["present_count"] == 5 and session["absent_count"] == 0
    assert sorted(session["photo_ids"]) == sorted([body["photo_id"], second.json()["photo_id"]])
    for entry in session["roster"]:
        assert entry["present"] is True
        assert entry["photo_id"] == body["photo_id"]
        assert entry["similarity"] > 0.3
    records = enrolled.store.list(keys.RECORD.prefix(class_id=CLASS_ID, session_id="s01e01"))
    assert len(records) == 5

    listed = client.get(f"/v1/classes/{CLASS_ID}/sessions").json()
    assert [s["id"] for s in listed] == ["s01e01"]

    annotated = client.get(body["annotated_url"])
    assert annotated.status_code == 200
    assert annotated.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(annotated.content)).size == Image.open(io.BytesIO(bbt3)).size


def test_attendance_csv_matches_the_roster(enrolled: Enrolled) -> None:
    client = enrolled.client
    roster = client.get(f"/v1/classes/{CLASS_ID}/sessions/s01e01").json()["roster"]
    response = client.get(f"/v1/classes/{CLASS_ID}/sessions/s01e01/attendance.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["student_id"], r["name"], r["status"]) for r in rows] == [
        (e["student_id"], e["name"], "present" if e["present"] else "absent") for e in roster
    ]
    assert sorted(row["student_id"] for row in rows) == sorted(CAST)
    for row in rows:
        if row["status"] == "present":
            assert float(row["similarity"]) > 0.3 and row["recorded_at"] and row["photo_id"]
        else:
            assert row["similarity"] == row["recorded_at"] == ""


def test_absent_students_are_on_the_roster(enrolled: Enrolled, groups_dir: Path) -> None:
    client = enrolled.client
    client.post(f"/v1/classes/{CLASS_ID}/sessions", json={"id": "strangers", "label": "Nobody"})
    photo = (groups_dir / "face_recognition__two_people.jpg").read_bytes()
    body = client.post(
        f"/v1/classes/{CLASS_ID}/sessions/strangers/photos", files=_photo(photo)
    ).json()
    assert body["recorded"] == [] and len(body["faces"]) == 2
    session = client.get(f"/v1/classes/{CLASS_ID}/sessions/strangers").json()
    assert session["present_count"] == 0 and session["absent_count"] == 5
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(f"/v1/classes/{CLASS_ID}/sessions/strangers/attendance.csv").text
            )
        )
    )
    assert {row["status"] for row in rows} == {"absent"}


def test_recognise_does_not_record(enrolled: Enrolled, bbt3: bytes) -> None:
    assert trainer_of(enrolled.client).wait_idle(timeout=300)
    before = enrolled.store.list(f"classes/{CLASS_ID}/")
    response = enrolled.client.post(
        f"/v1/classes/{CLASS_ID}/recognise", files=_photo(bbt3), params={"annotate": "true"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    session = enrolled.client.get(f"/v1/classes/{CLASS_ID}/sessions/s01e01").json()
    # The same photo, the same students: those the session recorded from it.
    assert sorted(body["names"]) == sorted(e["name"] for e in session["roster"] if e["present"])
    assert body["image"]
    assert enrolled.store.list(f"classes/{CLASS_ID}/") == before
    # The path's earlier American spelling still answers, the same way, for older clients.
    old = enrolled.client.post(f"/v1/classes/{CLASS_ID}/recognize", files=_photo(bbt3))
    assert old.status_code == 200, old.text
    assert sorted(old.json()["names"]) == sorted(body["names"])
    assert enrolled.store.list(f"classes/{CLASS_ID}/") == before


def test_look_alike_enrolment_is_warned(enrolled: Enrolled, people_dir: Path) -> None:
    photo = (people_dir / "face_api_js__sheldon" / "sheldon2.png").read_bytes()
    response = enrolled.client.post(
        f"/v1/classes/{CLASS_ID}/students",
        data={"student_id": "shelly", "name": "Shelly Cooper"},
        files={"photos": ("sheldon2.png", photo, "image/png")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert [s["student_id"] for s in body["similar_students"]] == ["sheldon"]
    assert any("sheldon" in warning for warning in body["warnings"])
    # Adding another photo of Sheldon to Sheldon himself is no look-alike warning.
    response = enrolled.client.post(
        f"/v1/classes/{CLASS_ID}/students/sheldon/photos",
        files={
            "photos": (
                "sheldon3.png",
                (people_dir / "face_api_js__sheldon" / "sheldon3.png").read_bytes(),
                "image/png",
            )
        },
    )
    assert response.status_code == 201, response.text
    assert [s["student_id"] for s in response.json()["similar_students"]] in ([], ["shelly"])
    assert response.json()["student"]["photo_count"] == 2
    assert enrolled.client.delete(f"/v1/classes/{CLASS_ID}/students/shelly").status_code == 204


def test_rename(enrolled: Enrolled, bbt3: bytes) -> None:
    client = enrolled.client
    response = client.patch(
        f"/v1/classes/{CLASS_ID}/students/raj", json={"name": "Rajesh Koothrappali"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Rajesh Koothrappali"
    names = client.post(f"/v1/classes/{CLASS_ID}/recognise", files=_photo(bbt3)).json()["names"]
    assert "Rajesh Koothrappali" in names and "Raj" not in names
    assert (
        client.patch(f"/v1/classes/{CLASS_ID}/students/nobody", json={"name": "x"}).status_code
        == 404
    )
    assert (
        client.patch(f"/v1/classes/{CLASS_ID}/students/raj", json={"name": "  "}).status_code == 422
    )


def test_delete_student_erases_them(enrolled: Enrolled, bbt3: bytes) -> None:
    client, store = enrolled.client, enrolled.store
    assert trainer_of(client).wait_idle(timeout=300)
    head_before = client.get(f"/v1/classes/{CLASS_ID}").json()["head"]
    assert head_before["state"] == "ready"

    response = client.delete(f"/v1/classes/{CLASS_ID}/students/howard")
    assert response.status_code == 204
    # Gone from storage at once: record, photos, embeddings, attendance records.
    assert store.list(keys.STUDENT.prefix(class_id=CLASS_ID, student_id="howard")) == []
    assert not store.exists(
        keys.RECORD.key(class_id=CLASS_ID, session_id="s01e01", student_id="howard")
    )
    assert client.get(f"/v1/classes/{CLASS_ID}/students/howard").status_code == 404
    # Not recognised any more, even before the head is retrained.
    body = client.post(f"/v1/classes/{CLASS_ID}/recognise", files=_photo(bbt3)).json()
    assert "Howard" not in body["names"]
    assert all(face["student_id"] != "howard" for face in body["faces"])

    # The head is retrained without them, and no stored head knows them.
    assert trainer_of(client).wait_idle(timeout=300)
    head_after = client.get(f"/v1/classes/{CLASS_ID}").json()["head"]
    assert head_after["state"] == "ready"
    assert head_after["version"] > head_before["version"]
    assert head_after["student_count"] == len(CAST) - 1
    for key in store.list(keys.HEAD.prefix(class_id=CLASS_ID)):
        if key.endswith(".safetensors"):
            assert "howard" not in ProjectionHead.from_bytes(store.get(key)).student_ids
    assert not any("/howard" in key for key in store.list(f"classes/{CLASS_ID}/students/"))
    session = client.get(f"/v1/classes/{CLASS_ID}/sessions/s01e01").json()
    assert "howard" not in [entry["student_id"] for entry in session["roster"]]


def test_delete_class(enrolled: Enrolled) -> None:
    client, store = enrolled.client, enrolled.store
    assert client.delete(f"/v1/classes/{CLASS_ID}").status_code == 204
    assert trainer_of(client).wait_idle(timeout=300)
    assert store.list(f"classes/{CLASS_ID}/") == []
    assert client.get(f"/v1/classes/{CLASS_ID}").status_code == 404
    assert client.get("/v1/classes").json() == []
    assert client.delete(f"/v1/classes/{CLASS_ID}").status_code == 404
