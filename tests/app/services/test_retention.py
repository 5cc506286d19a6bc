"""The retention rules on an in-memory store with scripted recognition, with a clock the test
sets (``now`` passed to the purge): which class photos lose their images, which students are
erased, and what stays. ``tests/app/test_retention.py`` runs the purge through the API and the
cron command with the real models, on disk and S3."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest

from app.core.errors import InvalidInputError, PhotoPurgedError
from app.core.ids import utc_now
from app.core.images import encode_jpeg
from app.core.uploads import Upload
from app.records import documents, keys
from app.services import attendance, enrolment, privacy
from app.services.audit import Action
from app.services.classes import ClassChanges, get_class, update_class
from app.services.context import Context
from app.services.enrolment import Existing
from tests.app.services.fakes import (
    CLASS_ID,
    MemoryStore,
    image,
    prepared,
    scripted,
    service_context,
)

DAY = dt.timedelta(days=1)


def _enrol(ctx: Context, *student_ids: str) -> None:
    for seed, student_id in enumerate(student_ids, start=1):
        enrolment.enrol_prepared(
            ctx, CLASS_ID, student_id, student_id.title(), [prepared(seed)], Existing.REFUSE
        )


def _upload(ctx: Context, session_id: str, *faces: str | None, seed: int = 7) -> str:
    scripted(ctx).script = list(faces)
    upload = Upload("class.jpg", encode_jpeg(image(seed)))
    return attendance.add_session_photo(ctx, CLASS_ID, session_id, upload).photo_id


def _created_at(ctx: Context, session_id: str, photo_id: str) -> dt.datetime:
    doc = ctx.records.session_photos.result(CLASS_ID, session_id, photo_id)
    assert doc is not None
    return doc.created_at


def _roster(ctx: Context, session_id: str) -> list[tuple[str, str, str | None]]:
    detail = attendance.get_session(ctx, CLASS_ID, session_id)
    return [(e.student_id, e.status, e.photo_id) for e in detail.roster]


def _photo_objects(store: MemoryStore, session_id: str, photo_id: str) -> set[str]:
    prefix = keys.SESSION_PHOTO.prefix(class_id=CLASS_ID, session_id=session_id, photo_id=photo_id)
    return {key[len(prefix) :] for key in store.list(prefix)}


def test_old_photos_lose_their_images_the_roster_stays_and_a_second_run_purges_nothing() -> None:
    store = MemoryStore()
    with service_context(store) as ctx:
        _enrol(ctx, "ada", "bob")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", dt.date.today())
        old = _upload(ctx, "mon", "ada", None)
        attendance.set_status(ctx, CLASS_ID, "mon", "bob", "late", "bus", "console")
        new = _upload(ctx, "mon", "ada", seed=8)
        before = _roster(ctx, "mon")
        # The newer photo is exactly 30 days old: still kept (the cut-off is strict).
        now = _created_at(ctx, "mon", new) + 30 * DAY

        report = privacy.purge_class(ctx, CLASS_ID, now)

        assert (report.photos_purged, report.students_erased) == (1, [])
        assert _photo_objects(store, "mon", old) == {keys.RESULT, keys.PURGED}
        assert _photo_objects(store, "mon", new) == {
            keys.ORIGINAL,
            keys.ANNOTATED,
            keys.RESULT,
        }
        assert _roster(ctx, "mon") == before
        assert ("ada", "present", old) in before
        assert attendance.session_photo(ctx, CLASS_ID, "mon", old).faces[0].student_id == "ada"
        with pytest.raises(PhotoPurgedError, match=r"retention policy .* 30 days"):
            attendance.annotated_photo(ctx, CLASS_ID, "mon", old)
        with pytest.raises(PhotoPurgedError):
            attendance.face_crop(ctx, CLASS_ID, "mon", old, 0)
        assert attendance.face_crop(ctx, CLASS_ID, "mon", new, 0)

        today = utc_now().date()
        purges = [e for e in ctx.audit.events(today, today) if e.action == Action.PHOTO_PURGE.value]
        assert [(e.actor, e.session_id, e.photo_id) for e in purges] == [("system", "mon", old)]

        again = privacy.purge_class(ctx, CLASS_ID, now)
        assert again.photos_purged == 0
        assert _photo_objects(store, "mon", old) == {keys.RESULT, keys.PURGED}
        # One day later the newer photo goes too.
        assert privacy.purge_class(ctx, CLASS_ID, now + DAY).photos_purged == 1


def test_an_upload_in_flight_is_never_touched() -> None:
    store = MemoryStore()
    with service_context(store) as ctx:
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", dt.date.today())
        # An upload cut off (or still running) before result.json: original and annotated only.
        for name in (keys.ORIGINAL, keys.ANNOTATED):
            store.put(
                keys.SESSION_PHOTO.key(
                    class_id=CLASS_ID, session_id="mon", photo_id="p1", name=name
                ),
                b"jpeg",
            )
        assert privacy.purge_class(ctx, CLASS_ID, utc_now() + 365 * DAY).photos_purged == 0
        assert _photo_objects(store, "mon", "p1") == {keys.ORIGINAL, keys.ANNOTATED}


def test_a_class_override_wins_over_the_default_and_null_restores_it() -> None:
    with service_context() as ctx:
        _enrol(ctx, "ada")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", dt.date.today())
        photo = _upload(ctx, "mon", "ada")
        eight_days = _created_at(ctx, "mon", photo) + 8 * DAY

        info = update_class(
            ctx, CLASS_ID, ClassChanges(retention={"session_photo_retention_days": 0})
        )
        assert info.retention is not None
        assert info.retention.effective_session_photo_retention_days == 0
        assert privacy.purge_class(ctx, CLASS_ID, eight_days + 3650 * DAY).photos_purged == 0

        update_class(ctx, CLASS_ID, ClassChanges(retention={"session_photo_retention_days": None}))
        assert privacy.purge_class(ctx, CLASS_ID, eight_days).photos_purged == 0  # default 30

        update_class(
            ctx,
            CLASS_ID,
            ClassChanges(name="Physics 7B", retention={"session_photo_retention_days": 7}),
        )
        shown = get_class(ctx, CLASS_ID)
        assert shown.name == "Physics 7B"
        assert shown.retention is not None
        assert (
            shown.retention.session_photo_retention_days,
            shown.retention.effective_session_photo_retention_days,
            shown.retention.student_inactive_retention_days,
            shown.retention.effective_student_inactive_retention_days,
        ) == (7, 7, None, 0)
        report = privacy.purge_all(ctx, eight_days)
        assert [(c.class_id, c.session_photo_days, c.photos_purged) for c in report.classes] == [
            (CLASS_ID, 7, 1)
        ]
        with pytest.raises(InvalidInputError):
            update_class(
                ctx, CLASS_ID, ClassChanges(retention={"session_photo_retention_days": -1})
            )


def test_a_naive_clock_is_refused() -> None:
    with service_context() as ctx, pytest.raises(ValueError, match="timezone-aware"):
        privacy.purge_all(ctx, dt.datetime(2026, 11, 29))


def test_erasure_after_the_purge_removes_the_student_from_the_kept_facts() -> None:
    store = MemoryStore()
    with service_context(store) as ctx:
        _enrol(ctx, "ada", "bob")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", dt.date.today())
        photo = _upload(ctx, "mon", "ada", "bob")
        privacy.purge_class(ctx, CLASS_ID, _created_at(ctx, "mon", photo) + 31 * DAY)

        privacy.erase_student(ctx, CLASS_ID, "ada")

        result = ctx.records.session_photos.result(CLASS_ID, "mon", photo)
        assert result is not None
        assert [face.student_id for face in result.faces] == [None, "bob"]
        assert not any(b"ada" in store.get(key) for key in store.list(""))
        assert _photo_objects(store, "mon", photo) == {keys.RESULT, keys.PURGED}


def test_the_export_leaves_out_the_faces_of_purged_photos() -> None:
    with service_context() as ctx:
        _enrol(ctx, "ada")
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", dt.date.today())
        photo = _upload(ctx, "mon", "ada")
        privacy.purge_class(ctx, CLASS_ID, _created_at(ctx, "mon", photo) + 31 * DAY)
        archive = b"".join(privacy.student_export(ctx, CLASS_ID, "ada").chunks)
        names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
        assert "attendance.csv" in names
        assert not [name for name in names if name.startswith("class-photo-faces/")]


def test_inactive_students_are_erased_with_everything_and_active_ones_stay() -> None:
    store = MemoryStore()
    with service_context(store) as ctx:
        ctx.settings = ctx.settings.model_copy(update={"student_inactive_retention_days": 60})
        scripted(ctx).embed = True  # sure faces become samples
        _enrol(ctx, "ada", "bob", "cy", "dan")
        now = utc_now() + 100 * DAY  # the cut-off is 40 days from today
        attendance.create_session(ctx, CLASS_ID, "old", "Old", dt.date.today())
        _upload(ctx, "old", "cy", "dan")
        attendance.set_status(ctx, CLASS_ID, "old", "dan", "late", "", "console")
        recent = (utc_now() + 50 * DAY).date()
        attendance.create_session(ctx, CLASS_ID, "recent", "Recent", recent)
        _upload(ctx, "recent", "ada", "dan", seed=8)  # ada seen; dan seen but marked absent
        attendance.set_status(ctx, CLASS_ID, "recent", "dan", "absent", "", "console")
        attendance.set_status(ctx, CLASS_ID, "recent", "bob", "late", "", "console")
        assert ctx.records.samples.of_student(CLASS_ID, "cy")
        # A registration that claimed its id as of the purge's now (in flight): never erased.
        newcomer = documents.StudentDoc(id="eve", name="Eve", created_at=now)
        assert ctx.records.students.claim(CLASS_ID, newcomer)

        report = privacy.purge_class(ctx, CLASS_ID, now)

        assert sorted(report.students_erased) == ["cy", "dan"]
        assert report.students_skipped == 0
        for gone in ("cy", "dan"):
            assert not store.list(
                keys.STUDENT.prefix(class_id=CLASS_ID, student_id=gone)
            )  # samples, photos...
            assert not any(f"/{gone}".encode() in store.get(k) for k in store.list(""))
            assert not [
                k for k in store.list("") if f"/{gone}/" in k or k.endswith(f"/{gone}.json")
            ]
        assert ctx.records.students.exists(CLASS_ID, "eve")
        assert [s.id for s in enrolment.list_students(ctx, CLASS_ID)] == ["ada", "bob"]
        today = utc_now().date()
        erasures = [
            e.student_id
            for e in ctx.audit.events(today, today, class_id=CLASS_ID)
            if e.action == Action.STUDENT_PURGE.value and e.actor == "system"
        ]
        assert sorted(e or "" for e in erasures) == ["cy", "dan"]
        assert privacy.purge_class(ctx, CLASS_ID, now).students_erased == []


class _WritesDuringThePurge(MemoryStore):
    """Stores a registration photo of ``student_id`` while the purge reads the sessions (a
    teacher adding photos to a long-enrolled student at that moment)."""

    student_id = ""

    def _write_meanwhile(self, prefix: str) -> None:
        if self.student_id and prefix == keys.SESSION.prefix(class_id=CLASS_ID):
            key = keys.STUDENT_PHOTO.key(
                class_id=CLASS_ID, student_id=self.student_id, photo_id="in-flight"
            )
            self.put(key, b"jpeg")
            self.student_id = ""

    def list_children(self, prefix: str) -> list[str]:
        self._write_meanwhile(prefix)
        return super().list_children(prefix)

    def list_versions(self, prefix: str) -> dict[str, str]:
        self._write_meanwhile(prefix)
        return super().list_versions(prefix)


def test_a_student_written_to_during_the_purge_is_left_for_the_next_run() -> None:
    store = _WritesDuringThePurge()
    with service_context(store) as ctx:
        ctx.settings = ctx.settings.model_copy(
            update={"student_inactive_retention_days": 30, "session_photo_retention_days": 0}
        )
        _enrol(ctx, "ada")
        now = utc_now() + 31 * DAY
        store.student_id = "ada"
        report = privacy.purge_class(ctx, CLASS_ID, now)
        assert (report.students_erased, report.students_skipped) == ([], 1)
        assert ctx.records.students.exists(CLASS_ID, "ada")
        # A registration photo stored within the window counts as activity too.
        info = documents.StudentPhotoDoc(
            id="in-flight", created_at=now - DAY, box=(0, 0, 1, 1), quality={}
        )
        store.put(
            keys.STUDENT_PHOTO_INFO.key(class_id=CLASS_ID, student_id="ada", photo_id="in-flight"),
            info.to_json_bytes(),
        )
        assert privacy.purge_class(ctx, CLASS_ID, now).students_erased == []
        # Nothing written since, and the photo is old: erased.
        assert privacy.purge_class(ctx, CLASS_ID, now + 31 * DAY).students_erased == ["ada"]
