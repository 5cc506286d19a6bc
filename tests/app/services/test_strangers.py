"""Known strangers (faces a teacher said are nobody of the class) and the school-wide cohort, on
an in-memory store with scripted recognition: what is kept, for how long, and what recognition
is handed. ``tests/app/test_known_strangers.py`` runs both through the API with the real models;
``tests/ml/test_matching_school.py`` tests the matching."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pytest

from app.core.errors import NotFoundError
from app.core.images import encode_jpeg
from app.core.uploads import Upload
from app.records import documents, keys
from app.services import attendance, classes, enrolment, privacy
from app.services.context import Context
from app.services.enrolment import Existing
from app.services.recognition.impostors import school_cohort
from ml.fusion import FACENET
from ml.matching import Gallery
from tests.app.services.fakes import CLASS_ID, image, prepared, scripted, service_context, views

MONDAY = dt.date(2026, 3, 2)
DAY = dt.timedelta(days=1)


def _enrol(ctx: Context, class_id: str, *student_ids: str, seed: int = 1) -> None:
    for offset, student_id in enumerate(student_ids):
        enrolment.enrol_prepared(
            ctx,
            class_id,
            student_id,
            student_id.title(),
            [prepared(seed + offset)],
            Existing.REFUSE,
        )


def _upload(ctx: Context, *faces: str | None, seed: int = 7) -> str:
    scripted(ctx).script = list(faces)
    upload = Upload("class.jpg", encode_jpeg(image(seed)))
    return attendance.add_session_photo(ctx, CLASS_ID, "mon", upload).photo_id


def _mark_nobody(ctx: Context, photo_id: str, face: int) -> None:
    attendance.assign_face(ctx, CLASS_ID, "mon", photo_id, face, None, "console")


def _clock(now: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: now


@pytest.fixture
def ctx() -> Context:  # type: ignore[misc]
    with service_context() as context:
        _enrol(context, CLASS_ID, "ada", "bob")
        attendance.create_session(context, CLASS_ID, "mon", "Monday", MONDAY)
        yield context


def test_a_face_marked_nobody_is_kept_and_handed_to_recognition(ctx: Context) -> None:
    photo = _upload(ctx, "ada", None)
    _mark_nobody(ctx, photo, 1)
    (kept,) = attendance.list_known_strangers(ctx, CLASS_ID)
    assert (kept.session_id, kept.photo_id, kept.face_index, kept.marked_by) == (
        "mon",
        photo,
        1,
        "console",
    )
    assert attendance.known_stranger_crop(ctx, CLASS_ID, kept.stranger_id)[:2] == b"\xff\xd8"
    doc = ctx.records.strangers.get(CLASS_ID, kept.stranger_id)
    assert doc is not None and set(doc.embeddings) == {FACENET}

    _upload(ctx, "bob", seed=8)
    strangers = scripted(ctx).impostors[1]
    assert strangers is not None and len(strangers) == 1
    # The same objects while nothing changes: matching's per-class work is done once.
    assert ctx.impostors.strangers_of(CLASS_ID) is strangers


def test_naming_the_face_again_forgets_the_stranger(ctx: Context) -> None:
    photo = _upload(ctx, "ada", None)
    _mark_nobody(ctx, photo, 1)
    _mark_nobody(ctx, photo, 1)  # already so: still one
    assert len(attendance.list_known_strangers(ctx, CLASS_ID)) == 1
    attendance.assign_face(ctx, CLASS_ID, "mon", photo, 1, "bob", "console")
    assert attendance.list_known_strangers(ctx, CLASS_ID) == []
    assert ctx.impostors.strangers_of(CLASS_ID) is None


def test_the_newest_are_kept_and_a_teacher_removes_one(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"max_known_strangers": 2})
    marked = []
    for seed in range(3):
        ctx.clock = _clock(dt.datetime(2026, 3, 2, 9, seed, tzinfo=dt.UTC))
        photo = _upload(ctx, None, seed=seed)
        _mark_nobody(ctx, photo, 0)
        marked.append(photo)
    kept = attendance.list_known_strangers(ctx, CLASS_ID)
    assert [k.photo_id for k in kept] == [marked[2], marked[1]]  # newest first
    attendance.delete_known_stranger(ctx, CLASS_ID, kept[0].stranger_id)
    assert [k.photo_id for k in attendance.list_known_strangers(ctx, CLASS_ID)] == [marked[1]]
    with pytest.raises(NotFoundError):
        attendance.delete_known_stranger(ctx, CLASS_ID, kept[0].stranger_id)
    with pytest.raises(NotFoundError):
        attendance.known_stranger_crop(ctx, CLASS_ID, "nobody")


def test_nothing_is_kept_when_off_nor_of_a_face_too_small(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"remember_strangers": False})
    photo = _upload(ctx, None)
    _mark_nobody(ctx, photo, 0)
    assert attendance.list_known_strangers(ctx, CLASS_ID) == []


def test_they_go_with_the_class_photos_retention_and_with_the_class(ctx: Context) -> None:
    photo = _upload(ctx, None)
    _mark_nobody(ctx, photo, 0)
    result = ctx.records.session_photos.result(CLASS_ID, "mon", photo)
    assert result is not None
    days = ctx.settings.session_photo_retention_days
    early = privacy.purge_class(ctx, CLASS_ID, result.created_at + (days - 1) * DAY)
    assert early.known_strangers_purged == 0
    report = privacy.purge_class(ctx, CLASS_ID, result.created_at + (days + 1) * DAY)
    assert (report.photos_purged, report.known_strangers_purged) == (1, 1)
    assert attendance.list_known_strangers(ctx, CLASS_ID) == []

    second = _upload(ctx, None, seed=9)
    _mark_nobody(ctx, second, 0)
    classes.delete_class(ctx, CLASS_ID)
    assert ctx.store.list(keys.KNOWN_STRANGER.prefix(class_id=CLASS_ID)) == []


def test_the_school_cohort_leaves_out_the_class_and_its_students_elsewhere() -> None:
    def gallery(*seeds: int) -> Gallery:
        return Gallery.from_photos({f"s{seed}": [views(seed)] for seed in seeds})

    galleries = {"a": gallery(1, 2), "b": gallery(3, 4), "c": gallery(1, 5)}
    school = school_cohort(galleries, generation=1)
    assert school is not None and len(school.cohort) == 6
    for_a = school.without_class("a", ("s1", "s2"))
    # Class b's two and class c's s5; c's s1 is the same student (the same id) as a's.
    assert for_a is not None and len(for_a) == 3
    expected = np.stack([galleries["b"].templates[0], galleries["b"].templates[1]])
    assert np.allclose(for_a.vectors[FACENET][:2], expected)
    assert school.without_class("b", ("s3", "s4")) is not None
    assert school_cohort({}, generation=1) is None
    lone = school_cohort({"a": gallery(1)}, generation=1)
    assert lone is not None and lone.without_class("a", ("s1",)) is None


def test_recognition_gets_the_other_classes_once_built() -> None:
    with service_context() as ctx:
        _enrol(ctx, CLASS_ID, "ada", "bob")
        other = documents.ClassDoc(id="chem", name="Chemistry", created_at=ctx.now())
        assert ctx.records.classes.create(other)
        _enrol(ctx, "chem", "cy", "dan", "ada", seed=10)
        attendance.create_session(ctx, CLASS_ID, "mon", "Monday", MONDAY)
        ctx.impostors.rebuild_now()
        _upload(ctx, "ada")
        cohort = scripted(ctx).impostors[0]
        assert cohort is not None and len(cohort) == 2  # cy and dan; ada is this class's
        _upload(ctx, "bob", seed=8)
        assert scripted(ctx).impostors[0] is cohort

        ctx.settings = ctx.settings.model_copy(update={"school_cohort": False})
        ctx.impostors = type(ctx.impostors)(
            ctx.records,
            ctx.galleries,
            school_cohort=False,
            refresh_seconds=60,
            max_known_strangers=50,
        )
        _upload(ctx, "bob", seed=9)
        assert scripted(ctx).impostors[0] is None
