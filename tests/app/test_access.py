"""API keys: 401 without a valid key, 403 outside a key's classes, the mobile client's own switch,
constant-time comparison, and keys that never reach logs, responses or error messages."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api_keys import parse_api_keys
from app.main import create_app
from app.records import keys
from app.security import CLASS_INDEPENDENT_ROUTES, AccessPolicy
from app.storage import DiskObjectStore, ObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import api_settings, running_app

ADMIN_KEY = "admin-0123456789abcdef0123"
TEACHER_A_KEY = "teacher-a-0123456789abcdef"
TEACHER_B_KEY = "teacher-b-0123456789abcdef"
ALL_KEYS = (ADMIN_KEY, TEACHER_A_KEY, TEACHER_B_KEY)
API_KEYS = f"{ADMIN_KEY};{TEACHER_A_KEY}:class-a,class-new;\n{TEACHER_B_KEY}:class-b,default"

ADMIN = {"X-API-Key": ADMIN_KEY}
TEACHER_A = {"X-API-Key": TEACHER_A_KEY}
TEACHER_B = {"X-API-Key": TEACHER_B_KEY}


@dataclass
class Keyed:
    client: TestClient
    store: ObjectStore
    app: FastAPI


def _photo(cast_photos: dict[str, bytes], name: str) -> dict[str, Any]:
    return {"photos": (f"{name}1.png", cast_photos[name], "image/png")}


@pytest.fixture(scope="module")
def keyed(
    fast_face_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Keyed]:
    """Two classes with a student and a session each, behind three keys."""
    store = DiskObjectStore(tmp_path_factory.mktemp("keyed"))
    with running_app(fast_face_pipeline, store, api_keys=API_KEYS) as client:
        for class_id, student in (("class-a", "sheldon"), ("class-b", "penny")):
            response = client.post(
                "/v1/classes", json={"id": class_id, "name": class_id.upper()}, headers=ADMIN
            )
            assert response.status_code == 201, response.text
            response = client.post(
                f"/v1/classes/{class_id}/students",
                data={"student_id": student, "name": student.title()},
                files=_photo(cast_photos, student),
                headers=ADMIN,
            )
            assert response.status_code == 201, response.text
            response = client.post(
                f"/v1/classes/{class_id}/sessions",
                json={"id": "monday", "label": "Mon"},
                headers=ADMIN,
            )
            assert response.status_code == 201, response.text
        assert isinstance(client.app, FastAPI)
        yield Keyed(client, store, client.app)


def _v1_operations(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) under /v1, including routes added after this test was written."""
    operations = [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) >= 15, "the /v1 routes were not found"
    return operations


def _data_keys(store: ObjectStore) -> list[str]:
    """Every key but the audit log's (a refusal is an event there)."""
    return [key for key in store.list("") if not key.startswith(keys.AUDIT_PREFIX)]


def _fill(path: str, class_id: str) -> str:
    filled = path.replace("{class_id}", class_id)
    return re.sub(r"\{[a-z_]+\}", "x", filled)


def test_every_v1_call_needs_a_key(keyed: Keyed) -> None:
    for method, path in _v1_operations(keyed.app):
        url = _fill(path, "class-a")
        response = keyed.client.request(method, url)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"].startswith("ApiKey")
        assert "X-API-Key" in response.json()["detail"]
        wrong = keyed.client.request(method, url, headers={"X-API-Key": "not-a-key-000000000000"})
        assert wrong.status_code == 401, (method, path)
        assert wrong.json()["detail"] == "invalid API key"


def test_a_scoped_key_is_refused_on_every_other_class(keyed: Keyed) -> None:
    before = _data_keys(keyed.store)
    audited_before = len(keyed.store.list(keys.AUDIT_PREFIX))
    refused = 0
    for method, path in _v1_operations(keyed.app):
        response = keyed.client.request(method, _fill(path, "class-b"), headers=TEACHER_A)
        if "{class_id}" in path:
            assert response.status_code == 403, (method, path, response.text)
            assert "class-b" in response.json()["detail"]
            refused += 1
        elif (method, path) not in CLASS_INDEPENDENT_ROUTES:
            # A call spanning every class that nobody has made scope-aware: refused, not leaked.
            assert response.status_code == 403, (method, path, response.text)
            refused += 1
    assert _data_keys(keyed.store) == before
    # Every refusal is an event of the audit log, by the key's label.
    assert len(keyed.store.list(keys.AUDIT_PREFIX)) == audited_before + refused


