"""What every repository shares: reading, writing and creating one JSON document by key."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from app.records.cache import DocumentCache
from app.records.documents import Document
from app.storage import ObjectExistsError, ObjectNotFoundError, ObjectStore

DocT = TypeVar("DocT", bound=Document)

JSON = "application/json"
JPEG = "image/jpeg"
NPY = "application/octet-stream"


class Repository:
    """The stored objects of one kind of thing; ``cache`` holds parsed documents by version."""

    def __init__(self, store: ObjectStore, cache: DocumentCache | None = None) -> None:
        self._store = store
        self._cache = cache if cache is not None else DocumentCache(budget_bytes=0)

    def _read(self, key: str, model: type[DocT]) -> DocT | None:
        """The document at ``key``; ``None`` if absent or unreadable (treated as not there)."""
        try:
            return model.model_validate_json(self._store.get(key))
        except (ObjectNotFoundError, ValidationError):
            return None

    def _load(self, key: str, model: type[DocT], what: str) -> DocT:
        """The document at a key a listing showed; :class:`ObjectNotFoundError` if deleted since,
        ``ValueError`` naming ``what`` and the key if unreadable."""
        data = self._store.get(key)
        try:
            return model.model_validate_json(data)
        except ValueError as error:
            raise ValueError(f"unreadable {what} {key}") from error

    def _read_version(self, key: str, tag: str, model: type[DocT]) -> DocT | None:
        """:meth:`_read` of ``key`` as a listing just showed it (version ``tag``), from the
        cache when that version was read before."""
        cached = self._cache.get(key, tag)
        if isinstance(cached, model):
            return cached
        try:
            data = self._store.get(key)
            doc = model.model_validate_json(data)
        except (ObjectNotFoundError, ValidationError):
            return None
        self._cache.put(key, tag, doc, len(data))
        return doc

    def _newest(self, keys: dict[str, str], model: type[DocT]) -> DocT | None:
        """The newest readable document of ``keys`` (``key -> tag``; their last segments are
        time-sorted ids)."""
        for key in sorted(keys, reverse=True):
            doc = self._read_version(key, keys[key], model)
            if doc is not None:
                return doc
        return None

    def _write(self, key: str, doc: Document, *, if_absent: bool = False) -> None:
        self._store.put(key, doc.to_json_bytes(), content_type=JSON, if_absent=if_absent)

    def _create(self, key: str, doc: Document) -> bool:
        """Write ``doc`` only if ``key`` is free; False when it is taken."""
        try:
            self._write(key, doc, if_absent=True)
        except ObjectExistsError:
            return False
        return True
