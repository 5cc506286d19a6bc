"""A class's known strangers: faces a teacher said are nobody of the class, one object each
(``classes/{class_id}/strangers/{id}.json``), written once and never changed; deleted by a
teacher, when the face is named again, by the bound, by the retention purge, or with the class."""

from __future__ import annotations

from app.records import keys
from app.records.base import Repository
from app.records.documents import KnownStrangerDoc


class KnownStrangers(Repository):
    def _key(self, class_id: str, stranger_id: str) -> str:
        return keys.KNOWN_STRANGER.key(class_id=class_id, stranger_id=stranger_id)

    def create(self, class_id: str, doc: KnownStrangerDoc) -> bool:
        return self._create(self._key(class_id, doc.id), doc)

    def get(self, class_id: str, stranger_id: str) -> KnownStrangerDoc | None:
        return self._read(self._key(class_id, stranger_id), KnownStrangerDoc)

    def listed(self, class_id: str) -> list[str]:
        """The keys of the class's known strangers (one listing, nothing read)."""
        prefix = keys.KNOWN_STRANGER.prefix(class_id=class_id)
        return [
            key for key in self._store.list(prefix) if keys.KNOWN_STRANGER.parse(key) is not None
        ]

    def load(self, key: str) -> KnownStrangerDoc:
        """The known stranger at a listed key; :class:`app.storage.ObjectNotFoundError` if
        deleted since, ``ValueError`` if unreadable."""
        return self._load(key, KnownStrangerDoc, "known stranger")

    def of_class(self, class_id: str) -> list[KnownStrangerDoc]:
        """Every readable known stranger of the class, oldest first (each read once: they never
        change, so the shared cache serves them by version; a teacher's every naming asks)."""
        listed = self._store.list_versions(keys.KNOWN_STRANGER.prefix(class_id=class_id))
        docs = (
            self._read_version(key, tag, KnownStrangerDoc)
            for key, tag in listed.items()
            if keys.KNOWN_STRANGER.parse(key) is not None
        )
        found = [doc for doc in docs if doc is not None]
        found.sort(key=lambda doc: (doc.marked_at, doc.id))
        return found

    def delete(self, class_id: str, stranger_id: str) -> None:
        self._store.delete(self._key(class_id, stranger_id))
