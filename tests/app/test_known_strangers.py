"""Strangers kept out by who else the school knows: a student of another class is never named as
a student of this one, and a face a teacher said is nobody of the class is not named again. The
API end to end with the real models on real photos (the face-api.js cast), on disk.

The pipeline here names any face whose best student is ahead of everybody else it is compared
with (a threshold of -1): without the school and the known strangers, Raj, who is not in the
class, is named as one of its students on a photo of him alone (on bbt3 the four students take
their own faces first, one face per student). That isolates what the two levers
do from the calibrated threshold (``tests/ml/test_matching_school.py`` and the bench measure
them at the default).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.storage import DiskObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import context_of, running_app

CLASS_ID = "bbt"
OTHER_CLASS = "bbt-friends"
ENROLLED = ("sheldon", "leonard", "penny", "howard")


@pytest.fixture(scope="module")
def naming_pipeline(fast_face_pipeline: FacePipeline) -> FacePipeline:
    config = dataclasses.replace(fast_face_pipeline.config, unknown_threshold=-1.0)
    return fast_face_pipeline.with_config(config)


def _enrol(
    client: TestClient, class_id: str, names: tuple[str, ...], photos: dict[str, bytes]
) -> None:
    assert client.post("/v1/classes", json={"id": class_id, "name": class_id}).status_code == 201
    for name in names:
        response = client.post(
            f"/v1/classes/{class_id}/students",
            data={"student_id": name, "name": name.title()},
            files={"photos": (f"{name}1.png", photos[name], "image/png")},
        )
        assert response.status_code == 201, response.text


def _recognise(client: TestClient, class_id: str, photo: bytes) -> list[dict[str, Any]]:
    response = client.post(
        f"/v1/classes/{class_id}/recognise", files={"photo": ("class.jpg", photo, "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    faces: list[dict[str, Any]] = response.json()["faces"]
    return faces


def _raj_face(faces: list[dict[str, Any]], raj_box: list[float]) -> dict[str, Any]:
    (face,) = [f for f in faces if f["box"] == raj_box]
    return face


@pytest.fixture(scope="module")
def raj_box(
    naming_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
    bbt3: bytes,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[float]:
    """Raj's box on bbt3: the one face the class's students do not claim at the operator's
    threshold, found with Raj enrolled in a throwaway class."""
    store = DiskObjectStore(tmp_path_factory.mktemp("raj"))
    with running_app(naming_pipeline, store, school_cohort=False) as client:
        _enrol(client, "all", (*ENROLLED, "raj"), cast_photos)
        faces = _recognise(client, "all", bbt3)
    (box,) = [f["box"] for f in faces if f["student_id"] == "raj"]
    return list(box)


@pytest.fixture(scope="module")
def bbt3(groups_dir: Path) -> bytes:
    return (groups_dir / "face_api_js__bbt3.jpg").read_bytes()


@pytest.fixture(scope="module")
def raj2(people_dir: Path) -> bytes:
    """Another photo of Raj than the one he is registered from."""
    return (people_dir / "face_api_js__raj" / "raj2.png").read_bytes()


@pytest.fixture
def school(
    naming_pipeline: FacePipeline, cast_photos: dict[str, bytes], tmp_path: Path
) -> Iterator[TestClient]:
    """The class (four of the cast) and another class of the school (Raj) on one store."""
    with running_app(naming_pipeline, DiskObjectStore(tmp_path)) as client:
        _enrol(client, CLASS_ID, ENROLLED, cast_photos)
        _enrol(client, OTHER_CLASS, ("raj",), cast_photos)
        context_of(client).impostors.rebuild_now()
        yield client


def test_a_student_of_another_class_is_not_named(
    school: TestClient, bbt3: bytes, raj2: bytes, raj_box: list[float]
) -> None:
    (raj,) = _recognise(school, CLASS_ID, raj2)
    assert raj["student_id"] is None and raj["closer_to"] == "another_class", raj
    faces = _recognise(school, CLASS_ID, bbt3)
    assert _raj_face(faces, raj_box)["closer_to"] == "another_class"
    named = sorted(f["student_id"] for f in faces if f["student_id"])
    assert named == sorted(ENROLLED)
    # In Raj's own class, the other four are the school: he is named, they are not.
    faces = _recognise(school, OTHER_CLASS, bbt3)
    assert [f["student_id"] for f in faces if f["student_id"]] == ["raj"]
    assert {f["closer_to"] for f in faces if f["box"] != raj_box} == {"another_class"}


def test_without_the_school_raj_takes_a_students_name(
    naming_pipeline: FacePipeline, cast_photos: dict[str, bytes], raj2: bytes, tmp_path: Path
) -> None:
    with running_app(naming_pipeline, DiskObjectStore(tmp_path), school_cohort=False) as client:
        _enrol(client, CLASS_ID, ENROLLED, cast_photos)
        _enrol(client, OTHER_CLASS, ("raj",), cast_photos)
        (raj,) = _recognise(client, CLASS_ID, raj2)
    assert raj["student_id"] in ENROLLED and raj["closer_to"] is None


def test_a_face_marked_nobody_keeps_that_person_out(
    naming_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
    bbt3: bytes,
    raj2: bytes,
    raj_box: list[float],
    tmp_path: Path,
) -> None:
    with running_app(naming_pipeline, DiskObjectStore(tmp_path), school_cohort=False) as client:
        _enrol(client, CLASS_ID, ENROLLED, cast_photos)
        base = f"/v1/classes/{CLASS_ID}"
        assert (
            client.post(f"{base}/sessions", json={"id": "mon", "label": "Monday"}).status_code
            == 201
        )
        upload = client.post(
            f"{base}/sessions/mon/photos", files={"photo": ("class.jpg", bbt3, "image/jpeg")}
        ).json()
        raj_index = next(i for i, f in enumerate(upload["faces"]) if f["box"] == raj_box)
        # A photo of Raj alone is named, before the teacher says who he is not.
        (before,) = _recognise(client, CLASS_ID, raj2)
        assert before["student_id"] in ENROLLED

        assigned = client.post(
            f"{base}/sessions/mon/photos/{upload['photo_id']}/faces/{raj_index}/assign",
            json={"student_id": None},
        )
        assert assigned.status_code == 200, assigned.text
        (stranger,) = client.get(f"{base}/strangers").json()
        assert (stranger["session_id"], stranger["photo_id"], stranger["face_index"]) == (
            "mon",
            upload["photo_id"],
            raj_index,
        )
        assert stranger["marked_by"] == "console"
        crop = client.get(stranger["crop_url"])
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(crop.content)).size[0] > 20

        (after,) = _recognise(client, CLASS_ID, raj2)
        assert after["student_id"] is None and after["closer_to"] == "known_stranger", after
        # The four students on the same photo are still named.
        named = [f["student_id"] for f in _recognise(client, CLASS_ID, bbt3) if f["student_id"]]
        assert sorted(named) == sorted(ENROLLED)

        # Removed by hand (a mistake): Raj is named again as before.
        url = f"{base}/strangers/{stranger['stranger_id']}"
        assert client.delete(url).status_code == 204
        assert client.delete(url).status_code == 404
        assert client.get(f"{base}/strangers").json() == []
        (again,) = _recognise(client, CLASS_ID, raj2)
        assert again["student_id"] == before["student_id"] and again["closer_to"] is None

        # The teacher's "nobody" taken back, given again, then a name after all: the stranger
        # comes with "nobody" and goes with the name.
        face_url = f"{base}/sessions/mon/photos/{upload['photo_id']}/faces/{raj_index}/assign"
        withdrawn = client.delete(face_url)
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["faces"][raj_index]["not_in_class"] is False
        assert client.delete(face_url).status_code == 404
        for student in (None, "penny"):
            response = client.post(face_url, json={"student_id": student})
            assert response.status_code == 200, response.text
            assert len(client.get(f"{base}/strangers").json()) == (1 if student is None else 0)

        actions = [event["action"] for event in client.get("/v1/audit").json()]
        assert {"stranger.crop_read", "stranger.delete", "face.unassign"} <= set(actions)
