"""What the enrolment services return (the API's student resources)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Literal

from pydantic import ConfigDict, Field

from app.core.results import Result
from app.records.documents import Box


class Quality(Result):
    """A registration photo's quality report (``ml.pipeline.FaceQuality.to_dict``), as stored
    beside the photo."""

    model_config = ConfigDict(extra="ignore")  # read from stored reports, older and newer

    face_size: float = Field(description="Shorter side of the face box, pixels.")
    sharpness: float = Field(description="Variance of the Laplacian of the aligned crop.")
    yaw: float
    pitch: float
    roll: float
    detection_score: float
    grayscale: bool = Field(default=False, description="The photo is black and white.")
    cut_by_border: bool = Field(default=False, description="The face touches the photo's edge.")
    ignored_faces: int = Field(
        default=0, description="Smaller background faces that were not registered."
    )
    warnings: list[str]

    @classmethod
    def of(cls, report: Mapping[str, object]) -> Quality:
        return cls.model_validate(report)


class PhotoReport(Result):
    """A registration photo just checked or stored: where the face is and how good it is."""

    photo_id: str
    filename: str | None
    box: Box
    quality: Quality


class SimilarStudent(Result):
    """Another student a new photo looks very much like (a likely duplicate enrolment)."""

    student_id: str
    name: str
    similarity: float = Field(
        description="Similarity of the new face with that student (fused over the face models, "
        "on FaceNet's cosine scale)."
    )
    filename: str | None = Field(default=None, description="The uploaded photo it concerns.")


class Student(Result):
    id: str
    name: str
    created_at: dt.datetime
    photo_count: int = Field(
        description="Registration photos that count; 0: imported from a roster, awaiting a photo "
        "(not recognised until one is added)."
    )
    source_id: str | None = Field(
        default=None,
        description="The student's `sourcedId` (or student number) in the roster they were "
        "imported from.",
    )


class Enrolment(Result):
    student: Student
    photos: list[PhotoReport] = Field(description="Quality report of every photo just added.")
    warnings: list[str] = Field(description="Every quality warning, plus look-alike warnings.")
    similar_students: list[SimilarStudent] = Field(
        description="Other students this face is very similar to (possible duplicate enrolment)."
    )


class StudentPhoto(Result):
    photo_id: str
    created_at: dt.datetime
    filename: str | None
    box: Box
    quality: Quality


class Sample(Result):
    """A face from a class photo confirmed as this student: matched like a registration photo."""

    sample_id: str
    session_id: str
    photo_id: str
    face_index: int
    confirmed_by: Literal["teacher", "recognition"] = Field(
        description="`teacher`: a teacher named the face; `recognition`: recognised so surely "
        "(`ROLLCALL_AUTO_CONFIRM_MARGIN`, `ROLLCALL_AUTO_CONFIRM_GAP`) that no teacher was needed."
    )
    confirmed_label: str = Field(
        description="Who: the API key's label or `console`, or `recognition`."
    )
    confirmed_at: dt.datetime
    taken_at: dt.datetime = Field(description="When the class photo was uploaded.")


class StudentDetail(Student):
    photos: list[StudentPhoto]
    samples: list[Sample] = Field(
        default_factory=list,
        description="Confirmed faces from class photos, newest first (at most "
        "`ROLLCALL_MAX_SAMPLES_PER_STUDENT`).",
    )


class FoundFace(Result):
    """A face found on a registration photo; ``index`` is how a request names it (``face``)."""

    index: int = Field(description="Faces are numbered largest first, from 0.")
    box: Box
    detection_score: float


class PhotoCheck(Result):
    """A registration photo checked without storing anything (the console's preview)."""

    filename: str | None
    width: int = Field(description="Width of the (EXIF-oriented) photo, pixels.")
    height: int
    box: Box = Field(description="The face, in the oriented photo's pixels.")
    quality: Quality
    warnings: list[str] = Field(description="Quality warnings plus look-alike warnings.")
    similar_students: list[SimilarStudent]
    faces: list[FoundFace] = Field(
        default_factory=list, description="Every face found on the photo, largest first."
    )
    face: int = Field(
        default=0, description="The face registered: the one chosen, else the dominant one."
    )
