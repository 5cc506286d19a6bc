"""The teachers' web console: static HTML/CSS/JS from ``app/console`` at ``/console/``.

Same origin as the API, so it needs no CORS and no build step; ``/`` redirects to it. Only the
files in the folder and its subfolders (``views/``, ``widgets/``: ES modules) are served, a fixed
set of paths read when the module is imported, so a request can never reach outside it. The
console calls the ``/v1`` API with ``fetch`` and sends the ``X-API-Key`` the teacher typed when
the server asks for one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ASSETS = {
    path.relative_to(CONSOLE_DIR).as_posix(): path
    for path in sorted(CONSOLE_DIR.rglob("*"))
    if path.is_file() and path.suffix in _MEDIA_TYPES
}
"""Served files by their path under ``/console/`` (``"app.js"``, ``"views/register.js"``)."""

# Everything comes from this origin; images are shown from blob: URLs (fetched with the API key)
# and the camera preview is a MediaStream. No inline script or style anywhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    # Always revalidate: a new version of the service must never run old console code.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


def _asset(name: str) -> Response:
    path = _ASSETS.get(name)
    if path is None:
        return Response(
            '{"detail": "no such console file"}', status_code=404, media_type="application/json"
        )
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=_HEADERS)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/console")
async def console_without_slash() -> RedirectResponse:
    # Relative asset links in index.html need the trailing slash.
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/")
async def console_index() -> Response:
    return _asset("index.html")


@router.get("/console/{name:path}")
async def console_asset(name: str) -> Response:
    return _asset(name)
