"""A school's roster import through the API and the command, with the real models on real photos,
on disk and on S3: the classes and students it creates, a second run that changes nothing, the
refusals in a teacher's words, recognition of the imported class, bad input refused with nothing
stored, and the keys allowed to import."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import roster_import
from app.records import keys
from app.records.documents import ImportStateDoc
from app.storage import DiskObjectStore, ObjectStore
from harness.rosters import (
    Pupil,
    SchoolClass,
    oneroster_files,
    photos_zip,
    plain_csv,
    pupils_from_folders,
    zip_bytes,
)
from ml.pipeline import FacePipeline
from tests.app.conftest import MakeObjectStore, running_app

CAST = ("sheldon", "leonard", "penny", "howard", "raj")


def _school(people_dir: Path, groups_dir: Path) -> list[SchoolClass]:
    cast = pupils_from_folders(people_dir / f"face_api_js__{name}" for name in CAST)
    friends = pupils_from_folders(
        (people_dir / f"face_api_js__{name}" for name in ("amy", "bernadette", "stuart")), first=10
    )
    absent = Pupil("no-photo-guid", "Ima", "Newcomer", None)
    crowd = Pupil("crowd-guid", "Group", "Photo", groups_dir / "face_api_js__bbt3.jpg")
    return [
        SchoolClass("bbt-guid", "The Big Bang Theory", [*cast, absent]),
        SchoolClass("friends-guid", "Friends of", [*friends, cast[2], crowd]),
    ]


def _import(client: TestClient, roster: bytes, photos: bytes | None, **form: str) -> dict[str, Any]:
    files = {"roster": ("roster.zip", roster, "application/zip")}
    if photos is not None:
        files["photos"] = ("photos.zip", photos, "application/zip")
    response = client.post("/v1/imports/oneroster", files=files, data=form)
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    assert location == f"/v1/imports/{response.json()['id']}"
    deadline = time.monotonic() + 300
    while True:
        job: dict[str, Any] = client.get(location).json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_a_school_imports_its_roster_and_photos(
    make_object_store: MakeObjectStore,
    fast_cast_pipeline: FacePipeline,
    people_dir: Path,
    groups_dir: Path,
) -> None:
    school = _school(people_dir, groups_dir)
    roster = zip_bytes(oneroster_files(school))
    pupils = {p.source_id: p for cls in school for p in cls.pupils}
    photos = photos_zip(pupils.values())
    assert isinstance(photos, bytes)
    store = make_object_store()
    with running_app(fast_cast_pipeline, store) as client:
        job = _import(client, roster, photos)
        assert job["state"] == "done", job
        assert (job["done"], job["total"]) == (10, 10)
        assert job["classes"] == {"created": 2, "updated": 0, "unchanged": 0}
        assert job["students"]["created"] == 10
        assert job["photos_added"] == 9  # Penny in both classes, from her one photo
        reasons = {issue["source_id"]: issue["reason"] for issue in job["refusals"]}
        assert set(reasons) == {"no-photo-guid", "crowd-guid"}
        assert "no photo named 'no-photo-guid'" in reasons["no-photo-guid"]
        assert "several faces and none is clearly the student's" in reasons["crowd-guid"]

        classes = {c["id"]: c for c in client.get("/v1/classes").json()}
        assert classes["bbt-guid"]["source_id"] == "bbt-guid"
        assert classes["bbt-guid"]["student_count"] == 6  # the one awaiting a photo included
        students = client.get("/v1/classes/bbt-guid/students").json()
        waiting = [s for s in students if s["photo_count"] == 0]
        assert [(s["id"], s["name"], s["source_id"]) for s in waiting] == [
            ("no-photo-guid", "Ima Newcomer", "no-photo-guid")
        ]
        # No name in any key: ids are the sourcedIds.
        assert not [k for k in store.list("classes/") if "sheldon" in k.lower()]
        # The imported class is recognised on a class photo.
        bbt3 = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
        named = client.post(
            "/v1/classes/bbt-guid/recognise", files={"photo": ("bbt3.jpg", bbt3, "image/jpeg")}
        ).json()["names"]
        assert sorted(named) == sorted(p.name for p in school[0].pupils if p.photo is not None)

        again = _import(client, roster, photos)
        assert again["state"] == "done"
        assert again["classes"] == {"created": 0, "updated": 0, "unchanged": 2}
        assert again["students"] == {"created": 0, "updated": 0, "unchanged": 10}
        assert again["photos_added"] == 0
        listed = client.get("/v1/imports").json()
        assert [j["id"] for j in listed[:2]] == [again["id"], job["id"]]


@pytest.mark.parametrize(
    ("roster", "photos", "status", "message"),
    [
        (
            zip_bytes({k: v for k, v in oneroster_files([]).items() if k != "users.csv"}),
            None,
            422,
            "users.csv is missing",
        ),
        (b"not a zip", None, 422, "the roster: not a zip archive"),
        (zip_bytes(oneroster_files([])), zip_bytes({"../../etc/x.jpg": b"x"}), 422, "outside"),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(
    tmp_path: Path,
    fast_cast_pipeline: FacePipeline,
    roster: bytes,
    photos: bytes | None,
    status: int,
    message: str,
) -> None:
    store = DiskObjectStore(tmp_path)
    with running_app(fast_cast_pipeline, store) as client:
        files = {"roster": ("roster.zip", roster, "application/zip")}
        if photos is not None:
            files["photos"] = ("photos.zip", photos, "application/zip")
        response = client.post("/v1/imports/oneroster", files=files)
        assert response.status_code == status, response.text
        assert message in response.json()["detail"]
        bad_key = client.post(
            "/v1/imports/oneroster",
            files={"roster": ("roster.zip", zip_bytes(oneroster_files([])), "application/zip")},
            data={"photo_key": "email"},
        )
        assert bad_key.status_code == 422 and "photo_key" in bad_key.json()["detail"]
    assert store.list("") == []


def test_only_a_key_for_every_class_may_import(
    tmp_path: Path, fast_cast_pipeline: FacePipeline
) -> None:
    keys = "admin-0123456789abcdef;teacher-0123456789abcdef:class-a"
    store = DiskObjectStore(tmp_path)
    with running_app(fast_cast_pipeline, store, api_keys=keys) as client:
        roster = {"roster": ("roster.zip", zip_bytes(oneroster_files([])), "application/zip")}
        scoped = client.post(
            "/v1/imports/oneroster",
            files=roster,
            headers={"X-API-Key": "teacher-0123456789abcdef"},
        )
        assert scoped.status_code == 403
        admin = client.post(
            "/v1/imports/oneroster", files=roster, headers={"X-API-Key": "admin-0123456789abcdef"}
        )
        assert admin.status_code == 202
        assert client.get("/v1/imports").status_code == 401


def test_a_plain_csv_through_the_api(
    tmp_path: Path, fast_cast_pipeline: FacePipeline, people_dir: Path
) -> None:
    pupils = pupils_from_folders(people_dir / f"face_api_js__{name}" for name in CAST[:3])
    school = [SchoolClass("7b", "Physics 7B", pupils)]
    photos = zip_bytes({f"{p.source_id}.png": p.photo.read_bytes() for p in pupils if p.photo})
    with running_app(fast_cast_pipeline, DiskObjectStore(tmp_path)) as client:
        response = client.post(
            "/v1/imports/csv",
            files={
                "roster": ("roster.csv", plain_csv(school), "text/csv"),
                "photos": ("photos.zip", photos, "application/zip"),
            },
        )
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        deadline = time.monotonic() + 120
        while (job := client.get(location).json())["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert job["state"] == "done" and job["photos_added"] == 3, job
        students = client.get("/v1/classes/physics-7b/students").json()
        assert sorted(s["source_id"] for s in students) == ["S00001", "S00002", "S00003"]


def test_the_command_imports_from_folders_twice(
    tmp_path: Path,
    people_dir: Path,
    groups_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    school = _school(people_dir, groups_dir)
    export = tmp_path / "export"
    export.mkdir()
    for name, data in oneroster_files(school).items():
        (export / name).write_bytes(data)
    photos = tmp_path / "photos.zip"
    photos_zip({p.source_id: p for cls in school for p in cls.pupils}.values(), path=photos)
    monkeypatch.setenv("ROLLCALL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ROLLCALL_N_VIEWS", "1")
    (tmp_path / "data").mkdir()
    assert roster_import.main([str(export), str(photos), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing is stored" in out and "9 photos stored" in out
    store: ObjectStore = DiskObjectStore(tmp_path / "data")
    assert store.list("classes/") == []
    assert roster_import.main([str(export), str(photos)]) == 0
    assert "classes 2 created" in capsys.readouterr().out
    assert roster_import.main([str(export), str(photos)]) == 0
    out = capsys.readouterr().out
    assert "students 0 created, 0 updated, 10 unchanged; 0 photos stored" in out
    assert len(store.list("classes/bbt-guid/students/")) > 0
    # Another import still running (its process wrote its state just now): one at a time, as
    # through the API.
    states = [key for key in store.list("imports/") if keys.IMPORT_STATE.parse(key) is not None]
    running = ImportStateDoc(state="running", updated_at=datetime.now(UTC))
    store.put(states[-1], running.to_json_bytes(), content_type="application/json")
    jobs_before = store.list("imports/")
    assert roster_import.main([str(export), str(photos)]) == 2
    assert "is running" in capsys.readouterr().err
    assert store.list("imports/") == jobs_before


def test_the_teacher_chooses_the_face_on_a_photo_of_several(
    tmp_path: Path, fast_cast_pipeline: FacePipeline, groups_dir: Path
) -> None:
    bbt3 = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
    photo = {"photo": ("bbt3.jpg", bbt3, "image/jpeg")}
    with running_app(fast_cast_pipeline, DiskObjectStore(tmp_path)) as client:
        assert client.post("/v1/classes", json={"id": "c", "name": "C"}).status_code == 201
        refused = client.post("/v1/classes/c/students/check", files=photo)
        assert refused.status_code == 422
        body = refused.json()
        assert "shows 5 faces" in body["detail"] and body["photo"] == 0
        faces = body["faces"]
        assert [f["index"] for f in faces] == [0, 1, 2, 3, 4]
        sizes = [min(f["box"][2] - f["box"][0], f["box"][3] - f["box"][1]) for f in faces]
        assert sizes == sorted(sizes, reverse=True)  # largest (shorter side) first
        checked = client.post("/v1/classes/c/students/check", files=photo, data={"face": "2"})
        assert checked.status_code == 200, checked.text
        assert checked.json()["face"] == 2 and len(checked.json()["faces"]) == 5
        box = ",".join(str(v) for v in faces[3]["box"])
        enrolled = client.post(
            "/v1/classes/c/students",
            data={"name": "Chosen One", "face": box},
            files={"photos": ("bbt3.jpg", bbt3, "image/jpeg")},
        )
        assert enrolled.status_code == 201, enrolled.text
        assert enrolled.json()["photos"][0]["box"] == faces[3]["box"]
        warnings = enrolled.json()["photos"][0]["quality"]["warnings"]
        assert "4 other faces on the photo were ignored; the face you chose was registered." in (
            warnings
        )
        recognised = client.post("/v1/classes/c/recognise", files=photo).json()
        named = [f for f in recognised["faces"] if f["student_id"] == "chosen-one"]
        assert [f["box"] for f in named] == [faces[3]["box"]]
        bad = client.post("/v1/classes/c/students/check", files=photo, data={"face": "9"})
        assert bad.status_code == 422 and "there is no face 9" in bad.json()["detail"]
        # The mobile app's call keeps the dominant-face rule, and its plain refusal.
        mobile = client.post(
            "/register/register-student",
            data={"student_name": "Someone"},
            files={"files": ("bbt3.jpg", bbt3, "image/jpeg")},
        )
        assert mobile.status_code == 422 and set(mobile.json()) == {"detail"}
