"""A class's known strangers: faces of class photos a teacher said are nobody of the class (a
visiting teacher, a sibling, an assistant who comes every week).

Each is one object (``KnownStrangerDoc``) with every model's embedding and a small crop, so the
teacher can check it by sight and remove it. Recognition compares every face of a later photo with
them (:mod:`app.services.recognition.impostors`, ``ml.matching.KnownStrangers``): a face one of them
matches at least as well as its best student is not named. A class keeps its newest
``max_known_strangers``; a known stranger goes when its face is named again, when a teacher
removes it, with the class photos' retention (:mod:`app.services.privacy.retention`) and with the
class.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging

import numpy as np

from app.core.errors import NotFoundError
from app.core.ids import new_id
from app.records.documents import KnownStrangerDoc, SessionPhotoDoc, vector_to_text
from app.services import enrolment
from app.services.attendance.models import KnownStranger
from app.services.attendance.photos import stored_face
from app.services.context import Context
from app.storage import StorageUnavailableError

logger = logging.getLogger(__name__)


def remember_face(
    ctx: Context,
    class_id: str,
    session_id: str,
    photo: SessionPhotoDoc,
    face_index: int,
    by: str,
) -> None:
    """Keep face ``face_index`` of the photo as a known stranger of the class (the teacher said it
    is nobody of it). Nothing is kept for a face too small to recognise, one whose original is
    gone, or when ``ROLLCALL_REMEMBER_STRANGERS`` is off."""
    face_doc = photo.faces[face_index]
    if not ctx.settings.remember_strangers or face_doc.too_small:
        return
    found = stored_face(ctx, class_id, session_id, photo, face_index)
    if found is None:
        return
    forget_face(ctx, class_id, session_id, photo.id, face_index)
    doc = KnownStrangerDoc(
        id=new_id(),
        session_id=session_id,
        photo_id=photo.id,
        face_index=face_index,
        taken_at=photo.created_at,
        box=face_doc.box,
        embeddings={m: vector_to_text(np.ravel(e[0])) for m, e in found.embeddings.items()},
        crop_jpeg=base64.b64encode(enrolment.crop_of(found.image, face_doc)).decode("ascii"),
        marked_by=by,
        marked_at=ctx.now(),
    )
    ctx.records.strangers.create(class_id, doc)
    keep_bounded(ctx, class_id)


def forget_face(
    ctx: Context, class_id: str, session_id: str, photo_id: str, face_index: int
) -> None:
    """Remove the known strangers taken from one face (the face was named again)."""
    for doc in ctx.records.strangers.of_class(class_id):
        if (doc.session_id, doc.photo_id, doc.face_index) == (session_id, photo_id, face_index):
            ctx.records.strangers.delete(class_id, doc.id)


def keep_bounded(ctx: Context, class_id: str) -> None:
    """Drop the oldest known strangers beyond ``max_known_strangers``. Best effort: a failure
    leaves one too many until the next."""
    limit = ctx.settings.max_known_strangers
    try:
        if len(ctx.records.strangers.listed(class_id)) <= limit:
            return
        docs = ctx.records.strangers.of_class(class_id)
        for doc in docs[: max(0, len(docs) - limit)]:
            ctx.records.strangers.delete(class_id, doc.id)
    except StorageUnavailableError:
        logger.warning("could not bound the known strangers of %s: store unavailable", class_id)


def purge_known_strangers(ctx: Context, class_id: str, cut_off: dt.datetime) -> int:
    """Remove the known strangers taken from class photos uploaded before ``cut_off`` (they live
    no longer than the photos they came from); returns how many."""
    removed = 0
    for doc in ctx.records.strangers.of_class(class_id):
        if doc.taken_at < cut_off:
            ctx.records.strangers.delete(class_id, doc.id)
            removed += 1
    return removed


def to_result(doc: KnownStrangerDoc) -> KnownStranger:
    return KnownStranger(
        stranger_id=doc.id,
        session_id=doc.session_id,
        photo_id=doc.photo_id,
        face_index=doc.face_index,
        marked_by=doc.marked_by,
        marked_at=doc.marked_at,
        taken_at=doc.taken_at,
    )


def list_known_strangers(ctx: Context, class_id: str) -> list[KnownStranger]:
    """The class's known strangers, newest first."""
    ctx.require_class(class_id)
    docs = ctx.records.strangers.of_class(class_id)
    return [to_result(doc) for doc in reversed(docs)]


def _require(ctx: Context, class_id: str, stranger_id: str) -> KnownStrangerDoc:
    ctx.require_class(class_id)
    doc = ctx.records.strangers.get(class_id, stranger_id)
    if doc is None:
        raise NotFoundError(f"known stranger {stranger_id!r} not found in class {class_id!r}")
    return doc


def known_stranger_crop(ctx: Context, class_id: str, stranger_id: str) -> bytes:
    return base64.b64decode(_require(ctx, class_id, stranger_id).crop_jpeg)


def delete_known_stranger(ctx: Context, class_id: str, stranger_id: str) -> None:
    """Remove one known stranger (a face marked "nobody" by mistake): faces like it can be named
    again from the next photo."""
    _require(ctx, class_id, stranger_id)
    ctx.records.strangers.delete(class_id, stranger_id)
