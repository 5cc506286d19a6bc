"""A whole school moves in: its roster (:mod:`.roster`) and a photo per student, in one import.

Each class of the roster is created or updated (its ``sourcedId`` kept as ``source_id``; its
Rollcall id made from it, never from a name), and each student with an active enrolment in it is
enrolled there from their photo, through the same checks as any registration photo. A student in
several classes is enrolled in each from the one photo (embedded once). A photo that cannot be
used (none found under the student's name, no face, several faces with none clearly the
student's, a face too small) is reported with the reason, and the student is enrolled all the
same, awaiting a photo.

Running it again, with the same export or a newer one, does only what is left: a class or student
already imported is found by its id (renamed if the roster renamed them), a photo already stored
(the same file) is not stored again. So an import cut off half-way is finished by the next. A
student the roster no longer holds in a class, or marks to be deleted, is reported and left alone,
unless the import is asked to erase them (``erase_removed``): then the normal erasure runs.

The import's progress lives in the store (:class:`app.records.ImportJobs`), so any replica
answers ``GET /v1/imports/{id}``; the work runs on the replica that accepted it, in the
background, its photos yielding to the class photos being recognised
(:meth:`app.services.recognition.inference.Inference.enrol`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from app.core.errors import ConflictError, NotFoundError, ServiceError
from app.core.ids import new_id, slugify
from app.core.uploads import Upload
from app.records.documents import (
    ClassDoc,
    ImportJobDoc,
    ImportRefusal,
    ImportStateDoc,
    StudentDoc,
    StudentPhotoDoc,
)
from app.services import privacy
from app.services.audit import Action, AuditSubject
from app.services.context import Context
from app.services.enrolment import (
    PreparedPhoto,
    forget_strangers_like,
    prepare_photos,
    stage_photos,
)
from app.services.imports.jobs import INTERRUPTED, list_imports, report
from app.services.imports.models import ImportJob
from app.services.imports.roster import PhotoKey, Roster, RosterClass, RosterStudent, source_slug
from app.storage import StorageUnavailableError

logger = logging.getLogger(__name__)

SAVE_EVERY = dt.timedelta(seconds=2)
"""How often a running import writes where it is (a write of a few kB)."""


@dataclass(frozen=True)
class ImportOptions:
    photo_key: PhotoKey = "sourcedId"
    """What the photos are named by: the student's ``sourcedId``, ``identifier`` or
    ``username`` (a plain CSV names each student's photo itself)."""
    dry_run: bool = False
    erase_removed: bool = False


class Photos:
    """An import's photos, found by file name: ``{key}.jpg`` (any image extension, any folder of
    the archive), the exact name first, else the one name that differs only in case."""

    def __init__(self, files: Mapping[str, Callable[[], bytes]]) -> None:
        self._files = dict(files)
        self._by_stem: dict[str, list[str]] = {}
        self._by_folded: dict[str, list[str]] = {}
        for name in self._files:
            stem = PurePosixPath(name).stem
            for index, key in ((self._by_stem, stem), (self._by_folded, stem.casefold())):
                index.setdefault(key, []).append(name)
            self._by_folded.setdefault(name.casefold(), []).append(name)

    def find(self, key: str) -> str | None:
        """The photo of ``key`` (a student's id, or a file name), or ``None``."""
        if not key:
            return None
        if key in self._files:
            return key
        exact = self._by_stem.get(key, [])
        if len(exact) == 1:
            return exact[0]
        folded = self._by_folded.get(key.casefold(), [])
        return folded[0] if len(folded) == 1 else None

    def read(self, name: str) -> bytes:
        return self._files[name]()


@dataclass
class _Run:
    """One import as it runs: its state, saved every :data:`SAVE_EVERY` and at the end."""

    ctx: Context
    job: ImportJobDoc
    roster: Roster
    options: ImportOptions
    actor: str
    state: ImportStateDoc
    saved_at: dt.datetime = field(default_factory=lambda: dt.datetime.min.replace(tzinfo=dt.UTC))
    class_ids: dict[str, str] = field(default_factory=dict)
    """``class sourcedId -> Rollcall id`` of the classes this run may enrol into."""
    touched: set[str] = field(default_factory=set)

    def save(self, *, force: bool = False) -> None:
        now = self.ctx.now()
        if force or now - self.saved_at >= SAVE_EVERY:
            self.state.updated_at = now
            self.ctx.records.imports.save_state(self.job.id, self.state)
            self.saved_at = now

    def count(self, kind: str, outcome: str) -> None:
        counts = self.state.classes if kind == "classes" else self.state.students
        counts[outcome] = counts.get(outcome, 0) + 1

    def refuse(
        self,
        student: RosterStudent,
        reason: str,
        class_source: str | None = None,
        *,
        enrolled_in: Sequence[str] = (),
    ) -> None:
        """Report a student the import could not complete; ``enrolled_in``: the Rollcall classes
        they are enrolled in all the same (a photo is missing), for a link to their page."""
        if self.options.dry_run:
            enrolled_in = ()  # nothing was stored: no page to link to
        self.state.refusals.append(
            ImportRefusal(
                source_id=student.source_id,
                name=student.name,
                reason=reason,
                class_source_id=class_source,
                student_id=source_slug(student.source_id) if enrolled_in else None,
                class_ids=list(enrolled_in),
            )
        )

    def audit(self, action: Action, subject: AuditSubject) -> None:
        if not self.options.dry_run:
            self.ctx.audit.record(action, self.actor, subject)


def class_id_of(roster: Roster, cls: RosterClass) -> str:
    """A class's Rollcall id: made from its ``sourcedId`` (a plain CSV's classes, known by name,
    get the id a teacher creating them would type)."""
    return slugify(cls.title) if roster.kind == "CSV" else source_slug(cls.source_id)


def queue_import(ctx: Context, roster: Roster, options: ImportOptions, actor: str) -> ImportJobDoc:
    """Record an import (queued) for :func:`run_import`, through the API or the command. One
    import runs at a time: another one still going (on any replica) is a
    :class:`ConflictError`."""
    for other in list_imports(ctx, limit=5):
        if other.state in ("queued", "running"):
            raise ConflictError(
                f"import {other.id} is {other.state} ({other.done} of {other.total} students); "
                "start this one when it has ended"
            )
    now = ctx.now()
    job = ImportJobDoc(
        id=new_id(now),
        kind=roster.kind,
        created_at=now,
        requested_by=actor,
        photo_key=options.photo_key,
        dry_run=options.dry_run,
        erase_removed=options.erase_removed,
        total=len(roster.students),
    )
    if not ctx.records.imports.create(job, ImportStateDoc(state="queued", updated_at=now)):
        raise ServiceError("import id taken; try again")  # pragma: no cover - ids are random
    return job


def start_import(
    ctx: Context,
    roster: Roster,
    photos: Photos | None,
    options: ImportOptions,
    actor: str,
    *,
    release: Callable[[], None] = lambda: None,
) -> ImportJob:
    """Record the import (:func:`queue_import`) and run it in the background; ``release`` is
    called when it has ended (the photos' temporary file goes; the caller removes it when this
    raises)."""
    job = queue_import(ctx, roster, options, actor)

    def run(stop: threading.Event) -> None:
        try:
            run_import(ctx, job, roster, photos, options, actor, stop)
        finally:
            release()

    ctx.jobs.submit(f"import {job.id}", run)
    return report(job, ImportStateDoc(state="queued", updated_at=job.created_at), ctx.now())


def run_import(
    ctx: Context,
    job: ImportJobDoc,
    roster: Roster,
    photos: Photos | None,
    options: ImportOptions,
    actor: str,
    stop: threading.Event | None = None,
    on_student: Callable[[], None] = lambda: None,
) -> ImportStateDoc:
    """Run an import (the caller has stored ``job``); returns its final state, stored too."""
    run = _Run(
        ctx, job, roster, options, actor, ImportStateDoc(state="running", updated_at=ctx.now())
    )
    run.save(force=True)
    try:
        for cls in roster.classes.values():
            _import_class(run, cls)
        members: dict[str, list[str]] = {}
        for class_source, student_ids in roster.members.items():
            for source_id in student_ids:
                members.setdefault(source_id, []).append(class_source)
        for source_id, student in roster.students.items():
            if stop is not None and stop.is_set():
                raise _StoppingError
            _import_student(run, student, members.get(source_id, []), photos)
            run.state.done += 1
            run.save()
            on_student()
        _removals(run)
        for class_id in sorted(run.touched):
            ctx.gallery_changed(class_id)
        run.state.state = "done"
    except _StoppingError:
        run.state.state, run.state.error = "failed", INTERRUPTED
    except StorageUnavailableError as error:
        run.state.state = "failed"
        run.state.error = f"storage unavailable ({error.reason}); run the import again later"
    except Exception as error:
        logger.exception("import %s failed", job.id)
        run.state.state, run.state.error = "failed", f"{type(error).__name__}: {error}"
    run.state.finished_at = ctx.now()
    try:
        run.save(force=True)
    except StorageUnavailableError:
        logger.error(
            "import %s ended (%s) but its state could not be stored", job.id, run.state.state
        )
    return run.state


class _StoppingError(Exception):
    """The service is stopping."""


def _import_class(run: _Run, cls: RosterClass) -> None:
    ctx, class_id = run.ctx, class_id_of(run.roster, cls)
    doc = ctx.records.classes.get(class_id)
    if doc is not None and doc.source_id not in (None, cls.source_id):
        for source_id in run.roster.members.get(cls.source_id, []):
            run.refuse(
                run.roster.students[source_id],
                f"the class {cls.title!r} was not imported: its id {class_id!r} belongs to "
                "another class",
                cls.source_id,
            )
        return
    run.class_ids[cls.source_id] = class_id
    if class_id not in run.state.class_ids:
        run.state.class_ids.append(class_id)
    code = cls.class_code or None
    if doc is None:
        if not run.options.dry_run:
            new = ClassDoc(
                id=class_id,
                name=cls.title,
                created_at=ctx.now(),
                source_id=cls.source_id,
                class_code=code,
            )
            if not ctx.records.classes.create(new):
                return _import_class(run, cls)  # created meanwhile (another run): look again
        run.count("classes", "created")
        run.audit(Action.CLASS_CREATE, AuditSubject(class_id=class_id))
        return
    if (doc.name, doc.source_id, doc.class_code) == (cls.title, cls.source_id, code):
        run.count("classes", "unchanged")
        return
    if not run.options.dry_run:
        ctx.records.classes.save(
            doc.model_copy(
                update={"name": cls.title, "source_id": cls.source_id, "class_code": code}
            )
        )
    run.count("classes", "updated")


RANK = {"unchanged": 0, "updated": 1, "created": 2}
"""How a student's outcome over their classes is counted: the most that happened."""


def _import_student(
    run: _Run, student: RosterStudent, class_sources: list[str], photos: Photos | None
) -> None:
    ctx = run.ctx
    student_id = source_slug(student.source_id)
    outcome = "unchanged"
    homes: list[tuple[str, list[StudentPhotoDoc]]] = []
    """The classes the student is enrolled in, with the photos stored there."""
    for class_source in class_sources:
        class_id = run.class_ids.get(class_source)
        if class_id is None:
            continue  # the class could not be imported (refused above)
        doc = ctx.records.students.get(class_id, student_id)
        if doc is not None and doc.source_id not in (None, student.source_id):
            reason = f"not imported: the id {student_id!r} belongs to another student"
            run.refuse(student, reason, class_source)
            continue
        change = _ensure_student(run, class_id, doc, student_id, student)
        outcome = max(outcome, change, key=RANK.__getitem__)
        stored = ctx.records.student_photos.counted(class_id, student_id) if doc else []
        homes.append((class_id, stored))
    if not homes:
        return
    run.count("students", outcome)
    photo = _photo(run, student, photos)
    if photo is None:
        if photos is not None and any(not stored for _, stored in homes):
            key = student.photo_file or student.photo_key(run.options.photo_key)
            run.refuse(
                student,
                f"no photo named {key!r} among the photos; add one on their page",
                enrolled_in=[class_id for class_id, _ in homes],
            )
        return
    name, data = photo
    digest = hashlib.sha256(data).hexdigest()
    wanting = [cid for cid, stored in homes if all(i.content_sha256 != digest for i in stored)]
    prepared = _prepared(run, student, name, data, wanting) if wanting else None
    if prepared is None:
        return  # stored before everywhere, or refused
    for class_id in wanting:
        if not run.options.dry_run:
            with ctx.records.staged("an import's photo") as staged:
                stage_photos(ctx, class_id, student_id, staged, [prepared])
            forget_strangers_like(ctx, class_id, student_id, [prepared])
            run.touched.add(class_id)
        run.state.photos_added += 1
        run.audit(
            Action.STUDENT_PHOTOS_ADD,
            AuditSubject(class_id=class_id, student_id=student_id, photo_ids=[prepared.photo_id]),
        )


def _prepared(
    run: _Run, student: RosterStudent, name: str, data: bytes, enrolled_in: Sequence[str]
) -> PreparedPhoto | None:
    """The photo embedded, as any registration photo is (in the background: class photos being
    recognised go first); ``None``, with the refusal reported, when it cannot be used (the
    student stays enrolled in ``enrolled_in`` without it)."""
    try:
        (prepared,) = prepare_photos(run.ctx, [Upload(name, data)], background=True)
    except ServiceError as error:
        run.refuse(student, _teacher_words(error, name), enrolled_in=enrolled_in)
        return None
    size, least = prepared.enrolment.quality.face_size, run.ctx.settings.min_recognisable_face
    if size < least:
        run.refuse(
            student,
            f"{name}: the face is too small ({size:.0f} px across); a photo where it is at least "
            f"{least} px is needed",
            enrolled_in=enrolled_in,
        )
        return None
    return prepared


def _ensure_student(
    run: _Run, class_id: str, doc: StudentDoc | None, student_id: str, student: RosterStudent
) -> str:
    """The student's record in the class: created, updated (renamed, or given their roster id),
    or unchanged."""
    ctx = run.ctx
    if doc is None:
        if not run.options.dry_run:
            new = StudentDoc(
                id=student_id, name=student.name, created_at=ctx.now(), source_id=student.source_id
            )
            if not ctx.records.students.claim(class_id, new):
                current = ctx.records.students.get(class_id, student_id)
                return _ensure_student(run, class_id, current, student_id, student)
            run.touched.add(class_id)
        run.audit(Action.STUDENT_ENROL, AuditSubject(class_id=class_id, student_id=student_id))
        return "created"
    if (doc.name, doc.source_id) == (student.name, student.source_id):
        return "unchanged"
    if not run.options.dry_run:
        ctx.records.students.save(
            class_id, doc.model_copy(update={"name": student.name, "source_id": student.source_id})
        )
    run.audit(Action.STUDENT_RENAME, AuditSubject(class_id=class_id, student_id=student_id))
    return "updated"


def _photo(run: _Run, student: RosterStudent, photos: Photos | None) -> tuple[str, bytes] | None:
    if photos is None:
        return None
    name = photos.find(student.photo_file or student.photo_key(run.options.photo_key))
    return None if name is None else (PurePosixPath(name).name, photos.read(name))


def _teacher_words(error: ServiceError, filename: str) -> str:
    """A refused photo's reason, for a teacher (the registration's own words, which name the
    photo)."""
    message = error.message
    if "faces" in message and "exactly one person" in message:
        return (
            f"{filename}: several faces and none is clearly the student's; choose theirs when "
            "adding the photo on their page"
        )
    return message


def _removals(run: _Run) -> None:
    """Students the roster no longer holds in a class (a bulk export is the whole roster), or
    marks to be deleted: reported, and erased only when asked."""
    ctx, roster = run.ctx, run.roster
    gone: dict[tuple[str, str], str] = {}
    if not roster.delta:
        for class_source, class_id in run.class_ids.items():
            kept = {source_slug(source) for source in roster.members.get(class_source, [])}
            for doc in ctx.records.students.documented(class_id):
                if doc.source_id is not None and doc.id not in kept:
                    gone[(class_source, doc.id)] = "no longer in this class in the roster"
    for removal in roster.removals:
        cls = roster.classes.get(removal.class_source_id)
        home = run.class_ids.get(removal.class_source_id) or (
            class_id_of(roster, cls) if cls else source_slug(removal.class_source_id)
        )
        marked = ctx.records.students.get(home, source_slug(removal.user_source_id))
        if marked is not None and marked.source_id == removal.user_source_id:
            run.class_ids.setdefault(removal.class_source_id, home)
            gone[(removal.class_source_id, marked.id)] = removal.reason
    for (class_source, student_id), reason in sorted(gone.items()):
        target = run.class_ids[class_source]
        leaving = ctx.records.students.get(target, student_id)
        if leaving is None:
            continue
        if run.options.erase_removed and not run.options.dry_run:
            try:
                privacy.erase_student(ctx, target, student_id)
            except NotFoundError:
                continue
            run.audit(Action.STUDENT_DELETE, AuditSubject(class_id=target, student_id=student_id))
            reason += "; erased"
        elif run.options.erase_removed:
            reason += "; would be erased"
        else:
            reason += "; kept (an import that erases removed students would erase them)"
        run.state.removed.append(
            ImportRefusal(
                source_id=leaving.source_id or student_id,
                name=leaving.name,
                reason=reason,
                class_source_id=class_source,
                student_id=None if run.options.erase_removed else student_id,
                class_ids=[target],
            )
        )