def test_a_scoped_key_works_on_its_own_class(keyed: Keyed, cast_photos: dict[str, bytes]) -> None:
    client = keyed.client
    assert client.get("/v1/classes/class-a", headers=TEACHER_A).status_code == 200
    students = client.get("/v1/classes/class-a/students", headers=TEACHER_A).json()
    assert [s["id"] for s in students] == ["sheldon"]
    response = client.post(
        "/v1/classes/class-a/recognise",
        files={"photo": ("s.png", cast_photos["sheldon"], "image/png")},
        headers=TEACHER_A,
    )
    assert response.status_code == 200, response.text
    assert response.json()["names"] == ["Sheldon"]
    # The same call on class B with the same key: refused, and nothing is recognised there.
    response = client.post(
        "/v1/classes/class-b/recognise",
        files={"photo": ("p.png", cast_photos["penny"], "image/png")},
        headers=TEACHER_A,
    )
    assert response.status_code == 403


def test_enrolment_into_another_class_is_refused_and_stores_nothing(
    keyed: Keyed, cast_photos: dict[str, bytes]
) -> None:
    before = _data_keys(keyed.store)
    response = keyed.client.post(
        "/v1/classes/class-b/students",
        data={"student_id": "intruder", "name": "Intruder"},
        files=_photo(cast_photos, "raj"),
        headers=TEACHER_A,
    )
    assert response.status_code == 403
    assert _data_keys(keyed.store) == before


def test_listing_classes_shows_only_the_key_classes(keyed: Keyed) -> None:
    def listed(headers: dict[str, str]) -> set[str]:
        response = keyed.client.get("/v1/classes", headers=headers)
        assert response.status_code == 200
        return {c["id"] for c in response.json()}

    assert {"class-a", "class-b"} <= listed(ADMIN)
    assert listed(TEACHER_A) == {"class-a"}
    assert listed(TEACHER_B) == {"class-b"}


def test_a_scoped_key_creates_only_classes_of_its_scope(keyed: Keyed) -> None:
    client = keyed.client
    response = client.post("/v1/classes", json={"id": "class-c", "name": "C"}, headers=TEACHER_A)
    assert response.status_code == 403
    assert not keyed.store.exists("classes/class-c/class.json")
    response = client.post("/v1/classes", json={"id": "class-new", "name": "N"}, headers=TEACHER_A)
    assert response.status_code == 201, response.text
    assert client.delete("/v1/classes/class-new", headers=TEACHER_A).status_code == 204


def test_probes_and_docs_stay_open(keyed: Keyed) -> None:
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert keyed.client.get(path).status_code == 200, path
    # The web console's static files live outside /v1 and never ask for a key.
    for path in ("/", "/console/", "/console/app.js"):
        assert keyed.client.get(path).status_code != 401, path


def test_openapi_documents_the_key_header(keyed: Keyed) -> None:
    schema = keyed.client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("name") == "X-API-Key" and s.get("in") == "header" for s in schemes.values())
    operation = schema["paths"]["/v1/classes/{class_id}"]["get"]
    assert operation.get("security")
    assert {"401", "403"} <= set(operation["responses"])


def test_mobile_calls_are_open_by_default(keyed: Keyed, cast_photos: dict[str, bytes]) -> None:
    response = keyed.client.post(
        "/mark/detect", files={"file": ("s.png", cast_photos["sheldon"], "image/png")}
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def locked_mobile(
    fast_face_pipeline: FacePipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Keyed]:
    """Mobile calls locked, acting on the class ``class-b``."""
    store = DiskObjectStore(tmp_path_factory.mktemp("locked"))
    with running_app(
        fast_face_pipeline,
        store,
        api_keys=API_KEYS,
        legacy_auth="api-key",
        legacy_class="class-b",
    ) as client:
        assert isinstance(client.app, FastAPI)
        yield Keyed(client, store, client.app)


def test_locked_mobile_calls_need_a_key_for_their_class(
    locked_mobile: Keyed, cast_photos: dict[str, bytes]
) -> None:
    client = locked_mobile.client

    def register(headers: dict[str, str] | None) -> Any:
        return client.post(
            "/register/register-student",
            files={"files": ("penny1.png", cast_photos["penny"], "image/png")},
            data={"student_name": "Penny"},
            headers=headers,
        )

    def detect(headers: dict[str, str] | None) -> Any:
        return client.post(
            "/mark/detect",
            files={"file": ("p.png", cast_photos["penny"], "image/png")},
            headers=headers,
        )

    for call in (register, detect):
        assert call(None).status_code == 401
        assert call({"X-API-Key": "wrong-key-0000000000000"}).status_code == 401
        assert call(TEACHER_A).status_code == 403  # class-a only; the mobile class is class-b
    assert _data_keys(locked_mobile.store) == []
    response = register(TEACHER_B)
    assert response.status_code == 200, response.text
    # It went into the configured class, not into ``default``.
    students = client.get("/v1/classes/class-b/students", headers=ADMIN).json()
    assert [s["id"] for s in students] == ["penny"]
    assert client.get("/v1/classes/default", headers=ADMIN).status_code == 404
    response = detect(ADMIN)
    assert response.status_code == 200
    assert response.json()["names"] == ["Penny"]


def test_unauthenticated_upload_is_refused_before_its_body_is_read() -> None:
    """The middleware answers 401 without asking the server for a single body chunk."""
    app = create_app(api_settings(api_keys=API_KEYS), pipeline=None, store=None)
    body_reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal body_reads
        body_reads += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/classes/class-a/students",
        "raw_path": b"/v1/classes/class-a/students",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"multipart/form-data; boundary=x")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 401
    assert body_reads == 0


