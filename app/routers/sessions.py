"""Attendance sessions, their reports, and recognition without recording."""

from __future__ import annotations

import base64
import datetime as dt
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Response, UploadFile, status

from app import schemas
from app.deps import (
    Actor,
    Audit,
    ClassId,
    ContextDep,
    FaceIndex,
    PhotoId,
    SessionId,
    StudentId,
    read_upload,
)
from app.routers.downloads import CACHE_AN_HOUR, JPEG_RESPONSES, audited_jpeg, csv_download
from app.routers.errors import errors
from app.services import attendance
from app.services.attendance import (
    RosterEntry,
    Session,
    SessionDetail,
    SessionPhotoAdded,
    SessionPhotoDetail,
    SessionSummary,
    TermReport,
)
from app.services.audit import Action, AuditSubject

router = APIRouter(prefix="/v1/classes/{class_id}", tags=["attendance"])

_PHOTO_HELP = "A photo of the class (any number of faces)"
DateFrom = Annotated[
    dt.date | None, Query(alias="from", description="First date included (YYYY-MM-DD).")
]
DateTo = Annotated[dt.date | None, Query(alias="to", description="Last date included.")]
_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}


def base64_jpeg(jpeg: bytes) -> str:
    return base64.b64encode(jpeg).decode("ascii")


def photo_url(class_id: str, session_id: str, photo_id: str, name: str) -> str:
    return f"/v1/classes/{class_id}/sessions/{session_id}/photos/{photo_id}/{name}"


def _links(class_id: str, photo: SessionPhotoAdded | SessionPhotoDetail) -> schemas.PhotoLinks:
    """Where a session photo's annotated copy and face crops are served."""
    return schemas.PhotoLinks(
        annotated_url=photo_url(class_id, photo.session_id, photo.photo_id, "annotated.jpg"),
        face_urls=[
            photo_url(class_id, photo.session_id, photo.photo_id, f"faces/{i}.jpg")
            for i in range(len(photo.faces))
        ],
    )


def _detail_out(class_id: str, photo: SessionPhotoDetail) -> schemas.SessionPhotoDetailOut:
    return schemas.SessionPhotoDetailOut(**dict(photo), **dict(_links(class_id, photo)))


@router.post(
    "/recognise",
    response_model=schemas.RecognitionOut,
    summary="Recognise the students in a photo without recording attendance",
    responses=errors(404, 413, 422, 503),
)
# The path's earlier spelling, kept for clients written before the API settled on British
# spelling (recognise, enrol); not in the documentation.
@router.post("/recognize", response_model=schemas.RecognitionOut, include_in_schema=False)
def recognise(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    photo: Annotated[UploadFile, File(description=_PHOTO_HELP)],
    annotate: Annotated[
        bool, Query(description="Include the annotated photo (base64 JPEG)")
    ] = False,
) -> schemas.RecognitionOut:
    upload = read_upload(photo, ctx.settings.max_upload_bytes)
    result = attendance.recognise(ctx, class_id, upload, with_image=annotate)
    audit(Action.RECOGNISE, AuditSubject(class_id=class_id))
    image = base64_jpeg(result.annotated_jpeg) if result.annotated_jpeg else None
    return schemas.RecognitionOut(**dict(result), image=image)


@router.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    response_model=Session,
    summary="Open an attendance session",
    responses=errors(404, 409, 422),
)
def create_session(
    ctx: ContextDep, audit: Audit, class_id: ClassId, body: schemas.SessionCreate
) -> Session:
    created = attendance.create_session(ctx, class_id, body.id, body.label, body.date)
    audit(Action.SESSION_CREATE, AuditSubject(class_id=class_id, session_id=created.id))
    return created


@router.get(
    "/sessions",
    response_model=list[SessionSummary],
    summary="List sessions (by date) with present and photo counts",
    responses=errors(404, 422),
)
def list_sessions(ctx: ContextDep, class_id: ClassId) -> list[SessionSummary]:
    return attendance.list_sessions(ctx, class_id)


