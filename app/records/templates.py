"""Key templates: one pattern per stored thing, from which its keys are built, its folders
listed and its listed keys parsed back, so that the three can never disagree.

::

    PHOTO = KeyTemplate(PhotoRef, "classes/{class_id}/students/{student_id}/photos/{photo_id}.jpg")
    PHOTO.key(class_id="c", student_id="s", photo_id="p")  # "classes/c/students/s/photos/p.jpg"
    PHOTO.prefix(class_id="c", student_id="s")             # "classes/c/students/s/photos/"
    PHOTO.parse("classes/c/students/s/photos/p.jpg")       # PhotoRef("c", "s", "p")
    PHOTO.parse("classes/c/students/s/photos/p.json")      # None

A field ``{name}`` matches one path segment or less (never a ``/``); ``{name:d}`` and
``{name:08d}`` are integers (written with that format, parsed back to ``int``); a field may be
given its own regular expression (``KeyTemplate(..., patterns={"rest": ".+"})``). The parsed
reference is the frozen dataclass given, built with the template's fields as keywords.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any, Generic, TypeVar

RefT = TypeVar("RefT", covariant=True)

FIELD_PATTERN = r"[^/]+?"
"""A field is one path segment or part of one; non-greedy, so ``{event_id}.{class_id}.json``
splits at the first dot (ids never contain one)."""


class KeyTemplate(Generic[RefT]):
    """The keys of one stored thing (see the module)."""

    def __init__(
        self, ref: Callable[..., RefT], pattern: str, *, patterns: dict[str, str] | None = None
    ) -> None:
        self.ref = ref
        self.pattern = pattern
        self._parts: list[tuple[str, str | None, str]] = [
            (literal, name, spec or "")
            for literal, name, spec, _ in string.Formatter().parse(pattern)
        ]
        self.fields = tuple(name for _, name, _ in self._parts if name is not None)
        self._integers = frozenset(
            name for _, name, spec in self._parts if name is not None and spec.endswith("d")
        )
        overrides = patterns or {}
        regex = []
        for literal, name, _ in self._parts:
            regex.append(re.escape(literal))
            if name is not None:
                field = r"\d+" if name in self._integers else overrides.get(name, FIELD_PATTERN)
                regex.append(f"(?P<{name}>{field})")
        self._regex = re.compile("".join(regex) + r"\Z")

    def key(self, **fields: str | int) -> str:
        """The key of the thing these fields name (all of them, no other)."""
        if set(fields) != set(self.fields):
            raise TypeError(f"{self.pattern}: needs {self.fields}, got {tuple(fields)}")
        return self.pattern.format(**fields)

    def prefix(self, **fields: str | int) -> str:
        """The folder holding every key whose first fields are ``fields`` (given in order): the
        key up to the last ``/`` before the first field not given."""
        given = list(fields)
        if given != list(self.fields[: len(given)]):
            raise TypeError(
                f"{self.pattern}: a prefix takes the first fields in order, got {given}"
            )
        built = ""
        for literal, name, spec in self._parts:
            built += literal
            if name is None or name not in fields:
                break
            built += format(fields[name], spec)
        return built[: built.rfind("/") + 1]

    def parse(self, key: str) -> RefT | None:
        """What ``key`` names, or ``None`` when it is not a key of this thing."""
        found = self._regex.match(key)
        if found is None:
            return None
        values: dict[str, Any] = found.groupdict()
        for name in self._integers:
            values[name] = int(values[name])
        return self.ref(**values)
