"""What encryption at rest costs: registration of one photo and recognition of a class photo,
through the in-process app on a disk store, with and without ``ROLLCALL_DATA_KEY``.

``uv run python -m bench.encryption_cost [--repeats 7]`` prints one JSON document. The two apps
(same models, one store each) run interleaved, in alternating order, so a noisy shared machine
slows both alike; compare the ratios, not the seconds. It also times the encryption alone
(sealing and opening every object one registration and one class photo stored), which is what
the end-to-end difference should be made of. docs/data-protection.md ("Encryption at rest") quotes it.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.context import Context
from app.settings import Settings
from app.storage import DiskObjectStore, EncryptingObjectStore, Keyring, ObjectStore
from app.storage.encryption import is_sealed, open_sealed, seal
from bench.common import SHARED_DIR, CpuSnapshot, load_average, machine_info, now_iso
from ml.eval.timing import median_seconds
from ml.factory import build_pipeline
from ml.pipeline import FacePipeline

REGISTRATION_PHOTO = Path("faces/people/compreface__e2e_personC/personC-img1.jpg")
CLASS_PHOTO = Path("faces/groups/face_api_js__bbt3.jpg")
CAST = ("sheldon", "leonard", "penny", "howard", "raj")
CLASS_ID = "bench"


def _context(client: TestClient) -> Context:
    app = client.app
    assert isinstance(app, FastAPI)
    context: Context = app.state.context
    return context


def _settle(client: TestClient) -> None:
    """Let background work (head training, back-fill) finish, so it is never timed."""
    _context(client).trainer.wait_idle(timeout=600)
    _context(client).backfill.wait_idle(timeout=600)


@contextmanager
def _app(pipeline: FacePipeline, store: ObjectStore, **settings: Any) -> Iterator[TestClient]:
    app = create_app(Settings(_env_file=None, **settings), pipeline=pipeline, store=store)
    with TestClient(app) as client:
        yield client
        _settle(client)


def _check(response: Any, status: int = 201) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response.json()


def _enrol_cast(client: TestClient, shared: Path) -> None:
    _check(client.post("/v1/classes", json={"id": CLASS_ID, "name": "Bench"}))
    for name in CAST:
        photo = (shared / f"faces/people/face_api_js__{name}/{name}1.png").read_bytes()
        _check(
            client.post(
                f"/v1/classes/{CLASS_ID}/students",
                data={"student_id": name, "name": name.title()},
                files={"photos": (f"{name}.png", photo, "image/png")},
            )
        )
    _settle(client)


def _register(client: TestClient, run: int, photo: bytes) -> None:
    _check(
        client.post(
            f"/v1/classes/{CLASS_ID}/students",
            data={"student_id": f"new-{run}", "name": f"New {run}"},
            files={"photos": ("person.jpg", photo, "image/jpeg")},
        )
    )


def _recognise(client: TestClient, run: int, photo: bytes) -> None:
    _check(
        client.post(
            f"/v1/classes/{CLASS_ID}/sessions/s{run}/photos",
            files={"photo": ("class.jpg", photo, "image/jpeg")},
        )
    )


def _seal_all(keyring: Keyring, objects: dict[str, bytes]) -> list[bytes]:
    return [seal(keyring.current, key, data) for key, data in objects.items()]


def _open_all(keyring: Keyring, envelopes: dict[str, bytes]) -> list[bytes]:
    return [open_sealed(keyring, key, data) for key, data in envelopes.items()]


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(shared: Path, repeats: int) -> dict[str, Any]:
    pipeline = build_pipeline(Settings(_env_file=None).pipeline_config())
    registration = (shared / REGISTRATION_PHOTO).read_bytes()
    class_photo = (shared / CLASS_PHOTO).read_bytes()
    data_key = base64.b64encode(secrets.token_bytes(32)).decode()
    variants = ("plain", "encrypted")
    times: dict[str, dict[str, list[float]]] = {
        v: {"register": [], "class_photo": []} for v in variants
    }
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        stores = {v: DiskObjectStore(Path(folder) / v) for v in variants}
        clients = {
            "plain": stack.enter_context(_app(pipeline, stores["plain"])),
            "encrypted": stack.enter_context(
                _app(pipeline, stores["encrypted"], data_key=data_key)
            ),
        }
        for client in clients.values():
            _enrol_cast(client, shared)
        before, load_before = CpuSnapshot.now(), load_average()
        for run in range(repeats + 1):  # run 0 warms both up and is not kept
            order = variants if run % 2 == 0 else variants[::-1]
            for variant in order:
                client = clients[variant]
                register = _timed(partial(_register, client, run, registration))
                _settle(client)
                _check(
                    client.post(
                        f"/v1/classes/{CLASS_ID}/sessions",
                        json={"id": f"s{run}", "label": f"Run {run}"},
                    )
                )
                recognise = _timed(partial(_recognise, client, run, class_photo))
                _settle(client)
                if run > 0:
                    times[variant]["register"].append(register)
                    times[variant]["class_photo"].append(recognise)
        after, load_after = CpuSnapshot.now(), load_average()
        crypto = _crypto_alone(stores["encrypted"], data_key, repeats)
    medians = {
        v: {what: statistics.median(values) for what, values in per.items()}
        for v, per in times.items()
    }
    return {
        "date": now_iso(),
        "machine": machine_info(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "other_processes_cpu_share": round(before.other_share(after), 3),
        "repeats": repeats,
        "registration_photo": str(REGISTRATION_PHOTO),
        "class_photo": str(CLASS_PHOTO),
        "median_seconds": {
            v: {k: round(x, 4) for k, x in per.items()} for v, per in medians.items()
        },
        "ratio_encrypted_to_plain": {
            what: round(medians["encrypted"][what] / medians["plain"][what], 3)
            for what in ("register", "class_photo")
        },
        "all_seconds": {
            v: {k: [round(x, 4) for x in xs] for k, xs in per.items()} for v, per in times.items()
        },
        "encryption_alone": crypto,
    }


def _crypto_alone(store: DiskObjectStore, data_key: str, repeats: int) -> dict[str, Any]:
    """Seal and open, in memory, every object of one registration and of one class photo."""
    keyring = Keyring.parse(data_key)
    sealed = EncryptingObjectStore(store, keyring)
    groups = {
        "register": f"classes/{CLASS_ID}/students/new-1/",
        "class_photo": f"classes/{CLASS_ID}/sessions/s1/",
    }
    result: dict[str, Any] = {}
    for what, prefix in groups.items():
        objects = {key: sealed.get(key) for key in store.list(prefix)}
        assert all(is_sealed(store.get(key)) for key in objects)
        envelopes = {key: seal(keyring.current, key, data) for key, data in objects.items()}
        seal_s = median_seconds(partial(_seal_all, keyring, objects), repeats)
        open_s = median_seconds(partial(_open_all, keyring, envelopes), repeats)
        result[what] = {
            "objects": len(objects),
            "bytes": sum(len(d) for d in objects.values()),
            "seal_ms": round(seal_s * 1000, 3),
            "open_ms": round(open_s * 1000, 3),
        }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shared", type=Path, default=SHARED_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(args.shared, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
