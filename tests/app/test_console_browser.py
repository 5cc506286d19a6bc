"""The web console end to end in headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright; no browser is ever downloaded), against the real app with the real models served by
uvicorn on a loopback port.

Screenshots of the main screens go to a temporary folder, or to ``$ROLLCALL_SCREENSHOTS_DIR`` when
set (a folder of your own: they show ``../shared``'s photos, which the repository must not hold).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import os
import re
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image

from app.storage import DiskObjectStore, ObjectStore
from harness.rosters import (
    Pupil,
    SchoolClass,
    oneroster_files,
    photos_zip,
    pupils_from_folders,
    zip_bytes,
)
from ml.pipeline import FacePipeline
from tests.app.conftest import CAST, api_settings
from tests.conftest import CAST_UNKNOWN_THRESHOLD

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

pytestmark = pytest.mark.slow  # the console driven in Chromium against the real models


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    # The sandbox has no network: without these Chromium keeps trying to reach Google services.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # A synthetic camera (a test pattern, no face), allowed without asking.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
DESKTOP: ViewportSize = {"width": 1200, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS_ENV = "ROLLCALL_SCREENSHOTS_DIR"
WAIT_MS = 60_000
"""Longest wait for anything on the page: recognition on two busy CI cores can take seconds."""

IMAGES_LOADED = """(selector) => {
    const images = [...document.querySelectorAll(selector)];
    return images.length > 0 && images.every((i) => i.complete && i.naturalWidth > 0);
}"""


# --- the server and the browser -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LiveServer:
    url: str
    store: ObjectStore


@contextmanager
def live_server(
    pipeline: FacePipeline, store: ObjectStore, **settings: Any
) -> Iterator[LiveServer]:
    """The app served by uvicorn in a background thread on a free loopback port."""
    import uvicorn

    from app.main import create_app

    app = create_app(api_settings(**settings), pipeline=pipeline, store=store)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="console-uvicorn", daemon=True
    )
    thread.start()
    try:
        for _ in range(600):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield LiveServer(f"http://127.0.0.1:{port}", store)
    finally:
        server.should_exit = True
        thread.join(timeout=120)
        listener.close()


@pytest.fixture(scope="module")
def server(
    fast_cast_pipeline: FacePipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    store = DiskObjectStore(tmp_path_factory.mktemp("console-store"))
    with live_server(fast_cast_pipeline, store) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it, so CI must have it")
        pytest.skip(message)
    pytest.importorskip("playwright", reason="Playwright is not installed: uv sync --group browser")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@dataclasses.dataclass
class PageErrors:
    errors: list[str]


@contextmanager
def open_page(browser: Browser, viewport: ViewportSize) -> Iterator[tuple[Page, PageErrors]]:
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    seen = PageErrors([])
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    try:
        yield page, seen
    finally:
        context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Page, str], Path]:
    configured = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page: Page, name: str) -> Path:
        # 256 colours keep a screenshot with photos in it commit-sized (~100-250 KB).
        captured = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
        path = folder / f"{name}.png"
        captured.quantize(colors=256).save(path, format="PNG", optimize=True)
        return path

    return shoot


def _cast_photo(people_dir: Path, name: str) -> Path:
    return people_dir / f"face_api_js__{name}" / f"{name}1.png"


# --- the flow -------------------------------------------------------------------------------


def test_teacher_flow(
    server: LiveServer,
    browser: Browser,
    people_dir: Path,
    groups_dir: Path,
    screenshots: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    """Create a class, register the cast from files, take the attendance of bbt3, download the
    CSV, look at the history, delete a student."""
    from playwright.sync_api import expect

    with open_page(browser, DESKTOP) as (page, seen):
        page.goto(server.url + "/")
        expect(page).to_have_url(server.url + "/console/")
        expect(page.get_by_text("No class yet")).to_be_visible()

        # A class, its id filled in from the name.
        page.get_by_label("Name", exact=True).fill("Big Bang Theory")
        expect(page.get_by_label("Id", exact=True)).to_have_value("big-bang-theory")
        page.get_by_role("button", name="Create class").click()
        expect(page.locator("h1")).to_have_text("Big Bang Theory")
        expect(page.get_by_text("No student yet")).to_be_visible()

        # Register the five from files: each photo is checked before it can be saved.
        page.get_by_role("link", name="Register a student").click()
        save = page.get_by_role("button", name="Save student")
        for name in CAST:
            page.get_by_label("Name", exact=True).fill(name.title())
            expect(page.get_by_label("Student id", exact=True)).to_have_value(name)
            expect(save).to_be_disabled()
            page.locator("#photo-file").set_input_files(_cast_photo(people_dir, name))
            # The cast's photos are 150 px grey crops cut at the chin: usable, with the reasons
            # they are poor and the advice to add a photo, before the teacher saves.
            verdict = page.locator("#check-verdict")
            expect(verdict).to_contain_text("Usable, but check this first")
            expect(verdict).to_contain_text("black and white")
            expect(verdict).to_contain_text("Add another photo of this student")
            expect(save).to_be_enabled()
            expect(page.locator(".quality")).to_contain_text("Face size")
            expect(page.locator(".face-box")).to_be_visible()
            save.click()
            expect(page.get_by_role("status")).to_have_text(f"{name.title()} registered.")
            expect(page.get_by_label("Name", exact=True)).to_have_value("")
        expect(page.locator(".registered li")).to_have_count(len(CAST))

        # The camera path: a frame of Chromium's fake camera goes through the same check.
        page.get_by_role("button", name="Use the camera").click()
        shoot = page.get_by_role("button", name="Take photo")
        expect(shoot).to_be_enabled()
        shoot.click()
        expect(page.locator("#camera-dialog")).to_be_hidden()
        expect(page.locator("#check-verdict")).to_contain_text("no face found")
        expect(page.locator(".preview img")).to_be_visible()

        # The check speaks up before anything is saved: a look-alike, then a group photo.
        page.get_by_label("Name", exact=True).fill("Shelly")
        sheldon2 = people_dir / "face_api_js__sheldon" / "sheldon2.png"
        page.locator("#photo-file").set_input_files(sheldon2)
        verdict = page.locator("#check-verdict")
        expect(verdict).to_contain_text("looks very much like Sheldon")
        expect(verdict).not_to_contain_text("sheldon")  # the name, not the id
        expect(page.locator(".quality")).to_contain_text("Similarity with Sheldon")  # Details
        expect(save).to_be_enabled()
        screenshots(page, "register-check")
        # A group photo: the faces are outlined to choose from, and nothing can be saved yet
        # (test_registration_chooses_the_face_on_a_group_photo chooses one).
        page.locator("#photo-file").set_input_files(groups_dir / "face_api_js__bbt3.jpg")
        expect(verdict).to_contain_text("Several faces")
        expect(page.locator(".face-choice")).to_have_count(5)
        expect(save).to_be_disabled()
        expect(page.get_by_role("button", name="Retake")).to_be_visible()
        screenshots(page, "register-several-faces")

        # The class: five students with their thumbnails, in a teacher's words (no ids, no
        # recognition internals: the projection head is off by default and never shown).
        page.get_by_role("link", name="Students", exact=True).click()
        cards = page.locator("li.student")
        expect(cards).to_have_count(len(CAST))
        expect(page.locator("#student-count")).to_have_text("5 students enrolled.")
        page.wait_for_function(IMAGES_LOADED, arg="img.thumb")
        expect(cards.filter(has_text="Sheldon")).to_contain_text("1 photo")
        expect(cards.filter(has_text="Sheldon")).not_to_contain_text("sheldon")
        main = page.locator("main")
        for jargon in ("Recognition head", "version", "embedding"):
            expect(main).not_to_contain_text(jargon)
        screenshots(page, "class")

        # A session with bbt3: the five names on the page.
        page.get_by_role("link", name="Sessions").click()
        page.get_by_label("Label", exact=True).fill("Pilot")
        page.get_by_label("Date", exact=True).fill("2007-09-24")
        page.get_by_role("button", name="Start session").click()
        expect(page.locator("h1")).to_have_text("Pilot")
        page.locator("#session-photos").set_input_files(groups_dir / "face_api_js__bbt3.jpg")
        present = page.locator("#present-list .student-name")
        expect(present).to_have_count(len(CAST))
        assert sorted(present.all_inner_texts()) == sorted(n.title() for n in CAST)
        expect(page.locator("#absent-list li")).to_have_count(0)
        expect(page.locator("#session-counts")).to_contain_text("5 present, 0 absent")
        page.wait_for_function(IMAGES_LOADED, arg="img.annotated")
        caption = page.locator(".photo-result figcaption").first
        for name in CAST:
            expect(caption).to_contain_text(name.title())

        # A second photo merges; each of its faces is shown as a crop. Besides Leonard and
        # Sheldon it has a stranger in the background (unknown, or taken for someone): the
        # teacher says it is nobody of the class, and the roster keeps everyone present.
        page.locator("#session-photos").set_input_files(groups_dir / "face_api_js__bbt2.jpg")
        expect(page.locator(".photo-result")).to_have_count(2)
        second = page.locator(".photo-result").nth(1)
        expect(second.locator(".face-button img.crop")).to_have_count(3)
        page.wait_for_function(IMAGES_LOADED, arg="img.crop")
        stranger = second.locator(
            '.face-button:not([data-student-id="leonard"]):not([data-student-id="sheldon"])'
        )
        expect(stranger).to_have_count(1)
        stranger.click()
        page.locator("#face-dialog").get_by_role("button", name="Not in this class").click()
        expect(second.locator(".face-button.not-in-class")).to_contain_text("not in this class")
        expect(second.locator("figcaption")).not_to_contain_text("unknown")
        expect(present).to_have_count(len(CAST))
        page.wait_for_function(IMAGES_LOADED, arg="img.crop")
        screenshots(page, "session")

        # The CSV, as the browser downloads it.
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download CSV").click()
        download = download_info.value
        # The server's readable name (Content-Disposition, UTF-8 filename*), not the ids.
        assert download.suggested_filename == "Big Bang Theory 2007-09-24 Pilot.csv"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
        assert sorted((r["student_id"], r["name"], r["status"]) for r in rows) == sorted(
            (n, n.title(), "present") for n in CAST
        )
        assert all(float(r["similarity"]) >= CAST_UNKNOWN_THRESHOLD for r in rows)

        # Past sessions with their counts, then one student's history.
        page.get_by_role("link", name="Sessions").click()
        row = page.locator("#sessions-table tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("2007-09-24")
        expect(row).to_contain_text("5 of 5")
        page.get_by_label("Label", exact=True).fill("Second lesson")
        # Dated today (UTC, as the server dates enrolments): a session dated before the
        # students were enrolled would not list them (they were not in the class yet).
        page.get_by_label("Date", exact=True).fill(dt.datetime.now(dt.UTC).date().isoformat())
        page.get_by_role("button", name="Start session").click()
        expect(page.locator("#session-counts")).to_contain_text("0 present, 5 absent")
        page.get_by_role("link", name="Sessions").click()
        session_rows = page.locator("#sessions-table tbody tr")
        expect(session_rows).to_have_count(2)
        expect(session_rows.first).to_contain_text("0 of 5")  # newest first
        expect(session_rows.last).to_contain_text("5 of 5")
        screenshots(page, "sessions")
        page.get_by_role("link", name="Big Bang Theory").click()
        page.get_by_role("link", name="Penny").click()
        expect(page.locator("#history-summary")).to_have_text("Present at 1 of 2 sessions.")
        history = page.locator("#history-table tbody tr")
        expect(history).to_have_count(2)
        expect(history.first).to_contain_text("absent")
        expect(history.last).to_contain_text("present")
        page.wait_for_function(IMAGES_LOADED, arg="img.thumb")
        screenshots(page, "student-history")

        # Delete a student: the confirmation says what is erased.
        page.get_by_role("link", name="Big Bang Theory").click()
        page.get_by_role("button", name="Delete Howard").click()
        dialog = page.locator("#confirm-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("registration photos, everything recognition learnt")
        page.locator("#confirm-ok").click()
        expect(page.get_by_role("status")).to_have_text(
            "Howard deleted, with their photos and attendance."
        )
        expect(cards).to_have_count(len(CAST) - 1)
        expect(page.locator("#student-count")).to_have_text("4 students enrolled.")
        assert "howard" not in [
            s["id"] for s in _get(server, "/v1/classes/big-bang-theory/students")
        ]
        assert server.store.list("classes/big-bang-theory/students/howard/") == []
        assert seen.errors == []


def _get(server: LiveServer, path: str, **headers: str) -> Any:
    response = httpx.get(server.url + path, headers=headers, timeout=60)
    response.raise_for_status()
    return response.json()


def _seed_class(server: LiveServer, people_dir: Path, bbt3: Path, class_id: str) -> str:
    """A class with the cast and one session on bbt3, through the API; returns the session id."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        client.post("/v1/classes", json={"id": class_id, "name": "Phone check"}).raise_for_status()
        for name in CAST:
            client.post(
                f"/v1/classes/{class_id}/students",
                data={"student_id": name, "name": name.title()},
                files={"photos": (f"{name}1.png", _cast_photo(people_dir, name).read_bytes())},
            ).raise_for_status()
        session = client.post(f"/v1/classes/{class_id}/sessions", json={"label": "Lesson"})
        session.raise_for_status()
        session_id: str = session.json()["id"]
        client.post(
            f"/v1/classes/{class_id}/sessions/{session_id}/photos",
            files={"photo": ("bbt3.jpg", bbt3.read_bytes(), "image/jpeg")},
        ).raise_for_status()
    return session_id


