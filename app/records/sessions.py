"""Sessions: ``session.json``, the class photos with their results, one attendance record per
recognised student, and the teacher's status corrections and face assignments.

Reading attendance starts from one listing (:class:`SessionFolder`: every key of a session, or of
every session of a class, with its version tag); the small documents it names are then read
through the repositories' cache (:mod:`app.records.cache`), so a term report reads from the
store only what changed since the last one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.records import keys
from app.records.base import JPEG, JSON, Repository
from app.records.documents import (
    FaceAssignmentDoc,
    PhotoPurgedDoc,
    RecordDoc,
    SessionDoc,
    SessionPhotoDoc,
    StatusCorrectionDoc,
)
from app.records.staged import StagedWrites
from app.storage import ObjectExistsError

FaceId = tuple[str, int]
"""``(photo id, face index)``."""


@dataclass(frozen=True)
class SessionFolder:
    """One listing of a session's folder: every key with its version tag."""

    class_id: str
    session_id: str
    objects: Mapping[str, str]

    @property
    def doc_key(self) -> str | None:
        """``session.json``'s key, when the listing shows it."""
        key = keys.SESSION.key(class_id=self.class_id, session_id=self.session_id)
        return key if key in self.objects else None

    def photo_objects(self) -> dict[str, set[str]]:
        """``photo id -> names of its objects`` (``original.jpg``, ``result.json``...)."""
        names: dict[str, set[str]] = {}
        for key in self.objects:
            ref = keys.SESSION_PHOTO.parse(key)
            if ref is not None:
                names.setdefault(ref.photo_id, set()).add(ref.name)
        return names

    def complete_photo_ids(self) -> list[str]:
        """Photos with ``result.json``: an upload cut off before it (process killed, store down)
        is left out."""
        return sorted(pid for pid, names in self.photo_objects().items() if keys.RESULT in names)

    def photos_with_images(self) -> list[str]:
        """Complete photos that still have an image (the original or the annotated copy)."""
        return sorted(
            photo_id
            for photo_id, names in self.photo_objects().items()
            if keys.RESULT in names and names.intersection(keys.IMAGES)
        )

    def corrections(self) -> dict[str, dict[str, str]]:
        """``student id -> {key: tag}`` of their status corrections."""
        found: dict[str, dict[str, str]] = {}
        for key, tag in self.objects.items():
            ref = keys.CORRECTION.parse(key)
            if ref is not None:
                found.setdefault(ref.student_id, {})[key] = tag
        return found

    def assignments(self) -> dict[FaceId, dict[str, str]]:
        """``(photo id, face index) -> {key: tag}`` of the face's assignments."""
        found: dict[FaceId, dict[str, str]] = {}
        for key, tag in self.objects.items():
            ref = keys.ASSIGNMENT.parse(key)
            if ref is not None:
                found.setdefault((ref.photo_id, ref.face_index), {})[key] = tag
        return found


class Sessions(Repository):
    """``session.json``: created if absent; deleted first, then the session's folder."""

    def get(self, class_id: str, session_id: str) -> SessionDoc | None:
        return self._read(keys.SESSION.key(class_id=class_id, session_id=session_id), SessionDoc)

    def create(self, class_id: str, doc: SessionDoc) -> bool:
        """False when the id is taken."""
        return self._create(keys.SESSION.key(class_id=class_id, session_id=doc.id), doc)

    def ids(self, class_id: str) -> list[str]:
        """Every session folder of the class."""
        return self._store.list_children(keys.SESSION.prefix(class_id=class_id))

    def folder(self, class_id: str, session_id: str) -> SessionFolder:
        """Every key of the session (photos, records, corrections, assignments): one listing."""
        prefix = keys.SESSION.prefix(class_id=class_id, session_id=session_id)
        return SessionFolder(class_id, session_id, self._store.list_versions(prefix))

    def folders(self, class_id: str) -> list[SessionFolder]:
        """Every session of the class with its keys, from one listing of all of them (on S3 one
        request per 1,000 keys, instead of a listing per session)."""
        grouped: dict[str, dict[str, str]] = {}
        for key, tag in self._store.list_versions(keys.SESSION.prefix(class_id=class_id)).items():
            ref = keys.SESSION_OBJECT.parse(key)
            if ref is not None and ref.class_id == class_id:
                grouped.setdefault(ref.session_id, {})[key] = tag
        return [SessionFolder(class_id, sid, objects) for sid, objects in sorted(grouped.items())]

    def doc_of(self, folder: SessionFolder) -> SessionDoc | None:
        """The session's ``session.json`` as the listing shows it (``None``: being created or
        deleted right now)."""
        key = folder.doc_key
        return None if key is None else self._read_version(key, folder.objects[key], SessionDoc)

    def delete(self, class_id: str, session_id: str) -> None:
        self._store.delete(keys.SESSION.key(class_id=class_id, session_id=session_id))
        self._store.delete_prefix(keys.SESSION.prefix(class_id=class_id, session_id=session_id))


