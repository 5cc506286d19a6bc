"""What every feature service shares: the repositories over the store, the pipeline (behind a
concurrency limit), the caches and the background workers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.errors import NotFoundError
from app.core.ids import utc_now
from app.core.policy import RetentionPolicy
from app.records import PendingCleanup, Repositories
from app.records.documents import ClassDoc
from app.records.heads import HeadStore
from app.services.audit import AuditLog
from app.services.recognition.backfill import EmbeddingBackfill
from app.services.recognition.drawing import AnnotatedCache
from app.services.recognition.gallery import ClassGallery, GalleryCache
from app.services.recognition.heads import HeadTrainer
from app.services.recognition.impostors import ImpostorCache
from app.services.recognition.inference import Inference
from app.services.recognition.jobs import JobRunner
from app.settings import Settings
from app.storage import ObjectStore
from ml.pipeline import FacePipeline


@dataclass
class Context:
    settings: Settings
    store: ObjectStore
    records: Repositories
    """The stored things (:mod:`app.records`); services read and write through these."""
    inference: Inference
    galleries: GalleryCache
    trainer: HeadTrainer
    backfill: EmbeddingBackfill
    cleanup: PendingCleanup
    """Rollbacks that failed because the store was down, retried until it is back."""
    annotated: AnnotatedCache = field(default_factory=AnnotatedCache)
    """Annotated copies drawn again after corrections or renames."""
    jobs: JobRunner = field(default_factory=JobRunner)
    """Long jobs (roster imports), one at a time in the background."""
    clock: Callable[[], dt.datetime] = utc_now
    """When things happen (enrolments, sessions, corrections): tests set the time they need."""
    audit: AuditLog = field(init=False)
    """The audit log (:mod:`app.services.audit`); the routers record, ``GET /v1/audit`` reads."""
    impostors: ImpostorCache = field(init=False)
    """The school's other students and each class's known strangers, for matching."""

    def __post_init__(self) -> None:
        self.audit = AuditLog(self.records.audit, self.cleanup)
        self.impostors = ImpostorCache(
            self.records,
            self.galleries,
            school_cohort=self.settings.school_cohort,
            refresh_seconds=self.settings.school_cohort_refresh_seconds,
            max_known_strangers=self.settings.max_known_strangers,
        )

    @classmethod
    def build(cls, settings: Settings, store: ObjectStore, pipeline: FacePipeline) -> Context:
        cleanup = PendingCleanup()
        records = Repositories(store, cleanup)
        galleries = GalleryCache(store)
        return cls(
            settings=settings,
            store=store,
            records=records,
            inference=Inference(
                pipeline, settings.inference_concurrency, settings.max_faces_per_photo
            ),
            galleries=galleries,
            trainer=HeadTrainer(pipeline, galleries, records.heads, store),
            backfill=EmbeddingBackfill(pipeline, store, settings.max_image_pixels),
            cleanup=cleanup,
        )

    def close(self) -> None:
        """Stop the background workers (shutdown); what is still pending is logged."""
        self.jobs.close()
        self.impostors.close()
        self.backfill.close()
        self.trainer.close()
        self.cleanup.close()

    def now(self) -> dt.datetime:
        """The time now, in UTC."""
        return self.clock().astimezone(dt.UTC)

    @property
    def heads(self) -> HeadStore:
        return self.records.heads

    @property
    def uses_head(self) -> bool:
        """Whether recognition uses the classes' projection heads (``ROLLCALL_USE_HEAD``)."""
        return self.inference.pipeline.config.use_head

    def gallery_changed(self, class_id: str) -> None:
        """A student, a photo or a confirmed face of the class came or went: where the head is
        used, train it again (in the background, debounced); nothing else depends on it."""
        if self.uses_head:
            self.trainer.request(class_id)

    def student_erased(self, class_id: str) -> None:
        """No stored head may keep an erased student's influence: train it again without them
        where it is used (the matcher drops the old one at once, it knows a student who is not
        enrolled), else remove any head trained while it was."""
        if self.uses_head:
            self.trainer.request(class_id)
        else:
            self.heads.clear(class_id)

    def backfill_if_needed(self, class_id: str, snapshot: ClassGallery) -> None:
        """Queue the back-fill of any model some of the class's photos lack (cheap when none)."""
        for model in self.backfill.models:
            done, total = snapshot.model_progress(model)
            if done < total:
                self.backfill.request(class_id)
                return

    def require_class(self, class_id: str) -> ClassDoc:
        doc = self.records.classes.get(class_id)
        if doc is None:
            raise NotFoundError(f"class {class_id!r} not found")
        return doc

    def retention_policy(self, doc: ClassDoc) -> RetentionPolicy:
        """The deployment's retention with the class's overrides."""
        return self.settings.retention_policy().override(
            doc.session_photo_retention_days, doc.student_inactive_retention_days
        )

    def student_names(self, class_id: str, student_ids: set[str]) -> dict[str, str]:
        """Display names of a few students (a missing ``student.json`` falls back to the id)."""
        names: dict[str, str] = {}
        for student_id in sorted(student_ids):
            doc = self.records.students.get(class_id, student_id)
            names[student_id] = doc.name if doc else student_id
        return names
