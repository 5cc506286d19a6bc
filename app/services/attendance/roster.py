"""Who was there: a session's attendance, derived from what is stored, never kept as one document.

Three kinds of objects decide it, each written once and never changed (:mod:`app.records`):

- the session's photos (``result.json``): the faces recognition named;
- the teacher's face assignments: "this face is Penny", or "not a student of this class";
- the teacher's status corrections: present, absent, late or excused, with a note.

A face's name is the teacher's newest assignment of it, else recognition's, except that a student
the teacher put on one face of a photo is on no other face of that photo (the name moved). A
student is seen in a session by the first photo (in upload order) whose faces name them. Their
status is the teacher's newest correction if it sets one, else present when seen, else absent: a
manual status always wins, also over photos uploaded after it. Deriving all this on every read
costs one listing and one small read per photo and correction, and it means concurrent uploads,
assignments and corrections can never lose each other: nobody rewrites a shared document.

The roster lists the students enrolled on or before the session's date, and any other student
the session has seen or the teacher has given a status (a student enrolled after a past session
does not turn up absent in it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from app.records.documents import (
    FaceAssignmentDoc,
    FaceDoc,
    SessionDoc,
    SessionPhotoDoc,
    Status,
    StatusCorrectionDoc,
)
from app.records.sessions import FaceId, SessionFolder
from app.services.attendance.models import RosterEntry, Source
from app.services.context import Context
from app.services.enrolment import TEACHER, Student

RECOGNISED: Final = "recognised"
ATTENDED = frozenset({"present", "late"})
"""Statuses that count as attending (``present`` in the API stays true for them)."""


@dataclass(frozen=True)
class NamedFace:
    """One face of a stored session photo with its name after the teacher's assignments."""

    index: int
    doc: FaceDoc
    student_id: str | None
    source: Source | None
    """``recognised``, ``teacher`` (assigned, or said to be nobody of the class), or ``None``."""
    assignment: FaceAssignmentDoc | None
    """The teacher's newest assignment of this face."""

    @property
    def not_in_class(self) -> bool:
        return self.assignment is not None and self.assignment.student_id is None


def name_faces(
    photo: SessionPhotoDoc, assignments: Mapping[int, FaceAssignmentDoc]
) -> list[NamedFace]:
    """Apply the teacher's assignments of a photo's faces to recognition's names.

    Two assignments naming one student in one photo can only come from a race (the API refuses
    the second with 409); the newer one wins and the older face is left unnamed. A face whose
    newest assignment is withdrawn has recognition's name again (less the students the teacher
    named on other faces).
    """
    assignments = {index: a for index, a in assignments.items() if not a.withdrawn}
    teacher_face: dict[str, int] = {}
    for index, newest in sorted(
        assignments.items(), key=lambda item: (item[1].assigned_at, item[1].id)
    ):
        if newest.student_id is not None and 0 <= index < len(photo.faces):
            teacher_face[newest.student_id] = index
    named_by_teacher = {index: student_id for student_id, index in teacher_face.items()}
    faces = []
    for index, face in enumerate(photo.faces):
        assignment = assignments.get(index)
        if assignment is not None:
            faces.append(NamedFace(index, face, named_by_teacher.get(index), TEACHER, assignment))
            continue
        student_id = face.student_id if face.student_id not in teacher_face else None
        faces.append(NamedFace(index, face, student_id, RECOGNISED if student_id else None, None))
    return faces


@dataclass(frozen=True)
class Sighting:
    """The first face of a session that names a student."""

    photo_id: str
    face: NamedFace
    seen_at: dt.datetime


@dataclass(frozen=True)
class SessionState:
    """Everything stored about one session that its attendance depends on."""

    doc: SessionDoc
    photos: Sequence[SessionPhotoDoc]
    """Complete photos, in upload order."""
    assignments: Mapping[FaceId, FaceAssignmentDoc]
    corrections: Mapping[str, StatusCorrectionDoc]
    """Each student's newest correction (``status`` ``None``: removed)."""

    def faces_of(self, photo: SessionPhotoDoc) -> list[NamedFace]:
        return name_faces(
            photo,
            {face: a for (photo_id, face), a in self.assignments.items() if photo_id == photo.id},
        )

    def sightings(self) -> dict[str, Sighting]:
        seen: dict[str, Sighting] = {}
        for photo in self.photos:
            for face in self.faces_of(photo):
                if face.student_id is not None and face.student_id not in seen:
                    seen[face.student_id] = Sighting(photo.id, face, photo.created_at)
        return seen

    def manual_status(self, student_id: str) -> StatusCorrectionDoc | None:
        correction = self.corrections.get(student_id)
        return correction if correction is not None and correction.status is not None else None

    def attendees(self) -> set[str]:
        """Who attended in the roster's sense: a manual present or late, else seen."""
        attended = {
            student_id
            for student_id, correction in self.corrections.items()
            if correction.status in ATTENDED
        }
        attended.update(
            student_id for student_id in self.sightings() if self.manual_status(student_id) is None
        )
        return attended

    def roster(self, enrolled: Iterable[Student]) -> list[RosterEntry]:
        """One entry per student on the roster (see the module's rules), by name then id."""
        sightings = self.sightings()
        entries = []
        for student in enrolled:
            sighting = sightings.get(student.id)
            correction = self.manual_status(student.id)
            if (
                student.created_at.date() > self.doc.date
                and sighting is None
                and correction is None
            ):
                continue  # enrolled after this session
            entries.append(roster_entry(student, sighting, correction))
        entries.sort(key=lambda e: (e.name.casefold(), e.student_id))
        return entries


def roster_entry(
    student: Student, sighting: Sighting | None, correction: StatusCorrectionDoc | None
) -> RosterEntry:
    seen = sighting.face if sighting is not None else None
    assignment = seen.assignment if seen is not None and seen.source == TEACHER else None
    status: Status
    source: Source | None
    if correction is not None and correction.status is not None:
        status, source = correction.status, TEACHER
    elif sighting is not None:
        status, source = "present", seen.source if seen is not None else RECOGNISED
    else:
        status, source = "absent", None
    recognised = seen is not None and seen.source == RECOGNISED
    return RosterEntry(
        student_id=student.id,
        name=student.name,
        present=status in ATTENDED,
        status=status,
        source=source,
        recorded_at=sighting.seen_at if sighting is not None else None,
        similarity=round(seen.doc.similarity, 4) if seen is not None and recognised else None,
        score=(
            round(seen.doc.score, 4)
            if seen is not None and recognised and seen.doc.score is not None
            else None
        ),
        photo_id=sighting.photo_id if sighting is not None else None,
        face_index=seen.index if seen is not None else None,
        note=correction.note if correction is not None else None,
        corrected_at=(
            correction.corrected_at
            if correction is not None
            else assignment.assigned_at
            if assignment is not None
            else None
        ),
        corrected_by=(
            correction.corrected_by
            if correction is not None
            else assignment.assigned_by
            if assignment is not None
            else None
        ),
    )


def load_state(ctx: Context, folder: SessionFolder, doc: SessionDoc) -> SessionState:
    """The session as one listing of its folder shows it: its photos' results and the newest
    correction and assignment of each student and face (read through the cache)."""
    return SessionState(
        doc=doc,
        photos=ctx.records.session_photos.results(folder),
        assignments=ctx.records.assignments.latest(folder),
        corrections=ctx.records.corrections.latest(folder),
    )
