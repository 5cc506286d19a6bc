"""Whom a face of a class photo must not be named for, besides the class's own students: the
school's other students (the school-wide cohort) and the class's known strangers.

- **School-wide cohort.** Every enrolled student of every other class the store holds, one
  template per model each (``ml.matching.Cohort``), less the class's own students (the same id:
  a student imported into several classes). Building it reads every class's gallery, which on a
  cold start of a large school on S3 takes seconds to minutes, so it is built in the background:
  until the first build is done a class is matched on its own (with its own calibrated threshold),
  and afterwards a build older than ``school_cohort_refresh_seconds`` is replaced in the
  background while the old one keeps serving.
- **Known strangers.** The class's ``strangers/`` objects (:mod:`app.records.strangers`), listed
  on every photo (one listing: another replica's new stranger counts at once) and loaded once per
  object (they never change).

Both are handed to matching as the same objects while nothing changes, so the per-class work of
``ml.matching.Impostors.for_class`` is done once per class, not once per photo.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.records import Repositories, keys
from app.records.documents import vector_from_text
from app.services.recognition.gallery import ClassGallery, GalleryCache, drop_unlisted, load_new
from app.storage import StorageUnavailableError
from ml.fusion import FACENET
from ml.matching import (
    SAME_PERSON_SIMILARITY,
    Cohort,
    Gallery,
    KnownStrangers,
    cohort_picks,
    cohort_rows,
)
from ml.types import Embeddings

logger = logging.getLogger(__name__)

_StrangerRow = tuple[float, str, dict[str, npt.NDArray[np.float32]]]
"""A known stranger as matching needs it: when marked (seconds), its id, ``model -> (D,)``."""

_CLASS_SUBSETS = 16
"""Per-class cohorts kept (each is nearly the whole school's: 2.5 MiB for 1,000 students)."""


@dataclass(frozen=True)
class SchoolCohort:
    """Every enrolled student of the school, one row each, with where the row comes from."""

    cohort: Cohort
    class_ids: npt.NDArray[np.str_]
    student_ids: npt.NDArray[np.str_]
    generation: int

    def without_class(self, class_id: str, student_ids: Sequence[str]) -> Cohort | None:
        """The cohort for ``class_id``: everybody but its students (by class and by id)."""
        keep = (self.class_ids != class_id) & ~np.isin(self.student_ids, list(student_ids))
        if not keep.any():
            return None
        return self.cohort if keep.all() else self.cohort.subset(keep)


def school_cohort(galleries: Mapping[str, Gallery], generation: int) -> SchoolCohort | None:
    """The rows of every student of ``galleries`` (``class_id -> gallery``), at most
    ``MAX_COHORT_SIZE`` of them (evenly spread beyond), as ``Cohort.from_galleries`` keeps them."""
    class_ids = sorted(galleries)
    rows = [row for class_id in class_ids for row in cohort_rows(galleries[class_id])]
    labels = [(c, student_id) for c in class_ids for student_id in galleries[c].student_ids]
    if not rows:
        return None
    picks = cohort_picks(len(rows))
    if picks is not None:
        rows = [rows[i] for i in picks]
        labels = [labels[i] for i in picks]
    return SchoolCohort(
        Cohort.from_templates(rows),
        np.array([c for c, _ in labels], dtype=np.str_),
        np.array([s for _, s in labels], dtype=np.str_),
        generation,
    )


class ImpostorCache:
    """``ctx.impostors``: the school-wide cohort and the known strangers of each class."""

    def __init__(
        self,
        records: Repositories,
        galleries: GalleryCache,
        *,
        school_cohort: bool,
        refresh_seconds: float,
        max_known_strangers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = records
        self._galleries = galleries
        self._use_cohort = school_cohort
        self._refresh_seconds = refresh_seconds
        self._max_strangers = max_known_strangers
        self._clock = clock
        self._lock = threading.Lock()
        self._school: SchoolCohort | None = None
        self._built_at: float | None = None
        self._building: threading.Thread | None = None
        self._closed = False
        self._subsets: OrderedDict[tuple[int, str, tuple[str, ...]], Cohort | None] = OrderedDict()
        self._stranger_rows: dict[str, _StrangerRow] = {}
        self._strangers: dict[str, tuple[tuple[str, ...], KnownStrangers | None]] = {}

    # -- the school-wide cohort ----------------------------------------------------------------

    def cohort_for(self, class_id: str, snapshot: ClassGallery) -> Cohort | None:
        """The school's other students for ``class_id`` (``None`` while the first build runs,
        when it is off, or when the class is the school)."""
        if not self._use_cohort:
            return None
        self._refresh_if_old()
        with self._lock:
            school = self._school
            if school is None:
                return None
            key = (school.generation, class_id, snapshot.student_ids)
            if key in self._subsets:
                self._subsets.move_to_end(key)
                return self._subsets[key]
        cohort = school.without_class(class_id, snapshot.student_ids)
        with self._lock:
            self._subsets[key] = cohort
            while len(self._subsets) > _CLASS_SUBSETS:
                self._subsets.popitem(last=False)
        return cohort

    def start(self) -> None:
        """Build the cohort in the background now (at start-up), not on the first photo."""
        if self._use_cohort:
            self._refresh_if_old()

    def _refresh_if_old(self) -> None:
        with self._lock:
            if self._closed or (self._building is not None and self._building.is_alive()):
                return
            if (
                self._built_at is not None
                and self._clock() - self._built_at < self._refresh_seconds
            ):
                return
            self._building = threading.Thread(target=self._build, name="school-cohort", daemon=True)
            self._building.start()

    def _build(self) -> None:
        started = self._clock()
        try:
            galleries = {}
            for class_id in self._records.classes.ids():
                if self._records.classes.get(class_id) is None:
                    continue  # being created or deleted
                snapshot = self._galleries.get(class_id)
                if len(snapshot.gallery):
                    galleries[class_id] = snapshot.gallery
            with self._lock:
                generation = self._school.generation + 1 if self._school else 1
            school = school_cohort(galleries, generation)
        except StorageUnavailableError:
            logger.warning("school cohort not rebuilt: store unavailable")
            with self._lock:
                self._built_at = self._clock()  # retry after the refresh interval
            return
        except Exception:  # a bug must not stop recognition: classes match on their own
            logger.exception("school cohort not rebuilt")
            with self._lock:
                self._built_at = self._clock()
            return
        with self._lock:
            self._school = school
            self._built_at = self._clock()
            self._subsets.clear()
        logger.info(
            "school cohort: %d students of %d classes (%.1f s)",
            len(school.cohort) if school else 0,
            len(galleries),
            self._clock() - started,
        )

    def wait_until_built(self, timeout: float | None = None) -> bool:
        """Wait for a build in progress (tests, the bench); ``True`` once one has finished."""
        with self._lock:
            building = self._building
        if building is not None:
            building.join(timeout)
        with self._lock:
            return self._built_at is not None

    def rebuild_now(self) -> None:
        """Build the cohort now, in this thread (after a bulk change: an import, a test)."""
        if self._use_cohort:
            self.wait_until_built()
            self._build()

    # -- known strangers ----------------------------------------------------------------------

    def strangers_of(self, class_id: str) -> KnownStrangers | None:
        """The class's known strangers as stored now (``None`` if it has none)."""
        listed = tuple(self._records.strangers.listed(class_id))
        with self._lock:
            cached = self._strangers.get(class_id)
            if cached is not None and cached[0] == listed:
                return cached[1]
        rows = self._stranger_rows_of(class_id, listed)
        strangers = (
            KnownStrangers.from_faces([row[2] for row in rows], max_faces=self._max_strangers)
            if rows
            else None
        )
        with self._lock:
            self._strangers[class_id] = (listed, strangers)
        return strangers

    def strangers_like(
        self, class_id: str, probes: Mapping[str, Embeddings], at: float = SAME_PERSON_SIMILARITY
    ) -> list[str]:
        """The ids of the class's known strangers whom one of ``probes`` (unit vectors, ``(P, D)``
        per model, FaceNet's required) matches at ``at`` or more: the same person."""
        rows = self._stranger_rows_of(class_id, tuple(self._records.strangers.listed(class_id)))
        if not rows:
            return []
        everyone = KnownStrangers.from_faces([row[2] for row in rows], max_faces=len(rows))
        best = everyone.similarities(probes).max(axis=0)
        return [row[1] for row, score in zip(rows, best, strict=True) if score >= at]

    def _stranger_rows_of(self, class_id: str, listed: tuple[str, ...]) -> list[_StrangerRow]:
        """The ``listed`` known strangers of the class with a FaceNet embedding, oldest first,
        each object read once (they never change)."""
        with self._lock:
            known = {key: self._stranger_rows[key] for key in listed if key in self._stranger_rows}
        loaded = load_new(listed, known, self._stranger_row)
        with self._lock:
            drop_unlisted(self._stranger_rows, _class_prefix(class_id), listed)
            self._stranger_rows.update(loaded)
        rows = [row for row in {**known, **loaded}.values() if FACENET in row[2]]
        return sorted(rows, key=lambda row: (row[0], row[1]))

    def _stranger_row(self, key: str) -> _StrangerRow:
        doc = self._records.strangers.load(key)
        vectors = {m: vector_from_text(text) for m, text in doc.embeddings.items()}
        return doc.marked_at.timestamp(), doc.id, vectors

    def forget(self, class_id: str) -> None:
        """Drop what is cached of a class (deleted)."""
        with self._lock:
            self._strangers.pop(class_id, None)
            drop_unlisted(self._stranger_rows, _class_prefix(class_id), ())

    def close(self) -> None:
        with self._lock:
            self._closed = True


def _class_prefix(class_id: str) -> str:
    return keys.CLASS.prefix(class_id=class_id)
