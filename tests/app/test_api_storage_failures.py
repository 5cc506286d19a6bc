"""A storage failure half-way through a request gives 503 and leaves nothing half-written.

The store is the real disk backend behind a thin wrapper that refuses chosen writes, the only way
to make a write fail at an exact point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.storage import DiskObjectStore, ObjectStore, StorageUnavailableError
from ml.pipeline import FacePipeline
from tests.app.conftest import is_photo_embedding, running_app, trainer_of
from tests.app.delegating_store import DelegatingStore

# every storage failure point of registration and attendance, real models
pytestmark = pytest.mark.slow


class FailingStore(DelegatingStore):
    """Delegates to ``inner``; ``put`` raises for keys ``fail_on`` selects (while it is set)."""

    def __init__(self, inner: ObjectStore):
        super().__init__(inner)
        self.fail_on: Callable[[str], bool] | None = None

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        if self.fail_on is not None and self.fail_on(key):
            raise StorageUnavailableError(f"injected failure writing {key}")
        super().put(key, data, content_type=content_type, if_absent=if_absent)

    @property
    def description(self) -> str:
        return f"failing {self.inner.description}"


@pytest.fixture
def store(tmp_path: Path) -> FailingStore:
    return FailingStore(DiskObjectStore(tmp_path))


@pytest.fixture
def client(fast_face_pipeline: FacePipeline, store: FailingStore) -> Iterator[TestClient]:
    with running_app(fast_face_pipeline, store) as client:
        assert client.post("/v1/classes", json={"id": "c", "name": "c"}).status_code == 201
        yield client


def _photo(people_dir: Path, name: str, n: int = 1) -> tuple[str, bytes, str]:
    path = people_dir / f"face_api_js__{name}" / f"{name}{n}.png"
    return (path.name, path.read_bytes(), "image/png")


def _nth_match(matches: Callable[[str], bool], n: int) -> Callable[[str], bool]:
    """Fails the ``n``-th write (1-based) of a key that ``matches``, and every later one."""
    seen = 0

    def select(key: str) -> bool:
        nonlocal seen
        if matches(key):
            seen += 1
        return seen >= n

    return select


def test_failed_enrolment_stores_nothing(
    client: TestClient, store: FailingStore, people_dir: Path
) -> None:
    trainer_of(client).wait_idle(timeout=120)  # no background write during the comparison
    before = store.list("")
    store.fail_on = _nth_match(is_photo_embedding, 2)  # the second photo's embeddings
    response = client.post(
        "/v1/classes/c/students",
        data={"student_id": "sheldon", "name": "Sheldon"},
        files=[
            ("photos", _photo(people_dir, "sheldon", 1)),
            ("photos", _photo(people_dir, "sheldon", 2)),
        ],
    )
    assert response.status_code == 503
    assert store.list("") == before
    store.fail_on = None
    assert client.get("/v1/classes/c/students").json() == []


def test_failed_photo_addition_keeps_the_student_as_it_was(
    client: TestClient, store: FailingStore, people_dir: Path
) -> None:
    response = client.post(
        "/v1/classes/c/students",
        data={"student_id": "raj", "name": "Raj"},
        files={"photos": _photo(people_dir, "raj", 1)},
    )
    assert response.status_code == 201
    trainer_of(client).wait_idle(timeout=120)  # no background write during the comparison
    before = store.list("")
    store.fail_on = _nth_match(is_photo_embedding, 1)
    response = client.post(
        "/v1/classes/c/students/raj/photos", files={"photos": _photo(people_dir, "raj", 2)}
    )
    assert response.status_code == 503
    assert store.list("") == before


def test_failed_mobile_registration_stores_nothing(
    client: TestClient, store: FailingStore, people_dir: Path
) -> None:
    ok = client.post(
        "/register/register-student",
        data={"student_name": "Howard"},
        files={"files": _photo(people_dir, "howard", 1)},
    )
    assert ok.status_code == 200
    trainer_of(client).wait_idle(timeout=120)  # no background write during the comparison
    before = store.list("")
    store.fail_on = _nth_match(lambda key: key.endswith(".jpg"), 1)
    response = client.post(
        "/register/register-student",
        data={"student_name": "Penny"},
        files={"files": _photo(people_dir, "penny", 1)},
    )
    assert response.status_code == 503
    assert store.list("") == before


def test_failed_session_photo_records_nobody(
    client: TestClient, store: FailingStore, people_dir: Path, groups_dir: Path
) -> None:
    for name in ("sheldon", "raj", "howard", "leonard"):
        response = client.post(
            "/v1/classes/c/students",
            data={"student_id": name, "name": name},
            files={"photos": _photo(people_dir, name)},
        )
        assert response.status_code == 201
    client.post("/v1/classes/c/sessions", json={"id": "s", "label": "s"})
    group = ("g.jpg", (groups_dir / "face_api_js__bbt3.jpg").read_bytes(), "image/jpeg")
    # What the photo records when storage works (no attendance is stored by /recognise).
    recognised = client.post("/v1/classes/c/recognise", files={"photo": group}).json()["faces"]
    known = {face["student_id"] for face in recognised if face["known"]}
    assert len(known) >= 2, "need two recognised students to fail between their records"
    trainer_of(client).wait_idle(timeout=120)  # no background write during the comparison
    before = store.list("")
    store.fail_on = lambda key: (
        "/records/" in key and len(store.list("classes/c/sessions/s/records/")) >= 1
    )
    response = client.post("/v1/classes/c/sessions/s/photos", files={"photo": group})
    assert response.status_code == 503
    assert store.list("") == before
    store.fail_on = None
    assert client.get("/v1/classes/c/sessions/s").json()["present_count"] == 0
