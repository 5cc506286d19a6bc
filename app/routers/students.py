"""``/v1/classes/{class_id}/students``: enrol from photos, list, show, rename, add photos, delete;
a student's confirmed faces (samples)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app import schemas
from app.deps import (
    Audit,
    ClassId,
    ContextDep,
    PhotoId,
    SampleId,
    StudentId,
    read_upload,
    read_uploads,
)
from app.routers.downloads import attachment
from app.routers.errors import errors
from app.services import attendance, export, samples, students
from app.services.audit import Action
from app.services.ids import SLUG_PATTERN
from app.services.students import Existing

router = APIRouter(prefix="/v1/classes/{class_id}/students", tags=["students"])

_PHOTOS_HELP = "Photos of the student, each showing exactly one face"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.EnrolmentOut,
    summary="Enrol a student from one or more photos",
    description=(
        "Every photo is checked (readable image, exactly one face) before anything is stored. "
        "The response has a quality report per photo and warns when the face is very similar to "
        "another enrolled student. The student is recognisable as soon as this returns; the "
        "class's head is retrained in the background."
    ),
    responses=errors(404, 409, 413, 422, 503),
)
async def create_student(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    photos: Annotated[list[UploadFile], File(description=_PHOTOS_HELP)],
    student_id: Annotated[
        str | None,
        Form(
            pattern=SLUG_PATTERN,
            description="The new student's id. Without it, a readable id is made from the name "
            "(transliterated to ASCII, with a short suffix when another name has that slug), and "
            "a name already enrolled in the class (case-insensitive) is a 409.",
        ),
    ] = None,
) -> schemas.EnrolmentOut:
    uploads = await read_uploads(photos, ctx.settings.max_upload_bytes)
    if student_id is None:
        enrolled = await run_in_threadpool(students.enrol_named, ctx, class_id, name, uploads)
    else:
        enrolled = await run_in_threadpool(
            students.enrol, ctx, class_id, student_id, name, uploads, Existing.REFUSE
        )
    await audit(
        Action.STUDENT_ENROL,
        class_id=class_id,
        student_id=enrolled.student.id,
        photo_ids=[photo.photo_id for photo in enrolled.photos],
    )
    return schemas.EnrolmentOut.model_validate(enrolled, from_attributes=True)


@router.post(
    "/check",
    response_model=schemas.PhotoCheckOut,
    summary="Check a registration photo without storing anything",
    description=(
        "The quality report, face box and look-alike warnings that enrolment would give for this "
        "photo; 422 with the reason when it is not an image or shows no face or several faces. "
        "Pass `student_id` when the photo is for an enrolled student (their own photos are no "
        "look-alike)."
    ),
    responses=errors(404, 413, 422, 503),
)
async def check_photo(
    ctx: ContextDep,
    class_id: ClassId,
    photo: Annotated[UploadFile, File(description="A photo showing exactly one face")],
    student_id: Annotated[str | None, Form(pattern=SLUG_PATTERN)] = None,
) -> schemas.PhotoCheckOut:
    upload = await read_upload(photo, ctx.settings.max_upload_bytes)
    checked = await run_in_threadpool(students.check_photo, ctx, class_id, upload, student_id)
    return schemas.PhotoCheckOut.model_validate(checked, from_attributes=True)


@router.get(
    "", response_model=list[schemas.StudentOut], summary="List students", responses=errors(404, 422)
)
async def list_students(ctx: ContextDep, class_id: ClassId) -> list[schemas.StudentOut]:
    listed = await run_in_threadpool(students.list_students, ctx, class_id)
    return [schemas.StudentOut.model_validate(s, from_attributes=True) for s in listed]


@router.get(
    "/{student_id}",
    response_model=schemas.StudentDetail,
    summary="Show a student with the quality report of each photo",
    responses=errors(404, 422),
)
async def get_student(
    ctx: ContextDep, class_id: ClassId, student_id: StudentId
) -> schemas.StudentDetail:
    detail = await run_in_threadpool(students.get_student, ctx, class_id, student_id)
    return schemas.StudentDetail.model_validate(
        {
            **{f.name: getattr(detail, f.name) for f in dataclasses.fields(detail)},
            "samples": [
                {
                    **{f.name: getattr(sample, f.name) for f in dataclasses.fields(sample)},
                    "crop_url": sample_crop_url(class_id, student_id, sample.sample_id),
                }
                for sample in detail.samples
            ],
        },
        from_attributes=True,
    )


def sample_crop_url(class_id: str, student_id: str, sample_id: str) -> str:
    return f"/v1/classes/{class_id}/students/{student_id}/samples/{sample_id}.jpg"


_JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}}}
# Photo ids are never reused, so a photo's thumbnail never changes and may be cached; an hour at
# most, so that a deleted student's face does not linger in browsers. A student's may change.
_CACHE_AN_HOUR = {"Cache-Control": "private, max-age=3600"}
_REVALIDATE = {"Cache-Control": "private, no-cache"}


@router.get(
    "/{student_id}/thumbnail.jpg",
    response_class=Response,
    summary="A small JPEG of the student's first registration photo, cut around the face",
    responses={**_JPEG, **errors(404, 422)},
)
async def student_thumbnail(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId
) -> Response:
    data = await run_in_threadpool(students.student_thumbnail, ctx, class_id, student_id)
    await audit(Action.STUDENT_THUMBNAIL_READ, class_id=class_id, student_id=student_id)
    return Response(content=data, media_type="image/jpeg", headers=_REVALIDATE)


@router.get(
    "/{student_id}/photos/{photo_id}/thumbnail.jpg",
    response_class=Response,
    summary="A small JPEG of one registration photo, cut around the face",
    responses={**_JPEG, **errors(404, 422)},
)
async def photo_thumbnail(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId, photo_id: PhotoId
) -> Response:
    data = await run_in_threadpool(students.photo_thumbnail, ctx, class_id, student_id, photo_id)
    await audit(
        Action.PHOTO_THUMBNAIL_READ, class_id=class_id, student_id=student_id, photo_id=photo_id
    )
    return Response(content=data, media_type="image/jpeg", headers=_CACHE_AN_HOUR)


@router.get(
    "/{student_id}/attendance",
    response_model=schemas.StudentAttendance,
    summary="The student's attendance in every session of the class",
    responses=errors(404, 422),
)
async def student_attendance(
    ctx: ContextDep, class_id: ClassId, student_id: StudentId
) -> schemas.StudentAttendance:
    found = await run_in_threadpool(attendance.student_attendance, ctx, class_id, student_id)
    return schemas.StudentAttendance.model_validate(found, from_attributes=True)


@router.patch(
    "/{student_id}",
    response_model=schemas.StudentOut,
    summary="Rename a student",
    responses=errors(404, 422),
)
async def rename_student(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    student_id: StudentId,
    body: schemas.StudentRename,
) -> schemas.StudentOut:
    renamed = await run_in_threadpool(students.rename_student, ctx, class_id, student_id, body.name)
    # The ids only: the new name is no more in the log than the old one.
    await audit(Action.STUDENT_RENAME, class_id=class_id, student_id=student_id)
    return schemas.StudentOut.model_validate(renamed, from_attributes=True)


@router.post(
    "/{student_id}/photos",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.EnrolmentOut,
    summary="Add photos to a student",
    responses=errors(404, 413, 422, 503),
)
async def add_photos(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    student_id: StudentId,
    photos: Annotated[list[UploadFile], File(description=_PHOTOS_HELP)],
) -> schemas.EnrolmentOut:
    uploads = await read_uploads(photos, ctx.settings.max_upload_bytes)
    enrolled = await run_in_threadpool(
        students.enrol, ctx, class_id, student_id, None, uploads, Existing.REQUIRE
    )
    await audit(
        Action.STUDENT_PHOTOS_ADD,
        class_id=class_id,
        student_id=student_id,
        photo_ids=[photo.photo_id for photo in enrolled.photos],
    )
    return schemas.EnrolmentOut.model_validate(enrolled, from_attributes=True)


@router.delete(
    "/{student_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Erase a student: photos, embeddings, samples, attendance and corrections",
    description=(
        "Past class photos keep the face, unnamed; the head is retrained without the student. "
        "With `report=true` the answer is 200 with what was removed, by kind."
    ),
    responses={
        200: {"model": schemas.ErasureReportOut, "description": "With `report=true`."},
        **errors(404, 422),
    },
)
async def delete_student(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    student_id: StudentId,
    report: Annotated[
        bool, Query(description="Answer 200 with the objects removed, by kind, instead of 204.")
    ] = False,
) -> Response:
    erased = await run_in_threadpool(students.delete_student, ctx, class_id, student_id)
    # The erased student's id stays in the audit log; their name is nowhere.
    await audit(Action.STUDENT_DELETE, class_id=class_id, student_id=student_id)
    if not report:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    out = schemas.ErasureReportOut.model_validate(erased, from_attributes=True)
    return Response(content=out.model_dump_json(), media_type="application/json")


@router.get(
    "/{student_id}/samples/{sample_id}.jpg",
    response_class=Response,
    summary="A small JPEG of a confirmed face (a sample)",
    responses={**_JPEG, **errors(404, 422)},
)
async def sample_crop(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId, sample_id: SampleId
) -> Response:
    data = await run_in_threadpool(samples.sample_crop, ctx, class_id, student_id, sample_id)
    await audit(
        Action.SAMPLE_CROP_READ, class_id=class_id, student_id=student_id, sample_id=sample_id
    )
    return Response(content=data, media_type="image/jpeg", headers=_CACHE_AN_HOUR)


@router.delete(
    "/{student_id}/samples/{sample_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a confirmed face (a wrong one): the student is matched without it",
    responses=errors(404, 422),
)
async def delete_sample(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId, sample_id: SampleId
) -> Response:
    await run_in_threadpool(samples.delete_sample, ctx, class_id, student_id, sample_id)
    await audit(Action.SAMPLE_DELETE, class_id=class_id, student_id=student_id, sample_id=sample_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{student_id}/export",
    response_class=StreamingResponse,
    summary="Everything held about the student, as a zip (a data-protection access request)",
    description=(
        "The record, registration photos, face-model numbers, the student's faces cut from class "
        "photos, confirmed faces, and attendance as CSV, with a README.txt saying what each file "
        "is and how many of each kind it holds. Streamed: large exports are never held in memory."
    ),
    responses={200: {"content": {"application/zip": {}}}, **errors(404, 422)},
)
async def export_student(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId
) -> Response:
    found = await run_in_threadpool(export.student_export, ctx, class_id, student_id)
    # Recorded when the export is handed out (the zip is then streamed).
    await audit(Action.STUDENT_EXPORT, class_id=class_id, student_id=student_id)
    return StreamingResponse(
        found.chunks,
        media_type="application/zip",
        headers={
            "Content-Disposition": attachment(f"{found.filename}.zip", "student-export.zip"),
            "Cache-Control": "no-store",
        },
    )