def test_keys_are_compared_in_constant_time_against_every_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = AccessPolicy(keys=parse_api_keys(API_KEYS))
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented in (ADMIN_KEY, TEACHER_B_KEY, "nope", "x" * 5000):
        calls.clear()
        policy.identify(presented)
        # Every key is compared, whichever matched (no early exit), on equal-length digests.
        assert len(calls) == len(ALL_KEYS)
        assert all(len(a) == len(b) == 32 for a, b in calls)
    key = policy.identify(TEACHER_B_KEY)
    assert key is not None
    assert key.label == "key 3"
    assert key.classes == frozenset({"class-b", "default"})
    assert policy.identify(TEACHER_B_KEY + " ") is None
    assert policy.identify(TEACHER_B_KEY[:-1]) is None


def test_keys_never_reach_logs_responses_or_reprs(
    keyed: Keyed, caplog: pytest.LogCaptureFixture, cast_photos: dict[str, bytes]
) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [
        keyed.client.get("/v1/classes/class-a", headers=ADMIN),
        keyed.client.get("/v1/classes/class-b", headers=TEACHER_A),
        keyed.client.get("/v1/classes", headers={"X-API-Key": TEACHER_A_KEY + "x"}),
        keyed.client.get("/v1/classes"),
        keyed.client.post(
            "/v1/classes/class-b/students",
            data={"student_id": "x", "name": "X"},
            files=_photo(cast_photos, "raj"),
            headers=TEACHER_A,
        ),
        keyed.client.post("/v1/classes", json={"id": "Bad Id", "name": ""}, headers=ADMIN),
    ]
    assert [r.status_code for r in responses] == [200, 403, 401, 401, 403, 422]
    assert any("refused" in record.getMessage() for record in caplog.records)
    settings = api_settings(
        api_keys=API_KEYS, aws_access_key_id="AKIA0000", aws_secret_access_key="s"
    )
    exposed = [caplog.text, repr(settings), str(settings), settings.model_dump_json()]
    exposed += [r.text + str(r.headers) for r in responses]
    for text in exposed:
        for key in ALL_KEYS:
            assert key not in text
    assert "AKIA0000" not in repr(settings)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("short-key", "at least 16"),
        (f"{ADMIN_KEY};tiny", "entry 2: the key has 4 characters"),
        ("has spaces in the middle 0123456789", "may only contain"),
        (f"{ADMIN_KEY}:Bad Class", "invalid class id"),
        (f"{ADMIN_KEY};{ADMIN_KEY}:class-a", "configured twice"),
        (" ; ", "holds no key"),
    ],
)
def test_bad_keys_are_refused_at_start_up_without_quoting_them(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as error:
        api_settings(api_keys=value)
    for secret in (value, "short-key", "tiny", ADMIN_KEY):
        assert secret not in str(error.value)


def test_a_one_sided_aws_credential_error_does_not_quote_it() -> None:
    with pytest.raises(ValidationError, match="set both") as error:
        api_settings(aws_access_key_id="AKIA-ONE-SIDED-0000")
    assert "AKIA-ONE-SIDED-0000" not in str(error.value)


def test_locking_the_mobile_calls_needs_keys() -> None:
    with pytest.raises(ValidationError, match="needs ROLLCALL_API_KEYS"):
        api_settings(legacy_auth="api-key")
    with pytest.raises(ValidationError, match="legacy_class"):
        api_settings(legacy_class="../etc")


def test_without_keys_the_api_stays_open(tmp_path: Path, fast_face_pipeline: FacePipeline) -> None:
    with running_app(fast_face_pipeline, DiskObjectStore(tmp_path)) as client:
        assert client.get("/v1/classes").status_code == 200
        schema = client.get("/openapi.json").json()
        assert "securitySchemes" not in schema.get("components", {})
