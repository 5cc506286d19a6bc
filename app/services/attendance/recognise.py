"""Recognising the students on a photo of a class (recording nothing: the sessions do)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from app.core.images import encode_jpeg
from app.core.uploads import Upload, decode_upload
from app.records.documents import HeadPointerDoc, rounded_box
from app.services.attendance.models import Face, Recognised
from app.services.context import Context
from app.services.recognition.drawing import face_label
from app.services.recognition.gallery import ClassGallery
from app.services.recognition.heads import usable_head
from ml.annotate import annotate
from ml.matching import ImpostorKind
from ml.pipeline import Recognition
from ml.types import RGBImage

NO_FACE_MESSAGE = "no face found in the photo"

CLOSER_TO: Mapping[ImpostorKind, Literal["another_class", "known_stranger"]] = {
    ImpostorKind.COHORT: "another_class",
    ImpostorKind.KNOWN_STRANGER: "known_stranger",
}
"""How a face's ``closer_to`` is reported (the other class's student is never named)."""


@dataclass(frozen=True)
class RecognitionResult:
    image: RGBImage
    recognition: Recognition
    names: dict[str, str]
    """Display names of the recognised students."""

    def faces(self) -> list[Face]:
        return [
            Face(
                box=rounded_box(match.face.box),
                detection_score=round(float(match.face.score), 4),
                known=match.student_id is not None,
                student_id=match.student_id,
                name=self.names.get(match.student_id) if match.student_id else None,
                score=None if match.too_small else round(float(match.score), 4),
                similarity=round(float(match.similarity), 4),
                similarities=dict(match.model_similarities),
                head_similarity=(
                    round(float(match.head_similarity), 4)
                    if match.head_similarity is not None
                    else None
                ),
                candidate_id=match.candidate_id,
                too_small=match.too_small,
                closer_to=CLOSER_TO[match.closer_to] if match.closer_to else None,
            )
            for match in self.recognition.faces
        ]

    def recognised_names(self) -> list[str]:
        return [self.names[m.student_id] for m in self.recognition.faces if m.student_id]

    def message(self) -> str | None:
        if not self.recognition.faces:
            return NO_FACE_MESSAGE
        if not any(m.student_id for m in self.recognition.faces):
            return "no enrolled student recognised"
        return None

    @property
    def unknown_threshold(self) -> float:
        return round(self.recognition.unknown_threshold, 4)

    def labels(self) -> list[str]:
        return [face_label(m.student_id, self.names, m.too_small) for m in self.recognition.faces]

    def annotated(self, max_side: int | None = None) -> RGBImage:
        """The photo with every face boxed and labelled (too small ones: a grey box, no label),
        shrunk to ``max_side`` pixels at most."""
        return annotate(self.image, self.recognition.faces, self.labels(), max_side=max_side)

    def annotated_jpeg(self, max_side: int | None = None) -> bytes:
        return encode_jpeg(self.annotated(max_side))

    def report(self, annotated_max_side: int | None = None, *, with_image: bool) -> Recognised:
        return Recognised(
            faces=self.faces(),
            names=self.recognised_names(),
            unknown_threshold=self.unknown_threshold,
            message=self.message(),
            annotated_jpeg=self.annotated_jpeg(annotated_max_side) if with_image else None,
        )


def recognise_image(ctx: Context, class_id: str, image: RGBImage) -> RecognitionResult:
    """Match every face of ``image`` against the class, using the head where it is valid."""
    snapshot = ctx.galleries.get(class_id)
    head = None
    if ctx.uses_head:
        current = ctx.heads.current(class_id)
        head = usable_head(current[1] if current else None, snapshot)
        _retrain_if_stale(ctx, class_id, snapshot, current[0] if current else None)
    ctx.backfill_if_needed(class_id, snapshot)
    recognition = ctx.inference.recognise(
        image,
        snapshot.gallery,
        head,
        cohort=ctx.impostors.cohort_for(class_id, snapshot),
        strangers=ctx.impostors.strangers_of(class_id),
    )
    ids = {m.student_id for m in recognition.faces if m.student_id}
    return RecognitionResult(image, recognition, ctx.student_names(class_id, ids))


def _retrain_if_stale(
    ctx: Context, class_id: str, snapshot: ClassGallery, pointer: HeadPointerDoc | None
) -> None:
    """Ask for a training when the head does not match the students (the process that was told
    to train it was killed, or another process enrolled them); the trainer debounces."""
    if len(snapshot.student_ids) < 2 or ctx.trainer.is_busy(class_id):
        return
    if pointer is not None and pointer.gallery_signature == snapshot.signature:
        return
    failure = ctx.heads.failure(class_id)
    if failure is not None and failure.gallery_signature == snapshot.signature:
        return  # this very gallery failed to train: do not retry on every photo
    ctx.trainer.request(class_id)


def recognise_upload(ctx: Context, class_id: str, upload: Upload) -> RecognitionResult:
    """Recognise an uploaded photo of an existing class."""
    ctx.require_class(class_id)
    image = decode_upload(upload, upload.filename or "photo", ctx.settings.max_image_pixels)
    return recognise_image(ctx, class_id, image)


def recognise(ctx: Context, class_id: str, upload: Upload, *, with_image: bool) -> Recognised:
    """The faces of an uploaded photo of the class, named where recognised; nothing is stored."""
    result = recognise_upload(ctx, class_id, upload)
    return result.report(ctx.settings.annotated_max_side, with_image=with_image)
