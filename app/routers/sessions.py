"""Attendance sessions and recognition without recording."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Annotated

from fastapi import APIRouter, File, Path, Query, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from app import schemas
from app.deps import (
    Actor,
    Audit,
    ClassId,
    ContextDep,
    PhotoId,
    SessionId,
    StudentId,
    read_upload,
)
from app.routers.downloads import attachment
from app.routers.errors import errors
from app.services import attendance, corrections, reports
from app.services.audit import Action
from app.services.results import SessionPhotoAdded, SessionPhotoDetail

router = APIRouter(prefix="/v1/classes/{class_id}", tags=["attendance"])

_PHOTO_HELP = "A photo of the class (any number of faces)"
DateFrom = Annotated[
    dt.date | None, Query(alias="from", description="First date included (YYYY-MM-DD).")
]
DateTo = Annotated[dt.date | None, Query(alias="to", description="Last date included.")]


def base64_jpeg(jpeg: bytes) -> str:
    return base64.b64encode(jpeg).decode("ascii")


def photo_url(class_id: str, session_id: str, photo_id: str, name: str) -> str:
    return f"/v1/classes/{class_id}/sessions/{session_id}/photos/{photo_id}/{name}"


def _links(class_id: str, photo: SessionPhotoAdded | SessionPhotoDetail) -> dict[str, object]:
    """Where a session photo's annotated copy and face crops are served."""
    return {
        "annotated_url": photo_url(class_id, photo.session_id, photo.photo_id, "annotated.jpg"),
        "face_urls": [
            photo_url(class_id, photo.session_id, photo.photo_id, f"faces/{i}.jpg")
            for i in range(len(photo.faces))
        ],
    }


def _photo_out(class_id: str, photo: SessionPhotoAdded | SessionPhotoDetail) -> dict[str, object]:
    """A session photo's fields plus its links (validated into the wire model by the caller)."""
    fields = {field.name: getattr(photo, field.name) for field in dataclasses.fields(photo)}
    return {**fields, **_links(class_id, photo)}


@router.post(
    "/recognise",
    response_model=schemas.RecognitionOut,
    summary="Recognise the students in a photo without recording attendance",
    responses=errors(404, 413, 422, 503),
)
# The path's earlier spelling, kept for clients written before the API settled on British
# spelling (recognise, enrol); not in the documentation.
@router.post("/recognize", response_model=schemas.RecognitionOut, include_in_schema=False)
async def recognise(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    photo: Annotated[UploadFile, File(description=_PHOTO_HELP)],
    annotate: Annotated[
        bool, Query(description="Include the annotated photo (base64 JPEG)")
    ] = False,
) -> schemas.RecognitionOut:
    upload = await read_upload(photo, ctx.settings.max_upload_bytes)
    result = await run_in_threadpool(
        lambda: attendance.recognise(ctx, class_id, upload, with_image=annotate)
    )
    await audit(Action.RECOGNISE, class_id=class_id)
    return schemas.RecognitionOut.model_validate(
        {
            "faces": result.faces,
            "names": result.names,
            "unknown_threshold": result.unknown_threshold,
            "message": result.message,
            "image": base64_jpeg(result.annotated_jpeg) if result.annotated_jpeg else None,
        },
        from_attributes=True,
    )


@router.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.SessionOut,
    summary="Open an attendance session",
    responses=errors(404, 409, 422),
)
async def create_session(
    ctx: ContextDep, audit: Audit, class_id: ClassId, body: schemas.SessionCreate
) -> schemas.SessionOut:
    created = await run_in_threadpool(
        attendance.create_session, ctx, class_id, body.id, body.label, body.date
    )
    await audit(Action.SESSION_CREATE, class_id=class_id, session_id=created.id)
    return schemas.SessionOut.model_validate(created, from_attributes=True)


@router.get(
    "/sessions",
    response_model=list[schemas.SessionSummary],
    summary="List sessions (by date) with present and photo counts",
    responses=errors(404, 422),
)
async def list_sessions(ctx: ContextDep, class_id: ClassId) -> list[schemas.SessionSummary]:
    listed = await run_in_threadpool(attendance.list_sessions, ctx, class_id)
    return [schemas.SessionSummary.model_validate(s, from_attributes=True) for s in listed]


