"""The HTTP API's request bodies, and the few responses that are more than a service's result:
links that only the routers know, and the mobile client's wire format. Every other response is
the service's result itself (``app/services/*/models.py``), documented there."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.core.ids import MAX_NAME_LENGTH, SLUG_PATTERN, clean_name
from app.core.policy import MAX_RETENTION_DAYS
from app.records.documents import Status
from app.services.attendance import (
    Face,
    KnownStranger,
    Recognised,
    SessionPhotoAdded,
    SessionPhotoDetail,
)
from app.services.enrolment import PhotoReport, Sample, StudentDetail

Slug = Annotated[
    str,
    StringConstraints(pattern=SLUG_PATTERN),
    Field(description="URL-safe id: `[a-z0-9][a-z0-9_-]{0,63}`", examples=["physics-7b"]),
]
# Every display name (class, session label, student) passes the same check as a registered
# student's name: no control or bidirectional-override characters (spoofing), blanks collapsed.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(clean_name),
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- classes ---------------------------------------------------------------------------------


class ClassCreate(Model):
    id: Slug
    name: Name


RetentionDays = Annotated[int, Field(ge=0, le=MAX_RETENTION_DAYS)]


class ClassUpdate(Model):
    """Only the fields given change; ``null`` for a retention field means the deployment's
    default (``ROLLCALL_SESSION_PHOTO_RETENTION_DAYS``, ``ROLLCALL_STUDENT_INACTIVE_RETENTION_DAYS``)."""

    name: Name | None = Field(default=None, description="A new name (null is refused).")
    session_photo_retention_days: RetentionDays | None = Field(
        default=None,
        description="Days the class photos and their annotated copies are kept (the attendance "
        "facts stay); 0 = forever; null = the deployment's default.",
    )
    student_inactive_retention_days: RetentionDays | None = Field(
        default=None,
        description="Erase a student enrolled this many days ago who attended no session dated "
        "within as many days; 0 = never; null = the deployment's default.",
    )

    @model_validator(mode="after")
    def _name_not_null(self) -> ClassUpdate:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null; leave it out to keep the name")
        return self


# --- students ---------------------------------------------------------------------------------


class StudentRename(Model):
    name: Name


class SampleOut(Sample):
    crop_url: str = Field(description="A small JPEG of the face.")


class KnownStrangerOut(KnownStranger):
    crop_url: str = Field(description="A small JPEG of the face.")


class StudentDetailOut(StudentDetail):
    samples: list[SampleOut] = Field(  # type: ignore[assignment]
        default_factory=list,
        description="Confirmed faces from class photos, newest first (at most "
        "`ROLLCALL_MAX_SAMPLES_PER_STUDENT`).",
    )


# --- recognition and attendance --------------------------------------------------------------


class RecognitionOut(Recognised):
    image: str | None = Field(
        default=None, description="Annotated photo, base64 JPEG (only when `annotate=true`)."
    )


class SessionCreate(Model):
    id: Slug | None = Field(default=None, description="Generated when omitted.")
    label: Name
    date: dt.date | None = Field(default=None, description="Today (UTC) when omitted.")


class PhotoLinks(Model):
    annotated_url: str
    face_urls: list[str] = Field(description="A crop of each face (JPEG), in face order.")


class SessionPhotoOut(SessionPhotoAdded, PhotoLinks):
    pass


class SessionPhotoDetailOut(SessionPhotoDetail, PhotoLinks):
    pass


class StatusIn(Model):
    status: Status
    note: str = Field(default="", max_length=500, description="Shown to teachers; optional.")


class FaceAssignIn(Model):
    student_id: Slug | None = Field(
        description="The student this face is, or null: nobody of this class."
    )


# --- the mobile client's calls ----------------------------------------------------------------


class LegacyRegisterOut(BaseModel):
    message: str
    student_id: str
    name: str
    photos_added: int
    quality: list[PhotoReport]
    warnings: list[str]


class LegacyDetectOut(BaseModel):
    names: list[str]
    image: str = Field(description="The photo with a box and label on every face, base64 JPEG.")
    message: str | None = None
    faces: list[Face]


# --- health -----------------------------------------------------------------------------------


class HealthOut(Model):
    status: Literal["ok"]


class ReadyOut(Model):
    status: Literal["ready", "not ready"]
    models: bool
    storage: str
    detail: str | None = None
