"""Classes: ``class.json``."""

from __future__ import annotations

from app.records import keys
from app.records.base import Repository
from app.records.documents import ClassDoc


class Classes(Repository):
    """``class.json``: created if absent; deleted first, then everything under the class."""

    def get(self, class_id: str) -> ClassDoc | None:
        return self._read(keys.CLASS.key(class_id=class_id), ClassDoc)

    def exists(self, class_id: str) -> bool:
        return self._store.exists(keys.CLASS.key(class_id=class_id))

    def create(self, doc: ClassDoc) -> bool:
        """False when the id is taken."""
        return self._create(keys.CLASS.key(class_id=doc.id), doc)

    def save(self, doc: ClassDoc) -> None:
        """Rewrite ``class.json`` (a rename, the retention overrides); the last writer wins."""
        self._write(keys.CLASS.key(class_id=doc.id), doc)

    def ids(self) -> list[str]:
        """Every class folder (a class being created or deleted included)."""
        return self._store.list_children(keys.CLASS.prefix())

    def delete(self, class_id: str) -> None:
        # class.json first: from then on every request sees the class as gone.
        self._store.delete(keys.CLASS.key(class_id=class_id))
        self._store.delete_prefix(keys.CLASS.prefix(class_id=class_id))