@router.get(
    "/sessions/{session_id}",
    response_model=schemas.SessionDetail,
    summary="The roster: every student present or absent, when and how sure",
    responses=errors(404, 422),
)
async def get_session(
    ctx: ContextDep, class_id: ClassId, session_id: SessionId
) -> schemas.SessionDetail:
    detail = await run_in_threadpool(attendance.get_session, ctx, class_id, session_id)
    return schemas.SessionDetail.model_validate(detail, from_attributes=True)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a session with its photos and records",
    responses=errors(404, 422),
)
async def delete_session(
    ctx: ContextDep, audit: Audit, class_id: ClassId, session_id: SessionId
) -> Response:
    await run_in_threadpool(attendance.delete_session, ctx, class_id, session_id)
    await audit(Action.SESSION_DELETE, class_id=class_id, session_id=session_id)
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
async def add_session_photo(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    photo: Annotated[UploadFile, File(description=_PHOTO_HELP)],
) -> schemas.SessionPhotoOut:
    upload = await read_upload(photo, ctx.settings.max_upload_bytes)
    added = await run_in_threadpool(attendance.add_session_photo, ctx, class_id, session_id, upload)
    await audit(
        Action.SESSION_PHOTO_ADD, class_id=class_id, session_id=session_id, photo_id=added.photo_id
    )
    return schemas.SessionPhotoOut.model_validate(_photo_out(class_id, added), from_attributes=True)


@router.get(
    "/sessions/{session_id}/attendance.csv",
    response_class=Response,
    summary="The roster as CSV",
    responses={200: {"content": {"text/csv": {}}}, **errors(404, 422)},
)
async def attendance_csv(ctx: ContextDep, class_id: ClassId, session_id: SessionId) -> Response:
    found = await run_in_threadpool(attendance.attendance_csv, ctx, class_id, session_id)
    return csv_download(found.text, found.filename)


def csv_download(text: str, name: str) -> Response:
    """A CSV attachment named ``name.csv``."""
    return Response(
        content=text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(f"{name}.csv", "attendance.csv")},
    )


@router.get(
    "/attendance.csv",
    response_class=Response,
    summary="The term report as CSV: a row per student, a column per session, and the rate",
    responses={200: {"content": {"text/csv": {}}}, **errors(404, 422)},
)
async def term_report_csv(
    ctx: ContextDep, class_id: ClassId, date_from: DateFrom = None, date_to: DateTo = None
) -> Response:
    report = await run_in_threadpool(reports.term_report, ctx, class_id, date_from, date_to)
    return csv_download(reports.term_csv(report), reports.report_filename(report))


@router.get(
    "/attendance",
    response_model=schemas.TermReportOut,
    summary="The term report: every student's status in every session, and their rate",
    description=(
        "Sessions in the date range (inclusive), by date. A student's rate is the sessions they "
        "attended (present or late) out of the sessions whose roster has them, less those they "
        "were excused from."
    ),
    responses=errors(404, 422),
)
async def term_report(
    ctx: ContextDep, class_id: ClassId, date_from: DateFrom = None, date_to: DateTo = None
) -> schemas.TermReportOut:
    report = await run_in_threadpool(reports.term_report, ctx, class_id, date_from, date_to)
    return schemas.TermReportOut.model_validate(report, from_attributes=True)


@router.put(
    "/sessions/{session_id}/records/{student_id}",
    response_model=schemas.RosterEntry,
    summary="Set a student's status by hand (wins over recognition, also over later photos)",
    responses=errors(404, 422),
)
async def set_status(
    ctx: ContextDep,
    actor: Actor,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    student_id: StudentId,
    body: schemas.StatusIn,
) -> schemas.RosterEntry:
    entry = await run_in_threadpool(
        corrections.set_status,
        ctx,
        class_id,
        session_id,
        student_id,
        body.status,
        body.note,
        actor,
    )
    await audit(Action.STATUS_SET, class_id=class_id, session_id=session_id, student_id=student_id)
    return schemas.RosterEntry.model_validate(entry, from_attributes=True)


