"""Two real service processes on one store (a folder, a bucket) writing audit events at the same
time: every event of both is kept, and each process lists the other's."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.s3server import S3ServerInfo
from harness.service_process import ServiceProcess, s3_environment_for

# two service processes (each loads the models)
pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-0123456789abcdef0123"
TEACHER_KEY = "teacher-0123456789abcdef01"
API_KEYS = f"{ADMIN_KEY};{TEACHER_KEY}:shared"
ADMIN = {"X-API-Key": ADMIN_KEY}
TEACHER = {"X-API-Key": TEACHER_KEY}
PER_PROCESS = 10


@pytest.fixture(params=["disk", "s3"])
def two_services(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    if request.param == "disk":
        environment = {"ROLLCALL_DATA_DIR": str(tmp_path / "data")}
    else:
        server: S3ServerInfo = request.getfixturevalue("s3_server")
        bucket = f"audit-{uuid.uuid4().hex[:12]}"
        server.client().create_bucket(Bucket=bucket)
        environment = s3_environment_for(server, bucket)
    environment["ROLLCALL_API_KEYS"] = API_KEYS
    services = (ServiceProcess(environment), ServiceProcess(environment))
    for service in services:  # side by side: start-up is mostly model loading
        service.launch()
    try:
        for service in services:
            service.wait_until_serving()
        yield services
    finally:
        for service in services:
            service.stop()


def test_both_processes_events_are_kept_and_listed(
    two_services: tuple[ServiceProcess, ServiceProcess],
) -> None:
    first, second = two_services
    with httpx.Client(base_url=first.url, timeout=60) as admin:
        created = admin.post("/v1/classes", json={"id": "shared", "name": "S"}, headers=ADMIN)
        assert created.status_code == 201, created.text
    barrier = threading.Barrier(2 * PER_PROCESS)
    statuses: list[int] = []
    lock = threading.Lock()

    def create(service: ServiceProcess, session_id: str) -> None:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            barrier.wait(timeout=60)
            response = client.post(
                "/v1/classes/shared/sessions",
                json={"id": session_id, "label": session_id},
                headers=TEACHER,
            )
        with lock:
            statuses.append(response.status_code)

    threads = [
        threading.Thread(target=create, args=(service, f"{name}-{n}"))
        for service, name in ((first, "p1"), (second, "p2"))
        for n in range(PER_PROCESS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [201] * (2 * PER_PROCESS)

    expected = {f"{name}-{n}" for name in ("p1", "p2") for n in range(PER_PROCESS)}
    listings = []
    for service in (first, second):
        with httpx.Client(base_url=service.url, timeout=60) as client:
            response = client.get("/v1/audit", headers=ADMIN)
            assert response.status_code == 200, response.text
            events = response.json()
        sessions = [e for e in events if e["action"] == "session.create"]
        assert sorted(e["session_id"] for e in sessions) == sorted(expected)
        assert {e["actor"] for e in sessions} == {"key 2"}
        assert [e["action"] for e in events].count("class.create") == 1
        listings.append(events)
    assert listings[0] == listings[1]  # the same log, whichever process is asked
