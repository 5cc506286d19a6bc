"""Downloads: the ``Content-Disposition`` of a file the browser saves."""

from __future__ import annotations

from urllib.parse import quote


def attachment(filename: str, fallback: str) -> str:
    """``attachment`` with an ASCII ``filename`` (other characters, quotes, slashes, ``;`` and
    ``%`` become ``_``; ``fallback`` if nothing is left) and the UTF-8 ``filename*`` (RFC 6266), so "Zoë's class.csv" keeps its name
    in browsers and old clients get something safe."""
    readable = " ".join(filename.split())
    stem, dot, extension = readable.rpartition(".")
    if not dot:  # no extension
        stem, extension = readable, ""
    suffix = f".{extension}" if extension else ""
    ascii_stem = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\/;%' else "_" for c in stem
    ).strip()
    plain = f"{ascii_stem}{suffix}" if ascii_stem.strip("_") else fallback
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(readable, safe='')}"
