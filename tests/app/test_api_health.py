"""Start-up (models loaded once, fail fast), health probes, OpenAPI, and the event loop staying free."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.storage import DiskObjectStore, S3ObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import api_settings, context_of, running_app


def test_start_up_builds_the_models_and_the_store_from_settings(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    app = create_app(api_settings(data_dir=data_dir, n_views=2))
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["storage"] == f"disk:{data_dir.absolute()}"
        pipeline = context_of(client).inference.pipeline
        assert pipeline.config.n_views == 2
    assert data_dir.is_dir()


def test_start_up_fails_fast_when_a_model_cannot_load(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"this is not a state dict")
    app = create_app(api_settings(data_dir=tmp_path / "data", embedder_weights=broken))
    with pytest.raises(Exception), TestClient(app):  # noqa: B017 - any loader error will do
        pytest.fail("the app started with unloadable weights")
    # Models load before anything else: not even the data folder was created.
    assert not (tmp_path / "data").exists()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_readyz_is_503_while_storage_is_unreachable(fast_face_pipeline: FacePipeline) -> None:
    store = S3ObjectStore(
        "attendance",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        access_key_id="key",
        secret_access_key="secret",
        connect_timeout_s=0.5,
        max_attempts=1,
    )
    with running_app(fast_face_pipeline, store) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "unreachable" in response.json()["detail"]
        # Requests that need storage say so instead of failing with a 500.
        response = client.get("/v1/classes")
        assert response.status_code == 503
        assert "storage" in response.json()["detail"]


def test_openapi_documents_the_api(fast_face_pipeline: FacePipeline, tmp_path: Path) -> None:
    with running_app(fast_face_pipeline, DiskObjectStore(tmp_path)) as client:
        spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/register/register-student",
        "/mark/detect",
        "/v1/classes",
        "/v1/classes/{class_id}",
        "/v1/classes/{class_id}/students",
        "/v1/classes/{class_id}/students/{student_id}",
        "/v1/classes/{class_id}/students/{student_id}/photos",
        "/v1/classes/{class_id}/sessions",
        "/v1/classes/{class_id}/sessions/{session_id}",
        "/v1/classes/{class_id}/sessions/{session_id}/photos",
        "/v1/classes/{class_id}/sessions/{session_id}/attendance.csv",
        "/v1/classes/{class_id}/sessions/{session_id}/photos/{photo_id}/annotated.jpg",
        "/v1/classes/{class_id}/recognise",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    enrol = paths["/v1/classes/{class_id}/students"]["post"]
    assert {"201", "404", "409", "413", "422"} <= set(enrol["responses"])
    class_id = next(p for p in enrol["parameters"] if p["name"] == "class_id")
    assert class_id["schema"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,63}$"


def test_inference_never_blocks_the_event_loop(
    fast_face_pipeline: FacePipeline, tmp_path: Path, groups_dir: Path
) -> None:
    photo = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
    with running_app(fast_face_pipeline, DiskObjectStore(tmp_path)) as client:
        client.post("/v1/classes", json={"id": "c", "name": "c"})
        slots = context_of(client).inference._slots
        slots.acquire()  # the pipeline is "busy": recognition requests wait for it
        try:
            result: dict[str, int] = {}
            waiting = threading.Thread(
                target=lambda: result.setdefault(
                    "status",
                    client.post(
                        "/v1/classes/c/recognise", files={"photo": ("g.jpg", photo, "image/jpeg")}
                    ).status_code,
                )
            )
            waiting.start()
            time.sleep(0.5)
            assert waiting.is_alive(), "the recognition did not wait for the pipeline"
            # The event loop still answers while a request waits on inference.
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            assert client.get("/v1/classes").status_code == 200
            assert time.perf_counter() - started < 5
        finally:
            slots.release()
        waiting.join(timeout=60)
        assert result.get("status") == 200
