"""What the class services return (the API's class resources)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from app.core.results import Result
from app.services.recognition.heads import HeadStatus


class ModelProgress(Result):
    """How many registration photos a secondary face model has embedded: photos registered before
    it was added are embedded in the background; until then they are matched on FaceNet alone."""

    model: str
    photos_done: int
    photos_total: int
    state: Literal["ready", "filling"]


class ClassRetention(Result):
    """A class's retention: its overrides and what applies."""

    session_photo_retention_days: int | None = Field(
        description="The class's override (null: the deployment's default)."
    )
    student_inactive_retention_days: int | None = Field(
        description="The class's override (null: the deployment's default)."
    )
    effective_session_photo_retention_days: int = Field(
        description="What applies: days class photos are kept (0 = forever)."
    )
    effective_student_inactive_retention_days: int = Field(
        description="What applies: days of inactivity before a student is erased (0 = never)."
    )


class ClassInfo(Result):
    id: str
    name: str
    created_at: dt.datetime
    student_count: int
    source_id: str | None = Field(
        default=None,
        description="The class's `sourcedId` in the roster it was imported from.",
    )
    head: HeadStatus | None = Field(default=None, description="Only in GET /v1/classes/{class_id}.")
    models: list[ModelProgress] | None = Field(
        default=None,
        description="Only in GET /v1/classes/{class_id}: the secondary face models' back-fill.",
    )
    retention: ClassRetention | None = Field(
        default=None, description="Only in GET and PATCH /v1/classes/{class_id}."
    )
