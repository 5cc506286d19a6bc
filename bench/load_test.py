"""Bounded loopback load test: SeaweedFS and the service as real processes, a class enrolled from
real photos, then mixed requests from concurrent clients; afterwards every acknowledged
registration and attendance record is checked, and the bucket for half-written objects.

::

    uv run python -m bench.load_test --requests 500 --clients 16 --out docs/load_test.json

Registrations (``POST /v1/classes/{c}/students``, one photo each of a new LFW identity; a photo
refused with 422 for no or several faces is counted apart, not as an error), attendance photos
(``POST .../sessions/{s}/photos`` with the face-api.js group photos) and reads (student list,
roster, attendance CSV, class, session list) are mixed in a seeded random order and sent by
``--clients`` asyncio clients (httpx) as fast as the service answers. Written: throughput, latency
percentiles per kind, errors (any non-2xx), lost records, service memory before and after, and the
machine (CPU, cores, load average: other work on the machine shows in the latencies).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from harness.reliability import (
    Acknowledged,
    Person,
    Photo,
    cast_people,
    find_half_written,
    find_lost,
    group_photos,
    other_people,
)
from harness.s3server import S3ServerInfo, SeaweedS3Server
from harness.service_process import ServiceProcess, s3_environment_for
from ml.eval.shared_data import shared_dir

logger = logging.getLogger("bench.load_test")

REPO_DIR = Path(__file__).resolve().parents[1]
CLASS_ID = "load"
SESSIONS = 10

MIX = {"register": 0.2, "attendance": 0.2, "read": 0.6}
"""Share of each kind of request: a school day is mostly reads (rosters, lists, CSV exports)."""
READS = ("students", "roster", "csv", "class", "sessions")


@dataclass(frozen=True)
class LoadConfig:
    requests: int = 500
    clients: int = 16
    n_views: int | None = None
    """Views per registration photo; ``None`` = the service default (15)."""
    seed: int = 0
    enrolled_before: int = 20
    """Students enrolled before the load (the cast and others), not counted in the figures."""


@dataclass(frozen=True)
class Request:
    kind: str
    detail: str
    person: Person | None = None
    session_id: str | None = None
    photo: Photo | None = None


@dataclass(frozen=True)
class Result:
    kind: str
    detail: str
    status: int
    started: float
    seconds: float
    error: str = ""


def run_load(config: LoadConfig, server: S3ServerInfo, shared_dir: Path) -> dict[str, Any]:
    """Start the service on a fresh bucket of ``server``, enrol, load, verify; returns the figures."""
    bucket = f"load-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=bucket)
    environment = s3_environment_for(server, bucket)
    environment["ROLLCALL_LOG_LEVEL"] = "WARNING"
    if config.n_views is not None:
        environment["ROLLCALL_N_VIEWS"] = str(config.n_views)
    else:
        environment["ROLLCALL_N_VIEWS"] = ""  # unset: the service default
    store = server.object_store(bucket)
    people_dir = shared_dir / "faces" / "people"
    groups = group_photos(shared_dir / "faces" / "groups")
    with ServiceProcess(environment) as service:
        figures: dict[str, Any] = {
            "service_startup_seconds": round(service.startup_seconds or 0, 1)
        }
        acknowledged = Acknowledged()
        with httpx.Client(base_url=service.url, timeout=300) as client:
            enrolled, enrol_s, usable = _enrol_class(client, config, people_dir, acknowledged)
            figures["enrolled_before_load"] = enrolled
            figures["enrolment_seconds"] = round(enrol_s, 1)
            newcomers = _lfw_people(shared_dir / "faces" / "lfw") or usable
            requests = _plan(config, newcomers, groups)
            rss_before = service.rss_bytes()
            with _sample_rss(service) as peak:
                started = time.monotonic()
                results = asyncio.run(_drive(service.url, requests, config.clients, acknowledged))
                duration = time.monotonic() - started
            rss_after = service.rss_bytes()
            lost = find_lost(client, store, acknowledged)
            half_written = find_half_written(store, [CLASS_ID])
    figures.update(_summarise(results, duration))
    figures.update(
        {
            "acknowledged_registrations": acknowledged.student_count,
            "acknowledged_attendance_records": acknowledged.record_count,
            "lost": len(lost),
            "lost_examples": lost[:5],
            "half_written": len(half_written),
            "half_written_examples": half_written[:5],
            "service_rss_mib_before": round(rss_before / 2**20, 1),
            "service_rss_mib_after": round(rss_after / 2**20, 1),
            "service_rss_mib_peak": round(max(peak) / 2**20, 1) if peak else None,
        }
    )
    return figures


def _enrol_class(
    client: httpx.Client, config: LoadConfig, people_dir: Path, acknowledged: Acknowledged
) -> tuple[int, float, list[Person]]:
    """The class, its first students and the sessions; returns the people enrolled (their photos
    are registered again under new ids during the load)."""
    started = time.monotonic()
    client.post("/v1/classes", json={"id": CLASS_ID, "name": "Load test"}).raise_for_status()
    usable: list[Person] = []
    for person in cast_people(people_dir) + other_people(people_dir):
        if len(usable) == config.enrolled_before:
            break
        response = client.post(
            f"/v1/classes/{CLASS_ID}/students",
            data={"student_id": person.student_id, "name": person.name},
            files={"photos": person.photo.file()},
        )
        if response.status_code == 422:
            logger.info("%s: photo not usable for registration: %s", person.name, response.text)
            continue
        response.raise_for_status()
        acknowledged.note_registration(CLASS_ID, person.student_id, response)
        usable.append(person)
    for index in range(SESSIONS):
        client.post(
            f"/v1/classes/{CLASS_ID}/sessions", json={"id": f"s{index}", "label": f"Lesson {index}"}
        ).raise_for_status()
    return len(usable), time.monotonic() - started, usable


def _lfw_people(lfw_dir: Path) -> list[Person]:
    """One photo of each LFW identity: distinct faces to register during the load (registering a
    known face again under a new id would make both unrecognisable, by the cohort score)."""
    if not lfw_dir.is_dir():
        return []
    people = []
    for folder in sorted(p for p in lfw_dir.iterdir() if p.is_dir()):
        photo = folder / f"{folder.name}_0001.jpg"
        if photo.is_file():
            slug = "lfw-" + "".join(c if c.isalnum() else "-" for c in folder.name.lower())
            people.append(
                Person(
                    slug[:56],
                    folder.name.replace("_", " "),
                    Photo(photo.name, photo.read_bytes()),
                    folder,
                )
            )
    return people


def _plan(config: LoadConfig, people: list[Person], groups: list[Photo]) -> list[Request]:
    rng = random.Random(config.seed)
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=config.requests)
    plan = []
    registrations = 0
    for index, kind in enumerate(kinds):
        session_id = f"s{rng.randrange(SESSIONS)}"
        if kind == "register":
            person = people[registrations % len(people)]
            if registrations >= len(people):  # more registrations than faces: new ids
                person = Person(
                    f"{person.student_id[:40]}-l{index}", person.name, person.photo, person.folder
                )
            registrations += 1
            plan.append(Request(kind, "POST students", person=person))
        elif kind == "attendance":
            photo = groups[rng.randrange(len(groups))]
            plan.append(Request(kind, "POST session photo", session_id=session_id, photo=photo))
        else:
            plan.append(Request(rng.choice(READS), "GET", session_id=session_id))
    return plan


async def _drive(
    url: str, requests: list[Request], clients: int, acknowledged: Acknowledged
) -> list[Result]:
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    results: list[Result] = []
    origin = time.monotonic()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            while True:
                try:
                    request = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.monotonic()
                status, error = 0, ""
                try:
                    response = await _send(client, request)
                    status = response.status_code
                    if status >= 400:
                        error = response.text[:200]
                    if request.kind == "register" and request.person is not None:
                        acknowledged.note_registration(
                            CLASS_ID, request.person.student_id, response
                        )
                    elif request.kind == "attendance" and request.session_id is not None:
                        acknowledged.note_attendance(CLASS_ID, request.session_id, response)
                except httpx.HTTPError as failure:
                    error = f"{type(failure).__name__}: {failure}"
                results.append(
                    Result(
                        request.kind,
                        request.detail,
                        status,
                        started - origin,
                        time.monotonic() - started,
                        error,
                    )
                )

        await asyncio.gather(*(worker() for _ in range(clients)))
    return results


async def _send(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    base = f"/v1/classes/{CLASS_ID}"
    if request.kind == "register" and request.person is not None:
        person = request.person
        return await client.post(
            f"{base}/students",
            data={"student_id": person.student_id, "name": person.name},
            files={"photos": person.photo.file()},
        )
    if request.kind == "attendance" and request.photo is not None:
        return await client.post(
            f"{base}/sessions/{request.session_id}/photos", files={"photo": request.photo.file()}
        )
    paths = {
        "students": f"{base}/students",
        "roster": f"{base}/sessions/{request.session_id}",
        "csv": f"{base}/sessions/{request.session_id}/attendance.csv",
        "class": base,
        "sessions": f"{base}/sessions",
    }
    return await client.get(paths[request.kind])


def _summarise(results: list[Result], duration: float) -> dict[str, Any]:
    def stats(selected: list[Result]) -> dict[str, Any]:
        seconds = np.array([r.seconds for r in selected]) if selected else np.zeros(1)
        return {
            "count": len(selected),
            "errors": sum(
                1 for r in selected if not 200 <= r.status < 300 and not _refused_photo(r)
            ),
            "p50_ms": round(float(np.percentile(seconds, 50)) * 1000, 1),
            "p95_ms": round(float(np.percentile(seconds, 95)) * 1000, 1),
            "p99_ms": round(float(np.percentile(seconds, 99)) * 1000, 1),
            "max_ms": round(float(seconds.max()) * 1000, 1),
        }

    kinds = sorted({r.kind for r in results})
    refused_photos = [r for r in results if _refused_photo(r)]
    errors = [r for r in results if not 200 <= r.status < 300 and not _refused_photo(r)]
    return {
        "requests": len(results),
        "duration_seconds": round(duration, 2),
        "throughput_rps": round(len(results) / duration, 2) if duration else None,
        "errors": len(errors),
        "error_examples": [f"{r.kind} {r.status} {r.error}" for r in errors[:5]],
        "registration_photos_refused": len(refused_photos),
        "refused_examples": [r.error for r in refused_photos[:3]],
        "all": stats(results),
        "by_kind": {kind: stats([r for r in results if r.kind == kind]) for kind in kinds},
    }


def _refused_photo(result: Result) -> bool:
    """A registration photo the service rightly refused (no face, several faces): a correct 422
    answer to bad input, not a failure of the service; the student is not acknowledged."""
    return result.kind == "register" and result.status == 422 and "face" in result.error


@contextmanager
def _sample_rss(service: ServiceProcess, interval_s: float = 0.5) -> Iterator[list[int]]:
    """Samples the service's resident memory while the block runs (for the peak)."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval_s):
            try:
                samples.append(service.rss_bytes())
            except Exception:  # the process may be gone at the very end
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--n-views", type=int, default=None, help="default: the service's (15)")
    parser.add_argument("--enrolled", type=int, default=20, help="students enrolled before")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=shared_dir())
    parser.add_argument(
        "--out", type=Path, default=REPO_DIR / "bench" / "results" / "load_test.json"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not (args.shared / "faces" / "people").is_dir():
        parser.error(
            f"no real photos at {args.shared} (the shared data folder, see docs/development.md)"
        )
    config = LoadConfig(
        requests=args.requests,
        clients=args.clients,
        n_views=args.n_views,
        seed=args.seed,
        enrolled_before=args.enrolled,
    )
    before = machine()
    with SeaweedS3Server() as server:
        figures = run_load(config, server.info, args.shared)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "uv run python -m bench.load_test "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "config": {**config.__dict__, "mix": MIX},
        "machine": before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        **figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    every = report["all"]
    sys.stdout.write(
        f"{report['requests']} requests from {config.clients} clients in "
        f"{report['duration_seconds']} s: {report['throughput_rps']} req/s, p50 {every['p50_ms']} ms, "
        f"p95 {every['p95_ms']} ms, p99 {every['p99_ms']} ms; errors {report['errors']} "
        f"(photos refused: {report['registration_photos_refused']}), lost "
        f"{report['lost']}, half-written {report['half_written']}; service RSS "
        f"{report['service_rss_mib_before']} -> {report['service_rss_mib_after']} MiB "
        f"(peak {report['service_rss_mib_peak']}); written {args.out}\n"
    )
    for kind, row in report["by_kind"].items():
        sys.stdout.write(
            f"  {kind:<10} n={row['count']:<4} p50 {row['p50_ms']:>8} ms  p95 {row['p95_ms']:>8} ms"
            f"  p99 {row['p99_ms']:>8} ms  errors {row['errors']}\n"
        )
    return 0 if report["errors"] == 0 and report["lost"] == 0 and report["half_written"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
