"""Roster imports: what was asked for, and where each one is."""

from __future__ import annotations

from app.records import keys
from app.records.base import Repository
from app.records.documents import ImportJobDoc, ImportStateDoc


class ImportJobs(Repository):
    """``job.json``, created if absent; ``state.json``, rewritten by the process that runs the
    import (one writer: the other replicas only read it). Outside ``classes/``: an import spans
    classes. Removed with the retention purge once old (:mod:`app.services.privacy.retention`)."""

    def create(self, job: ImportJobDoc, state: ImportStateDoc) -> bool:
        """False when the id is taken."""
        if not self._create(keys.IMPORT_JOB.key(import_id=job.id), job):
            return False
        self.save_state(job.id, state)
        return True

    def save_state(self, import_id: str, state: ImportStateDoc) -> None:
        self._write(keys.IMPORT_STATE.key(import_id=import_id), state)

    def get(self, import_id: str) -> tuple[ImportJobDoc, ImportStateDoc] | None:
        job = self._read(keys.IMPORT_JOB.key(import_id=import_id), ImportJobDoc)
        state = self._read(keys.IMPORT_STATE.key(import_id=import_id), ImportStateDoc)
        return None if job is None or state is None else (job, state)

    def ids(self) -> list[str]:
        """Every import, oldest first (ids sort by time)."""
        return self._store.list_children(keys.IMPORT_JOB.prefix())

    def delete(self, import_id: str) -> None:
        self._store.delete(keys.IMPORT_JOB.key(import_id=import_id))
        self._store.delete_prefix(keys.IMPORT_JOB.prefix(import_id=import_id))
