"""API keys: the format of ``ROLLCALL_API_KEYS`` and how a key is kept (its digest, never the
key). Read by :mod:`app.settings` (which refuses bad keys at start-up) and :mod:`app.security`
(which checks presented keys); it imports neither, so they do not import each other."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from app.core.ids import is_slug

MIN_KEY_LENGTH = 16
MAX_KEY_LENGTH = 256
KEY_ALPHABET = "A-Z a-z 0-9 . _ ~ + / = -"
_KEY_PATTERN = re.compile(r"[A-Za-z0-9._~+/=-]+")


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its digest (never the key itself) and the classes it may touch."""

    label: str
    """How logs name the key: ``key 1``, ``key 2``... (its position in ``ROLLCALL_API_KEYS``)."""
    digest: bytes = field(repr=False)
    classes: frozenset[str] | None
    """``None``: every class."""

    def allows(self, class_id: str) -> bool:
        return self.classes is None or class_id in self.classes


def key_digest(key: str) -> bytes:
    # Header values arrive as latin-1 text (ASGI); any string encodes back without error.
    return hashlib.sha256(key.encode("latin-1", errors="replace")).digest()


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Parse ``ROLLCALL_API_KEYS``. Errors name the entry by position, never quote the key."""
    keys: list[ApiKey] = []
    digests: set[bytes] = set()
    entries = [e.strip() for e in re.split(r"[;\n]", raw)]
    for position, entry in enumerate((e for e in entries if e), start=1):
        secret, _, scope = entry.partition(":")
        secret = secret.strip()
        where = f"ROLLCALL_API_KEYS entry {position}"
        if len(secret) < MIN_KEY_LENGTH:
            raise ValueError(
                f"{where}: the key has {len(secret)} characters; at least {MIN_KEY_LENGTH} are "
                "required (e.g. `openssl rand -hex 24`)"
            )
        if len(secret) > MAX_KEY_LENGTH:
            raise ValueError(f"{where}: the key is longer than {MAX_KEY_LENGTH} characters")
        if _KEY_PATTERN.fullmatch(secret) is None:
            raise ValueError(f"{where}: a key may only contain {KEY_ALPHABET}")
        classes: frozenset[str] | None = None
        if scope.strip():
            class_ids = [c.strip() for c in scope.split(",") if c.strip()]
            bad = [c for c in class_ids if not is_slug(c)]
            if bad:
                raise ValueError(f"{where}: invalid class id(s) {bad} after ':'")
            classes = frozenset(class_ids)
        digest = key_digest(secret)
        if digest in digests:
            raise ValueError(f"{where}: the same key is configured twice")
        digests.add(digest)
        keys.append(ApiKey(label=f"key {position}", digest=digest, classes=classes))
    if not keys:
        raise ValueError("ROLLCALL_API_KEYS is set but holds no key")
    return tuple(keys)
