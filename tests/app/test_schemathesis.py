"""Schemathesis over the app's own OpenAPI schema: generated requests (valid and invalid) on every
operation never get a 5xx, and every response matches the schema (status, content type, body).

The app runs in-process with the real models and a disk store holding a class ``room`` with one
student and one session; generated ``class_id``/``session_id`` are pointed at them most of the
time, so the calls reach the services instead of stopping at 404. Bounded: a few examples per
operation, no shrinking; failures are collected and reported together (with a curl command).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.storage import DiskObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import running_app

# property-based requests over the whole API
pytestmark = pytest.mark.slow


logger = logging.getLogger(__name__)

API_KEY = "schemathesis-key-0123456789"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Target:
    client: TestClient
    schema: Any
    headers: dict[str, str]


@pytest.fixture(params=["open", "api-keys"])
def target(
    request: pytest.FixtureRequest,
    fast_face_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
    tmp_path: Path,
) -> Iterator[Target]:
    keyed = request.param == "api-keys"
    options: dict[str, Any] = {"api_keys": API_KEY} if keyed else {}
    headers = {"X-API-Key": API_KEY} if keyed else {}
    with running_app(
        fast_face_pipeline, DiskObjectStore(tmp_path / "store"), max_upload_bytes=500_000, **options
    ) as client:
        assert client.post(
            "/v1/classes", json={"id": "room", "name": "Room"}, headers=headers
        ).is_success
        response = client.post(
            "/v1/classes/room/students",
            data={"student_id": "sheldon", "name": "Sheldon"},
            files={"photos": ("s.png", cast_photos["sheldon"], "image/png")},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        response = client.post(
            "/v1/classes/room/sessions", json={"id": "monday", "label": "Mon"}, headers=headers
        )
        assert response.status_code == 201
        assert isinstance(client.app, FastAPI)
        schema = schemathesis.openapi.from_dict(client.app.openapi())
        yield Target(client, schema, headers)


_KNOWN = {"class_id": "room", "session_id": "monday", "student_id": "sheldon"}


def _aim(case: Any, aim: bool) -> None:
    """Point generated ids at the seeded data (never for DELETE: the data must survive)."""
    if not aim or case.method.upper() == "DELETE" or not case.path_parameters:
        return
    for name, value in _KNOWN.items():
        if name in case.path_parameters:
            case.path_parameters[name] = value


def _send(target: Target, case: Any) -> Any:
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=target.headers)
    files = kwargs.pop("files", None)
    data = kwargs.pop("data", None)
    kwargs.pop("cookies", None)
    body = kwargs.pop("json", None)
    request: dict[str, Any] = {
        "method": kwargs.pop("method"),
        "url": kwargs.pop("url"),
        "headers": kwargs.pop("headers", None),
        "params": kwargs.pop("params", None),
    }
    if files:
        request["files"] = [_httpx_file(item) for item in files]
        if isinstance(data, dict):
            request["data"] = data
        request["headers"] = {
            k: v for k, v in (request["headers"] or {}).items() if k.lower() != "content-type"
        }
    elif body is not None:
        request["json"] = body
    elif data is not None:
        request["content"] = data if isinstance(data, bytes | str) else str(data)
    return target.client.request(**request)


def _httpx_file(item: tuple[str, Any]) -> tuple[str, Any]:
    name, value = item
    if isinstance(value, tuple) and value[0] is None:
        # A plain form field: httpx wants a file-like tuple with a name, so send it as text data.
        content = value[1]
        return name, ("", content if isinstance(content, bytes | str) else str(content))
    return name, value


def _run_operation(target: Target, operation: Any, examples: int) -> list[str]:
    failures: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy(), aim=st.integers(0, 3).map(lambda n: n != 0))
    def run(case: Any, aim: bool) -> None:
        _aim(case, aim)
        response = _send(target, case)
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as error:  # schemathesis raises a group of check failures
            failures.append(
                f"{operation.method.upper()} {operation.path} -> {response.status_code}: "
                f"{str(error)[:600]}"
            )

    run()
    return failures


@pytest.mark.timeout(300)
def test_generated_requests_never_break_the_api(target: Target) -> None:
    operations = [result.ok() for result in target.schema.get_all_operations()]
    assert len(operations) >= 20
    examples = 12 if not target.headers else 6
    failures: list[str] = []
    for operation in operations:
        failures += _run_operation(target, operation, examples)
    assert not failures, "\n\n".join(failures[:15])
    # The seeded data survived the run (generated DELETEs never hit it).
    assert target.client.get("/v1/classes/room", headers=target.headers).status_code == 200