@router.delete(
    "/sessions/{session_id}/records/{student_id}",
    response_model=schemas.RosterEntry,
    summary="Remove a status set by hand: recognition's applies again",
    responses=errors(404, 422),
)
async def clear_status(
    ctx: ContextDep,
    actor: Actor,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    student_id: StudentId,
) -> schemas.RosterEntry:
    entry = await run_in_threadpool(
        corrections.clear_status, ctx, class_id, session_id, student_id, actor
    )
    await audit(
        Action.STATUS_CLEAR, class_id=class_id, session_id=session_id, student_id=student_id
    )
    return schemas.RosterEntry.model_validate(entry, from_attributes=True)


@router.post(
    "/sessions/{session_id}/photos/{photo_id}/faces/{face_index}/assign",
    response_model=schemas.SessionPhotoDetail,
    summary="Name a face of a session photo (or say it is nobody of this class)",
    description=(
        "The student is then present from this photo; a student the face named before loses "
        "what this face gave them (another face or photo may still show them). The face becomes "
        "a confirmed sample of the student. A student is on one face per photo at most (409)."
    ),
    responses=errors(404, 409, 422),
)
async def assign_face(
    ctx: ContextDep,
    actor: Actor,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    photo_id: PhotoId,
    face_index: Annotated[int, Path(ge=0, le=10_000)],
    body: schemas.FaceAssignIn,
) -> schemas.SessionPhotoDetail:
    photo = await run_in_threadpool(
        corrections.assign_face,
        ctx,
        class_id,
        session_id,
        photo_id,
        face_index,
        body.student_id,
        actor,
    )
    await audit(
        Action.FACE_ASSIGN,
        class_id=class_id,
        session_id=session_id,
        photo_id=photo_id,
        face_index=face_index,
        student_id=body.student_id,
    )
    return schemas.SessionPhotoDetail.model_validate(
        _photo_out(class_id, photo), from_attributes=True
    )


@router.get(
    "/sessions/{session_id}/photos/{photo_id}/annotated.jpg",
    response_class=Response,
    summary="A session photo with a box and label on every face",
    responses={200: {"content": {"image/jpeg": {}}}, **errors(404, 422)},
)
async def annotated_photo(
    ctx: ContextDep, audit: Audit, class_id: ClassId, session_id: SessionId, photo_id: PhotoId
) -> Response:
    data = await run_in_threadpool(attendance.annotated_photo, ctx, class_id, session_id, photo_id)
    await audit(
        Action.SESSION_PHOTO_READ, class_id=class_id, session_id=session_id, photo_id=photo_id
    )
    return Response(content=data, media_type="image/jpeg")


@router.get(
    "/sessions/{session_id}/photos/{photo_id}",
    response_model=schemas.SessionPhotoDetail,
    summary="A session photo's faces (names as of now) with links to its images",
    responses=errors(404, 422),
)
async def session_photo(
    ctx: ContextDep, class_id: ClassId, session_id: SessionId, photo_id: PhotoId
) -> schemas.SessionPhotoDetail:
    photo = await run_in_threadpool(attendance.session_photo, ctx, class_id, session_id, photo_id)
    return schemas.SessionPhotoDetail.model_validate(
        _photo_out(class_id, photo), from_attributes=True
    )


@router.get(
    "/sessions/{session_id}/photos/{photo_id}/faces/{face_index}.jpg",
    response_class=Response,
    summary="A crop of one face of a session photo (faces numbered from 0, in result order)",
    responses={200: {"content": {"image/jpeg": {}}}, **errors(404, 422)},
)
async def face_crop(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    session_id: SessionId,
    photo_id: PhotoId,
    face_index: Annotated[int, Path(ge=0, le=10_000)],
) -> Response:
    data = await run_in_threadpool(
        attendance.face_crop, ctx, class_id, session_id, photo_id, face_index
    )
    await audit(
        Action.FACE_CROP_READ,
        class_id=class_id,
        session_id=session_id,
        photo_id=photo_id,
        face_index=face_index,
    )
    # A stored photo and its faces never change (an hour, as for thumbnails: erasure).
    return Response(
        content=data,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=3600"},
    )
