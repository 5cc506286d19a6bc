"""The student export: streamed file by file, with counts; no model, no bucket (the API test
``tests/app/test_corrections.py::test_export_holds_everything_about_a_student`` runs it with the
real models on disk and S3)."""

from __future__ import annotations

import io
import json
import zipfile

from app.records import keys
from app.services import enrolment, privacy
from app.services.enrolment import Existing
from tests.app.services.fakes import CLASS_ID, prepared, service_context


def test_the_zip_is_streamed_one_file_at_a_time() -> None:
    with service_context() as ctx:
        photos = [prepared(seed) for seed in range(1, 4)]
        enrolment.enrol_prepared(ctx, CLASS_ID, "ada", "Ada", photos, Existing.REFUSE)
        found = privacy.student_export(ctx, CLASS_ID, "ada")
        chunks = [chunk for chunk in found.chunks if chunk]
        data = b"".join(chunks)
        archive = zipfile.ZipFile(io.BytesIO(data))
        counts = json.loads(archive.read("manifest.json"))["counts"]
        assert counts == {
            "record": 1,
            "registration_photo": 3,
            "face_template": 3,
            "attendance": 1,
        }
        # A chunk per file read (and the closing one): no chunk holds the whole zip.
        assert len(chunks) >= sum(counts.values())
        assert max(map(len, chunks)) < len(data) / 2
        assert found.filename == f"Ada ({CLASS_ID}) data export"


def test_an_object_gone_during_the_export_is_left_out_and_not_counted() -> None:
    with service_context() as ctx:
        enrolment.enrol_prepared(ctx, CLASS_ID, "ada", "Ada", [prepared(1)], Existing.REFUSE)
        found = privacy.student_export(ctx, CLASS_ID, "ada")
        (info,) = ctx.records.student_photos.counted(CLASS_ID, "ada")
        first = next(found.chunks)  # student.json is out; the photo is deleted now
        ctx.store.delete(
            keys.STUDENT_PHOTO.key(class_id=CLASS_ID, student_id="ada", photo_id=info.id)
        )
        archive = zipfile.ZipFile(io.BytesIO(first + b"".join(found.chunks)))
        assert f"registration-photos/{info.id}.jpg" not in archive.namelist()
        counts = json.loads(archive.read("manifest.json"))["counts"]
        assert "registration_photo" not in counts and counts["face_template"] == 1
        assert "- 0 x registration-photos/" in archive.read("README.txt").decode()