def _roster_entry(server: LiveServer, class_id: str, session_id: str, student_id: str) -> Any:
    session = _get(server, f"/v1/classes/{class_id}/sessions/{session_id}")
    return next(e for e in session["roster"] if e["student_id"] == student_id)


def test_teacher_corrections(
    server: LiveServer,
    browser: Browser,
    people_dir: Path,
    groups_dir: Path,
    screenshots: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    """On bbt3 (all five recognised): say Penny's face is nobody of the class, then name it
    Penny; naming a second face Penny is refused in words; Sheldon set absent with a note stays
    absent after another photo, until recognition is used again; Penny's named face is removed
    from her page; the term report downloads as CSV for a date range."""
    from playwright.sync_api import expect

    class_id = "fixes"
    bbt3 = groups_dir / "face_api_js__bbt3.jpg"
    session_id = _seed_class(server, people_dir, bbt3, class_id)
    with open_page(browser, DESKTOP) as (page, seen):
        page.goto(f"{server.url}/console/#/c/{class_id}/s/{session_id}")
        present = page.locator("#present-list li")
        absent = page.locator("#absent-list li")
        expect(present).to_have_count(len(CAST))
        dialog = page.locator("#face-dialog")
        choices = page.locator("#face-choices li:visible button")

        # Penny's face is "not in this class": she is absent, the face marked as the teacher's.
        page.locator('.face-button[data-student-id="penny"]').click()
        expect(dialog).to_be_visible()
        expect(choices).to_have_count(len(CAST))
        page.get_by_label("Find a student").fill("LEO")  # filters as the teacher types
        expect(choices).to_have_count(1)
        expect(choices).to_contain_text(["Leonard (on face"])  # where the name is now
        page.get_by_label("Find a student").fill("")
        expect(choices).to_have_count(len(CAST))
        dialog.get_by_role("button", name="Not in this class").click()
        expect(dialog).to_be_hidden()
        expect(page.locator('#absent-list li[data-student-id="penny"]')).to_be_visible()
        expect(present).to_have_count(len(CAST) - 1)
        not_in_class = page.locator(".face-button.not-in-class")
        expect(not_in_class).to_have_count(1)
        expect(not_in_class).to_contain_text("named by teacher")
        assert _roster_entry(server, class_id, session_id, "penny")["status"] == "absent"

        # The same face named Penny again, by typing and Enter: present, named by the teacher.
        not_in_class.click()
        page.get_by_label("Find a student").fill("pen")
        expect(choices).to_have_text(["Penny"])
        page.get_by_label("Find a student").press("Enter")
        expect(dialog).to_be_hidden()
        penny = page.locator('#present-list li[data-student-id="penny"]')
        expect(penny).to_have_attribute("data-source", "teacher")
        expect(penny).to_contain_text("named in a photo by teacher")
        penny_face = page.locator('.face-button.named[data-student-id="penny"]')
        expect(penny_face).to_contain_text("named by teacher")
        entry = _roster_entry(server, class_id, session_id, "penny")
        assert (entry["status"], entry["source"]) == ("present", "teacher")

        # Raj's face named Penny too: the console asks first (Penny is on another face), and
        # the teacher cancels: nothing changes.
        page.locator('.face-button[data-student-id="raj"]').click()
        page.get_by_label("Find a student").fill("penny")
        choices.first.click()
        confirm = page.locator("#confirm-dialog")
        expect(confirm).to_contain_text("Penny is on face")
        confirm.get_by_role("button", name="Cancel").click()
        expect(confirm).to_be_hidden()
        expect(present).to_have_count(len(CAST))
        expect(page.locator('.face-button[data-student-id="raj"]')).to_contain_text("Raj")
        # On a wide screen the photos take the left column, the roster the right.
        photos_title = page.locator("#photos-title").bounding_box()
        roster_title = page.locator("#roster-title").bounding_box()
        assert photos_title is not None and roster_title is not None
        assert photos_title["x"] < roster_title["x"]

        # Sheldon absent by hand, with a note: marked, and a later photo does not overturn it.
        page.get_by_role("button", name="Set the status of Sheldon").click()
        status_dialog = page.locator("#status-dialog")
        expect(status_dialog).to_be_visible()
        status_dialog.get_by_label("Absent").check()
        status_dialog.get_by_label("Note (optional)").fill("Left after the break")
        status_dialog.get_by_role("button", name="Save status").click()
        sheldon = page.locator('#absent-list li[data-student-id="sheldon"]')
        expect(sheldon).to_contain_text("set by teacher")
        expect(sheldon).to_contain_text("Left after the break")
        expect(page.locator("#session-counts")).to_contain_text("4 present, 1 absent")
        page.locator("#session-photos").set_input_files(bbt3)
        expect(page.locator(".photo-result")).to_have_count(2)
        expect(sheldon).to_contain_text("set by teacher")
        expect(absent).to_have_count(1)
        entry = _roster_entry(server, class_id, session_id, "sheldon")
        assert (entry["status"], entry["source"], entry["note"]) == (
            "absent",
            "teacher",
            "Left after the break",
        )
        page.wait_for_function(IMAGES_LOADED, arg="img.annotated")
        screenshots(page, "session-corrections")

        # Recognition decides again: Sheldon is present from the photos.
        page.get_by_role("button", name="Use recognition again for Sheldon").click()
        sheldon_present = page.locator('#present-list li[data-student-id="sheldon"]')
        expect(sheldon_present).to_have_attribute("data-source", "recognised")
        expect(absent).to_have_count(0)

        # Penny's page lists the face the teacher named; removing it asks first.
        page.goto(f"{server.url}/console/#/c/{class_id}/student/penny")
        named = page.locator("li.sample", has_text="named by a teacher")
        expect(named).to_have_count(1)
        expect(named).to_contain_text("Lesson")
        sample_id = named.get_attribute("data-sample-id")
        assert sample_id in {
            s["sample_id"]
            for s in _get(server, f"/v1/classes/{class_id}/students/penny")["samples"]
        }
        page.wait_for_function(IMAGES_LOADED, arg="li.sample img.thumb")
        screenshots(page, "student-samples")
        named.get_by_role("button").click()
        confirm = page.locator("#confirm-dialog")
        expect(confirm).to_contain_text("The attendance already taken stays as it is")
        page.locator("#confirm-ok").click()
        expect(named).to_have_count(0)
        samples = _get(server, f"/v1/classes/{class_id}/students/penny")["samples"]
        assert sample_id not in {s["sample_id"] for s in samples}

        # Everything held about Penny, as the zip a data-protection request gets.
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download their data").click()
        export = download_info.value
        assert export.suggested_filename == f"Penny ({class_id}) data export.zip"
        archive = zipfile.ZipFile(export.path())
        assert {"student.json", "attendance.csv", "README.txt", "manifest.json"} <= set(
            archive.namelist()
        )
        assert "Everything Rollcall holds about Penny" in archive.read("README.txt").decode()

        # The term report from the class page: an older session is outside the dates.
        httpx.post(
            f"{server.url}/v1/classes/{class_id}/sessions",
            json={"label": "Before the term", "date": "2007-09-24"},
            timeout=60,
        ).raise_for_status()
        httpx.put(
            f"{server.url}/v1/classes/{class_id}/sessions/{session_id}/records/howard",
            json={"status": "excused", "note": "Dentist"},
            timeout=60,
        ).raise_for_status()
        day = _get(server, f"/v1/classes/{class_id}/sessions/{session_id}")["date"]
        page.goto(f"{server.url}/console/#/c/{class_id}")
        page.get_by_label("From", exact=True).fill(day)
        page.get_by_label("To", exact=True).fill(day)
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download the term report (CSV)").click()
        download = download_info.value
        assert download.suggested_filename == f"Phone check attendance {day} to {day}.csv"
        saved = tmp_path / "term.csv"
        download.save_as(saved)
        lines = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
        assert lines[0] == [
            "student_id",
            "name",
            f"{day} Lesson",
            "attended",
            "sessions",
            "rate_percent",
        ]
        assert sorted(lines[1:]) == sorted(
            [n, n.title(), "excused", "0", "0", ""]
            if n == "howard"
            else [n, n.title(), "present", "1", "1", "100.0"]
            for n in CAST
        )
        page.get_by_role("button", name="Show the report").click()
        table = page.locator("#term-table")
        expect(table.locator("tbody tr")).to_have_count(len(CAST))
        expect(table.locator('tr[data-student-id="howard"]')).to_contain_text("excused")
        expect(table.locator("thead")).not_to_contain_text("Before the term")
        assert seen.errors == []


def test_phone_width(
    server: LiveServer,
    browser: Browser,
    people_dir: Path,
    groups_dir: Path,
    screenshots: Callable[[Page, str], Path],
) -> None:
    """At 390 px nothing is wider than the screen, and the session is readable."""
    from playwright.sync_api import expect

    session_id = _seed_class(server, people_dir, groups_dir / "face_api_js__bbt3.jpg", "phone")
    overflow = "() => document.documentElement.scrollWidth - window.innerWidth"
    with open_page(browser, PHONE) as (page, seen):
        page.goto(f"{server.url}/console/#/c/phone")
        expect(page.locator("li.student")).to_have_count(len(CAST))
        page.wait_for_function(IMAGES_LOADED, arg="img.thumb")
        assert page.evaluate(overflow) <= 0
        page.goto(f"{server.url}/console/#/c/phone/s/{session_id}")
        expect(page.locator("#present-list li")).to_have_count(len(CAST))
        page.wait_for_function(IMAGES_LOADED, arg="img.annotated")
        assert page.evaluate(overflow) <= 0
        photo_width = page.locator("img.annotated").bounding_box()
        assert photo_width is not None and photo_width["width"] <= PHONE["width"]
        # The roster first, on the first screen; the photos after it.
        roster_title = page.locator("#roster-title").bounding_box()
        photos_title = page.locator("#photos-title").bounding_box()
        assert roster_title is not None and photos_title is not None
        assert roster_title["y"] < PHONE["height"]
        assert roster_title["y"] < photos_title["y"]
        screenshots(page, "phone-session")
        assert seen.errors == []


def test_console_asks_for_the_api_key(
    fast_cast_pipeline: FacePipeline, browser: Browser, tmp_path: Path
) -> None:
    """With keys configured the console asks for one on the first 401, retries with it, asks
    again when it is refused, and sends it with every call (images included)."""
    from playwright.sync_api import expect

    key = "console-test-key-0123456789"
    store = DiskObjectStore(tmp_path / "store")
    with live_server(fast_cast_pipeline, store, api_keys=key) as keyed:
        assert httpx.get(keyed.url + "/v1/classes").status_code == 401
        with open_page(browser, DESKTOP) as (page, seen):
            page.goto(keyed.url + "/console/")
            dialog = page.locator("#key-dialog")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text("This server needs an API key.")
            page.get_by_label("API key", exact=True).fill("wrong-key-but-long-enough")
            page.get_by_role("button", name="Use key").click()
            expect(dialog).to_contain_text("That API key was refused.")
            page.get_by_label("API key", exact=True).fill(key)
            page.get_by_role("button", name="Use key").click()
            expect(dialog).to_be_hidden()
            expect(page.get_by_text("No class yet")).to_be_visible()
            page.get_by_label("Name", exact=True).fill("Keyed")
            page.get_by_role("button", name="Create class").click()
            expect(page.locator("h1")).to_have_text("Keyed")
            assert page.evaluate("() => sessionStorage.getItem('rollcall.apiKey')") == key
            expect(page.get_by_role("button", name="API key")).to_be_visible()
            assert seen.errors == []
        assert [c["id"] for c in _get(keyed, "/v1/classes", **{"X-API-Key": key})] == ["keyed"]


def test_student_ids_are_made_by_the_server(
    server: LiveServer, browser: Browser, people_dir: Path
) -> None:
    """Names beyond ASCII keep their letters in the id, as the server spells them (anyascii):
    the console previews the id where it can tell, sends none unless the teacher typed one, and
    the server makes it. The preview agrees with the server's ``slugify`` on every letter it
    previews."""
    from playwright.sync_api import expect

    from app.core.ids import slugify

    class_id = "names"
    httpx.post(
        f"{server.url}/v1/classes", json={"id": class_id, "name": "Names"}, timeout=60
    ).raise_for_status()
    with open_page(browser, DESKTOP) as (page, seen):
        page.goto(f"{server.url}/console/#/c/{class_id}/register")
        name_input = page.get_by_label("Name", exact=True)
        id_input = page.get_by_label("Student id", exact=True)
        save = page.get_by_role("button", name="Save student")
        # (name, the preview, a typed id or None, the id the student gets, whose photo)
        registrations = [
            ("Zoë Ødegård", "zoe-odegard", None, "zoe-odegard", "penny"),
            ("Łukasz", "lukasz", None, "lukasz", "raj"),
            ("Дмитрий", "", None, "dmitriy", "leonard"),
            ("Łukasz Wójcik", "lukasz-wojcik", "lw", "lw", "howard"),
        ]
        for name, preview, typed, expected_id, photo in registrations:
            name_input.fill(name)
            expect(id_input).to_have_value(preview)
            if typed is not None:
                id_input.fill(typed)
            page.locator("#photo-file").set_input_files(_cast_photo(people_dir, photo))
            expect(save).to_be_enabled()
            save.click()
            expect(page.get_by_role("status")).to_have_text(f"{name} registered.")
            expect(
                page.locator(f'.registered li[data-student-id="{expected_id}"]')
            ).to_contain_text(name)
            expect(id_input).to_have_value("")
        students = _get(server, f"/v1/classes/{class_id}/students")
        assert sorted((s["id"], s["name"]) for s in students) == sorted(
            (expected_id, name) for name, _, _, expected_id, _ in registrations
        )
        # A name registered again is refused by the server (it makes the ids, and knows names).
        name_input.fill("zoë ødegård")
        page.locator("#photo-file").set_input_files(_cast_photo(people_dir, "penny"))
        expect(save).to_be_enabled()
        save.click()
        expect(page.get_by_role("alert")).to_contain_text("already exists")
        assert len(_get(server, f"/v1/classes/{class_id}/students")) == len(registrations)
        page.locator('.registered a:text-is("Zoë Ødegård")').click()
        expect(page.locator("h1")).to_have_text("Zoë Ødegård")

        # The preview against the server, letter by letter: wherever the console shows an id
        # it is the one the server makes.
        names = [
            f"Ab{chr(code)}cd {chr(code)}{chr(code).upper()}"
            for code in range(0x80, 0x3000)
            if not 0xD800 <= code < 0xE000
        ]
        previews = page.evaluate(
            """async (names) => {
                const { studentIdPreview } = await import("/console/widgets/ids.js");
                return names.map(studentIdPreview);
            }""",
            names,
        )
        previewed = [(n, p) for n, p in zip(names, previews, strict=True) if p is not None]
        # It previews every letter of Latin-1 and Latin Extended-A (but the rare "ŀ" and "ŉ").
        latin = {chr(code) for code in range(0xC0, 0x180)} - set("×÷Ŀŀŉ")
        assert latin <= {n[2] for n, _ in previewed}
        assert [(n, p) for n, p in previewed if p != slugify(n)] == []
        assert seen.errors == []


def test_registration_chooses_the_face_on_a_group_photo(
    server: LiveServer,
    browser: Browser,
    groups_dir: Path,
    screenshots: Callable[[Page, str], Path],
) -> None:
    """A registration photo of five people: every face is outlined, the teacher taps one, the
    check runs again on it, and the student is registered with that face."""
    from playwright.sync_api import expect

    class_id = "choose"
    bbt3 = groups_dir / "face_api_js__bbt3.jpg"
    httpx.post(
        f"{server.url}/v1/classes", json={"id": class_id, "name": "Choosing"}, timeout=60
    ).raise_for_status()
    refused = httpx.post(
        f"{server.url}/v1/classes/{class_id}/students/check",
        files={"photo": ("bbt3.jpg", bbt3.read_bytes(), "image/jpeg")},
        timeout=120,
    )
    assert refused.status_code == 422
    faces = refused.json()["faces"]
    with open_page(browser, DESKTOP) as (page, seen):
        page.goto(f"{server.url}/console/#/c/{class_id}/register")
        page.get_by_label("Name", exact=True).fill("Chosen One")
        save = page.get_by_role("button", name="Save student")
        page.locator("#photo-file").set_input_files(bbt3)
        verdict = page.locator("#check-verdict")
        expect(verdict).to_contain_text("Several faces")
        choices = page.locator(".face-choice")
        expect(choices).to_have_count(len(faces))
        expect(page.locator("#face-choice-hint")).to_contain_text("Tap the student's face")
        expect(save).to_be_disabled()
        # Each outline is over its face: the buttons' boxes keep the faces' proportions.
        image = page.locator(".preview img").bounding_box()
        assert image is not None
        natural_width = page.evaluate("() => document.querySelector('.preview img').naturalWidth")
        scale = image["width"] / natural_width
        outline = choices.nth(3).bounding_box()
        assert outline is not None
        assert abs(outline["x"] - image["x"] - faces[3]["box"][0] * scale) <= 2
        assert abs(outline["width"] - (faces[3]["box"][2] - faces[3]["box"][0]) * scale) <= 2
        screenshots(page, "register-choose-face")

        page.get_by_role("button", name=f"Face 4 of {len(faces)}").click()
        chosen = page.locator('.face-choice[aria-pressed="true"]')
        expect(chosen).to_have_attribute("data-face-index", "3")
        expect(verdict).not_to_contain_text("Several faces")
        expect(page.locator("#face-choice-hint")).to_contain_text("the one outlined in green")
        expect(page.locator("#check-report")).not_to_contain_text("null")
        expect(save).to_be_enabled()
        save.click()
        expect(page.get_by_role("status")).to_have_text("Chosen One registered.")
        student = _get(server, f"/v1/classes/{class_id}/students/chosen-one")
        assert [p["box"] for p in student["photos"]] == [faces[3]["box"]]
        assert seen.errors == []


def test_naming_a_face_asks_before_moving_a_name(
    server: LiveServer, browser: Browser, people_dir: Path, groups_dir: Path
) -> None:
    """Naming a face with the name recognition gave another face of the photo asks first, in
    words, and says what happened: that face becomes unknown. A name the teacher gave moves too,
    after asking; its face then goes back to what recognition found (Raj)."""
    from playwright.sync_api import expect

    class_id = "moves"
    session_id = _seed_class(server, people_dir, groups_dir / "face_api_js__bbt3.jpg", class_id)
    photo_id = _get(server, f"/v1/classes/{class_id}/sessions/{session_id}")["photo_ids"][0]
    faces = _get(server, f"/v1/classes/{class_id}/sessions/{session_id}/photos/{photo_id}")["faces"]
    penny = next(i for i, f in enumerate(faces) if f["student_id"] == "penny")
    raj = next(i for i, f in enumerate(faces) if f["student_id"] == "raj")
    with open_page(browser, DESKTOP) as (page, seen):
        page.goto(f"{server.url}/console/#/c/{class_id}/s/{session_id}")
        expect(page.locator("#present-list li")).to_have_count(len(CAST))
        dialog = page.locator("#face-dialog")
        confirm = page.locator("#confirm-dialog")
        raj_face = page.locator(f'.face-button[data-face-index="{raj}"]')
        penny_face = page.locator(f'.face-button[data-face-index="{penny}"]')

        raj_face.click()
        page.get_by_label("Find a student").fill("Penny")
        expect(dialog.locator("#face-choices li:visible button")).to_have_text(
            [f"Penny (on face {penny + 1})"]
        )
        page.get_by_label("Find a student").press("Enter")
        expect(confirm).to_contain_text(
            f"Penny is on face {penny + 1}. Move the name to face {raj + 1}? "
            f"Face {penny + 1} becomes unknown."
        )
        confirm.get_by_role("button", name="Move the name").click()
        expect(page.get_by_role("status")).to_have_text(
            f"Face {raj + 1} is Penny: present. Face {penny + 1} is now unknown."
        )
        expect(raj_face).to_contain_text("Penny")
        expect(raj_face).to_contain_text("named by teacher")
        expect(penny_face).to_have_class(re.compile(r"\bunknown\b"))
        expect(page.locator('#absent-list li[data-student-id="raj"]')).to_be_visible()

        # Back to the face recognition had named Penny: her name is the teacher's now.
        penny_face.click()
        page.get_by_label("Find a student").fill("Penny")
        page.get_by_label("Find a student").press("Enter")
        expect(confirm).to_contain_text(f"Penny is on face {raj + 1} (you named it)")
        expect(confirm).to_contain_text("goes back to what recognition found")
        confirm.get_by_role("button", name="Move the name").click()
        expect(page.get_by_role("status")).to_have_text(
            f"Face {penny + 1} is Penny: present. Face {raj + 1} is now Raj."
        )
        expect(penny_face).to_contain_text("Penny")
        expect(raj_face).to_contain_text("Raj")
        expect(raj_face).not_to_contain_text("named by teacher")
        faces_now = _get(server, f"/v1/classes/{class_id}/sessions/{session_id}/photos/{photo_id}")[
            "faces"
        ]
        assert faces_now[penny]["student_id"] == "penny" and faces_now[raj]["student_id"] == "raj"
        assert faces_now[raj]["source"] == "recognised" and not faces_now[raj]["not_in_class"]
        assert _roster_entry(server, class_id, session_id, "raj")["status"] == "present"
        assert seen.errors == []


def test_the_class_page_lists_faces_not_in_the_class_and_removes_one(
    server: LiveServer, browser: Browser, people_dir: Path, groups_dir: Path
) -> None:
    """A face marked "not in this class" is listed on the class page with its crop and a link to
    its session; removing it asks first, and the list disappears with its last face."""
    from playwright.sync_api import expect

    class_id = "visitors"
    session_id = _seed_class(server, people_dir, groups_dir / "face_api_js__bbt3.jpg", class_id)
    photo_id = _get(server, f"/v1/classes/{class_id}/sessions/{session_id}")["photo_ids"][0]
    base = f"/v1/classes/{class_id}/sessions/{session_id}/photos/{photo_id}"
    faces = _get(server, base)["faces"]
    raj = next(i for i, f in enumerate(faces) if f["student_id"] == "raj")
    httpx.post(
        f"{server.url}{base}/faces/{raj}/assign", json={"student_id": None}, timeout=60
    ).raise_for_status()
    with open_page(browser, DESKTOP) as (page, seen):
        page.goto(f"{server.url}/console/#/c/{class_id}")
        panel = page.locator("#strangers")
        expect(panel).to_be_visible()
        cards = panel.locator("li.stranger")
        expect(cards).to_have_count(1)
        expect(cards.locator("img.thumb")).to_have_js_property("complete", True)
        expect(cards.get_by_role("link")).to_have_attribute(
            "href", f"#/c/{class_id}/s/{session_id}"
        )
        cards.get_by_role("button", name=re.compile("Remove this face")).click()
        confirm = page.locator("#confirm-dialog")
        expect(confirm).to_contain_text("a student's name again")
        confirm.get_by_role("button", name="Remove the face").click()
        expect(panel).to_be_hidden()
        expect(page.get_by_role("status")).to_have_text("The face is removed.")
        assert _get(server, f"/v1/classes/{class_id}/strangers") == []
        assert seen.errors == []


def test_import_page_then_a_photo_for_a_student_who_needs_one(
    server: LiveServer,
    browser: Browser,
    people_dir: Path,
    screenshots: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    """The school's roster (OneRoster) and its photos' zip uploaded from the console: the import
    is followed to the end, with its counts, the student who needs a photo and why, and a link
    to the new class; that student's page adds a photo, checked before it is saved. A file that
    is no roster is refused in words."""
    from playwright.sync_api import expect

    pupils = pupils_from_folders(people_dir / f"face_api_js__{name}" for name in CAST[:3])
    newcomer = Pupil("newcomer-guid", "Ima", "Newcomer", None)
    school = [SchoolClass("physics-guid", "Physics 7B", [*pupils, newcomer])]
    roster = tmp_path / "oneroster.zip"
    roster.write_bytes(zip_bytes(oneroster_files(school)))
    photos = tmp_path / "photos.zip"
    photos_zip(pupils, path=photos)
    not_a_roster = tmp_path / "notes.zip"
    not_a_roster.write_bytes(b"not a zip")

    with open_page(browser, DESKTOP) as (page, seen):
        page.goto(server.url + "/console/")
        page.get_by_role("link", name="import the school roster").click()
        expect(page.locator("h1")).to_have_text("Import the school roster")
        start = page.get_by_role("button", name="Start the import")

        # Bad input: refused in words, nothing stored.
        page.get_by_label("The OneRoster zip").set_input_files(not_a_roster)
        start.click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("could not be imported")
        expect(alert).to_contain_text("not a zip archive")
        expect(alert).to_contain_text("Nothing was stored")

        # A plain CSV instead: its own file, no photo key (its list names each photo).
        page.get_by_label("A list saved as CSV").check()
        expect(page.get_by_label("The CSV file")).to_be_visible()
        expect(page.get_by_label("The photos are named by")).to_be_hidden()
        page.get_by_label("OneRoster export").check()
        expect(page.get_by_label("The photos are named by")).to_be_visible()

        # Erasing the students who left is said plainly before it is chosen.
        warning = page.locator("#erase-warning")
        expect(warning).to_be_hidden()
        page.get_by_label("Erase students the roster no longer has").check()
        expect(warning).to_contain_text("cannot be undone")
        page.get_by_label("Erase students the roster no longer has").uncheck()

        page.get_by_label("The OneRoster zip").set_input_files(roster)
        page.get_by_label("The photos (a zip, optional)").set_input_files(photos)
        expect(page.get_by_label("The photos are named by")).to_have_value("sourcedId")
        start.click()
        expect(page).to_have_url(re.compile(r"#/import/[^/]+$"))
        state = page.locator("#import-state")
        expect(state).to_have_text("Finished.")
        expect(page.locator("#import-progress-text")).to_have_text("4 of 4 students")
        counts = page.locator("#import-counts")
        expect(counts).to_contain_text("1 new, 0 updated, 0 already up to date")
        expect(counts).to_contain_text("4 new, 0 updated, 0 already up to date")
        expect(counts.locator("dd").last).to_have_text("3")
        refusal = page.locator('#import-refusals li[data-source-id="newcomer-guid"]')
        expect(refusal).to_contain_text("Ima Newcomer (Physics 7B)")
        expect(refusal).to_contain_text("no photo named 'newcomer-guid'")
        expect(refusal.get_by_role("link", name="Ima Newcomer")).to_have_attribute(
            "href", "#/c/physics-guid/student/newcomer-guid"
        )
        expect(page.locator("#new-classes")).to_contain_text("Physics 7B (4 students)")
        screenshots(page, "import-done")

        # The new class: its student without a photo shows it.
        page.locator("#new-classes").get_by_role("link", name="Physics 7B").click()
        expect(page.locator("h1")).to_have_text("Physics 7B")
        expect(page.locator("li.student")).to_have_count(4)
        expect(page.locator("#student-count")).to_have_text("4 students enrolled. 1 needs a photo.")
        waiting = page.locator("li.student.needs-photo")
        expect(waiting).to_have_count(1)
        expect(waiting).to_contain_text("Ima Newcomer")
        expect(waiting).to_contain_text("Needs a photo")
        page.wait_for_function(IMAGES_LOADED, arg="img.thumb")
        screenshots(page, "class-needs-photo")

        # Their page: the state, and a photo checked before it is saved.
        waiting.get_by_role("link", name="Ima Newcomer needs a photo: add one").click()
        expect(page.locator("h1")).to_have_text("Ima Newcomer")
        expect(page.locator("#needs-photo")).to_contain_text("Needs a photo")
        expect(page.locator("#student-photo-count")).to_have_text("No photo yet")
        save = page.get_by_role("button", name="Save the photo")
        expect(save).to_be_disabled()
        page.locator("#photo-file").set_input_files(_cast_photo(people_dir, "howard"))
        expect(page.locator("#check-verdict")).to_contain_text("Usable, but check this first")
        expect(page.locator(".face-box")).to_be_visible()
        expect(page.locator("#check-report")).not_to_contain_text("null")
        expect(save).to_be_enabled()
        students = _get(server, "/v1/classes/physics-guid/students")
        assert {s["name"]: s["photo_count"] for s in students}["Ima Newcomer"] == 0
        screenshots(page, "student-add-photo")
        save.click()
        expect(page.locator("#student-photo-count")).to_have_text("1 registration photo")
        expect(page.get_by_role("status")).to_contain_text("Photo saved: Ima Newcomer has 1 photo.")
        expect(page.locator("#needs-photo")).to_have_count(0)
        expect(page.locator("ul.photos-list li")).to_have_count(1)
        students = _get(server, "/v1/classes/physics-guid/students")
        assert {s["name"]: s["photo_count"] for s in students}["Ima Newcomer"] == 1

        # The import is listed; the home page has the class.
        page.goto(server.url + "/console/#/import")
        rows = page.locator("#imports-table tbody tr")
        expect(rows.first).to_contain_text("Finished.")
        expect(rows.first).to_contain_text("4 of 4")
        page.goto(server.url + "/console/#/")
        expect(page.get_by_role("link", name="Physics 7B")).to_be_visible()
        assert seen.errors == []


def test_the_loading_line_goes_when_the_calls_end(server: LiveServer, browser: Browser) -> None:
    """A labelled call that ends before an unlabelled one started with it (a page loading its
    class, then the rest): its "Loading…" line is shown while it runs and gone once both end (it
    used to stay above the heading)."""
    from playwright.sync_api import expect

    with open_page(browser, DESKTOP) as (page, seen):
        page.goto(server.url + "/console/")
        expect(page.locator("h1")).to_have_text("Classes")
        lines = page.evaluate(
            """async () => {
                const { withBusy } = await import("/console/api.js");
                const wait = (ms) => new Promise((done) => setTimeout(done, ms));
                const status = document.getElementById("status");
                let during = null;
                const labelled = withBusy("Loading the student…", async () => {
                    await wait(500);
                    during = status.textContent;
                });
                const other = withBusy(undefined, () => wait(900));
                await labelled;
                const between = status.textContent;
                await other;
                return {
                    during,
                    between,
                    after: status.textContent,
                    bar: document.getElementById("busy").hidden,
                };
            }"""
        )
        assert lines == {
            "during": "Loading the student…",
            "between": "",
            "after": "",
            "bar": True,
        }
        assert seen.errors == []
