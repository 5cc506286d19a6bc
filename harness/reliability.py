"""What the fault and load tests share: real photos to send, and the checks that nothing was lost
and nothing is half-written.

"Acknowledged" means the service answered 2xx: a registration that got 201, an attendance photo
that got 201 (its ``recorded`` and ``already_present`` students). Every acknowledged fact must be
readable afterwards, through the API and in the bucket; a request that failed may leave only whole
objects behind (see :func:`find_half_written`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.records import documents, keys
from app.storage import ObjectNotFoundError, ObjectStore
from ml.fusion import FACENET

logger = logging.getLogger(__name__)

FIGURES_ENV = "ROLLCALL_RELIABILITY_FIGURES"
"""A folder: the fault and load tests write their measured figures there as JSON (docs/reliability.md)."""


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Log the figures a test measured, and write them to ``$ROLLCALL_RELIABILITY_FIGURES/name.json``."""
    text = json.dumps(figures, indent=2, sort_keys=True, default=str)
    logger.info("%s: %s", name, text)
    folder = os.environ.get(FIGURES_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(text + "\n", encoding="utf-8")


CAST = ("sheldon", "leonard", "penny", "howard", "raj")
"""The face-api.js cast; all five are in ``groups/face_api_js__bbt3.jpg``."""
GROUP_PHOTOS = ("face_api_js__bbt3.jpg", "face_api_js__bbt1.jpg", "face_api_js__bbt2.jpg")


@dataclass(frozen=True)
class Photo:
    filename: str
    data: bytes

    @property
    def content_type(self) -> str:
        return "image/png" if self.filename.endswith(".png") else "image/jpeg"

    def file(self) -> tuple[str, bytes, str]:
        return (self.filename, self.data, self.content_type)


@dataclass(frozen=True)
class Person:
    student_id: str
    name: str
    photo: Photo
    folder: Path

    def photos(self, limit: int) -> list[Photo]:
        """Up to ``limit`` photos of this person, the registration photo first."""
        files = sorted(f for f in self.folder.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        return [_photo(f) for f in files[:limit]]


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def cast_people(people_dir: Path) -> list[Person]:
    return [
        Person(
            name,
            name.title(),
            _photo(people_dir / f"face_api_js__{name}" / f"{name}1.png"),
            people_dir / f"face_api_js__{name}",
        )
        for name in CAST
    ]


def other_people(people_dir: Path) -> list[Person]:
    """First photo of every identity in ``faces/people`` that is not in the cast (one face each)."""
    people = []
    for folder in sorted(p for p in people_dir.iterdir() if p.is_dir()):
        if folder.name.startswith("face_api_js__") and folder.name.split("__")[1] in CAST:
            continue
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not photos:
            continue
        slug = re.sub(r"[^a-z0-9_-]+", "-", folder.name.lower().replace("__", "-")).strip("-")
        name = folder.name.split("__", 1)[-1].replace("_", " ").title()
        people.append(Person(slug[:48], name, _photo(photos[0]), folder))
    return people


def group_photos(groups_dir: Path) -> list[Photo]:
    return [_photo(groups_dir / name) for name in GROUP_PHOTOS]


def _photo(path: Path) -> Photo:
    return Photo(path.name, path.read_bytes())


# --- what the clients were told -----------------------------------------------------------------


@dataclass
class Acknowledged:
    """Everything the service acknowledged with a 2xx, per class."""

    students: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """class id -> registered student ids."""
    present: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    """(class id, session id) -> students an attendance photo reported recorded or already present."""
    refused: list[str] = field(default_factory=list)
    """Registration/attendance requests that did not get a 2xx (``kind id status``)."""

    def note_registration(self, class_id: str, student_id: str, response: httpx.Response) -> None:
        if response.status_code == 201:
            self.students[class_id].add(student_id)
        else:
            self.refused.append(f"register {class_id}/{student_id} {response.status_code}")

    def note_attendance(self, class_id: str, session_id: str, response: httpx.Response) -> None:
        if response.status_code == 201:
            body = response.json()
            self.present[(class_id, session_id)].update(body["recorded"] + body["already_present"])
        else:
            self.refused.append(f"attendance {class_id}/{session_id} {response.status_code}")

    @property
    def student_count(self) -> int:
        return sum(len(ids) for ids in self.students.values())

    @property
    def record_count(self) -> int:
        return sum(len(ids) for ids in self.present.values())


def find_lost(client: httpx.Client, store: ObjectStore, acknowledged: Acknowledged) -> list[str]:
    """Acknowledged facts that cannot be read back: through the API (``client``) and in ``store``."""
    lost: list[str] = []
    for class_id, student_ids in acknowledged.students.items():
        listed = {s["id"]: s for s in _ok_json(client.get(f"/v1/classes/{class_id}/students"))}
        for student_id in sorted(student_ids):
            entry = listed.get(student_id)
            if entry is None or entry["photo_count"] < 1:
                lost.append(f"student {class_id}/{student_id} not listed with a photo: {entry}")
                continue
            prefix = keys.STUDENT.prefix(class_id=class_id, student_id=student_id) + "embeddings/"
            for key in store.list(prefix):
                try:
                    documents.embeddings_from_bytes(store.get(key))
                except (ObjectNotFoundError, ValueError) as error:
                    lost.append(f"embedding {key} unreadable: {error!r}")
    for (class_id, session_id), student_ids in acknowledged.present.items():
        roster = _ok_json(client.get(f"/v1/classes/{class_id}/sessions/{session_id}"))["roster"]
        present = {entry["student_id"] for entry in roster if entry["present"]}
        lost += [
            f"attendance {class_id}/{session_id}/{sid} acknowledged, not in the roster"
            for sid in sorted(student_ids - present)
        ]
    return lost


def _ok_json(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()


# --- half-written objects -----------------------------------------------------------------------


def find_half_written(store: ObjectStore, class_ids: Iterable[str] | None = None) -> list[str]:
    """Objects that are not part of a whole fact, for the service's layout (:mod:`app.records.keys`):

    * a student folder without ``student.json``, or ``student.json`` without any embedding;
    * an embedding without its photo and quality report, or a photo without its embedding;
    * a session photo without all of ``original.jpg``, ``annotated.jpg``, ``result.json``;
    * an attendance record that does not name a complete photo of its session, or is unreadable;
    * ``head/current.json`` naming a head version that is not stored.
    """
    if class_ids is None:
        class_ids = store.list_children("classes")
    problems: list[str] = []
    for class_id in class_ids:
        listed = store.list(keys.CLASS.prefix(class_id=class_id))
        problems += _student_problems(class_id, listed)
        problems += _session_problems(store, class_id, listed)
        problems += _head_problems(store, class_id, listed)
    return problems


def _student_problems(class_id: str, listed: list[str]) -> list[str]:
    prefix = keys.STUDENT.prefix(class_id=class_id)
    files: dict[str, set[str]] = defaultdict(set)
    for key in listed:
        if key.startswith(prefix):
            student_id, rest = key[len(prefix) :].split("/", 1)
            files[student_id].add(rest)
    problems = []
    for student_id, names in sorted(files.items()):
        where = f"{class_id}/{student_id}"
        refs = [keys.parse_embedding_key(class_id, f"{prefix}{student_id}/{n}") for n in names]
        embedded = {r.photo_id for r in refs if r is not None and r.model == FACENET}
        # Other models' embeddings (dlib) are written after the photo and before FaceNet's.
        secondary = {r.photo_id for r in refs if r is not None and r.model != FACENET}
        jpgs = {n[len("photos/") : -4] for n in names if n.endswith(".jpg")}
        infos = {
            n[len("photos/") : -5] for n in names if n.startswith("photos/") and n.endswith(".json")
        }
        if "student.json" not in names:
            problems.append(f"student {where}: {len(names)} objects without student.json")
            continue
        if not embedded:
            problems.append(f"student {where}: student.json without any embedding")
        for photo_id in sorted((embedded | secondary) - (jpgs & infos)):
            problems.append(f"student {where}: embedding {photo_id} without its photo or report")
        for photo_id in sorted((jpgs | infos) - embedded):
            problems.append(f"student {where}: photo {photo_id} without its embedding")
    return problems


_PHOTO_OBJECTS = {"original.jpg", "annotated.jpg", "result.json"}


def _session_problems(store: ObjectStore, class_id: str, listed: list[str]) -> list[str]:
    prefix = keys.SESSION.prefix(class_id=class_id)
    photos: dict[tuple[str, str], set[str]] = defaultdict(set)
    records: list[tuple[str, str]] = []
    sessions: set[str] = set()
    for key in listed:
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split("/")
        sessions.add(parts[0])
        if len(parts) == 4 and parts[1] == "photos":
            photos[(parts[0], parts[2])].add(parts[3])
        elif len(parts) == 3 and parts[1] == "records":
            records.append((parts[0], key))
    problems = []
    for session_id in sorted(sessions):
        if keys.SESSION.key(class_id=class_id, session_id=session_id) not in listed:
            problems.append(f"session {class_id}/{session_id}: objects without session.json")
    for (session_id, photo_id), names in sorted(photos.items()):
        if names != _PHOTO_OBJECTS:
            problems.append(
                f"session photo {class_id}/{session_id}/{photo_id}: only {sorted(names)}"
            )
    for session_id, key in records:
        try:
            record = json.loads(store.get(key))
        except (ObjectNotFoundError, ValueError) as error:
            problems.append(f"record {key} unreadable: {error!r}")
            continue
        if photos.get((session_id, record.get("photo_id", ""))) != _PHOTO_OBJECTS:
            problems.append(
                f"record {key} names photo {record.get('photo_id')!r}, not stored whole"
            )
    return problems


def _head_problems(store: ObjectStore, class_id: str, listed: list[str]) -> list[str]:
    pointer_key = keys.HEAD_POINTER.key(class_id=class_id)
    if pointer_key not in listed:
        return []
    try:
        pointer = documents.HeadPointerDoc.model_validate_json(store.get(pointer_key))
    except (ObjectNotFoundError, ValueError) as error:
        return [f"head pointer of {class_id} unreadable: {error!r}"]
    if pointer.key in listed or store.exists(pointer.key):
        return []
    # The listing and the pointer were read at different moments: a trainer may have saved a new
    # version and moved the pointer in between. Only a pointer that names nothing *now* is wrong.
    try:
        latest = documents.HeadPointerDoc.model_validate_json(store.get(pointer_key))
    except ObjectNotFoundError:
        return []
    except ValueError as error:
        return [f"head pointer of {class_id} unreadable: {error!r}"]
    if store.exists(latest.key):
        return []
    return [f"head pointer of {class_id} names {latest.key}, which is not stored"]
