"""The audit log through the API, on disk and on S3: every change and every read of a photo or an
export is an event naming the API key by its label, a class-limited key sees only its classes'
events, no event holds a name or an image, and concurrent requests lose no event.

One class per teacher key; the tests run in file order on one store per backend.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.records import keys
from app.storage import ObjectStore, StorageUnavailableError
from ml.pipeline import FacePipeline
from tests.app.conftest import context_of, running_app
from tests.app.delegating_store import DelegatingStore

ADMIN_KEY = "admin-0123456789abcdef0123"
TEACHER_A_KEY = "teacher-a-0123456789abcdef"
TEACHER_B_KEY = "teacher-b-0123456789abcdef"
API_KEYS = f"{ADMIN_KEY};{TEACHER_A_KEY}:class-a;{TEACHER_B_KEY}:class-b"
ADMIN = {"X-API-Key": ADMIN_KEY}
TEACHER_A = {"X-API-Key": TEACHER_A_KEY}
TEACHER_B = {"X-API-Key": TEACHER_B_KEY}

NAMES = ("Sheldon", "Cooper", "Shelly", "Penny", "Hofstadter")
"""Every word of the students' names (their ids share none of them)."""


@dataclass
class Audited:
    client: TestClient
    store: ObjectStore
    expected: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    """``(actor, action, class_id, student_id)`` of every event the fixture caused."""

    def call(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        status: int,
        event: tuple[str, str, str | None, str | None] | None,
        **kwargs: Any,
    ) -> Any:
        response = self.client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == status, (method, url, response.text)
        if event is not None:
            self.expected.append(event)
        return response

    def events(self, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
        response = self.client.get("/v1/audit", params=params, headers=headers)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found


@pytest.fixture(scope="module", params=["disk", "s3"])
def audited(
    request: pytest.FixtureRequest,
    module_store: Callable[[str], ObjectStore],
    fast_face_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
) -> Iterator[Audited]:
    """Two teachers, each on their own class, doing a term's worth of changes and reads."""
    store = module_store(request.param)
    with running_app(fast_face_pipeline, store, api_keys=API_KEYS) as client:
        run = Audited(client, store)
        a, b = "/v1/classes/class-a", "/v1/classes/class-b"
        sheldon = cast_photos["sheldon"]
        run.call(
            "POST",
            "/v1/classes",
            ADMIN,
            201,
            ("key 1", "class.create", "class-a", None),
            json={"id": "class-a", "name": "A"},
        )
        run.call(
            "POST",
            "/v1/classes",
            TEACHER_B,
            201,
            ("key 3", "class.create", "class-b", None),
            json={"id": "class-b", "name": "B"},
        )
        enrolled = run.call(
            "POST",
            f"{a}/students",
            TEACHER_A,
            201,
            ("key 2", "student.enrol", "class-a", "stu-1"),
            data={"student_id": "stu-1", "name": "Sheldon Cooper"},
            files={"photos": ("s.png", sheldon, "image/png")},
        ).json()
        photo_id = enrolled["photos"][0]["photo_id"]
        run.call(
            "PATCH",
            f"{a}/students/stu-1",
            TEACHER_A,
            200,
            ("key 2", "student.rename", "class-a", "stu-1"),
            json={"name": "Shelly"},
        )
        run.call(
            "GET",
            f"{a}/students/stu-1/thumbnail.jpg",
            TEACHER_A,
            200,
            ("key 2", "student.thumbnail_read", "class-a", "stu-1"),
        )
        run.call(
            "GET",
            f"{a}/students/stu-1/photos/{photo_id}/thumbnail.jpg",
            TEACHER_A,
            200,
            ("key 2", "student.photo_thumbnail_read", "class-a", "stu-1"),
        )
        run.call(
            "POST",
            f"{a}/sessions",
            TEACHER_A,
            201,
            ("key 2", "session.create", "class-a", None),
            json={"id": "mon", "label": "Mon"},
        )
        upload = run.call(
            "POST",
            f"{a}/sessions/mon/photos",
            TEACHER_A,
            201,
            ("key 2", "session.photo_add", "class-a", None),
            files={"photo": ("class.png", sheldon, "image/png")},
        ).json()
        photo = f"{a}/sessions/mon/photos/{upload['photo_id']}"
        run.call(
            "GET",
            f"{photo}/annotated.jpg",
            TEACHER_A,
            200,
            ("key 2", "session.photo_read", "class-a", None),
        )
        run.call(
            "GET",
            f"{photo}/faces/0.jpg",
            TEACHER_A,
            200,
            ("key 2", "session.face_crop_read", "class-a", None),
        )
        run.call(
            "POST",
            f"{photo}/faces/0/assign",
            TEACHER_A,
            200,
            ("key 2", "face.assign", "class-a", "stu-1"),
            json={"student_id": "stu-1"},
        )
        samples = client.get(f"{a}/students/stu-1", headers=TEACHER_A).json()["samples"]
        assert samples  # the face the teacher named
        sample = f"{a}/students/stu-1/samples/{samples[0]['sample_id']}"
        run.call(
            "GET",
            f"{sample}.jpg",
            TEACHER_A,
            200,
            ("key 2", "sample.crop_read", "class-a", "stu-1"),
        )
        run.call("DELETE", sample, TEACHER_A, 204, ("key 2", "sample.delete", "class-a", "stu-1"))
        run.call(
            "PUT",
            f"{a}/sessions/mon/records/stu-1",
            TEACHER_A,
            200,
            ("key 2", "status.set", "class-a", "stu-1"),
            json={"status": "excused", "note": "Sheldon Cooper at the dentist"},
        )
        run.call(
            "DELETE",
            f"{a}/sessions/mon/records/stu-1",
            TEACHER_A,
            200,
            ("key 2", "status.clear", "class-a", "stu-1"),
        )
        export = run.call(
            "GET",
            f"{a}/students/stu-1/export",
            TEACHER_A,
            200,
            ("key 2", "student.export", "class-a", "stu-1"),
        )
        assert export.content[:2] == b"PK"
        run.call(
            "POST",
            f"{a}/head/train",
            TEACHER_A,
            202,
            ("key 2", "class.head_train", "class-a", None),
        )
        run.call(
            "POST",
            f"{a}/recognise",
            TEACHER_A,
            200,
            ("key 2", "class.recognise", "class-a", None),
            files={"photo": ("s.png", sheldon, "image/png")},
        )
        # Teacher A reaching into class B: refused, and recorded as such.
        run.call(
            "GET", f"{b}/students", TEACHER_A, 403, ("key 2", "access.denied", "class-b", None)
        )
        run.call(
            "GET",
            f"{b}/students/stu-2/thumbnail.jpg",
            TEACHER_A,
            403,
            ("key 2", "access.denied", "class-b", "stu-2"),
        )
        # Anonymous and wrong keys: 401, logged, never stored (anyone could fill the bucket).
        run.call("DELETE", a, {}, 401, None)
        run.call("DELETE", a, {"X-API-Key": "not-a-key-000000000000"}, 401, None)
        # Teacher B enrols and erases a student: the id stays in the log, the name nowhere.
        run.call(
            "POST",
            f"{b}/students",
            TEACHER_B,
            201,
            ("key 3", "student.enrol", "class-b", "stu-2"),
            data={"student_id": "stu-2", "name": "Penny Hofstadter"},
            files={"photos": ("p.png", cast_photos["penny"], "image/png")},
        )
        run.call(
            "POST",
            f"{b}/students/stu-2/photos",
            TEACHER_B,
            201,
            ("key 3", "student.photos_add", "class-b", "stu-2"),
            files={"photos": ("p.png", cast_photos["penny"], "image/png")},
        )
        run.call(
            "DELETE",
            f"{b}/students/stu-2",
            TEACHER_B,
            204,
            ("key 3", "student.delete", "class-b", "stu-2"),
        )
        run.call(
            "POST",
            f"{b}/sessions",
            TEACHER_B,
            201,
            ("key 3", "session.create", "class-b", None),
            json={"id": "tue", "label": "Tue"},
        )
        run.call(
            "DELETE",
            f"{b}/sessions/tue",
            TEACHER_B,
            204,
            ("key 3", "session.delete", "class-b", None),
        )
        # The mobile client needs no key here (ROLLCALL_LEGACY_AUTH=open): "mobile app".
        run.call(
            "POST",
            "/register/register-student",
            {},
            200,
            ("mobile app", "mobile.register_student", "default", "stu-3"),
            data={"student_name": "Stu 3"},
            files={"files": ("p.png", cast_photos["howard"], "image/png")},
        )
        run.call(
            "POST",
            "/mark/detect",
            {},
            200,
            ("mobile app", "mobile.detect", "default", None),
            files={"file": ("p.png", cast_photos["howard"], "image/png")},
        )
        # Deleting the class keeps its trail (the log is outside classes/).
        run.call("DELETE", b, ADMIN, 204, ("key 1", "class.delete", "class-b", None))
        yield run


def _summary(event: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
    return (event["actor"], event["action"], event["class_id"], event["student_id"])


def test_every_change_and_read_is_an_event_by_key_label(audited: Audited) -> None:
    events = audited.events(ADMIN)
    assert Counter(_summary(e) for e in events) == Counter(audited.expected)
    times = [dt.datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times, reverse=True)  # newest first
    assert all(
        e["outcome"] == ("denied" if e["action"] == "access.denied" else "ok") for e in events
    )
    by_action = {e["action"]: e for e in events}
    upload = by_action["session.photo_add"]
    assert upload["session_id"] == "mon" and upload["photo_id"]
    assign = by_action["face.assign"]
    assert (assign["photo_id"], assign["face_index"]) == (upload["photo_id"], 0)
    assert len(by_action["student.photos_add"]["photo_ids"]) == 1
    assert by_action["sample.delete"]["sample_id"] == by_action["sample.crop_read"]["sample_id"]
    denied = [e for e in events if e["action"] == "access.denied"]
    assert {e["request"] for e in denied} == {
        "GET /v1/classes/{class_id}/students",
        "GET /v1/classes/{class_id}/students/{student_id}/thumbnail.jpg",
    }
    # Every event is one object under audit/, none was rewritten.
    listed = audited.store.list(keys.AUDIT_PREFIX)
    assert len(listed) == len(events) == len(audited.expected)


def test_no_event_holds_a_name_a_note_or_an_image(audited: Audited) -> None:
    listed = audited.store.list(keys.AUDIT_PREFIX)
    assert listed
    for key in listed:
        body = audited.store.get(key)
        assert len(body) < 1000, key  # ids, not image data
        text = body.decode("utf-8").lower()
        for word in (*NAMES, "dentist"):
            assert word.lower() not in text, (key, word)
    # The erased student's id stays in the log; nothing else of them is anywhere.
    erased = audited.events(ADMIN, class_id="class-b")
    assert {e["action"] for e in erased if e["student_id"] == "stu-2"} == {
        "access.denied",  # teacher A's look at the thumbnail
        "student.enrol",
        "student.photos_add",
        "student.delete",
    }
    assert not [k for k in audited.store.list("") if "stu-2" in k and not k.startswith("audit/")]


def test_a_class_limited_key_sees_only_its_classes(audited: Audited) -> None:
    mine = audited.events(TEACHER_A)
    assert mine and {e["class_id"] for e in mine} == {"class-a"}
    assert audited.events(TEACHER_A, class_id="class-a") == mine
    theirs = audited.events(TEACHER_B)
    assert theirs and {e["class_id"] for e in theirs} == {"class-b"}
    everything = audited.events(ADMIN)
    assert {"class-a", "class-b", "default"} <= {e["class_id"] for e in everything}
    # Asking for another class's events is refused, and that refusal is an event of it.
    response = audited.client.get("/v1/audit", params={"class_id": "class-b"}, headers=TEACHER_A)
    assert response.status_code == 403
    audited.expected.append(("key 2", "access.denied", "class-b", None))
    newest = audited.events(ADMIN, class_id="class-b", limit="1")
    assert [(_summary(e), e["request"]) for e in newest] == [
        (("key 2", "access.denied", "class-b", None), "GET /v1/audit")
    ]


def test_dates_and_limits(audited: Audited) -> None:
    today = dt.datetime.now(dt.UTC).date()
    client = audited.client
    assert len(audited.events(ADMIN, limit="3")) == 3
    assert audited.events(ADMIN, **{"from": str(today), "to": str(today)}) == audited.events(ADMIN)
    yesterday = str(today - dt.timedelta(days=1))
    assert audited.events(ADMIN, **{"from": yesterday, "to": yesterday}) == []
    for params, reason in (
        ({"from": str(today), "to": yesterday}, "after"),
        ({"from": "2020-01-01", "to": str(today)}, "366 days"),
        ({"to": "not-a-date"}, "date"),
        ({"class_id": "../x"}, "class_id"),
        ({"limit": "0"}, "limit"),
    ):
        response = client.get("/v1/audit", params=params, headers=ADMIN)
        assert response.status_code == 422, (params, response.text)
        assert reason in response.json()["detail"], (params, response.text)
    assert client.get("/v1/audit").status_code == 401


def test_concurrent_requests_lose_no_event(audited: Audited) -> None:
    before = len(audited.events(ADMIN))
    barrier = threading.Barrier(20)

    def create(number: int) -> httpx.Response:
        barrier.wait(timeout=60)
        response: httpx.Response = audited.client.post(
            "/v1/classes/class-a/sessions",
            json={"id": f"c{number}", "label": "Concurrent"},
            headers=TEACHER_A,
        )
        return response

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(create, range(20)))
    assert [r.status_code for r in responses] == [201] * 20
    events = audited.events(ADMIN)
    assert len(events) == before + 20
    created = {e["session_id"] for e in events if e["action"] == "session.create"}
    assert {f"c{n}" for n in range(20)} <= created


class AuditDown(DelegatingStore):
    """The store refuses audit events (down) while ``down`` is set; everything else works."""

    down = True

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        if self.down and key.startswith(keys.AUDIT_PREFIX):
            raise StorageUnavailableError("audit refused", reason="storage server unreachable")
        super().put(key, data, content_type=content_type, if_absent=if_absent)


def test_a_change_succeeds_when_its_event_cannot_be_written_yet(
    make_object_store: Callable[..., ObjectStore], fast_face_pipeline: FacePipeline
) -> None:
    store = AuditDown(make_object_store())
    with running_app(fast_face_pipeline, store) as client:
        response = client.post("/v1/classes", json={"id": "c", "name": "C"})
        assert response.status_code == 201, response.text
        cleanup = context_of(client).cleanup
        assert cleanup.pending == 1 and store.list(keys.AUDIT_PREFIX) == []
        store.down = False
        cleanup.run_now()  # or the background retry, whichever comes first
        deadline = time.monotonic() + 30
        while cleanup.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cleanup.pending == 0
        [event] = client.get("/v1/audit").json()
        assert (event["actor"], event["action"], event["class_id"]) == (
            "console",
            "class.create",
            "c",
        )
