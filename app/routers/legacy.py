"""The mobile client's two calls (wire format unchanged); they act on the class ``default``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from app import schemas
from app.deps import ContextDep, LegacyAudit, read_upload, read_uploads
from app.routers.errors import errors
from app.routers.sessions import base64_jpeg
from app.services import mobile
from app.services.audit import Action, AuditSubject

router = APIRouter(tags=["mobile client"])


@router.post(
    "/register/register-student",
    response_model=schemas.LegacyRegisterOut,
    summary="Register a student in the default class",
    description=(
        "The student id is a slug of the name. Registering a name that is already enrolled adds "
        "the photos to that student (the first name is kept). Every photo must show exactly one "
        "face; if any photo is refused, nothing is stored."
    ),
    responses=errors(413, 422, 503),
)
def register_student(
    ctx: ContextDep,
    audit: LegacyAudit,
    files: Annotated[list[UploadFile], File(description="One or more photos of the student")],
    student_name: Annotated[str, Form(description="The student's name")],
) -> schemas.LegacyRegisterOut:
    uploads = read_uploads(files, ctx.settings.max_upload_bytes)
    result = mobile.register_student(ctx, student_name, uploads)
    audit(
        Action.MOBILE_REGISTER,
        AuditSubject(
            class_id=ctx.settings.legacy_class,
            student_id=result.student.id,
            photo_ids=[photo.photo_id for photo in result.photos],
        ),
    )
    return schemas.LegacyRegisterOut(
        message="Student registered",
        student_id=result.student.id,
        name=result.student.name,
        photos_added=len(result.photos),
        quality=result.photos,
        warnings=result.warnings,
    )


@router.post(
    "/mark/detect",
    response_model=schemas.LegacyDetectOut,
    summary="Recognise the students in a photo of the default class",
    description=(
        "Returns the names of the recognised students and the photo with a box and label on "
        "every face (green: known, red: unknown). Records no attendance."
    ),
    responses=errors(413, 422, 503),
)
def detect(
    ctx: ContextDep,
    audit: LegacyAudit,
    file: Annotated[UploadFile, File(description="A photo of the class")],
) -> schemas.LegacyDetectOut:
    upload = read_upload(file, ctx.settings.max_upload_bytes)
    result = mobile.detect(ctx, upload)
    audit(Action.MOBILE_DETECT, AuditSubject(class_id=ctx.settings.legacy_class))
    return schemas.LegacyDetectOut(
        names=result.names,
        image=base64_jpeg(result.annotated_jpeg or b""),
        message=result.message,
        faces=result.faces,
    )
