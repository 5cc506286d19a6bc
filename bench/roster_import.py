"""A whole school moving in: a OneRoster export of 1,000 students in 40 classes with a photo
each (LFW's first photo of 1,000 people, from ``../shared``), imported through the API of the
service running as a process, on disk and on S3 (SeaweedFS on loopback), while a second client
calls ``POST /mark/detect`` with a class photo over and over.

``uv run python -m bench.roster_import [--students 1000] [--classes 40] [--stores disk s3]``

Prints, per store: the import's time and students per second, the service's peak memory (RSS,
sampled twice a second), and ``/mark/detect``'s median and 95th percentile before the import
(the class photo alone) and during it, with their ratio. The import yields to recognition
(``Inference``): the target is the 1,000 in under 15 minutes, memory under 1 GiB, and
recognition during the import no more than 2x slower at the 95th percentile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from harness.rosters import SchoolClass, oneroster_files, photos_zip, pupils_from_folders, zip_bytes
from harness.s3server import SeaweedS3Server
from harness.service_process import ServiceProcess, s3_environment_for
from ml.eval.shared_data import shared_dir

CAST = ("sheldon", "leonard", "penny", "howard", "raj")
BASELINE_CALLS = 15


def school(students: int, classes: int) -> list[SchoolClass]:
    lfw = shared_dir() / "faces" / "lfw"
    folders = sorted(p for p in lfw.iterdir() if p.is_dir())[:students]
    pupils = pupils_from_folders(folders)
    size = -(-len(pupils) // classes)
    return [
        SchoolClass(
            str(uuid.UUID(int=10_000 + n)), f"Class {n + 1}", pupils[n * size : (n + 1) * size]
        )
        for n in range(classes)
    ]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _register_cast(client: httpx.Client) -> None:
    people = shared_dir() / "faces" / "people"
    for name in CAST:
        photo = (people / f"face_api_js__{name}" / f"{name}1.png").read_bytes()
        response = client.post(
            "/register/register-student",
            data={"student_name": name.title()},
            files={"files": (f"{name}.png", photo, "image/png")},
        )
        response.raise_for_status()


def _detect(client: httpx.Client, photo: bytes) -> float:
    start = time.perf_counter()
    response = client.post("/mark/detect", files={"file": ("class.jpg", photo, "image/jpeg")})
    response.raise_for_status()
    return time.perf_counter() - start


def measure(name: str, environment: dict[str, str], work: Path, classes: list[SchoolClass]) -> None:
    roster = zip_bytes(oneroster_files(classes))
    photos = photos_zip([p for cls in classes for p in cls.pupils], path=work / "photos.zip")
    assert isinstance(photos, Path)
    class_photo = (shared_dir() / "faces" / "groups" / "face_api_js__bbt3.jpg").read_bytes()
    with (
        ServiceProcess(environment) as service,
        httpx.Client(base_url=service.url, timeout=600) as client,
    ):
        _register_cast(client)
        _detect(client, class_photo)  # warm
        alone = [_detect(client, class_photo) for _ in range(BASELINE_CALLS)]
        rss: list[int] = [service.rss_bytes()]
        during: list[float] = []
        done = threading.Event()

        def sample_memory() -> None:
            while not done.wait(0.5):
                rss.append(service.rss_bytes())

        sampler = threading.Thread(target=sample_memory, daemon=True)
        sampler.start()
        start = time.perf_counter()
        with photos.open("rb") as photos_file:
            response = client.post(
                "/v1/imports/oneroster",
                files={
                    "roster": ("roster.zip", roster, "application/zip"),
                    "photos": ("photos.zip", photos_file, "application/zip"),
                },
            )
        response.raise_for_status()
        location = response.headers["Location"]
        while True:
            during.append(_detect(client, class_photo))
            job = client.get(location).json()
            if job["state"] in ("done", "failed"):
                break
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
        load = os.getloadavg()
    students = job["total"]
    print(
        f"{name}: {students} students in {len(classes)} classes imported in {elapsed:.0f} s "
        f"({students / elapsed:.2f} students/s, state {job['state']}, {job['photos_added']} "
        f"photos, {len(job['refusals'])} refused); peak RSS {max(rss) / 2**20:.0f} MiB; "
        f"/mark/detect alone p50 {statistics.median(alone):.2f} s p95 "
        f"{percentile(alone, 0.95):.2f} s, during the import p50 {statistics.median(during):.2f} s "
        f"p95 {percentile(during, 0.95):.2f} s ({len(during)} calls): p95 x"
        f"{percentile(during, 0.95) / percentile(alone, 0.95):.2f} (load average {load[0]:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.roster_import")
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=40)
    parser.add_argument("--stores", nargs="+", choices=("disk", "s3"), default=["disk", "s3"])
    args = parser.parse_args()
    classes = school(args.students, args.classes)
    production = {"ROLLCALL_N_VIEWS": "15", "ROLLCALL_LOG_LEVEL": "WARNING"}
    cache = os.environ.get("ROLLCALL_MODEL_CACHE")
    if cache:
        production["ROLLCALL_MODEL_CACHE"] = cache
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if "disk" in args.stores:
            (work / "data").mkdir()
            measure("disk", {**production, "ROLLCALL_DATA_DIR": str(work / "data")}, work, classes)
        if "s3" in args.stores:
            with SeaweedS3Server() as server:
                server.info.client().create_bucket(Bucket="bench-import")
                environment = {**production, **s3_environment_for(server.info, "bench-import")}
                measure("S3", environment, work, classes)


if __name__ == "__main__":
    main()