@router.get(
    "/sessions/{session_id}",
    response_model=SessionDetail,
    summary="The roster: every student present or absent, when and how sure",
    responses=errors(404, 422),
)
def get_session(ctx: ContextDep, class_id: ClassId, session_id: SessionId) -> SessionDetail:
    return attendance.get_session(ctx, class_id, session_id)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a session with its photos and records",
    responses=errors(404, 422),
)
def delete_session(
    ctx: ContextDep, audit: Audit, class_id: ClassId, session_id: SessionId
) -> Response:
    attendance.delete_session(ctx, class_id, session_id)
    audit(Action.SESSION_DELETE, AuditSubject(class_id=class_id, session_id=session_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/sessions/{session_id}/photos",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.SessionPhotoOut,
    summary="Add a photo: recognised students are recorded present",
    description=(
        "Several photos per session merge. A student is recorded once, by the first photo that "
        "recognises them; later photos list them under `already_present` and change nothing."
    ),
    responses=errors(404, 413, 422, 503),
)
def add_session_photo(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    photo: Annotated[UploadFile, File(description=_PHOTO_HELP)],
) -> schemas.SessionPhotoOut:
    upload = read_upload(photo, ctx.settings.max_upload_bytes)
    added = attendance.add_session_photo(ctx, class_id, session_id, upload)
    audit(
        Action.SESSION_PHOTO_ADD,
        AuditSubject(class_id=class_id, session_id=session_id, photo_id=added.photo_id),
    )
    return schemas.SessionPhotoOut(**dict(added), **dict(_links(class_id, added)))


@router.get(
    "/sessions/{session_id}/attendance.csv",
    response_class=Response,
    summary="The roster as CSV",
    responses={**_CSV, **errors(404, 422)},
)
def attendance_csv(ctx: ContextDep, class_id: ClassId, session_id: SessionId) -> Response:
    found = attendance.attendance_csv(ctx, class_id, session_id)
    return csv_download(found.text, found.filename)


@router.get(
    "/attendance.csv",
    response_class=Response,
    summary="The term report as CSV: a row per student, a column per session, and the rate",
    responses={**_CSV, **errors(404, 422)},
)
def term_report_csv(
    ctx: ContextDep, class_id: ClassId, date_from: DateFrom = None, date_to: DateTo = None
) -> Response:
    report = attendance.term_report(ctx, class_id, date_from, date_to)
    return csv_download(attendance.term_csv(report), attendance.report_filename(report))


@router.get(
    "/attendance/events.csv",
    response_class=Response,
    summary="Attendance for the school's system: a row per student per session (Ed-Fi events)",
    description=(
        "Columns: `class_id` and `student_id` (the roster's `sourcedId` when imported, else "
        "Rollcall's id), `event_date`, `session`, `attendance_event_category` (Ed-Fi: In "
        "Attendance for present, Tardy for late, Excused Absence, Unexcused Absence for "
        "absent), `arrival_time` (when first seen, ISO 8601 UTC; empty when not seen), `status`."
    ),
    responses={**_CSV, **errors(404, 422)},
)
def attendance_events_csv(
    ctx: ContextDep, class_id: ClassId, date_from: DateFrom = None, date_to: DateTo = None
) -> Response:
    found = attendance.attendance_events_csv(ctx, class_id, date_from, date_to)
    return csv_download(found.text, found.filename, "attendance-events.csv")


@router.get(
    "/attendance",
    response_model=TermReport,
    summary="The term report: every student's status in every session, and their rate",
    description=(
        "Sessions in the date range (inclusive), by date. A student's rate is the sessions they "
        "attended (present or late) out of the sessions whose roster has them, less those they "
        "were excused from."
    ),
    responses=errors(404, 422),
)
def term_report(
    ctx: ContextDep, class_id: ClassId, date_from: DateFrom = None, date_to: DateTo = None
) -> TermReport:
    return attendance.term_report(ctx, class_id, date_from, date_to)


@router.put(
    "/sessions/{session_id}/records/{student_id}",
    response_model=RosterEntry,
    summary="Set a student's status by hand (wins over recognition, also over later photos)",
    responses=errors(404, 422),
)
def set_status(
    ctx: ContextDep,
    actor: Actor,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    student_id: StudentId,
    body: schemas.StatusIn,
) -> RosterEntry:
    entry = attendance.set_status(
        ctx, class_id, session_id, student_id, body.status, body.note, actor
    )
    audit(
        Action.STATUS_SET,
        AuditSubject(class_id=class_id, session_id=session_id, student_id=student_id),
    )
    return entry


@router.delete(
    "/sessions/{session_id}/records/{student_id}",
    response_model=RosterEntry,
    summary="Remove a status set by hand: recognition's applies again",
    responses=errors(404, 422),
)
def clear_status(
    ctx: ContextDep,
    actor: Actor,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    student_id: StudentId,
) -> RosterEntry:
    entry = attendance.clear_status(ctx, class_id, session_id, student_id, actor)
    audit(
        Action.STATUS_CLEAR,
        AuditSubject(class_id=class_id, session_id=session_id, student_id=student_id),
    )
    return entry


@router.post(
    "/sessions/{session_id}/photos/{photo_id}/faces/{face_index}/assign",
    response_model=schemas.SessionPhotoDetailOut,
    summary="Name a face of a session photo (or say it is nobody of this class)",
    description=(
        "The student is then present from this photo; a student the face named before loses "
        "what this face gave them (another face or photo may still show them). The face becomes "
        "a confirmed sample of the student. A student is on one face per photo at most (409)."
    ),
    responses=errors(404, 409, 422),
)
def assign_face(
    ctx: ContextDep,
    actor: Actor,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    photo_id: PhotoId,
    face_index: FaceIndex,
    body: schemas.FaceAssignIn,
) -> schemas.SessionPhotoDetailOut:
    photo = attendance.assign_face(
        ctx, class_id, session_id, photo_id, face_index, body.student_id, actor
    )
    audit(
        Action.FACE_ASSIGN,
        AuditSubject(
            class_id=class_id,
            session_id=session_id,
            photo_id=photo_id,
            face_index=face_index,
            student_id=body.student_id,
        ),
    )
    return _detail_out(class_id, photo)


@router.delete(
    "/sessions/{session_id}/photos/{photo_id}/faces/{face_index}/assign",
    response_model=schemas.SessionPhotoDetailOut,
    summary="Take back a teacher's naming of a face: recognition's name applies again",
    description=(
        "Undoes `POST .../assign` (a student, or nobody of this class): the face has the name "
        "recognition gave it again, unless a teacher put that student on another face of the "
        "photo; the sample or the known stranger the naming kept goes. 404 when no teacher named "
        "the face."
    ),
    responses=errors(404, 422),
)
def withdraw_assignment(
    ctx: ContextDep,
    actor: Actor,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    photo_id: PhotoId,
    face_index: FaceIndex,
) -> schemas.SessionPhotoDetailOut:
    photo = attendance.withdraw_assignment(ctx, class_id, session_id, photo_id, face_index, actor)
    audit(
        Action.FACE_UNASSIGN,
        AuditSubject(
            class_id=class_id, session_id=session_id, photo_id=photo_id, face_index=face_index
        ),
    )
    return _detail_out(class_id, photo)


@router.get(
    "/sessions/{session_id}/photos/{photo_id}/annotated.jpg",
    response_class=Response,
    summary="A session photo with a box and label on every face",
    responses={**JPEG_RESPONSES, **errors(404, 422)},
)
def annotated_photo(
    ctx: ContextDep, audit: Audit, class_id: ClassId, session_id: SessionId, photo_id: PhotoId
) -> Response:
    return audited_jpeg(
        partial(attendance.annotated_photo, ctx, class_id, session_id, photo_id),
        audit,
        Action.SESSION_PHOTO_READ,
        AuditSubject(class_id=class_id, session_id=session_id, photo_id=photo_id),
    )


@router.get(
    "/sessions/{session_id}/photos/{photo_id}",
    response_model=schemas.SessionPhotoDetailOut,
    summary="A session photo's faces (names as of now) with links to its images",
    responses=errors(404, 422),
)
def session_photo(
    ctx: ContextDep, class_id: ClassId, session_id: SessionId, photo_id: PhotoId
) -> schemas.SessionPhotoDetailOut:
    photo = attendance.session_photo(ctx, class_id, session_id, photo_id)
    return _detail_out(class_id, photo)


@router.get(
    "/sessions/{session_id}/photos/{photo_id}/faces/{face_index}.jpg",
    response_class=Response,
    summary="A crop of one face of a session photo (faces numbered from 0, in result order)",
    responses={**JPEG_RESPONSES, **errors(404, 422)},
)
def face_crop(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    photo_id: PhotoId,
    face_index: FaceIndex,
) -> Response:
    # A stored photo and its faces never change (an hour, as for thumbnails: erasure).
    return audited_jpeg(
        partial(attendance.face_crop, ctx, class_id, session_id, photo_id, face_index),
        audit,
        Action.FACE_CROP_READ,
        AuditSubject(
            class_id=class_id, session_id=session_id, photo_id=photo_id, face_index=face_index
        ),
        CACHE_AN_HOUR,
    )
