"""Everything held about one student, as a zip (a data-protection access request).

The zip is streamed: files are read from the store one at a time and written to the client as they
are compressed, so a student with many photos never sits in memory at once (the largest single
file does). ``README.txt`` and ``manifest.json``, written last, say what each file is and how many
of each kind went in (an object deleted while the export runs is left out and not counted).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import logging
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from app.core import thumbnails
from app.core.errors import NotFoundError
from app.records import keys
from app.records.documents import Box, StudentDoc
from app.services.attendance import AttendanceEntry, attendance_entries, csv_cell, session_states
from app.services.context import Context
from app.services.enrolment import enrolled_student, require_student
from app.storage import ObjectNotFoundError
from ml.fusion import FACENET

logger = logging.getLogger(__name__)

KINDS = {
    "record": "student.json: the student's record (id, name, when enrolled) and each registration "
    "photo's quality report.",
    "registration_photo": "registration-photos/: the photos the student was enrolled from, as "
    "stored (oriented, re-encoded JPEG).",
    "face_template": "face-templates/: the numbers the face models computed from each "
    "registration photo (float32 arrays in NumPy .npy format; FaceNet's at the top, other models' "
    "in a folder each). They are what recognition compares faces with.",
    "class_photo_face": "class-photo-faces/: the student's face cut from each stored class photo "
    "that names them (by recognition or by a teacher), named session_photo_face.jpg.",
    "sample": "samples/: faces from class photos confirmed as the student (by a teacher, or by "
    "recognition with a clear margin), each a JPEG and a JSON with where it comes from and its "
    "face-model numbers. Recognition matches the student against them too.",
    "attendance": "attendance.csv: the student's status in every session whose roster has them.",
}


@dataclass(frozen=True)
class _Entry:
    name: str
    kind: str
    read: Callable[[], bytes]


@dataclass(frozen=True)
class StudentExport:
    filename: str
    """Without extension."""
    chunks: Iterator[bytes]


def student_export(ctx: Context, class_id: str, student_id: str) -> StudentExport:
    """The export's file name and its bytes, produced as they are read."""
    doc = require_student(ctx, class_id, student_id)
    entries = _entries(ctx, class_id, doc)
    return StudentExport(
        filename=f"{doc.name} ({class_id}) data export",
        chunks=_zip_stream(entries, doc, class_id, ctx.now()),
    )


def _entries(ctx: Context, class_id: str, doc: StudentDoc) -> list[_Entry]:
    student_id = doc.id
    records = ctx.records
    photos = records.student_photos.counted(class_id, student_id)
    record = {
        "student": json.loads(doc.to_json_bytes()),
        "registration_photos": [json.loads(info.to_json_bytes()) for info in photos],
        "exported_at": ctx.now().isoformat(),
    }
    entries = [_Entry("student.json", "record", partial(_json, record))]
    for info in photos:
        entries.append(
            _Entry(
                f"registration-photos/{info.id}.jpg",
                "registration_photo",
                partial(records.student_photos.jpeg, class_id, student_id, info.id),
            )
        )
    for key, ref in records.embeddings.of_student(class_id, student_id):
        folder = "" if ref.model == FACENET else f"{ref.model}/"
        entries.append(
            _Entry(
                f"face-templates/{folder}{ref.photo_id}.npy",
                "face_template",
                partial(records.embeddings.raw, key),
            )
        )
    for sample in records.samples.of_student(class_id, student_id):
        provenance = json.loads(sample.to_json_bytes())
        provenance.pop("crop_jpeg", None)
        entries.append(_Entry(f"samples/{sample.id}.json", "sample", partial(_json, provenance)))
        entries.append(
            _Entry(f"samples/{sample.id}.jpg", "sample", partial(_b64, sample.crop_jpeg))
        )
    states = session_states(ctx, class_id)
    for state in states:
        for photo in state.photos:
            # A photo whose images the retention purge removed has no face to cut: its entries
            # are left out while streaming, like any object gone meanwhile.
            faces = [face for face in state.faces_of(photo) if face.student_id == student_id]
            for face in faces:
                name = f"class-photo-faces/{state.doc.id}_{photo.id}_{face.index}.jpg"
                entries.append(
                    _Entry(
                        name,
                        "class_photo_face",
                        partial(_face, ctx, class_id, state.doc.id, photo.id, face.doc.box),
                    )
                )
    # The same session states as the faces above: the sessions are read once.
    student = enrolled_student(ctx, class_id, student_id)
    history = attendance_entries(states, student) if student is not None else []
    entries.append(_Entry("attendance.csv", "attendance", partial(_attendance_csv, history)))
    return entries


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8")


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _face(ctx: Context, class_id: str, session_id: str, photo_id: str, box: Box) -> bytes:
    data = ctx.records.session_photos.image(class_id, session_id, photo_id, keys.ORIGINAL)
    return thumbnails.session_face_jpeg(data, box)


def _attendance_csv(history: list[AttendanceEntry]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        ["session_id", "session", "date", "status", "source", "recorded_at", "photo_id", "note"]
    )
    for entry in history:
        writer.writerow(
            [
                entry.session_id,
                csv_cell(entry.label),
                entry.date.isoformat(),
                entry.status,
                entry.source or "",
                entry.recorded_at.isoformat() if entry.recorded_at else "",
                entry.photo_id or "",
                csv_cell(entry.note or ""),
            ]
        )
    return buffer.getvalue().encode("utf-8")


class _Chunks(io.RawIOBase):
    """A write-only stream whose bytes are taken out as they come (zipfile writes to it)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        taken = b"".join(self._parts)
        self._parts.clear()
        return taken


def _zip_stream(
    entries: list[_Entry], doc: StudentDoc, class_id: str, exported_at: dt.datetime
) -> Iterator[bytes]:
    sink = _Chunks()
    counts: Counter[str] = Counter()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            try:
                data = entry.read()
            except (ObjectNotFoundError, NotFoundError):
                logger.info("export of %s/%s: %s is gone, left out", class_id, doc.id, entry.name)
                continue
            archive.writestr(entry.name, data)
            counts[entry.kind] += 1
            yield sink.take()
        archive.writestr("manifest.json", _json({"counts": dict(counts)}))
        archive.writestr("README.txt", _readme(doc, class_id, counts, exported_at))
    yield sink.take()


def _readme(doc: StudentDoc, class_id: str, counts: Counter[str], exported_at: dt.datetime) -> str:
    lines = [
        f"Everything Rollcall holds about {doc.name} (id {doc.id}) in class {class_id},",
        f"exported {exported_at.isoformat()}.",
        "",
        "Files, by kind (how many of each):",
    ]
    for kind, text in KINDS.items():
        lines.append(f"- {counts.get(kind, 0)} x {text}")
    lines += [
        "",
        "manifest.json has the same counts for programs.",
        "The class photos themselves are not included: they show other students too.",
    ]
    return "\n".join(lines) + "\n"
