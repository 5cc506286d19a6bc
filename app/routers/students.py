"""``/v1/classes/{class_id}/students``: enrol from photos, list, show, rename, add photos, delete;
a student's confirmed faces (samples)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi.responses import StreamingResponse

from app import schemas
from app.core.errors import InvalidInputError
from app.core.ids import SLUG_PATTERN
from app.deps import (
    Audit,
    ClassId,
    ContextDep,
    FaceForm,
    PhotoId,
    SampleId,
    StudentId,
    face_choices,
    read_upload,
    read_uploads,
)
from app.routers.downloads import (
    CACHE_AN_HOUR,
    JPEG_RESPONSES,
    REVALIDATE,
    attachment,
    audited_jpeg,
)
from app.routers.errors import errors
from app.services import attendance, enrolment, privacy
from app.services.attendance import StudentAttendance
from app.services.audit import Action, AuditSubject
from app.services.enrolment import Enrolment, Existing, PhotoCheck, Student
from app.services.privacy import ErasureReport

router = APIRouter(prefix="/v1/classes/{class_id}/students", tags=["students"])

_PHOTOS_HELP = "Photos of the student, each showing their face (alone, or the largest: see `face`)"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Enrolment,
    summary="Enrol a student from one or more photos",
    description=(
        "Every photo is checked (readable image, the student's face found: the only or dominant "
        "one, or the one `face` names) before anything is stored. "
        "The response has a quality report per photo and warns when the face is very similar to "
        "another enrolled student. The student is recognisable as soon as this returns."
    ),
    responses=errors(404, 409, 413, 422, 503),
)
def create_student(
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
    face: FaceForm = None,
) -> Enrolment:
    uploads = read_uploads(photos, ctx.settings.max_upload_bytes)
    faces = face_choices(face)
    if student_id is None:
        enrolled = enrolment.enrol_named(ctx, class_id, name, uploads, faces)
    else:
        enrolled = enrolment.enrol(ctx, class_id, student_id, name, uploads, Existing.REFUSE, faces)
    audit(Action.STUDENT_ENROL, _enrolled(class_id, enrolled))
    return enrolled


def _enrolled(class_id: str, enrolled: Enrolment) -> AuditSubject:
    return AuditSubject(
        class_id=class_id,
        student_id=enrolled.student.id,
        photo_ids=[photo.photo_id for photo in enrolled.photos],
    )


@router.post(
    "/check",
    response_model=PhotoCheck,
    summary="Check a registration photo without storing anything",
    description=(
        "The quality report, face box and look-alike warnings that enrolment would give for this "
        "photo, and every face found (`faces`, largest first); 422 with the reason when it is "
        "not an image or shows no face, or several with none dominant and none chosen (`face`): "
        "then the refusal lists them under `faces`. "
        "Pass `student_id` when the photo is for an enrolled student (their own photos are no "
        "look-alike)."
    ),
    responses=errors(404, 413, 422, 503),
)
def check_photo(
    ctx: ContextDep,
    class_id: ClassId,
    photo: Annotated[UploadFile, File(description="A photo of the student")],
    student_id: Annotated[str | None, Form(pattern=SLUG_PATTERN)] = None,
    face: FaceForm = None,
) -> PhotoCheck:
    upload = read_upload(photo, ctx.settings.max_upload_bytes)
    choices = face_choices(face) or [None]
    if len(choices) != 1:
        raise InvalidInputError(f"face: {len(choices)} values for the one photo checked")
    return enrolment.check_photo(ctx, class_id, upload, student_id, choices[0])


@router.get("", response_model=list[Student], summary="List students", responses=errors(404, 422))
def list_students(ctx: ContextDep, class_id: ClassId) -> list[Student]:
    return enrolment.list_students(ctx, class_id)


@router.get(
    "/{student_id}",
    response_model=schemas.StudentDetailOut,
    summary="Show a student with the quality report of each photo",
    responses=errors(404, 422),
)
def get_student(
    ctx: ContextDep, class_id: ClassId, student_id: StudentId
) -> schemas.StudentDetailOut:
    detail = enrolment.get_student(ctx, class_id, student_id)
    samples = [
        schemas.SampleOut(
            **dict(sample), crop_url=sample_crop_url(class_id, student_id, sample.sample_id)
        )
        for sample in detail.samples
    ]
    return schemas.StudentDetailOut(**{**dict(detail), "samples": samples})


def sample_crop_url(class_id: str, student_id: str, sample_id: str) -> str:
    return f"/v1/classes/{class_id}/students/{student_id}/samples/{sample_id}.jpg"


@router.get(
    "/{student_id}/thumbnail.jpg",
    response_class=Response,
    summary="A small JPEG of the student's first registration photo, cut around the face",
    responses={**JPEG_RESPONSES, **errors(404, 422)},
)
def student_thumbnail(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId
) -> Response:
    # A student's first photo may change (deleted): revalidate.
    return audited_jpeg(
        partial(enrolment.student_thumbnail, ctx, class_id, student_id),
        audit,
        Action.STUDENT_THUMBNAIL_READ,
        AuditSubject(class_id=class_id, student_id=student_id),
        REVALIDATE,
    )


@router.get(
    "/{student_id}/photos/{photo_id}/thumbnail.jpg",
    response_class=Response,
    summary="A small JPEG of one registration photo, cut around the face",
    responses={**JPEG_RESPONSES, **errors(404, 422)},
)
def photo_thumbnail(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId, photo_id: PhotoId
) -> Response:
    return audited_jpeg(
        partial(enrolment.photo_thumbnail, ctx, class_id, student_id, photo_id),
        audit,
        Action.PHOTO_THUMBNAIL_READ,
        AuditSubject(class_id=class_id, student_id=student_id, photo_id=photo_id),
        CACHE_AN_HOUR,
    )


@router.get(
    "/{student_id}/attendance",
    response_model=StudentAttendance,
    summary="The student's attendance in every session of the class",
    responses=errors(404, 422),
)
def student_attendance(
    ctx: ContextDep, class_id: ClassId, student_id: StudentId
) -> StudentAttendance:
    return attendance.student_attendance(ctx, class_id, student_id)


@router.patch(
    "/{student_id}",
    response_model=Student,
    summary="Rename a student",
    responses=errors(404, 422),
)
def rename_student(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    student_id: StudentId,
    body: schemas.StudentRename,
) -> Student:
    renamed = enrolment.rename_student(ctx, class_id, student_id, body.name)
    # The ids only: the new name is no more in the log than the old one.
    audit(Action.STUDENT_RENAME, AuditSubject(class_id=class_id, student_id=student_id))
    return renamed


@router.post(
    "/{student_id}/photos",
    status_code=status.HTTP_201_CREATED,
    response_model=Enrolment,
    summary="Add photos to a student",
    responses=errors(404, 413, 422, 503),
)
def add_photos(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    student_id: StudentId,
    photos: Annotated[list[UploadFile], File(description=_PHOTOS_HELP)],
    face: FaceForm = None,
) -> Enrolment:
    uploads = read_uploads(photos, ctx.settings.max_upload_bytes)
    enrolled = enrolment.enrol(
        ctx, class_id, student_id, None, uploads, Existing.REQUIRE, face_choices(face)
    )
    audit(Action.STUDENT_PHOTOS_ADD, _enrolled(class_id, enrolled))
    return enrolled


@router.delete(
    "/{student_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Erase a student: photos, embeddings, samples, attendance and corrections",
    description=(
        "Past class photos keep the face, unnamed. With `report=true` the answer is 200 with "
        "what was removed, by kind."
    ),
    responses={
        200: {"model": ErasureReport, "description": "With `report=true`."},
        **errors(404, 422),
    },
)
def delete_student(
    ctx: ContextDep,
    audit: Audit,
    class_id: ClassId,
    student_id: StudentId,
    report: Annotated[
        bool, Query(description="Answer 200 with the objects removed, by kind, instead of 204.")
    ] = False,
) -> Response:
    erased = privacy.erase_student(ctx, class_id, student_id)
    # The erased student's id stays in the audit log; their name is nowhere.
    audit(Action.STUDENT_DELETE, AuditSubject(class_id=class_id, student_id=student_id))
    if not report:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return Response(content=erased.model_dump_json(), media_type="application/json")


@router.get(
    "/{student_id}/samples/{sample_id}.jpg",
    response_class=Response,
    summary="A small JPEG of a confirmed face (a sample)",
    responses={**JPEG_RESPONSES, **errors(404, 422)},
)
def sample_crop(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId, sample_id: SampleId
) -> Response:
    return audited_jpeg(
        partial(enrolment.sample_crop, ctx, class_id, student_id, sample_id),
        audit,
        Action.SAMPLE_CROP_READ,
        AuditSubject(class_id=class_id, student_id=student_id, sample_id=sample_id),
        CACHE_AN_HOUR,
    )


@router.delete(
    "/{student_id}/samples/{sample_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a confirmed face (a wrong one): the student is matched without it",
    responses=errors(404, 422),
)
def delete_sample(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId, sample_id: SampleId
) -> Response:
    enrolment.delete_sample(ctx, class_id, student_id, sample_id)
    audit(
        Action.SAMPLE_DELETE,
        AuditSubject(class_id=class_id, student_id=student_id, sample_id=sample_id),
    )
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
def export_student(
    ctx: ContextDep, audit: Audit, class_id: ClassId, student_id: StudentId
) -> Response:
    found = privacy.student_export(ctx, class_id, student_id)
    # Recorded when the export is handed out (the zip is then streamed).
    audit(Action.STUDENT_EXPORT, AuditSubject(class_id=class_id, student_id=student_id))
    return StreamingResponse(
        found.chunks,
        media_type="application/zip",
        headers={
            "Content-Disposition": attachment(f"{found.filename}.zip", "student-export.zip"),
            "Cache-Control": "no-store",
        },
    )