class SessionPhotos(Repository):
    """A session photo: the original, the annotated copy, and ``result.json`` (its faces), written
    in that order; ``result.json`` makes it complete. Erasure rewrites the annotated copy first,
    then ``result.json``. The retention purge writes ``purged.json`` (if absent), then removes the
    two images; ``result.json`` stays."""

    @staticmethod
    def key(class_id: str, session_id: str, photo_id: str, name: str) -> str:
        """``name``: :data:`keys.ORIGINAL`, :data:`keys.ANNOTATED`, :data:`keys.RESULT` or
        :data:`keys.PURGED`."""
        return keys.SESSION_PHOTO.key(
            class_id=class_id, session_id=session_id, photo_id=photo_id, name=name
        )

    def stage(
        self,
        staged: StagedWrites,
        class_id: str,
        session_id: str,
        doc: SessionPhotoDoc,
        original: bytes,
        annotated: bytes,
    ) -> None:
        for name, data, content_type in (
            (keys.ORIGINAL, original, JPEG),
            (keys.ANNOTATED, annotated, JPEG),
            (keys.RESULT, doc.to_json_bytes(), JSON),
        ):
            staged.put(
                self.key(class_id, session_id, doc.id, name), data, content_type=content_type
            )

    def purge(self, class_id: str, session_id: str, doc: PhotoPurgedDoc) -> None:
        """Remove the photo's images, keeping ``result.json``. ``purged.json`` first (kept if a
        concurrent purge wrote it): from then on the images answer "removed by the retention
        policy". Every step may run again (another replica, a purge cut off half-way)."""
        self._create(self.key(class_id, session_id, doc.photo_id, keys.PURGED), doc)
        for name in (keys.ANNOTATED, keys.ORIGINAL):
            self._store.delete(self.key(class_id, session_id, doc.photo_id, name))

    def purged(self, class_id: str, session_id: str, photo_id: str) -> PhotoPurgedDoc | None:
        """The purge's note, if the retention purge removed the photo's images."""
        return self._read(self.key(class_id, session_id, photo_id, keys.PURGED), PhotoPurgedDoc)

    def rewrite_result(
        self, class_id: str, session_id: str, photo_id: str, doc: SessionPhotoDoc
    ) -> None:
        """Replace the faces of a photo whose images were purged (erasure)."""
        self._write(self.key(class_id, session_id, photo_id, keys.RESULT), doc)

    def result(self, class_id: str, session_id: str, photo_id: str) -> SessionPhotoDoc | None:
        return self._read(self.key(class_id, session_id, photo_id, keys.RESULT), SessionPhotoDoc)

    def results(self, folder: SessionFolder) -> list[SessionPhotoDoc]:
        """The session's complete photos as the listing shows them, in upload order."""
        photos = []
        for photo_id in folder.complete_photo_ids():
            key = self.key(folder.class_id, folder.session_id, photo_id, keys.RESULT)
            doc = self._read_version(key, folder.objects[key], SessionPhotoDoc)
            if doc is not None:
                photos.append(doc)
        photos.sort(key=lambda photo: (photo.created_at, photo.id))
        return photos

    def image(self, class_id: str, session_id: str, photo_id: str, name: str) -> bytes:
        """:data:`keys.ORIGINAL` or :data:`keys.ANNOTATED`; :class:`ObjectNotFoundError` if
        gone."""
        return self._store.get(self.key(class_id, session_id, photo_id, name))

    def rewrite(
        self,
        class_id: str,
        session_id: str,
        photo_id: str,
        doc: SessionPhotoDoc,
        annotated: bytes,
    ) -> None:
        """Replace the faces and the annotated copy; the annotated copy first, so that an
        interrupted rewrite is found again from ``result.json``."""
        key = self.key(class_id, session_id, photo_id, keys.ANNOTATED)
        self._store.put(key, annotated, content_type=JPEG)
        self._write(self.key(class_id, session_id, photo_id, keys.RESULT), doc)


