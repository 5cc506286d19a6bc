"""A school's roster import on an in-memory store with scripted faces: what it creates, that a
second run (or a newer export) changes only what changed, removals, a dry run, an interruption."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from PIL import Image

from app.core.errors import ConflictError
from app.records import documents
from app.services import enrolment, imports, privacy
from app.services.context import Context
from app.services.imports.jobs import INTERRUPTED
from app.services.imports.roster import read_oneroster, read_plain_csv
from app.services.imports.school import class_id_of
from harness.rosters import Pupil, SchoolClass, oneroster_files, plain_csv
from ml.types import RGBImage
from tests.app.services.fakes import image, no_face, service_context


def _png(pixels: RGBImage) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _pupil(number: int, given: str, family: str) -> Pupil:
    return Pupil(
        source_id=f"0000000{number}-guid",
        given=given,
        family=family,
        photo=None,
        identifier=f"S{number}",
        username=f"u{number}",
    )


ADA, BOB, CY, DEE = (
    _pupil(1, "Ada", "Lovelace"),
    _pupil(2, "Bob", "Marley"),
    _pupil(3, "Cy", "Young"),
    _pupil(4, "Dee", "Dee"),
)


def _school() -> list[SchoolClass]:
    return [
        SchoolClass("class-7a", "Physics 7A", [ADA, BOB, CY], code="PHY7A"),
        SchoolClass("class-7b", "Maths 7B", [ADA, DEE]),
    ]


def _key(pupil: Pupil, key: str) -> str:
    return {"sourcedId": pupil.source_id, "identifier": pupil.identifier}.get(key, pupil.username)


def _photos(key: str = "sourcedId") -> imports.Photos:
    """Ada, Bob and Dee have a photo (Bob's shows no face); Cy has none."""
    files = [(ADA, _png(image(1))), (BOB, _png(no_face())), (DEE, _png(image(4)))]
    return imports.Photos({f"photos/{_key(p, key)}.png": partial(bytes, data) for p, data in files})


def _roster(classes: Sequence[SchoolClass], **options: object) -> imports.Roster:
    files = oneroster_files(classes, **options)  # type: ignore[arg-type]
    return read_oneroster(files.get)


def _run(
    ctx: Context,
    roster: imports.Roster,
    photos: imports.Photos | None,
    photo_key: imports.PhotoKey = "sourcedId",
    *,
    dry_run: bool = False,
    erase_removed: bool = False,
) -> imports.ImportJob:
    options = imports.ImportOptions(photo_key, dry_run, erase_removed)
    job = imports.start_import(ctx, roster, photos, options, "key 1")
    assert ctx.jobs.wait_idle(timeout=60)
    return imports.get_import(ctx, job.id)


def _students(ctx: Context, class_id: str) -> dict[str, tuple[str, int, str | None]]:
    return {
        s.id: (s.name, s.photo_count, s.source_id) for s in enrolment.list_students(ctx, class_id)
    }


def test_a_school_moves_in() -> None:
    with service_context() as ctx:
        roster = _roster(_school())
        job = _run(ctx, roster, _photos())
        assert job.state == "done" and (job.done, job.total) == (4, 4)
        assert (job.classes.created, job.students.created, job.photos_added) == (2, 4, 3)
        # Ids from the sourcedIds, never from a name; the sourcedIds kept.
        physics = ctx.records.classes.get("class-7a")
        assert physics is not None and (physics.name, physics.source_id) == (
            "Physics 7A",
            "class-7a",
        )
        assert _students(ctx, "class-7a") == {
            "00000001-guid": ("Ada Lovelace", 1, "00000001-guid"),
            "00000002-guid": ("Bob Marley", 0, "00000002-guid"),  # no face: needs a photo
            "00000003-guid": ("Cy Young", 0, "00000003-guid"),  # no photo: needs one
        }
        # Ada is in both classes, enrolled in each from the one photo.
        assert _students(ctx, "class-7b")["00000001-guid"] == ("Ada Lovelace", 1, "00000001-guid")
        reasons = {issue.source_id: issue.reason for issue in job.refusals}
        assert set(reasons) == {"00000002-guid", "00000003-guid"}
        assert "no face found" in reasons["00000002-guid"]
        assert "no photo named '00000003-guid'" in reasons["00000003-guid"]
        # Each refusal links to the student's page; the job names the classes it went through.
        links = {issue.source_id: (issue.student_id, issue.class_ids) for issue in job.refusals}
        assert links == {
            "00000002-guid": ("00000002-guid", ["class-7a"]),
            "00000003-guid": ("00000003-guid", ["class-7a"]),
        }
        assert sorted(job.class_ids) == ["class-7a", "class-7b"]
        # Every change is in the audit log, by the key that asked, with ids only.
        events = ctx.audit.events(ctx.now().date(), ctx.now().date())
        assert {e.actor for e in events} == {"key 1"}
        assert not any("Lovelace" in e.model_dump_json() for e in events)


def test_a_second_run_changes_nothing_and_a_newer_export_only_what_changed() -> None:
    with service_context() as ctx:
        _run(ctx, _roster(_school()), _photos())
        again = _run(ctx, _roster(_school()), _photos())
        assert (again.classes.unchanged, again.students.unchanged, again.photos_added) == (2, 4, 0)
        assert _students(ctx, "class-7a")["00000001-guid"][1] == 1  # not stored twice
        # A newer export: Ada renamed, Bob's enrolment gone, a new pupil, a new class title.
        renamed = Pupil(**{**ADA.__dict__, "preferred": "Augusta"})
        eve = _pupil(5, "Eve", "Online")
        newer = [
            SchoolClass("class-7a", "Physics 7A (new room)", [renamed, CY, eve]),
            SchoolClass("class-7b", "Maths 7B", [renamed, DEE]),
        ]
        job = _run(ctx, _roster(newer), _photos())
        assert (job.classes.updated, job.classes.unchanged) == (1, 1)
        assert (job.students.created, job.students.updated) == (1, 1)
        assert _students(ctx, "class-7a")["00000001-guid"][0] == "Augusta Lovelace"
        [gone] = job.removed
        assert (gone.source_id, gone.class_source_id) == ("00000002-guid", "class-7a")
        assert "kept" in gone.reason
        assert "00000002-guid" in _students(ctx, "class-7a")  # reported, not erased
        erased = _run(ctx, _roster(newer), _photos(), erase_removed=True)
        assert "erased" in erased.removed[0].reason
        assert "00000002-guid" not in _students(ctx, "class-7a")


def test_a_delta_export_removes_only_what_it_marks() -> None:
    with service_context() as ctx:
        _run(ctx, _roster(_school()), _photos())
        physics = SchoolClass("class-7a", "Physics 7A", [CY])
        delta = _roster([physics], delta=True, removed=[(physics, BOB)])
        job = _run(ctx, delta, None, erase_removed=True)
        assert [(issue.source_id, "erased" in issue.reason) for issue in job.removed] == [
            ("00000002-guid", True)
        ]
        # Absent from the delta is unchanged, not gone.
        assert set(_students(ctx, "class-7a")) == {"00000001-guid", "00000003-guid"}


def test_a_dry_run_checks_the_faces_and_stores_nothing_but_its_report() -> None:
    with service_context() as ctx:
        before = set(ctx.store.list("classes/"))
        job = _run(ctx, _roster(_school()), _photos(), dry_run=True)
        assert (job.classes.created, job.students.created, job.photos_added) == (2, 4, 3)
        assert len(job.refusals) == 2
        assert set(ctx.store.list("classes/")) == before
        assert ctx.store.list("imports/")  # the report, for GET /v1/imports/{id}


def test_photos_named_by_identifier_or_username() -> None:
    with service_context() as ctx:
        job = _run(ctx, _roster(_school()), _photos("identifier"), "identifier")
        assert job.photos_added == 3


def test_an_interrupted_import_is_finished_by_the_next_run() -> None:
    with service_context() as ctx:
        roster = _roster(_school())
        stop = threading.Event()
        now = ctx.now()
        job = documents.ImportJobDoc(
            id="cut",
            kind=roster.kind,
            created_at=now,
            requested_by="key 1",
            photo_key="sourcedId",
            dry_run=False,
            erase_removed=False,
            total=4,
        )
        ctx.records.imports.create(job, documents.ImportStateDoc(state="queued", updated_at=now))
        state = imports.run_import(
            ctx, job, roster, _photos(), imports.ImportOptions(), "key 1", stop, stop.set
        )
        assert (state.state, state.error, state.done) == ("failed", INTERRUPTED, 1)
        finished = _run(ctx, roster, _photos())
        assert finished.state == "done" and finished.students.created == 3
        assert len(_students(ctx, "class-7a")) == 3


def test_a_class_or_student_id_taken_by_another_is_refused() -> None:
    with service_context() as ctx:
        ctx.records.classes.create(
            documents.ClassDoc(
                id="class-7b", name="Maths", created_at=ctx.now(), source_id="another-system"
            )
        )
        job = _run(ctx, _roster(_school()), _photos())
        assert any("belongs to another class" in issue.reason for issue in job.refusals)
        assert _students(ctx, "class-7b") == {}


def test_a_plain_csv_school() -> None:
    with service_context() as ctx:
        school = _school()
        data = plain_csv(school)
        roster = read_plain_csv(data)
        photos = imports.Photos(
            {
                f"{ADA.source_id}.png": partial(_png, image(1)),
                f"{DEE.source_id}.png": partial(_png, image(4)),
            }
        )
        job = _run(ctx, roster, photos)
        assert job.state == "done" and job.classes.created == 2
        physics = class_id_of(roster, roster.classes["Physics 7A"])
        assert physics == "physics-7a"
        assert {s[2] for s in _students(ctx, physics).values()} == {"S1", "S2", "S3"}


@pytest.mark.parametrize("numbers", [True, False])
def test_a_plain_csv_keys_students_by_number_or_else_name(numbers: bool) -> None:
    roster = read_plain_csv(plain_csv(_school(), numbers=numbers))
    assert set(roster.students) == (
        {"S1", "S2", "S3", "S4"}
        if numbers
        else {"Ada Lovelace", "Bob Marley", "Cy Young", "Dee Dee"}
    )


def test_import_reports_are_kept_a_month() -> None:
    with service_context() as ctx:
        ctx.clock = lambda: datetime(2026, 9, 1, 8, tzinfo=UTC)
        old = _run(ctx, _roster(_school()), None)
        ctx.clock = lambda: datetime(2026, 9, 25, 8, tzinfo=UTC)
        recent = _run(ctx, _roster(_school()), None)
        report = privacy.purge_all(ctx, datetime(2026, 10, 5, tzinfo=UTC))
        assert report.imports_purged == 1
        assert [job.id for job in imports.list_imports(ctx)] == [recent.id]
        assert old.id not in ctx.records.imports.ids()


def test_one_import_at_a_time() -> None:
    with service_context() as ctx:
        now = ctx.now()
        running = documents.ImportJobDoc(
            id="running",
            kind="OneRoster 1.2",
            created_at=now,
            requested_by="key 2",
            photo_key="sourcedId",
            dry_run=False,
            erase_removed=False,
            total=500,
        )
        state = documents.ImportStateDoc(state="running", updated_at=now, done=120)
        ctx.records.imports.create(running, state)
        with pytest.raises(ConflictError, match="import running is running \\(120 of 500"):
            _run(ctx, _roster(_school()), None)
        # Cut off (its process stopped writing): the next import may start.
        ctx.clock = lambda: now + timedelta(minutes=6)
        assert imports.get_import(ctx, "running").state == "failed"
        assert _run(ctx, _roster(_school()), None).state == "done"
