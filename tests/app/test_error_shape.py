"""One error shape (issue 14, point 5): every 4xx body has a human-readable ``detail`` string;
request-validation errors keep the field-by-field list under ``errors`` (not on the mobile calls,
whose bodies the app prints); every JSON reply says ``charset=utf-8``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.storage import DiskObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import running_app
from tests.app.dart_http import DartFile, json_body, multipart_request

API_KEY = "error-shape-key-0123456789"
JSON_UTF8 = "application/json; charset=utf-8"


@pytest.fixture
def client(fast_face_pipeline: FacePipeline, tmp_path: Path) -> Iterator[TestClient]:
    with running_app(
        fast_face_pipeline, DiskObjectStore(tmp_path), api_keys=API_KEY, max_upload_bytes=100_000
    ) as running:
        running.headers["X-API-Key"] = API_KEY
        yield running


def _refusal(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON_UTF8
    body: dict[str, Any] = json_body(response)
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


def test_request_validation_gives_a_sentence_and_the_list(client: TestClient) -> None:
    body = _refusal(client.post("/v1/classes", json={"id": "Bad Id!", "name": ""}), 422)
    assert body["detail"].startswith("id: String should match pattern")
    assert "; name: " in body["detail"]
    assert [error["loc"] for error in body["errors"]] == [["body", "id"], ["body", "name"]]
    assert body["errors"][0]["input"] == "Bad Id!"

    body = _refusal(client.get("/v1/classes/NOT_A_SLUG/students"), 422)
    assert body["detail"].startswith("class_id: ") and body["errors"][0]["loc"] == [
        "path",
        "class_id",
    ]

    body = _refusal(
        client.post(
            "/v1/classes", content=b'{"id": ', headers={"content-type": "application/json"}
        ),
        422,
    )
    assert body["detail"].startswith("body: not valid JSON")


def test_the_mobile_calls_print_a_sentence(client: TestClient) -> None:
    """The register page prints the body: it is ``{"detail": "..."}`` and nothing else."""
    body, headers = multipart_request({}, [DartFile("files", "a.jpg", b"\xff\xd8")])
    response = client.post("/register/register-student", content=body, headers=headers)
    assert _refusal(response, 422) == {"detail": "student_name: Field required"}

    body, headers = multipart_request(
        {"student_name": "Jürgen"}, [DartFile("files", "a.jpg", b"not an image")]
    )
    response = client.post("/register/register-student", content=body, headers=headers)
    refused = _refusal(response, 422)
    assert set(refused) == {"detail"} and "a.jpg" in refused["detail"]

    body, headers = multipart_request({}, [DartFile("photo", "a.jpg", b"x")])
    refused = _refusal(client.post("/mark/detect", content=body, headers=headers), 422)
    assert refused == {"detail": "file: Field required"}


def test_other_4xx_are_sentences(client: TestClient) -> None:
    assert _refusal(client.get("/no/such/page"), 404) == {"detail": "Not Found"}
    assert _refusal(client.delete("/healthz"), 405) == {"detail": "Method Not Allowed"}
    _refusal(client.get("/v1/classes/nope"), 404)
    unauthenticated = client.get("/v1/classes", headers={"X-API-Key": "wrong-key-0123456789"})
    assert _refusal(unauthenticated, 401) == {"detail": "invalid API key"}
    too_big = client.post(
        "/v1/classes/nope/recognise", files={"photo": ("big.jpg", b"x" * 200_000, "image/jpeg")}
    )
    assert "larger than" in _refusal(too_big, 413)["detail"]
    broken = client.post(
        "/v1/classes/nope/recognise",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data"},  # no boundary
    )
    _refusal(broken, 400)


def test_every_json_reply_says_utf8(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/v1/classes"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == JSON_UTF8, path
    # Not JSON: left alone.
    assert client.get("/docs").headers["content-type"] == "text/html; charset=utf-8"


def test_the_schema_documents_the_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "422" in operation["responses"]:
                schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ValidationErrorOut"}, (
                    method,
                    path,
                )
    assert "HTTPValidationError" not in spec["components"]["schemas"]
