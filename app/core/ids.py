"""Identifiers: URL-safe slugs for classes, students, sessions and photos."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from anyascii import anyascii

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""Every id in a URL and a storage key matches this, so ids can never escape their folder."""
_SLUG = re.compile(SLUG_PATTERN)
MAX_NAME_LENGTH = 200
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Unicode bidirectional embedding, override and isolate characters."""


def is_slug(value: str) -> bool:
    return _SLUG.fullmatch(value) is not None


SLUG_BASE_LENGTH = 48
"""Longest readable part of a derived id, leaving room for the ``-xxxxxx`` suffix."""


def name_key(name: str) -> str:
    """What makes two names the same student's: Unicode NFC, blanks trimmed and collapsed,
    compared case-insensitively (``casefold``). ``" Zoë  O'Neil"`` (decomposed ë) and
    ``"ZOË O'NEIL"`` are one name; ``"Zoe O'Neil"`` is another."""
    collapsed = " ".join(unicodedata.normalize("NFC", name).split())
    return unicodedata.normalize("NFC", collapsed.casefold())


def slugify(name: str) -> str:
    """The readable part of a student id derived from a display name, transliterated to ASCII by
    ``anyascii``: ``"Zoë O'Neil"`` -> ``"zoe-o-neil"``, ``"Rahul कुमार"`` -> ``"rahul-kumar"``,
    ``"李雷"`` -> ``"lilei"``. A name that leaves nothing (punctuation only) gives ``"student"``.

    Different names can share a slug (``"Zoë"``, ``"Zoe"``): :func:`student_id_candidates` makes
    the id unique; never use a slug alone as a student's identity.
    """
    ascii_name = anyascii(unicodedata.normalize("NFC", name))
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_BASE_LENGTH].strip("-") or "student"


def student_id_candidates(name: str) -> Iterator[str]:
    """Ids to try, in order, for a new student called ``name``: the slug, then the slug with a
    short suffix derived from the name (so the same name always tries the same ids, and two
    concurrent registrations of one name meet on the same id), then numbered variants."""
    base = slugify(name)
    suffix = hashlib.sha256(name_key(name).encode("utf-8")).hexdigest()[:6]
    yield base
    yield f"{base}-{suffix}"
    for number in range(2, 100):
        yield f"{base}-{suffix}-{number}"


def new_id(at: datetime | None = None) -> str:
    """A fresh id that sorts by creation time: ``20250102t030405123-1a2b3c4d`` (``at``, UTC, or
    now)."""
    now = at.astimezone(UTC) if at is not None else datetime.now(UTC)
    return f"{now:%Y%m%dt%H%M%S}{now.microsecond // 1000:03d}-{secrets.token_hex(4)}"


def new_id_after(previous: str | None) -> str:
    """A fresh id that sorts after ``previous`` (an id of :func:`new_id`), also when both are made
    in the same millisecond: what a newer version of a fact needs, where the newest id wins."""
    fresh = new_id()
    if previous is None or fresh > previous:
        return fresh
    stamp = datetime.strptime(previous.split("-", 1)[0], "%Y%m%dt%H%M%S%f").replace(tzinfo=UTC)
    return new_id(stamp + timedelta(milliseconds=1))


def clean_name(name: str, *, what: str = "name") -> str:
    """A display name in Unicode NFC with blanks trimmed and collapsed; rejects empty or control
    characters."""
    cleaned = " ".join(unicodedata.normalize("NFC", name).split())
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