class AttendanceRecords(Repository):
    """One record per present student and session, created if absent: the first photo that
    recognises a student records them, and concurrent uploads never lose a record."""

    @staticmethod
    def _key(class_id: str, session_id: str, student_id: str) -> str:
        return keys.RECORD.key(class_id=class_id, session_id=session_id, student_id=student_id)

    def stage(
        self, staged: StagedWrites, class_id: str, session_id: str, record: RecordDoc
    ) -> bool:
        """Record ``record`` unless the student is recorded already (False). Others act on a
        record as soon as it exists ("already present"), so it is written ``shared``."""
        key = self._key(class_id, session_id, record.student_id)
        try:
            staged.put(key, record.to_json_bytes(), content_type=JSON, if_absent=True, shared=True)
        except ObjectExistsError:
            return False
        return True

    def get(self, class_id: str, session_id: str, student_id: str) -> RecordDoc | None:
        return self._read(self._key(class_id, session_id, student_id), RecordDoc)

    def of_session(self, class_id: str, session_id: str) -> dict[str, RecordDoc]:
        """``student_id -> record`` for every readable record of the session."""
        records: dict[str, RecordDoc] = {}
        prefix = keys.RECORD.prefix(class_id=class_id, session_id=session_id)
        for key in self._store.list(prefix):
            record = self._read(key, RecordDoc)
            if record is not None:
                records[record.student_id] = record
        return records

    def delete(self, class_id: str, session_id: str, student_id: str) -> bool:
        """False when there was no record."""
        key = self._key(class_id, session_id, student_id)
        if not self._store.exists(key):
            return False
        self._store.delete(key)
        return True


class StatusCorrections(Repository):
    """A teacher's statuses: one object per correction, never rewritten; a student's newest one
    applies. Concurrent corrections and uploads therefore never lose each other."""

    def add(self, class_id: str, session_id: str, doc: StatusCorrectionDoc) -> None:
        key = keys.CORRECTION.key(
            class_id=class_id,
            session_id=session_id,
            student_id=doc.student_id,
            correction_id=doc.id,
        )
        if not self._create(key, doc):  # pragma: no cover - ids are random
            raise ObjectExistsError(key)

    def latest(self, folder: SessionFolder) -> dict[str, StatusCorrectionDoc]:
        """``student_id -> newest correction`` (a removal, ``status`` ``None``, included)."""
        latest = {}
        for student_id, listed in folder.corrections().items():
            doc = self._newest(listed, StatusCorrectionDoc)
            if doc is not None:
                latest[student_id] = doc
        return latest

    def _prefix(self, class_id: str, session_id: str, student_id: str) -> str:
        return keys.CORRECTION.prefix(
            class_id=class_id, session_id=session_id, student_id=student_id
        )

    def latest_of(
        self, class_id: str, session_id: str, student_id: str
    ) -> StatusCorrectionDoc | None:
        listed = self._store.list_versions(self._prefix(class_id, session_id, student_id))
        return self._newest(listed, StatusCorrectionDoc)

    def delete_student(self, class_id: str, session_id: str, student_id: str) -> int:
        """Every correction of the student in the session (erasure); returns how many."""
        return self._store.delete_prefix(self._prefix(class_id, session_id, student_id))


class FaceAssignments(Repository):
    """A teacher naming faces: one object per assignment, never rewritten; a face's newest one
    applies."""

    def add(self, class_id: str, session_id: str, doc: FaceAssignmentDoc) -> None:
        key = keys.ASSIGNMENT.key(
            class_id=class_id,
            session_id=session_id,
            photo_id=doc.photo_id,
            face_index=doc.face_index,
            assignment_id=doc.id,
        )
        if not self._create(key, doc):  # pragma: no cover - ids are random
            raise ObjectExistsError(key)

    def latest(self, folder: SessionFolder) -> dict[FaceId, FaceAssignmentDoc]:
        """``(photo id, face index) -> newest assignment``."""
        latest = {}
        for face, listed in folder.assignments().items():
            doc = self._newest(listed, FaceAssignmentDoc)
            if doc is not None:
                latest[face] = doc
        return latest

    def of_photo(
        self, class_id: str, session_id: str, photo_id: str
    ) -> dict[int, FaceAssignmentDoc]:
        """``face index -> newest assignment`` of one photo (one listing of that photo's)."""
        prefix = keys.ASSIGNMENT.prefix(class_id=class_id, session_id=session_id, photo_id=photo_id)
        folder = SessionFolder(class_id, session_id, self._store.list_versions(prefix))
        return {face: doc for (pid, face), doc in self.latest(folder).items() if pid == photo_id}

    def naming(self, folder: SessionFolder, student_id: str) -> list[tuple[str, FaceAssignmentDoc]]:
        """``(key, assignment)`` of every assignment of the session that names the student."""
        found = []
        for listed in folder.assignments().values():
            for key, tag in listed.items():
                doc = self._read_version(key, tag, FaceAssignmentDoc)
                if doc is not None and doc.student_id == student_id:
                    found.append((key, doc))
        return found

    def delete_key(self, key: str) -> None:
        self._store.delete(key)
