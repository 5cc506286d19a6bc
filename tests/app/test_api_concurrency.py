"""No lost updates: concurrent requests, from threads and from two app instances ("workers") on one
store, on disk and on S3."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.records import keys
from app.storage import ObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import context_of, is_photo_embedding, running_app

# concurrent registrations and class photos through the real models
pytestmark = pytest.mark.slow


FACE_API_CAST = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")


@pytest.fixture(scope="module")
def ten_photos(people_dir: Path) -> list[tuple[str, bytes]]:
    """Ten single-face photos: every face-api.js cast member's first photo, two second photos."""
    chosen = [(name, 1) for name in FACE_API_CAST] + [("amy", 2), ("stuart", 2)]
    return [
        (f"{name}{n}.png", (people_dir / f"face_api_js__{name}" / f"{name}{n}.png").read_bytes())
        for name, n in chosen
    ]


def _run_together(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Start every call at the same moment, each in its own thread."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait(timeout=60)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _enrol(
    client: TestClient, class_id: str, student_id: str, photo: tuple[str, bytes]
) -> Callable[[], httpx.Response]:
    def call() -> httpx.Response:
        response: httpx.Response = client.post(
            f"/v1/classes/{class_id}/students",
            data={"student_id": student_id, "name": student_id.title()},
            files={"photos": (photo[0], photo[1], "image/png")},
        )
        return response

    return call


def test_ten_concurrent_registrations_on_two_workers_all_survive(
    object_store: ObjectStore,
    fast_face_pipeline: FacePipeline,
    ten_photos: list[tuple[str, bytes]],
) -> None:
    with (
        running_app(fast_face_pipeline, object_store, inference_concurrency=2) as worker_a,
        running_app(fast_face_pipeline, object_store, inference_concurrency=2) as worker_b,
    ):
        for class_id in ("morning", "evening"):
            assert (
                worker_a.post("/v1/classes", json={"id": class_id, "name": class_id}).status_code
                == 201
            )
        # Same class and different classes, alternating workers, all at once.
        plan = [
            (worker_a if i % 2 == 0 else worker_b, "morning" if i < 7 else "evening", f"s{i:02d}")
            for i in range(10)
        ]
        responses = _run_together(
            [
                _enrol(client, cid, sid, photo)
                for (client, cid, sid), photo in zip(plan, ten_photos, strict=True)
            ]
        )
        assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]

        expected = {
            "morning": [sid for _, cid, sid in plan if cid == "morning"],
            "evening": [sid for _, cid, sid in plan if cid == "evening"],
        }
        for client in (worker_a, worker_b):
            for class_id, ids in expected.items():
                students = client.get(f"/v1/classes/{class_id}/students").json()
                assert [s["id"] for s in students] == ids
                assert all(s["photo_count"] == 1 for s in students)
                # Both workers' in-memory galleries hold every student of the class.
                assert context_of(client).galleries.get(class_id).student_ids == tuple(ids)


def test_racing_creators_of_one_id_one_wins_the_rest_store_nothing(
    object_store: ObjectStore,
    fast_face_pipeline: FacePipeline,
    ten_photos: list[tuple[str, bytes]],
) -> None:
    with running_app(fast_face_pipeline, object_store) as client:
        client.post("/v1/classes", json={"id": "c", "name": "c"})
        responses = _run_together([_enrol(client, "c", "zoe", photo) for photo in ten_photos[:4]])
        assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
        listed = object_store.list(keys.STUDENT.prefix(class_id="c", student_id="zoe"))
        assert sum(is_photo_embedding(key) for key in listed) == 1
        assert sum(key.endswith(".jpg") for key in listed) == 1


def test_mobile_registrations_of_one_name_keep_every_photo(
    object_store: ObjectStore,
    fast_face_pipeline: FacePipeline,
    people_dir: Path,
) -> None:
    photos = [(people_dir / "face_api_js__penny" / f"penny{n}.png").read_bytes() for n in (1, 2, 3)]
    with running_app(fast_face_pipeline, object_store) as client:

        def register(photo: bytes) -> Callable[[], httpx.Response]:
            return lambda: client.post(
                "/register/register-student",
                data={"student_name": "Penny"},
                files={"files": ("penny.png", photo, "image/png")},
            )

        responses = _run_together([register(photo) for photo in photos])
        assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
        assert {r.json()["student_id"] for r in responses} == {"penny"}
        student = client.get("/v1/classes/default/students/penny").json()
        assert student["photo_count"] == 3


def test_concurrent_photos_of_one_session_record_each_student_once(
    object_store: ObjectStore,
    fast_face_pipeline: FacePipeline,
    people_dir: Path,
    groups_dir: Path,
) -> None:
    with running_app(fast_face_pipeline, object_store, inference_concurrency=2) as client:
        client.post("/v1/classes", json={"id": "c", "name": "c"})
        for name in ("sheldon", "raj", "howard"):
            photo = (people_dir / f"face_api_js__{name}" / f"{name}1.png").read_bytes()
            response = _enrol(client, "c", name, (f"{name}.png", photo))()
            assert response.status_code == 201, response.text
        client.post("/v1/classes/c/sessions", json={"id": "s", "label": "s"})
        group = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()

        def upload() -> httpx.Response:
            response: httpx.Response = client.post(
                "/v1/classes/c/sessions/s/photos", files={"photo": ("g.jpg", group, "image/jpeg")}
            )
            return response

        responses = _run_together([upload, upload, upload])
        assert [r.status_code for r in responses] == [201] * 3
        recorded = [sid for r in responses for sid in r.json()["recorded"]]
        assert len(recorded) == len(set(recorded)), "a student was recorded twice"
        recognised = {
            sid for r in responses for sid in r.json()["recorded"] + r.json()["already_present"]
        }
        stored = {
            ref.student_id
            for key in object_store.list(keys.RECORD.prefix(class_id="c", session_id="s"))
            if (ref := keys.RECORD.parse(key)) is not None
        }
        assert stored == set(recorded) == recognised
        assert stored, "the same photo recognised nobody: nothing was tested"
