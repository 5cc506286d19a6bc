"""Two real service processes on one bucket, registering and marking attendance at the same time:
no registration and no attendance record is lost, each process sees what the other stored, and a
student id created on both at once is created once.

Figures go to the log and, with ``$ROLLCALL_RELIABILITY_FIGURES`` set, to JSON (docs/reliability.md).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.storage import S3ObjectStore
from harness.reliability import (
    Acknowledged,
    Person,
    Photo,
    cast_people,
    find_half_written,
    find_lost,
    group_photos,
    other_people,
    record_figures,
)
from harness.s3server import S3ServerInfo
from harness.service_process import ServiceProcess, s3_environment_for

# two service processes on one real bucket
pytestmark = pytest.mark.slow


CLASS_ID = "shared"


@pytest.fixture(scope="module")
def two_services(
    s3_server: S3ServerInfo, shared_dir: Path
) -> Iterator[tuple[ServiceProcess, ServiceProcess, S3ObjectStore]]:
    bucket = f"two-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    environment = s3_environment_for(s3_server, bucket)
    services = (ServiceProcess(environment), ServiceProcess(environment))
    # Launched side by side (start-up is mostly model loading, which overlaps well), from this
    # thread: a service dies with the thread that started it.
    for service in services:
        service.launch()
    store = S3ObjectStore(
        bucket,
        endpoint_url=s3_server.endpoint_url,
        region=s3_server.region,
        access_key_id=s3_server.access_key_id,
        secret_access_key=s3_server.secret_access_key,
    )
    try:
        for service in services:
            service.wait_until_serving()
        yield services[0], services[1], store
    finally:
        for service in services:
            service.stop()


def _together(calls: list[Callable[[], None]]) -> None:
    barrier = threading.Barrier(len(calls))
    failures: list[BaseException] = []

    def run(call: Callable[[], None]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if failures:
        raise failures[0]


def test_two_processes_on_one_bucket_lose_nothing(
    two_services: tuple[ServiceProcess, ServiceProcess, S3ObjectStore],
    people_dir: Path,
    groups_dir: Path,
) -> None:
    first, second, store = two_services
    urls = (first.url, second.url)
    acknowledged = Acknowledged()
    lock = threading.Lock()
    statuses: list[int] = []
    with httpx.Client(base_url=first.url, timeout=120) as admin:
        assert admin.post("/v1/classes", json={"id": CLASS_ID, "name": "Shared"}).status_code == 201
        sessions = [f"lesson-{i}" for i in range(4)]
        for session_id in sessions:
            response = admin.post(
                f"/v1/classes/{CLASS_ID}/sessions", json={"id": session_id, "label": session_id}
            )
            assert response.status_code == 201
    cast = cast_people(people_dir)
    everyone = other_people(people_dir)
    others = everyone[:6]
    groups = group_photos(groups_dir)

    def register(url: str, people: list[Person]) -> Callable[[], None]:
        def call() -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                for person in people:
                    response = client.post(
                        f"/v1/classes/{CLASS_ID}/students",
                        data={"student_id": person.student_id, "name": person.name},
                        files={"photos": person.photo.file()},
                    )
                    with lock:
                        statuses.append(response.status_code)
                        acknowledged.note_registration(CLASS_ID, person.student_id, response)

        return call

    def mark(url: str, offset: int, photos: list[Photo]) -> Callable[[], None]:
        def call() -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                # Both processes send photos to the same sessions: their records race.
                for index in range(len(sessions)):
                    session_id = sessions[index % len(sessions)]
                    photo = photos[(index + offset) % len(photos)]
                    response = client.post(
                        f"/v1/classes/{CLASS_ID}/sessions/{session_id}/photos",
                        files={"photo": photo.file()},
                    )
                    with lock:
                        statuses.append(response.status_code)
                        acknowledged.note_attendance(CLASS_ID, session_id, response)

        return call

    # Phase 1: the cast is enrolled through both processes at once, while both mark attendance.
    started = time.monotonic()
    _together(
        [
            register(urls[0], cast[0::2] + others[0::2]),
            register(urls[1], cast[1::2] + others[1::2]),
            mark(urls[0], 0, groups),
            mark(urls[1], 1, groups),
        ]
    )
    # Phase 2: the same new id on both processes at the same moment: created exactly once.
    racer = everyone[6]
    race: list[int] = []

    def create_on(url: str) -> Callable[[], None]:
        def call() -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                response = client.post(
                    f"/v1/classes/{CLASS_ID}/students",
                    data={"student_id": "twin", "name": "Twin"},
                    files={"photos": racer.photo.file()},
                )
                with lock:
                    race.append(response.status_code)

        return call

    _together([create_on(urls[0]), create_on(urls[1])])
    elapsed = time.monotonic() - started
    assert sorted(race) == [201, 409]
    acknowledged.students[CLASS_ID].add("twin")

    # Phase 3: with the cast in, both processes send the photo of the whole cast to every session.
    _together([mark(urls[0], 0, groups[:1]), mark(urls[1], 0, groups[:1])])

    assert set(statuses) <= {201}, statuses  # no error at all, no conflict
    assert find_half_written(store, [CLASS_ID]) == []
    for url in urls:  # each process sees everything, including what the other one stored
        with httpx.Client(base_url=url, timeout=120) as client:
            assert find_lost(client, store, acknowledged) == []
            # A student registered through the other process is recognised here.
            for person in (cast[0], cast[1]):
                faces = client.post(
                    f"/v1/classes/{CLASS_ID}/recognise", files={"photo": person.photo.file()}
                ).json()["faces"]
                assert [face["student_id"] for face in faces] == [person.student_id]
    with httpx.Client(base_url=first.url, timeout=120) as client:
        present = {
            session_id: sum(
                entry["present"]
                for entry in client.get(f"/v1/classes/{CLASS_ID}/sessions/{session_id}").json()[
                    "roster"
                ]
            )
            for session_id in sessions
        }
    assert all(count >= 4 for count in present.values()), present  # the cast was marked
    record_figures(
        "two_processes",
        {
            "registrations_acknowledged": acknowledged.student_count,
            "attendance_records_acknowledged": acknowledged.record_count,
            "requests": len(statuses) + len(race),
            "errors": sum(status >= 400 for status in statuses),
            "same_id_race": sorted(race),
            "present_per_session": present,
            "lost": 0,
            "phase_1_and_2_seconds": round(elapsed, 1),
        },
    )
