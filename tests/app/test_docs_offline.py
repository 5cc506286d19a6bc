"""API docs that work offline (issue 14, point 4): ``/docs`` (Swagger UI) and ``/redoc`` load
their scripts and styles from the service itself. Headless Chromium with every non-loopback
request blocked must show the operations, and nothing may have tried to leave the machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from app.storage import DiskObjectStore
from ml.pipeline import FacePipeline
from tests.app.test_console_browser import DESKTOP, LiveServer, browser, live_server, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

pytestmark = pytest.mark.slow  # the API docs loaded in Chromium


__all__ = ["browser"]  # the Chromium fixture, shared with the console tests

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture(scope="module")
def server(
    fast_face_pipeline: FacePipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    store = DiskObjectStore(tmp_path_factory.mktemp("docs-store"))
    with live_server(fast_face_pipeline, store) as running:
        yield running


def _offline(page: Page) -> list[str]:
    """Abort every request that is not for this machine; return the list of those tried."""
    blocked: list[str] = []

    def handle(route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname in LOOPBACK:
            route.continue_()
        else:
            blocked.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", handle)
    return blocked


def test_swagger_ui_shows_the_operations_offline(server: LiveServer, browser: Browser) -> None:
    from playwright.sync_api import expect

    with open_page(browser, DESKTOP) as (page, seen):
        blocked = _offline(page)
        page.goto(server.url + "/docs")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible()
        assert operations.count() >= 20
        path = '.opblock-summary-path[data-path="{}"]'
        expect(page.locator(path.format("/register/register-student"))).to_be_visible()
        expect(page.locator(path.format("/mark/detect"))).to_be_visible()
        # Open one operation: its parameters render too.
        page.locator(path.format("/mark/detect")).click()
        expect(page.get_by_text("A photo of the class").first).to_be_visible()
        assert blocked == [] and seen.errors == []


def test_redoc_shows_the_operations_offline(server: LiveServer, browser: Browser) -> None:
    from playwright.sync_api import expect

    with open_page(browser, DESKTOP) as (page, seen):
        blocked = _offline(page)
        page.goto(server.url + "/redoc")
        heading = page.get_by_role("heading", name="Register a student in the default class")
        expect(heading).to_be_visible()
        expect(
            page.get_by_role("heading", name="Enrol a student from one or more photos")
        ).to_be_visible()
        # ReDoc's bundle always tries one decorative image, the "API docs by Redocly" logo in the
        # menu; offline it fails and ReDoc removes it (its onError). Nothing else leaves.
        assert set(blocked) <= {REDOCLY_LOGO} and seen.errors == []
        expect(page.locator(f'img[src="{REDOCLY_LOGO}"]')).to_have_count(0)


def test_the_assets_are_served_by_the_service(server: LiveServer, tmp_path: Path) -> None:
    import httpx

    html = httpx.get(server.url + "/docs").text
    assert "cdn.jsdelivr.net" not in html and "/static-offline-docs/swagger-ui-bundle.js" in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = httpx.get(f"{server.url}/static-offline-docs/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000, asset
