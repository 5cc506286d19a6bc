"""Identifiers: URL-safe slugs for classes, students, sessions and photos."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from datetime import UTC, datetime

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""Every id in a URL and a storage key matches this, so ids can never escape their folder."""
_SLUG = re.compile(SLUG_PATTERN)
MAX_NAME_LENGTH = 200
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Unicode bidirectional embedding, override and isolate characters."""


def is_slug(value: str) -> bool:
    return _SLUG.fullmatch(value) is not None


def slugify(name: str) -> str:
    """Student id derived from a display name (the mobile client only sends names).

    ``"Zoë O'Neil"`` -> ``"zoe-o-neil"``. A name with no ASCII letter or digit (``"李雷"``) gets a
    stable hash-based id, so the same name always maps to the same student.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    if slug:
        return slug
    digest = hashlib.sha256(name.strip().casefold().encode("utf-8")).hexdigest()
    return f"student-{digest[:12]}"


def new_id() -> str:
    """A fresh id that sorts by creation time: ``20250102t030405123-1a2b3c4d``."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%dt%H%M%S}{now.microsecond // 1000:03d}-{secrets.token_hex(4)}"


def clean_name(name: str, *, what: str = "name") -> str:
    """A display name with surrounding blanks removed; rejects empty or control characters."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError(f"{what} is empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        raise ValueError(f"{what} contains control characters")
    if any(ch in BIDI_CONTROLS for ch in cleaned):
        # Embedding/override/isolate marks make a name display as something else (spoofing);
        # right-to-left names need none of them.
        raise ValueError(f"{what} contains bidirectional control characters")
    return cleaned


def utc_now() -> datetime:
    return datetime.now(UTC)
