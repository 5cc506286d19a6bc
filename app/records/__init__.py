"""The storage layer of the domain: where each stored thing lives (:mod:`app.records.keys`),
the documents stored there (:mod:`app.records.documents`), and one repository per thing, the only
code that reads, writes and deletes objects by key. Each repository knows its thing's rules: what
is created only if absent, what is written last (and so makes a set of objects count), in which
order its objects are deleted. Writes that must land together go through
:class:`app.records.staged.StagedWrites`; removals that fail while the store is down are retried
by :class:`app.records.cleanup.PendingCleanup`.

To add a stored record: its key template in ``keys``, its document in ``documents``, a repository
class in the module of its kind and an attribute of :class:`Repositories`; see
``docs/architecture.md``.
"""

from __future__ import annotations

from app.records.audit import AuditEvents
from app.records.cache import DocumentCache
from app.records.classes import Classes
from app.records.cleanup import PendingCleanup
from app.records.heads import HeadStore
from app.records.imports import ImportJobs
from app.records.sessions import (
    AttendanceRecords,
    FaceAssignments,
    SessionPhotos,
    Sessions,
    StatusCorrections,
)
from app.records.staged import StagedWrites
from app.records.strangers import KnownStrangers
from app.records.students import Samples, StudentEmbeddings, StudentPhotos, Students
from app.storage import ObjectStore


class Repositories:
    """Every repository over one store (``ctx.records``), sharing one cache of parsed
    documents."""

    def __init__(
        self, store: ObjectStore, cleanup: PendingCleanup, cache: DocumentCache | None = None
    ) -> None:
        self._store = store
        self._cleanup = cleanup
        self.cache = cache if cache is not None else DocumentCache()
        self.classes = Classes(store)
        self.students = Students(store, cleanup, self.cache)
        self.student_photos = StudentPhotos(store)
        self.embeddings = StudentEmbeddings(store)
        self.samples = Samples(store)
        self.strangers = KnownStrangers(store, self.cache)
        self.heads = HeadStore(store)
        self.sessions = Sessions(store, self.cache)
        self.session_photos = SessionPhotos(store, self.cache)
        self.attendance = AttendanceRecords(store)
        self.corrections = StatusCorrections(store, self.cache)
        self.assignments = FaceAssignments(store, self.cache)
        self.audit = AuditEvents(store)
        self.imports = ImportJobs(store)

    def staged(self, what: str) -> StagedWrites:
        """A new set of writes that land together or not at all (:mod:`app.records.staged`)."""
        return StagedWrites(self._store, self._cleanup, what)


__all__ = [
    "AttendanceRecords",
    "AuditEvents",
    "Classes",
    "DocumentCache",
    "FaceAssignments",
    "HeadStore",
    "ImportJobs",
    "KnownStrangers",
    "PendingCleanup",
    "Repositories",
    "Samples",
    "SessionPhotos",
    "Sessions",
    "StagedWrites",
    "StatusCorrections",
    "StudentEmbeddings",
    "StudentPhotos",
    "Students",
]
