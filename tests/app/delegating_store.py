"""An object store that passes every call to another one: the base of the tests' fault-injecting
stores, which override only the call they break."""

from __future__ import annotations

import builtins

from app.storage import ObjectStore


class DelegatingStore:
    """Delegates every :class:`ObjectStore` call to ``inner``."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        self.inner.put(key, data, content_type=content_type, if_absent=if_absent)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> builtins.list[str]:
        return self.inner.list(prefix)

    def list_versions(self, prefix: str) -> dict[str, str]:
        return self.inner.list_versions(prefix)

    def list_children(self, prefix: str) -> builtins.list[str]:
        return self.inner.list_children(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(prefix)

    def ping(self) -> None:
        self.inner.ping()

    @property
    def description(self) -> str:
        return self.inner.description
